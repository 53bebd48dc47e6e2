"""Few-shot adaptation (issue 14): a basis (the sampled hidden layers of an
RF-HGN) reused for another system with only the output layer solved.

Measured on this machine (3x3x3 lattice, default RFConfig, basis sampled on
500 harmonic snapshots, test = 200 other snapshots; /tmp script in the
ADAPT report, docs/adapt.md): FPU-beta target, test derivative MSE of the
fit from scratch on 500 snapshots 9.1e-11; adapted (GCV) with k = 1, 2, 5,
10, 20, 50, 500: 1.2e-6, 8.1e-7, 2.1e-7, 2.9e-8, 7.9e-9, 4.1e-10, 4.9e-12.
So the issue's goal (k = 10 within 10x of scratch-500) is NOT reached:
k = 10 is ~310x (~170x with the smallest lambda of the grid); k = 50 ~4.5x.
The tests assert that measured behaviour with a margin (k = 10 within 1000x, k = 50 within 10x), not the goal.
"""
import warnings

import numpy as np
import pytest

from core.errors import HGNError
from core.learning.metrics import derivative_mse
from core.learning.rfhgn import FittedModel, RFConfig, fit
from core.learning.rfhgn.adapt import LAMBDA_GRID, adapt, cv_choice, fold_rows, gcv_choice
from core.learning.rfhgn.basis import Basis, load_basis, save_basis
from core.physics import builders
from core.physics.datagen import random_snapshots

N_TEST = 200


@pytest.fixture(scope="module")
def harmonic():
    s = builders.cubic_lattice(3, 3, 3)
    train = random_snapshots(s, 500, seed=1)
    return s, train, fit(train, RFConfig())


@pytest.fixture(scope="module")
def fpu():
    s = builders.cubic_lattice(3, 3, 3, potential="fpu-beta")
    return s, random_snapshots(s, 500, seed=5), random_snapshots(s, N_TEST, seed=105)


def _err(model, test):
    return derivative_mse(model, test, np.arange(N_TEST))


def test_own_data_all_snapshots_reproduce_the_fit(harmonic):
    _, train, base = harmonic
    same = adapt(base, train, regularisation=base.config.regularisation)
    assert same.network is not base.network
    scale = np.max(np.abs(base.theta))
    assert np.max(np.abs(same.theta - base.theta)) <= 1e-12 * scale
    assert same.constant == pytest.approx(base.constant, rel=1e-10, abs=1e-12)
    a = same.info["adapt"]
    assert a["k"] == 500 and a["rule"] == "given" and a["basis"]["kind"] == "model"
    assert a["adapt_time"] > 0


def test_few_shot_to_fpu_beta_against_fit_from_scratch(harmonic, fpu):
    _, _, base = harmonic
    s, train, test = fpu
    scratch = _err(fit(train, RFConfig()), test)
    errs, plain = {}, {}
    for k in (1, 10, 50):
        m = adapt(base, train, k=k)  # defaults: GCV, prior "auto"
        errs[k] = _err(m, test)
        info = m.info["adapt"]
        assert info["k"] == k and info["rule"] == "gcv" and info["prior_asked"] == "auto"
        assert set(info["regularisation"]) == {"p", "q"} == set(info["prior_blocks"])
        assert all(lam in LAMBDA_GRID for lam in info["regularisation"].values())
        assert m.info["n_snapshots"] == k
        plain[k] = _err(adapt(base, train, k=k, prior="none"), test)
    # measured (scratch-500 9.1e-11): k = 1, 10, 50: 1.4e-7, 1.6e-8 (174x), 6.5e-10 (7.1x); prior "none"
    # (the old default) 1.2e-6, 2.9e-8 (314x), 4.1e-10. The 10x at k = 10 is not reached (docs/adapt.md).
    assert errs[10] < 1e3 * scratch, (errs, scratch)
    assert errs[50] < 10 * scratch, (errs, scratch)
    assert errs[10] < 0.2 * errs[1], errs  # more snapshots help (measured 9x)
    assert errs[1] < 0.25 * plain[1] and errs[10] < plain[10], (errs, plain)  # the prior helps at small k
    # the basis matters: it beats the untouched harmonic model on FPU-beta data (whose quartic term it lacks)
    assert errs[50] < 0.1 * _err(base, test)


def test_seeded_choice_of_snapshots(harmonic, fpu):
    _, _, base = harmonic
    _, train, _ = fpu
    a = adapt(base, train, k=10, seed=3)
    b = adapt(base, train, k=10, seed=3)
    c = adapt(base, train, k=10)
    assert a.info["adapt"]["snapshots"] == b.info["adapt"]["snapshots"] != c.info["adapt"]["snapshots"]
    assert c.info["adapt"]["snapshots"] == list(range(10))
    np.testing.assert_array_equal(a.theta, b.theta)


def test_gcv_prefers_small_lambda_on_exact_data_and_large_on_noise():
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(200, 10))
    x = rng.normal(size=10)
    exact = Z @ x
    lam, info = gcv_choice(Z.T @ Z, Z.T @ exact, float(exact @ exact), 200)
    assert lam == LAMBDA_GRID[0] and info["effective_rank"] == 10
    # pure noise: nothing to fit, GCV shrinks towards zero
    u = rng.normal(size=200)
    lam_n, _ = gcv_choice(Z.T @ Z, Z.T @ u, float(u @ u), 200)
    assert lam_n >= 1e-2, lam_n


def test_cross_validation_over_snapshots_matches_direct_refits():
    """cv_choice's scores equal refitting without each fold and measuring the held-out residual directly."""
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(60, 8)) * np.array([1, 10, 0.1, 1, 3, 1, 1, 1e-3])
    u = Z @ rng.normal(size=8) + 1e-3 * rng.normal(size=60)
    groups = fold_rows(np.arange(12), 5)  # 12 "snapshots" of 5 rows each, in 5 folds
    assert [list(g) for g in groups] == [[0, 5, 10], [1, 6, 11], [2, 7], [3, 8], [4, 9]]
    assert len(fold_rows(np.arange(3))) == 3
    rows = [np.concatenate([np.arange(5 * i, 5 * i + 5) for i in g]) for g in groups]
    folds = [(Z[r].T @ Z[r], Z[r].T @ u[r], float(u[r] @ u[r]), len(r)) for r in rows]
    lam, info = cv_choice(folds)
    assert info["folds"] == 5 and info["effective_rank"] == 8
    dg = np.linalg.norm(Z, axis=0)
    for j in (0, 10, 20, 28):
        direct = 0.0
        for r in rows:
            keep = np.setdiff1d(np.arange(60), r)
            A = Z[keep].T @ Z[keep] / dg[:, None] / dg[None, :] + LAMBDA_GRID[j] * np.eye(8)
            x = np.linalg.solve(A, Z[keep].T @ u[keep] / dg) / dg
            direct += float(np.sum((Z[r] @ x - u[r]) ** 2))
        assert info["cv"][j] == pytest.approx(direct, rel=1e-6)
    assert lam == LAMBDA_GRID[int(np.argmin(info["cv"]))]
    # pure noise: nothing to predict, the held-out residual is smallest for a large lambda
    v = rng.normal(size=60)
    noise = [(Z[r].T @ Z[r], Z[r].T @ v[r], float(v[r] @ v[r]), len(r)) for r in rows]
    assert cv_choice(noise)[0] >= 1e-2


def test_too_few_snapshots_warn_with_the_effective_rank(harmonic):
    _, _, base = harmonic
    dimer = builders.cubic_lattice(2, 1, 1)
    data = random_snapshots(dimer, 5, seed=2)
    with pytest.warns(UserWarning, match="effective rank"):
        adapt(base, data, k=1)


def test_other_dimension_and_bad_k_refused(harmonic):
    _, train, base = harmonic
    flat = random_snapshots(builders.square_lattice(3, 3), 5, seed=2)
    with pytest.raises(HGNError, match="3D systems, the data are 2D"):
        adapt(base, flat)
    with pytest.raises(HGNError, match="k"):
        adapt(base, train, k=0)
    with pytest.raises(HGNError, match="k"):
        adapt(base, train, k=501)
    with pytest.raises(HGNError, match="fitted model or a basis"):
        adapt("model.npz", train)


def test_basis_file_round_trip_and_adapted_model_file(harmonic, fpu, tmp_path):
    _, _, base = harmonic
    s, train, test = fpu
    path = save_basis(base, tmp_path / "b.npz")
    basis = load_basis(path)
    assert isinstance(basis, Basis) and basis.network.L == base.network.L
    assert basis.source["n_snapshots"] == 500
    for k, v in base.network.to_arrays().items():
        np.testing.assert_array_equal(basis.network.to_arrays()[k], v)
    m1, m2 = adapt(base, train, k=10, prior="none"), adapt(basis, train, k=10, prior="none")
    np.testing.assert_array_equal(m1.theta, m2.theta)
    assert m2.info["adapt"]["basis"]["kind"] == "basis"
    assert m2.info["adapt"]["prior"] == "none"
    # the adapted model saves and loads like a fitted one, lineage included
    m2.save(tmp_path / "m.npz")
    back = FittedModel.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(back.theta, m2.theta)
    assert back.info["adapt"]["k"] == 10
    np.testing.assert_allclose(back.energy(s, test.q[:3], test.p[:3]), m2.energy(s, test.q[:3], test.p[:3]),
                               rtol=1e-12)


def test_basis_keeps_the_output_layer_as_its_prior(harmonic, fpu, tmp_path):
    """A basis file carries the source fit's theta (round trip); adapting from it with prior "source"/"auto"
    does what adapting from the model does."""
    _, _, base = harmonic
    s, train, test = fpu
    basis = load_basis(save_basis(base, tmp_path / "b.npz"))
    assert basis.theta is not None
    np.testing.assert_array_equal(basis.theta, base.theta)
    for prior in ("source", "none"):
        from_model, from_basis = adapt(base, train, k=5, prior=prior), adapt(basis, train, k=5, prior=prior)
        np.testing.assert_array_equal(from_basis.theta, from_model.theta)
        assert from_basis.info["adapt"]["prior"] == prior
    # "auto" on a basis stays the plain ridge (the pooled theta measured no better; docs/adapt.md)
    np.testing.assert_array_equal(adapt(basis, train, k=5).theta, adapt(base, train, k=5, prior="none").theta)


def test_pooled_basis_theta_is_the_prior_under_a_large_regularisation(tmp_path):
    from core.learning.rfhgn.basis import sample_basis

    h = random_snapshots(builders.cubic_lattice(3, 3, 3), 100, seed=1)
    m = random_snapshots(builders.cubic_lattice(2, 2, 3, potential="morse"), 100, seed=2)
    basis = sample_basis([h, m], names=["h", "m"])
    assert basis.theta is not None and basis.theta.shape == (basis.network.L,)
    # the pooled theta is the fit on all the pooled rows at once (sample_basis's network carries it): one
    # pair function for two potentials, so a compromise, but far closer to either than theta = 0 (relative 1)
    np.testing.assert_array_equal(basis.network.theta.detach().cpu().numpy(), basis.theta)
    rel = [_err_on(basis.network, ds) / float(np.mean(ds.dqdt ** 2) + np.mean(ds.dpdt ** 2)) for ds in (h, m)]
    print("pooled theta relative error on h, m:", rel)
    assert max(rel) < 0.2, rel
    back = load_basis(save_basis(basis, tmp_path / "p.npz"))
    np.testing.assert_array_equal(back.theta, basis.theta)
    target = random_snapshots(builders.cubic_lattice(3, 3, 3, potential="fpu-beta"), 20, seed=3)
    scale = np.max(np.abs(basis.theta))
    held = adapt(back, target, k=10, regularisation=1e8, prior="source")
    np.testing.assert_allclose(held.theta, basis.theta, rtol=0, atol=1e-6 * scale)
    free = adapt(back, target, k=10, regularisation=1e8, prior="none")
    assert np.max(np.abs(free.theta)) < 1e-3 * scale  # toward zero without the prior


def _err_on(network, ds):
    """Derivative MSE of a bare network (theta as it is) on every snapshot of ds."""
    model = FittedModel(RFConfig(), network, None, 0.0, ds.system.n, ds.system)
    return derivative_mse(model, ds, np.arange(ds.n_snapshots))


def test_basis_file_without_theta_still_loads_and_adapts(harmonic, fpu, tmp_path):
    from core.container import load_npz, save_npz

    _, _, base = harmonic
    s, train, test = fpu
    header, arrays = load_npz(save_basis(base, tmp_path / "b.npz"))
    header = {k: v for k, v in header.items() if k not in ("format", "version", "kind")}
    old = {k: v for k, v in arrays.items() if k != "theta"}  # as written before bases kept theta
    save_npz(tmp_path / "old.npz", "basis", header, old)
    basis = load_basis(tmp_path / "old.npz")
    assert basis.theta is None
    plain = adapt(base, train, k=10, prior="none")
    for prior in ("none", "auto"):
        m = adapt(basis, train, k=10, prior=prior)
        np.testing.assert_array_equal(m.theta, plain.theta)
        assert m.info["adapt"]["prior"] == "none"
    with pytest.raises(HGNError, match="prior='source'.*basis has none"):
        adapt(basis, train, k=10, prior="source")
    for label, bad in (("short", arrays["theta"][:-1]), ("nan", np.where(np.arange(len(arrays["theta"])) == 2,
                                                                         np.nan, arrays["theta"]))):
        save_npz(tmp_path / f"{label}.npz", "basis", header, dict(old, theta=bad))
        with pytest.raises(HGNError, match=f"{label}.npz.*theta"):
            load_basis(tmp_path / f"{label}.npz")


def test_damaged_basis_files_refused(harmonic, tmp_path):
    from core.container import load_npz, save_npz

    _, _, base = harmonic
    good = save_basis(base, tmp_path / "b.npz")
    header, arrays = load_npz(good)
    header = {k: v for k, v in header.items() if k not in ("format", "version", "kind")}
    bad = dict(arrays)
    bad["edge_b"] = bad["edge_b"][:-1]
    save_npz(tmp_path / "short.npz", "basis", header, bad)
    with pytest.raises(HGNError, match="short.npz"):
        load_basis(tmp_path / "short.npz")
    nan = dict(arrays)
    nan["msg_W"] = nan["msg_W"].copy()
    nan["msg_W"][0, 0] = np.nan
    save_npz(tmp_path / "nan.npz", "basis", header, nan)
    with pytest.raises(HGNError, match="nan.npz"):
        load_basis(tmp_path / "nan.npz")
    save_npz(tmp_path / "dim.npz", "basis", dict(header, dim=4), arrays)
    with pytest.raises(HGNError, match="dim"):
        load_basis(tmp_path / "dim.npz")
    base.save(tmp_path / "model.npz")
    with pytest.raises(HGNError, match="expected basis"):
        load_basis(tmp_path / "model.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_basis(good).network.L == base.network.L


def test_command_line_adapt_from_model_and_from_basis(harmonic, fpu, tmp_path, capsys):
    from core.cli.app import main
    from core.files.io import save_dataset
    from core.physics.trajectory import Dataset

    _, _, base = harmonic
    s, train, test = fpu
    both = Dataset(s, *(np.concatenate([getattr(train, f)[:20], getattr(test, f)]) for f in
                        ("q", "p", "dqdt", "dpdt", "energy")), np.arange(20), np.arange(20, 20 + N_TEST))
    save_dataset(tmp_path / "d.npz", both)
    base.save(tmp_path / "h.npz")
    code = main(["adapt", "--model", str(tmp_path / "h.npz"), "--data", str(tmp_path / "d.npz"),
                 "--snapshots", "10", "--out", str(tmp_path / "m.npz"), "--basis-out", str(tmp_path / "b.npz")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "adapted 65 features to 10 snapshots in" in out and " ms " in out
    expected = _err(adapt(base, train, k=10), test)  # the same 10 snapshots, the same test set
    line = next(x for x in out.splitlines() if x.startswith("test derivative MSE:"))
    assert float(line.split()[3]) == pytest.approx(expected, rel=1e-3)
    assert FittedModel.load(tmp_path / "m.npz").info["adapt"]["k"] == 10
    code = main(["adapt", "--basis", str(tmp_path / "b.npz"), "--data", str(tmp_path / "d.npz"),
                 "--snapshots", "10", "--out", str(tmp_path / "m2.npz")])
    assert code == 0
    code = main(["adapt", "--model", str(tmp_path / "h.npz"), "--data", str(tmp_path / "d.npz"),
                 "--snapshots", "10", "--prior", "none", "--out", str(tmp_path / "m3.npz")])
    assert code == 0 and "prior p none, q none" in capsys.readouterr().out
    np.testing.assert_array_equal(FittedModel.load(tmp_path / "m2.npz").theta,
                                  FittedModel.load(tmp_path / "m3.npz").theta)
    code = main(["adapt", "--model", str(tmp_path / "h.npz"), "--data", str(tmp_path / "d.npz"),
                 "--snapshots", "10", "--rule", "cv", "--prior", "source", "--out", str(tmp_path / "m4.npz")])
    out = capsys.readouterr().out
    assert code == 0 and ", cv; prior p source, q source)" in out, out
    np.testing.assert_array_equal(FittedModel.load(tmp_path / "m4.npz").theta,
                                  adapt(base, train, k=10, rule="cv", prior="source").theta)
    assert main(["adapt", "--model", str(tmp_path / "h.npz"), "--data", str(tmp_path / "d.npz"),
                 "--rule", "loo", "--out", str(tmp_path / "x.npz")]) == 2
    assert "invalid choice: 'loo'" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["adapt", "--model", str(tmp_path / "h.npz"), "--data", str(tmp_path / "d.npz"),
                 "--snapshots", "30", "--out", str(tmp_path / "x.npz")]) == 2
    assert "k (snapshots) must be between 1 and the 20" in capsys.readouterr().err
    assert main(["adapt", "--basis", str(tmp_path / "h.npz"), "--data", str(tmp_path / "d.npz"),
                 "--out", str(tmp_path / "x.npz")]) == 2
    assert "expected basis" in capsys.readouterr().err


def test_pooled_basis_from_several_systems(fpu, tmp_path, capsys):
    from core.cli.app import main
    from core.files.io import save_dataset
    from core.learning.rfhgn.basis import sample_basis

    s, train, test = fpu
    h = random_snapshots(builders.cubic_lattice(3, 3, 3), 250, seed=1)
    m = random_snapshots(builders.cubic_lattice(2, 2, 3, potential="morse"), 250, seed=2)
    basis = sample_basis([h, m], names=["h", "m"])
    assert basis.source["pooled"] == ["h", "m"] and basis.source["n_snapshots"] == [250, 250]
    scratch = _err(fit(train, RFConfig()), test)
    e10 = _err(adapt(basis, train, k=10), test)
    # measured: 140x scratch-500 at k=10 (5.5x at k=50, 0.2x at k=100)
    assert e10 < 1e3 * scratch, (e10, scratch)
    loaded = load_basis(save_basis(basis, tmp_path / "p.npz"))
    assert loaded.source["pooled"] == ["h", "m"]
    np.testing.assert_array_equal(adapt(loaded, train, k=10).theta, adapt(basis, train, k=10).theta)
    with pytest.raises(HGNError, match="share a dimension"):
        sample_basis([h, random_snapshots(builders.square_lattice(3, 3), 20, seed=1)])
    save_dataset(tmp_path / "h.npz", h)
    save_dataset(tmp_path / "m.npz", m)
    assert main(["basis", "--data", str(tmp_path / "h.npz"), str(tmp_path / "m.npz"),
                 "--out", str(tmp_path / "c.npz")]) == 0
    assert "sampled 65 features from 500 snapshots of 2 datasets" in capsys.readouterr().out
    for k, v in load_basis(tmp_path / "c.npz").network.to_arrays().items():
        np.testing.assert_array_equal(v, basis.network.to_arrays()[k])


def test_adapted_model_rolls_out_after_save_and_load(harmonic, fpu, tmp_path):
    from core.learning.rollout import rollout
    from core.physics.simulate import simulate

    _, _, base = harmonic
    s, train, test = fpu
    m = adapt(base, train, k=50)
    back = FittedModel.load(m.save(tmp_path / "r.npz"))
    truth = simulate(s, test.q[0], test.p[0], 0.01, 500, 10)
    mse = {}
    for label, model in (("adapted", m), ("loaded", back), ("base", base)):
        pred = rollout(model, s, test.q[0], test.p[0], 0.01, 500, 10)
        mse[label] = float(np.mean((pred.q - truth.q) ** 2))
    # measured to t = 5: adapted (k=50) 1.1e-12, loaded the same, the harmonic model it came from 6.9e-5
    assert mse["loaded"] == mse["adapted"]
    assert mse["adapted"] < 1e-9, mse
    assert mse["adapted"] < 1e-4 * mse["base"], mse


def test_frame_encoding_one_block_and_bad_options_refused(harmonic):
    from core.physics.port import Port

    s = builders.square_lattice(3, 3)
    data = random_snapshots(s, 60, seed=4)
    model = fit(data, RFConfig(encoding="frame", node_width=8, edge_width=12, message_width=8))
    assert not model.separable
    same = adapt(model, data, regularisation=model.config.regularisation)
    assert set(same.info["adapt"]["regularisation"]) == {"all"}
    assert np.max(np.abs(same.theta - model.theta)) <= 1e-12 * np.max(np.abs(model.theta))
    for rule in ("gcv", "cv"):
        m = adapt(model, data, k=20, rule=rule)
        assert m.info["adapt"]["rule"] == rule and set(m.info["adapt"]["effective_rank"]) == {"all"}
    assert adapt(model, data, k=1, rule="cv").info["adapt"]["rule"] == "gcv"  # one snapshot: nothing to hold out
    with pytest.raises(HGNError, match="rule must be one of cv, gcv"):
        adapt(model, data, rule="loo")
    _, _, base = harmonic
    damped = random_snapshots(builders.cubic_lattice(3, 3, 3).copy(port=Port(0.05, ())), 5, seed=1)
    with pytest.raises(HGNError, match="PortSpec"):
        adapt(base, damped, port="uniform")
    with pytest.raises(HGNError, match="prior must be one of"):
        adapt(base, damped, prior="model")
    with pytest.raises(HGNError, match="regularisation must be a number"):
        adapt(base, damped, regularisation=-1.0)


# ----------------------------------------------------------------------
# port-Hamiltonian adaptation: damping and forcing in the same solve
GAMMA, AMP, W, PHASE = 0.05, 0.1, 1.3, 0.3


@pytest.fixture(scope="module")
def driven_fpu():
    """Damped (0.05), face-driven FPU-beta 3x3x3 lattice: 5 runs of 101 frames."""
    from core.physics.datagen import DataSpec, generate
    from core.physics.port import Drive, Port

    lat = builders.cubic_lattice(3, 3, 3, potential="fpu-beta")
    face = tuple(int(i) for i in np.flatnonzero(np.isclose(lat.positions[:, 0], 0.0)))
    port = Port(GAMMA, (Drive(face, AMP, W, (1.0, 0.5, 0.0), PHASE),))
    return generate(lat.copy(port=port), DataSpec(n_trajectories=5, steps=500, dt=0.01, save_every=5, seed=7))


def _port_errors(model):
    ident = model.info["port"]
    amp = np.array(ident["forcing"]["amplitude"][0])
    return abs(ident["damping"] / GAMMA - 1), float(np.abs(amp / AMP - 1).max())


def test_port_adaptation_identifies_damping_and_drive(harmonic, driven_fpu):
    from core.learning.rfhgn.port import PortSpec, fit_port, port_derivative_mse
    from core.physics.trajectory import Dataset

    _, _, base = harmonic
    ds = driven_fpu
    k = 20
    m = adapt(base, ds, k=k, seed=0)
    assert m.info["port"]["spec"] == {"damping": "uniform", "nodes": m.info["port"]["spec"]["nodes"],
                                      "frequencies": [W], "field": False}
    assert m.info["source"] == "adapt (port)"
    g_err, a_err = _port_errors(m)
    # fit_port sampling its own features from the same k snapshots (measured: adapt gamma 3.9e-6, amplitude
    # 9.4e-7, test 1.3e-9; fit_port 7.3e-5, 2.0e-5, 8.0e-8)
    rows = m.info["adapt"]["snapshots"]
    sub = Dataset(ds.system, ds.q, ds.p, ds.dqdt, ds.dpdt, ds.energy, np.array(rows), ds.test, [], ds.meta)
    ref = fit_port(sub, RFConfig())
    g_ref, a_ref = _port_errors(ref)
    assert g_err < max(1e-4, 2 * g_ref) and a_err < max(1e-4, 2 * a_ref), (g_err, a_err, g_ref, a_ref)
    e_ad, e_ref = port_derivative_mse(m, ds), port_derivative_mse(ref, ds)
    assert e_ad < 10 * e_ref, (e_ad, e_ref)
    # a plain output layer (no port terms) cannot explain damped, driven data
    plain = adapt(base, ds, k=k, seed=0, port=PortSpec("none"))
    assert "port" not in plain.info and plain.info["train_mse"] > 1e3 * m.info["train_mse"]


def test_port_model_adapted_to_its_own_data_is_reproduced(driven_fpu):
    from core.learning.rfhgn.port import fit_port

    pm = fit_port(driven_fpu, RFConfig())
    same = adapt(pm, driven_fpu, regularisation=pm.config.regularisation)
    np.testing.assert_allclose(same.theta, pm.theta, rtol=0, atol=1e-12 * np.max(np.abs(pm.theta)))
    assert same.info["port"]["damping"] == pytest.approx(pm.info["port"]["damping"], rel=1e-10)
    np.testing.assert_allclose(same.info["port"]["forcing"]["cos"], pm.info["port"]["forcing"]["cos"], rtol=1e-9)
    assert same.constant == pytest.approx(pm.constant, rel=1e-10, abs=1e-12)


def test_adapted_port_model_saves_loads_and_rolls_out(harmonic, driven_fpu, tmp_path):
    from core.learning.rfhgn.port import carried_port, rollout_port
    from core.physics.simulate import simulate

    _, _, base = harmonic
    ds = driven_fpu
    m = adapt(base, ds, k=50, seed=0)
    back = FittedModel.load(m.save(tmp_path / "p.npz"))
    assert back.info["port"] == m.info["port"]
    s = ds.system
    port = carried_port(back, s)
    assert abs(port.damping - GAMMA) < 1e-4 * GAMMA and len(port.drives) == len(s.port.drives[0].nodes)
    q0, p0 = ds.q[ds.test[0]], ds.p[ds.test[0]]
    truth = simulate(s, q0, p0, 0.01, 500, 10)
    mse = {}
    for label, model in (("adapted", m), ("loaded", back)):
        pred = rollout_port(model, s, q0, p0, 0.01, 500, 10)
        mse[label] = float(np.mean((pred.q - truth.q) ** 2))
    # the harmonic model itself, rolled out with the true damping and forcing, is far off
    blind = rollout_port(base, s, q0, p0, 0.01, 500, 10, port=s.port)
    mse["harmonic"] = float(np.mean((blind.q - truth.q) ** 2))
    # measured to t = 5: adapted (k = 50) 2.5e-13, loaded the same, the harmonic model 5.1e-5
    assert mse["loaded"] == mse["adapted"]
    assert mse["adapted"] < 1e-8 and mse["adapted"] < 1e-3 * mse["harmonic"], mse


def test_command_line_adapts_damping_and_forcing(harmonic, driven_fpu, tmp_path, capsys):
    from core.cli.app import main
    from core.files.io import save_dataset
    from core.learning.rfhgn.port import port_derivative_mse

    _, _, base = harmonic
    base.save(tmp_path / "h.npz")
    save_dataset(tmp_path / "d.npz", driven_fpu)
    code = main(["adapt", "--model", str(tmp_path / "h.npz"), "--data", str(tmp_path / "d.npz"),
                 "--snapshots", "20", "--out", str(tmp_path / "m.npz")])
    out = capsys.readouterr().out
    assert code == 0, out
    line = next(x for x in out.splitlines() if x.startswith("identified:"))
    import re

    got = re.fullmatch(r"identified: damping ([0-9.e-]+); 9 driven nodes, amplitude ([0-9.e-]+)\.\.([0-9.e-]+), "
                       r"phase ([0-9.e-]+)\.\.([0-9.e-]+), w 1\.3", line)
    assert got, line
    g, a_lo, a_hi, p_lo, p_hi = map(float, got.groups())
    assert abs(g / GAMMA - 1) < 1e-4 and abs(a_lo / AMP - 1) < 1e-4 and abs(a_hi / AMP - 1) < 1e-4, line
    assert abs(p_lo - PHASE) < 1e-4 and abs(p_hi - PHASE) < 1e-4, line
    model = FittedModel.load(tmp_path / "m.npz")
    line = next(x for x in out.splitlines() if x.startswith("test derivative MSE:"))
    assert float(line.split()[3]) == pytest.approx(port_derivative_mse(model, driven_fpu), rel=1e-3)


# ----------------------------------------------------------------------
# adaptation from time series (derivatives by 4th-order central differences)
@pytest.fixture(scope="module")
def fpu_series():
    """FPU-beta 3x3x3: 5 runs of 101 frames 0.05 apart (dataset with exact derivatives and the runs)."""
    from core.physics.datagen import DataSpec, generate

    return generate(builders.cubic_lattice(3, 3, 3, potential="fpu-beta"),
                    DataSpec(n_trajectories=5, steps=500, dt=0.01, save_every=5, seed=7))


def test_time_series_adaptation_matches_exact_derivatives(harmonic, fpu_series):
    from core.learning.rfhgn.adapt import adapt_series
    from core.physics.trajectory import Dataset

    _, _, base = harmonic
    ds = fpu_series
    tr = ds.trajectories[0]
    assert np.array_equal(tr.q, ds.q[:tr.n_frames])  # run 0's frames are snapshots 0..100
    k = 50
    m = adapt_series(base, tr, k=k)
    a = m.info["adapt"]
    assert a["k"] == k
    assert a["series"] == {"order": 4, "frames": k + 4, "trajectories": 1, "spacing": pytest.approx(0.05)}
    # the same frames (2..51) with exact derivatives; measured: exact 2.4e-10, differences 7.0e-10
    exact = Dataset(ds.system, ds.q, ds.p, ds.dqdt, ds.dpdt, ds.energy, np.arange(2, 2 + k), ds.test, [], ds.meta)
    e_exact, e_series = derivative_mse(adapt(base, exact), ds), derivative_mse(m, ds)
    assert e_series < 5 * e_exact and e_series < 1e-8, (e_series, e_exact)
    assert e_series < 1e-3 * derivative_mse(base, ds)
    # the energy constant from the first snapshot's recorded energy: the energies of held-out snapshots
    te = ds.test[:50]
    err_e = np.abs(np.asarray(m.energy(ds.system, ds.q[te], ds.p[te])).ravel() - ds.energy[te])
    # measured: 2.1e-5 against an energy spread of 0.30
    assert err_e.max() < 1e-3 * np.ptp(ds.energy), (err_e.max(), np.ptp(ds.energy))
    with pytest.raises(HGNError, match="need 105 consecutive frames; the first trajectory has 101"):
        adapt_series(base, tr, k=101)
    with pytest.raises(HGNError, match="seed"):
        adapt_series(base, tr, k=5, seed=1)
    with pytest.raises(HGNError, match="Trajectory or a list"):
        adapt_series(base, ds, k=5)
    with pytest.raises(HGNError, match="order"):
        adapt_series(base, tr, k=5, order=3)


def test_port_adaptation_from_a_time_series(harmonic, driven_fpu):
    from core.learning.rfhgn.adapt import adapt_series

    _, _, base = harmonic
    tr = driven_fpu.trajectories[0]
    m = adapt_series(base, tr, k=50)
    g_err, a_err = _port_errors(m)
    # measured: gamma 1.4e-4, amplitude 3.3e-5 (O(h^4) differences at h = 0.05)
    assert g_err < 1e-3 and a_err < 1e-3, (g_err, a_err)


def test_command_line_adapts_from_time_series(harmonic, fpu_series, tmp_path, capsys):
    from core.cli.app import main
    from core.files.io import save_dataset, save_system, save_trajectories
    from core.learning.rfhgn.adapt import adapt_series

    _, _, base = harmonic
    base.save(tmp_path / "h.npz")
    save_dataset(tmp_path / "d.npz", fpu_series)
    save_trajectories(tmp_path / "t.npz", fpu_series.trajectories[:1])
    args = ["adapt", "--model", str(tmp_path / "h.npz"), "--time-series", "--snapshots", "20"]
    assert main(args + ["--data", str(tmp_path / "d.npz"), "--out", str(tmp_path / "m.npz")]) == 0
    out = capsys.readouterr().out
    assert "adapted 65 features to 20 snapshots (24 frames, order-4 differences) in" in out, out
    train_run = fpu_series.trajectories[int(fpu_series.meta["train_trajectories"][0])]
    expected = derivative_mse(adapt_series(base, train_run, k=20), fpu_series)
    line = next(x for x in out.splitlines() if x.startswith("test derivative MSE:"))
    assert float(line.split()[3]) == pytest.approx(expected, rel=1e-3)
    assert main(args + ["--data", str(tmp_path / "t.npz"), "--out", str(tmp_path / "m2.npz")]) == 0
    out = capsys.readouterr().out
    assert "test derivative MSE: n/a (a trajectory file holds no held-out snapshots)" in out
    np.testing.assert_array_equal(FittedModel.load(tmp_path / "m2.npz").theta,
                                  adapt_series(base, fpu_series.trajectories[0], k=20).theta)
    # bad input: one line each
    assert main(args + ["--data", str(tmp_path / "t.npz"), "--seed", "1", "--out", str(tmp_path / "x.npz")]) == 2
    assert "--seed draws snapshots at random" in capsys.readouterr().err
    save_system(tmp_path / "s.npz", fpu_series.system)
    assert main(args + ["--data", str(tmp_path / "s.npz"), "--out", str(tmp_path / "x.npz")]) == 2
    assert "holds a system; --time-series needs a trajectory file" in capsys.readouterr().err
    args[-1] = "200"
    assert main(args + ["--data", str(tmp_path / "t.npz"), "--out", str(tmp_path / "x.npz")]) == 2
    err = capsys.readouterr().err
    assert "need 204 consecutive frames" in err and len(err.strip().splitlines()) == 1, err


def test_prior_toward_the_source_with_a_large_lambda_returns_the_source(harmonic, driven_fpu):
    from core.learning.rfhgn.port import fit_port

    _, train, base = harmonic
    scale = np.max(np.abs(base.theta))
    near = adapt(base, train, k=10, prior="source", regularisation=1e8)
    assert near.info["adapt"]["prior"] == "source" and near.info["adapt"]["rule"] == "given"
    assert np.max(np.abs(near.theta - base.theta)) < 1e-6 * scale
    zero = adapt(base, train, k=10, prior="none", regularisation=1e8)  # plain ridge: pulled to 0 instead
    assert np.max(np.abs(zero.theta)) < 1e-3 * scale
    # a port model: theta, damping and forcing all stay the source's
    pm = fit_port(driven_fpu, RFConfig())
    pn = adapt(pm, driven_fpu, k=10, prior="source", regularisation=1e8)
    assert np.max(np.abs(pn.theta - pm.theta)) < 1e-6 * np.max(np.abs(pm.theta))
    assert pn.info["port"]["damping"] == pytest.approx(pm.info["port"]["damping"], rel=1e-6)
    np.testing.assert_allclose(pn.info["port"]["forcing"]["cos"], pm.info["port"]["forcing"]["cos"], rtol=1e-6,
                               atol=1e-9)
    # "auto" scores both priors per block and keeps the lower GCV
    auto = adapt(pm, driven_fpu, k=10)
    a = auto.info["adapt"]
    assert a["prior_asked"] == "auto"
    for name in ("p", "q"):
        sc = a["scores"][name]
        assert set(sc) == {"none", "source"}
        assert a["prior_blocks"][name] == min(sc, key=lambda c: min(sc[c]))
