"""The picture of one exported video frame, rendered off-screen.

:class:`ExportScene` lays out, on its own hidden ``SceneCanvas`` of exactly
the output size, what the studio's views show, drawn by the same scene code
(:mod:`studio.scene`): the particles of the ground truth and of the
prediction in view boxes (side by side with one camera, overlaid with the
ground truth as rings around the opaque prediction, or one of them alone;
:class:`~studio.scene.particles.ParticleScene`), bonds, the periodic box,
colouring by error / speed / energy (:class:`~studio.scene.colouring.Colouring`,
its range fixed from a sample of the exported frames) with a colour bar,
view titles, a time label and, optionally, the energy-drift plot of both
runs with a cursor at the current time (:class:`~studio.scene.plot2d.DriftPlot`).
``render(frame)`` returns an (height, width, 3) uint8 RGB array.

GL threads. A canvas renders on the thread that made it. In the studio the
canvas uses the views' own backend (:func:`studio_app`: EGL off-screen, or a
hidden Qt canvas that is never shown and draws into its own framebuffer
object), and rendering happens on the GUI thread in small slices
(``studio.export.gui``); on the command line it uses vispy's EGL backend
without any window (``studio.export.cli``). The canvas is made with the
output size itself, because vispy sizes scene-scaled points from the canvas
size, not from the size of the framebuffer drawn into.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..gl import studio_app  # noqa: F401  (re-exported: the export's entry points use it)
from ..scene import palette
from ..scene.colouring import RANGE_SAMPLES, Colouring  # noqa: F401
from ..scene.frame import runs_shown, show_frame
from ..scene.geometry import camera_from, sphere_size
from ..scene.particles import ParticleScene
from ..scene.plot2d import DPI, ColourBar, DriftPlot, text_height
from .settings import ExportSettings

if TYPE_CHECKING:  # a type only: the buffer comes from the document
    from core.learning.rollout_buffer import RolloutBuffer

#: share of the frame height the drift plot takes
PLOT_SHARE = 0.27


class ExportScene:
    """Renders frames of a roll-out (a :class:`~core.learning.rollout_buffer.RolloutBuffer`)
    at ``settings.width`` x ``settings.height``.

    ``app``: a vispy Application or backend name (None: the current one;
    ``"egl"`` on the command line). ``camera``: the studio's camera state
    (center, scale_factor, elevation, azimuth, fov), else the views' default
    framing. ``frames``: the frame indices that will be exported (fixes the
    colour range and the plot's time span; default: all filled frames).
    """

    def __init__(self, data: RolloutBuffer, settings: ExportSettings, app=None, camera: dict | None = None,
                 frames: list[int] | None = None):
        from vispy import scene as vscene

        self.data = data
        self.settings = s = settings
        self.system = system = data.system
        n = data.n_filled
        self.frames = list(frames) if frames is not None else list(range(n))
        if not self.frames or max(self.frames) >= n or min(self.frames) < 0:
            from core.errors import HGNError

            raise HGNError(f"frames to render must lie in 0..{n - 1}")
        self.W, self.H = W, H = int(s.width), int(s.height)
        self.canvas = vscene.SceneCanvas(size=(W, H), show=False, bgcolor=palette.BACKGROUND, app=app,
                                         keys=None, dpi=DPI)
        if tuple(self.canvas.size) != (W, H):   # a window manager may refuse the size
            self.canvas.size = (W, H)
        self.size = sphere_size(system)
        self._font = max(7.0, 11.0 * H / 720.0)          # points at 96 dpi
        line = text_height(self._font)
        pad = max(4, int(round(0.012 * H)))
        top = int(round(line * 1.9))
        plot_h = int(round(PLOT_SHARE * H)) if s.plot else 0
        views_h = H - top - plot_h
        self._views_rect = (0, top, W, views_h)
        root = self.canvas.scene
        layout = s.layout

        # colours: the views' own code, the range fixed from the exported frames
        self.colouring = Colouring(data, s.colour)
        #: the colour range (None when uniform), fixed for the whole video
        self.range = self.colouring.fit(self.frames, runs_shown(layout, data.with_prediction))
        bar_w = int(round(0.09 * W)) if self.range is not None else 0
        vw = W - bar_w

        # the views: one camera state, the same framing as the studio's
        self.views: dict[str, ParticleScene] = {}
        self.boxes = {}
        bonds = s.draw_bonds(system)
        if layout == "side":
            half = vw // 2
            rects = {"truth": (0, top, half, views_h), "prediction": (half, top, vw - half, views_h)}
            titles = [("Ground truth", half / 2), (self._pred_title(), half + (vw - half) / 2)]
        else:
            which = "prediction" if layout == "prediction" else "truth"
            rects = {which: (0, top, vw, views_h)}
            title = {"truth": "Ground truth", "prediction": self._pred_title(),
                     "overlay": f"Ground truth (rings) + {self._pred_title().lower()} (spheres)"}[layout]
            titles = [(title, vw / 2)]
        cam = None
        for which, (x, y, w, h) in rects.items():
            box = vscene.widgets.ViewBox(parent=root, pos=(x, y), size=(w, h))
            sc = ParticleScene(box.scene, palette.TRUTH if which == "truth" else palette.PREDICTION)
            sc.set_system(system)
            sc.set_show_bonds(bonds)
            cam = cam or camera_from(camera, system, self.size)
            box.camera = vscene.TurntableCamera(interactive=False, **cam)
            self.views[which], self.boxes[which] = sc, box
        for text, x in titles:
            vscene.visuals.Text(text, parent=root, pos=(x, top / 2), color=palette.TEXT, font_size=self._font,
                                anchor_x="center", anchor_y="center")
        self.time_text = None
        if s.time_label:
            # top left inside the views (vispy anchors count y upwards: "bottom" hangs the text below)
            self.time_text = vscene.visuals.Text("", parent=root, pos=(pad, top + pad), color=palette.TEXT,
                                                 font_size=self._font, anchor_x="left", anchor_y="bottom")
        self.colour_bar = None
        if self.range is not None:
            self.colour_bar = ColourBar(root, (vw, top, bar_w, views_h), self.range[0], self.range[1],
                                        self.colouring.unit, self._font)
        self.plot = DriftPlot(root, (0, top + views_h, W, plot_h), data, self.frames, self._font) \
            if s.plot else None
        self._fbo = None

    # ------------------------------------------------------------------
    def _pred_title(self) -> str:
        d = self.data
        name = d.model_name or d.label or ""
        return "Prediction" + (f": {name}" if name else "") + (" (zero-shot)" if d.zero_shot else "")

    # ------------------------------------------------------------------
    def update(self, f: int) -> None:
        """Put frame ``f`` of the roll-out into the scene (no drawing)."""
        show_frame(self.views, self.data, f, self.settings.layout, self.colouring)
        if self.time_text is not None:
            self.time_text.text = f"t = {self.data.t[f]:.3f}"
        if self.plot is not None:
            self.plot.set_frame(f)

    def draw(self) -> np.ndarray:
        """Draw the scene into the off-screen framebuffer and read it back."""
        from vispy import gloo

        c = self.canvas
        c.set_current()
        if self._fbo is None:
            self._fbo = gloo.FrameBuffer(color=gloo.RenderBuffer((self.H, self.W)),
                                         depth=gloo.RenderBuffer((self.H, self.W)))
        c.push_fbo(self._fbo, (0, 0), (self.W, self.H))
        try:
            c.context.clear(color=c.bgcolor, depth=True)
            c.draw_visual(c.scene)
            img = self._fbo.read(alpha=False)
        finally:
            c.pop_fbo()
        return np.ascontiguousarray(img)

    def render(self, f: int) -> np.ndarray:
        """Frame ``f`` as an (height, width, 3) uint8 RGB array."""
        self.update(f)
        return self.draw()

    def close(self) -> None:
        try:
            self.canvas.close()
        except Exception:  # pragma: no cover - closing a dead context
            pass
