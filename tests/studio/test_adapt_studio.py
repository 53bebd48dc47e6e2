"""Few-shot adaptation in the studio (issue 14): "Adapt to this system…" on a
model runs core's adapt in a worker and adds the new model with its lineage
(undoable, saved with the project), "Save basis…" writes the hidden layers,
and the "Adapt vs scratch" page plots test error against k for adaptation
and fits from scratch, computed in a worker, kept in the project and
dropped by a new system."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PySide6.QtCore import Qt
from studio_helpers import build_tiny_lattice, set_tiny_training, train_and_wait

from studio import pipeline


def _fpu_lattice(qtbot, w, n=3, m=3):
    """The same square lattice with the anharmonic FPU-beta potential (another system, same dimension)."""
    sp = w.systemPanel
    sp.set_potential_kind("anharmonic")
    qtbot.mouseClick(sp.buildButton, Qt.LeftButton)
    assert w.document.system.potential.kind == "anharmonic" and w.document.system.n == n * m
    return w.document.system


def _trained_then_fpu(qtbot, w):
    build_tiny_lattice(qtbot, w, 3, 3)
    set_tiny_training(w)
    src = train_and_wait(qtbot, w)
    system = _fpu_lattice(qtbot, w)
    return src, system


def _adapt_through_dialog(qtbot, w, index, k, **choices):
    d = w.document
    n = len(d.models)
    dlg = w.adapt_model(index)
    assert dlg is not None and dlg.isVisible()
    dlg.kSpin.setValue(k)
    if choices.get("seed") is not None:
        dlg.randomCheck.setChecked(True)
        dlg.seedSpin.setValue(choices["seed"])
    if choices.get("regularisation") is not None:
        dlg.ruleCombo.setCurrentIndex(dlg.ruleCombo.findData("given"))
        dlg.lambdaEdit.setText(str(choices["regularisation"]))
    if choices.get("rule"):
        dlg.ruleCombo.setCurrentIndex(dlg.ruleCombo.findData(choices["rule"]))
    if choices.get("prior"):
        dlg.priorCombo.setCurrentIndex(dlg.priorCombo.findData(choices["prior"]))
    if choices.get("basis"):
        assert dlg.load_basis(str(choices["basis"])), dlg.errorLabel.text()
    qtbot.mouseClick(dlg.okButton, Qt.LeftButton)
    qtbot.waitUntil(lambda: len(d.models) > n, timeout=60000)
    qtbot.waitUntil(lambda: d.rollout is not None and d.rollout.finished and d.rollout.model_name == d.models[-1].name
                    and not w.jobs.is_running(), timeout=60000)
    return d.models[-1]


def test_adapt_adds_a_model_with_its_lineage_undoably_and_equal_to_cores_adapt(qtbot, window):
    w, d = window, window.document
    from studio.widgets.adapt_dialog import AdaptDialog

    assert not w.trainPanel.adaptButton.isEnabled() and not w.modelsPanel.adaptButton.isEnabled()
    src, system = _trained_then_fpu(qtbot, w)
    assert w.modelsPanel.adaptButton.isEnabled() and w.trainPanel.adaptButton.isEnabled()
    # the Train panel's button and the table's context menu open the same dialog
    qtbot.mouseClick(w.trainPanel.adaptButton, Qt.LeftButton)
    dlg = w.findChild(AdaptDialog)
    assert dlg is not None and dlg.isVisible() and dlg.kSpin.value() == 10 and src.name in dlg.modelRadio.text()
    dlg.reject()
    qtbot.waitUntil(lambda: w.findChild(AdaptDialog) is None, timeout=5000)
    menu = w.modelsPanel.context_menu(0)
    acts = {a.objectName(): a for a in menu.actions()}
    assert acts["adaptAction"].isEnabled() and acts["saveBasisAction"].isEnabled()
    acts["adaptAction"].trigger()
    dlg = w.findChild(AdaptDialog)
    assert dlg is not None and dlg.isVisible()
    dlg.reject()
    qtbot.waitUntil(lambda: w.findChild(AdaptDialog) is None, timeout=5000)
    rec = _adapt_through_dialog(qtbot, w, 0, 5)
    lin = rec.info["lineage"]
    assert rec.name.startswith("adapted-") and rec.system.potential == system.potential and rec.system.n == system.n
    assert lin["from"] == src.name and lin["k"] == 5 and lin["rule"] in ("gcv", "cv") and lin["seed"] is None
    assert set(lin["regularisation"]) == {"p", "q"} and lin["adapt_time"] > 0 and rec.fit_time == lin["adapt_time"]
    # the model that came back is core's adapted model (kept packed in the window: no torch here)
    assert getattr(rec.model, "packed", False) and rec.model.info["adapt"]["k"] == 5
    # independent check: core's adapt, called here on the same data, gives the same test error
    want = pipeline.adapt_job(src.model, system, d.values("simulation"), 5, source_name=src.name)
    assert want.info["adapt"]["rule"] == lin["rule"] == "gcv"          # core's defaults: GCV, prior auto
    assert want.info["adapt"]["prior_asked"] == "auto"
    assert rec.test_mse == pytest.approx(want.test_mse, rel=1e-9)
    assert rec.test_mse != src.test_mse
    # the row says where it comes from: tooltip and detail line
    row = d.models.index(rec)
    tip = w.modelsPanel.table.item(row, 0).toolTip()
    rule = pipeline.RULE_NAMES[lin["rule"]]
    assert f"adapted from {src.name}, k = 5" in tip and f"({rule}" in tip and " ms" in tip
    assert f"adapted from {src.name}" in w.modelsPanel.detail.text()
    assert "Lineage" not in w.modelsPanel.table.item(0, 0).toolTip()        # a trained model has none
    # undo / redo as other model additions
    assert w.undo.undoText() == f"Adapt {rec.name}"
    w.undo.undo()
    assert rec not in d.models and len(d.models) == 1
    w.undo.redo()
    assert d.models[-1] is rec
    # a seed and a fixed regularisation reach core and the lineage
    rec2 = _adapt_through_dialog(qtbot, w, 0, 4, seed=3, regularisation=1e-10)
    lin2 = rec2.info["lineage"]
    assert lin2["seed"] == 3 and lin2["rule"] == "given" and lin2["regularisation"] == {"p": 1e-10, "q": 1e-10}
    assert "drawn with seed 3" in w.modelsPanel.table.item(d.models.index(rec2), 0).toolTip()


def test_adapt_errors_and_cancel(qtbot, window):
    w, d = window, window.document
    src, _system = _trained_then_fpu(qtbot, w)
    failed, cancelled = [], []
    w.jobs.failed.connect(lambda m, t: failed.append((m, t)))
    w.jobs.cancelled.connect(cancelled.append)
    # more snapshots than the data hold: core's HGNError, shown as the other jobs' errors
    assert w.jobs.adapt(0, k=100000)
    qtbot.waitUntil(lambda: bool(failed) and not w.jobs.is_running(), timeout=60000)
    msg, details = failed[-1]
    assert details == "" and "k (snapshots) must be between 1 and the" in msg
    assert w.statusLabel.text() == msg and len(d.models) == 1
    # a gradient-trained model has no sampled basis: refused before any work, with the reason
    from studio.jobs import adapt_reason

    class Baseline:
        packed, kind, meta = True, "baseline_model", {"dim": 2}

    other = dataclasses.replace(src, model=Baseline())
    assert "trained by gradients" in adapt_reason(other, d.system)
    assert "3D model" in adapt_reason(dataclasses.replace(src, model=type(
        "M", (), {"packed": True, "kind": "model", "meta": {"dim": 3}})()), d.system)
    # Cancel stops it: a slow data set, cancelled while it is simulated
    d.set("simulation", "n_trajectories", 400)
    d.set("simulation", "steps", 4000)
    assert w.jobs.adapt(0, k=5)
    qtbot.waitUntil(lambda: w.jobStatus.isVisible(), timeout=5000)
    qtbot.wait(300)
    assert w.jobs.is_training()
    qtbot.mouseClick(w.jobStatus.cancelButton, Qt.LeftButton)
    qtbot.waitUntil(lambda: not w.jobs.is_running(), timeout=10000)
    assert cancelled == ["Adaptation"] and len(d.models) == 1
    assert w.trainPanel.trainButton.isEnabled() and "cancelled" in w.statusLabel.text()


def test_adapt_to_a_damped_system_identifies_its_damping(qtbot, window):
    """Damped data: core's adapt solves the damping with the output layer (a port model, like Train's
    fit_port); the studio lists its identified damping, rolls it out and measures it with the damping."""
    from core.physics.port import make_port
    from studio.commands import set_system

    w, d = window, window.document
    build_tiny_lattice(qtbot, w, 3, 3)
    set_tiny_training(w)
    src = train_and_wait(qtbot, w)
    damped = d.system.copy(port=make_port(0.1, [], None))
    set_system(d, w.undo, damped, {"kind": "file", "path": "damped"})
    rec = _adapt_through_dialog(qtbot, w, 0, 10, prior="source", rule="cv")
    lin = rec.info["lineage"]
    assert lin["prior"] == "source" and lin["rule"] == "cv" and lin["from"] == src.name
    gamma = rec.model.info["port"]["damping"]
    assert gamma == pytest.approx(0.1, rel=1e-3)
    assert w.modelsPanel.cell(d.models.index(rec), "γ") == f"{gamma:.5g}"
    tip = w.modelsPanel.table.item(d.models.index(rec), 0).toolTip()
    assert "(cross-validated, toward the source's output layer)" in tip
    want = pipeline.adapt_job(src.model, damped, d.values("simulation"), 10, prior="source", rule="cv")
    assert rec.test_mse == pytest.approx(want.test_mse, rel=1e-9) and rec.test_mse < 1e-6
    assert d.rollout.model_name == rec.name and d.rollout.count["prediction"] > 1


def test_save_basis_and_adapt_from_the_basis_file(qtbot, window, tmp_path):
    w, d = window, window.document
    src, _system = _trained_then_fpu(qtbot, w)
    path = tmp_path / "b.npz"
    saved = []
    w.jobs.basisSaved.connect(saved.append)
    assert w.save_basis(0, str(path))
    qtbot.waitUntil(lambda: bool(saved) and not w.jobs.is_running(), timeout=60000)
    assert saved == [str(path)] and path.exists()
    from core.learning.rfhgn.basis import load_basis

    basis = load_basis(path)
    arrays = src.model.unpacked().network.to_arrays()
    got = basis.network.to_arrays()
    assert set(got) == set(arrays) and all(np.array_equal(got[k], arrays[k]) for k in arrays)
    # adapted from the file: the same layers, so the same model as adapting the model itself
    rec = _adapt_through_dialog(qtbot, w, 0, 5, basis=path)
    lin = rec.info["lineage"]
    assert lin["basis_file"] == str(path) and lin["from"] == "" and lin["basis"]["kind"] == "basis"
    assert "adapted from basis b.npz, k = 5" in w.modelsPanel.table.item(d.models.index(rec), 0).toolTip()
    sim = d.values("simulation")
    want = pipeline.adapt_job(None, d.system, sim, 5, basis_path=str(path))
    assert rec.test_mse == pytest.approx(want.test_mse, rel=1e-9)
    # a basis has no output layer to pull toward: the same as the model adapted with the prior zero
    plain = pipeline.adapt_job(src.model, d.system, sim, 5, prior="none")
    assert rec.test_mse == pytest.approx(plain.test_mse, rel=1e-9) and lin["prior"] == "none"
    # a basis of another dimension is refused in the window (header only, no torch), with the reason
    from core.errors import HGNError
    from studio.widgets.adapt_dialog import basis_summary

    assert "2D" in basis_summary(path, 2) and "sampled on" in basis_summary(path, 2)
    with pytest.raises(HGNError, match="basis is for 2D systems and the current system is 3D"):
        basis_summary(path, 3)
    # a file that is not a basis is refused in the dialog, before any work
    dlg = w.adapt_model(0)
    assert not dlg.load_basis(str(tmp_path / "missing.npz")) and dlg.errorLabel.text()
    dlg.reject()


def test_adapt_vs_scratch_page_plots_keeps_and_drops_its_lines(qtbot, window, tmp_path):
    w, d = window, window.document
    panel = w.adaptPanel
    assert w.plotTabs.indexOf(panel) >= 0 and panel.plot.showing_empty_text
    src, system = _trained_then_fpu(qtbot, w)
    rec = _adapt_through_dialog(qtbot, w, 0, 5)
    d.set_current(0)
    qtbot.waitUntil(lambda: not w.jobs.is_running(), timeout=60000)
    qtbot.mouseClick(panel.compareButton, Qt.LeftButton)
    assert panel.compareButton.text().startswith("Cancel")
    qtbot.waitUntil(lambda: w.plotTabs.currentWidget() is panel, timeout=5000)
    qtbot.waitUntil(lambda: d.adapt_curve is not None and not w.jobs.is_running(), timeout=120000)
    curve = d.adapt_curve
    sim = d.values("simulation")
    want = pipeline.adapt_curve_job(src.model, system, sim, source_name=src.name)
    assert curve["k"] == want["k"] == pipeline.curve_ks(want["n_train"]) and curve["k"][:3] == [1, 2, 5]
    assert np.allclose(curve["adapt"], want["adapt"], rtol=1e-9) and np.allclose(curve["scratch"], want["scratch"],
                                                                                   rtol=1e-9)
    assert curve["model"] == src.name and curve["system"] == system.name
    # the page shows the two lines (log-log: the plot holds log10 of both)
    qtbot.waitUntil(lambda: not panel.plot.showing_empty_text and not panel.plot.drawing_pending, timeout=5000)
    for name, key in (("adapt", "adapt"), ("fit from scratch", "scratch")):
        x, y = panel.plot.curves[name].getData()
        assert np.allclose(10.0 ** x, curve["k"]) and np.allclose(10.0 ** y, curve[key], rtol=1e-9)
    assert "k = 10" in panel.summary.text() or "k = 5" in panel.summary.text()
    # saved with the project (with the adapted model's lineage) and back
    path = tmp_path / "adapted.hgnproj"
    assert w.projects.save_to(path)
    lineage = dict(rec.info["lineage"])
    assert w.projects.open_path(path)
    back = d.models[[m.name for m in d.models].index(rec.name)]
    assert back.info["lineage"]["from"] == lineage["from"] and back.info["lineage"]["k"] == 5
    assert back.info["lineage"]["regularisation"] == pytest.approx(lineage["regularisation"])
    assert back.model.info["adapt"]["k"] == 5
    assert f"adapted from {src.name}, k = 5" in w.modelsPanel.table.item(d.models.index(back), 0).toolTip()
    assert d.adapt_curve == curve
    qtbot.waitUntil(lambda: not panel.plot.showing_empty_text, timeout=5000)
    # the comparison is cancelled by its button, and a new system drops a stored one
    qtbot.waitUntil(lambda: not w.jobs.is_running(), timeout=60000)
    d.set("simulation", "n_trajectories", 400)
    d.set("simulation", "steps", 4000)
    cancelled = []
    w.jobs.cancelled.connect(cancelled.append)
    assert panel.request() and w.jobs.is_comparing()
    qtbot.wait(300)
    qtbot.mouseClick(panel.compareButton, Qt.LeftButton)
    qtbot.waitUntil(lambda: not w.jobs.is_running(), timeout=10000)
    assert cancelled == ["Adapt vs scratch"] and d.adapt_curve == curve
    assert panel.compareButton.text() == "Compare adapt vs scratch"
    build_tiny_lattice(qtbot, w, 3, 4)
    assert d.adapt_curve is None and "adapt_curve" not in d.project.ui
    qtbot.waitUntil(lambda: panel.plot.showing_empty_text, timeout=5000)


def test_a_damaged_stored_comparison_is_dropped_on_open():
    from core.files.project import Project
    from studio.document import Document

    good = {"k": [1, 2], "adapt": [1e-3, 1e-4], "scratch": [None, 1e-2], "adapt_time": [0.01, 0.01],
            "scratch_time": [None, 0.02], "model": "m"}
    doc = Document(Project(ui={"adapt_curve": good}))
    assert doc.adapt_curve["scratch"] == [None, 1e-2]
    for bad in ({**good, "k": [0, 2]}, {**good, "adapt": [1e-3]}, {**good, "scratch": ["x", 1.0]}, [1, 2]):
        doc = Document(Project(ui={"adapt_curve": bad}))
        assert doc.adapt_curve is None and "adapt_curve" not in doc.project.ui


#: a window's process as ``python main.py`` starts it: a Train, then Adapt, Adapt vs scratch and Save basis
#: through the window; prints the modules the window's process imported after start-up and whether torch
#: is among all of them (adapt, the comparison and the basis run in workers)
_ADAPT_IN_WINDOW = """\
before = set(sys.modules)
w.train()
run_until(lambda: len(d.models) == 1 and d.rollout is not None and d.rollout.finished
          and not w.jobs.is_running(), 240)
dlg = w.adapt_model(0)
dlg.kSpin.setValue(5)
dlg.okButton.click()
run_until(lambda: len(d.models) == 2 and d.rollout.model_name == d.models[1].name and d.rollout.finished
          and not w.jobs.is_running(), 240)
assert w.compare_adapt(0)
run_until(lambda: d.adapt_curve is not None and not w.jobs.is_running(), 240)
assert w.save_basis(0, BASIS)
run_until(lambda: not w.jobs.is_running(), 240)
from studio.pacing import pacer
pacer().flush()
app.processEvents()
print("LINEAGE", d.models[1].info["lineage"]["from"], len(d.adapt_curve["k"]))
print("NEW", sorted(m for m in set(sys.modules) - before if not m.startswith("_")))
print("TORCH", "torch" in sys.modules)
w.close()
"""


def test_adapt_compare_and_save_basis_import_nothing_in_the_window_process(tmp_path):
    """The window's process never imports torch (models stay packed) and imports nothing after start-up
    (each import in the GUI thread is a stall): adapt, the comparison and the basis run in workers."""
    from studio_helpers import run_window_script

    basis = tmp_path / "b.npz"
    lines = run_window_script(_ADAPT_IN_WINDOW, tmp_path, timeout=600, BASIS=str(basis))
    text = "\n".join(lines)
    assert "LINEAGE rfhgn-1 " in text and "TORCH False" in lines, text
    assert [x for x in lines if x.startswith("NEW ")] == ["NEW []"], text
    assert basis.exists()
