"""Video export in the studio: a dialog with every choice, a progress bar
and Cancel, and the job that renders and encodes without freezing the window.

Processes (see docs/platform.md): the whole export, rendering and encoding,
runs in a worker process (:class:`VideoExportJob` drives
:func:`studio.export.run.export_job` through
:class:`studio.workers.JobRunner`), with vispy's headless EGL backend, as
``main.py export-video`` renders. The window only receives progress
figures, so it stays responsive however long frames take to draw, and the
shader compilation of the first frame happens there too. Cancel asks the
job to stop (it checks before every frame) and the worker's encoder removes
its temporary file: no broken video is left, and an older file of the same
name is untouched. Should the job not stop within the runner's grace, its
process is terminated and this side removes the temporary file.
"""
from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog,
                               QFormLayout, QHBoxLayout, QLabel, QLineEdit, QProgressBar, QPushButton,
                               QSpinBox, QToolButton, QVBoxLayout, QWidget)

from core.errors import HGNError
from core.files.video import FORMATS, format_for

from ..workers import CANCEL_GRACE, JobRunner
from .run import ExportResult, export_job
from .settings import COLOURS, LAYOUTS, MAX_HEIGHT, MAX_WIDTH, SIZES, ExportSettings


def camera_state(camera) -> dict:
    """The studio view camera's state as a plain dict (for export and projects)."""
    out = {}
    for k in ("center", "scale_factor", "elevation", "azimuth", "fov"):
        v = getattr(camera, k, None)
        if v is None:
            continue
        out[k] = [float(x) for x in v] if k == "center" else float(v)
    return out


class VideoExportJob(QObject):
    """Render ``settings.frames`` of ``data`` and encode them into ``path``,
    in a worker process.

    Signals: ``progress(encoded, total)``, then exactly one of
    ``finished(ExportResult)``, ``failed(message)`` or ``cancelled()``.
    """

    progress = Signal(int, int)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, data, settings: ExportSettings, path, camera: dict | None = None,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.data, self.settings, self.path, self.camera = data, settings, Path(path), camera
        self.frames: list[int] = []
        self._tmp: str | None = None
        self.runner = JobRunner(self)
        self.runner.progress.connect(self._on_progress)
        self.runner.partial.connect(self._on_partial)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(self._on_cancelled)

    def is_running(self) -> bool:
        return self.runner.is_running()

    def start(self) -> bool:
        """Check the settings and begin; False (after ``failed``) when they are bad."""
        try:
            self.settings.check(self.path, self.data.n_filled, self.data.with_prediction)
            self.frames = self.settings.frames(self.data.n_filled)
        except HGNError as exc:
            self.failed.emit(str(exc))
            return False
        self._tmp = None
        self.progress.emit(0, len(self.frames))
        self.runner.start("export", export_job, self.data, self.settings, str(self.path), self.camera)
        return True

    @Slot()
    def cancel(self, wait: bool = False) -> None:
        """Stop: no video is written and a previous file is kept. With
        ``wait`` the job has ended (``cancelled`` emitted) when this returns
        (at most the runner's grace, when the dialog closes)."""
        if not self.runner.is_running():
            return
        self.runner.cancel()
        if wait:
            self.runner.wait(int(1000 * CANCEL_GRACE) + 2000)

    @Slot(str, float)
    def _on_progress(self, stage: str, fraction: float) -> None:
        n = len(self.frames)
        self.progress.emit(min(n, int(round(fraction * n))), n)

    @Slot(object)
    def _on_partial(self, item) -> None:
        if isinstance(item, tuple) and len(item) == 2 and item[0] == "tmp":
            self._tmp = item[1]

    def _remove_tmp(self) -> None:
        if self._tmp:
            try:
                os.unlink(self._tmp)
            except OSError:
                pass                     # the worker removed it (the usual case)
            self._tmp = None

    @Slot(object)
    def _on_finished(self, res: ExportResult) -> None:
        self._tmp = None
        self.finished.emit(res)

    @Slot(str, str)
    def _on_failed(self, message: str, details: str) -> None:
        self._remove_tmp()
        self.failed.emit(message if not details else f"internal error while exporting: {message}")

    @Slot()
    def _on_cancelled(self) -> None:
        self._remove_tmp()
        self.cancelled.emit()


class ExportVideoDialog(QDialog):
    """Every export choice, a progress bar, Export and Cancel.

    ``data``: the roll-out (RolloutBuffer); ``settings``: the choices to
    start from (last used, or the studio's layout and colouring);
    ``camera``: the studio's camera state; ``folder``: where to propose the
    file. Emits ``exported(path)`` after a successful export.
    """

    exported = Signal(str)

    def __init__(self, data, settings: ExportSettings | None = None, camera: dict | None = None,
                 folder: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("exportDialog")
        self.setWindowTitle("Export video")
        self.data, self.camera = data, camera
        self.job: VideoExportJob | None = None
        self.result: ExportResult | None = None
        s = settings or ExportSettings()
        n = data.n_filled

        self.pathEdit = QLineEdit(str(Path(folder or ".") / "rollout.mp4"))
        self.pathEdit.setObjectName("exportPath")
        browse = QToolButton()
        browse.setText("…")
        browse.setToolTip("Choose the file")
        browse.clicked.connect(self._browse)
        self.formatCombo = QComboBox()
        self.formatCombo.setObjectName("exportFormat")
        for key, f in FORMATS.items():
            self.formatCombo.addItem(f.label, key)
        self.sizeCombo = QComboBox()
        self.sizeCombo.setObjectName("exportSizePreset")
        for w, h in SIZES:
            self.sizeCombo.addItem(f"{w} x {h}", f"{w}x{h}")
        self.sizeCombo.addItem("Custom", "")
        self.widthSpin = _spin("exportWidth", 16, MAX_WIDTH, s.width, step=2)
        self.heightSpin = _spin("exportHeight", 16, MAX_HEIGHT, s.height, step=2)
        self.fpsSpin = QDoubleSpinBox()
        self.fpsSpin.setObjectName("exportFps")
        self.fpsSpin.setRange(1.0, 120.0)
        self.fpsSpin.setDecimals(1)
        self.fpsSpin.setValue(float(s.fps))
        last = max(n - 1, 0)
        self.startSpin = _spin("exportStart", 0, last, min(s.start, last))
        # "to" is the last frame included (ExportSettings.stop is one past it)
        self.stopSpin = _spin("exportStop", 0, last, last if s.stop is None else max(0, min(s.stop - 1, last)))
        self.strideSpin = _spin("exportStride", 1, max(n, 1), s.stride)
        self.layoutCombo = QComboBox()
        self.layoutCombo.setObjectName("exportLayout")
        for k, v in LAYOUTS.items():
            if data.with_prediction or k == "truth":
                self.layoutCombo.addItem(v, k)
        self.colourCombo = QComboBox()
        self.colourCombo.setObjectName("exportColour")
        for k, v in COLOURS.items():
            if data.with_prediction or k != "error":
                self.colourCombo.addItem(v, k)
        _select(self.layoutCombo, s.layout if data.with_prediction else "truth")
        _select(self.colourCombo, s.colour)
        self.timeCheck = QCheckBox("Time label")
        self.timeCheck.setObjectName("exportTimeLabel")
        self.timeCheck.setChecked(s.time_label)
        self.plotCheck = QCheckBox("Energy-drift plot with a moving cursor")
        self.plotCheck.setObjectName("exportPlot")
        self.plotCheck.setChecked(s.plot)
        self.bondsCheck = QCheckBox("Bonds")
        self.bondsCheck.setObjectName("exportBonds")
        self.bondsCheck.setChecked(s.draw_bonds(data.system) if s.bonds is None else bool(s.bonds))
        self.bondsCheck.setToolTip("Draw the springs (off by default for large lattices: they cost "
                                   "render time and hide behind the spheres)")
        self.framesLabel = QLabel()
        self.framesLabel.setObjectName("exportFrameCount")
        self.progressBar = QProgressBar()
        self.progressBar.setObjectName("exportProgress")
        self.progressBar.setRange(0, 1)
        self.progressBar.setValue(0)
        self.statusLabel = QLabel("")
        self.statusLabel.setObjectName("exportStatus")
        self.statusLabel.setWordWrap(True)
        self.exportButton = QPushButton("Export")
        self.exportButton.setObjectName("exportStartButton")
        self.exportButton.setDefault(True)
        self.cancelButton = QPushButton("Cancel export")
        self.cancelButton.setObjectName("exportCancelButton")
        self.cancelButton.setEnabled(False)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        buttons.addButton(self.exportButton, QDialogButtonBox.ActionRole)
        buttons.addButton(self.cancelButton, QDialogButtonBox.ActionRole)

        file_row = QHBoxLayout()
        file_row.addWidget(self.pathEdit, 1)
        file_row.addWidget(browse)
        size_row = QHBoxLayout()
        size_row.addWidget(self.sizeCombo)
        size_row.addWidget(self.widthSpin)
        size_row.addWidget(QLabel("x"))
        size_row.addWidget(self.heightSpin)
        range_row = QHBoxLayout()
        for label, w in (("from", self.startSpin), ("to", self.stopSpin), ("every", self.strideSpin)):
            range_row.addWidget(QLabel(label))
            range_row.addWidget(w)
        range_row.addWidget(self.framesLabel, 1)
        form = QFormLayout()
        form.addRow("File", file_row)
        form.addRow("Format", self.formatCombo)
        form.addRow("Size (pixels)", size_row)
        form.addRow("Frame rate (fps)", self.fpsSpin)
        form.addRow("Roll-out frames", range_row)
        form.addRow("Layout", self.layoutCombo)
        form.addRow("Colour by", self.colourCombo)
        checks = QHBoxLayout()
        for c in (self.timeCheck, self.plotCheck, self.bondsCheck):
            checks.addWidget(c)
        form.addRow("Show", checks)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.progressBar)
        lay.addWidget(self.statusLabel)
        lay.addWidget(buttons)
        self._inputs = [self.pathEdit, browse, self.formatCombo, self.sizeCombo, self.widthSpin, self.heightSpin,
                        self.fpsSpin, self.startSpin, self.stopSpin, self.strideSpin, self.layoutCombo,
                        self.colourCombo, self.timeCheck, self.plotCheck, self.bondsCheck, self.exportButton]

        self._sync_format_from_path()
        self._sync_size_preset()
        self.pathEdit.editingFinished.connect(self._sync_format_from_path)
        self.formatCombo.currentIndexChanged.connect(self._on_format)
        self.sizeCombo.currentIndexChanged.connect(self._on_size_preset)
        self.widthSpin.valueChanged.connect(self._sync_size_preset)
        self.heightSpin.valueChanged.connect(self._sync_size_preset)
        for sp in (self.startSpin, self.stopSpin, self.strideSpin):
            sp.valueChanged.connect(self._update_count)
        self.exportButton.clicked.connect(self.start_export)
        self.cancelButton.clicked.connect(lambda: self.cancel_export())
        self._update_count()

    # -- choices ----------------------------------------------------------------
    def settings(self) -> ExportSettings:
        n = self.data.n_filled
        stop = self.stopSpin.value() + 1
        return ExportSettings(width=self.widthSpin.value(), height=self.heightSpin.value(),
                              fps=self.fpsSpin.value(), start=self.startSpin.value(),
                              stop=None if stop >= n else stop, stride=self.strideSpin.value(),
                              layout=self.layoutCombo.currentData(), colour=self.colourCombo.currentData(),
                              time_label=self.timeCheck.isChecked(), plot=self.plotCheck.isChecked(),
                              bonds=self.bondsCheck.isChecked())

    def path(self) -> Path:
        return Path(self.pathEdit.text().strip())

    def _browse(self) -> None:
        key = self.formatCombo.currentData()
        filt = ";;".join(f"{f.label} (*.{k})" for k, f in FORMATS.items())
        path, _ = QFileDialog.getSaveFileName(self, "Export video", str(self.path()), filt,
                                              f"{FORMATS[key].label} (*.{key})")
        if path:
            self.pathEdit.setText(path)
            self._sync_format_from_path()

    def _sync_format_from_path(self) -> None:
        try:
            key = format_for(self.path()).key
        except HGNError:
            return
        _select(self.formatCombo, key)

    def _on_format(self) -> None:
        key = self.formatCombo.currentData()
        p = self.path()
        if p.suffix.lower() != f".{key}":
            self.pathEdit.setText(str(p.with_suffix(f".{key}")))

    def _on_size_preset(self) -> None:
        key = self.sizeCombo.currentData()
        if key:
            for spin, v in zip((self.widthSpin, self.heightSpin), (int(x) for x in key.split("x"))):
                spin.blockSignals(True)
                spin.setValue(v)
                spin.blockSignals(False)

    def _sync_size_preset(self) -> None:
        i = self.sizeCombo.findData(f"{self.widthSpin.value()}x{self.heightSpin.value()}")
        self.sizeCombo.blockSignals(True)
        self.sizeCombo.setCurrentIndex(i if i >= 0 else self.sizeCombo.count() - 1)
        self.sizeCombo.blockSignals(False)

    def _update_count(self) -> None:
        try:
            n = len(self.settings().frames(self.data.n_filled))
            fps = self.fpsSpin.value()
            self.framesLabel.setText(f"{n} frames, {n / fps:.1f} s")
        except HGNError:
            self.framesLabel.setText("no frames")

    # -- running ------------------------------------------------------------------
    @Slot()
    def start_export(self) -> bool:
        if self.job is not None and self.job.is_running():
            return False
        self.result = None
        job = VideoExportJob(self.data, self.settings(), self.path(), camera=self.camera, parent=self)
        job.progress.connect(self._on_progress)
        job.finished.connect(self._on_finished)
        job.failed.connect(self._on_failed)
        job.cancelled.connect(self._on_cancelled)
        self.job = job
        self._set_running(True)
        self.statusLabel.setStyleSheet("")
        self.statusLabel.setText("preparing the renderer…")   # the worker compiles the shaders (about a second)
        job.progress.connect(lambda d, t: d == 0 or self.statusLabel.setText("rendering and encoding…"))
        if not job.start():
            return False
        return True

    @Slot()
    def cancel_export(self, wait: bool = False) -> None:
        """Cancel the running export (``wait``: until it has ended)."""
        if self.job is not None:
            self.job.cancel(wait=wait)

    def _set_running(self, running: bool) -> None:
        for w in self._inputs:
            w.setEnabled(not running)
        self.cancelButton.setEnabled(running)

    @Slot(int, int)
    def _on_progress(self, done: int, total: int) -> None:
        self.progressBar.setRange(0, max(total, 1))
        self.progressBar.setValue(done)

    @Slot(object)
    def _on_finished(self, res: ExportResult) -> None:
        self.result = res
        self._set_running(False)
        self.progressBar.setValue(self.progressBar.maximum())
        self.statusLabel.setText(f"wrote {res.path}: {res.frames} frames in {res.seconds:.1f} s "
                                 f"({res.ms_per_frame:.0f} ms a frame)")
        self.exported.emit(str(res.path))

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self._set_running(False)
        self.progressBar.setValue(0)
        self.statusLabel.setStyleSheet("color: #ff6b6b;")
        self.statusLabel.setText(message)

    @Slot()
    def _on_cancelled(self) -> None:
        self._set_running(False)
        self.progressBar.setValue(0)
        self.statusLabel.setText("export cancelled: no file was written")

    def reject(self) -> None:  # closing the dialog cancels a running export
        self.cancel_export(wait=True)
        super().reject()

    def closeEvent(self, ev):  # noqa: N802
        self.cancel_export(wait=True)
        super().closeEvent(ev)


def _spin(name: str, lo: int, hi: int, value: int, step: int = 1) -> QSpinBox:
    s = QSpinBox()
    s.setObjectName(name)
    s.setRange(lo, max(lo, hi))
    s.setSingleStep(step)
    s.setValue(int(min(max(value, lo), max(lo, hi))))
    return s


def _select(combo: QComboBox, key) -> None:
    i = combo.findData(key)
    if i >= 0:
        combo.setCurrentIndex(i)
