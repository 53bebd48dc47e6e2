"""A trained baseline behaves like an RF-HGN FittedModel for core.learning.rollout and
core.learning.metrics, survives a save/load round trip bit for bit, and model
files written by the first torch baselines keep loading with the same values."""
from pathlib import Path

import numpy as np
import pytest

from core.physics import builders
from core.learning.baselines import BaselineConfig, TrainedHGN, fit, load_model
from core.physics.datagen import random_snapshots
from core.errors import HGNError
from core.learning.metrics import derivative_mse, rollout_measures
from core.learning.rollout import RolloutExtrapolationWarning, compare

SMALL = dict(node_width=8, edge_width=8, message_width=16, time_budget=0, threads=1, max_epochs=30,
             batch_size=8)


@pytest.fixture(scope="module")
def trained():
    s = builders.square_lattice(3, 3)
    ds = random_snapshots(s, 50, seed=0, test_fraction=0.2)
    return ds, fit(ds, BaselineConfig(optimizer="adam", **SMALL))


@pytest.fixture(scope="module")
def trained_frame():
    s = builders.chain(4, dim=2)
    ds = random_snapshots(s, 30, seed=0, test_fraction=0.2)
    return ds, fit(ds, BaselineConfig(optimizer="adam", encoding="frame", **SMALL))


def test_save_load_round_trip(trained, tmp_path):
    ds, m = trained
    path = m.save(tmp_path / "adam.npz")
    back = TrainedHGN.load(path)
    q, p = ds.q[ds.test], ds.p[ds.test]
    assert np.array_equal(back.energy(ds.system, q, p), m.energy(ds.system, q, p))
    for a, b in zip(back.gradients(ds.system, q, p), m.gradients(ds.system, q, p)):
        assert np.array_equal(a, b)
    assert back.config == m.config
    assert back.info["loss_history"] == pytest.approx(m.info["loss_history"], rel=0, abs=0)
    assert back.info["optimizer"] == "adam"
    assert back.separable and back.train_system.n == ds.system.n
    assert isinstance(load_model(path), TrainedHGN)


def test_load_model_opens_rf_models_too(trained, tmp_path):
    from core.learning.rfhgn import RFConfig
    from core.learning.rfhgn import fit as rf_fit
    from core.learning.rfhgn.model import FittedModel

    ds, _ = trained
    rf = rf_fit(ds, RFConfig(node_width=8, edge_width=8, message_width=16))
    path = rf.save(tmp_path / "rf.npz")
    assert isinstance(load_model(path), FittedModel)
    from core.files.io import save_system

    other = save_system(tmp_path / "sys.npz", ds.system)
    with pytest.raises(HGNError, match="not a model"):
        load_model(other)
    with pytest.raises(HGNError):
        TrainedHGN.load(path)  # an RF model file is not a baseline file


def test_metrics_and_rollout_work_unchanged(trained):
    ds, m = trained
    mse = derivative_mse(m, ds)
    assert np.isfinite(mse) and mse < m.info["loss_history"][0]
    s = ds.system
    q0, p0 = ds.q[ds.test[0]], ds.p[ds.test[0]]
    # the training range is known (info["train_r_max"]) and checked as for an RF-HGN: this test
    # start already has a pair beyond the training snapshots' largest distance
    with pytest.warns(RolloutExtrapolationWarning, match="beyond the largest in the training data"):
        truth, pred = compare(m, s, q0, p0, dt=0.01, steps=40, save_every=10)
    assert pred.meta["integrator"] == "stoermer-verlet"  # separable: explicit
    res = rollout_measures(truth, pred)
    assert np.isfinite(res["final_zerr"]) and res["final_zerr"] < 0.5
    assert pred.label.startswith("HGN (Adam")


def test_roll_outs_use_the_tables_unless_fast_tables_is_off(trained):
    """Like an RF-HGN, a baseline rolls out (and evaluates) through the
    stepper's checked tables by default, through the exact network with
    fast_tables off; either way a roll-out cut into chunks, as the studio runs
    it, equals one run bit for bit (the table ranges come from the model's
    training ranges, not from the first state)."""
    import warnings

    from core.learning.rollout import rollout

    ds, m = trained
    s = ds.system
    q0, p0 = ds.q[ds.train[0]], ds.p[ds.train[0]]
    assert m.config.fast_tables is True and BaselineConfig().fast_tables is True
    exact = TrainedHGN(m.config.replace(fast_tables=False), m.network, m.constant, m.n_ref, m.train_system, m.info)
    runs = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RolloutExtrapolationWarning)
        for name, model in (("tables", m), ("exact", exact)):
            whole = rollout(model, s, q0, p0, 0.01, 24, save_every=3)
            first = rollout(model, s, q0, p0, 0.01, 9, save_every=3)
            rest = rollout(model, s, first.q[-1], first.p[-1], 0.01, 15, save_every=3)
            assert np.array_equal(np.concatenate([first.q, rest.q[1:]]), whole.q), name
            assert np.array_equal(np.concatenate([first.p, rest.p[1:]]), whole.p), name
            runs[name] = whole
    assert runs["tables"].meta["tables"] and not runs["exact"].meta["tables"]
    assert np.allclose(runs["tables"].q, runs["exact"].q, rtol=0, atol=1e-9)
    assert not np.array_equal(runs["tables"].q, runs["exact"].q)  # the tables really were used
    # the numpy methods too: tables by default, exact=True or fast_tables off for the exact network
    q, p = ds.q[ds.test], ds.p[ds.test]
    a, b = m.gradients(s, q, p), exact.gradients(s, q, p)
    for x, y, z in zip(a, b, m.gradients(s, q, p, exact=True)):
        assert np.array_equal(y, z) and not np.array_equal(x, y)
        assert np.max(np.abs(x - y)) < 1e-9 * np.abs(y).max()
    assert m.to_rf_model().config.fast_tables is True and exact.to_rf_model().config.fast_tables is False


def test_frame_model_rolls_out_with_the_implicit_integrator(trained_frame, tmp_path):
    ds, m = trained_frame
    assert not m.separable
    s = ds.system
    truth, pred = compare(m, s, ds.q[0], ds.p[0], dt=0.01, steps=10, save_every=5)
    assert pred.meta["integrator"] == "generalised-leapfrog"
    assert np.all(np.isfinite(pred.q))
    back = TrainedHGN.load(m.save(tmp_path / "frame.npz"))
    assert np.array_equal(back.energy(s, ds.q[:3], ds.p[:3]), m.energy(s, ds.q[:3], ds.p[:3]))


def test_extensive_model_applies_to_a_larger_system(trained):
    ds, m = trained
    big = builders.square_lattice(6, 6)
    q = big.positions + 0.05 * np.random.default_rng(0).standard_normal(big.positions.shape)
    p = 0.1 * np.random.default_rng(1).standard_normal(big.positions.shape)
    gq, gp = m.gradients(big, q, p)
    assert gq.shape == (36, 2) and np.all(np.isfinite(gq))
    # a translation leaves every gradient unchanged (invariant inputs)
    gq2, _ = m.gradients(big, q + np.array([3.0, -1.0]), p)
    assert np.allclose(gq, gq2, atol=1e-12)


DATA = Path(__file__).resolve().parents[2] / "data"


def test_legacy_baseline_file_gives_its_recorded_values():
    """tests/data/legacy_baseline_adam.npz was written by the first torch
    baselines (b00e48d, their own network evaluated by autograd); the HGN
    evaluated analytically gives the energies and gradients recorded then."""
    import sys

    sys.path.insert(0, str(DATA))
    try:
        from make_legacy_models import states
    finally:
        sys.path.remove(str(DATA))
    system, q, p = states()
    model = load_model(DATA / "legacy_baseline_adam.npz")
    assert isinstance(model, TrainedHGN) and model.separable
    assert model.config.optimizer == "adam" and model.config.device == "cpu"  # no device in the old file
    assert model.network.frame_rule == "farthest"
    expected = np.load(DATA / "legacy_expected.npz")
    gq, gp = model.gradients(system, q, p, exact=True)  # the exact network (fast_tables is on by default)
    for name, got in (("energy", model.energy(system, q, p, exact=True)), ("dHdq", gq), ("dHdp", gp)):
        want = expected[f"baseline_adam.{name}"]
        assert got.shape == want.shape
        assert np.max(np.abs(got - want)) <= 1e-13 * max(1.0, np.abs(want).max()), name


def test_file_holds_the_network_state_under_its_names(trained, tmp_path):
    from core.container import load_npz

    _, m = trained
    _, arrays = load_npz(m.save(tmp_path / "m.npz"))
    names = {k.split(".", 1)[1] for k in arrays if k.startswith("state.")}
    layers = ("kin", "static", "edge", "msg")
    assert names == ({f"{n}_{x}" for n in layers for x in "Wb"} | {"theta"}
                     | {f"{n}_{x}" for n in ("kin", "static", "edge") for x in ("mu", "s")})
    assert all(arrays[f"state.{k}"].dtype == np.float64 for k in names)
    # the standardisation buffers are the training inputs' (not the identity)
    assert not np.array_equal(arrays["state.edge_s"], np.ones(1))


def test_a_saved_model_loads_bit_for_bit_after_a_second_round_trip(trained_frame, tmp_path):
    ds, m = trained_frame
    a = TrainedHGN.load(m.save(tmp_path / "a.npz"))
    b = TrainedHGN.load(a.save(tmp_path / "b.npz"))
    for k, v in m.network.state_dict().items():
        assert np.array_equal(b.network.state_dict()[k].numpy(), v.cpu().numpy()), k
    q, p = ds.q[:4], ds.p[:4]
    for x, y in zip(b.gradients(ds.system, q, p), m.gradients(ds.system, q, p)):
        assert np.array_equal(x, y)
