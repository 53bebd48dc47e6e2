"""The whole path as a user takes it: generate a lattice, press Train, wait
for the model, scrub the timeline, and check the pictures and the plots."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from core.physics.forces import hamiltonian
from studio_helpers import (build_tiny_lattice, non_background_fraction, set_tiny_training,
                            train_and_wait)


def test_main_controls_have_stable_object_names(window):
    from PySide6.QtWidgets import QWidget

    for name in ("systemKind", "buildButton", "trainButton", "cancelButton", "methodCombo",
                 "timelineSlider", "playButton", "exportVideoButton", "truthView", "predictionView",
                 "energyPlot", "errorPlot"):
        assert window.findChild(QWidget, name) is not None, name
    export = window.findChild(QWidget, "exportVideoButton")
    assert window.projects is not None             # studio.project_controller is attached
    assert export.isEnabled() and "video" in export.toolTip()
    export.click()                                 # nothing rolled out yet: a message, no dialog
    assert "nothing to export" in window.statusLabel.text()


def test_generate_train_scrub_and_watch(qtbot, window):
    w = window
    build_tiny_lattice(qtbot, w, 3, 3)
    set_tiny_training(w)
    entry = train_and_wait(qtbot, w)
    buf = w.session.rollout

    # the model is in the table with its fit time and test error
    assert w.modelsPanel.table.rowCount() == 1
    assert w.modelsPanel.cell(0, "Model") == entry.name
    assert entry.fit_time > 0 and float(w.modelsPanel.cell(0, "Fit time [s]")) > 0
    ds = entry.dataset
    dq, dp = entry.model.time_derivatives(ds.system, ds.q[ds.test], ds.p[ds.test])
    by_hand = (np.sum((dq - ds.dqdt[ds.test]) ** 2) + np.sum((dp - ds.dpdt[ds.test]) ** 2)) / (2 * dq.size)
    assert np.isclose(entry.test_mse, by_hand, rtol=1e-10)
    assert entry.test_mse < 1e-2          # a tiny harmonic lattice is learned well

    # the whole roll-out arrived: 100 steps saved every 5 -> 21 frames
    assert buf.n_filled == buf.n_frames == 21
    assert w.time.filled == 21 and w.timelineBar.slider.maximum() == 20

    # plots hold the expected curves, checked against independent computations
    h_truth = np.array([hamiltonian(buf.system, q, p) for q, p in zip(buf.q["truth"], buf.p["truth"])])
    h_pred = np.array([hamiltonian(buf.system, q, p) for q, p in zip(buf.q["prediction"], buf.p["prediction"])])
    t, drift = w.energyPlot.curve_data("ground truth")
    assert np.allclose(t, buf.t) and np.allclose(drift, (h_truth - h_truth[0]) / abs(h_truth[0]), atol=1e-12)
    _, drift_p = w.energyPlot.curve_data("prediction")
    assert np.allclose(drift_p, (h_pred - h_pred[0]) / abs(h_pred[0]), atol=1e-12)
    assert np.max(np.abs(drift)) < 1e-3   # Verlet ground truth keeps energy
    _, mse = w.errorPlot.curve_data("position MSE")
    assert np.allclose(mse, np.mean((buf.q["prediction"] - buf.q["truth"]) ** 2, axis=(1, 2)))
    assert mse[0] == 0 and mse[-1] > 0
    _, ke = w.partsPlot.curve_data("kinetic (truth)")
    assert np.allclose(ke, 0.5 * np.sum(buf.p["truth"] ** 2 / buf.system.masses[:, None], axis=(1, 2)))

    # scrub: both views follow the slider and render non-empty, changing pictures
    slider = w.timelineBar.slider
    slider.setValue(0)
    qtbot.wait(50)
    first = [w.views.truthView.render_image(), w.views.predictionView.render_image()]
    slider.setValue(20)
    qtbot.wait(50)
    assert w.time.frame == 20
    assert abs(w.energyPlot.cursor.value() - buf.t[20]) < 1e-12
    assert "t = 1.000" in w.timelineBar.timeLabel.text()
    last = [w.views.truthView.render_image(), w.views.predictionView.render_image()]
    for a, b in zip(first, last):
        assert a.ndim == 3 and a.shape[2] == 3 and a.shape[0] > 100 and a.shape[1] > 100
        assert non_background_fraction(a) > 0.01 and non_background_fraction(b) > 0.01
        assert np.mean(np.abs(a.astype(int) - b.astype(int))) > 0.05
    # the truth view shows the truth frame, the prediction view the prediction
    pos_t = w.views.truthView.particles.positions[:, :2]
    pos_p = w.views.predictionView.particles.positions[:, :2]
    assert np.allclose(pos_t, buf.q["truth"][20], atol=1e-5)
    assert np.allclose(pos_p, buf.q["prediction"][20], atol=1e-5)


def test_keyboard_plays_and_steps(qtbot, window):
    w = window
    build_tiny_lattice(qtbot, w, 2, 3)
    set_tiny_training(w)
    train_and_wait(qtbot, w)
    with qtbot.waitActive(w, timeout=5000):
        w.activateWindow()
    w.views.truthView.surface_widget.setFocus()
    w.time.set_frame(0)
    qtbot.keyClick(w, Qt.Key_Right)
    assert w.time.frame == 1
    qtbot.keyClick(w, Qt.Key_Left)
    assert w.time.frame == 0
    qtbot.keyClick(w, Qt.Key_Space)
    assert w.time.playing
    qtbot.waitUntil(lambda: w.time.frame > 2, timeout=3000)
    qtbot.keyClick(w, Qt.Key_Space)
    assert not w.time.playing


def test_colour_modes_and_overlay_render(qtbot, window):
    w = window
    build_tiny_lattice(qtbot, w, 3, 3)
    set_tiny_training(w)
    train_and_wait(qtbot, w)
    w.time.set_frame(w.time.filled - 1)
    images = {}
    for mode in ("uniform", "error", "speed", "energy"):
        w.views.set_colour_mode(mode)
        qtbot.wait(20)
        images[mode] = w.views.truthView.render_image()
        assert non_background_fraction(images[mode]) > 0.01
    assert images["error"].shape == images["speed"].shape
    assert np.mean(np.abs(images["error"].astype(int) - images["speed"].astype(int))) > 0.05
    assert w.views.colourBar.isVisible() and w.views.colourBar.vmax > w.views.colourBar.vmin
    w.views.set_layout("overlay")
    assert not w.views.predictionView.isVisible()
    assert w.views.truthView.ghost.visual.visible


def test_zero_shot_on_a_larger_lattice(qtbot, window):
    w = window
    build_tiny_lattice(qtbot, w, 3, 3)
    set_tiny_training(w)
    entry = train_and_wait(qtbot, w)
    w.modelsPanel.factorSpin.setValue(3)
    w.modelsPanel.stepsSpin.setValue(50)
    w.modelsPanel.saveEverySpin.setValue(10)
    qtbot.mouseClick(w.modelsPanel.zeroShotButton, Qt.LeftButton)
    qtbot.waitUntil(lambda: w.session.rollout is not None and w.session.rollout.zero_shot
                    and w.session.rollout.finished and not w.rolloutJobs.is_running(), timeout=30000)
    buf = w.session.rollout
    assert buf.system.n == 81 and buf.model_name == entry.name
    assert buf.n_filled == 6
    mse = buf.position_mse()
    assert np.all(np.isfinite(mse)) and mse[-1] < 1e-2
    assert "zero-shot" in w.views.predictionView.label.text()
    # the system panel says what is shown: the larger lattice, and what the model was fitted on
    summary = w.systemPanel.summary.text()
    assert "zero-shot" in summary and "81 particles" in summary and "square 3x3" in summary


def test_cancel_stops_training_and_gui_keeps_running(qtbot, window):
    w = window
    build_tiny_lattice(qtbot, w, 4, 4)
    # a job long enough to cancel in the middle of data generation
    set_tiny_training(w, sim={"n_trajectories": 400, "steps": 4000, "save_every": 50})
    qtbot.mouseClick(w.trainPanel.trainButton, Qt.LeftButton)
    assert w.trainJobs.is_running() and w.trainPanel.cancelButton.isEnabled()
    qtbot.waitUntil(lambda: w.trainPanel.progress.value() > 0, timeout=10000)
    import time

    t0 = time.perf_counter()
    qtbot.mouseClick(w.trainPanel.cancelButton, Qt.LeftButton)
    qtbot.waitUntil(lambda: not w.trainJobs.is_running(), timeout=5000)
    assert time.perf_counter() - t0 < 5.0
    assert "cancelled" in w.statusLabel.text()
    assert len(w.session.models) == 0
    assert w.trainPanel.trainButton.isEnabled() and not w.trainPanel.cancelButton.isEnabled()


def test_long_rollout_fills_the_timeline_while_it_runs(qtbot, window):
    w = window
    build_tiny_lattice(qtbot, w, 3, 3)
    set_tiny_training(w)
    train_and_wait(qtbot, w)
    seen = []
    w.time.rangeChanged.connect(lambda filled, total: seen.append((filled, total)))
    w.zero_shot(w.session.current, 3, 4000, 5)
    assert w.rolloutJobs.is_running()
    qtbot.waitUntil(lambda: w.session.rollout.finished and not w.rolloutJobs.is_running(), timeout=60000)
    filled = [f for f, t in seen if t == 801]
    assert filled[-1] == 801
    partial = sorted({f for f in filled if f < 801})
    assert len(partial) >= 3                       # the timeline grew in several steps
    assert partial == sorted(partial) and partial[0] < 100


def test_rollout_settings_reach_the_rollout(qtbot, window, monkeypatch):
    """The roll-out device, precision and threads of the simulation settings
    (the train panel's form) go with the roll-out job, and a float32 roll-out
    on 2 threads runs and fills the timeline; the form shows the settings."""
    w = window
    build_tiny_lattice(qtbot, w, 3, 3)
    set_tiny_training(w, sim=dict(rollout_precision="float32", rollout_threads=2))
    sent = []
    start = w.rolloutJobs.start

    def spy(name, fn, *args, **kw):
        sent.append((name, kw))
        return start(name, fn, *args, **kw)

    monkeypatch.setattr(w.rolloutJobs, "start", spy)
    train_and_wait(qtbot, w)
    (name, kw), = [s for s in sent if s[0] == "rollout"]
    assert kw["device"] == "cpu" and kw["precision"] == "float32" and kw["threads"] == 2
    buf = w.document.rollout
    assert buf.finished and np.all(np.isfinite(buf.position_mse()))
    assert w.document.get("simulation", "rollout_threads") == 2
