"""Drawing a system with the mouse, undo and redo, and turning the drawing
into a core System (flat and extruded into 3D layers)."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from core.errors import HGNError
from studio.drawing import DrawingModel


def _screen(canvas, xy):
    return canvas.to_screen(np.asarray(xy, float)).toPoint()


def _drag(canvas, a, b):
    QTest.mousePress(canvas, Qt.LeftButton, Qt.NoModifier, a)
    QTest.mouseMove(canvas, b)
    QTest.mouseRelease(canvas, Qt.LeftButton, Qt.NoModifier, b)


@pytest.fixture
def drawing(qtbot, window):
    window.leftTabs.setCurrentWidget(window.drawingPanel)
    qtbot.waitExposed(window.drawingPanel.canvas)
    with qtbot.waitActive(window, timeout=5000):
        window.activateWindow()
    return window


def test_draw_by_mouse_with_undo_and_redo(qtbot, drawing):
    w = drawing
    panel, canvas, model = w.drawingPanel, w.drawingPanel.canvas, w.drawingPanel.model
    pts = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0)]
    scr = [_screen(canvas, p) for p in pts]
    for s in scr:                                       # click: place particles (snapped to the grid)
        QTest.mouseClick(canvas, Qt.LeftButton, Qt.NoModifier, s)
    assert model.n == 3 and np.allclose(model.points, pts)
    _drag(canvas, scr[0], scr[1])                       # drag particle -> particle: a spring
    _drag(canvas, scr[1], scr[2])
    assert model.edges == [(0, 1), (1, 2)]
    # drag from a particle to empty space: a new particle joined to it
    _drag(canvas, scr[2], _screen(canvas, (0.0, 1.0)))
    assert model.n == 4 and model.edges[-1] == (2, 3) and np.allclose(model.points[3], (0, 1))
    _drag(canvas, _screen(canvas, (0.0, 1.0)), scr[0])  # close the square
    assert len(model.edges) == 4

    canvas.setFocus()
    QTest.keyClick(canvas, Qt.Key_Z, Qt.ControlModifier)        # undo the last spring
    assert len(model.edges) == 3 and model.n == 4
    QTest.keyClick(canvas, Qt.Key_Z, Qt.ControlModifier)        # undo "place and join"
    assert len(model.edges) == 2 and model.n == 3
    QTest.keyClick(canvas, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)   # redo
    assert len(model.edges) == 3 and model.n == 4
    QTest.keyClick(canvas, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    assert len(model.edges) == 4

    # select one particle and move it by dragging; one undo step puts it back
    panel.set_mode("select")
    start = _screen(canvas, (1.0, 1.0))
    _drag(canvas, start, _screen(canvas, (1.5, 1.5)))
    assert np.allclose(model.points[2], (1.5, 1.5))
    QTest.keyClick(canvas, Qt.Key_Z, Qt.ControlModifier)
    assert np.allclose(model.points[2], (1.0, 1.0))

    # set the mass of the selection and the strength of a spring
    QTest.mouseClick(canvas, Qt.LeftButton, Qt.NoModifier, _screen(canvas, (1.0, 1.0)))
    assert canvas.sel_points == {2}
    panel.massSpin.setValue(3.0)
    qtbot.mouseClick(panel.applyMass, Qt.LeftButton)
    assert model.masses.tolist() == [1.0, 1.0, 3.0, 1.0]
    QTest.mouseClick(canvas, Qt.LeftButton, Qt.NoModifier, _screen(canvas, (0.5, 0.0)))   # on spring 0-1
    assert canvas.sel_edges == {0} and not canvas.sel_points
    panel.springSpin.setValue(2.5)
    qtbot.mouseClick(panel.applySpring, Qt.LeftButton)
    assert model.scales[0] == 2.5

    # use it: the session's system is the drawing, through core.physics.builders.custom
    qtbot.mouseClick(panel.useButton, Qt.LeftButton)
    s = w.session.system
    assert s.n == 4 and s.dim == 2 and len(s.edges) == 4
    assert np.allclose(s.masses, [1, 1, 3, 1])
    k = [tuple(e) for e in s.edges.tolist()].index((0, 1))
    assert s.edge_scale[k] == 2.5
    # Ctrl+Z on the window undoes the system change too (back to the built lattice)
    w.undo.undo()
    assert w.session.system.n == 64


def test_delete_mode_and_delete_key(qtbot, drawing):
    canvas, model, panel = drawing.drawingPanel.canvas, drawing.drawingPanel.model, drawing.drawingPanel
    for p in [(0, 0), (1, 0), (2, 0)]:
        QTest.mouseClick(canvas, Qt.LeftButton, Qt.NoModifier, _screen(canvas, p))
    _drag(canvas, _screen(canvas, (0, 0)), _screen(canvas, (1, 0)))
    _drag(canvas, _screen(canvas, (1, 0)), _screen(canvas, (2, 0)))
    panel.set_mode("delete")
    QTest.mouseClick(canvas, Qt.LeftButton, Qt.NoModifier, _screen(canvas, (1.5, 0)))   # a spring
    assert model.edges == [(0, 1)]
    QTest.mouseClick(canvas, Qt.LeftButton, Qt.NoModifier, _screen(canvas, (0, 0)))     # a particle
    assert model.n == 2 and model.edges == []
    panel.set_mode("select")
    canvas.setFocus()
    QTest.mouseClick(canvas, Qt.LeftButton, Qt.NoModifier, _screen(canvas, (2, 0)))
    QTest.keyClick(canvas, Qt.Key_Delete)
    assert model.n == 1 and np.allclose(model.points[0], (1, 0))
    drawing.undo.undo()
    assert model.n == 2


def test_extrude_into_layers():
    from core.physics.potentials import make_potential

    m = DrawingModel()
    for p in [(0, 0), (1, 0), (0, 1)]:
        m.add_point(p)
    m.add_edge(0, 1, 2.0)
    m.add_edge(0, 2)
    s = m.to_system(make_potential("harmonic"), layers=3, layer_spacing=0.8)
    assert s.dim == 3 and s.n == 9
    # 2 springs per layer x 3 layers + 3 particles x 2 gaps between layers
    assert len(s.edges) == 2 * 3 + 3 * 2
    assert np.allclose(np.unique(s.positions[:, 2]), [0.0, 0.8, 1.6])
    assert sorted(s.edge_scale.tolist()).count(2.0) == 3


def test_bad_drawings_raise_hgn_errors():
    from core.physics.potentials import make_potential

    m = DrawingModel()
    with pytest.raises(HGNError, match="empty"):
        m.to_system(make_potential("harmonic"))
    m.add_point((0, 0))
    with pytest.raises(HGNError, match="different particles"):
        m.add_edge(0, 0)
    m.add_point((1, 0))
    m.add_edge(0, 1)
    with pytest.raises(HGNError, match="already joined"):
        m.add_edge(1, 0)
    with pytest.raises(HGNError, match="mass"):
        m.set_mass([0], -1.0)
    m.add_point((0, 0))   # on top of particle 0: core refuses the system, with its message
    with pytest.raises(HGNError, match="overlap"):
        m.to_system(make_potential("harmonic"))
