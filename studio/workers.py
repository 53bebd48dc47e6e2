"""Background jobs for the GUI: a QObject worker in its own QThread.

:class:`JobRunner` runs one plain Python function at a time off the GUI
thread. The function follows core's job protocol and receives three keyword
arguments besides its own:

* ``progress(stage, fraction)`` -- forwarded to the GUI as the ``progress``
  signal, throttled to one emission per :data:`~studio.defaults.PROGRESS_INTERVAL`
  (plus every change of stage) so a chatty job cannot flood the event loop;
* ``cancel`` -- a :class:`core.jobs.CancelToken`; :meth:`JobRunner.cancel`
  sets it and core raises :class:`core.errors.Cancelled` at its next check;
* ``emit(obj)`` -- hands partial results (roll-out chunks) to the GUI as the
  ``partial`` signal, delivered in order on the GUI thread.

When the function returns, ``finished(result)`` is emitted; on Cancelled,
``cancelled()``; on HGNError, ``failed(message, "")``; on any other exception
``failed(message, traceback)``. Exactly one of the three ends every job, and
``done()`` follows it when the thread has been cleaned up.
"""
from __future__ import annotations

import time
import traceback
from typing import Any, Callable

from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, Signal, Slot

from core.errors import Cancelled, HGNError
from core.jobs import CancelToken

from .defaults import PROGRESS_INTERVAL


class _Worker(QObject):
    progress = Signal(str, float)
    partial = Signal(object)
    finished = Signal(object)
    failed = Signal(str, str)
    cancelled = Signal()

    def __init__(self, fn: Callable, args: tuple, kwargs: dict, token: CancelToken):
        super().__init__()
        self._fn, self._args, self._kwargs, self._token = fn, args, kwargs, token
        self._last_emit = 0.0
        self._last_stage = None

    def _progress(self, stage: str, fraction: float) -> None:
        now = time.perf_counter()
        if stage != self._last_stage or fraction >= 1.0 or now - self._last_emit >= PROGRESS_INTERVAL:
            self._last_emit, self._last_stage = now, stage
            self.progress.emit(str(stage), float(fraction))

    def _emit(self, obj: Any) -> None:
        self.partial.emit(obj)

    @Slot()
    def run(self) -> None:
        try:
            result = self._fn(*self._args, progress=self._progress, cancel=self._token,
                              emit=self._emit, **self._kwargs)
        except Cancelled:
            self.cancelled.emit()
        except HGNError as exc:
            self.failed.emit(str(exc), "")
        except Exception as exc:  # a bug: report it with its traceback, keep the app alive
            self.failed.emit(f"{type(exc).__name__}: {exc}", traceback.format_exc())
        else:
            self.finished.emit(result)


class JobRunner(QObject):
    """Runs one job at a time in a fresh QThread and relays its signals.

    ``name`` says what is running (for the status bar). ``start`` refuses a
    second job while one runs (returns False).
    """

    started = Signal(str)
    progress = Signal(str, float)
    partial = Signal(object)
    finished = Signal(object)
    failed = Signal(str, str)
    cancelled = Signal()
    done = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._thread: QThread | None = None
        self._worker: _Worker | None = None
        self._token: CancelToken | None = None
        self.name = ""

    def is_running(self) -> bool:
        return self._thread is not None

    def start(self, name: str, fn: Callable, *args, **kwargs) -> bool:
        if self._thread is not None:
            return False
        self.name = name
        self._token = CancelToken()
        thread = QThread()
        thread.setObjectName(f"job:{name}")
        worker = _Worker(fn, args, kwargs, self._token)
        worker.moveToThread(thread)
        worker.progress.connect(self.progress)
        worker.partial.connect(self.partial)
        worker.finished.connect(self.finished)
        worker.failed.connect(self.failed)
        worker.cancelled.connect(self.cancelled)
        # quit the thread's loop from the worker's own thread (QThread.quit is
        # thread-safe): queued, the call would wait for the GUI thread, and a
        # wait() there could never see the thread end
        for sig in (worker.finished, worker.failed, worker.cancelled):
            sig.connect(thread.quit, Qt.DirectConnection)
        thread.started.connect(worker.run)
        thread.finished.connect(self._cleanup)
        self._thread, self._worker = thread, worker
        thread.start()
        self.started.emit(name)
        return True

    def cancel(self) -> None:
        """Ask the running job to stop (it raises Cancelled at its next check)."""
        if self._token is not None:
            self._token.cancel()

    @Slot()
    def _cleanup(self) -> None:
        thread, worker = self._thread, self._worker
        self._thread = self._worker = None
        self._token = None
        if worker is not None:
            worker.deleteLater()
        if thread is not None:
            thread.deleteLater()
        self.done.emit()

    def wait(self, timeout_ms: int = 5000) -> bool:
        """Block until the job's thread ends (for shutdown and tests); False
        on timeout. Called from the thread the runner lives in (the GUI
        thread), it then delivers the job's pending signals (``finished`` /
        ``failed`` / ``cancelled``, ``done``), so ``is_running()`` is False
        when it returns True."""
        if self._thread is None:
            return True
        if not self._thread.wait(timeout_ms):
            return False
        if QThread.currentThread() is self.thread():
            QCoreApplication.sendPostedEvents(self, 0)
        return True

    def shutdown(self, timeout_ms: int = 3000) -> None:
        """Cancel and join the running job (window closing)."""
        if self._thread is not None:
            self.cancel()
            self._thread.quit()
            self._thread.wait(timeout_ms)
