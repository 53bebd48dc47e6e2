"""Exact feature gradients of the sampled RF-HGN networks against torch
autograd (float64), for both encodings, 2D and 3D, fixed and cutoff graphs;
the frame encoding (core.learning.hgn.frame): its rule and its exact adjoint;
the time-series correction gradient against finite differences."""
import numpy as np
import pytest
import torch

from core.errors import HGNError
from core.learning.hgn.frame import build_frame, encode, frame_adjoint
from core.learning.hgn.graph import Graph
from core.learning.rfhgn import RFConfig
from core.learning.rfhgn.fitting import correction_gradients
from core.learning.rfhgn.sampling import choose_points, sample_network
from core.physics import builders
from hgn_cases import CASES, PAIRS, assert_matches_autograd, states


def _network(system, encoding, **kw):
    cfg = RFConfig(encoding=encoding, node_width=5, edge_width=6, message_width=7,
                   static_width=3 if (encoding == "invariant" and np.ptp(system.masses) > 0) else 0, **kw)
    q, p = states(system, 6, seed=1)
    rng = np.random.default_rng(cfg.seed)
    return sample_network(cfg, choose_points([(system, q, p)], cfg, rng), rng)


@pytest.mark.parametrize("encoding,case", PAIRS)
def test_feature_jacobians_of_sampled_networks_match_autograd(encoding, case):
    system = CASES[case]()
    if encoding == "frame-nearest":
        net = _network(system, "frame", frame_rule="nearest")
        assert net.rule == "nearest"
    else:
        net = _network(system, encoding)
    q, p = states(system)
    graph = Graph.build(system, q)
    net.set_theta(np.random.default_rng(2).standard_normal(net.L))  # a non-zero output layer to contract with
    assert_matches_autograd(net, graph, q, p)


@pytest.mark.parametrize("rule", ["nearest", "farthest"])
@pytest.mark.parametrize("dim", [2, 3])
def test_frame_adjoint_matches_autograd_for_a_random_function(dim, rule):
    # Phi = sum of a random smooth function of (q_bar, p_bar): checks the
    # centre and frame terms of the adjoint on their own
    rng = np.random.default_rng(dim)
    S, N = 4, 7
    q = torch.tensor(rng.standard_normal((S, N, dim)))
    p = torch.tensor(rng.standard_normal((S, N, dim)))
    A = torch.tensor(rng.standard_normal((2 * dim, 3)))
    fr = build_frame(q, rule)
    qb, pb = encode(fr, p)
    x = torch.cat([qb, pb], -1)
    dt = 1 - torch.tanh(x @ A) ** 2  # (S, N, 3)
    G = torch.einsum("snl,kl->snkl", dt, A[:dim])
    P = torch.einsum("snl,kl->snkl", dt, A[dim:])
    dq, dp = frame_adjoint(fr, p, G, P)
    # autograd through the same frame built differentiably (same discrete choice)
    qt = q.clone().requires_grad_(True)
    pt = p.clone().requires_grad_(True)
    frt = build_frame(qt, rule)
    assert torch.equal(frt.a, fr.a) and torch.equal(frt.b, fr.b)
    qbt, pbt = encode(frt, pt)
    out = torch.tanh(torch.cat([qbt, pbt], -1) @ A)
    for col in range(3):
        gq, gp = torch.autograd.grad(out[..., col].sum(), (qt, pt), retain_graph=True)
        assert torch.allclose(dq[..., col], gq, atol=1e-12, rtol=0)
        assert torch.allclose(dp[..., col], gp, atol=1e-12, rtol=0)
    # and against central differences of the numbers themselves
    h = 1e-6
    d = torch.zeros_like(q)
    d[1, 2, 0] = h

    def total(qq):
        qbb, pbb = encode(build_frame(qq, rule), p)
        return torch.tanh(torch.cat([qbb, pbb], -1) @ A)[..., 0].sum()

    fd = float(total(q + d) - total(q - d)) / (2 * h)
    assert abs(fd - float(dq[1, 2, 0, 0])) < 1e-7


def test_frame_rule_is_deterministic_and_orthonormal():
    rng = np.random.default_rng(0)
    q = torch.tensor(rng.standard_normal((5, 9, 3)))
    for rule, pick in (("nearest", np.argmin), ("farthest", np.argmax)):
        fr = build_frame(q, rule)
        for s in range(5):
            B = fr.B[s].numpy()
            assert np.allclose(B.T @ B, np.eye(3), atol=1e-14)
            assert np.isclose(np.linalg.det(B), 1.0)
            x = q[s].numpy() - q[s].numpy().mean(0)
            norms = np.linalg.norm(x, axis=1)
            assert int(fr.a[s]) == pick(norms)
            # b: the next particle in the rule's order (none here is collinear with a)
            rest = [i for i in range(9) if i != int(fr.a[s])]
            assert int(fr.b[s]) == rest[pick(norms[rest])]
    assert torch.equal(build_frame(q).a, build_frame(q, "farthest").a)  # the default
    with pytest.raises(HGNError, match="frame rule"):
        build_frame(q, "middle")
    # a collinear system (a chain along x): e_2 from the fixed axis, still orthonormal
    chain = torch.zeros((1, 5, 3), dtype=torch.float64)
    chain[0, :, 0] = torch.arange(5.0, dtype=torch.float64) + 0.1
    fr = build_frame(chain)
    B = fr.B[0].numpy()
    assert int(fr.b[0]) == -1 and np.allclose(B.T @ B, np.eye(3))
    # ties go to the lower index: a square centred at the origin (all |x| equal)
    sq = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]], dtype=torch.float64)
    assert int(build_frame(sq, "farthest").a[0]) == 0 and int(build_frame(sq, "nearest").a[0]) == 0
    # every particle at the centre: the first axis, independent of q
    fr = build_frame(torch.zeros((1, 3, 2), dtype=torch.float64))
    assert int(fr.a[0]) == -1 and torch.equal(fr.B[0], torch.eye(2, dtype=torch.float64))


def test_frame_rejects_periodic():
    system = builders.molecular(27, density=0.8, dim=3, cutoff=1.2)
    with pytest.raises(HGNError, match="periodic"):
        _network(system, "frame")


def test_second_order_correction_gradient_matches_finite_differences():
    # dC/dy for C = H_q . H_p, from double backward, against central
    # differences of C computed with the analytic first gradients
    system = builders.square_lattice(2, 3)
    net = _network(system, "invariant")
    net.set_theta(np.random.default_rng(3).standard_normal(net.L))
    q, p = states(system, 1)
    graph = Graph.build(system, q)
    cq, cp = correction_gradients(net, graph, q, p)

    def C(qq, pp):
        _, gq, gp = net.gradients(graph, qq, pp)
        return float((gq * gp).sum())

    h = 1e-6
    scale = max(1.0, float(cq.abs().max()), float(cp.abs().max()))
    for (i, k) in [(0, 0), (2, 1), (5, 0)]:
        d = torch.zeros_like(q)
        d[0, i, k] = h
        assert abs((C(q + d, p) - C(q - d, p)) / (2 * h) - float(cq[0, i, k])) < 1e-6 * scale
        assert abs((C(q, p + d) - C(q, p - d)) / (2 * h) - float(cp[0, i, k])) < 1e-6 * scale
