"""What one 3D view draws: the particles of one run as shaded spheres, the
other run overlaid on them, bonds and the periodic box outline.

:class:`ParticleScene` builds these vispy visuals under any scene node (a
live view's ``ViewBox.scene`` or a video frame's view box) and moves them
frame by frame; :class:`studio.widgets.particle_view.ParticleView` and
:class:`studio.export.scene.ExportScene` both draw through it, so a video
looks like the studio.

Overlay (:meth:`ParticleScene.set_overlay`): the prediction is drawn as
opaque spheres and the ground truth as rings around where its spheres are,
so an accurate prediction (both at the same place) is a sphere in a ring
and stays visible, and a wrong one is a sphere outside its ring.
"""
from __future__ import annotations

import numpy as np

from . import palette
from .geometry import box_segments, default_camera, draws_bonds, mass_scales, scene_positions, sphere_size

#: ring diameter over sphere diameter of the ground truth in overlay mode
OUTLINE_GROW = 1.35


class SphereSet:
    """One set of spheres; colours are uploaded only when they change."""

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
        if rgba.ndim == 1:
            rgba = np.broadcast_to(rgba, (len(pos3), 4))
        self.visual.set_data(pos3, rgba, size=size, scales=scales)
        self._uniform = tuple(float(c) for c in rgba[0]) if len(rgba) and np.all(rgba == rgba[0]) else None

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


class ParticleScene:
    """The particles (``particles``), the overlaid second run (``ghost``),
    bonds and box of one view, under the vispy node ``parent``.

    ``colour`` is the uniform colour of the main set (its run's colour);
    the overlaid set is the prediction's."""

    def __init__(self, parent, colour=palette.TRUTH):
        from vispy import scene

        self.colour = tuple(colour)
        self.ghost_colour = palette.PREDICTION
        self.ghost = SphereSet(parent)
        self.ghost.visual.visible = False
        self.ghost.visual.order = 0          # opaque spheres first, rings after them
        self.particles = SphereSet(parent)
        self.particles.visual.order = 1
        self.bonds = scene.visuals.Line(parent=parent, color=palette.BOND, width=1.0, connect="segments",
                                        method="gl", antialias=False)
        self.bonds.set_gl_state("opaque", depth_test=True)
        self.bonds.visible = False
        self.box = scene.visuals.Line(parent=parent, color=palette.BOX, width=1.0, connect="segments",
                                      method="gl")
        self.box.visible = False
        self.system = None
        self.size = 0.4
        #: the largest sphere's size factor (mass_scales) of the current system
        self.max_scale = 1.0
        self.show_bonds = True
        self.overlay = False
        self.shown = True
        self._edges = None
        #: particles drawn in ``mark_colour`` instead of the uniform colour (the driven ones); None: none
        self.marked: np.ndarray | None = None
        self.mark_colour = palette.SELECTION

    # -- what is drawn ------------------------------------------------------
    def set_system(self, system, q: np.ndarray | None = None) -> None:
        """A new system at q (default: its reference positions)."""
        self.system = system
        pos = scene_positions(system, system.positions if q is None else q)
        self.size = sphere_size(system)
        scales = mass_scales(system.masses)
        self.max_scale = float(scales.max()) if len(scales) else 1.0
        self.particles.set(pos, self.size, self._uniform_colours(len(pos)), scales)
        self.ghost.set(pos, self.size, self.ghost_colour, scales)
        self._edges = system.edges.astype(np.uint32) if draws_bonds(system) else None
        if self._edges is not None:
            self.bonds.set_data(pos=pos, connect=self._edges)
        if system.box is not None:
            self.box.set_data(pos=box_segments(system.box), connect="segments")
        self._visibility()

    def set_marked(self, indices) -> None:
        """Draw these particles (indices; those beyond the system are ignored) in ``mark_colour`` while the
        colouring is uniform (the driven particles); empty or None: none. Recolours at once."""
        idx = None if indices is None else np.unique(np.asarray(list(indices), dtype=np.int64))
        self.marked = idx if idx is not None and idx.size else None
        if self.system is not None and self.particles.n:
            self.particles.update(self.particles.positions, self._uniform_colours(self.particles.n))

    def _uniform_colours(self, n: int):
        """The main set's uniform colour, or (N, 4) colours with the marked particles in mark_colour."""
        if self.marked is None:
            return self.colour
        idx = self.marked[(self.marked >= 0) & (self.marked < n)]
        if not idx.size:
            return self.colour
        rgba = np.tile(np.asarray(self.colour, np.float32), (n, 1))
        rgba[idx] = np.asarray(self.mark_colour, np.float32)
        return rgba

    @property
    def has_bonds(self) -> bool:
        """Whether the system's bonds are drawn when shown (small enough)."""
        return self._edges is not None

    def set_show_bonds(self, show: bool) -> None:
        """Draw springs/bonds as lines (positions follow from the next frame)."""
        self.show_bonds = bool(show)
        self._visibility()

    def set_overlay(self, on: bool) -> None:
        """Overlay mode: the main set (ground truth) as rings around its
        spheres, the second set (prediction) opaque; off: solid spheres."""
        if bool(on) == self.overlay:
            return
        self.overlay = bool(on)
        self.particles.visual.set_outline(OUTLINE_GROW if self.overlay else 0.0)
        if not self.overlay:
            self.ghost.visual.visible = False

    def set_shown(self, shown: bool) -> None:
        """Show or hide everything (a view without anything to show)."""
        self.shown = bool(shown)
        self._visibility()

    def _visibility(self) -> None:
        on = self.shown and self.system is not None
        self.particles.visual.visible = on
        self.bonds.visible = on and self.show_bonds and self._edges is not None
        self.box.visible = on and self.system is not None and self.system.box is not None
        if not on:
            self.ghost.visual.visible = False

    def camera(self) -> dict:
        """Camera parameters that frame the system (bounding sphere)."""
        return default_camera(self.system, self.size * self.max_scale)

    # -- per frame -------------------------------------------------------------
    def show(self, q: np.ndarray, colours: np.ndarray | None = None, ghost_q: np.ndarray | None = None,
             ghost_colours: np.ndarray | None = None) -> None:
        """Move the particles to q (N, d); optional per-particle RGBA (N, 4)
        (None: the set's uniform colour); ``ghost_q`` shows the second set
        (overlay mode), hidden when None."""
        pos = scene_positions(self.system, q)
        if colours is None:
            uniform = self._uniform_colours(len(pos))
            if isinstance(uniform, np.ndarray):
                self.particles.update(pos, uniform)
            else:
                self.particles.update(pos, uniform=uniform)
        else:
            self.particles.update(pos, colours)
        if self.bonds.visible:
            self.bonds.set_data(pos=pos)
        if ghost_q is not None and self.shown:
            gpos = scene_positions(self.system, ghost_q)
            if ghost_colours is None:
                self.ghost.update(gpos, uniform=self.ghost_colour)
            else:
                self.ghost.update(gpos, ghost_colours)
            self.ghost.visual.visible = True
        else:
            self.ghost.visual.visible = False
