"""The drawn spline potential on the system panel's V(r) plot (issue 12):
control points fitted to the current potential, moved (method and mouse
drag), added, removed, drawn at random; each edit one undo step; Build
carries the SplinePotential; a saved project reopens with the same points."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from studio_helpers import build_tiny_lattice, make_window, set_tiny_training, train_and_wait

from core.files.project import load_project
from core.physics.potentials import make_potential
from core.physics.splines import SplinePotential, grf_potential


def _spline(window):
    sp = window.systemPanel
    sp.set_potential_kind("harmonic")
    sp.set_potential_kind("spline")
    return sp, sp.splineEditor


def test_choosing_the_spline_fits_the_current_potential_and_undoes_in_one_step(qtbot, window):
    sp = window.systemPanel
    sp.set_potential_kind("harmonic")
    n0 = window.undo.count()
    errors = []
    sp.error.connect(errors.append)
    sp.set_potential_kind("spline")
    ed = sp.splineEditor
    assert errors == []                    # no error from a half-made choice (kind set, points not yet)
    assert window.undo.count() == n0 + 1 and sp.potential_kind == "spline"
    r, v = ed.points()
    assert len(r) >= 6
    harm = make_potential("harmonic")
    assert np.allclose(v, harm.energy(r))                    # knots on the current V(r)
    assert ed.knots.isVisible()
    x, y = ed.knots.getData()
    assert np.allclose(x, r) and np.allclose(y, v)
    window.undo.undo()
    assert sp.potential_kind == "harmonic" and not ed.knots.isVisible() and errors == []


def test_moving_a_point_is_one_undoable_command_and_build_carries_the_spline(qtbot, window):
    sp, ed = _spline(window)
    r0, v0 = ed.points()
    n0 = window.undo.count()
    # r is kept between its neighbours
    assert ed.move_point(2, r0[3] + 10.0, 0.75)
    r1, v1 = ed.points()
    assert window.undo.count() == n0 + 1
    assert v1[2] == 0.75 and r0[2] < r1[2] < r0[3]
    assert np.all(np.diff(r1) > 0)
    # the curve goes through the moved point
    rc, vc = sp.curve_data()
    ok = np.isfinite(vc) & (rc >= r1[0]) & (rc <= r1[-1])
    assert np.allclose(vc[ok], SplinePotential(r=tuple(r1), V=tuple(v1), slopes=ed.potential().slopes)
                       .energy(rc[ok]))
    window.undo.undo()
    r2, v2 = ed.points()
    assert np.array_equal(r2, r0) and np.array_equal(v2, v0)
    window.undo.redo()
    qtbot.mouseClick(sp.buildButton, Qt.LeftButton)
    s = window.session.system
    assert s.potential.kind == "spline"
    assert np.allclose(s.potential.r, r1) and np.allclose(s.potential.V, v1)


def test_add_remove_and_random_points(qtbot, window):
    sp, ed = _spline(window)
    r0, _ = ed.points()
    errors = []
    sp.error.connect(errors.append)
    assert ed.add_point(0.5 * (r0[1] + r0[2]), 3.0)
    assert errors == []                   # no error from the half-set points (r set, V not yet)
    assert len(sp.curve_data()[0]) > 100
    r1, v1 = ed.points()
    assert len(r1) == len(r0) + 1 and 3.0 in v1
    assert not ed.add_point(r1[3] + 1e-6, 1.0)                     # no twin of an existing point
    window.undo.undo()
    assert len(ed.points()[0]) == len(r0) and errors == []
    while len(ed.points()[0]) > 4:
        assert ed.remove_point(1)
    assert not ed.remove_point(0) and len(ed.points()[0]) == 4        # at least 4 points kept
    sp.grfSeed.setValue(5)
    sp.grfLength.setValue(0.4)
    n0 = window.undo.count()
    qtbot.mouseClick(sp.randomButton, Qt.LeftButton)
    assert window.undo.count() == n0 + 1
    want = grf_potential(5, 0.4, knots=12)
    r, v = ed.points()
    assert np.allclose(r, want.r) and np.allclose(v, want.V)


def test_grf_amplitude_and_end_slopes_are_edits_that_undo(qtbot, window):
    sp, ed = _spline(window)
    # a random potential of the amplitude asked for
    sp.grfSeed.setValue(7)
    sp.grfLength.setValue(0.25)
    sp.grfAmplitude.setValue(3.5)
    n0 = window.undo.count()
    qtbot.mouseClick(sp.randomButton, Qt.LeftButton)
    assert window.undo.count() == n0 + 1
    want = grf_potential(7, 0.25, 3.5, knots=12)
    r, v = ed.points()
    assert np.array_equal(r, want.r) and np.array_equal(v, want.V)
    assert v[0] == v[-1] == 3.5 and np.all((v > 0) & (v <= 3.5)) and v.max() > 1.0   # not the default 1
    assert "amplitude=3.5" in window.document.get("potential/spline", "source")
    # the spin boxes show the document's end slopes (0, 0 for a random one)
    assert (sp.slopeLeft.value(), sp.slopeRight.value()) == (0.0, 0.0)
    # the left slope: one command, the right one untouched
    sp.slopeLeft.setValue(-2.5)
    assert window.undo.count() == n0 + 2
    pot = ed.potential()
    assert pot.slopes == (-2.5, 0.0) and np.array_equal(pot.r, r) and np.array_equal(pot.V, v)
    h = 1e-6                                         # the curve's slope at the first knot is the one set
    assert abs((pot.energy(np.array([r[0] + h]))[0] - pot.energy(np.array([r[0] - h]))[0]) / (2 * h) + 2.5) < 1e-4
    sp.slopeRight.setValue(0.75)
    assert window.undo.count() == n0 + 3 and ed.potential().slopes == (-2.5, 0.75)
    assert window.undo.text(window.undo.index() - 1) == "Spline right slope"
    window.undo.undo()
    assert ed.potential().slopes == (-2.5, 0.0) and sp.slopeRight.value() == 0.0    # the box follows
    window.undo.undo()
    assert ed.potential().slopes == (0.0, 0.0) and sp.slopeLeft.value() == 0.0
    window.undo.redo()
    window.undo.redo()
    # Build carries the slopes
    qtbot.mouseClick(sp.buildButton, Qt.LeftButton)
    assert window.document.system.potential.slopes == (-2.5, 0.75)
    # a fitted spline's slopes are not rounded by the boxes: editing one keeps the other exact
    sp.set_potential_kind("harmonic")
    window.document.set("potential/spline", "r", None)
    window.document.set("potential/spline", "V", None)
    sp.set_potential_kind("spline")
    exact_right = ed.potential().slopes[1]
    assert round(exact_right, 4) != exact_right           # a value the 4-decimal box cannot show
    sp.slopeLeft.setValue(1.0)
    assert ed.potential().slopes == (1.0, exact_right)


def test_a_mouse_drag_moves_a_point(qtbot, window):
    sp, ed = _spline(window)
    window.show()
    qtbot.waitExposed(window)
    plot = sp.potentialPlot
    plot.show()
    qtbot.wait(50)
    r0, v0 = ed.points()
    vb = plot.getPlotItem().getViewBox()
    i = 3

    def widget_point(x, y):
        return plot.mapFromScene(vb.mapViewToScene(QPointF(x, y)))

    start = widget_point(r0[i], v0[i])
    y_target = v0[i] + 0.3 * (np.nanmax(v0) - np.nanmin(v0) + 0.1)
    end = widget_point(r0[i], y_target)
    n0 = window.undo.count()
    vp = plot.viewport()
    QTest.mousePress(vp, Qt.LeftButton, Qt.NoModifier, start)
    for k in range(1, 9):
        p = start + (end - start) * (k / 8)
        QTest.mouseMove(vp, p)
        qtbot.wait(10)
    QTest.mouseRelease(vp, Qt.LeftButton, Qt.NoModifier, end)
    qtbot.wait(20)
    r1, v1 = ed.points()
    assert window.undo.count() == n0 + 1
    assert v1[i] > v0[i] + 0.1 * (y_target - v0[i])
    assert np.allclose(np.delete(v1, i), np.delete(v0, i))
    # a double-click between two points adds one there
    x_new = 0.5 * (r1[1] + r1[2])
    y_new = float(np.nanmax(v1))
    at = widget_point(x_new, y_new)
    # as a window system delivers it: press, release, double-click, release
    QTest.mouseClick(vp, Qt.LeftButton, Qt.NoModifier, at)
    dbl = QMouseEvent(QEvent.MouseButtonDblClick, QPointF(at), QPointF(vp.mapToGlobal(at)), Qt.LeftButton,
                      Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(vp, dbl)
    QTest.mouseRelease(vp, Qt.LeftButton, Qt.NoModifier, at)
    qtbot.wait(20)
    r2, v2 = ed.points()
    assert len(r2) == len(r1) + 1 and window.undo.count() == n0 + 2
    k = int(np.argmin(np.abs(r2 - x_new)))
    assert abs(r2[k] - x_new) < 0.05 * (r2[-1] - r2[0]) and abs(v2[k] - y_new) < 0.1 * (np.ptp(v1) + 0.1)


def test_click_and_delete_removes_a_point_and_a_spline_system_trains(qtbot, window):
    build_tiny_lattice(qtbot, window, 3, 3)
    sp, ed = _spline(window)
    window.show()
    qtbot.waitExposed(window)
    plot = sp.potentialPlot
    r0, v0 = ed.points()
    vb = plot.getPlotItem().getViewBox()
    at = plot.mapFromScene(vb.mapViewToScene(QPointF(r0[2], v0[2])))
    QTest.mouseClick(plot.viewport(), Qt.LeftButton, Qt.NoModifier, at)
    assert ed.selected == 2
    n0 = window.undo.count()
    window.activateWindow()
    plot.setFocus()
    qtbot.waitUntil(plot.hasFocus, timeout=3000)
    QTest.keyClick(plot, Qt.Key_Delete)
    r1, v1 = ed.points()
    assert window.undo.count() == n0 + 1 and len(r1) == len(r0) - 1
    assert np.array_equal(r1, np.delete(r0, 2))
    # Build and train on the drawn potential (the worker process rebuilds it from its description)
    qtbot.mouseClick(sp.buildButton, Qt.LeftButton)
    assert window.document.system.potential.kind == "spline" and window.document.system.n == 9
    set_tiny_training(window)
    rec = train_and_wait(qtbot, window)
    assert rec.system.potential.kind == "spline" and np.array_equal(rec.system.potential.r, r1)
    assert np.isfinite(rec.test_mse) and rec.test_mse >= 0


def test_saved_project_reopens_with_the_same_points(qtbot, window, tmp_path):
    sp, ed = _spline(window)
    ed.move_point(1, ed.points()[0][1], -0.4)
    qtbot.mouseClick(sp.buildButton, Qt.LeftButton)
    r, v = ed.points()
    path = tmp_path / "spline.hgnproj"
    c = window.projects
    assert c.save_to(path)
    saved = load_project(path)
    assert saved.system.potential.kind == "spline" and np.array_equal(saved.system.potential.V, v)
    ed.move_point(2, ed.points()[0][2], 5.0)            # edits after the save are not in the file
    sp.set_potential_kind("morse")
    assert c.open_path(path)
    assert sp.potential_kind == "spline" and sp.potentialCombo.currentData() == "spline"
    r2, v2 = ed.points()
    assert np.array_equal(r2, r) and np.array_equal(v2, v)
    x, y = ed.knots.getData()
    assert ed.knots.isVisible() and np.allclose(y, v)


# ---------------------------------------------------------------------------
# the ground-truth integrator (simulation settings -> pipeline -> core simulate)
# ---------------------------------------------------------------------------
def _tiny_state():
    from core.physics import builders
    from core.physics.initial import initial_state

    system = builders.build("chain", n=6)
    q0, p0 = initial_state(system, displacement=0.1, momentum=0.2, seed=3)
    return system, q0, p0


def test_rollout_job_runs_the_chosen_ground_truth_integrator():
    from core.physics.simulate import simulate
    from studio import pipeline

    system, q0, p0 = _tiny_state()
    for name, label in (("rk4", "rk4"), ("dop853", "dop853"), ("verlet", "velocity-verlet")):
        got = []
        pipeline.rollout_job(None, system, q0, p0, 0.05, 40, 2, emit=got.append, integrator=name)
        chunks = [t for kind, t in got if kind == "truth"]
        assert chunks and all(t.meta["integrator"] == label for t in chunks)
        q = np.concatenate([t.q for t in chunks])
        one = simulate(system, q0, p0, 0.05, 40, save_every=2, integrator=name)
        assert q.shape == one.q.shape
        assert np.allclose(q, one.q, rtol=0, atol=1e-9), name       # chunks continue the same run
    verlet = simulate(system, q0, p0, 0.05, 40, save_every=2, integrator="verlet")
    rk4 = simulate(system, q0, p0, 0.05, 40, save_every=2, integrator="rk4")
    assert not np.allclose(verlet.q, rk4.q, rtol=0, atol=1e-9)        # the choice changes the truth


def test_the_integrator_setting_reaches_the_rollout_job(qtbot, window, monkeypatch):
    from studio import pipeline

    tp = window.trainPanel
    combo = tp.simForm.editors["integrator"]
    n0 = window.undo.count()
    combo.setCurrentIndex(combo.findText("rk4"))
    assert window.document.get("simulation", "integrator") == "rk4"
    assert window.undo.count() == n0 + 1
    window.undo.undo()
    assert window.document.get("simulation", "integrator") == "verlet"
    window.undo.redo()
    with pytest.raises(Exception, match="integrator"):
        pipeline.check_simulation({"integrator": "euler"})
    build_tiny_lattice(qtbot, window, 3, 3)
    set_tiny_training(window)
    train_and_wait(qtbot, window)
    # the roll-out shown after training has an RK4 ground truth
    from core.physics.simulate import simulate

    buf = window.document.rollout
    n = buf.n_filled
    q = buf.q["truth"][:n]
    one = simulate(buf.system, q[0], buf.p["truth"][0], buf.dt, (n - 1) * buf.save_every,
                   save_every=buf.save_every, integrator="rk4")
    verlet = simulate(buf.system, q[0], buf.p["truth"][0], buf.dt, (n - 1) * buf.save_every,
                      save_every=buf.save_every, integrator="verlet")
    assert np.allclose(q, one.q, rtol=0, atol=1e-9)
    assert not np.allclose(q, verlet.q, rtol=0, atol=1e-12)
    # ... and a roll-out asked for later passes the model's setting to the job
    seen = {}

    def start(name, fn, *args, **kw):
        seen.update(kw)
        return False

    monkeypatch.setattr(window.jobs.roller, "start", start)
    window.jobs.rollout(0)
    assert seen.get("integrator") == "rk4"


def test_the_first_chunk_of_a_rollout_does_not_repeat_the_start_frame():
    """The window shows frame 0 at once (set_initial); the job's first chunk
    starts with that frame again: frame k of the buffer is the run's frame k."""
    from core.learning.rollout_buffer import RolloutBuffer
    from core.physics.simulate import simulate

    system, q0, p0 = _tiny_state()
    one = simulate(system, q0, p0, 0.05, 40, save_every=2)
    buf = RolloutBuffer(system, 0.05, 40, 2)
    buf.set_initial(q0, p0, 0.0, 0.0)
    got = []
    from studio import pipeline

    pipeline.rollout_job(None, system, q0, p0, 0.05, 40, 2, emit=got.append)
    for kind, t in got:
        buf.add(kind, t)
    assert buf.count["truth"] == one.n_frames
    assert np.allclose(buf.q["truth"], one.q, rtol=0, atol=1e-12)
    assert np.allclose(buf.t, one.t)


def test_the_drawn_points_and_the_integrator_persist_between_runs(qtbot, isolated_settings):
    w = make_window(qtbot)
    sp, ed = _spline(w)
    ed.move_point(3, ed.points()[0][3], 0.9)
    w.trainPanel.simForm.editors["integrator"].setCurrentText("dop853")
    r, v = ed.points()
    w.close()
    w2 = make_window(qtbot)
    sp2, ed2 = w2.systemPanel, w2.systemPanel.splineEditor
    assert sp2.potential_kind == "spline" and sp2.potentialStack.currentWidget() is sp2.splineControls
    r2, v2 = ed2.points()
    assert np.array_equal(r2, r) and np.array_equal(v2, v) and ed2.knots.isVisible()
    assert w2.document.get("simulation", "integrator") == "dop853"
    rc, vc = sp2.curve_data()
    assert np.isfinite(vc).sum() > 100                  # the curve of the restored spline is drawn


def test_the_integrator_setting_reaches_the_training_data():
    """The Train panel's ground-truth integrator also integrates the training
    runs (pipeline.data_spec -> core.physics.datagen.DataSpec.integrator)."""
    from studio import pipeline

    spec = pipeline.data_spec({"integrator": "rk4", "dt": 0.02, "steps": 40, "save_every": 4})
    assert spec.integrator == "rk4" and spec.validate() is spec
    assert pipeline.data_spec({"dt": 0.02}).integrator == "verlet"


def test_a_model_on_a_drawn_potential_goes_zero_shot_and_exports_headless(qtbot, window, tmp_path):
    """Issue 12: a model fitted on a drawn spline behaves like any other: zero-shot
    on the chain scaled up (the potential comes with the model's system) and the
    headless video export of the saved project (a fresh process rebuilds the
    potential from the file)."""
    import os
    import subprocess
    import sys

    import av
    from studio_helpers import ROOT, non_background_fraction

    sp = window.systemPanel
    sp.set_kind("chain")
    sp.builderForms["chain"].editors["n"].setValue(4)
    sp, ed = _spline(window)
    r, v = ed.points()
    assert ed.move_point(3, r[3], v[3] - 0.02)
    qtbot.mouseClick(sp.buildButton, Qt.LeftButton)
    drawn = window.document.system.potential
    assert drawn.kind == "spline" and window.document.system.n == 4
    set_tiny_training(window)
    rec = train_and_wait(qtbot, window)
    assert rec.system.potential == drawn
    d = window.document
    assert window.zero_shot(0, 2, 60, 5)
    qtbot.waitUntil(lambda: d.rollout is not None and d.rollout.zero_shot and d.rollout.finished
                    and not window.jobs.is_running(), timeout=60000)
    buf = d.rollout
    assert buf.system.n == 8 and buf.system.potential == drawn and buf.n_filled == buf.n_frames == 13
    err = np.abs(buf.q["prediction"] - buf.q["truth"]).max()
    assert np.isfinite(err) and err < 0.5 * np.abs(buf.q["truth"] - buf.q["truth"][0]).max() + 1e-3
    path = tmp_path / "drawn.hgnproj"
    assert window.projects.save_to(path)
    env = {k: val for k, val in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["PYTHONPATH"] = str(ROOT)
    png = tmp_path / "frame.png"
    res = subprocess.run([sys.executable, str(ROOT / "main.py"), "export-video", str(path), "--out", str(png),
                          "--frame", "6", "--size", "320x240"], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=180)
    assert res.returncode == 0, res.stderr
    with av.open(str(png)) as c:
        img = next(c.decode(video=0)).to_ndarray(format="rgb24")
    assert img.shape == (240, 320, 3) and non_background_fraction(img) > 0.01
