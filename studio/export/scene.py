"""The picture of one exported video frame, rendered off-screen.

:class:`ExportScene` builds, on its own hidden ``SceneCanvas`` of exactly
the output size, the scene the studio's views show: the particles of the
ground truth and of the prediction (side by side with one camera, overlaid
with the prediction translucent, or one of them alone), bonds, the periodic
box, colouring by error / speed / energy with a colour bar, view titles, a
time label and, optionally, the energy-drift plot of both runs with a cursor
at the current time. ``render(frame)`` returns an (height, width, 3) uint8
RGB array.

Where it comes from. Sizes, colours and camera framing follow the studio's
views (``studio.widgets.particle_view``: sphere diameter from the bond
length, bonds drawn only for fixed graphs without a box, the box outline,
``reset_camera``); per-particle values and the colour map are
``studio.colouring``'s; particles are the views' own sphere impostors
(:mod:`studio.widgets.spheres`), so the video looks like the studio.

GL threads. A canvas renders on the thread that made it. In the studio the
canvas uses the views' own backend (:func:`studio_app`: EGL off-screen, or a
hidden Qt canvas that is never shown and draws into its own framebuffer
object), and rendering happens on the GUI thread in small slices
(``studio.export.gui``); on the command line it uses vispy's EGL backend
without any window (``studio.export.cli``). The canvas is made
with the output size itself, because vispy sizes scene-scaled points from
the canvas size, not from the size of the framebuffer drawn into.
"""
from __future__ import annotations

import numpy as np

from ..colouring import UNITS, ParticleEnergy, colormap_rgba, particle_error, particle_speed
from ..defaults import VIEW
from ..rollout_buffer import RolloutBuffer
from .settings import ExportSettings

#: colours of the drift curves (the studio plots' pens)
TRUTH_RGB = (77 / 255, 158 / 255, 250 / 255, 1.0)
PRED_RGB = (250 / 255, 140 / 255, 51 / 255, 1.0)
TEXT_RGB = (0.86, 0.88, 0.92, 1.0)
#: share of the frame height the drift plot takes
PLOT_SHARE = 0.27
#: frames sampled to fix the colour range of a quantity
RANGE_SAMPLES = 64
DPI = 96.0


def _camera_from(state: dict | None, system, size: float) -> dict:
    """Turntable camera parameters: the studio's current ones, else the
    views' own framing (``particle_view.default_camera``)."""
    from ..widgets.particle_view import default_camera

    if state:
        out = {k: state[k] for k in ("center", "scale_factor", "elevation", "azimuth", "fov") if k in state}
        if "center" in out and "scale_factor" in out:
            out["center"] = tuple(float(x) for x in out["center"])
            out.setdefault("fov", 35.0)
            out.setdefault("elevation", 25.0)
            out.setdefault("azimuth", 30.0)
            return out
    return default_camera(system, size)


def studio_app():
    """The vispy application the studio's own views render with: EGL
    off-screen where it works (``studio.widgets.surfaces``), else None (the
    Qt backend). Exports inside the studio draw with the same one."""
    try:
        from ..widgets.surfaces import egl_app, surface_mode
    except ImportError:  # pragma: no cover - older views without surfaces
        return None
    return egl_app() if surface_mode() == "offscreen" else None


class _View:
    """One 3D view: spheres (+ translucent ghost), bonds, box."""

    def __init__(self, scene_mod, parent, rect, camera: dict, system, size: float, ghost: bool, bonds: bool):
        from ..widgets.particle_view import _box_segments, _pad3, mass_scales
        from ..widgets.spheres import Spheres

        x, y, w, h = rect
        self.box = scene_mod.widgets.ViewBox(parent=parent, pos=(x, y), size=(w, h))
        self.box.camera = scene_mod.TurntableCamera(interactive=False, **camera)
        pos0 = _pad3(system.positions)
        scales = mass_scales(system.masses)          # heavier particles wider, as in the views
        self.spheres = Spheres(parent=self.box.scene)
        self.spheres.set_data(pos0, np.array(VIEW.truth_colour, np.float32), size=size,
                              scales=scales)
        self.ghost = None
        if ghost:
            self.ghost = Spheres(parent=self.box.scene)
            self.ghost.set_data(pos0, np.array(VIEW.prediction_colour, np.float32), size=size,
                                scales=scales)
        self.bonds = None
        if bonds:
            self.bonds = scene_mod.visuals.Line(parent=self.box.scene, pos=_pad3(system.positions),
                                                connect=system.edges.astype(np.uint32), color=VIEW.bond_colour,
                                                width=1.0, method="gl", antialias=False)
            self.bonds.set_gl_state("opaque", depth_test=True)      # as the views: cheaper, same look
        if system.box is not None:
            scene_mod.visuals.Line(parent=self.box.scene, pos=_box_segments(system.box), connect="segments",
                                   color=(0.6, 0.6, 0.65, 0.6), width=1.0, method="gl")

    def show(self, pos3, colours, ghost_pos3=None, ghost_colours=None):
        """Move the particles; ``colours`` (N, 4), one RGBA, or None (keep)."""
        self.spheres.update_positions(pos3, colours)
        if self.bonds is not None:
            self.bonds.set_data(pos=pos3)
        if self.ghost is not None and ghost_pos3 is not None:
            self.ghost.update_positions(ghost_pos3, ghost_colours)


class ExportScene:
    """Renders frames of a roll-out (a :class:`~studio.rollout_buffer.RolloutBuffer`)
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

        from ..widgets.particle_view import bond_length

        self.data = data
        self.settings = s = settings
        self.system = system = data.system
        n = data.n_filled
        self.frames = list(frames) if frames is not None else list(range(n))
        if not self.frames or max(self.frames) >= n or min(self.frames) < 0:
            from core.errors import HGNError

            raise HGNError(f"frames to render must lie in 0..{n - 1}")
        self.W, self.H = W, H = int(s.width), int(s.height)
        self.canvas = vscene.SceneCanvas(size=(W, H), show=False, bgcolor=VIEW.background, app=app,
                                         keys=None, dpi=DPI)
        if tuple(self.canvas.size) != (W, H):   # a window manager may refuse the size
            self.canvas.size = (W, H)
        self.size = VIEW.particle_size * bond_length(system)
        cam = _camera_from(camera, system, self.size)
        self._font = max(7.0, 11.0 * H / 720.0)          # points at 96 dpi
        line = self._font * DPI / 72.0
        pad = max(4, int(round(0.012 * H)))
        top = int(round(line * 1.9))
        plot_h = int(round(PLOT_SHARE * H)) if s.plot else 0
        views_h = H - top - plot_h
        self._views_rect = (0, top, W, views_h)
        root = self.canvas.scene
        layout = s.layout
        self.views: dict[str, _View] = {}
        titles = []
        bar_w = int(round(0.09 * W)) if s.colour != "uniform" else 0
        bonds = s.draw_bonds(system)
        vw = W - bar_w
        if layout == "side":
            half = vw // 2
            self.views["truth"] = _View(vscene, root, (0, top, half, views_h), cam, system, self.size, False,
                                        bonds)
            self.views["prediction"] = _View(vscene, root, (half, top, vw - half, views_h), cam, system,
                                             self.size, False, bonds)
            titles = [("Ground truth", half / 2), (self._pred_title(), half + (vw - half) / 2)]
        else:
            which = "prediction" if layout == "prediction" else "truth"
            self.views[which] = _View(vscene, root, (0, top, vw, views_h), cam, system, self.size,
                                      ghost=layout == "overlay", bonds=bonds)
            title = {"truth": "Ground truth", "prediction": self._pred_title(),
                     "overlay": f"Ground truth (solid) + {self._pred_title().lower()} (translucent)"}[layout]
            titles = [(title, vw / 2)]
        for text, x in titles:
            vscene.visuals.Text(text, parent=root, pos=(x, top / 2), color=TEXT_RGB, font_size=self._font,
                                anchor_x="center", anchor_y="center")
        self.time_text = None
        if s.time_label:
            # top left inside the views (vispy anchors count y upwards: "bottom" hangs the text below)
            self.time_text = vscene.visuals.Text("", parent=root, pos=(pad, top + pad), color=TEXT_RGB,
                                                 font_size=self._font, anchor_x="left", anchor_y="bottom")
        self._energy = None
        self._range = self._colour_range() if s.colour != "uniform" else None
        if self._range is not None:
            self._colour_bar(vscene, root, (vw, top, bar_w, views_h))
        self._cursor = None
        if s.plot:
            self._build_plot(vscene, root, (0, top + views_h, W, plot_h))
        self._fbo = None
        self._uniform_set = False

    # ------------------------------------------------------------------
    def _pred_title(self) -> str:
        d = self.data
        name = d.model_name or d.label or ""
        return "Prediction" + (f": {name}" if name else "") + (" (zero-shot)" if d.zero_shot else "")

    def _values(self, which: str, f: int):
        d, mode = self.data, self.settings.colour
        if mode == "error":
            return particle_error(d.system, d.q["truth"][f], d.q["prediction"][f])
        if mode == "speed":
            return particle_speed(d.system, d.p[which][f])
        if mode == "energy":
            if self._energy is None:
                self._energy = ParticleEnergy(d.system)
            return self._energy(d.q[which][f], d.p[which][f])
        return None

    def _colour_range(self):
        step = max(1, len(self.frames) // RANGE_SAMPLES)
        sample = self.frames[::step] + [self.frames[-1]]
        layout = self.settings.layout
        runs = {"truth": ["truth"], "prediction": ["prediction"]}.get(layout, ["truth", "prediction"])
        if not self.data.with_prediction:
            runs = ["truth"]
        lo, hi = np.inf, -np.inf
        for f in sample:
            for w in runs:
                v = self._values(w, f)
                lo, hi = min(lo, float(np.min(v))), max(hi, float(np.max(v)))
        if self.settings.colour == "error":
            lo = 0.0
        if not hi > lo:
            hi = lo + 1e-12
        return lo, hi

    def _colours(self, which: str, f: int, alpha: float = 1.0):
        if self._range is None and self._uniform_set:
            return None                      # uniform colours are uploaded once
        if self._range is None:
            c = np.array(VIEW.truth_colour if which == "truth" else VIEW.prediction_colour, np.float32)
            c[3] = alpha
            return c
        return colormap_rgba(self._values(which, f), self._range[0], self._range[1], VIEW.colormap, alpha)

    def _colour_bar(self, vscene, root, rect):
        x, y, w, h = rect
        lo, hi = self._range
        length = int(0.6 * h)
        vscene.visuals.ColorBar(cmap=VIEW.colormap, orientation="right", size=(length, max(8, int(0.18 * w))),
                                pos=(x + 0.15 * w, y + h / 2),
                                clim=(float(f"{lo:.3g}"), float(f"{hi:.3g}")),   # the bar prints these
                                label=UNITS.get(self.settings.colour, ""), label_color=TEXT_RGB,
                                parent=root)

    # ------------------------------------------------------------------
    def _build_plot(self, vscene, root, rect):
        """Energy drift of both runs over the exported span, drawn in pixels."""
        x0, y0, w, h = rect
        d = self.data
        n = d.n_filled
        t = d.t[:n]
        f0, f1 = self.frames[0], self.frames[-1]
        curves = [("ground truth", d.drift("truth"), TRUTH_RGB)]
        if d.with_prediction:
            curves.append(("prediction", d.drift("prediction"), PRED_RGB))
        ta, tb = float(t[f0]), float(t[f1])
        if tb <= ta:
            tb = ta + 1.0
        sel = slice(f0, f1 + 1)
        ys = np.concatenate([np.asarray(c[1])[sel] for c in curves])
        ys = ys[np.isfinite(ys)]
        ya, yb = (float(ys.min()), float(ys.max())) if ys.size else (0.0, 0.0)
        span = yb - ya
        if span <= 1e-14 * max(abs(ya), abs(yb), 1.0):
            span = max(abs(ya), 1e-6)
            ya, yb = ya - span, yb + span
        else:
            ya, yb = ya - 0.08 * span, yb + 0.08 * span
        font = self._font * 0.85
        line = font * DPI / 72.0
        left = x0 + int(round(max(0.085 * w, 7.5 * line)))
        right = x0 + w - int(round(0.02 * w))
        top = y0 + int(round(1.8 * line))
        bottom = y0 + h - int(round(2.6 * line))
        self._plot_box = (left, top, right, bottom, ta, tb, ya, yb)

        def to_px(tt, yy):
            px = left + (np.asarray(tt) - ta) / (tb - ta) * (right - left)
            py = bottom - (np.asarray(yy) - ya) / (yb - ya) * (bottom - top)
            return np.stack([px, py], -1).astype(np.float32)

        frame = np.array([[left, top], [right, top], [right, bottom], [left, bottom], [left, top]], np.float32)
        vscene.visuals.Line(pos=frame, color=(0.5, 0.52, 0.58, 1.0), width=1.0, method="gl", parent=root)
        if ya < 0 < yb:
            zero = to_px([ta, tb], [0.0, 0.0])
            vscene.visuals.Line(pos=zero, color=(0.4, 0.42, 0.48, 1.0), width=1.0, method="gl", parent=root)
        for name, y, rgb in curves:
            y = np.asarray(y, float)[sel]
            pts = to_px(t[sel], np.clip(y, ya, yb))
            vscene.visuals.Line(pos=pts, color=rgb, width=2.0, method="gl", antialias=False, parent=root)
        kw = dict(parent=root, color=TEXT_RGB, font_size=font)
        vscene.visuals.Text("Relative energy drift (H - H0)/|H0|", pos=(left, y0 + 0.9 * line),
                            anchor_x="left", anchor_y="center", **kw)
        lx = right
        for name, _, rgb in reversed(curves):
            vscene.visuals.Text(name, pos=(lx, y0 + 0.9 * line), anchor_x="right", anchor_y="center",
                                parent=root, color=rgb, font_size=font)
            lx -= int(line * (0.62 * len(name) + 2))
        # vispy's text anchors count y upwards: "bottom" hangs the text below pos in pixel space
        for yy, anchor in ((yb, "bottom"), (ya, "top"), (0.0, "center")):
            if anchor == "center" and not (ya < 0 < yb and min(yb, -ya) > 0.12 * (yb - ya)):
                continue    # no zero label when 0 is outside the plot or crowds an end label
            vscene.visuals.Text(f"{yy:.2g}" if yy else "0", pos=(left - 0.4 * line, to_px([ta], [yy])[0, 1]),
                                anchor_x="right", anchor_y=anchor, **kw)
        for tt, anchor in ((ta, "left"), (tb, "right")):
            vscene.visuals.Text(f"t = {tt:.4g}", pos=(to_px([tt], [ya])[0, 0], bottom + 0.35 * line),
                                anchor_x=anchor, anchor_y="bottom", **kw)
        self._cursor = vscene.visuals.Line(pos=np.array([[left, top], [left, bottom]], np.float32),
                                           color=(0.9, 0.9, 0.9, 0.8), width=1.5, method="gl", parent=root)
        self._to_px = to_px

    # ------------------------------------------------------------------
    def update(self, f: int) -> None:
        """Put frame ``f`` of the roll-out into the scene (no drawing)."""
        from core.physics.neighbours import wrap

        from ..widgets.particle_view import _pad3

        d = self.data
        box = self.system.box

        def pos(which):
            q = d.q[which][f]
            return _pad3(wrap(q, box) if box is not None else q)

        layout = self.settings.layout
        if layout == "side":
            self.views["truth"].show(pos("truth"), self._colours("truth", f))
            self.views["prediction"].show(pos("prediction"), self._colours("prediction", f))
        elif layout == "overlay":
            self.views["truth"].show(pos("truth"), self._colours("truth", f), pos("prediction"),
                                     self._colours("prediction", f, VIEW.overlay_alpha))
        else:
            self.views[layout].show(pos(layout), self._colours(layout, f))
        self._uniform_set = True
        if self.time_text is not None:
            self.time_text.text = f"t = {d.t[f]:.3f}"
        if self._cursor is not None:
            left, top, right, bottom, ta, tb, ya, yb = self._plot_box
            x = float(self._to_px([d.t[f]], [ya])[0, 0])
            self._cursor.set_data(pos=np.array([[x, top], [x, bottom]], np.float32))

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
