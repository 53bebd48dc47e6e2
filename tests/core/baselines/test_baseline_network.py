"""The torch network of the baselines is the RF-HGN network: with the same
weights it gives the same H and the same gradients as core.learning.rfhgn's numpy
network (exact analytic chain rule there, autograd here), in float64."""
import numpy as np
import pytest
import torch

from core.physics import builders
from core.learning.baselines.torch_hgn import TorchGraph, TorchHGN
from core.physics.datagen import random_snapshots
from core.learning.rfhgn import RFConfig, fit
from core.learning.rfhgn.sampling import choose_points, sample_network

TOL = 1e-10


def _sampled(system, encoding, static=0, n=5, seed=0):
    ds = random_snapshots(system, n, displacement=0.05, momentum=0.2, seed=seed)
    cfg = RFConfig(encoding=encoding, static_width=static, node_width=7, edge_width=6, message_width=9)
    rng = np.random.default_rng(seed)
    net = sample_network(cfg, choose_points([(system, ds.q, ds.p)], cfg, rng), rng)
    theta = rng.standard_normal(net.L)
    return ds, net, theta


def _norms(module, rng):
    """A non-trivial input normalisation (so the folding is exercised)."""
    out = {}
    for name in module.layer_names:
        if hasattr(module, f"{name}_mu"):
            k = getattr(module, f"{name}_mu").shape[0]
            out[name] = (rng.uniform(-1, 1, k), rng.uniform(0.5, 3.0, k))
    return out


def _compare(system, ds, net, theta, normalise=True):
    rng = np.random.default_rng(1)
    mod = TorchHGN.from_network(net, theta)
    if normalise:
        norms = _norms(mod, rng)
        mod = TorchHGN.from_network(net, theta, norms)
    H, gq, gp = net.evaluate(system, ds.q, ds.p, theta)
    g = TorchGraph.build(system, ds.q, net.encoding)
    q = torch.tensor(ds.q, requires_grad=True)
    p = torch.tensor(ds.p, requires_grad=True)
    Ht, gqt, gpt = mod.derivatives(g, q, p, torch.tensor(system.masses), system.cutoff)
    scale_h = max(1.0, np.abs(H).max())
    assert np.max(np.abs(Ht.detach().numpy() - H)) <= TOL * scale_h
    assert np.max(np.abs(gqt.numpy() - gq)) <= TOL * max(1.0, np.abs(gq).max())
    assert np.max(np.abs(gpt.numpy() - gp)) <= TOL * max(1.0, np.abs(gp).max())
    # the raw weights come back (normalisation folded out again)
    raw = mod.raw_arrays()
    for k, v in net.to_arrays().items():
        assert raw[k].shape == v.shape
        assert np.allclose(raw[k], v, rtol=1e-12, atol=1e-12 * max(1.0, np.abs(v).max(initial=0)))
    assert np.allclose(raw["theta"], theta, rtol=0, atol=0)


def test_invariant_network_matches_rfhgn_on_every_system(any_system):
    ds, net, theta = _sampled(any_system, "invariant")
    _compare(any_system, ds, net, theta)


def test_frame_network_matches_rfhgn_on_every_free_system(free_system):
    ds, net, theta = _sampled(free_system, "frame")
    _compare(free_system, ds, net, theta)


def test_static_mass_encoder_matches_with_unequal_masses():
    s = builders.molecular(40, density=0.6, dim=2, cutoff=2.0, jitter=0.1, seed=2)
    s = s.copy(masses=np.linspace(1.0, 3.0, s.n))
    ds, net, theta = _sampled(s, "invariant", static=4)
    assert net.static.n_out == 4
    _compare(s, ds, net, theta)


def test_without_edge_pooling_and_without_normalisation():
    s = builders.square_lattice(3, 3)
    ds = random_snapshots(s, 4, seed=0)
    for enc in ("invariant", "frame"):
        cfg = RFConfig(encoding=enc, node_width=5, edge_width=4, message_width=6, pool_edges=False)
        rng = np.random.default_rng(0)
        net = sample_network(cfg, choose_points([(s, ds.q, ds.p)], cfg, rng), rng)
        _compare(s, ds, net, rng.standard_normal(net.L), normalise=False)


def test_trained_wrapper_reproduces_a_fitted_rf_model():
    """A TrainedHGN holding an RF fit's weights is the same model: energies
    (constant included) and time derivatives agree with FittedModel."""
    from core.learning.baselines import BaselineConfig
    from core.learning.baselines.model import TrainedHGN

    s = builders.cubic_lattice(2, 2, 2)
    ds = random_snapshots(s, 40, seed=0, test_fraction=0.25)
    rf = fit(ds, RFConfig(node_width=8, edge_width=8, message_width=16, fast_tables=False))
    mod = TorchHGN.from_network(rf.network, rf.theta)
    model = TrainedHGN(BaselineConfig.from_rf(rf.config), mod, rf.constant, rf.n_ref, s)
    q, p = ds.q[ds.test], ds.p[ds.test]
    e_rf, e_bl = rf.energy(s, q, p), model.energy(s, q, p)
    assert np.max(np.abs(e_rf - e_bl)) <= TOL * np.abs(e_rf).max()
    for a, b in zip(rf.time_derivatives(s, q, p, exact=True), model.time_derivatives(s, q, p)):
        assert np.max(np.abs(a - b)) <= TOL * max(1e-3, np.abs(a).max())
    # the constant scales to other sizes the same way (extensive energies)
    big = builders.cubic_lattice(3, 4, 2)
    qb = big.positions + 0.05 * np.random.default_rng(0).standard_normal(big.positions.shape)
    pb = 0.1 * np.random.default_rng(1).standard_normal(big.positions.shape)
    assert float(model.energy(big, qb, pb)) == pytest.approx(float(rf.energy(big, qb, pb, exact=True)), rel=1e-10)
    # single states have the single-state shapes
    assert model.energy(s, q[0], p[0]).shape == ()
    assert model.gradients(s, q[0], p[0])[0].shape == (s.n, 3)
    # and back to an RF FittedModel
    back = model.to_rf_model()
    assert np.allclose(back.energy(s, q, p, exact=True), e_rf, rtol=1e-12, atol=1e-12)


def test_separable_parts_add_up_to_the_whole():
    from core.learning.baselines import BaselineConfig
    from core.learning.baselines.model import TrainedHGN

    s = builders.square_lattice(3, 3, potential="morse")
    ds, net, theta = _sampled(s, "invariant")
    model = TrainedHGN(BaselineConfig(), TorchHGN.from_network(net, theta), 0.5, s.n, s)
    q, p = ds.q, ds.p
    assert np.allclose(model.kinetic_energy(s, p) + model.potential_energy(s, q) + 0.5, model.energy(s, q, p),
                       rtol=1e-12, atol=1e-12)
    gq, gp = model.gradients(s, q, p)
    assert np.allclose(model.potential_gradient(s, q), gq, rtol=0, atol=1e-12)
    assert np.allclose(model.kinetic_gradient(s, p), gp, rtol=0, atol=1e-12)


def test_wrapper_rejects_wrong_shapes_and_dimensions():
    from core.learning.baselines import BaselineConfig
    from core.learning.baselines.model import TrainedHGN
    from core.errors import HGNError

    s = builders.square_lattice(2, 3)
    ds, net, theta = _sampled(s, "invariant")
    model = TrainedHGN(BaselineConfig(), TorchHGN.from_network(net, theta), 0.0, s.n, s)
    with pytest.raises(HGNError, match="shape"):
        model.energy(s, np.zeros((s.n + 1, 2)), np.zeros((s.n + 1, 2)))
    with pytest.raises(HGNError, match="2D"):
        c = builders.cubic_lattice(2, 2, 2)
        model.energy(c, c.positions, np.zeros_like(c.positions))
    frame = TrainedHGN(BaselineConfig(encoding="frame"), TorchHGN.from_network(*_sampled(s, "frame")[1:]), 0.0, s.n, s)
    with pytest.raises(HGNError, match="separable"):
        frame.potential_gradient(s, s.positions)
