"""The ground truth's own error against the DOP853 reference in the studio
(issue 12): computed in a worker when asked (button) or after every roll-out
(setting), plotted on the "Ground-truth error" page, kept in the document
while scrubbing and in a saved project, dropped by a new roll-out."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from studio_helpers import build_tiny_lattice, set_tiny_training, train_and_wait

from core.physics.reference import ReferenceCheck, reference_check
from core.physics.simulate import simulate


def test_reference_job_is_cores_check_of_the_trajectory():
    from core.physics import builders
    from core.physics.initial import initial_state
    from studio import pipeline

    system = builders.build("chain", n=5)
    q0, p0 = initial_state(system, displacement=0.1, momentum=0.2, seed=1)
    truth = simulate(system, q0, p0, 0.05, 60, 3, integrator="rk4")
    got = pipeline.reference_job(truth, "rk4")
    want = reference_check(truth, integrator="rk4")
    assert isinstance(got, ReferenceCheck) and got.integrator == "rk4"
    for k in ReferenceCheck.SERIES:
        assert np.array_equal(getattr(got, k), getattr(want, k))


def _wait_check(qtbot, w, timeout=60000):
    qtbot.waitUntil(lambda: w.document.reference_check is not None and not w.jobs.is_running(), timeout=timeout)
    return w.document.reference_check


def _drawn(plot, name):
    x, y = plot.curves[name].getData()
    return (np.zeros(0), np.zeros(0)) if x is None else (x, y)


def test_check_button_plots_the_ground_truths_error_and_it_stays(qtbot, window, tmp_path):
    w, d = window, window.document
    panel = w.referencePanel
    assert panel.plot.showing_empty_text and "DOP853" in panel.plot.empty_text
    # nothing to check yet: refused with a message, nothing runs
    errors = []
    w.jobs.failed.connect(lambda m, _t: errors.append(m))
    assert d.rollout is None and not panel.request() and "no ground truth" in errors[-1]
    assert not w.jobs.is_running()

    build_tiny_lattice(qtbot, w, 3, 3)
    set_tiny_training(w)
    train_and_wait(qtbot, w)
    assert d.reference_check is None and d.rollout_integrator == "velocity-verlet"
    qtbot.mouseClick(panel.checkButton, Qt.LeftButton)
    check = _wait_check(qtbot, w)
    assert w.plotTabs.currentWidget() is panel
    buf = d.rollout
    truth = buf.trajectory("truth", buf.count["truth"])
    want = reference_check(truth, integrator="velocity-verlet")
    assert check.integrator == "velocity-verlet" and check.n_frames == buf.n_frames
    assert np.allclose(check.position_max, want.position_max, rtol=1e-9, atol=1e-14)
    assert np.allclose(check.energy, want.energy, rtol=1e-9, atol=1e-14)
    assert check.position_max[0] == 0.0 and check.position_max[-1] > 1e-8   # Verlet at dt 0.01 is not exact
    qtbot.waitUntil(lambda: not panel.plot.showing_empty_text, timeout=5000)
    x, y = _drawn(panel.plot, "max |Δq|")           # drawn on the log axis: log10 values
    assert np.array_equal(x, check.t)
    assert np.allclose(10.0 ** y[1:], check.position_max[1:], rtol=1e-12, atol=0)
    assert f"max |Δq| {check.position_max.max():.3g}" in panel.summary.text()
    assert "largest position error" in panel.summary.toolTip()
    # scrubbing moves the cursor, the check stays
    w.time.last()
    w.time.step(-3)
    qtbot.wait(50)
    assert d.reference_check is check and not panel.plot.showing_empty_text
    # saved with the project and back
    path = tmp_path / "checked.hgnproj"
    assert w.projects.save_to(path)
    d.set_reference_check(None)
    assert panel.plot.showing_empty_text
    assert w.projects.open_path(path)
    back = d.reference_check
    assert back is not None and np.array_equal(back.position_max, check.position_max)
    qtbot.waitUntil(lambda: not panel.plot.showing_empty_text, timeout=5000)
    # a new roll-out has another ground truth: the check goes
    w.jobs.rollout(0)
    assert d.reference_check is None
    qtbot.waitUntil(lambda: panel.plot.showing_empty_text, timeout=5000)
    qtbot.waitUntil(lambda: d.rollout.finished and not w.jobs.is_running(), timeout=60000)


def test_the_setting_checks_every_rollout_and_rk4_is_closer(qtbot, window):
    w, d = window, window.document
    build_tiny_lattice(qtbot, w, 3, 3)
    set_tiny_training(w, sim={"reference_check": True})
    assert w.trainPanel.simForm.editors["reference_check"].isChecked()
    train_and_wait(qtbot, w)
    verlet = _wait_check(qtbot, w)
    assert verlet.integrator == "velocity-verlet"
    d.set("simulation", "integrator", "rk4")
    train_and_wait(qtbot, w)
    rk4 = _wait_check(qtbot, w)
    assert rk4.integrator == "rk4"
    # the same start (same settings): RK4 at dt 0.01 is far closer to the reference than Verlet
    assert np.max(rk4.position_max) < 0.01 * np.max(verlet.position_max)


def test_a_new_rollout_stops_a_running_check_quietly(qtbot, window, monkeypatch):
    w, d = window, window.document
    build_tiny_lattice(qtbot, w, 3, 3)
    set_tiny_training(w)
    train_and_wait(qtbot, w)
    said, failed = [], []
    w.jobs.cancelled.connect(said.append)
    w.jobs.failed.connect(lambda m, _t: failed.append(m))
    assert w.referencePanel.request() and w.jobs.is_checking()
    assert not w.referencePanel.checkButton.isEnabled()
    stops = []
    stop = w.jobs.checker.cancel
    monkeypatch.setattr(w.jobs.checker, "cancel", lambda: (stops.append(1), stop())[1])
    old = d.rollout
    w.jobs.rollout(0)                      # in the same turn: the check's result cannot have arrived
    assert d.rollout is not old and d.reference_check is None
    assert stops == [1]                    # the check of the old truth is asked to stop
    qtbot.waitUntil(lambda: not w.jobs.is_running() and d.rollout.finished, timeout=60000)
    qtbot.wait(100)
    assert d.reference_check is None       # the old truth's check never lands on the new roll-out
    assert said == [] and failed == []     # and stopping it said nothing
    assert w.referencePanel.checkButton.isEnabled() and w.referencePanel.plot.showing_empty_text


def test_a_check_too_long_for_the_project_header_is_shown_but_not_saved(qtbot, monkeypatch):
    import core.physics.reference as reference
    from studio.document import Document

    def check(n):
        t = np.arange(n, dtype=float)
        return ReferenceCheck(t=t, position_max=t * 1e-3, position_rms=t * 1e-4, energy=t * 1e-5)

    doc = Document()
    got = []
    doc.referenceChanged.connect(got.append)
    monkeypatch.setattr(reference, "MAX_CHECK_FRAMES", 4)
    small, big = check(4), check(5)
    doc.set_reference_check(small)
    assert doc.reference_check is small and ReferenceCheck.from_dict(doc.project.ui["reference_check"]).n_frames == 4
    doc.set_reference_check(big)
    assert doc.reference_check is big and "reference_check" not in doc.project.ui
    doc.set_reference_check(None)
    assert got == [small, big, None] and doc.reference_check is None
