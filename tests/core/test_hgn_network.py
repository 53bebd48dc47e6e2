"""The torch HGN (core.learning.hgn): analytic Jacobians and reverse-mode
gradients against torch autograd and against finite differences, for both
encodings, 2D and 3D, fixed graphs with masses and edge weights, cutoff
systems, periodic boxes; the per-pair and kinetic functions; the input
normalisation buffers; float32 evaluation; devices."""
import numpy as np
import pytest
import torch

from core.errors import HGNError
from core.learning.hgn.device import DEVICES, resolve_device, torch_threads
from core.learning.hgn.fixed import FixedJacobians
from core.learning.hgn.graph import Graph
from core.learning.hgn.network import HGN
from core.physics import builders
from hgn_cases import CASES, PAIRS, assert_matches_autograd, ring_with_masses, states


FIXED_EXTRA = {
    # a periodic ring of 3D springs with a star centre (uneven degrees: index_add by default)
    "fixed-3d-periodic-star": lambda: builders.custom(
        3, [[0.5 + i, 0.5 + (i % 2) * 0.4, 0.5] for i in range(6)] + [[3.0, 2.0, 0.5]],
        [[i, (i + 1) % 6] for i in range(6)] + [[6, i] for i in range(6)], box=[6.0, 3.0, 3.0]),
}
def random_hgn(system, encoding, seed=0, dtype=torch.float64, **options):
    """An HGN with random weights of sensible size for inputs of order 1."""
    rule = "farthest"
    if encoding == "frame-nearest":
        encoding, rule = "frame", "nearest"
    if encoding == "invariant":
        widths = {"kin": 5, "static": 3 if np.ptp(system.masses) > 0 else 0, "edge": 6, "msg": 7}
    else:
        widths = {"node": 5, "edge": 6, "msg": 7}
    net = HGN(encoding, system.dim, widths, frame_rule=rule, dtype=dtype, **options)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for prm in net.parameters():
            prm.copy_(torch.randn(prm.shape, generator=g, dtype=torch.float64))
    return net


@pytest.mark.parametrize("encoding,case", PAIRS)
def test_jacobians_and_gradients_match_autograd(encoding, case):
    system = CASES[case]()
    net = random_hgn(system, encoding)
    q, p = states(system)
    graph = Graph.build(system, q)
    (jq_t, jp_t), (gq, gp) = assert_matches_autograd(net, graph, q, p)
    assert float(jq_t.abs().max()) > 1e-3 and float(jp_t.abs().max()) > 1e-3  # not a trivial check
    _, gq0, gp0 = net.gradients(graph, q, p, energy=False)
    assert torch.equal(gq0, gq) and torch.equal(gp0, gp)


@pytest.mark.parametrize("encoding,case", [("invariant", "fixed-2d-masses-weights"),
                                           ("invariant", "cutoff-3d-periodic"), ("frame", "fixed-3d"),
                                           ("frame", "fixed-2d-masses-weights"),
                                           ("frame-nearest", "cutoff-2d-free")])
def test_gradients_match_finite_differences(encoding, case):
    # central differences of H = theta . Phi, independent of autograd
    system = CASES[case]()
    net = random_hgn(system, encoding, seed=3)
    q, p = states(system, 2, seed=4)
    graph = Graph.build(system, q)
    _, gq, gp = net.gradients(graph, q, p)
    _, Jq, Jp = net.jacobians(graph, q, p)
    h = 1e-6
    rng = np.random.default_rng(0)

    def H(qq, pp):
        with torch.no_grad():
            return net(graph, qq, pp)

    for _ in range(6):
        s, i, k = int(rng.integers(2)), int(rng.integers(system.n)), int(rng.integers(system.dim))
        d = torch.zeros_like(q)
        d[s, i, k] = h
        fq = float((H(q + d, p) - H(q - d, p))[s]) / (2 * h)
        fp = float((H(q, p + d) - H(q, p - d))[s]) / (2 * h)
        scale = max(1.0, float(gq.abs().max()), float(gp.abs().max()))
        assert abs(fq - float(gq[s, i, k])) < 1e-7 * scale
        assert abs(fp - float(gp[s, i, k])) < 1e-7 * scale
        # and the Jacobians contracted with theta are the same gradients
        th = net.theta.detach()
        assert abs(float(Jq[s, i, k] @ th[net.q_cols]) - float(gq[s, i, k])) < 1e-11 * scale
        assert abs(float(Jp[s, i, k] @ th[net.p_cols]) - float(gp[s, i, k])) < 1e-11 * scale


def test_pair_and_kinetic_derivatives_match_autograd():
    system = ring_with_masses()
    net = random_hgn(system, "invariant", seed=5)
    r = torch.linspace(0.5, 2.0, 40, dtype=torch.float64, requires_grad=True)
    gsum = net.static_sum(torch.tensor([1.0]), torch.tensor([2.0]))
    f, f1, f2 = net.pair(r, gsum, 2, shift_at=2.5)
    for col in range(f.shape[1]):
        (d1,) = torch.autograd.grad(f[:, col].sum(), r, create_graph=True)
        (d2,) = torch.autograd.grad(d1.sum(), r, retain_graph=True)
        assert torch.allclose(d1, f1[:, col], rtol=0, atol=1e-12)
        assert torch.allclose(d2, f2[:, col], rtol=0, atol=1e-11)
    # the shift makes the features vanish at the shift distance, exactly
    assert torch.all(net.pair(torch.tensor([2.5], dtype=torch.float64), gsum, 0, shift_at=2.5)[0] == 0)
    k = torch.linspace(0.0, 1.0, 11, dtype=torch.float64, requires_grad=True)
    h, dh = net.kinetic(k)
    assert torch.all(h[0] == 0)  # T_hat(0) = 0
    for col in range(h.shape[1]):
        (d1,) = torch.autograd.grad(h[:, col].sum(), k, retain_graph=True)
        assert torch.allclose(d1, dh[:, col], rtol=0, atol=1e-13)


@pytest.mark.parametrize("encoding", ["invariant", "frame"])
def test_parameters_train_through_the_features(encoding):
    # autograd wrt a weight against a finite difference of that weight
    system = builders.square_lattice(3, 3)
    net = random_hgn(system, encoding, seed=6)
    q, p = states(system)
    graph = Graph.build(system, q)
    loss = net(graph, q, p).pow(2).sum()
    loss.backward()
    W = net.edge_W
    assert W.grad is not None and float(W.grad.abs().max()) > 0
    h = 1e-6
    with torch.no_grad():
        W[0, 0] += h
        up = float(net(graph, q, p).pow(2).sum())
        W[0, 0] -= 2 * h
        down = float(net(graph, q, p).pow(2).sum())
        W[0, 0] += h
    assert abs((up - down) / (2 * h) - float(W.grad[0, 0])) < 1e-6 * max(1.0, abs(float(W.grad[0, 0])))


@pytest.mark.parametrize("encoding", ["invariant", "frame"])
def test_normalisation_buffers_fold_into_raw_weights(encoding):
    system = builders.cubic_lattice(2, 2, 2)
    net = random_hgn(system, encoding, seed=7)
    q, p = states(system)
    graph = Graph.build(system, q)
    names = dict(net.named_buffers())
    assert set(names) == ({"kin_mu", "kin_s", "static_mu", "static_s", "edge_mu", "edge_s"} if encoding == "invariant"
                          else {"node_mu", "node_s", "edge_mu", "edge_s"})
    before = net.features(graph, q, p).detach()
    first = "kin" if encoding == "invariant" else "node"
    # a layer that sees (x - mu) / s with W' = W s and b' = b + W mu computes the same
    mu = torch.rand(net.n_in[first], dtype=torch.float64)
    s = 1.0 + torch.rand(net.n_in[first], dtype=torch.float64)
    with torch.no_grad():
        W0, b0 = net.layer(first)
        getattr(net, f"{first}_mu").copy_(mu)
        getattr(net, f"{first}_s").copy_(s)
        getattr(net, f"{first}_W").copy_(W0 * s)
        getattr(net, f"{first}_b").copy_(b0 + W0 @ mu)
    after = net.features(graph, q, p).detach()
    assert torch.allclose(after, before, rtol=0, atol=1e-12)
    # raw weights round trip through arrays (the RF model file format)
    arrays = net.to_arrays()
    back = HGN.from_arrays(encoding, system.dim, arrays, net.theta.detach(), **net.options())
    assert torch.allclose(back.features(graph, q, p), after, rtol=0, atol=1e-12)
    assert all(torch.equal(getattr(back, f"{n}_s"), torch.ones_like(getattr(back, f"{n}_s")))
               for n in ("edge",))
    assert set(net.state_dict()) >= {f"{n}_{x}" for n in net.layer_names for x in "Wb"} | {"theta"}


def test_float32_evaluation_agrees_with_float64():
    system = builders.cubic_lattice(3, 3, 3)
    net = random_hgn(system, "invariant", seed=8)
    q, p = states(system)
    g64 = Graph.build(system, q)
    _, gq, gp = net.gradients(g64, q, p)
    net32 = HGN.from_arrays("invariant", 3, net.to_arrays(), net.theta.detach(), dtype=torch.float32)
    g32 = g64.to(dtype=torch.float32)
    _, gq32, gp32 = net32.gradients(g32, q.float(), p.float())
    assert gq32.dtype == torch.float32
    scale = float(gq.abs().max())
    err = float((gq32.double() - gq).abs().max()) / scale
    assert err < 1e-5, err


def test_graph_scatter_pool_select_against_numpy():
    system = builders.molecular(27, density=0.8, dim=3, cutoff=1.6, jitter=0.1)
    q, _ = states(system, 4)
    g = Graph.build(system, q)
    x = torch.randn(g.P, 2, dtype=torch.float64)
    out = g.scatter_signed(x).numpy()
    gi, gj, xn = g.gi.numpy(), g.gj.numpy(), x.numpy()
    ref = np.stack([np.bincount(gi, xn[:, c], minlength=4 * 27) - np.bincount(gj, xn[:, c], minlength=4 * 27)
                    for c in range(2)], 1)
    assert np.allclose(out, ref, rtol=0, atol=1e-12)
    assert np.allclose(g.pool(x).numpy(), np.stack([np.bincount(g.snap.numpy(), xn[:, c], minlength=4)
                                                    for c in range(2)], 1), atol=1e-12)
    sub = g.select([2, 0])
    alone = Graph.build(system, q[[2, 0]])
    assert sub.S == 2 and torch.equal(sub.gi, alone.gi) and torch.equal(sub.gj, alone.gj)
    dl, r = g.delta(q)
    assert float(r.max()) < 1.6  # minimum image: every pair closer than the cutoff
    fixed = Graph.build(builders.square_lattice(3, 3), q[:, :9, :2])
    assert fixed.E_fixed == 12 and fixed.P == 4 * 12 and torch.equal(fixed.select([1, 3]).i, fixed.i[:24])


def test_frame_network_rejects_a_periodic_box():
    system = builders.molecular(27, density=0.8, dim=3, cutoff=1.2)
    net = random_hgn(system, "frame")
    q, p = states(system)
    with pytest.raises(HGNError, match="periodic"):
        net.features(Graph.build(system, q), q, p)


def test_devices_and_threads():
    assert DEVICES == ("cpu", "cuda")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(HGNError, match="not one of"):
        resolve_device("tpu")
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(0):
        assert torch.get_num_threads() == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_asking_for_cuda_without_one_is_a_clear_error():
    with pytest.raises(HGNError, match="CUDA was asked for but this machine has none.*--device cpu"):
        resolve_device("cuda")
    with pytest.raises(HGNError, match="CUDA"):
        HGN("invariant", 3, {"kin": 2, "edge": 2, "msg": 2}, device=resolve_device("cuda:0"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("encoding,case", [("invariant", "cutoff-3d-periodic"),
                                           ("invariant", "fixed-2d-masses-weights"), ("frame", "fixed-3d")])
def test_cpu_and_cuda_agree(encoding, case):
    system = CASES[case]()
    net = random_hgn(system, encoding, seed=9)
    q, p = states(system)
    g = Graph.build(system, q)
    phi, Jq, Jp = net.jacobians(g, q, p)
    H, gq, gp = net.gradients(g, q, p)
    cuda = torch.device("cuda")
    netc = HGN.from_arrays(net.encoding, system.dim, net.to_arrays(), net.theta.detach(), device=cuda,
                           **net.options())
    gc = Graph.build(system, q.to(cuda))
    assert gc.gi.device.type == "cuda"
    phic, Jqc, Jpc = netc.jacobians(gc, q.to(cuda), p.to(cuda))
    Hc, gqc, gpc = netc.gradients(gc, q.to(cuda), p.to(cuda))
    for a, b in ((phi, phic), (Jq, Jqc), (Jp, Jpc), (H, Hc), (gq, gqc), (gp, gpc)):
        assert b.device.type == "cuda"
        assert torch.allclose(a, b.cpu(), rtol=1e-12, atol=1e-12 * max(1.0, float(a.abs().max())))


@pytest.mark.parametrize("scatter", ["csr", "index_add"])
@pytest.mark.parametrize("chunk", [1, 3, None])
@pytest.mark.parametrize("case", ["fixed-2d", "fixed-3d", "fixed-2d-masses-weights", "fixed-3d-periodic-star"])
def test_fixed_graph_rows_are_the_jacobians(case, chunk, scatter):
    # the fit's fast path (core.learning.hgn.fixed): potential rows chunk by chunk and the kinetic
    # block's one row per particle give the same Jacobians / Gram matrices as HGN.jacobians
    system = {**CASES, **FIXED_EXTRA}[case]()
    net = random_hgn(system, "invariant", seed=10)
    q, p = states(system, 5)
    g = Graph.build(system, q)
    _, Jq, Jp = net.jacobians(g, q, p)
    fj = FixedJacobians(net, g, chunk=chunk, scatter=scatter)
    Jq2 = fj.jacobian_q(q)
    scale = float(Jq.abs().max())
    assert scale > 0
    assert torch.allclose(Jq2, Jq, rtol=0, atol=1e-14 * scale)
    r, uh = fj.geometry(q)  # rows and the pair features of a chunk
    Z, feats = fj.rows(r, uh, 1, 3, features=True)
    assert torch.allclose(Z, Jq[1:3].reshape(-1, net.n_V), rtol=0, atol=1e-14 * scale)
    delta, rr = g.delta(q)
    ref = net.pair(rr, net._gsum(g), 0)[0].reshape(5, -1, net.n_V)[1:3].reshape(-1, net.n_V)
    assert torch.allclose(feats, ref, rtol=0, atol=1e-14)
    D = fj.kinetic(p)
    Jp2 = D.reshape(5, system.n, 1, -1) * (p / g.masses[:, None])[..., None]
    assert torch.allclose(Jp2, Jp, rtol=0, atol=1e-14 * float(Jp.abs().max()))
