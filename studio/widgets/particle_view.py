"""A vispy 3D view of particles (shaded spheres) and bonds (lines).

:class:`ParticleView` wraps one ``vispy.scene.SceneCanvas`` in a QWidget. It
draws one system's particles as spherical markers sized in scene units, its
fixed edges as GL lines (one index buffer, positions re-uploaded per frame),
a periodic box outline, and optionally a translucent "ghost" set of the same
particles (the prediction overlaid on the ground truth).

Per-frame updates write straight into the markers' vertex buffer instead of
``Markers.set_data`` (which rebuilds every attribute): at 4,096 particles this
is what keeps two views above 30 frames a second under llvmpipe.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QLinearGradient, QPainter
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from ..defaults import VIEW
from ..gl import ensure_backend


def _pad3(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, dtype=np.float32)
    if q.shape[1] == 3:
        return q
    out = np.zeros((q.shape[0], 3), dtype=np.float32)
    out[:, :q.shape[1]] = q
    return out


def bond_length(system) -> float:
    """Typical particle spacing of a system (for sphere size)."""
    meta = system.meta or {}
    if "spacing" in meta:
        return float(meta["spacing"])
    if system.edges is not None and len(system.edges):
        d = system.positions[system.edges[:, 0]] - system.positions[system.edges[:, 1]]
        return float(np.median(np.linalg.norm(d, axis=1)))
    try:
        return float(system.potential.r_min)
    except Exception:
        return 1.0


class _Particles:
    """One set of spherical markers with a fast position/colour update."""

    def __init__(self, parent, spherical=True):
        from vispy import scene

        self.visual = scene.visuals.Markers(parent=parent, spherical=spherical, scaling="scene",
                                            light_position=(1.0, -1.0, 1.5), light_ambient=0.35)
        self.n = 0

    def set(self, pos3: np.ndarray, size: float, rgba) -> None:
        self.visual.set_data(pos3, size=size, face_color=rgba, edge_width=0.0, edge_color=(0, 0, 0, 0))
        self.n = len(pos3)

    def update(self, pos3: np.ndarray, rgba: np.ndarray | None = None) -> None:
        v = self.visual
        data = getattr(v, "_data", None)
        if data is None or len(data) != len(pos3) or not hasattr(v, "_vbo"):
            raise RuntimeError("markers not initialised for this particle count")
        data["a_position"] = pos3
        if rgba is not None:
            data["a_bg_color"] = rgba
        v._vbo.set_data(data)
        v.update()


class ParticleView(QWidget):
    """One 3D view. ``set_system`` once per system, ``show_frame`` per frame."""

    rendered = Signal()

    def __init__(self, title: str = "", parent: QWidget | None = None,
                 colour=VIEW.truth_colour, background: str = VIEW.background):
        super().__init__(parent)
        ensure_backend()
        from vispy import scene

        self.base_colour = np.array(colour, dtype=np.float32)
        self.ghost_colour = np.array(VIEW.prediction_colour, dtype=np.float32)
        self.canvas = scene.SceneCanvas(keys=None, bgcolor=background, parent=self, show=False)
        self.canvas.native.setMinimumSize(160, 120)
        self.canvas.native.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.view = self.canvas.central_widget.add_view()
        self.view.camera = scene.TurntableCamera(fov=35.0, elevation=25.0, azimuth=30.0)
        self.particles = _Particles(self.view.scene)
        self.ghost = _Particles(self.view.scene)
        self.ghost.visual.visible = False
        self.bonds = scene.visuals.Line(parent=self.view.scene, color=VIEW.bond_colour, width=1.0,
                                        connect="segments", method="gl", antialias=False)
        self.bonds.visible = False
        self.box = scene.visuals.Line(parent=self.view.scene, color=(0.6, 0.6, 0.65, 0.6), width=1.0,
                                      connect="segments", method="gl")
        self.box.visible = False
        self.label = QLabel(title)
        self.label.setObjectName("viewTitle")
        self.label.setAlignment(Qt.AlignCenter)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.label)
        lay.addWidget(self.canvas.native, 1)
        self.system = None
        self.size = 0.4
        self._edges = None
        self._box = None
        self._placeholder = False
        self.canvas.events.draw.connect(lambda ev: self.rendered.emit())

    # ------------------------------------------------------------------
    def set_title(self, text: str) -> None:
        self.label.setText(text)

    def set_system(self, system, q: np.ndarray | None = None, reset_camera: bool = True) -> None:
        """Show a new system at q (default: its reference positions)."""
        self.system = system
        q = system.positions if q is None else q
        pos = _pad3(self._wrap(q))
        self.size = VIEW.particle_size * bond_length(system)
        rgba = np.tile(self.base_colour, (system.n, 1))
        self.particles.set(pos, self.size, rgba)
        self.ghost.set(pos, self.size, np.tile(self.ghost_colour, (system.n, 1)))
        edges = system.edges
        if edges is not None and 0 < len(edges) <= VIEW.max_bonds and system.box is None:
            self._edges = edges.astype(np.uint32)
            self.bonds.set_data(pos=pos, connect=self._edges)
            self.bonds.visible = True
        else:
            self._edges = None
            self.bonds.visible = False
        if system.box is not None:
            self.box.set_data(pos=_box_segments(system.box), connect="segments")
            self.box.visible = True
        else:
            self.box.visible = False
        if reset_camera:
            self.reset_camera()
        self.canvas.update()

    def reset_camera(self) -> None:
        if self.system is None:
            return
        q = _pad3(self.system.positions)
        if self.system.box is not None:
            lo, hi = np.zeros(3), _pad3(self.system.box[None])[0]
        else:
            lo, hi = q.min(0), q.max(0)
        cam = self.view.camera
        cam.center = tuple(0.5 * (lo + hi))
        ext = float(np.max(hi - lo)) + 2 * self.size
        cam.scale_factor = max(ext * 1.25, 1.0)
        if self.system.dim == 2:
            cam.elevation, cam.azimuth = 90.0, 0.0
        else:
            cam.elevation, cam.azimuth = 25.0, 30.0

    def _wrap(self, q: np.ndarray) -> np.ndarray:
        if self.system is not None and self.system.box is not None:
            from core.neighbours import wrap

            return wrap(q, self.system.box)
        return q

    def show_frame(self, q: np.ndarray, colours: np.ndarray | None = None,
                   ghost_q: np.ndarray | None = None, ghost_colours: np.ndarray | None = None) -> None:
        """Move the particles to q (N, d); optional per-particle RGBA (N, 4);
        ghost_q shows a translucent second set (overlay mode)."""
        pos = _pad3(self._wrap(q))
        if colours is None:
            colours = np.broadcast_to(self.base_colour, (len(pos), 4))
        self.particles.update(pos, colours)
        if self._edges is not None:
            self.bonds.set_data(pos=pos)
        if ghost_q is not None:
            gpos = _pad3(self._wrap(ghost_q))
            if ghost_colours is None:
                c = self.ghost_colour.copy()
                c[3] = VIEW.overlay_alpha
                ghost_colours = np.broadcast_to(c, (len(gpos), 4))
            self.ghost.update(gpos, ghost_colours)
            self.ghost.visual.visible = True
        else:
            self.ghost.visual.visible = False
        self.canvas.update()

    def link_camera(self, other: "ParticleView") -> None:
        """Both views share one camera state (rotate one, the other follows)."""
        self.view.camera.link(other.view.camera)

    def render_image(self, size: tuple[int, int] | None = None) -> np.ndarray:
        """The current picture as an (h, w, 3) uint8 array (offscreen render).

        Leave ``size`` at None (the canvas's own size): vispy 0.17 does not
        rescale scene-scaled markers when ``render(size=...)`` differs from
        the canvas size, so spheres shrink or vanish at other sizes. For a
        fixed output size, resize the canvas instead."""
        img = self.canvas.render(size=size, alpha=False)
        return np.asarray(img)[..., :3]

    def closeEvent(self, ev):  # noqa: N802 (Qt name)
        self.canvas.close()
        super().closeEvent(ev)


def _box_segments(box: np.ndarray) -> np.ndarray:
    b = _pad3(np.asarray(box, float)[None])[0]
    if len(box) == 2:
        c = np.array([[0, 0, 0], [1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 0], [0, 1, 0], [0, 1, 0], [0, 0, 0]],
                     dtype=np.float32)
        return c * b
    corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=np.float32)
    segs = []
    for i in range(8):
        for j in range(i + 1, 8):
            if np.sum(np.abs(corners[i] - corners[j])) == 1:
                segs += [corners[i], corners[j]]
    return np.array(segs, dtype=np.float32) * b


class ColourBar(QWidget):
    """A vertical colour bar with its range and quantity name."""

    def __init__(self, parent: QWidget | None = None, colormap: str = VIEW.colormap):
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
            from vispy.color import get_colormap

            x = np.linspace(0, 1, 11, dtype=np.float32)
            self._stops = list(zip(x, get_colormap(self.colormap).map(x)))
        return self._stops

    def paintEvent(self, ev):  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        fm = p.fontMetrics()
        top, bottom = fm.height() + 8, self.height() - fm.height() - 6
        bar = (6, top, 16, max(bottom - top, 10))
        g = QLinearGradient(0, bar[1] + bar[3], 0, bar[1])
        for x, c in self._colour_stops():
            g.setColorAt(float(x), QColor.fromRgbF(float(c[0]), float(c[1]), float(c[2])))
        p.fillRect(*bar, g)
        p.setPen(self.palette().windowText().color())
        p.drawText(2, fm.ascent() + 2, self.title)
        p.drawText(26, bar[1] + fm.ascent() // 2, f"{self.vmax:.3g}")
        p.drawText(26, bar[1] + bar[3], f"{self.vmin:.3g}")
        p.end()
