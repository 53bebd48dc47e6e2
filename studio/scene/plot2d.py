"""Flat pieces of a video frame drawn in pixels with vispy visuals: the
colour bar of a colouring and the energy-drift plot with a time cursor.

Both sit directly under a canvas's root node, whose coordinates are pixels
(x right, y down). The studio's own colour bar
(:class:`studio.widgets.particle_view.ColourBar`) paints the same stops and
labels (:func:`studio.scene.colouring.colour_stops`, ``bar_labels``); its
drift plot (:mod:`studio.widgets.plots`) uses the same pens
(:mod:`studio.scene.palette`).
"""
from __future__ import annotations

import numpy as np

from . import palette
from .colouring import bar_labels, colour_stops

DPI = 96.0


def text_height(font_pt: float) -> float:
    """Line height in pixels of a font size in points (at :data:`DPI`)."""
    return font_pt * DPI / 72.0


class ColourBar:
    """A vertical colour bar with the quantity's name on top and the range
    at its ends, inside the pixel rectangle ``rect`` (x, y, w, h)."""

    def __init__(self, parent, rect, vmin: float, vmax: float, title: str, font_pt: float,
                 colormap: str = palette.COLORMAP):
        from vispy import scene
        from vispy.visuals.transforms import STTransform

        x, y, w, h = rect
        line = text_height(font_pt)
        top = y + 0.2 * h
        length = 0.6 * h
        bar_w = max(8.0, 0.18 * w)
        x0 = x + 0.15 * w
        stops = colour_stops(256, colormap)
        img = np.array([c for _, c in reversed(stops)], np.float32)[:, None, :]    # top row: vmax
        self.image = scene.visuals.Image(img, parent=parent, interpolation="nearest")
        self.image.transform = STTransform(scale=(bar_w, length / len(stops)), translate=(x0, top))
        hi, lo = bar_labels(vmin, vmax)
        kw = {"parent": parent, "color": palette.TEXT, "font_size": font_pt}
        self.labels = [
            scene.visuals.Text(title, pos=(x0, top - 1.3 * line), anchor_x="left", anchor_y="center", **kw),
            scene.visuals.Text(hi, pos=(x0 + bar_w + 0.4 * line, top), anchor_x="left", anchor_y="center",
                               **kw),
            scene.visuals.Text(lo, pos=(x0 + bar_w + 0.4 * line, top + length), anchor_x="left",
                               anchor_y="center", **kw),
        ]
        self.rect = (x0, top, bar_w, length)


class DriftPlot:
    """Relative energy drift of both runs of a roll-out over the frames
    ``frames``, in the pixel rectangle ``rect``, with a time cursor
    (:meth:`set_frame`). ``box`` holds (left, top, right, bottom, t0, t1,
    y0, y1) of the plot area."""

    TITLE = "Relative energy drift (H - H0)/|H0|"

    def __init__(self, parent, rect, buffer, frames, font_pt: float):
        from vispy import scene

        x0, y0, w, h = rect
        d = buffer
        t = d.t[:d.n_filled]
        self.t = t
        f0, f1 = frames[0], frames[-1]
        curves = [("ground truth", d.drift("truth"), palette.TRUTH)]
        if d.with_prediction:
            curves.append(("prediction", d.drift("prediction"), palette.PREDICTION))
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
        font = font_pt * 0.85
        line = text_height(font)
        left = x0 + int(round(max(0.085 * w, 7.5 * line)))
        right = x0 + w - int(round(0.02 * w))
        top = y0 + int(round(1.8 * line))
        bottom = y0 + h - int(round(2.6 * line))
        self.box = (left, top, right, bottom, ta, tb, ya, yb)

        def to_px(tt, yy):
            px = left + (np.asarray(tt) - ta) / (tb - ta) * (right - left)
            py = bottom - (np.asarray(yy) - ya) / (yb - ya) * (bottom - top)
            return np.stack([px, py], -1).astype(np.float32)

        self._to_px = to_px
        frame = np.array([[left, top], [right, top], [right, bottom], [left, bottom], [left, top]], np.float32)
        scene.visuals.Line(pos=frame, color=palette.FRAME, width=1.0, method="gl", parent=parent)
        if ya < 0 < yb:
            scene.visuals.Line(pos=to_px([ta, tb], [0.0, 0.0]), color=palette.ZERO_LINE, width=1.0, method="gl",
                               parent=parent)
        for _, y, rgb in curves:
            y = np.asarray(y, float)[sel]
            scene.visuals.Line(pos=to_px(t[sel], np.clip(y, ya, yb)), color=rgb, width=2.0, method="gl",
                               antialias=False, parent=parent)
        kw = {"parent": parent, "color": palette.TEXT, "font_size": font}
        # the title on the left and the legend on the right of the band above
        # the plot area: nothing covers the curves
        scene.visuals.Text(self.TITLE, pos=(left, y0 + 0.9 * line), anchor_x="left", anchor_y="center", **kw)
        lx = right
        for name, _, rgb in reversed(curves):
            scene.visuals.Text(name, pos=(lx, y0 + 0.9 * line), anchor_x="right", anchor_y="center",
                               parent=parent, color=rgb, font_size=font)
            lx -= int(line * (0.62 * len(name) + 2))
        # vispy's text anchors count y upwards: "bottom" hangs the text below pos in pixel space
        for yy, anchor in ((yb, "bottom"), (ya, "top"), (0.0, "center")):
            if anchor == "center" and not (ya < 0 < yb and min(yb, -ya) > 0.12 * (yb - ya)):
                continue    # no zero label when 0 is outside the plot or crowds an end label
            scene.visuals.Text(f"{yy:.2g}" if yy else "0", pos=(left - 0.4 * line, to_px([ta], [yy])[0, 1]),
                               anchor_x="right", anchor_y=anchor, **kw)
        for tt, anchor in ((ta, "left"), (tb, "right")):
            scene.visuals.Text(f"t = {tt:.4g}", pos=(to_px([tt], [ya])[0, 0], bottom + 0.35 * line),
                               anchor_x=anchor, anchor_y="bottom", **kw)
        self.cursor = scene.visuals.Line(pos=np.array([[left, top], [left, bottom]], np.float32),
                                         color=palette.CURSOR, width=1.5, method="gl", parent=parent)

    def set_frame(self, f: int) -> None:
        """Move the cursor to the time of frame ``f``."""
        _, top, _, bottom, _, _, ya, _ = self.box
        x = float(self._to_px([self.t[f]], [ya])[0, 0])
        self.cursor.set_data(pos=np.array([[x, top], [x, bottom]], np.float32))
