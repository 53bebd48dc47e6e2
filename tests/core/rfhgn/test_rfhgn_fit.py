"""The RF-HGN fit: recovery of a Hamiltonian of its own family, accuracy on a
harmonic lattice, cutoff systems, invariance, time series, zero-shot size
transfer, fast tables, save/load, reproducibility, progress and cancel."""
import threading

import numpy as np
import pytest
import torch

from core.physics import builders
from core.physics.datagen import random_snapshots
from core.errors import Cancelled, HGNError
from core.physics.forces import derivatives
from core.physics.initial import initial_state
from core.learning.rfhgn import FittedModel, RFConfig, TrueHamiltonian, fit, fit_time_series
from core.physics.simulate import simulate
from core.physics.trajectory import Dataset

SMALL = dict(node_width=8, edge_width=12, message_width=8)


def _mse(model, system, data):
    a, b = model.time_derivatives(system, data.q, data.p)
    return float(np.mean(np.concatenate([(a - data.dqdt).ravel(), (b - data.dpdt).ravel()]) ** 2))


def _variance(data):
    return float(np.mean(np.concatenate([data.dqdt.ravel(), data.dpdt.ravel()]) ** 2))


@pytest.fixture(scope="module")
def lattice():
    s = builders.cubic_lattice(3, 3, 3)
    return s, random_snapshots(s, 200, seed=1), random_snapshots(s, 100, seed=2)


@pytest.fixture(scope="module")
def lattice_model(lattice):
    s, train, _ = lattice
    return fit(train, RFConfig())


# ----------------------------------------------------------------------
def test_harmonic_cubic_lattice_derivatives_on_held_out_snapshots(lattice, lattice_model):
    s, _, test = lattice
    mse = _mse(lattice_model, s, test)
    # the paper's RF-HGN reaches 8.95e-5 on this task; the target here is 1e-6
    assert mse < 1e-6, mse
    assert lattice_model.separable
    assert lattice_model.info["n_snapshots"] == 200
    assert lattice_model.info["fit_time"] > 0
    # energies are right too (the constant from one known value)
    e = lattice_model.energy(s, test.q, test.p)
    assert np.max(np.abs(e - test.energy)) < 1e-3 * np.max(np.abs(test.energy))


def test_recommended_frame_settings_fit_the_lattice(lattice):
    # the frame encoding with its recommended settings (near-linear node
    # neurons, node width 96) against the plain defaults on the same data
    s, train, test = lattice
    rec = RFConfig.recommended("frame")
    assert rec.encoding == "frame" and rec.node_width == 96 and rec.swim_scale == 0.02
    assert RFConfig.recommended() == RFConfig()  # the invariant defaults are the defaults
    assert RFConfig.recommended("frame", seed=3).seed == 3
    good = _mse(fit(train, rec), s, test)
    plain = _mse(fit(train, RFConfig(encoding="frame")), s, test)
    assert good < 1e-5 * _variance(test), (good, _variance(test))
    assert good < 1e-2 * plain, (good, plain)
    with pytest.raises(HGNError, match="encoding"):
        RFConfig.recommended("polar")


@pytest.mark.parametrize("encoding", ["invariant", "frame"])
def test_recovers_a_hamiltonian_of_its_own_family(encoding):
    # random theta on the features the fit samples: the fit must find it again
    # the paper's SWIM constant ln(3)/2 keeps Z well conditioned (cond ~ 1e4-1e5),
    # so that the normal equations (error ~ cond^2 * eps) reach round-off
    s = builders.square_lattice(3, 3) if encoding == "frame" else builders.cubic_lattice(2, 2, 2)
    data = random_snapshots(s, 60, seed=3)
    cfg = RFConfig(encoding=encoding, regularisation=0.0, swim_scale=0.5 * np.log(3.0), **SMALL)
    first = fit(data, cfg)
    theta = np.random.default_rng(7).standard_normal(first.network.L)
    true = FittedModel(cfg, first.network, theta, 0.25, s.n, s)
    dq, dp = true.time_derivatives(s, data.q, data.p, exact=True)
    energy = true.energy(s, data.q, data.p, exact=True)
    synth = Dataset(s, data.q, data.p, dq, dp, energy, data.train, data.test)
    model = fit(synth, cfg)
    assert np.array_equal(model.network.to_arrays()["edge_W"], first.network.to_arrays()["edge_W"])
    a, b = model.time_derivatives(s, data.q, data.p, exact=True)
    scale = max(np.abs(dq).max(), np.abs(dp).max())
    assert np.max(np.abs(a - dq)) < 1e-9 * scale
    assert np.max(np.abs(b - dp)) < 1e-9 * scale
    assert np.max(np.abs(model.energy(s, data.q, data.p, exact=True) - energy)) < 1e-9 * np.abs(energy).max()
    # the train MSE comes from the accumulated sums (|u|^2 - 2 theta.b + theta.G.theta):
    # round-off of those sums, relative to |u|^2
    assert model.info["train_mse"] < 1e-13 * _variance(synth)


@pytest.mark.parametrize("sampler", ["elm", "adaptive"])
def test_other_samplers_fit_the_lattice(lattice, sampler):
    s, train, test = lattice
    model = fit(train.subset(np.arange(100)), RFConfig(sampler=sampler))
    assert _mse(model, s, test) < 1e-4 * _variance(test)


def test_cutoff_system_with_periodic_box():
    s = builders.molecular(49, density=0.7, dim=2, cutoff=2.5, jitter=0.1)
    train = random_snapshots(s, 120, displacement=0.05, seed=1)
    test = random_snapshots(s, 30, displacement=0.05, seed=2)
    model = fit(train, RFConfig())
    # Lennard-Jones forces span orders of magnitude; the paper reports ~10 %
    assert _mse(model, s, test) < 2e-2 * _variance(test)
    # energy continuous at the cutoff: a pair's features vanish there
    net = model.network
    f = net.pair(torch.tensor([s.cutoff], dtype=torch.float64), torch.zeros((1, 0), dtype=torch.float64), 0,
                 shift_at=s.cutoff)[0]
    assert f.shape == (1, net.n_V) and torch.all(f == 0)


# ----------------------------------------------------------------------
def _random_rotation(dim, rng, proper=True):
    Q, R = np.linalg.qr(rng.standard_normal((dim, dim)))
    Q = Q * np.sign(np.diag(R))
    if proper and np.linalg.det(Q) < 0:
        Q[:, 0] = -Q[:, 0]
    if not proper and np.linalg.det(Q) > 0:
        Q[:, 0] = -Q[:, 0]
    return Q


def _relabel(system, perm):
    inv = np.argsort(perm)  # new index of old particle
    edges = None if system.edges is None else inv[system.edges]
    return system.copy(positions=system.positions[perm], masses=system.masses[perm], edges=edges)


@pytest.mark.parametrize("encoding", ["invariant", "frame"])
@pytest.mark.parametrize("dim", [2, 3])
def test_fitted_energy_is_invariant(encoding, dim):
    rng = np.random.default_rng(dim)
    s = builders.square_lattice(3, 3) if dim == 2 else builders.cubic_lattice(2, 2, 3)
    s = s.copy(masses=rng.uniform(0.5, 2.0, s.n))  # relabelling must carry the masses along
    data = random_snapshots(s, 40, seed=dim)
    model = fit(data, RFConfig(encoding=encoding, **SMALL))
    q, p = data.q[:5], data.p[:5]
    e0 = model.energy(s, q, p)
    tol = 1e-10 * max(1.0, np.abs(e0).max())
    # translation
    shift = rng.standard_normal(dim) * 3.0
    assert np.max(np.abs(model.energy(s, q + shift, p) - e0)) < tol
    # rotation (and, for the invariant encoding, reflection)
    for proper in ([True, False] if encoding == "invariant" else [True]):
        Q = _random_rotation(dim, rng, proper)
        assert np.max(np.abs(model.energy(s, q @ Q.T, p @ Q.T) - e0)) < tol
    # relabelling the particles (edges relabelled with them)
    perm = rng.permutation(s.n)
    s2 = _relabel(s, perm)
    assert np.max(np.abs(model.energy(s2, q[:, perm], p[:, perm]) - e0)) < tol
    # and the gradients are equivariant
    gq, gp = model.gradients(s, q, p)
    Q = _random_rotation(dim, rng)
    gq2, gp2 = model.gradients(s2, (q @ Q.T)[:, perm], (p @ Q.T)[:, perm])
    gscale = max(1.0, np.abs(gq).max())
    assert np.max(np.abs(gq2 - (gq @ Q.T)[:, perm])) < 1e-9 * gscale
    assert np.max(np.abs(gp2 - (gp @ Q.T)[:, perm])) < 1e-9 * gscale


def test_invariant_model_is_invariant_in_a_periodic_box():
    s = builders.molecular(27, density=0.8, dim=3, cutoff=1.6, jitter=0.1)
    data = random_snapshots(s, 20, displacement=0.05, seed=4)
    model = fit(data, RFConfig(**SMALL))
    q, p = data.q[:4], data.p[:4]
    e0 = model.energy(s, q, p)
    # translating by any vector (particles wrap around the box)
    moved = np.mod(q + np.array([0.37, s.box[1] * 0.5, -1.1]), s.box)
    assert np.max(np.abs(model.energy(s, moved, p) - e0)) < 1e-10 * max(1.0, np.abs(e0).max())


# ----------------------------------------------------------------------
def test_zero_shot_to_a_larger_lattice():
    small = builders.cubic_lattice(2, 2, 2)
    model = fit(random_snapshots(small, 400, seed=5), RFConfig())
    big = builders.cubic_lattice(6, 6, 6)
    test = random_snapshots(big, 10, seed=6)
    assert _mse(model, big, test) < 1e-6
    # T_hat(0) = 0 and a per-edge constant: the energy is extensive
    e = model.energy(big, test.q, test.p)
    assert np.max(np.abs(e - test.energy)) < 1e-4 * np.max(np.abs(test.energy))


def test_fast_tables_agree_with_the_exact_network(lattice_model):
    s = builders.cubic_lattice(4, 4, 4)
    q, p = initial_state(s, 0.15, 0.1, seed=1)
    exact = lattice_model.potential_gradient(s, q, exact=True)
    fast = lattice_model.potential_gradient(s, q)
    assert np.max(np.abs(fast - exact)) < 1e-9 * np.abs(exact).max()
    exact_v = float(lattice_model.potential_energy(s, q, exact=True))
    assert abs(float(lattice_model.potential_energy(s, q)) - exact_v) < 1e-9
    # a stretched edge beyond the table range falls back to the exact network
    q2 = q.copy()
    q2[0] -= 10.0
    assert np.allclose(lattice_model.potential_gradient(s, q2), lattice_model.potential_gradient(s, q2, exact=True),
                       rtol=0, atol=1e-9)


def test_cutoff_model_accepts_candidate_pairs():
    from core.physics.neighbours import pairs_within

    s = builders.molecular(64, density=0.8, dim=3, cutoff=1.6, jitter=0.1)
    model = fit(random_snapshots(s, 30, displacement=0.05, seed=1), RFConfig(**SMALL))
    q, p = initial_state(s, 0.05, 0.1, seed=2)
    cand = pairs_within(q, 2.0, s.box)  # a superset, like a neighbour list with a skin
    g1 = model.potential_gradient(s, q)
    g2 = model.potential_gradient(s, q, pairs=cand)
    assert np.allclose(g1, g2, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------
def _trajectories(system, n, h, frames, seed0=0):
    out = []
    for k in range(n):
        q0, p0 = initial_state(system, 0.1, 0.1, seed=seed0 + k)
        out.append(simulate(system, q0, p0, dt=h / 10, steps=10 * frames, save_every=10))
    return out


def test_fit_from_time_series_and_the_correction_helps():
    s = builders.square_lattice(3, 3)
    trajs = _trajectories(s, 8, 0.05, 50)
    test = random_snapshots(s, 100, seed=99)
    plain = fit_time_series(trajs, RFConfig(), correct=False)
    corrected = fit_time_series(trajs, RFConfig(), correct=True)
    e_plain, e_corr = _mse(plain, s, test), _mse(corrected, s, test)
    assert e_plain < 1e-3 * _variance(test)  # usable without derivatives
    assert e_corr < 0.2 * e_plain  # the first-order correction helps
    assert corrected.info["source"] == "time series" and corrected.info["corrected"]
    assert plain.info["spacing"] == pytest.approx(0.05)


# ----------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["invariant", "frame"])
def test_save_and_load_give_identical_predictions(tmp_path, encoding):
    s = builders.square_lattice(3, 3)
    data = random_snapshots(s, 30, seed=1)
    model = fit(data, RFConfig(encoding=encoding, **SMALL))
    path = model.save(tmp_path / "m.hgn")
    back = FittedModel.load(path)
    assert back.config == model.config
    assert back.separable == model.separable
    assert back.info["fit_time"] == model.info["fit_time"]
    q, p = data.q[:3], data.p[:3]
    assert np.array_equal(back.energy(s, q, p), model.energy(s, q, p))
    for x, y in zip(back.gradients(s, q, p), model.gradients(s, q, p)):
        assert np.array_equal(x, y)
    big = builders.square_lattice(5, 4)
    qb, pb = initial_state(big, 0.1, 0.1, seed=3)
    assert np.array_equal(back.time_derivatives(big, qb, pb)[1], model.time_derivatives(big, qb, pb)[1])


def test_frame_rule_is_saved_and_old_files_keep_the_papers_rule(tmp_path):
    from core.container import load_npz, save_npz

    s = builders.square_lattice(3, 3)
    data = random_snapshots(s, 30, seed=1)
    q, p = data.q[:3], data.p[:3]
    model = fit(data, RFConfig(encoding="frame", frame_rule="nearest", **SMALL))
    back = FittedModel.load(model.save(tmp_path / "m.hgn"))
    assert back.network.rule == "nearest"
    assert np.array_equal(back.energy(s, q, p), model.energy(s, q, p))
    # a file written before frame_rule existed (no key) was fitted with the paper's rule
    header, arrays = load_npz(tmp_path / "m.hgn", "model")
    del header["config"]["frame_rule"]
    for k in ("format", "version", "kind"):
        header.pop(k, None)
    save_npz(tmp_path / "old.hgn", "model", header, arrays)
    old = FittedModel.load(tmp_path / "old.hgn")
    assert old.config.frame_rule == "nearest" and old.network.rule == "nearest"
    assert np.array_equal(old.energy(s, q, p), model.energy(s, q, p))
    # the rule matters: the same weights in the other frame give another energy
    from core.learning.hgn.network import HGN

    other = FittedModel(model.config.replace(frame_rule="farthest"),
                        HGN.from_arrays("frame", 2, model.network.to_arrays(),
                                        **{**model.network.options(), "frame_rule": "farthest"}),
                        model.theta, model.constant, model.n_ref, s)
    assert not np.allclose(other.energy(s, q, p), model.energy(s, q, p))


def test_loading_a_wrong_file_kind_is_an_error(tmp_path):
    from core.container import save_npz

    save_npz(tmp_path / "x.npz", "dataset", {}, {"a": np.zeros(2)})
    with pytest.raises(HGNError, match="model"):
        FittedModel.load(tmp_path / "x.npz")


def test_same_seed_same_model_other_seed_other_model(lattice):
    s, train, _ = lattice
    sub = train.subset(np.arange(50))
    a = fit(sub, RFConfig(seed=3, **SMALL))
    b = fit(sub, RFConfig(seed=3, **SMALL))
    c = fit(sub, RFConfig(seed=4, **SMALL))
    assert np.array_equal(a.theta, b.theta)
    assert not np.array_equal(a.network.to_arrays()["edge_W"], c.network.to_arrays()["edge_W"])


def test_progress_stages_and_cancel(lattice):
    s, train, _ = lattice
    seen = []
    fit(train.subset(np.arange(40)), RFConfig(batch_size=8, **SMALL), progress=lambda st, f: seen.append((st, f)))
    stages = [st for st, _ in seen]
    assert stages.index("sample") < stages.index("assemble") < stages.index("solve")
    assert all(0.0 <= f <= 1.0 for _, f in seen)
    assert ("solve", 1.0) in seen
    assert len([1 for st, _ in seen if st == "assemble"]) >= 5  # one report per batch
    ev = threading.Event()

    def stop_during_assembly(stage, f):
        if stage == "assemble" and f > 0.2:
            ev.set()

    with pytest.raises(Cancelled):
        fit(train.subset(np.arange(40)), RFConfig(batch_size=4, **SMALL), progress=stop_during_assembly, cancel=ev)


# ----------------------------------------------------------------------
@pytest.mark.parametrize("bad", [
    {"encoding": "polar"}, {"sampler": "sgd"}, {"activation": "relu"}, {"node_width": 0},
    {"edge_width": 2.5}, {"regularisation": -1.0}, {"regularisation": float("nan")},
    {"batch_size": 0}, {"seed": -1}, {"linear_kinetic": "yes"}, {"solver": "qr"},
    {"encoding": "frame", "static_width": 2}, {"swim_scale": 0.0}, {"frame_rule": "middle"},
])
def test_bad_settings_raise(bad):
    with pytest.raises(HGNError):
        RFConfig(**bad)


def test_config_round_trip_and_unknown_keys():
    c = RFConfig(encoding="frame", sampler="elm", node_width=7)
    assert RFConfig.from_dict(c.to_dict()) == c
    with pytest.raises(HGNError, match="unknown"):
        RFConfig.from_dict({**c.to_dict(), "learning_rate": 1e-3})
    with pytest.raises(HGNError):
        RFConfig.from_dict({"node_width": "many"})


def test_bad_inputs_raise(lattice, lattice_model):
    s, train, _ = lattice
    with pytest.raises(HGNError):
        fit("not a dataset", RFConfig())
    empty = Dataset(s, train.q, train.p, train.dqdt, train.dpdt, train.energy,
                    np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    with pytest.raises(HGNError, match="no training"):
        fit(empty, RFConfig())
    nan = train.subset(np.arange(5))
    nan.dpdt[0, 0, 0] = np.nan
    with pytest.raises(HGNError, match="NaN"):
        fit(nan, RFConfig())
    with pytest.raises(HGNError):
        lattice_model.energy(s, np.zeros((5, 2)), np.zeros((5, 2)))
    with pytest.raises(HGNError, match="2D"):
        sq = builders.square_lattice(2, 2)
        lattice_model.energy(sq, sq.positions, np.zeros_like(sq.positions))
    frame = fit(train.subset(np.arange(10)), RFConfig(encoding="frame", **SMALL))
    assert not frame.separable
    with pytest.raises(HGNError, match="separable"):
        frame.potential_gradient(s, train.q[0])


def test_true_hamiltonian_adapter_matches_the_force_field():
    s = builders.molecular(27, density=0.8, dim=3, cutoff=1.6, jitter=0.1)
    q, p = initial_state(s, 0.05, 0.2, seed=1)
    th = TrueHamiltonian(s)
    dq, dp = th.time_derivatives(s, q, p)
    tq, tp = derivatives(s, q, p)
    assert np.allclose(dq, tq, rtol=0, atol=1e-14) and np.allclose(dp, tp, rtol=1e-12, atol=1e-12)
    from core.physics.neighbours import pairs_within
    assert np.allclose(th.potential_gradient(s, q, pairs=pairs_within(q, 2.0, s.box)), -tp, rtol=1e-12, atol=1e-12)
    assert th.energy(s, q, p).shape == () and th.energy(None, q[None], p[None]).shape == (1,)


def test_torch_threads_are_set_during_the_fit_and_restored(lattice):
    s, train, _ = lattice
    before = torch.get_num_threads()
    seen = []
    fit(train.subset(np.arange(10)), RFConfig(threads=1, **SMALL),
        progress=lambda st, f: seen.append(torch.get_num_threads()))
    assert seen and set(seen) == {1}
    assert torch.get_num_threads() == before
    seen.clear()
    fit(train.subset(np.arange(10)), RFConfig(threads=0, **SMALL),
        progress=lambda st, f: seen.append(torch.get_num_threads()))
    assert set(seen) == {before}  # 0 leaves torch's setting alone
    with pytest.raises(HGNError):
        RFConfig(threads=-1)
    # settings written before the torch core named it blas_threads
    assert RFConfig.from_dict({"blas_threads": 2}).threads == 2
    assert "blas_threads" not in RFConfig().to_dict()


def test_device_setting():
    assert RFConfig().device == "cpu"
    with pytest.raises(HGNError, match="device"):
        RFConfig(device="tpu")
    if not torch.cuda.is_available():
        s = builders.square_lattice(2, 2)
        with pytest.raises(HGNError, match="CUDA was asked for but this machine has none"):
            fit(random_snapshots(s, 5, seed=1), RFConfig(device="cuda", **SMALL))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("encoding", ["invariant", "frame"])
def test_cuda_fit_agrees_with_the_cpu_fit_and_files_cross_devices(tmp_path, encoding):
    s = builders.square_lattice(3, 3)
    data = random_snapshots(s, 60, seed=1)
    cpu = fit(data, RFConfig(encoding=encoding, **SMALL))
    gpu = fit(data, RFConfig(encoding=encoding, device="cuda", **SMALL))
    assert gpu.network.device.type == "cuda"
    for k, v in cpu.network.to_arrays().items():  # the same sampled weights
        assert np.allclose(gpu.network.to_arrays()[k], v, rtol=1e-12, atol=1e-12)
    q, p = data.q[:5], data.p[:5]
    for a, b in zip(cpu.time_derivatives(s, q, p), gpu.time_derivatives(s, q, p)):
        assert np.max(np.abs(a - b)) < 1e-6 * np.max(np.abs(a))
    back = FittedModel.load(gpu.save(tmp_path / "g.npz"))  # a CUDA fit loads on the CPU
    assert back.network.device.type == "cpu"
    assert np.allclose(back.energy(s, q, p), gpu.energy(s, q, p), rtol=1e-12, atol=1e-12)
    on_gpu = FittedModel.load(cpu.save(tmp_path / "c.npz"), device="cuda")
    assert np.allclose(on_gpu.energy(s, q, p), cpu.energy(s, q, p), rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------
# the threaded assembly of fixed-graph fits (rfhgn.fitting.assemble, threads > 1)
def _assembly_threads_seen(monkeypatch):
    """Names of the threads that assembled rows (fixed.FixedJacobians.rows_folded)."""
    from core.learning.hgn import fixed

    seen = set()
    original = fixed.FixedJacobians.rows_folded

    def spy(self, *args):
        seen.add(threading.current_thread().name)
        return original(self, *args)

    monkeypatch.setattr(fixed.FixedJacobians, "rows_folded", spy)
    return seen


def test_threads_share_the_snapshots_and_agree_with_one_thread(lattice, monkeypatch):
    s, train, test = lattice
    one = fit(train, RFConfig(threads=1))
    seen = _assembly_threads_seen(monkeypatch)
    two = fit(train, RFConfig(threads=2))
    assert len(seen) == 2 and any(n.startswith("rfhgn-assembly-") for n in seen), seen
    assert two.info["assembly_threads"] == 2 and one.info["assembly_threads"] == 1
    assert two.info["threads"] == 1             # one BLAS/torch thread within each
    # the same normal equations up to summation order: the same predictions to round-off
    # (theta itself is fixed only to cond * eps at regularisation 1e-12, see test_numpy_reference)
    a, b = one.time_derivatives(s, test.q, test.p), two.time_derivatives(s, test.q, test.p)
    scale = max(np.abs(test.dpdt).max(), np.abs(test.dqdt).max())
    assert max(np.abs(a[0] - b[0]).max(), np.abs(a[1] - b[1]).max()) < 1e-6 * scale
    assert _mse(two, s, test) == pytest.approx(_mse(one, s, test), rel=1e-2)
    # the training range comes from every thread's part
    for k in ("train_r_max", "train_r_min", "train_k_max"):
        assert two.info[k] == one.info[k], k
    # reproducible for a given thread count, whichever thread took which part
    again = fit(train, RFConfig(threads=2))
    assert np.array_equal(again.theta, two.theta)


def test_threaded_assembly_cancels_and_reports_errors_from_its_threads(lattice):
    s, train, _ = lattice
    ev = threading.Event()

    def stop_during_assembly(stage, f):
        if stage == "assemble" and f > 0.2:
            ev.set()

    sub = train.subset(np.arange(160))
    with pytest.raises(Cancelled):
        fit(sub, RFConfig(threads=2, batch_size=64, **SMALL), progress=stop_during_assembly, cancel=ev)
    # two particles on top of each other in a snapshot that a crew thread takes (the second part)
    q = train.q[:80].copy()
    q[70, 1] = q[70, 0]
    bad = Dataset(s, q, train.p[:80], train.dqdt[:80], train.dpdt[:80], train.energy[:80], np.arange(80),
                  np.arange(0))
    with pytest.raises(HGNError, match="on top of each other"):
        fit(bad, RFConfig(threads=2, **SMALL))
    # the crew still works after both
    model = fit(sub, RFConfig(threads=2, **SMALL))
    assert model.info["assembly_threads"] == 2 and np.all(np.isfinite(model.theta))
