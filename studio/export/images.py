"""Still exports: the current frame as PNG, and the plots as PNG and CSV.

* :func:`frame_png` renders one roll-out frame (or the system at rest) off
  screen at a chosen size with the studio's layout, colouring and camera
  (:class:`~studio.export.scene.ExportScene`) and writes a PNG.
* :func:`plot_csv` writes the data of a :class:`~studio.widgets.plots.TimePlot`
  as CSV: one x column (``time``, or ``epoch`` for the loss plot) and one
  column per curve; curves on different x values get their own x columns.
* :func:`plot_png` writes the plot as it is drawn on screen.

Every file is written atomically (temporary file, then rename).
"""
from __future__ import annotations

import csv
import io as _io
import os
import tempfile
from pathlib import Path

import numpy as np

from core.errors import HGNError
from core.files.video import write_bytes_atomic, write_png

from .settings import ExportSettings


def frame_png(data, settings: ExportSettings, frame: int, path, camera: dict | None = None, app=None) -> Path:
    """Render ``frame`` of ``data`` (a RolloutBuffer) at the settings' size
    (``app``: the vispy backend; None: the studio views' own)."""
    from ..gl import studio_app
    from .scene import ExportScene

    settings.check(None, data.n_filled, data.with_prediction)
    if not 0 <= frame < data.n_filled:
        raise HGNError(f"frame {frame} does not exist (the roll-out has {data.n_filled} frames)")
    scene = ExportScene(data, settings, app=app if app is not None else studio_app(), camera=camera,
                        frames=[frame])
    try:
        img = scene.render(frame)
    finally:
        scene.close()
    return write_png(path, img)


def static_buffer(system):
    """A one-frame roll-out of the system at rest (for a picture without a run)."""
    from core.physics.trajectory import Trajectory

    from .run import buffer_from_rollout

    q = system.positions[None]
    z = np.zeros_like(q)
    tr = Trajectory(system, np.zeros(1), q, z, np.zeros(1), np.zeros(1), np.zeros((1, system.dim)), 1.0, 1,
                    label="system")
    return buffer_from_rollout(tr)


def plot_table(plot) -> tuple[list[str], list[list]]:
    """(header, rows) of a plot's curves (see module notes)."""
    xname = "epoch" if plot.cursor is None else "time"
    curves = [(name, *plot.curve_data(name)) for name in plot.curves]
    curves = [(n, np.asarray(x, float), np.asarray(y, float)) for n, x, y in curves if len(x)]
    if not curves:
        raise HGNError("the plot is empty: nothing to export")
    x0 = curves[0][1]
    if all(len(x) == len(x0) and np.array_equal(x, x0) for _, x, _ in curves):
        header = [xname] + [n for n, _, _ in curves]
        rows = [[x0[i]] + [y[i] for _, _, y in curves] for i in range(len(x0))]
        return header, rows
    header, cols = [], []
    for n, x, y in curves:
        header += [f"{xname} ({n})", n]
        cols += [x, y]
    length = max(len(c) for c in cols)
    rows = [[c[i] if i < len(c) else "" for c in cols] for i in range(length)]
    return header, rows


def plot_csv(plot, path) -> Path:
    header, rows = plot_table(plot)
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow([v if v == "" else repr(float(v)) for v in r])
    return write_bytes_atomic(path, buf.getvalue().encode("utf-8"))


def plot_png(plot, path) -> Path:
    """The plot widget as drawn (QWidget.grab), written atomically."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise HGNError(f"cannot save {path}: folder {folder} does not exist")
    pix = plot.grab()
    if pix.isNull() or pix.width() == 0:
        raise HGNError("the plot is not visible, so it cannot be drawn into an image")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=folder)
    os.close(fd)
    try:
        if not pix.save(tmp, "PNG"):
            raise HGNError(f"could not write {path}")
        os.replace(tmp, path)
    except OSError as exc:
        raise HGNError(f"could not save {path}: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
