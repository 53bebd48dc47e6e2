"""The Sweep panel (issue 15): the grid from the current system and settings, a sweep run in a worker
(core.cluster.sweep.run_sweep) filling the results table and the Pareto plot as points finish, cancel
keeping finished points, "Make model" fitting a picked point's settings on the current data, the results
saved with the project, and nothing heavy (torch, dask, distributed) imported in the window's process."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import Qt
from studio_helpers import build_tiny_lattice, set_tiny_training

from core.errors import HGNError
from studio import pipeline, sweeps


def _tiny_sweep_window(qtbot, w, tmp_path, n=3):
    build_tiny_lattice(qtbot, w, n, n)
    set_tiny_training(w)
    panel = w.sweepPanel
    panel.fill_from_document()
    panel.outEdit.setText(str(tmp_path / "sweep.json"))
    return panel


def _run_and_wait(qtbot, w, timeout=120000):
    panel = w.sweepPanel
    qtbot.mouseClick(panel.runButton, Qt.LeftButton)
    assert w.jobs.is_sweeping() and panel.runButton.text() == "Cancel sweep"
    qtbot.waitUntil(lambda: not w.jobs.is_running(), timeout=timeout)
    _drawn()


def _drawn():
    """Run the window's pending drawing now (the table and the plot update in pacer turns)."""
    from studio.pacing import pacer

    pacer().flush()


def test_the_grid_comes_from_the_current_system_and_settings(qtbot, window, tmp_path):
    from core.cluster.sweep import point_key

    w, d = window, window.document
    panel = _tiny_sweep_window(qtbot, w, tmp_path)
    fit = d.values("model/rfhgn")
    texts = panel.texts()
    assert texts["node_width"] == str(fit["node_width"]) == "8" and texts["message_width"] == "16"
    assert texts["sampler"] == fit["sampler"] and texts["n"] == "3" and float(texts["regularisation"]) == \
        fit["regularisation"]
    assert panel.countLabel.text() == "1 point"
    panel.set_texts(node_width="8, 16", regularisation="1e-10, 1e-8", seed="0-1")
    pts = panel.points()
    assert panel.countLabel.text() == "8 points" and len(pts) == 8 and len({point_key(p) for p in pts}) == 8
    assert {(p["fit"].get("node_width", 16), p["fit"]["regularisation"], p["fit"].get("seed", 0)) for p in pts} == \
        {(a, b, c) for a in (8, 16) for b in (1e-10, 1e-8) for c in (0, 1)}
    sim = d.values("simulation")
    for p in pts:        # the current system and data settings
        assert p["system"]["kind"] == "square" and p["system"]["n"] == 3 and p["system"]["potential"] == "harmonic"
        assert p["data"]["trajectories"] == sim["n_trajectories"] == 3 and p["data"]["steps"] == 40
        assert p["rollout"]["steps"] == sim["rollout_steps"] and p["fit"]["edge_width"] == 8
    # a bad field is named; a non-square lattice says what the sweep does not carry over
    panel.set_texts(node_width="8, x")
    assert "Node widths" in panel.countLabel.text() and "'x'" in panel.countLabel.text()
    build_tiny_lattice(qtbot, w, 3, 4)
    panel.fill_from_document()
    assert "m = 4 is not used" in panel.notesLabel.text()
    # a scheduler engine without an address, or a results file that is not JSON: refused, nothing runs
    failed = []
    w.jobs.failed.connect(lambda m, _t: failed.append(m))
    panel.set_engine("scheduler", scheduler="")
    assert not panel.run() and "scheduler's address" in failed[-1] and not w.jobs.is_running()
    panel.set_engine("process")
    panel.outEdit.setText(str(tmp_path / "sweep.csv"))
    assert not panel.run() and "must end in .json" in failed[-1] and not w.jobs.is_running()


def test_a_random_search_draws_its_points_from_ranges_and_lists(qtbot, window, tmp_path):
    """Random points > 0: each point draws every field, one of its listed values or a value of its range
    lo:hi (core.cluster.sweep.random_points: log-uniform for widths and regularisation, whole widths);
    the same seed draws the same points; a range without random search, or a bad range, is named."""
    from core.cluster.sweep import point_key, random_points

    w = window
    panel = _tiny_sweep_window(qtbot, w, tmp_path)
    panel.set_texts(node_width="4:32", regularisation="1e-12:1e-6", sampler="swim, elm", seed="0")
    # a range in a grid: said at the field, no points
    assert "Node widths" in panel.countLabel.text() and "random search" in panel.countLabel.text()
    with pytest.raises(HGNError, match="Random points"):
        panel.points()
    panel.set_random(12, seed=5)
    # the count on every edit is counted, not drawn: making thousands of points took seconds of the GUI thread
    assert panel.countLabel.text() == "12 points drawn at random (repeats dropped)"
    pts = panel.points()
    assert 10 <= len(pts) <= 12
    assert len({point_key(p) for p in pts}) == len(pts)
    widths = [p["fit"].get("node_width", 16) for p in pts]
    regs = [p["fit"]["regularisation"] for p in pts]
    assert all(isinstance(v, int) and 4 <= v <= 32 for v in widths) and len(set(widths)) > 3
    assert all(1e-12 <= v <= 1e-6 for v in regs) and len(set(regs)) == len(pts)
    assert {p["fit"].get("sampler", "swim") for p in pts} == {"swim", "elm"}
    # the panel's draw is core's, on the same base point and seed; another seed draws other points
    base, _ = sweeps.base_point(w.document)
    want = random_points(sweeps.space_of(panel.texts(), random=True), 12, 5, base)
    assert [point_key(p) for p in pts] == [point_key(p) for p in want]
    panel.set_random(12, seed=6)
    assert [point_key(p) for p in panel.points()] != [point_key(p) for p in pts]
    # a range the setting cannot take: named at the field
    panel.set_texts(node_width="4.5:32")
    assert "Node widths" in panel.countLabel.text() and "whole numbers" in panel.countLabel.text()
    panel.set_texts(node_width="8", sampler="swim:elm")
    assert "Samplers" in panel.countLabel.text() and "choice" in panel.countLabel.text()
    # back to the grid: every combination of listed values, counted without making the points
    import studio.sweeps as sweeps_module

    made = []
    real = sweeps_module.grid_points
    sweeps_module.grid_points = lambda *a, **k: made.append(1) or real(*a, **k)
    try:
        panel.set_texts(sampler="swim, elm", regularisation="1e-12, 1e-8, 1e-6", node_width="8, 16, 32, 64",
                        seed="0-9")
        panel.set_random(0)
        assert panel.countLabel.text() == "240 points" and not made
        assert len(panel.points()) == 240 and made
    finally:
        sweeps_module.grid_points = real
    # a grid of more points than the studio runs: refused at the count, before any point is made
    panel.set_texts(node_width=", ".join(map(str, range(1, 41))), edge_width=", ".join(map(str, range(1, 41))),
                    message_width="8, 16, 32, 64, 128, 256, 512", regularisation="1e-12", sampler="swim", seed="0")
    assert "11,200 points" in panel.countLabel.text() and "at most 2,000" in panel.countLabel.text()
    with pytest.raises(HGNError, match="at most 2,000"):
        panel.points()


def test_a_sweep_fills_the_table_and_the_plot_and_a_point_becomes_a_model(qtbot, window, tmp_path):
    from core.cluster.sweep import config_of, load_results

    w, d = window, window.document
    panel = _tiny_sweep_window(qtbot, w, tmp_path)
    panel.set_texts(node_width="4, 8", seed="0")
    axes = [panel.plot.getPlotItem().getAxis(side) for side in ("bottom", "left")]
    assert panel.showing_empty_text() and not any(a.isVisible() for a in axes)   # says what comes, no bare axes
    seen = []
    d.sweepRecordAdded.connect(lambda r: seen.append(r["key"]))
    _run_and_wait(qtbot, w)
    assert not panel.showing_empty_text() and all(a.isVisible() for a in axes)
    out = tmp_path / "sweep.json"
    recs = load_results(out)
    assert len(recs) == 2 and all(r["status"] == "ok" for r in recs)
    assert seen == [r["key"] for r in recs]                      # rows arrived one by one, as they finished
    assert d.sweep["records"] == recs and d.sweep["path"] == str(out) and not d.sweep["stale"]
    assert (tmp_path / "sweep.csv").exists()
    # the table: one row per point, the varying setting and the results
    t = panel.table
    heads = [t.horizontalHeaderItem(j).text() for j in range(t.columnCount())]
    assert t.rowCount() == 2 and heads[:2] == ["key", "node"] and "test MSE" in heads and "fit s" in heads
    col = heads.index("test MSE")
    assert [t.item(i, col).text() for i in range(2)] == [f"{r['result']['test_mse']:.3g}" for r in recs]
    # a later point with a wider value widens its column (it was elided: "0.00...")
    import copy

    wide = copy.deepcopy(recs[0])
    wide["key"] = "f" * len(wide["key"])
    wide["result"]["fit_s"], wide["result"]["test_mse"] = 1.23456e-4, 9.87654e-13
    d.add_sweep_record(wide)
    _drawn()
    fm = t.fontMetrics()
    assert t.rowCount() == 3
    for j in range(t.columnCount()):
        for i in range(3):
            assert fm.horizontalAdvance(t.item(i, j).text()) + 6 <= t.columnWidth(j), (heads[j], t.item(i, j).text())
    d.set_sweep({**d.sweep, "records": recs})      # the sweep as it ran
    _drawn()
    assert [t.item(i, 1).text() for i in range(2)] == ["4", "8"]
    # the Pareto plot: fit time against test error, coloured by the node width (legend), the front drawn
    panel.set_colour_by("node_width")
    shown = panel.scatter_points()
    assert set(shown) == {"node 4", "node 8"}
    for r in recs:
        (x, y, key), = shown[f"node {r['settings']['fit'].get('node_width', 16)}"]
        assert key == r["key"] and x == pytest.approx(r["result"]["fit_s"]) and y == pytest.approx(
            r["result"]["test_mse"])
    fx = np.array([r["result"]["fit_s"] for r in recs])
    fy = np.array([r["result"]["test_mse"] for r in recs])
    dominated = [i for i in range(2) if fx[1 - i] <= fx[i] and fy[1 - i] <= fy[i]]
    assert len(panel.front_keys()) == 2 - len(dominated)
    # running the same grid again computes nothing (the JSON holds both points)
    statuses = []
    w.jobs.status.connect(statuses.append)
    _run_and_wait(qtbot, w)
    assert "0 points computed" in statuses[-1] and "2 already in" in statuses[-1] and load_results(out) == recs
    # pick the second point (the table) and make it a model: core's fit of its settings on the current data
    assert not panel.makeButton.isEnabled()
    t.selectRow(1)
    assert panel.picked()["key"] == recs[1]["key"] and panel.makeButton.isEnabled()
    assert panel.pickItem.getData()[0] is not None and len(panel.pickItem.getData()[0]) == 1
    n = len(d.models)
    qtbot.mouseClick(panel.makeButton, Qt.LeftButton)
    qtbot.waitUntil(lambda: len(d.models) > n and not w.jobs.is_running(), timeout=60000)
    rec = d.models[-1]
    lin = rec.info["lineage"]
    assert lin["sweep_point"] == recs[1]["key"] and rec.name.startswith("rfhgn-")
    assert f"from sweep point {recs[1]['key']}" in w.modelsPanel.table.item(d.models.index(rec), 0).toolTip()
    cfg = config_of(recs[1]["settings"])
    assert rec.settings == cfg.to_dict() and rec.settings["node_width"] == 8
    from studio.methods import method_by_key

    want = pipeline.train_job(d.system, d.values("simulation"), method_by_key("rfhgn"), cfg.to_dict())
    assert rec.test_mse == pytest.approx(want.test_mse, rel=1e-9)
    assert w.undo.undoText() == f"Make model {rec.name}"
    w.undo.undo()
    assert rec not in d.models
    w.undo.redo()
    assert d.models[-1] is rec
    # saved with the project and back
    path = tmp_path / "swept.hgnproj"
    assert w.projects.save_to(path)
    assert w.projects.open_path(path)
    _drawn()
    assert d.sweep["records"] == json.loads(json.dumps(recs)) and d.sweep["path"] == str(out)
    assert panel.table.rowCount() == 2 and len(panel.scatter_points()) == 2
    assert d.models[-1].info["lineage"]["sweep_point"] == recs[1]["key"]
    # a new system keeps the results, marked stale
    build_tiny_lattice(qtbot, w, 4, 4)
    assert d.sweep["stale"] and len(d.sweep["records"]) == 2 and "stale" in panel.statusLabel.text()


def test_cancel_keeps_the_finished_points(qtbot, window, tmp_path):
    from core.cluster.sweep import load_results

    w, d = window, window.document
    panel = _tiny_sweep_window(qtbot, w, tmp_path)
    panel.set_texts(node_width="4, 5, 6, 7, 8, 9, 10, 11", seed="0")
    cancelled = []
    w.jobs.cancelled.connect(cancelled.append)
    qtbot.mouseClick(panel.runButton, Qt.LeftButton)
    qtbot.waitUntil(lambda: d.sweep is not None and len(d.sweep["records"]) >= 1, timeout=120000)
    qtbot.mouseClick(panel.runButton, Qt.LeftButton)                 # now "Cancel sweep"
    qtbot.waitUntil(lambda: not w.jobs.is_running(), timeout=30000)
    _drawn()
    assert cancelled == ["Sweep"] and panel.runButton.text() == "Run sweep"
    kept = load_results(tmp_path / "sweep.json")
    assert 1 <= len(kept) < 8
    # its process was ended mid-point: the JSON and CSV were written from the journal afterwards
    assert not (tmp_path / "sweep.journal.jsonl").exists()
    doc = json.loads((tmp_path / "sweep.json").read_text())
    assert [r["key"] for r in doc["points"]] == [r["key"] for r in kept]
    assert len((tmp_path / "sweep.csv").read_text().splitlines()) == len(kept) + 1
    assert [r["key"] for r in d.sweep["records"]] == [r["key"] for r in kept]
    assert panel.table.rowCount() == len(kept)
    # run again: the finished points are skipped, the rest computed
    _run_and_wait(qtbot, w, timeout=240000)
    assert len(load_results(tmp_path / "sweep.json")) == 8 and len(d.sweep["records"]) == 8
    assert [r["key"] for r in load_results(tmp_path / "sweep.json")][:len(kept)] == [r["key"] for r in kept]


def test_a_sweep_ended_mid_point_gets_its_json_and_csv_from_the_journal(qtbot, window, tmp_path):
    """Cancelled while a long point runs, the job's process is ended (JobRunner's grace): the finished point
    is in core's journal, and the window has the JSON and CSV written from it in a worker."""
    w, d = window, window.document
    panel = _tiny_sweep_window(qtbot, w, tmp_path)
    panel.set_texts(node_width="4", seed="0", n="3, 24")          # the second point: a 24x24 lattice
    qtbot.mouseClick(panel.runButton, Qt.LeftButton)
    qtbot.waitUntil(lambda: d.sweep is not None and len(d.sweep["records"]) == 1, timeout=120000)
    qtbot.mouseClick(panel.runButton, Qt.LeftButton)
    qtbot.waitUntil(lambda: not w.jobs.is_running(), timeout=30000)
    assert not (tmp_path / "sweep.journal.jsonl").exists()
    doc = json.loads((tmp_path / "sweep.json").read_text())
    assert [r["key"] for r in doc["points"]] == [r["key"] for r in d.sweep["records"]]
    assert len(doc["points"]) == 1 and len((tmp_path / "sweep.csv").read_text().splitlines()) == 2
    assert panel.runButton.text() == "Run sweep"


def test_a_sweep_on_a_local_dask_cluster_of_two_workers(qtbot, window, tmp_path):
    import psutil

    from core.cluster.sweep import load_results

    w, d = window, window.document
    panel = _tiny_sweep_window(qtbot, w, tmp_path)
    panel.set_engine("local", workers=2)
    assert panel.workersSpin.isEnabled() and not panel.schedulerEdit.isEnabled()
    # cancelled while points run on the cluster: the finished ones stay, the cluster's processes end
    panel.set_texts(node_width="4, 5, 6, 7, 8, 9", seed="0")
    cancelled = []
    w.jobs.cancelled.connect(cancelled.append)
    qtbot.mouseClick(panel.runButton, Qt.LeftButton)
    qtbot.waitUntil(lambda: d.sweep is not None and len(d.sweep["records"]) >= 1, timeout=120000)
    job_pid = w.jobs.sweeper.pid
    # the LocalCluster's processes (multiprocessing's resource tracker lives as long as the job's worker
    # process, which serves more jobs)
    cluster = [p for p in psutil.Process(job_pid).children(recursive=True)
               if "resource_tracker" not in " ".join(p.cmdline())]
    assert len(cluster) >= 2
    qtbot.mouseClick(panel.runButton, Qt.LeftButton)
    qtbot.waitUntil(lambda: not w.jobs.is_running(), timeout=30000)
    assert cancelled == ["Sweep"]
    kept = load_results(tmp_path / "sweep.json")
    assert 1 <= len(kept) < 6 and len(d.sweep["records"]) == len(kept)
    gone, alive = psutil.wait_procs(cluster, timeout=20)
    assert not alive, alive
    # the same grid again on a new cluster: the finished points are skipped, the rest computed there
    _run_and_wait(qtbot, w, timeout=180000)
    recs = load_results(tmp_path / "sweep.json")
    assert len(recs) == 6 and all(r["status"] == "ok" for r in recs)
    assert [r["key"] for r in recs][:len(kept)] == [r["key"] for r in kept]
    # the points ran in the cluster's worker processes, not in the job's own
    assert all(r["result"]["worker"].split(":")[-1] != str(job_pid) for r in recs)
    by_key = sorted(recs, key=lambda r: r["key"])       # the file in finishing order, the document in the grid's
    assert sorted(d.sweep["records"], key=lambda r: r["key"]) == by_key and panel.table.rowCount() == 6


def test_a_sweep_on_a_dask_scheduler_given_by_its_address(qtbot, window, tmp_path):
    """The "Dask scheduler" engine: the job connects to a running scheduler (here one started by the test,
    its worker a thread of the test's process) and leaves it running."""
    import os

    from distributed import Client, LocalCluster

    from core.cluster.sweep import load_results

    w, d = window, window.document
    panel = _tiny_sweep_window(qtbot, w, tmp_path)
    panel.set_texts(node_width="4", seed="0")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://", host="127.0.0.1",
                      dashboard_address=None) as cluster:
        panel.set_engine("scheduler", scheduler=cluster.scheduler_address)
        assert panel.schedulerEdit.isEnabled() and not panel.workersSpin.isEnabled()
        failed = []
        w.jobs.failed.connect(lambda m, t: failed.append(m + t))
        _run_and_wait(qtbot, w)
        assert not failed, failed
        recs = load_results(tmp_path / "sweep.json")
        assert len(recs) == 1 and recs[0]["status"] == "ok"
        assert recs[0]["result"]["worker"].endswith(f":{os.getpid()}")      # it ran on the cluster's worker
        assert d.sweep["records"] == recs and panel.table.rowCount() == 1
        with Client(cluster) as client:                                     # the cluster is still there
            assert len(client.scheduler_info()["workers"]) == 1


def test_a_damaged_stored_sweep_is_dropped_on_open():
    from core.files.project import Project
    from studio.document import Document

    good = {"records": [{"key": "abc", "settings": {}, "status": "ok", "result": {"fit_s": 0.1, "test_mse": 1e-4}}],
            "path": "/x/sweep.json", "system": "s"}
    doc = Document(Project(ui={"sweep": good}))
    assert doc.sweep["records"][0]["key"] == "abc" and doc.sweep["stale"] is False
    for bad in ({**good, "records": [{"key": 1}]}, {**good, "records": "x"}, [1]):
        doc = Document(Project(ui={"sweep": bad}))
        assert doc.sweep is None and "sweep" not in doc.project.ui


#: after the window's start: a 2-point sweep in the window (no Dask) and Make model of its first point;
#: prints the modules imported after start-up and whether torch, dask or distributed are among all of them
_SWEEP_IN_WINDOW = """\
before = set(sys.modules)
p = w.sweepPanel
p.fill_from_document()
p.set_texts(node_width="4, 8", seed="0")
p.outEdit.setText(OUT)
assert p.run()
run_until(lambda: not w.jobs.is_running(), 240)
assert len(d.sweep["records"]) == 2
from studio.pacing import pacer
pacer().flush()
p.table.selectRow(0)
assert p.make_model()
run_until(lambda: len(d.models) == 1 and not w.jobs.is_running(), 240)
pacer().flush()
app.processEvents()
print("LINEAGE", d.models[0].info["lineage"]["sweep_point"] == d.sweep["records"][0]["key"])
print("NEW", sorted(m for m in set(sys.modules) - before if not m.startswith("_")))
print("HEAVY", sorted(m for m in ("torch", "dask", "distributed") if m in sys.modules))
w.close()
"""


def test_a_sweep_and_make_model_import_nothing_heavy_in_the_window_process(tmp_path):
    """The sweep runs in a worker: the window's process imports neither torch nor dask/distributed, and
    nothing at all after start-up (core.cluster.sweep is imported at start-up: studio.app.GUI_MODULES)."""
    from studio_helpers import run_window_script

    lines = run_window_script(_SWEEP_IN_WINDOW, tmp_path, OUT=str(tmp_path / "sweep.json"))
    text = "\n".join(lines)
    assert "LINEAGE True" in lines and "HEAVY []" in lines, text
    assert [x for x in lines if x.startswith("NEW ")] == ["NEW []"], text


@pytest.mark.parametrize("values, inside", [
    ([0.0076, 0.0111], [0.008, 0.009, 0.01, 0.011]),          # within one decade: a round linear step
    ([0.0083, 0.0155], [0.01, 0.012, 0.014]),
    ([2.0, 2.0], [2.0]),                                      # one value: a tick at it
    ([0.003, 0.2], [0.005, 0.01, 0.02, 0.05, 0.1, 0.2]),      # two decades: 1, 2, 5
    ([1e-12, 1e-6], [1e-12, 1e-11, 1e-10, 1e-9, 1e-8, 1e-7, 1e-6]),  # more: the decades
])
def test_the_pareto_plots_log_ticks_label_the_values_own_range(values, inside):
    from studio.widgets.sweep_panel import log_ticks

    (major, _minor), = [log_ticks(values)]
    lo, hi = np.log10(min(values)), np.log10(max(values))
    shown = sorted(10 ** pos for pos, _label in major if lo - 1e-9 <= pos <= hi + 1e-9)
    np.testing.assert_allclose(shown, inside, rtol=1e-9)
    assert log_ticks([np.nan, -1.0]) is None
