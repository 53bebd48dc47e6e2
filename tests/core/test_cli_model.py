"""``python -m core train | rollout | evaluate`` end to end on a tiny system,
checked against direct calls of core, and their one-line user errors."""
import json
import re

import numpy as np
import pytest

from core.learning import metrics
from core.cli.app import build_parser, main
from core.physics.initial import initial_state
from core.files.io import load_dataset, load_trajectories
from core.learning.rfhgn import FittedModel
from core.learning.rollout import learned_energy, rollout
from core.physics.simulate import simulate

#: small networks, evaluated exactly (no interpolation tables: their build is
#: the model's business and tested with it), so the tests stay fast
SMALL = ["--set", "edge_width=24", "--set", "message_width=48", "--set", "node_width=8",
         "--set", "fast_tables=false"]


def _run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("cli_model")


@pytest.fixture(scope="module")
def trained(workdir):
    """A model trained by the CLI on random snapshots of a 2x2x2 lattice."""
    model = workdir / "m.npz"
    code = main(["train", "--kind", "cubic", "--n", "2", "--snapshots", "120", "--test-snapshots", "40",
                 "--seed", "4", "--out", str(model), "-q", *SMALL])
    assert code == 0
    return model


def test_train_prints_fit_time_and_test_mse_of_the_saved_model(capsys, workdir):
    model = workdir / "m2.npz"
    code, out, err = _run(capsys, ["train", "--kind", "cubic", "--n", "2", "--snapshots", "120",
                                   "--test-snapshots", "40", "--seed", "4", "--out", str(model), "-q", *SMALL])
    assert code == 0, err
    m = FittedModel.load(model)
    assert m.config.edge_width == 24 and m.config.message_width == 48
    fit_time = float(re.search(r"fit time: ([0-9.]+) s", out).group(1))
    assert fit_time == pytest.approx(m.info["fit_time"], abs=1e-4)
    printed = float(re.search(r"test derivative MSE: ([0-9.e+-]+) on 40 held-out", out).group(1))
    # the same snapshots drawn directly give the same test error
    from core.physics.builders import cubic_lattice
    from core.physics.datagen import random_snapshots

    ds = random_snapshots(cubic_lattice(2, 2, 2), 160, 0.1, 0.1, seed=4, test_fraction=40 / 160)
    assert len(ds.test) == 40
    assert printed == pytest.approx(metrics.derivative_mse(m, ds), rel=1e-3)
    assert printed < 1e-3  # and it learned something


def test_rollout_file_holds_truth_and_prediction_matching_direct_calls(capsys, workdir, trained):
    out_file, js = workdir / "r.npz", workdir / "r.json"
    code, out, err = _run(capsys, ["rollout", "--model", str(trained), "--kind", "cubic", "--n", "2",
                                   "--scale", "2", "--steps", "60", "--save-every", "20", "--seed", "7",
                                   "--out", str(out_file), "--json", str(js), "-q"])
    assert code == 0, err
    truth, pred = load_trajectories(out_file)
    assert truth.system.n == 64 and truth.label == "ground truth"
    assert pred.n_frames == 4 and learned_energy(pred) is not None
    # the same start, simulated and rolled out directly
    q0, p0 = initial_state(truth.system, 0.1, 0.1, seed=7)
    np.testing.assert_array_equal(truth.q[0], q0)
    direct_truth = simulate(truth.system, q0, p0, 0.01, 60, 20)
    np.testing.assert_allclose(truth.q, direct_truth.q, rtol=0, atol=1e-14)
    direct = rollout(FittedModel.load(trained), truth.system, q0, p0, 0.01, 60, 20)
    np.testing.assert_allclose(pred.q, direct.q, rtol=0, atol=1e-14)
    np.testing.assert_allclose(pred.total, direct.total, rtol=1e-14)
    doc = json.loads(js.read_text())
    assert doc["final_position_mse"] == pytest.approx(metrics.position_mse(truth, pred)[-1], rel=1e-12)
    assert doc["n_particles"] == 64
    assert "final position MSE" in out


def test_rollout_defaults_to_the_training_system(capsys, workdir, trained):
    out_file = workdir / "r0.npz"
    code, _, err = _run(capsys, ["rollout", "--model", str(trained), "--steps", "10", "--save-every", "5",
                                 "--out", str(out_file), "--no-truth", "-q"])
    assert code == 0, err
    (pred,) = load_trajectories(out_file)
    assert pred.system.n == 8


def test_evaluate_reports_derivative_and_rollout_measures(capsys, workdir, trained):
    data, js = workdir / "d.npz", workdir / "e.json"
    assert main(["simulate", "--kind", "cubic", "--n", "2", "--trajectories", "3", "--steps", "60",
                 "--save-every", "10", "--seed", "11", "--dataset-out", str(data), "-q"]) == 0
    capsys.readouterr()
    code, out, err = _run(capsys, ["evaluate", "--model", str(trained), "--data", str(data), "--json", str(js),
                                   "-q"])
    assert code == 0, err
    res = json.loads(js.read_text())
    ds = load_dataset(data)
    model = FittedModel.load(trained)
    assert res["test_derivative_mse"] == pytest.approx(metrics.derivative_mse(model, ds), rel=1e-12)
    assert res["train_derivative_mse"] == pytest.approx(metrics.derivative_mse(model, ds, ds.train), rel=1e-12)
    r = res["rollouts"]
    (k,) = ds.meta["test_trajectories"]
    truth = ds.trajectories[k]
    pred = rollout(model, ds.system, truth.q[0], truth.p[0], truth.dt, 60, truth.save_every)
    assert r["n"] == 1
    # one rollout: its geometric mean is its own Zerr (floored at GEOMETRIC_FLOOR where exact)
    expected = np.maximum(metrics.zerr(truth, pred), metrics.GEOMETRIC_FLOOR)
    np.testing.assert_allclose(r["zerr_geometric_mean"], expected, rtol=1e-10)
    assert "test derivative MSE" in out and "Zerr" in out


def test_train_from_a_dataset_file_uses_its_split(capsys, workdir):
    data, model = workdir / "d2.npz", workdir / "m3.npz"
    assert main(["simulate", "--kind", "chain", "--n", "4", "--trajectories", "4", "--steps", "40",
                 "--save-every", "4", "--dataset-out", str(data), "-q"]) == 0
    capsys.readouterr()
    code, out, err = _run(capsys, ["train", "--data", str(data), "--out", str(model), "-q", *SMALL])
    assert code == 0, err
    ds = load_dataset(data)
    assert f"on {len(ds.test)} held-out snapshots" in out
    assert FittedModel.load(model).dim == 2


@pytest.mark.parametrize("argv, match", [
    (["train", "--data", "{d}", "--kind", "cubic", "--out", "{w}/x.npz"], "--data brings its own system"),
    (["train", "--kind", "cubic", "--n", "2", "--set", "nonsense=1", "--out", "{w}/x.npz"], "unknown RF-HGN setting"),
    (["train", "--kind", "cubic", "--n", "2", "--set", "edge_width=0", "--out", "{w}/x.npz"], "edge_width"),
    (["train", "--kind", "cubic", "--n", "2", "--snapshots", "0", "--out", "{w}/x.npz"], "--snapshots"),
    (["train", "--kind", "cubic", "--n", "2", "--out", "{w}/nofolder/x.npz"], "does not exist"),
    (["train", "--kind", "cubic", "--n", "2", "--no-correction", "--out", "{w}/x.npz"], "--time-series"),
    (["rollout", "--model", "{w}/missing.npz", "--out", "{w}/x.npz"], "not found"),
    (["rollout", "--model", "{m}", "--kind", "square", "--out", "{w}/x.npz"], "3D"),
    (["rollout", "--model", "{m}", "--scale", "0", "--out", "{w}/x.npz"], "--scale"),
    (["rollout", "--model", "{m}", "--dt", "-1", "--out", "{w}/x.npz"], "dt"),
    (["rollout", "--model", "{m}", "--out", "{w}/x.npz", "--tol", "0"], "tolerance"),
    (["rollout", "--model", "{d}", "--out", "{w}/x.npz"], "model"),
    (["evaluate", "--model", "{m}", "--data", "{m}"], "dataset"),
    (["evaluate", "--model", "{m}", "--data", "{d}", "--rollouts", "-1"], "--rollouts"),
    (["train", "--out"], "expected one argument"),
])
def test_user_errors_exit_2_with_one_line(capsys, workdir, trained, argv, match):
    data = workdir / "d.npz"
    if not data.exists():
        assert main(["simulate", "--kind", "cubic", "--n", "2", "--trajectories", "3", "--steps", "20",
                     "--dataset-out", str(data), "-q"]) == 0
    argv = [a.format(w=workdir, m=trained, d=data) for a in argv]
    capsys.readouterr()
    code, out, err = _run(capsys, argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert match in lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["train", "rollout", "evaluate"])
def test_help_explains_every_option(command):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices[command]
    for action in sub._actions:
        assert action.help and len(action.help) > 10, f"{command} {action.option_strings} has no help"
    text = sub.format_help()
    for action in sub._actions:
        for opt in action.option_strings:
            assert opt in text


def test_rollout_beyond_the_training_distances_warns_in_one_line(capsys, workdir, trained):
    out_file, js = workdir / "rw.npz", workdir / "rw.json"
    code, out, err = _run(capsys, ["rollout", "--model", str(trained), "--steps", "50", "--save-every", "10",
                                   "--momentum", "1.0", "--out", str(out_file), "--json", str(js), "-q"])
    assert code == 0, err
    warn = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warn) == 1 and "beyond the largest in the training data" in warn[0]
    doc = json.loads(js.read_text())
    assert doc["outside_training_range"] is True
    assert doc["pair_distance_range"][1] > doc["training_pair_distance_range"][1]
    # momenta of sd 1 against the training data's: its particles' kinetic energies are beyond them too
    assert doc["particle_kinetic_energy_max"] > doc["training_particle_kinetic_energy_max"] > 0
    assert doc["training_range_left"]["quantity"] in ("pair distance", "particle kinetic energy")
