"""Exporting what the studio shows: videos, frames, plots.

* :mod:`.settings` -- :class:`ExportSettings` (size, frame rate, frame range
  and stride, layout, colouring, time label, drift plot) with validation and
  the defaults of every choice;
* :mod:`.scene` -- :class:`ExportScene`, the off-screen picture of one frame;
* :mod:`.run` -- the render-and-encode loop (Qt-free, used headless);
* :mod:`.gui` -- the export dialog and its job (rendering and encoding in a
  worker process, progress and Cancel);
* :mod:`.cli` -- ``python main.py export-video PROJECT --out movie.mp4``
  without a window (vispy's EGL backend);
* :mod:`.images` -- the current frame as PNG, plots as PNG and CSV.

Encoding itself is :mod:`core.files.video` (PyAV).
"""
