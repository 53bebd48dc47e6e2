"""The studio as one document: settings live in the document (forms show it
and write through undoable commands), saving writes the document's project
and opening replaces it, the live roll-out is what the project stores."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QUndoStack

from core.files.project import Project, load_project, save_project
from core.learning.rollout_buffer import RolloutBuffer
from core.physics.builders import build
from core.physics.simulate import simulate
from studio.commands import choose_kind, set_setting
from studio.defaults import BUILDER_DEFAULTS, SIMULATION
from studio.document import Document
from studio_helpers import build_tiny_lattice


def test_settings_undo_and_redo_through_the_document(qtbot):
    from studio.widgets.forms import FieldForm, FieldSpec

    doc, undo = Document(), QUndoStack()
    seen = []
    doc.settingsChanged.connect(lambda s, k: seen.append((s, k)))
    form = FieldForm([FieldSpec("dt", "Time step", "float", SIMULATION.dt),
                      FieldSpec("steps", "Steps", "int", SIMULATION.steps, minimum=1, maximum=10**6)])
    qtbot.addWidget(form)
    form.bind(doc, "simulation", undo.push)

    undo.push(set_setting(doc, "simulation", "steps", 321))
    assert doc.get("simulation", "steps") == 321 and doc.project.simulation["steps"] == 321
    assert form.value("steps") == 321 and seen[-1] == ("simulation", "steps")
    # a user edit of the form is a command as well, and the form holds no value of its own
    form.editors["dt"].setText("0.002")
    form.editors["dt"].editingFinished.emit()
    assert doc.get("simulation", "dt") == 0.002 and undo.count() == 2
    undo.undo()
    assert doc.get("simulation", "dt") == SIMULATION.dt and form.value("dt") == SIMULATION.dt
    undo.undo()
    assert doc.get("simulation", "steps") == SIMULATION.steps and form.value("steps") == SIMULATION.steps
    undo.redo()
    undo.redo()
    assert (doc.get("simulation", "steps"), doc.get("simulation", "dt")) == (321, 0.002)
    assert (form.value("steps"), form.value("dt")) == (321, 0.002)

    # the generator kind brings its potential and its simulation defaults in one step
    n = undo.count()
    undo.push(choose_kind(doc, "molecular"))
    assert (doc.get("system", "kind"), doc.get("system", "potential")) == ("molecular", "lennard-jones")
    assert doc.get("simulation", "temperature") == 1.0 and doc.get("simulation", "dt") == 0.002   # the user's dt
    undo.undo()
    assert (doc.get("system", "kind"), doc.get("system", "potential")) == ("cubic", "harmonic")
    assert doc.get("simulation", "temperature") == SIMULATION.temperature and undo.count() == n + 1


def _rollout(n_frames_filled: int):
    s = build("square", n=3, m=3)
    tr = simulate(s, s.positions + 0.03, np.zeros_like(s.positions), 0.01, 100, save_every=5)
    buf = RolloutBuffer(s, 0.01, 100, 5, label="m-1", model_name="m-1")
    half = simulate(s, tr.q[0], tr.p[0], 0.01, 5 * (n_frames_filled - 1), save_every=5)
    buf.add("truth", tr)                 # the truth ran ahead of the prediction
    buf.add("prediction", half)
    return buf, tr


def test_the_live_rollout_is_what_the_project_stores(tmp_path):
    buf, tr = _rollout(7)
    assert buf.n_filled == 7 and buf.n_frames == 21 and not buf.finished
    path = save_project(tmp_path / "live.hgnproj", Project(system=buf.system, rollout=buf))
    back = load_project(path).rollout
    assert isinstance(back, RolloutBuffer) and back.finished
    assert back.n_filled == back.n_frames == 7                    # the filled frames, both runs
    assert np.array_equal(back.q["truth"], tr.q[:7]) and np.array_equal(back.q["prediction"], buf.q["prediction"][:7])
    assert np.array_equal(back.t, buf.t[:7]) and back.model_name == "m-1"
    assert np.allclose(back.measures()["final_position_mse"], buf.measures()["final_position_mse"])
    # nothing computed yet: nothing to keep
    empty = RolloutBuffer(buf.system, 0.01, 100, 5)
    assert load_project(save_project(tmp_path / "e.hgnproj", Project(system=buf.system, rollout=empty))).rollout is None


def _type(form, name, text):
    form.editors[name].setText(text)
    form.editors[name].editingFinished.emit()


def test_save_writes_the_document_and_open_replaces_it(qtbot, window, tmp_path):
    w = window
    d, c = w.document, w.projects
    build_tiny_lattice(qtbot, w, 3, 3)
    sp, tp = w.systemPanel, w.trainPanel
    _type(sp.potentialForms["harmonic"], "k", "1.7")
    qtbot.mouseClick(sp.buildButton, Qt.LeftButton)
    sp.builderForms["square"].editors["n"].setValue(5)          # typed, not built: the shown system is 3x3
    tp.simForm.editors["steps"].setValue(77)
    tp.methodForms["rfhgn"].editors["node_width"].setValue(12)
    w.modelsPanel.factorSpin.setValue(3)
    path = tmp_path / "doc.hgnproj"
    assert c.save_to(path)
    saved = load_project(path)
    assert saved.simulation == d.project.simulation and saved.model_settings["rfhgn"]["node_width"] == 12
    assert saved.ui["zero_shot"]["factor"] == 3 and saved.system.n == 9

    # the user goes on ...
    sp.set_kind("chain")
    tp.simForm.editors["steps"].setValue(5)
    tp.methodForms["rfhgn"].editors["node_width"].setValue(40)
    w.modelsPanel.factorSpin.setValue(6)
    _type(sp.potentialForms["harmonic"], "k", "2.5")
    before = d.project
    # ... and opens the file: a new project in the document, every form shows it
    assert c.open_path(path)
    assert d.project is not before and w.undo.count() == 0
    assert sp.kind == "square" and sp.kindCombo.currentData() == "square"
    assert sp.builderStack.currentWidget() is sp.builderForms["square"]
    # the system form describes the system shown (3x3), not what was typed after building it
    assert sp.builderForms["square"].value("n") == 3 and d.get("generator/square", "n") == 3
    assert sp.potentialForms["harmonic"].value("k") == 1.7
    assert "square 3x3" in sp.summary.text()
    assert tp.simForm.value("steps") == 77 and tp.methodForms["rfhgn"].value("node_width") == 12
    assert w.modelsPanel.factorSpin.value() == 3
    assert d.system.n == 9 and w.views.truthView.system is d.system


def test_projects_of_older_studios_restore_their_panels(qtbot, window, tmp_path):
    """Older studios kept the generator forms and a copy of the train panel
    in Project.ui; such files still fill the forms."""
    s = build("triangular", n=4, m=3)
    old = Project(system=s, system_source={"kind": "triangular"}, simulation={"dt": 0.02, "seed": 3},
                  method="rfhgn", model_settings={"rfhgn": {"edge_width": 24}},
                  ui={"system": {"kind": "triangular", "potential": "harmonic",
                                 "builders": {"chain": {"n": 11}}, "potentials": {"morse": {"D": 3.0}},
                                 "start": {"displacement": 0.05}},
                      "train": {"simulation": {"dt": 0.02}, "method": "rfhgn", "models": {}},
                      "zero_shot": {"factor": 2}})
    path = save_project(tmp_path / "old.hgnproj", old)
    assert window.projects.open_path(path)
    w = window
    assert w.systemPanel.kind == "triangular" and w.systemPanel.builderForms["triangular"].value("m") == 3
    assert w.systemPanel.builderForms["chain"].value("n") == 11
    assert w.systemPanel.potentialForms["morse"].value("D") == 3.0
    assert w.systemPanel.startForm.value("displacement") == 0.05
    assert w.trainPanel.simForm.value("dt") == 0.02 and w.systemPanel.startForm.value("seed") == 3
    assert w.trainPanel.methodForms["rfhgn"].value("edge_width") == 24
    assert w.modelsPanel.factorSpin.value() == 2


def _fake_model(w, name="rfhgn-1", system=None, model=None):
    """A model row in the document without fitting (the table, the files and
    the questions only need the record)."""
    from core.files.project import ModelRecord
    from studio.commands import AddModelCommand

    rec = ModelRecord(name=name, method="rfhgn", settings={"node_width": 8}, system=system or w.document.system,
                      model=model, fit_time=0.25, test_mse=1.5e-6, max_abs_drift=2e-3)
    w.undo.push(AddModelCommand(w.document, rec))
    return rec


def test_quit_with_unsaved_models_asks_to_save_discard_or_cancel(qtbot, window, tmp_path):
    from PySide6.QtGui import QKeySequence

    w = window
    c = w.projects
    asked = []
    answer = ["cancel"]
    c.choose = lambda title, text: asked.append(text) or answer[0]
    assert QKeySequence("Ctrl+Q") in w.quitAction.shortcuts()

    # nothing unsaved: no question (reopened so the window stays for the rest)
    assert c.confirm_close() and not asked
    _fake_model(w)
    assert w.document.has_unsaved_models()
    w.quitAction.trigger()                              # Ctrl+Q
    assert len(asked) == 1 and "1 fitted model" in asked[0]
    assert w.isVisible()                                # Cancel: still there, nothing lost
    assert len(w.document.models) == 1

    # opening another project asks too; Cancel keeps the open one
    other = save_project(tmp_path / "other.hgnproj", Project(system=build("chain", n=4)))
    assert not c.open_path(other)
    assert len(asked) == 2 and w.document.system.n != 4 and len(w.document.models) == 1

    # Save: the project is written, then the window closes
    c.path = tmp_path / "mine.hgnproj"
    answer[0] = "save"
    assert w.close()
    assert len(asked) == 3 and len(load_project(tmp_path / "mine.hgnproj").models) == 1


def test_discard_removes_the_autosave_and_a_forced_exit_keeps_unsaved_work(qtbot, tmp_path):
    from studio_helpers import make_window

    w = make_window(qtbot)
    c = w.projects
    _fake_model(w)
    path = c.autosave_path()
    # an exit that nobody confirmed (no question answered) keeps the unsaved models
    c.shutdown()
    assert path.exists() and [m.name for m in load_project(path).models] == ["rfhgn-1"]
    # choosing Discard lets the clean exit remove it
    c.choose = lambda *_a: "discard"
    assert w.close() and not path.exists()


def test_zero_shot_is_disabled_with_a_reason_for_a_drawn_system(qtbot, window):
    from core.learning.rfhgn import TrueHamiltonian
    from studio.jobs import zero_shot_reason

    w = window
    mp = w.modelsPanel
    assert not mp.zeroShotButton.isEnabled() and "train a model" in mp.zeroShotButton.toolTip()
    lattice = w.document.system
    _fake_model(w, "rfhgn-1", lattice, TrueHamiltonian(lattice))
    assert mp.zeroShotButton.isEnabled()

    dp = w.drawingPanel
    for p in [(0, 0), (1, 0), (0, 1)]:
        dp.model.add_point(p)
    dp.model.add_edge(0, 1)
    dp.model.add_edge(0, 2)
    drawn = dp.use()
    assert w.document.system is drawn
    _fake_model(w, "rfhgn-2", drawn, TrueHamiltonian(drawn))
    assert not mp.zeroShotButton.isEnabled()
    assert "drawn system" in mp.zeroShotButton.toolTip()
    # asked anyway (e.g. from a script), the job refuses with the same reason, nothing starts
    assert not w.zero_shot(w.document.current, 2, 10, 5)
    assert "drawn system" in w.statusLabel.text()
    assert w.document.rollout is None or not w.document.rollout.zero_shot
    mp.table.selectRow(0)                        # the lattice model again
    assert mp.zeroShotButton.isEnabled() and "larger system" in mp.zeroShotButton.toolTip()
    w.jobs.shutdown()

    # the reason agrees with what core can rebuild
    from core.errors import HGNError
    from core.physics.builders import rebuild_scaled

    for kind in BUILDER_DEFAULTS:
        params = dict(BUILDER_DEFAULTS[kind], **({"n": 27, "cutoff": 1.2} if kind == "molecular" else {}))
        s = build(kind, **params)
        assert zero_shot_reason(s) == "" and rebuild_scaled(s, 2).n > s.n
    for s in (drawn, build("chain", n=4)):
        if s is not drawn:
            s.meta.pop("spacing")
        assert zero_shot_reason(s)
        with pytest.raises((HGNError, KeyError)):
            rebuild_scaled(s, 2)


def test_status_bar_shows_progress_and_cancel_from_every_tab(qtbot, window):
    from PySide6.QtCore import Qt

    w = window
    build_tiny_lattice(qtbot, w, 4, 4)
    for k, v in {"n_trajectories": 400, "steps": 4000, "save_every": 50}.items():
        w.document.set("simulation", k, v)
    w.leftTabs.setCurrentIndex(0)                        # the System tab: the Train panel is hidden
    assert not w.jobStatus.isVisible()
    assert w.train()
    assert not w.trainPanel.isVisible()
    qtbot.waitUntil(lambda: w.jobStatus.bar.value() > 0, timeout=10000)
    assert w.jobStatus.isVisible() and w.jobStatus.cancelButton.isEnabled()
    assert "simulating ground truth" in w.jobStatus.label.text()
    # when the data are ready the bar says the fit runs, not "simulating ... 100%"
    w.jobs.trainer.progress.emit("simulate", 1.0)
    assert w.jobStatus.label.text().startswith("fitting RF-HGN") and w.jobStatus.bar.maximum() == 0
    qtbot.mouseClick(w.jobStatus.cancelButton, Qt.LeftButton)
    qtbot.waitUntil(lambda: not w.jobs.is_running(), timeout=5000)
    assert not w.jobStatus.isVisible() and "cancelled" in w.statusLabel.text()
    assert not w.document.models


def test_selecting_a_model_shows_its_rollout(qtbot, window):
    from studio_helpers import set_tiny_training, train_and_wait

    w = window
    build_tiny_lattice(qtbot, w, 2, 2)
    set_tiny_training(w)
    first = train_and_wait(qtbot, w)
    w.document.set("model/rfhgn", "seed", 5)
    second = train_and_wait(qtbot, w)
    assert w.document.rollout.model_name == second.name
    w.modelsPanel.table.selectRow(0)
    qtbot.waitUntil(lambda: w.document.rollout.model_name == first.name and w.document.rollout.finished
                    and not w.jobs.is_running(), timeout=30000)
    assert w.views.predictionView.label.text().endswith(first.name)
    assert w.modelsPanel.cell(0, "Drift") == f"{first.max_abs_drift:.3g}"


def test_help_and_exports_folder(qtbot, window, tmp_path, monkeypatch):
    import os

    w = window
    box = w.quick_start()
    qtbot.addWidget(box)
    assert "Train" in box.text() and "Ctrl+T" in box.text()
    box = w.keyboard_shortcuts()
    qtbot.addWidget(box)
    for key in ("Ctrl+B", "Ctrl+T", "Space", "Esc", "Ctrl+Z", "Ctrl+Q"):
        assert key in box.text(), key
    # exports start in the project's folder, else the user's folders: never the program's own
    monkeypatch.chdir(tmp_path)
    c = w.projects
    for kind in ("videos", "pictures", "documents"):
        assert c._folder(kind) != os.getcwd() and os.path.isdir(c._folder(kind))
    c.path = tmp_path / "sub" / "p.hgnproj"
    assert c._folder("videos") == str(tmp_path / "sub")


_FIRST_WINDOW = """
import json, sys
from PySide6.QtWidgets import QApplication
app = QApplication([])
from studio.gl import ensure_backend
ensure_backend()
from studio.main_window import MainWindow
w = MainWindow(restore=False)
w.show()
for _ in range(300):
    app.processEvents()
    if w.document.system is not None:
        break
from core.files.project import ModelRecord
from studio.commands import AddModelCommand
w.undo.push(AddModelCommand(w.document, ModelRecord(name="baseline-12", method="baseline", settings={},
            system=w.document.system, fit_time=123.456, test_mse=1.234e-5, max_abs_drift=6.5e-3)))
for _ in range(50):
    app.processEvents()
avail = w.screen().availableGeometry()
g = w.frameGeometry()
t = w.modelsPanel.table
out = {"screen": [avail.width(), avail.height()], "frame": [g.x(), g.y(), g.width(), g.height()],
       "docks": {d.objectName(): [d.isVisible(), d.width(), d.height()]
                 for d in (w.leftDock, w.modelsDock, w.plotsDock)},
       "left_need": max(p.minimumSizeHint().width() for p in (w.systemPanel, w.trainPanel, w.drawingPanel)),
       "left_viewport": min(w.leftTabs.widget(i).viewport().width() for i in range(3)),
       "table": [t.horizontalHeader().length(), t.viewport().width()],
       "slider": [w.timelineBar.slider.width(), w.views.width()]}
print(json.dumps(out))
w.projects.choose = lambda *a: "discard"
w.close()
"""


def test_the_first_window_fits_a_1366x768_screen(tmp_path):
    """Under its own 1366x768 X server: the window, every dock, the left
    panel's forms and the models table's columns fit; the slider is as wide
    as the views."""
    import json
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    assert shutil.which("xvfb-run"), "xvfb-run is needed for this test"
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, HGN_STUDIO_SETTINGS=str(tmp_path / "s.ini"), PYTHONPATH=str(root))
    env.pop("DISPLAY", None)
    r = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1366x768x24", sys.executable, "-c", _FIRST_WINDOW],
                       cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    sw, sh = out["screen"]
    x, y, fw, fh = out["frame"]
    assert (sw, sh) == (1366, 768)
    assert x >= 0 and y >= 0 and x + fw <= sw and y + fh <= sh, out
    for name, (visible, dw, dh) in out["docks"].items():
        assert visible and dw > 150 and dh > 100, (name, out)
    assert out["left_viewport"] >= out["left_need"], out          # no form wider than its tab
    length, viewport = out["table"]
    assert length <= viewport, out                                 # fit, test error, drift: no scrolling
    slider, views = out["slider"]
    assert slider >= 0.9 * views, out
