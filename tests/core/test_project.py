"""core.files.project: a whole project in one file. Round trips keep every array
bit for bit and every setting equal; the restored model predicts exactly what
the saved one did; corrupt, truncated, foreign and newer files are refused
with a clear message; a failed save leaves the previous file intact; imported
trajectories become training data with the right derivatives."""
from __future__ import annotations

import errno
import json
import os
import zipfile

import numpy as np
import pytest

from core.physics import builders

from core import container
from core.files import io, project
from core.physics.datagen import DataSpec, generate
from core.errors import HGNError
from core.physics.forces import ForceField
from core.files.project import ModelRecord, Project, RolloutRecord, load_project, save_project
from core.learning.rfhgn import RFConfig, fit
from core.learning.rollout import rollout
from core.physics.simulate import simulate
from core.physics.trajectory import Trajectory


@pytest.fixture(scope="module")
def fitted():
    system = builders.square_lattice(3, 3, potential_params={"k": 1.5})
    ds = generate(system, DataSpec(steps=40, n_trajectories=3, save_every=4, seed=2))
    model = fit(ds, RFConfig(node_width=8, edge_width=8, message_width=16, fast_tables=False))
    return system, ds, model


def make_project(fitted, with_dataset=True) -> Project:
    system, ds, model = fitted
    rng = np.random.default_rng(0)
    q0 = system.positions + 0.05 * rng.standard_normal(system.positions.shape)
    p0 = 0.1 * rng.standard_normal(system.positions.shape)
    truth = simulate(system, q0, p0, 0.01, 60, save_every=5)
    pred = rollout(model, system, q0, p0, 0.01, 60, save_every=5)
    imported = simulate(system, q0, -p0, 0.01, 20, save_every=2)
    imported.label = "from another code"
    imported.meta["forces"] = rng.standard_normal(imported.q.shape)
    rec = ModelRecord(name="rfhgn-1", method="rfhgn", settings={"node_width": 8, "sampler": "swim"},
                      system=system, model=model, dataset=ds if with_dataset else None, fit_time=0.125,
                      test_mse=3.5e-6, data_time=0.25, loss=np.array([1.0, 0.5, 0.25]),
                      final_position_mse=1e-4, max_abs_drift=2e-3,
                      info={"fit_time": 0.125, "solve": {"lambda": np.float64(1e-8)}, "odd": object()})
    unsaveable = ModelRecord(name="baseline-2", method="baseline", settings={"epochs": 3}, system=system,
                             model=object(), fit_time=1.0, test_mse=1e-3)
    return Project(system=system, system_source={"kind": "square", "n": 3, "m": 3},
                   simulation={"dt": 0.01, "steps": 40, "temperature": None},
                   method="rfhgn", model_settings={"rfhgn": {"node_width": 8}},
                   models=[rec, unsaveable], current_model=0,
                   rollout=RolloutRecord(truth=truth, prediction=pred, model_name="rfhgn-1", label="rfhgn-1",
                                         zero_shot=False, steps=60),
                   ground_truth=[imported],
                   view={"frame": 7, "layout": "overlay", "colour": "speed",
                         "camera": {"center": [1.0, 1.0, 0.0], "scale_factor": 4.5, "elevation": 90.0,
                                    "azimuth": 0.0, "fov": 35.0}},
                   ui={"system": {"kind": "square"}, "train": {"method": "rfhgn"}}, name="demo")


def same_traj(a: Trajectory, b: Trajectory) -> None:
    for name in ("t", "q", "p", "kinetic", "potential", "momentum"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert (a.dt, a.save_every, a.label) == (b.dt, b.save_every, b.label)


def test_round_trip_keeps_everything(tmp_path, fitted):
    pr = make_project(fitted)
    path = save_project(tmp_path / "demo.hgnproj", pr)
    back = load_project(path)

    # system and settings
    assert io.same_system(back.system, pr.system)
    assert back.system_source == pr.system_source and back.simulation == pr.simulation
    assert back.method == "rfhgn" and back.model_settings == pr.model_settings
    assert back.view == pr.view and back.ui == pr.ui and back.name == "demo"
    assert back.current_model == 0 and back.meta["version"] == project.PROJECT_VERSION

    # results table
    m0, m1 = back.models
    assert (m0.name, m0.method, m0.settings) == ("rfhgn-1", "rfhgn", {"node_width": 8, "sampler": "swim"})
    assert (m0.fit_time, m0.test_mse, m0.data_time) == (0.125, 3.5e-6, 0.25)
    assert (m0.final_position_mse, m0.max_abs_drift) == (1e-4, 2e-3)
    assert np.array_equal(m0.loss, [1.0, 0.5, 0.25])
    assert m0.info["solve"] == {"lambda": 1e-8} and m0.info["odd"].startswith("<object")
    assert io.same_system(m0.system, pr.system)

    # the model itself: same weights, same predictions
    system, ds, model = fitted
    assert np.array_equal(m0.model.theta, model.theta)
    q, p = ds.q[ds.test[:4]], ds.p[ds.test[:4]]
    a, b = model.time_derivatives(system, q, p), m0.model.time_derivatives(system, q, p)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert np.array_equal(model.energy(system, q, p), m0.model.energy(system, q, p))

    # a model that cannot be saved keeps its row and says why
    assert m1.model is None and "cannot be saved" in m1.note and m1.test_mse == 1e-3

    # training data
    d = m0.dataset
    for name in ("q", "p", "dqdt", "dpdt", "energy", "train", "test"):
        assert np.array_equal(getattr(d, name), getattr(ds, name)), name
    assert np.array_equal(d.meta["trajectory_of_snapshot"], ds.meta["trajectory_of_snapshot"])
    assert len(d.trajectories) == len(ds.trajectories)
    same_traj(d.trajectories[1], ds.trajectories[1])

    # roll-out and imported ground truth
    r = back.rollout
    same_traj(r.truth, pr.rollout.truth)
    same_traj(r.prediction, pr.rollout.prediction)
    assert (r.model_name, r.zero_shot, r.steps) == ("rfhgn-1", False, 60)
    assert r.truth.system is r.prediction.system            # one system shared in the file
    same_traj(back.ground_truth[0], pr.ground_truth[0])
    assert np.array_equal(back.ground_truth[0].meta["forces"], pr.ground_truth[0].meta["forces"])


def test_project_without_datasets_and_empty_project(tmp_path, fitted):
    small = save_project(tmp_path / "small.hgnproj", make_project(fitted), datasets=False)
    full = save_project(tmp_path / "full.hgnproj", make_project(fitted))
    assert os.path.getsize(small) < os.path.getsize(full)
    assert load_project(small).models[0].dataset is None
    empty = load_project(save_project(tmp_path / "empty.hgnproj", Project()))
    assert empty.system is None and empty.models == [] and empty.rollout is None and empty.current_model == -1


def test_load_any_and_header(tmp_path, fitted):
    path = save_project(tmp_path / "p.hgnproj", make_project(fitted))
    kind, value = io.load_any(path)
    assert kind == "project" and isinstance(value, Project)
    assert project.read_header(path)["name"] == "demo"
    assert project.is_project_file(path)
    assert "2 models" in project.describe_project(value)


# ----------------------------------------------------------------------
# bad files change nothing and say what is wrong
# ----------------------------------------------------------------------
def test_truncated_file(tmp_path, fitted):
    path = save_project(tmp_path / "p.hgnproj", make_project(fitted))
    data = path.read_bytes()
    cut = tmp_path / "cut.hgnproj"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(HGNError, match="corrupt, truncated"):
        load_project(cut)


def test_foreign_files(tmp_path):
    text = tmp_path / "notes.hgnproj"
    text.write_text("just some text")
    with pytest.raises(HGNError, match="cut.hgnproj|notes.hgnproj"):
        load_project(text)
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.arange(3))
    with pytest.raises(HGNError, match="not an HGN Studio file"):
        load_project(plain)
    with pytest.raises(HGNError, match="file not found"):
        load_project(tmp_path / "missing.hgnproj")


def test_other_kinds_say_what_they_are(tmp_path, fitted):
    sysfile = io.save_system(tmp_path / "s.npz", fitted[0])
    with pytest.raises(HGNError, match="holds a system, not a project"):
        load_project(sysfile)


def _rewrite(path, out, edit_header=None, drop=()):
    header, arrays = container.load_npz(path)
    kind = header.pop("kind")
    for k in ("format", "version"):
        header.pop(k)
    if edit_header:
        edit_header(header)
    arrays = {k: v for k, v in arrays.items() if k not in drop}
    return container.save_npz(out, kind, header, arrays)


def test_newer_version_refused(tmp_path, fitted):
    path = save_project(tmp_path / "p.hgnproj", make_project(fitted))
    newer = _rewrite(path, tmp_path / "newer.hgnproj", lambda h: h["project"].update(version=99))
    with pytest.raises(HGNError, match="newer HGN Studio"):
        load_project(newer)


@pytest.mark.parametrize("drop,msg", [(("traj3.q",), "missing array"),
                                      (("model0.theta",), "missing array"),
                                      (("dataset0.dqdt",), "missing array"),
                                      (("model0.loss",), "loss curve"),
                                      (("system0.positions",), "positions")])
def test_missing_arrays(tmp_path, fitted, drop, msg):
    path = save_project(tmp_path / "p.hgnproj", make_project(fitted))
    bad = _rewrite(path, tmp_path / "bad.hgnproj", drop=drop)
    with pytest.raises(HGNError, match=msg):
        load_project(bad)


@pytest.mark.parametrize("edit,msg", [
    (lambda h: h["rollout"].update(truth=99), "refers to trajectory 99"),
    (lambda h: h["models"][0].update(system=5), "refers to system 5"),
    (lambda h: h.update(models="nope"), "header field 'models' must be a list, got 'nope'"),
    (lambda h: h["models"][0].pop("name"), r"header field 'models\[0\].name' is missing"),
    (lambda h: h.pop("project"), "project description is missing"),
    (lambda h: h["models"][0]["model"]["header"].pop("config"),
     r"model 0 \(rfhgn-1\): embedded header field 'config' is missing"),
    (lambda h: h["models"][0]["model"].update(kind="martian-model"), None),
])
def test_damaged_headers(tmp_path, fitted, edit, msg):
    path = save_project(tmp_path / "p.hgnproj", make_project(fitted))
    bad = _rewrite(path, tmp_path / "bad.hgnproj", edit)
    if msg is None:   # an unknown model kind: the row survives without its model, with a note
        back = load_project(bad)
        assert back.models[0].model is None and "martian-model" in back.models[0].note
        return
    with pytest.raises(HGNError, match=msg):
        load_project(bad)


def test_mismatched_rollout_refused_on_save(tmp_path, fitted):
    pr = make_project(fitted)
    r = pr.rollout
    short = Trajectory(r.prediction.system, r.prediction.t[:3], r.prediction.q[:3], r.prediction.p[:3],
                       r.prediction.kinetic[:3], r.prediction.potential[:3], r.prediction.momentum[:3],
                       r.prediction.dt, r.prediction.save_every)
    pr.rollout = RolloutRecord(truth=r.truth, prediction=short)
    with pytest.raises(HGNError, match="one time axis"):
        save_project(tmp_path / "x.hgnproj", pr)
    assert not (tmp_path / "x.hgnproj").exists()


def test_unstorable_settings_are_named(tmp_path, fitted):
    pr = make_project(fitted)
    pr.simulation = {"dt": object()}
    with pytest.raises(HGNError, match="simulation settings.dt"):
        save_project(tmp_path / "x.hgnproj", pr)


def test_failed_save_keeps_previous_file(tmp_path, fitted, monkeypatch):
    path = save_project(tmp_path / "p.hgnproj", Project(name="old"))
    before = path.read_bytes()

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(container.os, "replace", full)
    with pytest.raises(HGNError, match="No space left on device"):
        save_project(path, make_project(fitted))
    assert path.read_bytes() == before
    assert [n for n in os.listdir(tmp_path) if n.endswith((".tmp", ".hgn-partial"))] == []
    monkeypatch.undo()
    assert load_project(path).name == "old"


def test_project_file_is_a_documented_npz(tmp_path, fitted):
    """Other programs can read it: a zip of .npy arrays plus a JSON header."""
    path = save_project(tmp_path / "p.hgnproj", make_project(fitted))
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
    assert {"__header__.npy", "system0.positions.npy", "traj0.q.npy", "model0.theta.npy"} <= names
    with np.load(path) as z:
        header = json.loads(bytes(z["__header__"]).decode())
    assert header["kind"] == "project" and header["project"]["version"] == 1
    assert header["rollout"]["prediction"] is not None and header["models"][0]["model"]["kind"] == "model"


# ----------------------------------------------------------------------
# imported ground truth as training data
# ----------------------------------------------------------------------
def test_dataset_from_trajectories_computes_exact_derivatives(fitted):
    system = fitted[0]
    rng = np.random.default_rng(3)
    q0 = system.positions + 0.05 * rng.standard_normal(system.positions.shape)
    p0 = 0.1 * rng.standard_normal(system.positions.shape)
    tr = simulate(system, q0, p0, 0.01, 40, save_every=2)
    ds = project.dataset_from_trajectories([tr], test_fraction=0.25, seed=1, stride=2)
    idx = np.arange(0, tr.n_frames, 2)
    assert ds.n_snapshots == len(idx) and np.array_equal(ds.q, tr.q[idx])
    ff = ForceField(system)
    assert np.allclose(ds.dpdt, [ff.forces(x) for x in tr.q[idx]], rtol=0, atol=1e-13)
    assert np.allclose(ds.dqdt, tr.p[idx] / system.masses[:, None])
    assert np.allclose(ds.energy, tr.total[idx])
    assert len(ds.test) == round(0.25 * len(idx)) and not set(ds.train) & set(ds.test)
    assert ds.meta["forces"] == "computed" and ds.meta["split"] == "snapshot"
    # a fit on it learns the dynamics of the lattice
    model = fit(ds, RFConfig(node_width=8, edge_width=8, message_width=16, fast_tables=False))
    dq, dp = model.time_derivatives(system, ds.q[ds.test], ds.p[ds.test])
    assert np.mean((dp - ds.dpdt[ds.test]) ** 2) < 1e-3 * np.mean(ds.dpdt[ds.test] ** 2)


def test_dataset_from_trajectories_prefers_file_forces_and_splits_by_run(fitted):
    system = fitted[0]
    runs = []
    for k in range(4):
        rng = np.random.default_rng(k)
        tr = simulate(system, system.positions + 0.05 * rng.standard_normal((system.n, 2)),
                      0.1 * rng.standard_normal((system.n, 2)), 0.01, 10, save_every=5)
        tr.meta["forces"] = np.full(tr.q.shape, float(k))
        runs.append(tr)
    ds = project.dataset_from_trajectories(runs, test_fraction=0.25, seed=0)
    assert ds.meta["forces"] == "file" and ds.meta["split"] == "trajectory"
    of = ds.meta["trajectory_of_snapshot"]
    assert np.array_equal(ds.dpdt[:, 0, 0], of.astype(float))      # each run's own forces
    assert len(set(of[ds.test])) == 1 and not set(of[ds.test]) & set(of[ds.train])
    # the split is recorded per run, so a time-series fit keeps the test runs out
    assert sorted(ds.meta["test_trajectories"]) == sorted(set(of[ds.test].tolist()))
    assert sorted(ds.meta["train_trajectories"]) == sorted(set(of[ds.train].tolist()))


def test_dataset_from_trajectories_bad_input(fitted):
    system = fitted[0]
    other = builders.chain(4)
    tr = simulate(system, system.positions, np.zeros((system.n, 2)), 0.01, 4)
    tr2 = simulate(other, other.positions, np.zeros((other.n, 2)), 0.01, 4)
    with pytest.raises(HGNError, match="different systems"):
        project.dataset_from_trajectories([tr, tr2])
    with pytest.raises(HGNError, match="import one first"):
        project.dataset_from_trajectories([])
    with pytest.raises(HGNError, match="stride"):
        project.dataset_from_trajectories([tr], stride=0)
    with pytest.raises(HGNError, match="at least 2"):
        project.dataset_from_trajectories([tr], stride=10)


def test_gradient_trained_baseline_round_trip(tmp_path, fitted):
    """Models of other kinds travel through their own file format too."""
    from core.learning.baselines import BaselineConfig, fit as fit_baseline

    system, ds, _ = fitted
    model = fit_baseline(ds, BaselineConfig(max_epochs=3, node_width=8, edge_width=8, message_width=8,
                                            time_budget=5))
    loss = np.asarray(model.info["loss_history"], dtype=float)
    rec = ModelRecord(name="baseline-1", method="baseline", settings={"optimizer": "adam"}, system=system,
                      model=model, loss=loss, fit_time=float(model.info["fit_time"]), test_mse=1.0)
    back = load_project(save_project(tmp_path / "b.hgnproj", Project(system=system, models=[rec])))
    m = back.models[0]
    assert type(m.model).__name__ == "TrainedHGN" and np.array_equal(m.loss, loss)
    q, p = ds.q[:3], ds.p[:3]
    assert np.array_equal(m.model.energy(system, q, p), model.energy(system, q, p))
    a, b = m.model.time_derivatives(system, q, p), model.time_derivatives(system, q, p)
    assert np.array_equal(a[1], b[1])
