"""RF-HGN with damping and forcing identified in one solve (issue 13, core/learning/rfhgn/port.py): known
coefficients recovered from ground truth of a damped, driven 3x3x3 lattice; the undamped case is today's
fit; the coefficients travel with the model file; bad settings refused."""
import json

import numpy as np
import pytest

from core.errors import HGNError
from core.learning.rfhgn import RFConfig, fit
from core.learning.rfhgn.port import PortSpec, fit_port, identified_port
from core.physics import builders
from core.physics.datagen import DataSpec, generate, random_snapshots
from core.physics.port import Drive, Port

LATTICE = builders.cubic_lattice(3, 3, 3)
FACE = tuple(int(i) for i in np.flatnonzero(np.isclose(LATTICE.positions[:, 0], 0.0)))
GAMMA, AMP, W, PHASE = 0.05, 0.1, 1.3, 0.3
SPEC = DataSpec(n_trajectories=5, steps=500, dt=0.01, save_every=5)


@pytest.fixture(scope="module")
def driven():
    """Uniform damping 0.05, one face driven along (1, 0.5, 0)."""
    port = Port(GAMMA, (Drive(FACE, AMP, W, (1.0, 0.5, 0.0), PHASE),))
    return generate(LATTICE.copy(port=port), SPEC)


def test_uniform_damping_and_drive_amplitudes_are_identified(driven):
    # candidates: every particle (the 18 undriven ones must come out ~0)
    model = fit_port(driven, RFConfig(), PortSpec("uniform", tuple(range(27)), (W,)))
    ident = model.info["port"]
    assert abs(ident["damping"] / GAMMA - 1) < 1e-4, ident["damping"]
    f = ident["forcing"]
    amp = np.array(f["amplitude"][0])
    on = np.isin(f["nodes"], FACE)
    assert np.abs(amp[on] / AMP - 1).max() < 1e-4, amp[on]
    assert amp[~on].max() < 1e-4 * AMP, amp[~on].max()
    assert np.abs(np.array(f["phase"][0])[on] - PHASE).max() < 1e-4
    u = np.array([1.0, 0.5, 0.0]) / np.hypot(1.0, 0.5)
    assert np.abs(np.array(f["direction"][0])[on] - u).max() < 1e-4
    # the plain fit, blind to damping and forcing, cannot explain these data
    plain = fit(driven, RFConfig())
    assert plain.info["train_mse"] > 1e3 * model.info["train_mse"], (plain.info["train_mse"], model.info["train_mse"])


def test_the_default_spec_is_the_datas_own_port(driven):
    model = fit_port(driven, RFConfig())
    ident = model.info["port"]
    assert ident["spec"] == {"damping": "uniform", "nodes": list(FACE), "frequencies": [W], "field": False}
    port = identified_port(ident)
    assert abs(port.damping - GAMMA) < 1e-4 * GAMMA and len(port.drives) == len(FACE)
    for d in port.drives:
        assert abs(d.amplitude - AMP) < 1e-4 * AMP and abs(d.phase - PHASE) < 1e-4 and d.frequency == W


def test_per_particle_damping_of_a_boundary_layer_and_a_field_are_identified():
    far = np.isclose(LATTICE.positions[:, 0], 2.0)
    gamma = np.where(far, 0.2, 0.0)
    port = Port(gamma, (Drive(FACE, AMP, W, (0.0, 0.0, 1.0), 0.0),), (0.0, 0.0, -0.02))
    ds = generate(LATTICE.copy(port=port), SPEC)
    model = fit_port(ds, RFConfig())
    ident = model.info["port"]
    assert ident["spec"]["damping"] == "per-particle" and ident["spec"]["field"]
    assert np.abs(np.array(ident["damping"]) - gamma).max() < 1e-4
    np.testing.assert_allclose(ident["field"], [0.0, 0.0, -0.02], rtol=0, atol=1e-6)


def test_without_port_terms_it_is_todays_fit():
    plain = random_snapshots(LATTICE, 200, seed=1)
    test = random_snapshots(LATTICE, 20, seed=2)
    for enc in ("invariant", "frame"):
        cfg = RFConfig(encoding=enc, fast_tables=False)
        a, b = fit(plain, cfg), fit_port(plain, cfg, PortSpec("none"))
        assert a.network.L == b.network.L
        np.testing.assert_array_equal(a.theta, b.theta)          # bit for bit: the same fit
        for x, y in zip(a.gradients(LATTICE, test.q, test.p), b.gradients(LATTICE, test.q, test.p)):
            np.testing.assert_array_equal(x, y)
        assert b.info["train_mse"] == a.info["train_mse"]
        assert b.info["port"]["damping"] is None and b.info["port"]["forcing"] is None


def test_the_model_file_carries_the_identified_coefficients(driven, tmp_path, capsys):
    from core.cli.app import main
    from core.learning.rfhgn import FittedModel

    model = fit_port(driven, RFConfig())
    path = model.save(tmp_path / "m.npz")
    back = FittedModel.load(path)
    assert back.info["port"] == json.loads(json.dumps(model.info["port"]))
    assert main(["info", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["identified"] is True
    assert doc["damping"] == model.info["port"]["damping"]
    assert doc["forcing"]["amplitude"] == model.info["port"]["forcing"]["amplitude"]


def test_bad_port_fits_are_refused(driven):
    no_times = driven.subset(np.arange(10))
    no_times.meta.pop("time_of_snapshot")
    with pytest.raises(HGNError, match="time of every snapshot"):
        fit_port(no_times, RFConfig(), PortSpec("uniform", (0,), (1.0,)))
    with pytest.raises(HGNError, match="does not exist"):
        fit_port(driven, RFConfig(), PortSpec("uniform", (27,), (1.0,)))
    for bad, words in ((dict(damping="some"), "damping must be one of"), (dict(frequencies=(0.0,), nodes=(1,)),
                       "frequencies must be"), (dict(frequencies=(1.0,)), "need the particles"),
                       (dict(nodes=(1, 1)), "distinct")):
        with pytest.raises(HGNError, match=words):
            PortSpec(**bad)


def test_a_roll_out_with_the_identified_port_follows_the_truth(driven):
    from core.learning.rfhgn.port import port_derivative_mse, rollout_port
    from core.physics.initial import initial_state
    from core.physics.simulate import simulate

    model = fit_port(driven, RFConfig())
    assert port_derivative_mse(model, driven) < 1e-7  # held-out trajectory
    s = driven.system
    q0, p0 = initial_state(s, 0.1, 0.1, seed=99)
    truth = simulate(s, q0, p0, 0.01, 1000, save_every=100)
    pred = rollout_port(model, s, q0, p0, 0.01, 1000, save_every=100)
    mse = np.mean((pred.q - truth.q) ** 2, axis=(1, 2))
    assert mse[-1] < 1e-8, mse
    # the same roll-out without the identified damping and forcing is far off
    bare = rollout_port(model, s, q0, p0, 0.01, 1000, save_every=100, port=Port(0.0))
    assert np.mean((bare.q[-1] - truth.q[-1]) ** 2) > 1e3 * mse[-1]


def test_train_on_the_command_line_identifies_the_port(tmp_path, capsys):
    from core.cli.app import main

    data, out = tmp_path / "d.npz", tmp_path / "m.npz"
    assert main(["simulate", "--kind", "cubic", "--n", "3", "--damping", "0.05", "--drive-nodes", "0,1,2",
                 "--drive-amplitude", "0.1", "--drive-frequency", "1.3", "--trajectories", "3", "--steps", "300",
                 "--save-every", "5", "--dataset-out", str(data), "-q"]) == 0
    assert main(["train", "--data", str(data), "--out", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "identified: damping 0.05" in printed, printed
    assert main(["info", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["identified"] and abs(doc["damping"] / 0.05 - 1) < 1e-2
    from core.learning.rfhgn import FittedModel

    # roll-outs use the identified damping and forcing, on the training system and zero-shot (--scale 2: the
    # truth's and the prediction's ports carried to the 6x6x6 lattice's corresponding particles)
    mse = {}
    for scale, n in (("1", 27), ("2", 216)):
        assert main(["rollout", "--model", str(out), "--steps", "300", "--scale", scale, "--json",
                     str(tmp_path / "r.json"), "--out", str(tmp_path / "r.npz"), "-q"]) == 0
        capsys.readouterr()
        doc = json.loads((tmp_path / "r.json").read_text())
        mse[scale] = doc["final_position_mse"]
        assert doc["n_particles"] == n and mse[scale] < 1e-5, mse
        from core.files.io import load_trajectories

        truth, pred = load_trajectories(tmp_path / "r.npz")
        assert truth.system.port.damped and truth.system.port.forced
        assert pred.meta["integrator"].startswith("strang-verlet (learned, port)")
    # evaluate: the port model's derivative error and roll-outs use its identified damping and forcing
    from core.cli.model import evaluate
    from core.files.io import load_dataset

    ds = load_dataset(data)
    ev = evaluate(FittedModel.load(out), ds)
    assert ev["test_derivative_mse"] < 1e-6 and ev["rollouts"]["final_position_mse_mean"] < 1e-6, ev
    assert main(["train", "--data", str(data), "--out", str(out), "--no-port", "-q"]) == 0
    capsys.readouterr()
    ev_plain = evaluate(FittedModel.load(out), ds)
    assert ev_plain["rollouts"]["final_position_mse_mean"] > 1e2 * ev["rollouts"]["final_position_mse_mean"]
    assert main(["rollout", "--model", str(out), "--steps", "300", "--json", str(tmp_path / "r.json"),
                 "--out", str(tmp_path / "r.npz"), "-q"]) == 0
    capsys.readouterr()
    assert json.loads((tmp_path / "r.json").read_text())["final_position_mse"] > 1e2 * mse["1"], mse
    assert "port" not in FittedModel.load(out).info
    assert main(["train", "--data", str(data), "--out", str(out), "--time-series", "-q"]) == 0
    assert "identified: damping 0.0" in capsys.readouterr().out
    info = FittedModel.load(out).info
    assert info["source"].startswith("time series (port") and abs(info["port"]["damping"] / 0.05 - 1) < 1e-2
    assert main(["train", "--data", str(data), "--out", str(out), "--time-series", "--no-correction"]) == 2
    assert "--no-correction" in capsys.readouterr().err


def test_time_series_without_derivatives_identify_the_port():
    from core.learning.rfhgn.port import fit_port_time_series, series_dataset

    port = Port(GAMMA, (Drive(FACE, AMP, W, (1.0, 0.5, 0.0), PHASE),))
    ds = generate(LATTICE.copy(port=port), DataSpec(n_trajectories=4, steps=500, dt=0.01, save_every=5))
    errs = {}
    for order in (2, 4):
        ident = fit_port_time_series(ds.trajectories, RFConfig(), order=order).info["port"]
        errs[order] = (abs(ident["damping"] / GAMMA - 1),
                       np.abs(np.array(ident["forcing"]["amplitude"][0]) / AMP - 1).max())
    # frames 0.05 apart: 4th-order differences leave the integrator's own O(dt^2) consistency error (~7e-5
    # measured), 2nd-order ones 20x more
    assert max(errs[4]) < 3e-4, errs
    assert errs[2][0] > 5 * errs[4][0], errs
    # the differences themselves: order 4 is exact on a quartic in time
    tr = ds.trajectories[0]
    tq = tr.t[:, None, None]
    fake = type(tr)(system=tr.system, t=tr.t, q=tq ** 4 + 0 * tr.q, p=tq ** 3 + 0 * tr.p, kinetic=tr.kinetic,
                    potential=tr.potential, momentum=tr.momentum, dt=tr.dt, save_every=tr.save_every)
    sd = series_dataset([fake], 4)
    t_in = sd.meta["time_of_snapshot"][:, None, None]
    np.testing.assert_allclose(sd.dqdt, 4 * t_in ** 3 + 0 * sd.q, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sd.dpdt, 3 * t_in ** 2 + 0 * sd.p, rtol=1e-10, atol=1e-12)
    with pytest.raises(HGNError, match="order"):
        series_dataset([tr], 3)
    with pytest.raises(HGNError, match="frames"):
        series_dataset([fake.__class__(system=tr.system, t=tr.t[:3], q=tr.q[:3], p=tr.p[:3],
                                       kinetic=tr.kinetic[:3], potential=tr.potential[:3],
                                       momentum=tr.momentum[:3], dt=tr.dt, save_every=tr.save_every)], 4)


def test_a_small_fourier_basis_finds_a_drive_of_unknown_frequency(driven):
    # the data span t = 0..5 in each run; a drive at the 3rd harmonic of 2 pi / 5 is found there, the other
    # harmonics come out ~0
    w = 3 * 2 * np.pi / 5.0
    port = Port(GAMMA, (Drive(FACE[:3], AMP, w, (0.0, 1.0, 0.0), 0.2),))
    ds = generate(LATTICE.copy(port=port), SPEC)
    model = fit_port(ds, RFConfig(), PortSpec.fourier(FACE[:3], 5.0, 5))
    f = model.info["port"]["forcing"]
    amp = np.array(f["amplitude"])  # (harmonics, nodes)
    assert np.abs(amp[2] / AMP - 1).max() < 1e-4, amp
    assert np.delete(amp, 2, axis=0).max() < 1e-4 * AMP, amp
    assert abs(model.info["port"]["damping"] / GAMMA - 1) < 1e-4
    with pytest.raises(HGNError, match="period"):
        PortSpec.fourier((0,), 0.0, 3)
    with pytest.raises(HGNError, match="harmonics"):
        PortSpec.fourier((0,), 1.0, 0)


def test_coefficients_of_data_from_the_feature_family_are_recovered_to_round_off():
    """When the Hamiltonian lies in the span of the features (here: a fitted
    model's own H, on its own hidden layers), the one solve has no model
    error: the damping and the drive (amplitude, phase, direction) of data
    made from that H come back to round-off as the normal equations amplify
    it (condition ~1e13 with ELM features at regularisation 1e-14: measured
    errors 1.5e-9 and 5e-9; with SWIM features 1e-7), against ~1e-6 to 1e-5
    from ground-truth data, where the features only approximate H."""
    from core.learning.hgn.device import resolve_device
    from core.learning.rfhgn import port as port_fit

    model = fit(random_snapshots(LATTICE, 500, 0.1, 0.1, seed=0), RFConfig(fast_tables=False, sampler="elm"))
    rng = np.random.default_rng(5)
    S = 120
    q = LATTICE.positions[None] + 0.1 * rng.standard_normal((S, 27, 3))
    p = 0.1 * rng.standard_normal((S, 27, 3))
    t = rng.uniform(0.0, 20.0, S)
    hq, hp = model.gradients(LATTICE, q, p, exact=True)
    gamma, amp, w, phase = 0.037, 0.21, 1.7, -0.4
    u = np.array([0.0, 0.6, 0.8])
    force = np.zeros_like(q)                          # written out here, not through port_columns
    force[:, list(FACE), :] = (amp * np.cos(w * t + phase))[:, None, None] * u
    dqdt, dpdt = hp, -hq - gamma * hp + force
    spec = PortSpec("uniform", FACE, (w,))
    config = RFConfig(regularisation=1e-14)
    ne, _, _ = port_fit._assemble(model.network, LATTICE, q, p, dqdt, dpdt, t, np.arange(S), spec, config,
                                  resolve_device("cpu"), None)
    _, coef, info = port_fit._solve(ne, model.network, spec.n_columns(27, 3), config)
    ident = port_fit.identified(spec, coef, 27, 3)
    assert abs(ident["damping"] / gamma - 1) < 5e-8, ident["damping"]
    f = ident["forcing"]
    np.testing.assert_allclose(f["amplitude"][0], amp, rtol=5e-8)
    np.testing.assert_allclose(f["phase"][0], phase, rtol=0, atol=5e-8)
    np.testing.assert_allclose(np.array(f["direction"][0]), np.tile(u, (len(FACE), 1)), rtol=0, atol=5e-8)
    assert info["train_mse"] < 1e-20 * np.mean(dpdt ** 2)


def test_time_series_saved_wrapped_into_a_periodic_box_give_the_unwrapped_derivatives():
    # a periodic run saved folded into the box (integrators' wrap_saved, imported frames) jumps by a box
    # length where a particle crosses a face; the differences must see the motion, not the jump
    from dataclasses import replace

    from core.learning.rfhgn.port import series_dataset
    from core.physics.initial import initial_state
    from core.physics.neighbours import wrap
    from core.physics.simulate import run_system, to_trajectory

    system = builders.molecular(16, density=0.6, dim=2, cutoff=2.0, periodic=True, seed=1, jitter=0.1)
    box = system.box
    q0, p0 = initial_state(system, 0.05, momentum=1.5, seed=3)
    run, ff = run_system(system, q0, p0, 0.005, 400, save_every=2)
    tr = to_trajectory(system, run, ff)
    wrapped = replace(tr, q=wrap(tr.q, box))
    jumps = np.abs(np.diff(wrapped.q, axis=0)) > box / 2
    assert jumps.sum() >= 3, "the run must cross the box's faces for this test to mean anything"
    for order in (2, 4):
        a, b = series_dataset([tr], order), series_dataset([wrapped], order)
        np.testing.assert_allclose(b.dqdt, a.dqdt, rtol=0, atol=1e-10 * np.abs(a.dqdt).max())
        np.testing.assert_array_equal(b.dpdt, a.dpdt)
        np.testing.assert_array_equal(b.q, wrapped.q[order // 2:-(order // 2)])  # the snapshots stay as saved
    # against independent truth: straight lines through the faces (dq/dt = v exactly), order 4
    v = np.array([[0.9, -0.4]] * system.n) * np.linspace(0.5, 1.5, system.n)[:, None]
    t = tr.t
    line = replace(tr, q=wrap(system.positions[None] + t[:, None, None] * v, box))
    assert (np.abs(np.diff(line.q, axis=0)) > box / 2).any()
    sd = series_dataset([line], 4)
    np.testing.assert_allclose(sd.dqdt, np.broadcast_to(v, sd.dqdt.shape), rtol=1e-9, atol=1e-9)


def test_a_fitted_port_model_rolls_out_with_its_port_through_rollout_also_in_float32(driven):
    """core.learning.rollout.rollout uses the identified damping and forcing of a fitted port model by itself
    (it once dropped them silently); the float32 roll-out (tables on the device) stays within the stepper's
    tested bound of the float64 one."""
    from core.learning.rollout import rollout
    from core.learning.stepper import FLOAT32_BOUND
    from core.physics.initial import initial_state
    from core.physics.simulate import simulate

    model = fit_port(driven, RFConfig())
    s = driven.system
    q0, p0 = initial_state(s, 0.1, 0.1, seed=99)
    truth = simulate(s, q0, p0, 0.01, 1000, save_every=100)
    pred = rollout(model, s.copy(port=None), q0, p0, 0.01, 1000, 100)  # the port comes from the model
    assert np.mean((pred.q[-1] - truth.q[-1]) ** 2) < 1e-8
    assert pred.system.port.damped and pred.system.port.forced and pred.diverged is None
    f32 = rollout(model, s.copy(port=None), q0, p0, 0.01, 1000, 100, precision="float32")
    assert np.abs(f32.q - pred.q).max() < FLOAT32_BOUND, np.abs(f32.q - pred.q).max()
