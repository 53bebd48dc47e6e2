"""The baselines train core.learning.hgn's HGN, the network RF-HGN samples,
through autograd (the training loss), and evaluate it through the analytic
gradients every learned model uses (core.learning.learned.NetworkHamiltonian).
With the standardisation buffers the baselines set (non-identity
``<layer>_mu``, ``<layer>_s``) both must give the same H and gradients, the
raw weights must come back out, and a TrainedHGN holding an RF fit's network
must be that RF model, in float64."""
import copy

import numpy as np
import pytest
import torch

from core.errors import HGNError
from core.learning.baselines import BaselineConfig
from core.learning.baselines.model import TrainedHGN
from core.learning.baselines.training import _Data, _loss, load_raw
from core.learning.hgn.graph import Graph
from core.learning.hgn.network import HGN
from core.learning.rfhgn import RFConfig, fit
from core.learning.rfhgn.sampling import choose_points, sample_network
from core.physics import builders
from core.physics.datagen import random_snapshots

TOL = 1e-10


def _sampled(system, encoding, static=0, n=5, seed=0, **options):
    """Snapshots, a sampled HGN (identity buffers) and a random theta."""
    ds = random_snapshots(system, n, displacement=0.05, momentum=0.2, seed=seed)
    cfg = RFConfig(encoding=encoding, static_width=static, node_width=7, edge_width=6, message_width=9, **options)
    rng = np.random.default_rng(seed)
    net = sample_network(cfg, choose_points([(system, ds.q, ds.p)], cfg, rng), rng)
    net.set_theta(rng.standard_normal(net.L))
    return ds, net


def _standardised(net, seed=1):
    """The same function as ``net`` with non-identity standardisation buffers
    (as a baseline holds them): the weights re-expressed for (x - mu) / s."""
    rng = np.random.default_rng(seed)
    out = copy.deepcopy(net)
    n_buffers = 0
    with torch.no_grad():
        for name in out.layer_names:
            mu = getattr(out, f"{name}_mu", None)
            if mu is not None:
                k = mu.shape[0]
                mu.copy_(torch.as_tensor(rng.uniform(-1, 1, k)))
                getattr(out, f"{name}_s").copy_(torch.as_tensor(rng.uniform(0.5, 3.0, k)))
                n_buffers += 1
    load_raw(out, net.to_arrays())
    assert n_buffers >= 2
    return out


def _autograd(net, graph, q, p):
    qt = torch.tensor(q, requires_grad=True)
    pt = torch.tensor(p, requires_grad=True)
    H = net(graph, qt, pt)
    gq, gp = torch.autograd.grad(H.sum(), (qt, pt), allow_unused=True)
    zero = torch.zeros_like(qt)
    return H.detach().numpy(), (zero if gq is None else gq).numpy(), (zero if gp is None else gp).numpy()


def _close(a, b, tol=TOL):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    assert np.max(np.abs(a - b), initial=0.0) <= tol * max(1.0, float(np.abs(b).max(initial=0.0)))


def _check(system, ds, net):
    std = _standardised(net)
    g = Graph.build(system, ds.q)
    # the standardised network is the same function (the buffers are folded into the raw weights)
    for k, v in net.to_arrays().items():
        _close(std.to_arrays()[k], v, 1e-12)
    H0, gq0, gp0 = _autograd(net, g, ds.q, ds.p)
    H, gq, gp = _autograd(std, g, ds.q, ds.p)
    _close(H, H0)
    _close(gq, gq0)
    _close(gp, gp0)
    # analytic gradients (evaluation) == autograd (training loss), with the buffers
    Ha, gqa, gpa = std.gradients(g, torch.tensor(ds.q), torch.tensor(ds.p))
    _close(Ha.numpy(), H)
    _close(gqa.numpy(), gq)
    _close(gpa.numpy(), gp)
    # and the model evaluation path (numpy in/out) gives the same
    model = TrainedHGN(BaselineConfig(encoding=net.encoding), std, 0.0, system.n, system)
    mq, mp = model.gradients(system, ds.q, ds.p)
    _close(mq, gq)
    _close(mp, gp)
    _close(model.energy(system, ds.q, ds.p), H)


def test_invariant_network_analytic_gradients_equal_autograd_on_every_system(any_system):
    ds, net = _sampled(any_system, "invariant")
    _check(any_system, ds, net)


def test_frame_network_analytic_gradients_equal_autograd_on_every_free_system(free_system):
    ds, net = _sampled(free_system, "frame")
    _check(free_system, ds, net)


def test_static_mass_encoder_with_unequal_masses():
    s = builders.molecular(40, density=0.6, dim=2, cutoff=2.0, jitter=0.1, seed=2)
    s = s.copy(masses=np.linspace(1.0, 3.0, s.n))
    ds, net = _sampled(s, "invariant", static=4)
    assert net.widths["static"] == 4
    _check(s, ds, net)


def test_without_edge_pooling():
    s = builders.square_lattice(3, 3)
    for enc in ("invariant", "frame"):
        ds, net = _sampled(s, enc, pool_edges=False)
        _check(s, ds, net)


def test_loss_gradient_wrt_the_weights_equals_finite_differences():
    """The training loss differentiates dH/dq, dH/dp (autograd, create_graph)
    once more with respect to the weights: check that against central
    differences of the loss itself, through a standardising buffer."""
    s = builders.square_lattice(3, 3)
    ds, net = _sampled(s, "invariant", n=4)
    net = _standardised(net)
    g = Graph.build(s, ds.q)
    data = _Data(ds.q, ds.p, ds.dqdt, ds.dpdt, g)
    for prm in net.parameters():
        prm.requires_grad_(True)
    loss = _loss(net, data, None, True)
    grads = dict(zip([n for n, _ in net.named_parameters()],
                     torch.autograd.grad(loss, list(net.parameters()), allow_unused=True)))
    h = 1e-4
    for name, index in [("edge_W", (2, 0)), ("msg_W", (3, 1)), ("kin_b", (1,)), ("theta", (4,)), ("edge_b", (0,))]:
        prm = getattr(net, name)
        with torch.no_grad():
            prm[index] += h
            up = float(_loss(net, data, None, False))
            prm[index] -= 2 * h
            down = float(_loss(net, data, None, False))
            prm[index] += h
        fd = (up - down) / (2 * h)
        assert float(grads[name][index]) == pytest.approx(fd, rel=1e-6, abs=1e-9), name


def test_minibatch_graphs_cut_from_the_training_graph_give_the_same_loss():
    """Graph.select (minibatches) gives the loss of a graph built for those
    snapshots alone, for fixed graphs and for cutoff systems."""
    for s in (builders.square_lattice(3, 3), builders.molecular(27, density=0.8, dim=3, cutoff=1.6, jitter=0.1)):
        ds, net = _sampled(s, "invariant", n=6)
        data = _Data(ds.q, ds.p, ds.dqdt, ds.dpdt, Graph.build(s, ds.q))
        idx = np.array([4, 1, 3])
        alone = _Data(ds.q[idx], ds.p[idx], ds.dqdt[idx], ds.dpdt[idx], Graph.build(s, ds.q[idx]))
        a = float(_loss(net, data, idx, False))
        b = float(_loss(net, alone, None, False))
        assert a == pytest.approx(b, rel=1e-13)
        assert float(_loss(net, data, np.arange(6), False)) == pytest.approx(float(_loss(net, data, None, False)),
                                                                          rel=1e-13)


def test_trained_model_reproduces_a_fitted_rf_model_and_its_rf_form():
    """A TrainedHGN holding an RF fit's network is the same model: energies
    (constant included) and time derivatives agree with the FittedModel;
    with standardisation buffers it still does, and ``to_rf_model`` gives
    the same function back as a FittedModel."""
    s = builders.cubic_lattice(2, 2, 2)
    ds = random_snapshots(s, 40, seed=0, test_fraction=0.25)
    rf = fit(ds, RFConfig(node_width=8, edge_width=8, message_width=16, fast_tables=False))
    net = _standardised(rf.network)
    model = TrainedHGN(BaselineConfig.from_rf(rf.config), net, rf.constant, rf.n_ref, s)
    q, p = ds.q[ds.test], ds.p[ds.test]
    e_rf, e_bl = rf.energy(s, q, p), model.energy(s, q, p, exact=True)
    _close(e_bl, e_rf)
    for a, b in zip(rf.time_derivatives(s, q, p, exact=True), model.time_derivatives(s, q, p, exact=True)):
        assert np.max(np.abs(a - b)) <= TOL * max(1e-3, np.abs(a).max())
    # the constant scales to other sizes the same way (extensive energies)
    big = builders.cubic_lattice(3, 4, 2)
    qb = big.positions + 0.05 * np.random.default_rng(0).standard_normal(big.positions.shape)
    pb = 0.1 * np.random.default_rng(1).standard_normal(big.positions.shape)
    assert float(model.energy(big, qb, pb)) == pytest.approx(float(rf.energy(big, qb, pb, exact=True)), rel=1e-10)
    # single states have the single-state shapes
    assert model.energy(s, q[0], p[0]).shape == ()
    assert model.gradients(s, q[0], p[0])[0].shape == (s.n, 3)
    # and back to an RF FittedModel (raw weights, identity buffers)
    back = model.to_rf_model()
    assert type(back).__name__ == "FittedModel" and back is not rf
    for name in back.network.layer_names:
        if hasattr(back.network, f"{name}_mu"):
            assert not getattr(back.network, f"{name}_mu").any()
            assert bool((getattr(back.network, f"{name}_s") == 1).all())
    _close(back.energy(s, q, p, exact=True), e_rf, 1e-12)
    for a, b in zip(back.gradients(s, q, p, exact=True), model.gradients(s, q, p, exact=True)):
        _close(a, b, 1e-12)


def test_separable_parts_add_up_to_the_whole():
    s = builders.square_lattice(3, 3, potential="morse")
    ds, net = _sampled(s, "invariant")
    model = TrainedHGN(BaselineConfig(), _standardised(net), 0.5, s.n, s)
    q, p = ds.q, ds.p
    assert np.allclose(model.kinetic_energy(s, p) + model.potential_energy(s, q) + 0.5, model.energy(s, q, p),
                       rtol=1e-12, atol=1e-12)
    gq, gp = model.gradients(s, q, p)
    assert np.allclose(model.potential_gradient(s, q), gq, rtol=0, atol=1e-12)
    assert np.allclose(model.kinetic_gradient(s, p), gp, rtol=0, atol=1e-12)


def test_wrapper_rejects_wrong_shapes_dimensions_and_networks():
    s = builders.square_lattice(2, 3)
    ds, net = _sampled(s, "invariant")
    model = TrainedHGN(BaselineConfig(), net, 0.0, s.n, s)
    with pytest.raises(HGNError, match="shape"):
        model.energy(s, np.zeros((s.n + 1, 2)), np.zeros((s.n + 1, 2)))
    with pytest.raises(HGNError, match="2D"):
        c = builders.cubic_lattice(2, 2, 2)
        model.energy(c, c.positions, np.zeros_like(c.positions))
    frame = TrainedHGN(BaselineConfig(encoding="frame"), _sampled(s, "frame")[1], 0.0, s.n, s)
    with pytest.raises(HGNError, match="separable"):
        frame.potential_gradient(s, s.positions)
    with pytest.raises(HGNError, match="HGN"):
        TrainedHGN(BaselineConfig(), object(), 0.0, s.n, s)
    assert isinstance(model.network, HGN) and model.network.dtype == torch.float64
