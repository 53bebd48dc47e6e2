"""Undo and redo of the combos that swap what the panels show: the generator
kind (with the potential and the simulation defaults it brings), the pair
potential and the fitting method -- through Ctrl+Z / Ctrl+Shift+Z like every
other field edit."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from studio.defaults import SIMULATION


def _undo_key(qtbot, w):
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow, timeout=5000)
    QTest.keyClick(w, Qt.Key_Z, Qt.ControlModifier)


def _redo_key(qtbot, w):
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow, timeout=5000)
    QTest.keyClick(w, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)


def _dependent(w):
    sp, tp = w.systemPanel, w.trainPanel
    return (sp.kind, sp.potential_kind, sp.builderStack.currentWidget() is sp.builderForms[sp.kind],
            sp.potentialStack.currentWidget() is sp.potentialForms[sp.potential_kind],
            tp.simForm.value("dt"), sp.startForm.value("displacement"), sp.startForm.value("temperature"))


def test_generator_kind_change_undoes_with_its_dependent_fields(qtbot, window):
    w = window
    sp = w.systemPanel
    combo = w.findChild(type(sp.kindCombo), "systemKind")
    assert combo is sp.kindCombo
    assert sp.kind == "cubic" and sp.potential_kind == "harmonic"
    before = _dependent(w)
    assert before == ("cubic", "harmonic", True, True, SIMULATION.dt, SIMULATION.displacement,
                      SIMULATION.temperature)
    n0 = w.undo.count()
    combo.setCurrentIndex(combo.findData("molecular"))
    after = _dependent(w)
    # the generator change swapped in a potential and molecular simulation defaults
    assert after == ("molecular", "lennard-jones", True, True, 0.005, 0.0, 1.0)
    assert w.undo.count() == n0 + 1          # one step for the whole change

    _undo_key(qtbot, w)
    assert _dependent(w) == before
    assert combo.currentData() == "cubic"
    _redo_key(qtbot, w)
    assert _dependent(w) == after
    # undo and redo push nothing of their own
    assert w.undo.count() == n0 + 1
    # Build after undo builds the restored generator
    _undo_key(qtbot, w)
    qtbot.mouseClick(sp.buildButton, Qt.LeftButton)
    assert (w.session.system.dim, w.session.system.n) == (3, 64)      # the default cubic lattice


def test_kind_undo_interleaves_with_field_edits(qtbot, window):
    w = window
    sp, tp = w.systemPanel, w.trainPanel
    sp.kindCombo.setCurrentIndex(sp.kindCombo.findData("chain"))
    tp.simForm.editors["steps"].setValue(123)
    sp.kindCombo.setCurrentIndex(sp.kindCombo.findData("molecular"))
    assert (sp.kind, tp.simForm.value("steps"), tp.simForm.value("dt")) == ("molecular", 123, 0.005)
    w.undoAction.trigger()
    assert (sp.kind, tp.simForm.value("steps"), tp.simForm.value("dt")) == ("chain", 123, SIMULATION.dt)
    w.undoAction.trigger()
    assert (sp.kind, tp.simForm.value("steps")) == ("chain", SIMULATION.steps)
    w.undoAction.trigger()
    assert sp.kind == "cubic"
    w.redoAction.trigger()
    w.redoAction.trigger()
    w.redoAction.trigger()
    assert (sp.kind, tp.simForm.value("steps"), tp.simForm.value("dt")) == ("molecular", 123, 0.005)


def test_kind_undo_restores_a_user_chosen_potential(qtbot, window):
    w = window
    sp = w.systemPanel
    sp.kindCombo.setCurrentIndex(sp.kindCombo.findData("molecular"))
    sp.potentialCombo.setCurrentIndex(sp.potentialCombo.findData("morse"))
    sp.kindCombo.setCurrentIndex(sp.kindCombo.findData("square"))
    assert (sp.kind, sp.potential_kind) == ("square", "harmonic")
    w.undoAction.trigger()
    assert (sp.kind, sp.potential_kind) == ("molecular", "morse")
    w.undoAction.trigger()
    assert (sp.kind, sp.potential_kind) == ("molecular", "lennard-jones")
    w.redoAction.trigger()
    w.redoAction.trigger()
    assert (sp.kind, sp.potential_kind) == ("square", "harmonic")


def test_potential_combo_undo_and_redo(qtbot, window):
    w = window
    sp = w.systemPanel
    combo = w.findChild(type(sp.potentialCombo), "potentialKind")
    n0 = w.undo.count()
    combo.setCurrentIndex(combo.findData("morse"))
    assert sp.potential_kind == "morse" and w.undo.count() == n0 + 1
    x_morse = sp.curve_data()[0].copy()
    _undo_key(qtbot, w)
    assert sp.potential_kind == "harmonic"
    assert sp.potentialStack.currentWidget() is sp.potentialForms["harmonic"]
    assert sp.kind == "cubic"
    _redo_key(qtbot, w)
    assert sp.potential_kind == "morse"
    assert sp.potentialStack.currentWidget() is sp.potentialForms["morse"]
    assert (sp.curve_data()[0] == x_morse).all()     # the V(r) curve follows
    assert w.undo.count() == n0 + 1


def test_method_combo_undo_and_redo(qtbot, window):
    w = window
    tp = w.trainPanel
    combo = w.findChild(type(tp.methodCombo), "methodCombo")
    keys = [combo.itemData(i) for i in range(combo.count())]
    assert len(keys) >= 2, keys
    first, other = tp.method_key, next(k for k in keys if k != tp.method_key)
    n0 = w.undo.count()
    combo.setCurrentIndex(combo.findData(other))
    assert tp.method_key == other and w.undo.count() == n0 + 1
    _undo_key(qtbot, w)
    assert tp.method_key == first
    assert tp.methodStack.currentWidget() is tp.methodForms[first]
    _redo_key(qtbot, w)
    assert tp.method_key == other
    assert tp.methodStack.currentWidget() is tp.methodForms[other]
    assert w.undo.count() == n0 + 1
