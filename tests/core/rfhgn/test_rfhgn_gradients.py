"""Exact feature gradients of the RF-HGN network against torch autograd
(float64), for both encodings, 2D and 3D, fixed and cutoff graphs."""
import numpy as np
import pytest
import torch

from core.physics import builders
from core.errors import HGNError
from core.learning.rfhgn import RFConfig
from core.learning.rfhgn.encoding import build_frame, encode, frame_adjoint
from core.learning.rfhgn.sampling import choose_points, sample_network
from core.learning.rfhgn.torchnet import correction_gradients, torch_energy, torch_features


def _ring_masses():
    # fixed graph with unequal masses and per-edge strengths (static encoder, edge weights)
    ang = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    q = np.stack([np.cos(ang), np.sin(ang)], 1) * 1.2
    return builders.custom(2, q, [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [0, 5], [0, 3]],
                           masses=[1.0, 2.0, 0.5, 1.5, 1.0, 2.0], edge_scale=[1.0, 0.5, 2.0, 1.5, 0.7, 3.0, 1.2])


CASES = {
    "fixed-2d": lambda: builders.square_lattice(3, 3),
    "fixed-3d": lambda: builders.cubic_lattice(2, 2, 3),
    "fixed-2d-masses-weights": _ring_masses,
    "cutoff-2d-free": lambda: builders.molecular(16, density=0.7, dim=2, cutoff=2.0, periodic=False, jitter=0.1),
    "cutoff-3d-free": lambda: builders.molecular(27, density=0.8, dim=3, cutoff=1.6, periodic=False, jitter=0.1),
    "cutoff-3d-periodic": lambda: builders.molecular(64, density=0.8, dim=3, cutoff=1.6, jitter=0.1),
}


def _states(system, S=3, seed=0):
    rng = np.random.default_rng(seed)
    q = system.positions + 0.05 * rng.standard_normal((S, system.n, system.dim))
    p = 0.3 * rng.standard_normal((S, system.n, system.dim))
    return q, p


def _network(system, encoding, **kw):
    cfg = RFConfig(encoding=encoding, node_width=5, edge_width=6, message_width=7,
                   static_width=3 if (encoding == "invariant" and np.ptp(system.masses) > 0) else 0, **kw)
    q, p = _states(system, 6, seed=1)
    rng = np.random.default_rng(cfg.seed)
    return sample_network(cfg, choose_points([(system, q, p)], cfg, rng), rng)


def _autograd_jacobians(net, system, q, p):
    qt = torch.tensor(q, requires_grad=True)
    pt = torch.tensor(p, requires_grad=True)
    phi = torch_features(net, system, qt, pt)
    L = phi.shape[1]
    jq = np.zeros(q.shape + (L,))
    jp = np.zeros(p.shape + (L,))
    for l in range(L):
        gq, gp = torch.autograd.grad(phi[:, l].sum(), (qt, pt), retain_graph=True, allow_unused=True)
        jq[..., l] = 0.0 if gq is None else gq.numpy()
        jp[..., l] = 0.0 if gp is None else gp.numpy()
    return phi.detach().numpy(), jq, jp


# the frame encoding is undefined in a periodic box (see test_frame_rejects_periodic)
PAIRS = [(enc, case) for enc in ("invariant", "frame") for case in sorted(CASES)
         if not (enc == "frame" and "periodic" in case)]
# the paper's frame rule too (the default is "farthest")
PAIRS += [("frame-nearest", "fixed-3d"), ("frame-nearest", "cutoff-2d-free")]


@pytest.mark.parametrize("encoding,case", PAIRS)
def test_feature_jacobians_match_autograd(encoding, case):
    system = CASES[case]()
    if encoding == "frame-nearest":
        net = _network(system, "frame", frame_rule="nearest")
        assert net.rule == "nearest"
    else:
        net = _network(system, encoding)
    q, p = _states(system)
    phi, Jq, Jp = net.jacobians(system, q, p)
    phi_t, jq_t, jp_t = _autograd_jacobians(net, system, q, p)
    scale = max(1.0, np.abs(jq_t).max(), np.abs(jp_t).max())
    assert np.abs(phi - phi_t).max() < 1e-12 * max(1.0, np.abs(phi_t).max())
    assert np.abs(Jq - jq_t[..., net.q_cols]).max() < 1e-11 * scale
    assert np.abs(Jp - jp_t[..., net.p_cols]).max() < 1e-11 * scale
    if net.separable:  # the columns left out are exactly zero
        assert np.all(jq_t[..., net.p_cols] == 0) and np.all(jp_t[..., net.q_cols] == 0)
    # the contracted (reverse-mode) gradients used by rollouts
    theta = np.random.default_rng(2).standard_normal(net.L)
    H, gq, gp = net.evaluate(system, q, p, theta)
    qt = torch.tensor(q, requires_grad=True)
    pt = torch.tensor(p, requires_grad=True)
    Ht = torch_energy(net, theta, system, qt, pt)
    aq, ap = torch.autograd.grad(Ht.sum(), (qt, pt))
    gscale = max(1.0, np.abs(aq.numpy()).max(), np.abs(ap.numpy()).max())
    assert np.abs(H - Ht.detach().numpy()).max() < 1e-11 * max(1.0, np.abs(H).max())
    assert np.abs(gq - aq.numpy()).max() < 1e-11 * gscale
    assert np.abs(gp - ap.numpy()).max() < 1e-11 * gscale


@pytest.mark.parametrize("rule", ["nearest", "farthest"])
@pytest.mark.parametrize("dim", [2, 3])
def test_frame_adjoint_matches_autograd_for_a_random_function(dim, rule):
    # Phi = sum of a random smooth function of (q_bar, p_bar): checks the
    # centre and frame terms of the adjoint on their own
    rng = np.random.default_rng(dim)
    S, N = 4, 7
    q = rng.standard_normal((S, N, dim))
    p = rng.standard_normal((S, N, dim))
    A = rng.standard_normal((2 * dim, 3))

    def phi_np(qb, pb):
        x = np.concatenate([qb, pb], -1)
        return np.tanh(x @ A)  # (S, N, 3)

    fr = build_frame(q, rule)
    qb, pb = encode(fr, p)
    x = np.concatenate([qb, pb], -1)
    dt = 1 - np.tanh(x @ A) ** 2  # (S, N, 3)
    G = np.einsum("snl,kl->snkl", dt, A[:dim])
    P = np.einsum("snl,kl->snkl", dt, A[dim:])
    dq, dp = frame_adjoint(fr, p, G, P)

    qt = torch.tensor(q, requires_grad=True)
    pt = torch.tensor(p, requires_grad=True)
    xt = qt - qt.mean(1, keepdim=True)
    rows = torch.arange(S)
    e1 = xt[rows, torch.as_tensor(fr.a)]
    e1 = e1 / e1.norm(dim=1, keepdim=True)
    if dim == 2:
        B = torch.stack([e1, torch.stack([-e1[:, 1], e1[:, 0]], 1)], 2)
    else:
        xb = xt[rows, torch.as_tensor(fr.b)]
        u = xb - (xb * e1).sum(1, keepdim=True) * e1
        e2 = u / u.norm(dim=1, keepdim=True)
        B = torch.stack([e1, e2, torch.linalg.cross(e1, e2, dim=1)], 2)
    xx = torch.cat([torch.einsum("sik,skl->sil", xt, B), torch.einsum("sik,skl->sil", pt, B)], -1)
    out = torch.tanh(xx @ torch.tensor(A))
    for l in range(3):
        gq, gp = torch.autograd.grad(out[..., l].sum(), (qt, pt), retain_graph=True)
        assert np.allclose(dq[..., l], gq.numpy(), atol=1e-12, rtol=0)
        assert np.allclose(dp[..., l], gp.numpy(), atol=1e-12, rtol=0)


def test_frame_rule_is_deterministic_and_orthonormal():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((5, 9, 3))
    for rule, pick in (("nearest", np.argmin), ("farthest", np.argmax)):
        fr = build_frame(q, rule)
        for s in range(5):
            B = fr.B[s]
            assert np.allclose(B.T @ B, np.eye(3), atol=1e-14)
            assert np.isclose(np.linalg.det(B), 1.0)
            x = q[s] - q[s].mean(0)
            norms = np.linalg.norm(x, axis=1)
            assert fr.a[s] == pick(norms)
            # b: the next particle in the rule's order (none here is collinear with a)
            rest = [i for i in range(9) if i != fr.a[s]]
            assert fr.b[s] == rest[pick(norms[rest])]
    assert (build_frame(q).a == build_frame(q, "farthest").a).all()  # the default
    with pytest.raises(HGNError, match="frame rule"):
        build_frame(q, "middle")
    # a collinear system (a chain along x): e_2 from the fixed axis, still orthonormal
    chain = np.zeros((1, 5, 3))
    chain[0, :, 0] = np.arange(5.0) + 0.1
    fr = build_frame(chain)
    assert fr.b[0] == -1 and np.allclose(fr.B[0].T @ fr.B[0], np.eye(3))


def test_frame_rejects_periodic():
    system = builders.molecular(27, density=0.8, dim=3, cutoff=1.2)
    q, p = _states(system)
    with pytest.raises(HGNError, match="periodic"):
        _network(system, "frame")


def test_second_order_correction_gradient_matches_finite_differences():
    # dC/dy for C = H_q . H_p, from double backward, against central
    # differences of C computed with the analytic first gradients
    system = builders.square_lattice(2, 3)
    net = _network(system, "invariant")
    theta = np.random.default_rng(3).standard_normal(net.L)
    q, p = _states(system, 1)
    cq, cp = correction_gradients(net, theta, system, q, p)

    def C(qq, pp):
        _, gq, gp = net.evaluate(system, qq, pp, theta)
        return float(np.sum(gq * gp))

    h = 1e-6
    for (i, k) in [(0, 0), (2, 1), (5, 0)]:
        d = np.zeros_like(q)
        d[0, i, k] = h
        assert abs((C(q + d, p) - C(q - d, p)) / (2 * h) - cq[0, i, k]) < 1e-6 * max(1, abs(cq).max())
        assert abs((C(q, p + d) - C(q, p - d)) / (2 * h) - cp[0, i, k]) < 1e-6 * max(1, abs(cp).max())
