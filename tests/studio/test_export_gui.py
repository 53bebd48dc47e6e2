"""The export dialog: it writes the video asked for, with a progress bar that
reaches the end, the window keeps handling events while frames render, Cancel
leaves nothing behind, and bad choices are reported without writing."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest
from PySide6.QtCore import Qt, QTimer

from core.files.video import probe, read_frames
from studio.export.run import buffer_from_rollout
from studio_helpers import non_background_fraction
from test_export import runs


@pytest.fixture
def dialog(qtbot, tmp_path):
    from studio.export.gui import ExportVideoDialog
    from studio.export.settings import ExportSettings
    from studio.gl import ensure_backend

    ensure_backend()
    truth, pred = runs(n=4, frames=40)
    data = buffer_from_rollout(truth, pred, model_name="rfhgn-3")
    dlg = ExportVideoDialog(data, ExportSettings(width=320, height=180), folder=str(tmp_path))
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitExposed(dlg)
    return dlg


def test_dialog_exports_with_progress_and_a_responsive_window(qtbot, dialog, tmp_path):
    out = tmp_path / "clip.webm"
    dialog.pathEdit.setText(str(out))
    dialog._sync_format_from_path()
    assert dialog.formatCombo.currentData() == "webm"
    assert dialog.sizeCombo.currentText() == "320 x 180" or dialog.sizeCombo.currentData() == ""
    dialog.sizeCombo.setCurrentIndex(dialog.sizeCombo.findData("640x360"))
    assert (dialog.widthSpin.value(), dialog.heightSpin.value()) == (640, 360)
    dialog.widthSpin.setValue(320)
    dialog.heightSpin.setValue(180)
    assert dialog.sizeCombo.currentData() == ""                  # "Custom"
    assert dialog.stopSpin.value() == 39                         # the last frame, included
    dialog.startSpin.setValue(5)
    dialog.stopSpin.setValue(14)
    dialog.strideSpin.setValue(3)
    assert dialog.settings().frames(40) == [5, 8, 11, 14] and dialog.framesLabel.text().startswith("4 frames")
    dialog.startSpin.setValue(0)
    dialog.stopSpin.setValue(39)
    dialog.strideSpin.setValue(2)
    dialog.layoutCombo.setCurrentIndex(dialog.layoutCombo.findData("side"))
    dialog.plotCheck.setChecked(True)
    assert dialog.framesLabel.text().startswith("20 frames")

    ticks, first = [], []
    probe_timer = QTimer()
    probe_timer.setInterval(5)
    probe_timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    probe_timer.start()
    with qtbot.waitSignal(dialog.exported, timeout=60000) as sig:
        qtbot.mouseClick(dialog.exportButton, Qt.LeftButton)
        assert not dialog.exportButton.isEnabled() and dialog.cancelButton.isEnabled()
        dialog.job.progress.connect(lambda d, t: d >= 1 and not first and first.append(time.perf_counter()))
    probe_timer.stop()
    assert sig.args == [str(out)]
    assert dialog.progressBar.value() == dialog.progressBar.maximum() == 20
    assert dialog.exportButton.isEnabled() and not dialog.cancelButton.isEnabled()
    assert "wrote" in dialog.statusLabel.text()
    # once the renderer is set up (shaders compile once, on the GUI thread), the
    # event loop keeps running while the frames are rendered and encoded
    # (a blocking export would leave one gap as long as the whole export; a busy
    # machine stretches every slice, so the bound is relative to the span too)
    after = np.array([t for t in ticks if t >= first[0]])
    gaps = np.diff(after)
    span = after[-1] - after[0]
    assert len(after) > 10 and gaps.max() < max(0.5, 0.5 * span), (gaps.max(), span)

    info = probe(out)
    assert (info.width, info.height, info.frames, info.codec) == (320, 180, 20, "vp9")
    frames = list(read_frames(out, every=6))
    assert all(non_background_fraction(f) > 0.02 for f in frames)
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 0.3


def test_cancel_leaves_no_file(qtbot, dialog, tmp_path):
    out = tmp_path / "long.mp4"
    out.write_bytes(b"an older video")
    dialog.pathEdit.setText(str(out))
    dialog.widthSpin.setValue(640)
    dialog.heightSpin.setValue(360)
    qtbot.mouseClick(dialog.exportButton, Qt.LeftButton)
    qtbot.waitUntil(lambda: dialog.progressBar.value() >= 2, timeout=30000)
    with qtbot.waitSignal(dialog.job.cancelled, timeout=10000):
        qtbot.mouseClick(dialog.cancelButton, Qt.LeftButton)
    assert "cancelled" in dialog.statusLabel.text()
    assert out.read_bytes() == b"an older video"
    assert sorted(os.listdir(tmp_path)) == ["long.mp4"]
    assert dialog.exportButton.isEnabled()


def test_bad_choices_are_reported_and_nothing_is_written(qtbot, dialog, tmp_path):
    dialog.pathEdit.setText(str(tmp_path / "odd.mp4"))
    dialog.widthSpin.setValue(321)
    qtbot.mouseClick(dialog.exportButton, Qt.LeftButton)
    assert "even width" in dialog.statusLabel.text()
    assert dialog.exportButton.isEnabled()
    dialog.pathEdit.setText(str(tmp_path / "movie.avi"))
    dialog.widthSpin.setValue(320)
    qtbot.mouseClick(dialog.exportButton, Qt.LeftButton)
    assert "cannot tell the video format" in dialog.statusLabel.text()
    assert os.listdir(tmp_path) == []


def test_closing_the_dialog_cancels(qtbot, dialog, tmp_path):
    out = tmp_path / "closed.gif"
    dialog.pathEdit.setText(str(out))
    qtbot.mouseClick(dialog.exportButton, Qt.LeftButton)
    qtbot.waitUntil(lambda: dialog.progressBar.value() >= 1, timeout=30000)
    dialog.reject()
    assert not dialog.job.is_running()
    assert os.listdir(tmp_path) == []


def test_the_export_runs_in_a_worker_process(qtbot, dialog, tmp_path):
    out = tmp_path / "worker.mp4"
    dialog.pathEdit.setText(str(out))
    with qtbot.waitSignal(dialog.exported, timeout=60000):
        qtbot.mouseClick(dialog.exportButton, Qt.LeftButton)
        pid = dialog.job.runner.pid
    assert pid is not None and pid != os.getpid()
    assert probe(out).frames == 40


def test_an_export_whose_process_dies_leaves_no_file(qtbot, dialog, tmp_path):
    """The worker is killed mid-export (as the out-of-memory killer would): the
    dialog says so and removes the temporary file the worker could not."""
    import signal

    out = tmp_path / "killed.mp4"
    dialog.pathEdit.setText(str(out))
    dialog.widthSpin.setValue(640)
    dialog.heightSpin.setValue(360)
    qtbot.mouseClick(dialog.exportButton, Qt.LeftButton)
    qtbot.waitUntil(lambda: dialog.progressBar.value() >= 2, timeout=30000)
    assert any(p.name.startswith(".killed.mp4.") for p in tmp_path.iterdir())   # the worker's temporary file
    with qtbot.waitSignal(dialog.job.failed, timeout=10000):
        os.kill(dialog.job.runner.pid, signal.SIGKILL)
    assert "stopped unexpectedly" in dialog.statusLabel.text()
    assert os.listdir(tmp_path) == []
    assert dialog.exportButton.isEnabled()
