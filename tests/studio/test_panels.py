"""The system and train panels: generators, V(r), errors shown at the field,
undo of field edits, and settings that persist between runs."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from studio_helpers import make_window

from core.physics.potentials import make_potential


def test_every_generator_builds_through_core(qtbot, window):
    sp = window.systemPanel
    for kind, n in [("chain", 8), ("square", 36), ("triangular", 36), ("cubic", 64), ("molecular", 125)]:
        sp.kindCombo.setCurrentIndex(sp.kindCombo.findData(kind))
        qtbot.mouseClick(sp.buildButton, Qt.LeftButton)
        s = window.session.system
        assert s.meta["builder"] == kind and s.n == n, kind
        assert window.views.truthView.system is s
    assert window.session.system.cutoff == 2.5 and window.session.system.potential.kind == "lennard-jones"


def test_potential_curve_follows_the_fields(qtbot, window):
    sp = window.systemPanel
    sp.set_potential_kind("morse")
    form = sp.potentialForms["morse"]
    form.editors["D"].setText("2.5")
    form.editors["D"].editingFinished.emit()
    r, v = sp.curve_data()
    ok = np.isfinite(v)
    assert ok.sum() > 100
    assert np.allclose(v[ok], make_potential("morse", D=2.5, a=1.0, r0=1.0).energy(r[ok]))
    form.editors["a"].setText("2")
    form.editors["a"].editingFinished.emit()
    r2, v2 = sp.curve_data()
    ok2 = np.isfinite(v2)
    assert np.allclose(v2[ok2], make_potential("morse", D=2.5, a=2.0, r0=1.0).energy(r2[ok2]))


def test_invalid_settings_are_shown_at_the_field(qtbot, window):
    w = window
    sp = w.systemPanel
    old = w.session.system
    form = sp.builderForms["cubic"]
    form.editors["spacing"].setText("-1")
    qtbot.mouseClick(sp.buildButton, Qt.LeftButton)
    assert "spacing" in form.error_text("spacing") and "> 0" in form.error_text("spacing")
    assert "spacing" in w.statusLabel.text()
    assert w.session.system is old                  # nothing was built, nothing crashed
    form.editors["spacing"].setText("abc")
    form.editors["spacing"].editingFinished.emit()
    assert "not a number" in form.error_text("spacing")
    form.editors["spacing"].setText("1.5")
    form.editors["spacing"].editingFinished.emit()
    assert form.error_text("spacing") == ""
    qtbot.mouseClick(sp.buildButton, Qt.LeftButton)
    assert w.session.system.meta["spacing"] == 1.5

    # a potential parameter core rejects
    pform = sp.potentialForms["harmonic"]
    pform.editors["k"].setText("0")
    pform.editors["k"].editingFinished.emit()
    assert "k must be > 0" in pform.error_text("k")
    pform.editors["k"].setText("1")
    pform.editors["k"].editingFinished.emit()

    # a molecular system whose cutoff does not fit its box
    sp.set_kind("molecular")
    mform = sp.builderForms["molecular"]
    mform.editors["n"].setValue(27)
    qtbot.mouseClick(sp.buildButton, Qt.LeftButton)
    assert "cutoff" in mform.error_text("cutoff")

    # a bad training setting stops Train with a message at the field
    tf = w.trainPanel.simForm
    tf.editors["dt"].setText("-0.1")
    assert w.train() is False
    assert "dt" in tf.error_text("dt")
    rf = w.trainPanel.methodForms["rfhgn"]
    tf.editors["dt"].setText("0.01")
    rf.editors["regularisation"].setText("-1")
    assert w.train() is False
    assert "regularisation" in rf.error_text("regularisation")
    assert not w.trainJobs.is_running()


def test_field_edits_undo_and_redo(qtbot, window):
    w = window
    form = w.systemPanel.builderForms["cubic"]
    form.editors["n"].setValue(6)
    form.editors["n"].setValue(7)
    assert form.value("n") == 7
    w.undoAction.trigger()
    assert form.value("n") == 6
    w.undoAction.trigger()
    assert form.value("n") == 4
    w.redoAction.trigger()
    assert form.value("n") == 6
    # Build is undoable as well
    qtbot.mouseClick(w.systemPanel.buildButton, Qt.LeftButton)
    assert w.session.system.n == 6 * 4 * 4
    w.undoAction.trigger()
    assert w.session.system.n == 64


def test_settings_persist_between_runs(qtbot, isolated_settings):
    w = make_window(qtbot)
    sp = w.systemPanel
    sp.set_kind("triangular")                       # typed and picked as a user does
    tri = sp.builderForms["triangular"]
    tri.editors["n"].setValue(5)
    _type(tri, "spacing", "1.25")
    _type(sp.startForm, "temperature", "0.3")
    w.trainPanel.simForm.editors["rollout_steps"].setValue(1234)
    rf = w.trainPanel.methodForms["rfhgn"]
    rf.editors["sampler"].setCurrentText("elm")
    rf.editors["edge_width"].setValue(48)
    d = w.document                                  # the edits are in the document, not only the forms
    assert (d.get("generator/triangular", "n"), d.get("generator/triangular", "spacing")) == (5, 1.25)
    assert (d.get("simulation", "temperature"), d.get("simulation", "rollout_steps")) == (0.3, 1234)
    assert (d.get("model/rfhgn", "sampler"), d.get("model/rfhgn", "edge_width")) == ("elm", 48)
    w.views.set_colour_mode("speed")
    w.time.set_speed(2.0)
    w.time.set_loop("bounce")
    # a size above the window's minimum that fits the 800x600 screen pytest-xvfb starts
    size = (min(w.minimumSizeHint().width() + 4, 798), 560)
    w.resize(*size)
    w.close()
    assert isolated_settings.exists()           # written to the test's own file

    w2 = make_window(qtbot, size=None)      # the saved geometry, not the test's size
    sp2 = w2.systemPanel
    assert sp2.kind == "triangular"
    assert sp2.builderForms["triangular"].value("n") == 5
    assert sp2.builderForms["triangular"].value("spacing") == 1.25
    assert sp2.startForm.value("temperature") == 0.3
    assert w2.trainPanel.simForm.value("rollout_steps") == 1234
    assert w2.trainPanel.methodForms["rfhgn"].value("sampler") == "elm"
    assert w2.trainPanel.methodForms["rfhgn"].value("edge_width") == 48
    assert w2.views.colour_mode == "speed"
    assert w2.time.speed == 2.0 and w2.time.loop == "bounce"
    assert w2.timelineBar.loopCombo.currentText() == "bounce"
    assert (w2.width(), w2.height()) == size
    assert w2.session.system.meta["builder"] == "triangular"


def test_a_window_layout_saved_before_a_dock_existed_puts_that_dock_where_a_new_window_has_it(qtbot,
                                                                                               isolated_settings):
    """Settings from a studio without the Sweep dock: their window state does not name it, and restoreState
    left it beside the Plots dock (both squeezed to half the width). It goes into the Plots dock's tabs."""
    w = make_window(qtbot)
    assert w.sweepDock in w.tabifiedDockWidgets(w.plotsDock)      # a new window's place
    # the older studio's state: the Plots dock alone at the bottom, no sweepDock named
    w.addDockWidget(Qt.LeftDockWidgetArea, w.sweepDock)
    w.sweepDock.setObjectName("anotherDock")
    w.close()
    from studio.settings import open_settings

    state = bytes(open_settings().value("window/state").data())
    assert "plotsDock".encode("utf-16-be") in state and "sweepDock".encode("utf-16-be") not in state

    w2 = make_window(qtbot, size=None)
    assert w2.sweepDock in w2.tabifiedDockWidgets(w2.plotsDock)
    assert w2.plotsDock.isVisible() and not w2.plotsDock.visibleRegion().isEmpty()  # the plots stay in front
    assert w2.plotsDock.width() > 0.6 * w2.width()


def _type(form, name, text):
    form.editors[name].setText(text)
    form.editors[name].editingFinished.emit()


def test_settings_file_comes_from_the_environment(isolated_settings):
    from studio.settings import open_settings

    assert open_settings().fileName() == str(isolated_settings)


def test_kind_specific_simulation_defaults_follow_the_generator(qtbot, window):
    w = window
    sp, sim = w.systemPanel, w.trainPanel.simForm
    assert sim.value("dt") == 0.01 and sp.startForm.value("temperature") == 0.0
    sp.set_kind("molecular")
    assert sim.value("dt") == 0.005
    assert sp.startForm.value("temperature") == 1.0 and sp.startForm.value("displacement") == 0.0
    assert "molecular" in w.statusLabel.text()
    _type(sim, "dt", "0.002")                # the user's own choice survives switching back
    sp.set_kind("square")
    assert sim.value("dt") == 0.002
    assert sp.startForm.value("temperature") == 0.0 and sp.startForm.value("displacement") == 0.1
