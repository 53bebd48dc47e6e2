"""The drawn pair potential: control points of a spline V(r) on the system
panel's V(r) plot, as draggable markers.

The points live in the document (section ``potential/spline``: ``r``, ``V``,
``slopes``, ``wall``, ``source``, the fields of
:class:`core.physics.splines.SplinePotential`), so the project saves them and
Build builds the system with that potential. Every edit -- a drag (one command
when the mouse is released), a point added (double-click on the plot) or
removed (right-click on it, or click it and press Delete), new end slopes, a random potential (GRF: seed,
length scale, amplitude) -- is ONE undoable
:class:`studio.commands.SetSettingsCommand`. While a point is dragged only the
markers and the curve move (a preview); the document changes at the release.

Nothing heavy runs here: a spline of a few knots is evaluated on 300 points.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut

from core.errors import HGNError
from core.physics.splines import SplinePotential, grf_potential

from ..commands import SetSettingsCommand

SECTION = "potential/spline"
#: fewest control points the editor keeps
MIN_POINTS = 4
#: knots of a spline fitted to another potential, and of a random one
FIT_KNOTS = 7
GRF_EDITOR_KNOTS = 12
#: smallest gap between neighbouring knots, as a fraction of the span
MIN_GAP = 0.01


def spline_changes(pot: SplinePotential) -> list[tuple[str, str, object]]:
    """The document settings that describe ``pot`` (lists, as JSON keeps them)."""
    return [(SECTION, "r", [float(x) for x in pot.r]), (SECTION, "V", [float(x) for x in pot.V]),
            (SECTION, "slopes", [float(x) for x in pot.slopes]), (SECTION, "wall", float(pot.wall)),
            (SECTION, "source", str(pot.source))]


def fit_to(pot, r, v) -> SplinePotential:
    """A spline of FIT_KNOTS knots through ``pot`` over the shown range ``r``
    (where the shown curve ``v`` is finite)."""
    if getattr(pot, "kind", None) == "spline":
        return pot
    ok = np.isfinite(v)
    rr = np.asarray(r)[ok] if ok.any() else np.asarray(r)
    return SplinePotential.fit(pot, np.linspace(float(rr[0]), float(rr[-1]), FIT_KNOTS))


class KnotItem(pg.ScatterPlotItem):
    """The control points; dragging one calls the editor."""

    def __init__(self, editor: "SplineEditor"):
        super().__init__(size=11, pen=pg.mkPen("w", width=1.5), brush=pg.mkBrush(230, 120, 30, 220),
                         hoverable=True, hoverSize=14)
        self.editor = editor
        self._drag: int | None = None

    def mouseDragEvent(self, ev):
        if ev.button() != Qt.LeftButton:
            ev.ignore()
            return
        if ev.isStart():
            pts = self.pointsAt(ev.buttonDownPos())
            if len(pts) == 0:
                ev.ignore()
                return
            self._drag = int(pts[0].index())
        elif self._drag is None:
            ev.ignore()
            return
        ev.accept()
        p = ev.pos()
        if ev.isFinish():
            i, self._drag = self._drag, None
            self.editor.move_point(i, p.x(), p.y())
        else:
            self.editor.preview_point(self._drag, p.x(), p.y())

    def mouseClickEvent(self, ev):
        pts = self.pointsAt(ev.pos())
        if len(pts) and ev.button() == Qt.RightButton:
            ev.accept()
            self.editor.remove_point(int(pts[0].index()))
            return
        if len(pts) and ev.button() == Qt.LeftButton and not ev.double():
            ev.accept()
            self.editor.select(int(pts[0].index()))
            return
        super().mouseClickEvent(ev)


class SplineEditor(pg.QtCore.QObject):
    """The control points of the document's spline potential on ``plot``."""

    #: an edit core refused (e.g. knots out of order): the message
    error = Signal(str)

    def __init__(self, document, undo, plot: pg.PlotWidget, curve):
        super().__init__()
        self.document = document
        self.undo = undo
        self.plot = plot
        self.curve = curve
        self.knots = KnotItem(self)
        self.knots.setZValue(10)
        plot.addItem(self.knots)
        self.knots.setVisible(False)
        plot.scene().sigMouseClicked.connect(self._on_scene_click)
        #: the point Delete removes (a left click on a point selects it)
        self.selected: int | None = None
        plot.setFocusPolicy(Qt.ClickFocus)
        self.deleteShortcut = QShortcut(QKeySequence(Qt.Key_Delete), plot, context=Qt.WidgetWithChildrenShortcut)
        self.deleteShortcut.activated.connect(self.remove_selected)

    # -- what the document holds ------------------------------------------
    def active(self) -> bool:
        return self.document.get("system", "potential") == "spline"

    def has_points(self) -> bool:
        return self.document.get(SECTION, "r") is not None

    def potential(self) -> SplinePotential:
        """The spline the document holds (HGNError when it has none or a bad one)."""
        d = self.document.values(SECTION)
        if d.get("r") is None:
            raise HGNError("the drawn spline potential has no control points yet: choose "
                           "'Spline (drawn)' to start from the current potential")
        return SplinePotential.from_params(**{k: v for k, v in d.items() if v is not None})

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        p = self.potential()
        return np.array(p.r), np.array(p.V)

    def show(self) -> None:
        """Markers at the document's points (hidden for other potentials)."""
        if not self.active() or not self.has_points():
            self.knots.setVisible(False)
            return
        try:
            r, v = self.points()
        except HGNError:
            self.knots.setVisible(False)
            return
        if self.selected is not None and self.selected >= len(r):
            self.selected = None
        self.knots.setData(r, v, brush=self._brushes(len(r)))
        self.knots.setVisible(True)

    def _brushes(self, n: int) -> list:
        return [pg.mkBrush(90, 200, 255, 240) if i == self.selected else pg.mkBrush(230, 120, 30, 220)
                for i in range(n)]

    def select(self, i: int | None) -> None:
        """Mark point ``i`` as the one Delete removes."""
        self.selected = i
        self.show()

    def remove_selected(self) -> bool:
        if self.selected is None or not self.active() or not self.has_points():
            return False
        i, self.selected = self.selected, None
        removed = self.remove_point(i)
        self.show()
        return removed

    # -- edits --------------------------------------------------------------
    def _push(self, pot: SplinePotential, text: str) -> bool:
        changes = spline_changes(pot)
        if all(self.document.get(s, k) == v for s, k, v in changes):
            return False
        self.undo.push(SetSettingsCommand(self.document, changes, text))
        return True

    def _edited(self, r, v, source: str = "drawn") -> SplinePotential:
        old = self.potential()
        return SplinePotential(r=tuple(float(x) for x in r), V=tuple(float(x) for x in v), slopes=old.slopes,
                               wall=old.wall, source=source)

    def _clamp(self, r: np.ndarray, i: int, x: float) -> float:
        gap = MIN_GAP * max(float(r[-1] - r[0]), 1e-6)
        lo = r[i - 1] + gap if i > 0 else gap
        hi = r[i + 1] - gap if i < len(r) - 1 else np.inf
        return float(min(max(x, lo), hi))

    def preview_point(self, i: int, x: float, y: float) -> None:
        """Show point ``i`` at (x, y) (kept between its neighbours) and the
        curve through it, without changing the document (during a drag)."""
        r, v = self.points()
        r[i], v[i] = self._clamp(r, i, x), float(y)
        try:
            pot = self._edited(r, v)
        except HGNError:
            return
        self.knots.setData(r, v, brush=self._brushes(len(r)))
        from .system_panel import potential_curve

        rr, vv = potential_curve(pot)
        self.curve.setData(rr, vv)

    def move_point(self, i: int, x: float, y: float) -> bool:
        """Move control point ``i`` to r = x (kept between its neighbours),
        V = y: one undoable command. False when nothing changed."""
        r, v = self.points()
        if not 0 <= i < len(r):
            raise HGNError(f"the spline has {len(r)} points; there is no point {i}")
        if not (np.isfinite(x) and np.isfinite(y)):
            self.show()
            return False
        r[i], v[i] = self._clamp(r, i, x), float(y)
        moved = self._push(self._edited(r, v), f"Move spline point {i + 1}")
        if not moved:
            self.show()
        return moved

    def add_point(self, x: float, y: float) -> bool:
        """A new control point at (x, y) (inside the points' range, or beyond either end)."""
        r, v = self.points()
        gap = MIN_GAP * float(r[-1] - r[0])
        if not (np.isfinite(x) and np.isfinite(y)) or x <= 0 or np.any(np.abs(r - x) < gap):
            return False             # (a double-click on a point does not add a twin)
        k = int(np.searchsorted(r, x))
        r, v = np.insert(r, k, x), np.insert(v, k, y)
        return self._push(self._edited(r, v), "Add spline point")

    def remove_point(self, i: int) -> bool:
        """Remove control point ``i`` (at least MIN_POINTS stay)."""
        r, v = self.points()
        if len(r) <= MIN_POINTS:
            self.error.emit(f"a drawn spline keeps at least {MIN_POINTS} points")
            return False
        if not 0 <= i < len(r):
            return False
        return self._push(self._edited(np.delete(r, i), np.delete(v, i)), f"Remove spline point {i + 1}")

    def set_slopes(self, left: float, right: float) -> bool:
        """New end slopes V'(r_0), V'(r_n-1) of the spline (the wall below and
        the tail above continue them): one undoable command."""
        old = self.potential()
        try:
            pot = SplinePotential(r=old.r, V=old.V, slopes=(float(left), float(right)), wall=old.wall,
                                  source=old.source)
        except (HGNError, TypeError, ValueError) as exc:
            self.error.emit(str(exc))
            return False
        which = [name for name, a, b in (("left", left, old.slopes[0]), ("right", right, old.slopes[1])) if a != b]
        return self._push(pot, f"Spline {' and '.join(which) or 'end'} slope{'s' if len(which) > 1 else ''}")

    def randomize(self, seed: int, length_scale: float, amplitude: float = 1.0) -> bool:
        """A random potential (Gaussian random field, core.physics.splines.grf_potential)."""
        try:
            pot = grf_potential(int(seed), float(length_scale), float(amplitude), knots=GRF_EDITOR_KNOTS)
        except (HGNError, TypeError, ValueError) as exc:
            self.error.emit(str(exc))
            return False
        return self._push(pot, f"Random potential (seed {int(seed)})")

    def _on_scene_click(self, ev) -> None:
        if not ev.double() or ev.button() != Qt.LeftButton or not self.active() or not self.has_points():
            return
        vb = self.plot.getPlotItem().getViewBox()
        if not vb.sceneBoundingRect().contains(ev.scenePos()):
            return
        p = vb.mapSceneToView(ev.scenePos())
        ev.accept()
        self.add_point(p.x(), p.y())
