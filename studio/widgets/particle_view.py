"""A vispy 3D view of particles (shaded spheres) and bonds (lines).

:class:`ParticleView` wraps one ``vispy.scene.SceneCanvas`` in a QWidget
(:mod:`studio.widgets.surfaces`: off-screen EGL or a Qt OpenGL widget) with
a title above it. What it draws is :class:`studio.scene.particles.ParticleScene`,
the code the video export draws with too: spheres sized from the bond length
and the masses, bonds, the periodic box, the overlaid second run. A view
with nothing to show (the prediction before a model exists) shows a
message instead of particles (:meth:`ParticleView.set_placeholder`).
:class:`ColourBar` is the colour bar of a colouring.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QLinearGradient, QPainter
from PySide6.QtWidgets import QLabel, QStackedWidget, QVBoxLayout, QWidget

from ..gl import ensure_backend, surface_mode
from ..scene import palette
from ..scene.colouring import bar_labels, colour_stops
from ..scene.particles import ParticleScene


class ParticleView(QWidget):
    """One 3D view. ``set_system`` once per system, ``show_frame`` per frame."""

    rendered = Signal()
    #: Ctrl+click on a particle: its index (e.g. to drive it: the System tab's damping and driving)
    particleClicked = Signal(int)
    #: how far (pixels) from a particle's projected centre a Ctrl+click still picks it
    PICK_RADIUS = 30.0

    def __init__(self, title: str = "", parent: QWidget | None = None, colour=palette.TRUTH,
                 background=palette.BACKGROUND):
        super().__init__(parent)
        ensure_backend()
        from vispy import scene

        from .surfaces import OffscreenSurface, WidgetSurface, make_canvas

        self.mode = surface_mode()
        self.canvas = make_canvas(self.mode, self, background)
        if self.mode == "offscreen":
            self.surface = OffscreenSurface(self.canvas, self)
            self.surface_widget = self.surface
            self.surface.rendered.connect(self.rendered)
        else:
            self.surface = WidgetSurface(self.canvas)
            self.surface_widget = self.canvas.native
            self.canvas.events.draw.connect(lambda ev: self.rendered.emit())
        self.surface_widget.setObjectName("viewSurface")
        self.view = self.canvas.central_widget.add_view()
        self.view.camera = scene.TurntableCamera(fov=35.0, elevation=25.0, azimuth=30.0)
        #: what this view draws (shared with the video export)
        self.scene = ParticleScene(self.view.scene, colour)
        self.label = QLabel(title)
        self.label.setObjectName("viewTitle")
        self.label.setAlignment(Qt.AlignCenter)
        self.placeholder = QLabel("")
        self.placeholder.setObjectName("viewPlaceholder")
        self.placeholder.setAlignment(Qt.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.surface_widget)
        self.stack.addWidget(self.placeholder)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.label)
        lay.addWidget(self.stack, 1)
        self._warm = False
        self.surface_widget.installEventFilter(self)

    # -- picking -----------------------------------------------------------------
    def eventFilter(self, obj, ev):  # noqa: N802 (Qt name)
        """Ctrl+click on the surface picks the particle under the mouse (the camera ignores that click)."""
        from PySide6.QtCore import QEvent

        if obj is self.surface_widget and ev.type() == QEvent.MouseButtonPress \
                and ev.button() == Qt.LeftButton and ev.modifiers() & Qt.ControlModifier:
            p = ev.position()
            i = self.pick(float(p.x()), float(p.y()))
            if i is not None:
                self.particleClicked.emit(i)
            return True
        return super().eventFilter(obj, ev)

    def projected(self) -> np.ndarray:
        """The particles' centres in surface pixels (N, 2) as the camera shows them now."""
        pos = self.particles.positions
        if pos is None or len(pos) == 0:
            return np.zeros((0, 2))
        tr = self.view.scene.node_transform(self.canvas.scene)
        m = np.asarray(tr.map(np.asarray(pos, dtype=np.float64)[:, :3]), dtype=np.float64)
        return m[:, :2] / m[:, 3:4]

    def pick(self, x: float, y: float) -> int | None:
        """The particle whose projected centre is nearest to (x, y) (surface pixels, as the mouse gives
        them), within PICK_RADIUS; None when there is none (or a placeholder is shown)."""
        if self.empty or self.system is None:
            return None
        xy = self.projected()
        if not len(xy):
            return None
        d = np.hypot(xy[:, 0] - x, xy[:, 1] - y)
        i = int(np.argmin(d))
        return i if d[i] <= self.PICK_RADIUS else None

    # -- what the scene holds (tests and callers read these) --------------------
    @property
    def particles(self):
        return self.scene.particles

    @property
    def ghost(self):
        return self.scene.ghost

    @property
    def bonds(self):
        return self.scene.bonds

    @property
    def box(self):
        return self.scene.box

    @property
    def system(self):
        return self.scene.system

    @property
    def size(self) -> float:
        return self.scene.size

    @property
    def max_scale(self) -> float:
        return self.scene.max_scale

    @property
    def show_bonds(self) -> bool:
        return self.scene.show_bonds

    # ------------------------------------------------------------------
    def set_title(self, text: str) -> None:
        self.label.setText(text)

    def set_placeholder(self, text: str | None) -> None:
        """Show ``text`` instead of the particles (None: the particles again).
        The scene keeps its system, so the camera stays framed."""
        empty = bool(text)
        self.placeholder.setText(text or "")
        self.scene.set_shown(not empty)
        self.stack.setCurrentWidget(self.placeholder if empty else self.surface_widget)
        self.surface.mark_dirty()

    @property
    def empty(self) -> bool:
        """Whether the view shows its placeholder message."""
        return self.stack.currentWidget() is self.placeholder

    def set_system(self, system, q: np.ndarray | None = None, reset_camera: bool = True) -> None:
        """Show a new system at q (default: its reference positions)."""
        self.scene.set_system(system, q)
        if reset_camera:
            self.reset_camera()
        self.surface.mark_dirty()

    def set_marked(self, indices) -> None:
        """Particles drawn in the highlight colour while the colouring is uniform (the driven ones)."""
        self.scene.set_marked(indices)
        self.surface.mark_dirty()

    def set_show_bonds(self, show: bool) -> None:
        """Draw the springs/bonds as lines (positions follow from the next frame)."""
        self.scene.set_show_bonds(show)
        self.surface.mark_dirty()

    def reset_camera(self) -> None:
        if self.system is None:
            return
        # all parameters in one change: set one by one, each updated the
        # scene transforms of this view and of the linked one (5 x 2 updates)
        self.view.camera.set_state(dict(self.scene.camera()))

    def warm_up(self) -> None:
        """Draw every visual of the scene once, even under a placeholder: a
        visual's first draw compiles its shaders and uploads its buffers
        (50-130 ms under the software renderer), which would otherwise fall
        into the first frame of the first prediction. Off-screen mode only;
        once per view."""
        if self._warm or self.mode != "offscreen" or self.system is None:
            return
        sc = self.scene
        parts = [sc.particles.visual, sc.ghost.visual, sc.bonds, sc.box]
        was = [v.visible for v in parts]
        try:
            sc.particles.visual.visible = sc.ghost.visual.visible = True
            sc.bonds.visible = sc.has_bonds
            sc.box.visible = self.system.box is not None
            self.surface.render()
        finally:
            for v, on in zip(parts, was):
                v.visible = on
            self.surface.mark_dirty()      # what it shows now
        self._warm = True

    def show_frame(self, q: np.ndarray, colours: np.ndarray | None = None,
                   ghost_q: np.ndarray | None = None, ghost_colours: np.ndarray | None = None) -> None:
        """Move the particles to q (N, d); optional per-particle RGBA (N, 4);
        ghost_q overlays a second set (see ParticleScene.show)."""
        self.scene.show(q, colours, ghost_q, ghost_colours)
        self.surface.mark_dirty()

    def changed(self) -> None:
        """The scene was changed from outside (studio.scene.frame): redraw."""
        self.surface.mark_dirty()

    def link_camera(self, other: ParticleView) -> None:
        """Both views share one camera state (rotate one, the other follows)."""
        self.view.camera.link(other.view.camera)

    @property
    def frames(self) -> int:
        """How many times this view has drawn its scene."""
        return self.surface.frames

    def render_image(self) -> np.ndarray:
        """Draw now and return the picture as an (h, w, 3) uint8 array at the
        view's size. (vispy's ``render(size=...)`` at another size than the
        canvas's does not rescale point sizes: resize the view instead.)"""
        return np.asarray(self.surface.render())[..., :3]

    def closeEvent(self, ev):  # noqa: N802 (Qt name)
        self.canvas.close()
        super().closeEvent(ev)


class ColourBar(QWidget):
    """A vertical colour bar with its range and quantity name (the stops and
    labels of the video export's bar, studio.scene.plot2d.ColourBar)."""

    def __init__(self, parent: QWidget | None = None, colormap: str = palette.COLORMAP):
        super().__init__(parent)
        self.setObjectName("colourBar")
        self.colormap = colormap
        self.vmin, self.vmax, self.title = 0.0, 1.0, ""
        self.setFixedWidth(86)
        self._stops = None

    def set_range(self, vmin: float, vmax: float, title: str = "") -> None:
        self.vmin, self.vmax, self.title = float(vmin), float(vmax), title
        self.update()

    def _colour_stops(self):
        if self._stops is None:
            self._stops = colour_stops(11, self.colormap)
        return self._stops

    def paintEvent(self, ev):  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        fm = p.fontMetrics()
        top, bottom = fm.height() + 8, self.height() - fm.height() - 6
        bar = (6, top, 16, max(bottom - top, 10))
        g = QLinearGradient(0, bar[1] + bar[3], 0, bar[1])
        for x, c in self._colour_stops():
            g.setColorAt(x, QColor.fromRgbF(c[0], c[1], c[2]))
        p.fillRect(*bar, g)
        hi, lo = bar_labels(self.vmin, self.vmax)
        p.setPen(self.palette().windowText().color())
        p.drawText(2, fm.ascent() + 2, self.title)
        p.drawText(26, bar[1] + fm.ascent() // 2, hi)
        p.drawText(26, bar[1] + bar[3], lo)
        p.end()
