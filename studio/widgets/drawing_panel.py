"""Draw a system by hand: a 2D canvas with place/connect, select/move and
delete modes, snap to grid, mass and spring strength of a selection, and an
extrusion into 3D layers. Every edit is one QUndoCommand on the app's undo
stack (Ctrl+Z / Ctrl+Shift+Z).

Mouse, in the default *Draw* mode: click on empty space places a particle;
press on a particle and drag to another joins them with a spring (release on
empty space places a new particle there and joins it). *Select*: click or
shift-click particles and springs, drag a rectangle, drag the selection to
move it. *Delete*: click a particle or spring. Right-drag pans, the wheel
zooms, Delete removes the selection.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal, Slot
from PySide6.QtGui import QAction, QActionGroup, QColor, QPainter, QPen, QUndoCommand, QUndoStack
from PySide6.QtWidgets import (QCheckBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QPushButton, QSpinBox, QToolBar, QVBoxLayout, QWidget)

from core.errors import HGNError

from ..defaults import DRAWING
from ..drawing import DrawingModel
from ..scene import palette
from ..scene.palette import rgb255

PICK_PX = 9.0      # particle hit radius in pixels
EDGE_PX = 5.0      # spring hit distance in pixels


def _q(colour) -> QColor:
    """A palette colour (studio.scene.palette) as a QColor."""
    return QColor(*rgb255(colour, alpha=True))


class SnapshotCommand(QUndoCommand):
    """Undoable edit of a DrawingModel: the states before and after."""

    def __init__(self, model: DrawingModel, before: dict, after: dict, text: str):
        super().__init__(text)
        self.model, self.before, self.after = model, before, after

    def redo(self):
        self.model.restore(self.after)

    def undo(self):
        self.model.restore(self.before)


class DrawingCanvas(QWidget):
    """The canvas. ``mode`` is "draw", "select" or "delete"."""

    selectionChanged = Signal()
    error = Signal(str)

    def __init__(self, model: DrawingModel, undo: QUndoStack, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("drawingCanvas")
        self.model = model
        self.undo = undo
        self.mode = "draw"
        self.snap = DRAWING.snap
        self.grid = DRAWING.grid
        self.ppu = DRAWING.pixels_per_unit
        self.origin = QPointF(40.0, 0.0)      # screen position of world (0, 0); y set on first show
        self._origin_set = False
        self.new_mass = DRAWING.mass
        self.new_spring = DRAWING.spring
        self.sel_points: set[int] = set()
        self.sel_edges: set[int] = set()
        self._press = None       # dict describing the current drag
        self._cursor_world = None
        self.setMinimumSize(240, 220)
        self.setFocusPolicy(Qt.StrongFocus)
        self.setMouseTracking(True)
        model.subscribe(self._on_model)

    # -- coordinates ---------------------------------------------------------
    def to_world(self, pos: QPointF) -> np.ndarray:
        return np.array([(pos.x() - self.origin.x()) / self.ppu, (self.origin.y() - pos.y()) / self.ppu])

    def to_screen(self, xy) -> QPointF:
        return QPointF(self.origin.x() + xy[0] * self.ppu, self.origin.y() - xy[1] * self.ppu)

    def snapped(self, xy: np.ndarray) -> np.ndarray:
        if self.snap and self.grid > 0:
            return np.round(np.asarray(xy) / self.grid) * self.grid
        return np.asarray(xy, float)

    def showEvent(self, ev):  # noqa: N802
        if not self._origin_set:
            self.origin = QPointF(60.0, self.height() - 60.0)
            self._origin_set = True
        super().showEvent(ev)

    # -- edits through the undo stack ----------------------------------------
    def edit(self, text: str, fn) -> bool:
        """Run ``fn`` on the drawing as one undoable step (HGNError: nothing changes)."""
        before = self.model.snapshot()
        try:
            fn()
        except HGNError as exc:
            self.model.restore(before)
            self.error.emit(str(exc))
            return False
        self.undo.push(SnapshotCommand(self.model, before, self.model.snapshot(), text))
        return True

    def _on_model(self) -> None:
        n, e = self.model.n, len(self.model.edges)
        self.sel_points = {i for i in self.sel_points if i < n}
        self.sel_edges = {k for k in self.sel_edges if k < e}
        self.update()

    def delete_selection(self) -> None:
        if self.sel_points or self.sel_edges:
            pts, eds = set(self.sel_points), set(self.sel_edges)
            self.sel_points.clear()
            self.sel_edges.clear()
            self.edit("Delete selection", lambda: self.model.delete(pts, eds))
            self.selectionChanged.emit()

    def select_all(self) -> None:
        self.sel_points = set(range(self.model.n))
        self.sel_edges = set(range(len(self.model.edges)))
        self.selectionChanged.emit()
        self.update()

    # -- mouse ---------------------------------------------------------------
    def mousePressEvent(self, ev):  # noqa: N802
        pos = ev.position()
        w = self.to_world(pos)
        radius = PICK_PX / self.ppu
        hit = self.model.nearest_point(w, radius)
        if ev.button() == Qt.RightButton:
            self._press = {"kind": "pan", "start": pos, "origin": QPointF(self.origin)}
            return
        if ev.button() != Qt.LeftButton:
            return
        if self.mode == "draw":
            if hit is not None:
                self._press = {"kind": "connect", "from": hit}
            else:
                xy = self.snapped(w)
                if self.model.nearest_point(xy, 1e-9) is None:
                    self.edit("Place particle", lambda: self.model.add_point(xy, self.new_mass))
                self._press = None
        elif self.mode == "delete":
            if hit is not None:
                self.edit("Delete particle", lambda: self.model.delete(points=[hit]))
            else:
                k = self.model.nearest_edge(w, EDGE_PX / self.ppu)
                if k is not None:
                    self.edit("Delete spring", lambda: self.model.delete(edges=[k]))
        else:  # select / move
            shift = bool(ev.modifiers() & Qt.ShiftModifier)
            if hit is not None:
                if shift:
                    self.sel_points ^= {hit}
                elif hit not in self.sel_points:
                    self.sel_points, self.sel_edges = {hit}, set()
                self._press = {"kind": "move", "start": w, "anchor": self.model.points[hit].copy(),
                               "before": self.model.snapshot(), "orig": self.model.points.copy(),
                               "moved": False}
            else:
                k = self.model.nearest_edge(w, EDGE_PX / self.ppu)
                if k is not None:
                    if shift:
                        self.sel_edges ^= {k}
                    else:
                        self.sel_points, self.sel_edges = set(), {k}
                    self._press = None
                else:
                    if not shift:
                        self.sel_points, self.sel_edges = set(), set()
                    self._press = {"kind": "rubber", "start": w}
            self.selectionChanged.emit()
        self.update()

    def mouseMoveEvent(self, ev):  # noqa: N802
        pos = ev.position()
        w = self.to_world(pos)
        self._cursor_world = w
        p = self._press
        if p is None:
            self.update()
            return
        if p["kind"] == "pan":
            d = pos - p["start"]
            self.origin = p["origin"] + d
        elif p["kind"] == "move" and self.sel_points:
            target = self.snapped(p["anchor"] + (w - p["start"]))
            delta = target - p["anchor"]
            idx = sorted(self.sel_points)
            self.model.set_positions(idx, p["orig"][idx] + delta)
            p["moved"] = bool(np.any(delta != 0))
        self.update()

    def mouseReleaseEvent(self, ev):  # noqa: N802
        p, self._press = self._press, None
        if p is None:
            return
        w = self.to_world(ev.position())
        if p["kind"] == "connect":
            i = p["from"]
            j = self.model.nearest_point(w, PICK_PX / self.ppu)
            if j is not None and j != i:
                if not self.model.has_edge(i, j):
                    self.edit("Join with spring", lambda: self.model.add_edge(i, j, self.new_spring))
            elif j is None:
                xy = self.snapped(w)
                k = self.model.nearest_point(xy, 1e-9)   # snapping may land on a particle
                if k is not None and k != i:
                    if not self.model.has_edge(i, k):
                        self.edit("Join with spring", lambda: self.model.add_edge(i, k, self.new_spring))
                elif k is None and np.linalg.norm(xy - self.model.points[i]) > 1e-9:
                    def place_and_join():
                        k = self.model.add_point(xy, self.new_mass)
                        self.model.add_edge(i, k, self.new_spring)
                    self.edit("Place and join", place_and_join)
        elif p["kind"] == "move":
            if p["moved"]:
                after = self.model.snapshot()
                self.undo.push(SnapshotCommand(self.model, p["before"], after, "Move particles"))
        elif p["kind"] == "rubber":
            x0, y0 = p["start"]
            inside = self.model.points_in_rect(x0, y0, w[0], w[1])
            self.sel_points |= set(inside)
            self.sel_edges |= {k for k, (a, b) in enumerate(self.model.edges)
                               if a in self.sel_points and b in self.sel_points}
            self.selectionChanged.emit()
        self.update()

    def wheelEvent(self, ev):  # noqa: N802
        f = 1.15 if ev.angleDelta().y() > 0 else 1 / 1.15
        pos = ev.position()
        w = self.to_world(pos)
        self.ppu = float(np.clip(self.ppu * f, 8.0, 400.0))
        s = self.to_screen(w)
        self.origin += pos - s
        self.update()

    def keyPressEvent(self, ev):  # noqa: N802
        if ev.key() in (Qt.Key_Delete, Qt.Key_Backspace):
            self.delete_selection()
        elif ev.key() == Qt.Key_A and ev.modifiers() & Qt.ControlModifier:
            self.select_all()
        else:
            super().keyPressEvent(ev)

    # -- painting ------------------------------------------------------------
    def paintEvent(self, ev):  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        p.fillRect(self.rect(), _q(palette.CANVAS))
        self._paint_grid(p)
        m = self.model
        pts = [self.to_screen(x) for x in m.points]
        if m.edges:
            smax = max(m.scales) if m.scales else 1.0
            for k, (i, j) in enumerate(m.edges):
                sel = k in self.sel_edges
                width = 1.5 + 2.5 * (m.scales[k] / smax if smax > 0 else 1)
                pen = QPen(_q(palette.SELECTION) if sel else _q(palette.SPRING), width)
                p.setPen(pen)
                p.drawLine(pts[i], pts[j])
        pr = self._press
        if pr is not None and pr["kind"] == "connect" and self._cursor_world is not None:
            p.setPen(QPen(_q(palette.SPRING_PREVIEW), 1.5, Qt.DashLine))
            p.drawLine(pts[pr["from"]], self.to_screen(self._cursor_world))
        if pr is not None and pr["kind"] == "rubber" and self._cursor_world is not None:
            p.setPen(QPen(_q(palette.SELECTION), 1, Qt.DashLine))
            p.setBrush(_q(palette.SELECTION_FILL))
            p.drawRect(QRectF(self.to_screen(pr["start"]), self.to_screen(self._cursor_world)))
        mmax = float(m.masses.max()) if m.n else 1.0
        for i, s in enumerate(pts):
            r = 5.0 + 4.0 * np.sqrt(m.masses[i] / mmax)
            sel = i in self.sel_points
            p.setPen(QPen(_q(palette.SELECTION) if sel else _q(palette.PARTICLE_EDGE), 2 if sel else 1))
            p.setBrush(_q(palette.TRUTH))
            p.drawEllipse(s, r, r)
        p.setPen(_q(palette.CANVAS_TEXT))
        p.drawText(8, 16, f"{m.n} particles, {len(m.edges)} springs   mode: {self.mode}")
        p.end()

    def _paint_grid(self, p: QPainter) -> None:
        g = self.grid if self.grid > 0 else 1.0
        step = g * self.ppu
        while step < 12:
            step *= 2
        w, h = self.width(), self.height()
        p.setPen(QPen(_q(palette.GRID), 1))
        x0 = self.origin.x() % step
        y0 = self.origin.y() % step
        x = x0
        while x < w:
            p.drawLine(QPointF(x, 0), QPointF(x, h))
            x += step
        y = y0
        while y < h:
            p.drawLine(QPointF(0, y), QPointF(w, y))
            y += step
        p.setPen(QPen(_q(palette.CANVAS_AXES), 1))
        p.drawLine(QPointF(self.origin.x(), 0), QPointF(self.origin.x(), h))
        p.drawLine(QPointF(0, self.origin.y()), QPointF(w, self.origin.y()))


class DrawingPanel(QWidget):
    """Canvas with its tool bar and the properties of the selection.
    ``useButton`` makes the drawn system (with the document's pair
    potential) the current one, undoably."""

    error = Signal(str)

    def __init__(self, document, undo: QUndoStack, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = DrawingModel()
        self.document = document
        self.undo = undo
        self.canvas = DrawingCanvas(self.model, undo)
        self.canvas.error.connect(self.error)
        tb = QToolBar()
        group = QActionGroup(self)
        self.modeActions = {}
        for mode, text, tip in (("draw", "Draw", "Click: place a particle; drag particle→particle: spring"),
                                ("select", "Select / move", "Click or drag a box to select; drag to move"),
                                ("delete", "Delete", "Click a particle or spring to delete it")):
            a = QAction(text, self)
            a.setObjectName(f"{mode}ModeAction")
            a.setCheckable(True)
            a.setToolTip(tip)
            a.triggered.connect(lambda _=False, m=mode: self.set_mode(m))
            group.addAction(a)
            tb.addAction(a)
            self.modeActions[mode] = a
        self.modeActions["draw"].setChecked(True)
        tb.addSeparator()
        clear = QAction("Clear", self)
        clear.triggered.connect(self.clear)
        tb.addAction(clear)

        self.snapCheck = QCheckBox("Snap to grid")
        self.snapCheck.setObjectName("snapCheck")
        self.snapCheck.setChecked(DRAWING.snap)
        self.snapCheck.toggled.connect(self._on_snap)
        self.gridSpin = QDoubleSpinBox()
        self.gridSpin.setObjectName("gridSpin")
        self.gridSpin.setRange(0.05, 10.0)
        self.gridSpin.setSingleStep(0.05)
        self.gridSpin.setValue(DRAWING.grid)
        self.gridSpin.valueChanged.connect(self._on_snap)

        self.massSpin = QDoubleSpinBox()
        self.massSpin.setObjectName("drawMass")
        self.massSpin.setRange(0.01, 1000.0)
        self.massSpin.setValue(DRAWING.mass)
        self.massSpin.setToolTip("Mass of new particles; Apply sets it on the selected particles")
        self.massSpin.valueChanged.connect(lambda v: setattr(self.canvas, "new_mass", float(v)))
        self.applyMass = QPushButton("Apply to selection")
        self.applyMass.setObjectName("applyMassButton")
        self.applyMass.clicked.connect(self.apply_mass)
        self.springSpin = QDoubleSpinBox()
        self.springSpin.setObjectName("drawSpring")
        self.springSpin.setRange(0.01, 1000.0)
        self.springSpin.setValue(DRAWING.spring)
        self.springSpin.setToolTip("Strength factor of new springs (multiplies V, System.edge_scale); "
                                   "Apply sets it on the selected springs")
        self.springSpin.valueChanged.connect(lambda v: setattr(self.canvas, "new_spring", float(v)))
        self.applySpring = QPushButton("Apply to selection")
        self.applySpring.setObjectName("applySpringButton")
        self.applySpring.clicked.connect(self.apply_spring)
        self.layersSpin = QSpinBox()
        self.layersSpin.setObjectName("layersSpin")
        self.layersSpin.setRange(1, 50)
        self.layersSpin.setValue(DRAWING.layers)
        self.layersSpin.setToolTip("Extrude: stack this many copies along z, joined layer to layer (3D when > 1)")
        self.layerSpacing = QDoubleSpinBox()
        self.layerSpacing.setObjectName("layerSpacing")
        self.layerSpacing.setRange(0.1, 10.0)
        self.layerSpacing.setValue(DRAWING.layer_spacing)
        self.useButton = QPushButton("Use drawn system")
        self.useButton.setObjectName("useDrawingButton")
        self.useButton.setToolTip("Make the drawing the current system (uses the panel's pair potential)")
        self.useButton.clicked.connect(self.use)
        self.selLabel = QLabel("")

        props = QGroupBox("Properties")
        fl = QFormLayout(props)
        row = QHBoxLayout()
        row.addWidget(self.snapCheck)
        row.addWidget(QLabel("grid"))
        row.addWidget(self.gridSpin)
        fl.addRow(row)
        r1 = QHBoxLayout()
        r1.addWidget(self.massSpin)
        r1.addWidget(self.applyMass)
        fl.addRow("Mass", r1)
        r2 = QHBoxLayout()
        r2.addWidget(self.springSpin)
        r2.addWidget(self.applySpring)
        fl.addRow("Spring ×", r2)
        r3 = QHBoxLayout()
        r3.addWidget(self.layersSpin)
        r3.addWidget(QLabel("spacing"))
        r3.addWidget(self.layerSpacing)
        fl.addRow("Layers (3D)", r3)
        self.driveSelected = QPushButton("Drive selected")
        self.driveSelected.setObjectName("driveSelected")
        self.driveSelected.setToolTip("Make the selected particles (in every layer) the driven particles of the "
                                      "System tab's damping and driving (undoable); Use drawn system applies it")
        self.driveSelected.clicked.connect(self.drive_selected)
        fl.addRow(self.selLabel, self.driveSelected)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(tb)
        lay.addWidget(self.canvas, 1)
        lay.addWidget(props)
        lay.addWidget(self.useButton)
        self.canvas.selectionChanged.connect(self._on_selection)
        self.model.subscribe(self._on_selection)

    def set_mode(self, mode: str) -> None:
        self.canvas.mode = mode
        self.modeActions[mode].setChecked(True)
        self.canvas.update()

    @Slot()
    def _on_snap(self, *_):
        self.canvas.snap = self.snapCheck.isChecked()
        self.canvas.grid = float(self.gridSpin.value())
        self.canvas.update()

    @Slot()
    def _on_selection(self) -> None:
        c = self.canvas
        self.selLabel.setText(f"selected: {len(c.sel_points)} particles, {len(c.sel_edges)} springs")

    def apply_mass(self) -> None:
        idx = sorted(self.canvas.sel_points)
        if not idx:
            self.error.emit("select particles first (Select mode), then apply a mass")
            return
        m = float(self.massSpin.value())
        self.canvas.edit("Set mass", lambda: self.model.set_mass(idx, m))

    def apply_spring(self) -> None:
        idx = sorted(self.canvas.sel_edges)
        if not idx:
            self.error.emit("select springs first (Select mode), then apply a strength")
            return
        s = float(self.springSpin.value())
        self.canvas.edit("Set spring strength", lambda: self.model.set_spring(idx, s))

    def drive_selected(self) -> bool:
        """The selected particles (their copies in every layer too) become the driven particles (the
        document's ``port`` section, one undoable edit)."""
        from ..commands import set_setting

        idx = sorted(self.canvas.sel_points)
        if not idx:
            self.error.emit("select particles first (Select mode), then Drive selected")
            return False
        n, layers = self.model.n, int(self.layersSpin.value())
        nodes = tuple(int(i) + k * n for k in range(layers) for i in idx)
        self.undo.push(set_setting(self.document, "port", "drive_nodes", nodes,
                                   f"Drive {len(nodes)} drawn particle{'s' if len(nodes) > 1 else ''}"))
        return True

    def clear(self) -> None:
        if self.model.n:
            self.canvas.edit("Clear drawing", self.model.clear)

    def use(self):
        """Build the drawn system (core.physics.builders.custom); None after an error."""
        from ..commands import set_system
        from ..document import port_from_settings, potential_from_settings, with_port

        try:
            pot = potential_from_settings(self.document)
            system = self.model.to_system(pot, self.layersSpin.value(), self.layerSpacing.value())
            # the System tab's damping and driving, as Build gives them
            system = with_port(system, port_from_settings(self.document.values("port"), system))
        except HGNError as exc:
            self.error.emit(str(exc))
            return None
        set_system(self.document, self.undo, system,
                   {"kind": "custom", "drawing": _jsonable(self.model.snapshot()), "layers": self.layersSpin.value()},
                   "Use drawn system")
        return system


def _jsonable(state: dict) -> dict:
    return {"points": np.asarray(state["points"]).tolist(), "masses": np.asarray(state["masses"]).tolist(),
            "edges": [list(e) for e in state["edges"]], "scales": list(state["scales"])}
