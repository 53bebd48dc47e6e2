"""A vispy 3D view of particles (shaded spheres) and bonds (lines).

:class:`ParticleView` wraps one ``vispy.scene.SceneCanvas`` in a QWidget. It
draws one system's particles as shaded spheres sized in scene units (wider
for heavier particles, :func:`mass_scales`)
(:mod:`studio.widgets.spheres`, a lean point-sprite visual: vispy's general
Markers visual is about three times slower under llvmpipe), its fixed edges
as GL lines (one index buffer, positions re-uploaded per frame), a periodic
box outline, and optionally a translucent "ghost" set of the same particles
(the prediction overlaid on the ground truth).
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QLinearGradient, QPainter
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

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


#: sphere size factors are kept within these bounds (a particle 1000 times
#: heavier than the rest must not fill the view)
MASS_SCALE_RANGE = (0.4, 2.5)


def mass_scales(masses) -> np.ndarray:
    """Size factor of each particle's sphere from its mass: the radius grows
    as (m / m_ref)^(1/3) (a sphere of one density), m_ref being the median
    mass, so uniform masses keep factor 1 (today's look) and, in a drawing
    of mass-1 particles, one of mass 3 is drawn 3^(1/3) = 1.44 times wider.
    Clipped to :data:`MASS_SCALE_RANGE`."""
    m = np.asarray(masses, float).ravel()
    if m.size == 0:
        return np.ones(0, np.float32)
    ref = float(np.median(m))
    if not (np.all(np.isfinite(m)) and ref > 0 and np.all(m > 0)):
        return np.ones(m.size, np.float32)
    return np.clip(np.cbrt(m / ref), *MASS_SCALE_RANGE).astype(np.float32)


def default_camera(system, size: float) -> dict:
    """Turntable camera parameters (center, scale_factor, elevation, azimuth,
    fov) that frame ``system`` by its bounding sphere (of the periodic box or
    of the particles, plus one sphere radius ``size``), so that it fits in
    the view from any direction; 2D systems are seen from above. Used by
    :meth:`ParticleView.reset_camera` and by the video export."""
    q = _pad3(system.positions)
    if system.box is not None:
        lo, hi = np.zeros(3), _pad3(system.box[None])[0]
    else:
        lo, hi = q.min(0), q.max(0)
    radius = 0.5 * float(np.linalg.norm(hi - lo)) + size
    flat = system.dim == 2
    return {"center": tuple(float(x) for x in 0.5 * (lo + hi)), "scale_factor": max(2.1 * radius, 1.0),
            "elevation": 90.0 if flat else 25.0, "azimuth": 0.0 if flat else 30.0, "fov": 35.0}


class _Particles:
    """One set of shaded spheres; colours are uploaded only when they change."""

    def __init__(self, parent):
        from .spheres import Spheres

        self.visual = Spheres(parent=parent)
        self._uniform = None      # the RGBA all particles have, when they share one

    @property
    def n(self) -> int:
        return self.visual.n

    @property
    def positions(self) -> np.ndarray:
        return self.visual.positions

    @property
    def colors(self) -> np.ndarray:
        return self.visual.colors

    @property
    def scales(self) -> np.ndarray:
        return self.visual.scales

    def set(self, pos3: np.ndarray, size: float, rgba, scales=None) -> None:
        rgba = np.asarray(rgba, np.float32)
        self.visual.set_data(pos3, rgba, size=size, scales=scales)
        self._uniform = tuple(rgba[0]) if rgba.ndim == 2 and len(rgba) and np.all(rgba == rgba[0]) else None

    def update(self, pos3: np.ndarray, rgba: np.ndarray | None = None, uniform=None) -> None:
        """New positions; per-particle ``rgba`` or one ``uniform`` colour."""
        if uniform is not None:
            uniform = tuple(float(c) for c in uniform)
            if uniform != self._uniform:
                rgba = np.broadcast_to(np.asarray(uniform, np.float32), (len(pos3), 4))
                self._uniform = uniform
        elif rgba is not None:
            self._uniform = None
        self.visual.update_positions(pos3, rgba)


class ParticleView(QWidget):
    """One 3D view. ``set_system`` once per system, ``show_frame`` per frame."""

    rendered = Signal()

    def __init__(self, title: str = "", parent: QWidget | None = None,
                 colour=VIEW.truth_colour, background: str = VIEW.background):
        super().__init__(parent)
        ensure_backend()
        from vispy import scene

        from .surfaces import OffscreenSurface, WidgetSurface, make_canvas, surface_mode

        self.base_colour = np.array(colour, dtype=np.float32)
        self.ghost_colour = np.array(VIEW.prediction_colour, dtype=np.float32)
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
        self.particles = _Particles(self.view.scene)
        self.ghost = _Particles(self.view.scene)
        self.ghost.visual.visible = False
        self.bonds = scene.visuals.Line(parent=self.view.scene, color=VIEW.bond_colour, width=1.0,
                                        connect="segments", method="gl", antialias=False)
        self.bonds.set_gl_state("opaque", depth_test=True)
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
        lay.addWidget(self.surface_widget, 1)
        self.system = None
        self.size = 0.4
        #: the largest sphere's size factor (mass_scales) of the current system
        self.max_scale = 1.0
        self._edges = None
        self.show_bonds = True

    # ------------------------------------------------------------------
    def set_title(self, text: str) -> None:
        self.label.setText(text)

    def set_system(self, system, q: np.ndarray | None = None, reset_camera: bool = True) -> None:
        """Show a new system at q (default: its reference positions)."""
        self.system = system
        q = system.positions if q is None else q
        pos = _pad3(self._wrap(q))
        self.size = VIEW.particle_size * bond_length(system)
        scales = mass_scales(system.masses)
        self.max_scale = float(scales.max()) if len(scales) else 1.0
        rgba = np.tile(self.base_colour, (system.n, 1))
        self.particles.set(pos, self.size, rgba, scales)
        self.ghost.set(pos, self.size, np.tile(self.ghost_colour, (system.n, 1)), scales)
        edges = system.edges
        if edges is not None and len(edges) > 0 and system.box is None:
            self._edges = edges.astype(np.uint32)
            self.bonds.set_data(pos=pos, connect=self._edges)
            self.bonds.visible = self.show_bonds
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
        self.surface.mark_dirty()

    def set_show_bonds(self, show: bool) -> None:
        """Draw the springs/bonds as lines (positions follow from the next frame)."""
        self.show_bonds = bool(show)
        self.bonds.visible = self.show_bonds and self._edges is not None
        self.surface.mark_dirty()

    def reset_camera(self) -> None:
        if self.system is None:
            return
        cam = self.view.camera
        for key, value in default_camera(self.system, self.size * self.max_scale).items():
            setattr(cam, key, value)

    def _wrap(self, q: np.ndarray) -> np.ndarray:
        if self.system is not None and self.system.box is not None:
            from core.physics.neighbours import wrap

            return wrap(q, self.system.box)
        return q

    def show_frame(self, q: np.ndarray, colours: np.ndarray | None = None,
                   ghost_q: np.ndarray | None = None, ghost_colours: np.ndarray | None = None) -> None:
        """Move the particles to q (N, d); optional per-particle RGBA (N, 4);
        ghost_q shows a translucent second set (overlay mode)."""
        pos = _pad3(self._wrap(q))
        if colours is None:
            self.particles.update(pos, uniform=self.base_colour)
        else:
            self.particles.update(pos, colours)
        if self._edges is not None and self.show_bonds:
            self.bonds.set_data(pos=pos)
        if ghost_q is not None:
            gpos = _pad3(self._wrap(ghost_q))
            if ghost_colours is None:
                c = self.ghost_colour.copy()
                c[3] = VIEW.overlay_alpha
                self.ghost.update(gpos, uniform=c)
            else:
                self.ghost.update(gpos, ghost_colours)
            self.ghost.visual.visible = True
        else:
            self.ghost.visual.visible = False
        self.surface.mark_dirty()

    def link_camera(self, other: "ParticleView") -> None:
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
