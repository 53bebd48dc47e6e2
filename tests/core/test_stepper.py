"""The roll-out stepper (core.learning.stepper): gradients against the exact
network and the true Hamiltonian, tables never used outside their range,
cutoff systems with neighbour-list rebuilds, periodic boxes, edge scales, mass
classes, float32 against float64, and roll-outs against the NumPy reference
roll-outs of tests/data/numpy_reference.npz (commit b00e48d)."""
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from core.container import save_npz
from core.errors import HGNError
from core.learning.rfhgn import FittedModel, RFConfig, TrueHamiltonian, fit
from core.learning.rollout import RolloutExtrapolationWarning, learned_energy, rollout
from core.learning.stepper import (FLOAT32_BOUND, TABLE_TOLERANCE, HermiteTable, ModelStepper, TableStepper,
                                   make_stepper)
from core.physics import builders
from core.physics.datagen import random_snapshots
from core.physics.initial import initial_state

DATA = Path(__file__).resolve().parents[1] / "data"
sys.path.insert(0, str(DATA))
from make_numpy_reference import CASES, DT, make_case  # noqa: E402

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)")


def _rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _grads(st, q, p):
    gq = st.potential(st.tensor(q)).cpu().double().numpy()
    gp = st.kinetic(st.tensor(p)).cpu().double().numpy()
    return gq, gp


@pytest.fixture(scope="module")
def lattice_model():
    s = builders.cubic_lattice(3, 3, 3)
    return s, fit(random_snapshots(s, 300, 0.1, 0.1, seed=0), RFConfig())


def _state(s, sd=0.1, seed=1):
    rng = np.random.default_rng(seed)
    return s.positions + sd * rng.standard_normal(s.positions.shape), sd * rng.standard_normal(s.positions.shape)


# ---------------------------------------------------------------------------
# gradients against the exact network
# ---------------------------------------------------------------------------
def test_table_stepper_equals_the_exact_network_on_a_fixed_graph(lattice_model):
    s, m = lattice_model
    st = make_stepper(m, s)
    assert isinstance(st, TableStepper) and st.pair_table is not None and st.pair_table.error < TABLE_TOLERANCE
    for seed in range(3):
        q, p = _state(s, seed=seed)
        gq, gp = m.gradients(s, q, p, exact=True)
        a, b = _grads(st, q, p)
        # the table's midpoint tolerance is 1e-10 of max|f'|; the gradients sum a few pairs
        assert _rel(a, gq) < 1e-9 and _rel(b, gp) < 1e-9
        assert st.energy(q, p) == pytest.approx(float(m.energy(s, q, p, exact=True)), rel=1e-10, abs=1e-10)
    # the exact path (no tables) equals the network to round-off
    ex = make_stepper(m, s, exact=True)
    assert ex.pair_table is None and ex.kin_table is None
    q, p = _state(s, seed=7)
    gq, gp = m.gradients(s, q, p, exact=True)
    a, b = _grads(ex, q, p)
    assert _rel(a, gq) < 1e-13 and _rel(b, gp) < 1e-13


def test_zero_shot_on_a_larger_periodic_graph_with_edge_scales(lattice_model):
    _, m = lattice_model
    # a 4x4x4 lattice closed periodically (minimum image), each edge with its own strength
    base = builders.cubic_lattice(4, 4, 4)
    from core.physics.builders import _grid_edges

    edges = _grid_edges((4, 4, 4), [(1, 0, 0), (0, 1, 0), (0, 0, 1)], periodic=True)
    scale = np.random.default_rng(0).uniform(0.5, 2.0, len(edges))
    s = builders.custom(3, base.positions, edges, box=[4.0, 4.0, 4.0], edge_scale=scale)
    q, p = _state(s, seed=2)
    q[:5] += 4.0  # unwrapped positions: the minimum image applies
    st = make_stepper(m, s)
    gq, gp = m.gradients(s, q, p, exact=True)
    a, b = _grads(st, q, p)
    assert _rel(a, gq) < 1e-9 and _rel(b, gp) < 1e-9
    assert st.energy(q, p) == pytest.approx(float(m.energy(s, q, p, exact=True)), rel=1e-10)
    for scatter in ("index_add", "csr"):
        a2, _ = _grads(make_stepper(m, s, scatter=scatter), q, p)
        assert _rel(a2, a) < 1e-13


def test_mass_classes_each_get_their_table():
    s0 = builders.square_lattice(4, 4, potential="morse")
    masses = np.where(np.arange(s0.n) % 4 < 2, 2.0, 1.0)  # bonds light-light, light-heavy and heavy-heavy
    s = s0.copy(masses=masses)
    m = fit(random_snapshots(s, 200, 0.05, 0.1, seed=0), RFConfig(static_width=4))
    st = make_stepper(m, s)
    assert len(st.classes) == 3 and st.pair_table is not None and st.pair_table.C == 3
    q, p = _state(s, 0.05, seed=3)
    gq, gp = m.gradients(s, q, p, exact=True)
    a, b = _grads(st, q, p)
    assert _rel(a, gq) < 1e-9 and _rel(b, gp) < 1e-9


def test_cutoff_system_with_neighbour_list_rebuilds():
    s = builders.molecular(64, density=0.8, dim=3, cutoff=2.0)
    m = fit(random_snapshots(s, 100, 0.02, 0.1, seed=0), RFConfig())
    st = make_stepper(m, s)
    q, p = _state(s, 0.02, seed=1)
    for k in range(4):  # move by more than skin/2 each time: the candidate pairs are rebuilt
        qk = q + 0.2 * k * np.random.default_rng(k).standard_normal(q.shape) * 0.5
        gq, gp = m.gradients(s, qk, p, exact=True)
        a, b = _grads(st, qk, p)
        # 1e-10 of max |f'| over [0, cutoff] (steep at short range) per pair: measured 1.3e-9 of max |dV/dq|
        assert _rel(a, gq) < 1e-8 and _rel(b, gp) < 1e-9
    assert st.nlist.n_builds >= 3


def test_tables_are_never_used_outside_their_range(lattice_model):
    s, m = lattice_model
    st = make_stepper(m, s)
    hi = st.pair_table.hi
    q, p = _state(s, seed=4)
    q[0] = q[1] + np.array([1.5 * hi, 0.0, 0.0])  # one bond far beyond the table
    p[3] *= 40.0  # one particle far beyond the kinetic table
    gq, gp = m.gradients(s, q, p, exact=True)
    before = st.range_fallbacks
    a, b = _grads(st, q, p)
    assert st.range_fallbacks > before
    assert _rel(a, gq) < 1e-9 and _rel(b, gp) < 1e-9


def test_hermite_table_refines_and_refuses_what_it_cannot_tabulate():
    smooth = HermiteTable([lambda x: (np.sin(x), np.cos(x), -np.sin(x))], 0.0, 3.0)
    assert smooth.ok and smooth.error < TABLE_TOLERANCE
    k = 4000.0  # a near step: beyond the knot limit
    with np.errstate(over="ignore"):
            sharp = HermiteTable([lambda x: (np.tanh(k * (x - 1)), k / np.cosh(k * (x - 1)) ** 2,
                                         -2 * k * k * np.tanh(k * (x - 1)) / np.cosh(k * (x - 1)) ** 2)], 0.0, 3.0)
    assert not sharp.ok


def test_true_hamiltonian_goes_through_its_own_methods():
    s = builders.molecular(125, density=0.8, dim=3, cutoff=2.5)
    t = TrueHamiltonian(s)
    st = make_stepper(t, s)
    assert isinstance(st, ModelStepper)
    q, p = _state(s, 0.02, seed=5)
    gq, gp = t.gradients(s, q, p)
    a, b = _grads(st, q, p)
    assert _rel(a, gq) < 1e-13 and _rel(b, gp) < 1e-15
    with pytest.raises(HGNError, match="float32"):
        make_stepper(t, s, dtype=torch.float32)
    with pytest.raises(HGNError, match="precision"):
        make_stepper(t, s, dtype="float16")


def test_cuda_absent_is_a_clear_error(lattice_model):
    s, m = lattice_model
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(HGNError, match="CUDA was asked for"):
        make_stepper(m, s, device="cuda")


# ---------------------------------------------------------------------------
# roll-outs
# ---------------------------------------------------------------------------
def _reference_model(name, tmp_path):
    """The reference case's fitted weights (numpy_reference.npz) as a model
    file, loaded by the current code: the roll-out is then checked alone."""
    system, train, _, config, steps = make_case(name)
    ref = np.load(DATA / "numpy_reference.npz")
    arrays = {k.split(".", 1)[1]: ref[k] for k in ref.files if k.startswith(name + ".") and k.endswith(("_W", "_b"))}
    arrays["theta"] = ref[f"{name}.theta"]
    arrays["constant"] = ref[f"{name}.constant"]
    r = np.linalg.norm(train.q[:, system.edges[:, 0]] - train.q[:, system.edges[:, 1]], axis=-1) \
        if system.edges is not None else None
    info = {} if r is None else {"train_r_max": float(r.max()), "train_r_min": float(r.min())}
    header = {"config": config.to_dict(), "encoding": config.encoding, "dim": system.dim,
              "constant": float(ref[f"{name}.constant"][0]), "n_ref": system.n, "e_ref": None, "info": info}
    path = save_npz(tmp_path / f"{name}.npz", "model", header, arrays)
    return system, FittedModel.load(path), steps, ref[f"{name}.rollout_q"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_rollout_equals_the_numpy_reference_rollout(name, tmp_path):
    system, model, steps, ref_q = _reference_model(name, tmp_path)
    _, _, test, _, _ = make_case(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RolloutExtrapolationWarning)
        traj = rollout(model, system, test.q[0], test.p[0], DT, steps, save_every=steps // 10, learned_energy=False)
    # to round-off: measured 2.8e-16 - 8.3e-16 on the lattices, 2.8e-15 on Lennard-Jones (chaotic), 7.1e-15 for
    # the frame model (the network stepper; bit for bit the model's numpy path, see
    # test_frame_network_stepper_equals_the_numpy_path): the tables (new and old) are within 1e-10 of max |f'|
    # at their midpoints and far closer at the pair distances of these runs
    tol = 1e-11 if name.startswith("lj") else 1e-12
    print(f"{name}: roll-out positions against the reference: {_rel(traj.q, ref_q):.2e} relative")
    assert _rel(traj.q, ref_q) < tol, _rel(traj.q, ref_q)
    assert traj.meta["stepper"] == ("network" if model.network.encoding == "frame" else "tables")
    assert traj.meta["device"] == "cpu" and traj.meta["precision"] == "float64"


def test_learned_energy_is_conserved(lattice_model):
    s, m = lattice_model
    q0, p0 = initial_state(s, 0.1, 0.1, seed=3)
    tr = rollout(m, s, q0, p0, 0.01, 2000, 20)
    h = learned_energy(tr)
    assert np.ptp(h) < 1e-3 * abs(h[0] - float(m.energy(s, s.positions, 0 * p0))), np.ptp(h)
    # no trend: the second half oscillates about the same level as the first
    assert abs(h[len(h) // 2:].mean() - h[:len(h) // 2].mean()) < 0.5 * np.ptp(h) + 1e-15


@pytest.mark.parametrize("n", [3, 12])
def test_float32_rollout_stays_within_the_stated_bound(lattice_model, n):
    _, m = lattice_model
    s = builders.cubic_lattice(n, n, n)
    q0, p0 = initial_state(s, 0.1, 0.1, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RolloutExtrapolationWarning)
        a = rollout(m, s, q0, p0, 0.01, 1000, 1000, learned_energy=False)
        b = rollout(m, s, q0, p0, 0.01, 1000, 1000, learned_energy=False, precision="float32")
    err = float(np.abs(a.q[-1] - b.q[-1]).max())
    assert err < FLOAT32_BOUND, err
    assert err > 0  # it really ran in float32
    assert b.meta["precision"] == "float32"


@CUDA
def test_cuda_and_cpu_agree(lattice_model):
    s, m = lattice_model
    q, p = _state(s, seed=6)
    a, b = _grads(make_stepper(m, s), q, p)
    for scatter in ("index_add", "csr"):
        c, d = _grads(make_stepper(m, s, device="cuda", scatter=scatter), q, p)
        assert _rel(c, a) < 1e-12 and _rel(d, b) < 1e-12
    q0, p0 = initial_state(s, 0.1, 0.1, seed=3)
    x = rollout(m, s, q0, p0, 0.01, 200, 50)
    y = rollout(m, s, q0, p0, 0.01, 200, 50, device="cuda")
    assert _rel(y.q, x.q) < 1e-10 and y.meta["device"].startswith("cuda")
    z = rollout(m, s, q0, p0, 0.01, 200, 50, device="cuda", precision="float32")
    assert np.abs(z.q - x.q).max() < FLOAT32_BOUND


@CUDA
def test_cuda_cutoff_system_agrees_with_the_cpu():
    s = builders.molecular(64, density=0.8, dim=3, cutoff=2.0)
    m = fit(random_snapshots(s, 100, 0.02, 0.1, seed=0), RFConfig())
    q0, p0 = initial_state(s, 0.02, 0.1, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RolloutExtrapolationWarning)
        x = rollout(m, s, q0, p0, 0.005, 100, 50)
        y = rollout(m, s, q0, p0, 0.005, 100, 50, device="cuda")
    assert _rel(y.q, x.q) < 1e-9


# ---------------------------------------------------------------------------
# command line: python -m core rollout --device / --precision
# ---------------------------------------------------------------------------
def test_cli_rollout_device_and_precision(lattice_model, tmp_path, capsys):
    from core.cli.app import main

    s, m = lattice_model
    path = m.save(tmp_path / "m.npz")
    out = tmp_path / "r.npz"
    base = ["rollout", "--model", str(path), "--steps", "40", "--save-every", "20", "--quiet", "--out", str(out)]
    assert main(base + ["--precision", "float32", "--threads", "2", "--json", str(tmp_path / "r.json")]) == 0
    import json

    assert json.loads((tmp_path / "r.json").read_text())  # measures written
    from core.files.io import load_trajectories

    pred = load_trajectories(out)[-1]
    assert pred.meta["precision"] == "float32" and pred.meta["device"] == "cpu" and pred.meta["threads"] == 2
    capsys.readouterr()
    assert main(base + ["--threads", "-1"]) != 0
    assert "threads" in capsys.readouterr().err
    if not torch.cuda.is_available():
        capsys.readouterr()
        assert main(base + ["--device", "cuda"]) != 0
        assert "CUDA was asked for" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# one table implementation; ranges from the model, not from a state
# ---------------------------------------------------------------------------
def _chunked_equals_whole(m, s, q0, p0, steps=24, cut=9):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RolloutExtrapolationWarning)
        whole = rollout(m, s, q0, p0, 0.01, steps, save_every=3)
        first = rollout(m, s, q0, p0, 0.01, cut, save_every=3)
        rest = rollout(m, s, first.q[-1], first.p[-1], 0.01, steps - cut, save_every=3, t0=first.t[-1])
    assert whole.meta["tables"] and whole.meta["stepper"] == "tables"
    np.testing.assert_array_equal(np.concatenate([first.q, rest.q[1:]]), whole.q)
    np.testing.assert_array_equal(np.concatenate([first.p, rest.p[1:]]), whole.p)
    return whole


def test_table_ranges_come_from_the_model_and_a_chunked_rollout_equals_one_run(lattice_model):
    from core.learning.stepper import KINETIC_RANGE_FACTOR, TABLE_RANGE_FACTOR

    s, m = lattice_model
    cold = make_stepper(m, s)
    assert cold.pair_table.hi == TABLE_RANGE_FACTOR * m.info["train_r_max"]
    assert cold.kin_table is not None and cold.kin_table.hi == KINETIC_RANGE_FACTOR * m.info["train_k_max"]
    # a stepper that first sees a hot state has the same tables (the old kinetic range was 4 x the first k)
    q, p = _state(s, seed=8)
    hot = make_stepper(m, s)
    hot.prepare(hot.tensor(q), hot.tensor(10 * p))
    assert hot.kin_table.hi == cold.kin_table.hi and hot.pair_table.hi == cold.pair_table.hi
    # from rest (k = 0 at the start: a range taken from the first state was the minimum, 1e-3, and the
    # second chunk's start gave another one)
    q0 = s.positions + 0.1 * np.random.default_rng(4).standard_normal(s.positions.shape)
    whole = _chunked_equals_whole(m, s, q0, np.zeros_like(q0))
    assert whole.meta["range_fallbacks"] == 0


@pytest.fixture(scope="module")
def baseline_model():
    from core.learning.baselines import BaselineConfig
    from core.learning.baselines import fit as train

    s = builders.chain(4, dim=2)
    ds = random_snapshots(s, 50, seed=0, test_fraction=0.2)
    cfg = BaselineConfig(optimizer="adam", node_width=8, edge_width=8, message_width=16, time_budget=0, threads=1,
                         max_epochs=30, batch_size=8, fast_tables=True)
    return ds, train(ds, cfg)


def test_baseline_with_fast_tables_chunked_rollout_equals_one_run(baseline_model):
    ds, m = baseline_model
    s = ds.system
    st = make_stepper(m, s)
    assert isinstance(st, TableStepper) and st.pair_table is not None and st.kin_table is not None
    q0, p0 = ds.q[ds.train[0]], ds.p[ds.train[0]]
    _chunked_equals_whole(m, s, q0, p0)
    _chunked_equals_whole(m, s, q0, np.zeros_like(p0))


def test_model_fast_path_is_the_stepper(lattice_model):
    """FittedModel's fast path (config.fast_tables) reads the stepper's tables:
    the same numbers as a roll-out stepper, batches as single states, within
    the tables' tolerance of the exact network, cached per system."""
    import core.learning.rfhgn.model as model_module

    assert not hasattr(model_module, "PairTable")  # one table implementation
    s, m = lattice_model
    assert m.config.fast_tables
    Q = np.stack([_state(s, seed=k)[0] for k in range(5)])
    P = np.stack([_state(s, seed=k)[1] for k in range(5)])
    st = make_stepper(m, s)
    gq, gp = m.potential_gradient(s, Q), m.kinetic_gradient(s, P)
    for k in range(len(Q)):
        np.testing.assert_array_equal(gq[k], m.potential_gradient(s, Q[k]))
        np.testing.assert_array_equal(gp[k], m.kinetic_gradient(s, P[k]))
        a, b = _grads(st, Q[k], P[k])
        np.testing.assert_array_equal(gq[k], a)
        np.testing.assert_array_equal(gp[k], b)
    assert _rel(gq, m.potential_gradient(s, Q, exact=True)) < 1e-9
    assert _rel(gp, m.kinetic_gradient(s, P, exact=True)) < 1e-9
    e, ex = m.energy(s, Q, P), m.energy(s, Q, P, exact=True)
    assert e.shape == (5,) and np.max(np.abs(e - ex)) < 1e-9 * np.max(np.abs(ex))
    assert np.asarray(m.energy(s, Q[0], P[0])).shape == () and m.energy(s, Q[0], P[0]) == pytest.approx(e[0], rel=1e-13)
    assert np.allclose(m.potential_energy(s, Q), [m.potential_energy(s, x) for x in Q], rtol=1e-13, atol=0)
    # the tables differ from the exact network (they really are used) ...
    assert not np.array_equal(gq, m.potential_gradient(s, Q, exact=True))
    # ... and are built once per system, again when the weights change
    cached = m._steppers[id(s)][2]
    m.potential_gradient(s, Q[0])
    assert m._steppers[id(s)][2] is cached
    import copy

    m2 = copy.deepcopy(m)
    assert "_steppers" not in m2.__dict__
    m2.network.set_theta(2 * m.theta)
    m2.potential_gradient(s, Q[0])
    first = m2._steppers[id(s)][2]
    m2.network.set_theta(m.theta)
    np.testing.assert_array_equal(m2.potential_gradient(s, Q), gq)
    assert m2._steppers[id(s)][2] is not first


def test_frame_network_stepper_equals_the_numpy_path():
    """A frame model rolls out on its graph on the device (NetworkStepper), bit
    for bit what the model's numpy methods gave (ModelStepper)."""
    from core.learning import stepper as stepper_module
    from core.learning.stepper import NetworkStepper

    s = builders.chain(4, dim=2)
    m = fit(random_snapshots(s, 100, 0.1, 0.1, seed=0),
            RFConfig(encoding="frame", node_width=16, edge_width=8, message_width=16))
    st = make_stepper(m, s)
    assert isinstance(st, NetworkStepper)
    q, p = _state(s, seed=2)
    gq, gp = m.gradients(s, q, p)
    a, b = st.both(st.tensor(q), st.tensor(p))
    np.testing.assert_array_equal(a.numpy(), gq)
    np.testing.assert_array_equal(b.numpy(), gp)
    assert st.energy(q, p) == float(m.energy(s, q, p))
    q0, p0 = initial_state(s, 0.1, 0.1, seed=3)
    new = rollout(m, s, q0, p0, 0.01, 30, 10)
    make = stepper_module.make_stepper
    try:
        stepper_module.make_stepper = lambda model, system, device="cpu", dtype=torch.float64, **kw: \
            ModelStepper(model, system, torch.device(device), dtype)
        old = rollout(m, s, q0, p0, 0.01, 30, 10)
    finally:
        stepper_module.make_stepper = make
    assert new.meta["stepper"] == "network" and old.meta["stepper"] == "model"
    np.testing.assert_array_equal(new.q, old.q)
    np.testing.assert_array_equal(new.meta["learned_energy"], old.meta["learned_energy"])
    assert new.meta["gradient_evaluations"] == old.meta["gradient_evaluations"]


@CUDA
def test_cuda_network_stepper_agrees_with_the_cpu():
    s = builders.chain(4, dim=2)
    m = fit(random_snapshots(s, 100, 0.1, 0.1, seed=0),
            RFConfig(encoding="frame", node_width=16, edge_width=8, message_width=16))
    q, p = _state(s, seed=2)
    cpu, gpu = make_stepper(m, s), make_stepper(m, s, device="cuda")
    assert gpu.network.device.type == "cuda" and m.network.device.type == "cpu"  # the model's network stays
    for a, b in zip(cpu.both(cpu.tensor(q), cpu.tensor(p)), gpu.both(gpu.tensor(q), gpu.tensor(p))):
        assert _rel(b.cpu().numpy(), a.numpy()) < 1e-12
    q0, p0 = initial_state(s, 0.1, 0.1, seed=3)
    x = rollout(m, s, q0, p0, 0.01, 30, 10)
    y = rollout(m, s, q0, p0, 0.01, 30, 10, device="cuda")
    assert y.meta["stepper"] == "network" and _rel(y.q, x.q) < 1e-10


def test_model_fast_path_reports_particles_on_top_of_each_other(lattice_model):
    s, m = lattice_model
    q = s.positions.copy()
    q[1] = q[0]  # an edge of length 0
    with pytest.raises(HGNError, match="on top of each other"):
        m.potential_gradient(s, q)
