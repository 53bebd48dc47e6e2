"""The render-and-encode loop of a video export (Qt-free).

:func:`export_video` renders the chosen frames of a roll-out with an
:class:`~studio.export.scene.ExportScene` on the calling thread (the one that
owns the GL context) and hands each picture to a
:class:`core.files.video.BackgroundEncoder`, whose thread encodes while the next
frame renders. It follows core's job protocol (``progress("export",
fraction)``, ``cancel.is_set()`` checked every frame); a cancel or an error
removes the temporary file, so no broken video is left behind and an older
file of the same name survives. The command line and the benchmark call it;
the studio runs it in a worker process (:func:`export_job`, started by
``studio.export.gui`` through ``studio.workers.JobRunner``), rendering with
vispy's EGL backend there, so the window never waits for a frame.

:func:`buffer_from_rollout` turns a project's saved roll-out
(:class:`core.files.project.RolloutRecord`) or a list of trajectories into the
:class:`~core.learning.rollout_buffer.RolloutBuffer` the scene draws.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import HGNError
from core.jobs import check_cancel, report
from core.files.video import BackgroundEncoder, VideoWriter

from core.learning.rollout_buffer import RolloutBuffer
from .settings import ExportSettings

#: frames that may wait for the encoder (memory: 4 x 1920 x 1080 x 3 bytes)
QUEUE_FRAMES = 4


@dataclass
class ExportResult:
    path: Path
    frames: int
    seconds: float
    render_seconds: float          # time spent rendering (incl. reading pixels)
    info: dict = field(default_factory=dict)

    @property
    def ms_per_frame(self) -> float:
        return 1000.0 * self.seconds / max(self.frames, 1)


def buffer_from_rollout(truth, prediction=None, model_name: str = "", label: str = "",
                        zero_shot: bool = False) -> RolloutBuffer:
    """A filled RolloutBuffer from a ground-truth trajectory and optionally a
    prediction on the same time axis."""
    if prediction is not None and prediction.n_frames != truth.n_frames:
        raise HGNError(f"prediction ({prediction.n_frames} frames) and ground truth ({truth.n_frames} frames) "
                       "must have the same frames")
    buf = RolloutBuffer(truth.system, truth.dt, (truth.n_frames - 1) * truth.save_every, truth.save_every,
                        label=label or (prediction.label if prediction is not None else truth.label),
                        model_name=model_name, zero_shot=zero_shot, with_prediction=prediction is not None)
    buf.t = truth.t.astype(float).copy()
    buf.add("truth", truth)
    if prediction is not None:
        buf.add("prediction", prediction)
    buf.finished = True
    return buf


def buffer_from_record(record) -> RolloutBuffer:
    """The buffer of a :class:`core.files.project.RolloutRecord`."""
    return buffer_from_rollout(record.truth, record.prediction, record.model_name, record.label, record.zero_shot)


def export_job(data: RolloutBuffer, settings: ExportSettings, path, camera: dict | None = None, *,
               progress=None, cancel=None, emit=None) -> ExportResult:
    """The studio's export as a job for a worker process (core's protocol):
    headless rendering (vispy's EGL backend, as ``main.py export-video``)
    and encoding in that process. ``emit(("tmp", path))`` names the
    temporary file first, so that the studio can remove it should the
    process have to be terminated."""
    from .cli import use_egl

    use_egl()
    return export_video(data, settings, path, camera=camera, progress=progress, cancel=cancel, emit=emit)


def export_video(data: RolloutBuffer, settings: ExportSettings, path, *, app=None, camera: dict | None = None,
                 progress=None, cancel=None, scene=None, emit=None) -> ExportResult:
    """Render and encode the frames ``settings`` selects into ``path``.

    ``app`` is the vispy backend of the off-screen canvas (None: current;
    ``"egl"`` headless); ``scene`` may be an existing ExportScene to reuse;
    ``emit``, when given, receives ``("tmp", temporary file)`` once the
    writer has made it."""
    from .scene import ExportScene

    path = Path(path)
    settings.check(path, data.n_filled, data.with_prediction)
    frames = settings.frames(data.n_filled)
    t0 = time.perf_counter()
    own_scene = scene is None
    if own_scene:
        scene = ExportScene(data, settings, app=app, camera=camera, frames=frames)
    render = 0.0
    writer = encoder = None
    try:
        writer = VideoWriter(path, settings.width, settings.height, settings.fps, crf=settings.crf,
                             preset=settings.preset)
        if emit is not None:
            emit(("tmp", str(writer.tmp)))
        encoder = BackgroundEncoder(writer, QUEUE_FRAMES)
        report(progress, "export", 0.0)
        for f in frames:
            check_cancel(cancel)
            r0 = time.perf_counter()
            img = scene.render(f)
            render += time.perf_counter() - r0
            encoder.submit(img)
            report(progress, "export", encoder.written / len(frames))
        out = encoder.finish()
        report(progress, "export", 1.0)
    except BaseException:
        if encoder is not None:
            encoder.abort()
        elif writer is not None:
            writer.abort()
        raise
    finally:
        if own_scene:
            scene.close()
    return ExportResult(path=out, frames=len(frames), seconds=time.perf_counter() - t0, render_seconds=render,
                        info={"format": writer.format.key, "size": (settings.width, settings.height),
                              "fps": settings.fps})
