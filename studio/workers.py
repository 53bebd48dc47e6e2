"""Background jobs for the GUI: each job runs in a worker process.

:class:`JobRunner` runs one plain Python function at a time in a separate
Python process (:mod:`studio.worker_process`), so that neither the job's work
nor its imports (torch for the baselines, vispy and FFmpeg for the export)
ever hold the GUI process's interpreter lock: the window keeps handling
events while fits, roll-outs, baseline training and exports run. The
function follows core's job protocol and receives three keyword arguments
besides its own:

* ``progress(stage, fraction)`` -- forwarded to the GUI as the ``progress``
  signal, throttled in the worker to one message per
  :data:`~studio.worker_process.PROGRESS_INTERVAL` (plus every change of
  stage and the end) so a chatty job cannot flood the event loop;
* ``cancel`` -- a :class:`core.jobs.CancelToken` in the worker;
  :meth:`JobRunner.cancel` sends the request over the pipe, the worker's
  reader thread sets the token at once, and core raises
  :class:`core.errors.Cancelled` at its next check. A job that has not
  stopped after :data:`CANCEL_GRACE` seconds (one that never checks, or is
  inside a long library call) is ended by terminating its process; the
  runner then emits ``cancelled()`` all the same and the next job gets a
  fresh worker;
* ``emit(obj)`` -- hands partial results (roll-out chunks) to the GUI as the
  ``partial`` signal, in order.

When the function returns, ``finished(result)`` is emitted; on Cancelled,
``cancelled()``; on HGNError, ``failed(message, "")``; on any other exception
``failed(message, traceback)``; when the worker process dies (a crash, the
out-of-memory killer), ``failed(message, details)`` with the exit status.
Exactly one of these ends every job, and ``done()`` follows it.

The function and its arguments are pickled: the function must be importable
by its module name (a module-level function), the arguments plain data
(numpy arrays, core's System / Trajectory / Dataset, models, settings dicts).
Results and partial results come back the same way; arrays travel as
out-of-band buffers and are read a slice per event-loop turn
(:data:`READ_BUDGET`), so a large result does not stall the window.

Workers. A small pool of worker processes is shared by all runners
(:func:`pool`). One idle worker is started in advance (when the first runner
is made, i.e. at start-up) and has already imported numpy, scipy and the
parts of ``core`` that jobs use, so Train reaches its first roll-out frame
without waiting for a Python to start. A worker that finished a job goes
back to the pool and serves the next one; slow imports a job needed (torch
the first time a baseline trains) are made by later workers while they are
idle. Processes are started fresh (``python -c``, never ``fork`` of the Qt
process).
"""
from __future__ import annotations

import atexit
import itertools
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, QSocketNotifier, QTimer, Signal, Slot

from . import worker_process as wp

#: seconds a cancelled job has to stop by itself before its process is terminated
CANCEL_GRACE = 0.1
#: longest stretch of reading from a worker per event-loop turn (seconds)
READ_BUDGET = 0.004
#: longest stretch of delivering received messages per event-loop turn (seconds)
DISPATCH_BUDGET = 0.008
#: jobs whose pickled arguments are larger than this (bytes) are sent by a helper
#: thread (a full socket would otherwise make the GUI thread wait for the worker)
INLINE_MAX = 32 * 1024
#: idle workers kept ready besides busy ones
SPARES = 1
#: idle workers kept at most (others are asked to quit)
MAX_IDLE = 2
#: delay before a spare worker is started to replace one that was taken (ms),
#: repeated while jobs run ...
SPARE_DELAY_MS = 1000
#: ... for at most this long (seconds): then the spare starts anyway
SPARE_PATIENCE = 10.0

_job_ids = itertools.count(1)


# ---------------------------------------------------------------------------
# worker processes
# ---------------------------------------------------------------------------
class _Helper:
    """One background thread of the window's process that starts worker
    processes and sends large jobs, so that neither ever blocks the GUI
    thread (``fork``/``exec`` of a large process, or copying a roll-out into
    a memory file, can take tens of milliseconds on a busy machine)."""

    def __init__(self):
        import queue

        self.tasks: "queue.Queue" = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="hgn-worker-helper", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            task = self.tasks.get()
            try:
                task()
            except Exception:  # noqa: BLE001 - each task reports its own failures
                traceback.print_exc()

    def submit(self, task) -> None:
        self.tasks.put(task)


_HELPER: _Helper | None = None


def _helper() -> _Helper:
    global _HELPER
    if _HELPER is None:
        _HELPER = _Helper()
    return _HELPER


class WorkerProcess:
    """One worker process and the GUI end of its socket.

    The process is started by the helper thread; the socket exists at once,
    so a job can be sent before the process runs (it waits in the socket)."""

    def __init__(self, modules=()):
        parent, child = socket.socketpair()
        parent.setblocking(False)
        self.sock = parent
        self.popen: subprocess.Popen | None = None
        self.spawn_error: str | None = None
        self._spawned = threading.Event()
        self.reader = wp.FrameReader()
        self.ready = None               # (boot seconds, import times) once the worker said so
        self.started = time.perf_counter()
        self.dead = False
        self.lock = threading.Lock()
        #: slow imports this worker made or was asked to make
        self.asked: set = set(modules)
        if modules:
            self.send(("preload", list(modules)))
        _helper().submit(lambda: self._spawn(child))

    def _spawn(self, child: socket.socket) -> None:
        try:
            root = str(Path(__file__).resolve().parents[1])
            paths = [root] + [p for p in sys.path if p and p != root]
            env = dict(os.environ)
            env.pop("HGN_STUDIO_WORKER", None)
            cmd = [sys.executable, "-c", wp.BOOT, json.dumps(paths), str(child.fileno())]
            self.popen = subprocess.Popen(cmd, pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, env=env,
                                          close_fds=True)
        except OSError as exc:               # the GUI end sees the socket close: the job fails with this
            self.spawn_error = f"could not start a worker process: {exc}"
        finally:
            child.close()
            self._spawned.set()

    @property
    def pid(self) -> int | None:
        self._spawned.wait(10.0)
        return None if self.popen is None else self.popen.pid

    def alive(self) -> bool:
        if self.dead:
            return False
        if not self._spawned.is_set():
            return True
        return self.popen is not None and self.popen.poll() is None

    def send(self, envelope: tuple, body=None, has_body: bool = False, timeout: float = 10.0) -> None:
        self.send_message(wp.encode(envelope, body, has_body), timeout)

    def send_message(self, msg: "wp.Message", timeout: float = 10.0) -> None:
        with self.lock:
            wp.send_message(self.sock, msg, timeout=timeout)

    def send_in_background(self, msg: "wp.Message", then=None) -> None:
        """Send a large message from the helper thread (copying it into the
        memory file takes a while); ``then()`` runs there, under the send
        lock, right after it."""
        def run():
            try:
                with self.lock:
                    wp.send_message(self.sock, msg, timeout=60.0)
                    if then is not None:
                        then()
            except (OSError, TimeoutError, ValueError):
                pass                          # the worker died or was ended: the runner sees its socket close

        _helper().submit(run)

    def read(self, budget: float | None) -> bool:
        """Take what the socket has (at most ``budget`` seconds); False at EOF."""
        ok = self.reader.read(self.sock, budget)
        if not ok:
            self.dead = True
        return ok

    def exit_description(self, wait: float = 0.5) -> str:
        self._spawned.wait(wait)
        if self.popen is None:
            return self.spawn_error or "it did not start"
        try:
            code = self.popen.wait(wait)
        except subprocess.TimeoutExpired:
            return "its connection closed"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            hint = " (out of memory?)" if -code == signal.SIGKILL else ""
            return f"killed by {name}{hint}"
        return f"exit status {code}"

    def kill(self) -> None:
        """End the process now (SIGKILL); the pool reaps it later (waiting
        here for the kernel to tear a large process down would stall the
        window). A process still being started is killed once it is."""
        self.dead = True
        self.sock.close()
        self.reader.close()
        if self._spawned.is_set():
            self._kill_now()
        else:
            _helper().submit(self._kill_now)

    def _kill_now(self) -> None:
        if self.popen is not None:
            try:
                self.popen.kill()
            except OSError:
                pass

    def reaped(self) -> bool:
        """True once the ended process is gone (not left as a zombie)."""
        if not self._spawned.is_set():
            return False
        return self.popen is None or self.popen.poll() is not None

    def quit(self) -> None:
        """Ask an idle worker to exit."""
        try:
            self.send(("quit",), timeout=0.5)
        except (OSError, TimeoutError):
            self.kill()
            return
        self.dead = True
        self.sock.close()
        self.reader.close()


class WorkerPool:
    """The worker processes of this studio (see the module notes)."""

    def __init__(self):
        self.idle: list[WorkerProcess] = []
        self.all: list[WorkerProcess] = []
        #: slow imports jobs have needed (later workers make them while idle)
        self.learned: set = set()
        #: ended workers not yet reaped
        self.ending: list[WorkerProcess] = []
        #: workers running a job
        self.busy: set = set()
        self._timer = None
        self._since: float | None = None
        self._reap_timer = None
        atexit.register(self.close)

    def _spawn(self) -> WorkerProcess:
        w = WorkerProcess(sorted(self.learned))
        w.asked |= self.learned
        self.all.append(w)
        return w

    def warm(self) -> None:
        """Have :data:`SPARES` idle workers (start them now)."""
        self.idle = [w for w in self.idle if w.alive()]
        while len(self.idle) < SPARES:
            self.idle.append(self._spawn())

    def _warm_later(self) -> None:
        """Top up the spares and their imports soon, while no job runs (a
        worker starting, or importing torch, takes a second or more of CPU
        that a running job on a busy machine should not have to share)."""
        if self._timer is None:
            self._timer = QTimer()
            self._timer.setSingleShot(True)
            self._timer.timeout.connect(self._tick)
        if self._since is None:
            self._since = time.perf_counter()
        if not self._timer.isActive():
            self._timer.start(SPARE_DELAY_MS)

    def _tick(self) -> None:
        if self.busy and time.perf_counter() - self._since < SPARE_PATIENCE:
            self._timer.start(SPARE_DELAY_MS)
            return
        self._since = None
        self.warm()
        for w in self.idle:
            missing = self.learned - w.asked
            if missing:
                try:
                    w.send(("preload", sorted(missing)))
                except (OSError, TimeoutError):
                    continue
                w.asked |= missing

    def take(self) -> WorkerProcess:
        """An idle worker (the most recently used: it is the warmest), or a new one."""
        while self.idle:
            w = self.idle.pop()
            if w.alive() and not w.reader.partway:
                break
            self._drop(w)
        else:
            w = self._spawn()
        self.busy.add(w)
        self._warm_later()
        return w

    def give_back(self, w: WorkerProcess, heavy=()) -> None:
        self.busy.discard(w)
        w.asked |= set(heavy)
        self.learned |= set(heavy)
        if not w.alive():
            self._drop(w)
            return
        self.idle.append(w)
        while len(self.idle) > MAX_IDLE:
            self._drop(self.idle.pop(0), kill=False)
        if self.learned - w.asked or len(self.idle) < SPARES:
            self._warm_later()

    def discard(self, w: WorkerProcess) -> None:
        """Throw away a worker (killed, crashed) and start a replacement soon."""
        self.busy.discard(w)
        self._drop(w)
        self._warm_later()

    def _drop(self, w: WorkerProcess, kill: bool = True) -> None:
        if w in self.all:
            self.all.remove(w)
        if kill or not w.alive():
            w.kill()
        else:
            w.quit()
        self.ending.append(w)
        self._reap()

    def _reap(self) -> None:
        """Collect ended workers (no zombies), without waiting for any."""
        self.ending = [w for w in self.ending if not w.reaped()]
        if self.ending:
            if self._reap_timer is None:
                self._reap_timer = QTimer()
                self._reap_timer.setSingleShot(True)
                self._reap_timer.timeout.connect(self._reap)
            self._reap_timer.start(50)

    def close(self) -> None:
        procs = list(self.all) + self.ending
        for w in procs:
            w._spawned.wait(2.0)
            if w.popen is not None and w.popen.poll() is None:
                try:
                    w.popen.kill()
                except OSError:
                    pass
        for w in procs:
            try:
                if w.popen is not None:
                    w.popen.wait(1.0)
            except subprocess.TimeoutExpired:
                pass
        self.all.clear()
        self.idle.clear()
        self.ending.clear()


_POOL: WorkerPool | None = None


def pool() -> WorkerPool:
    """The studio's worker pool (made on first use)."""
    global _POOL
    if _POOL is None:
        _POOL = WorkerPool()
    return _POOL


def warm_up(wait: float = 0.0) -> bool:
    """Start the idle worker now; with ``wait`` > 0 block up to that many
    seconds until it has finished its imports (for tests and benchmarks)."""
    p = pool()
    p.warm()
    if wait <= 0:
        return True
    end = time.perf_counter() + wait
    w = p.idle[-1]
    while w.ready is None and time.perf_counter() < end:
        r, _, _ = select.select([w.sock], [], [], max(0.0, end - time.perf_counter()))
        if r and not w.read(None):
            return False
        while w.reader.messages:
            env, _m, _b = w.reader.messages.popleft()
            if env[0] == "ready":
                w.ready = (env[2], env[3])
    return w.ready is not None


def _orphaned(holder: list) -> None:
    """A runner was deleted with a job running: end that job's process."""
    proc, holder[0] = holder[0], None
    if proc is not None and _POOL is not None:
        _POOL.discard(proc)


# ---------------------------------------------------------------------------
# the runner
# ---------------------------------------------------------------------------
class JobRunner(QObject):
    """Runs one job at a time in a worker process and relays its signals.

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
        self.name = ""
        self._proc: WorkerProcess | None = None
        self._job: int | None = None
        self._notifier: QSocketNotifier | None = None
        self._inbox: deque = deque()
        self._cancel_at: float | None = None
        self._pending_cancel: int | None = None
        #: seconds a cancelled job of this runner has to stop by itself (a sweep on a Dask cluster needs a
        #: few to close the cluster it started)
        self.cancel_grace = CANCEL_GRACE
        #: moments of the last finished job (perf_counter, the machine's monotonic clock):
        #: returned and encoded (in the worker), read (its last byte here), delivered (finished emitted)
        self.last_times: dict = {}
        self._cancel_timer = QTimer(self)
        self._cancel_timer.setSingleShot(True)
        self._cancel_timer.timeout.connect(self._enforce_cancel)
        self._pump_timer = QTimer(self)
        self._pump_timer.setSingleShot(True)
        self._pump_timer.setInterval(0)
        self._pump_timer.timeout.connect(self._pump)
        # a runner deleted while its job runs (its window closed) ends that job's process
        holder = self._holder = [None]
        self.destroyed.connect(lambda *_a: _orphaned(holder))
        pool().warm()

    def is_running(self) -> bool:
        return self._job is not None

    @property
    def pid(self) -> int | None:
        """The process id of the running job's worker (None when idle)."""
        return None if self._proc is None else self._proc.pid

    # -- starting -------------------------------------------------------------
    def start(self, name: str, fn: Callable, *args, **kwargs) -> bool:
        if self._job is not None:
            return False
        job = next(_job_ids)
        env = ("job", job, [p for p in sys.path if isinstance(p, str)])
        try:
            msg = wp.encode(env, (fn, args, kwargs), True)
        except Exception as exc:  # noqa: BLE001 - a job that cannot travel is a bug of its caller
            self._start_failed(name, f"cannot run {name!r} in a worker process: {type(exc).__name__}: {exc}",
                               traceback.format_exc())
            return True
        self._pending_cancel = None
        if msg.size >= INLINE_MAX:           # large arguments (a model, a roll-out): sent off this thread
            proc = pool().take()
            proc.send_in_background(msg, then=lambda: self._send_pending_cancel(proc, job))
        else:
            for _attempt in range(2):
                proc = pool().take()
                try:
                    proc.send_message(msg)
                    break
                except (OSError, TimeoutError):
                    pool().discard(proc)
            else:
                self._start_failed(name, f"cannot start a worker process for {name!r}", "")
                return True
        del msg
        self.name, self._job, self._proc = name, job, proc
        self._holder[0] = proc
        self._cancel_at = None
        self._inbox.clear()
        self._notifier = QSocketNotifier(proc.sock.fileno(), QSocketNotifier.Read, self)
        self._notifier.activated.connect(self._on_readable)
        self.started.emit(name)
        return True

    def _start_failed(self, name: str, message: str, details: str) -> None:
        """Report a job that could not be sent, as a job that failed at once."""
        self.name, self._job, self._proc = name, next(_job_ids), None
        self.started.emit(name)
        self._inbox.append((("failed", self._job, [], message, details), None, []))
        self._pump_timer.start()

    # -- cancelling -------------------------------------------------------------
    def cancel(self) -> None:
        """Ask the running job to stop; terminate its process if it has not
        after :data:`CANCEL_GRACE` seconds (``cancelled`` is emitted either way)."""
        if self._job is None or self._cancel_at is not None or self._proc is None:
            return
        grace = float(self.cancel_grace)
        self._cancel_at = time.perf_counter() + grace
        proc = self._proc
        if proc.lock.acquire(blocking=False):
            try:
                wp.send_message(proc.sock, wp.encode(("cancel", self._job)), timeout=0.05)
            except (OSError, TimeoutError):
                pass
            finally:
                proc.lock.release()
        else:                                # the job itself is still being sent: its sender follows up
            self._pending_cancel = self._job
        self._cancel_timer.start(int(grace * 1000))

    def _send_pending_cancel(self, proc: WorkerProcess, job: int) -> None:
        """(sender thread, under the send lock) a cancel that came while the job was sent."""
        if self._pending_cancel == job:
            wp.send_message(proc.sock, wp.encode(("cancel", job)), timeout=1.0)

    @Slot()
    def _enforce_cancel(self) -> None:
        if self._job is None or self._cancel_at is None:
            return
        self._drain(None)                    # it may have just answered
        if self._job is None:
            return
        job = self._job
        self._deliver_all(job)
        if self._job != job:
            return
        proc = self._proc
        if proc is not None:
            pool().discard(proc)
        self._proc = None
        self._holder[0] = None
        self._end(("cancelled", job, []), None, [])

    # -- reading ------------------------------------------------------------------
    @Slot()
    def _on_readable(self) -> None:
        # what was read is delivered in the next event-loop turn: reading a
        # large result (a fitted model and its data) and handling it (the
        # roll-out it starts, the window's share) are two batches, not one
        self._drain(READ_BUDGET)
        if self._inbox and not self._pump_timer.isActive():
            self._pump_timer.start()

    def _drain(self, budget: float | None) -> None:
        """Read from the worker (up to ``budget`` seconds) into the inbox."""
        proc = self._proc
        if proc is None or proc.dead:
            return
        alive = proc.read(budget)
        while proc.reader.messages:
            msg = proc.reader.messages.popleft()
            if msg[0][0] == "finished" and len(msg[0]) > 3 and isinstance(msg[0][3], dict):
                msg[0][3]["read"] = time.perf_counter()
            if msg[0][0] == "ready":
                proc.ready = (msg[0][2], msg[0][3])
            elif msg[0][1] == self._job:
                self._inbox.append(msg)
        if not alive:
            if self._notifier is not None:
                self._notifier.setEnabled(False)
            self._inbox.append((("died", self._job), None, []))

    @Slot()
    def _pump(self, budget: float | None = DISPATCH_BUDGET) -> None:
        """Deliver received messages (at most ``budget`` seconds' worth per turn)."""
        end = None if budget is None else time.perf_counter() + budget
        while self._inbox:
            self._deliver(self._inbox.popleft())
            if end is not None and time.perf_counter() > end:
                break
        if self._inbox:
            self._pump_timer.start()

    def _deliver_all(self, job: int) -> None:
        while self._inbox and self._job == job:
            self._deliver(self._inbox.popleft())

    def _deliver(self, msg) -> None:
        env, main, bufs = msg
        kind = env[0]
        if self._job is None or env[1] != self._job:
            return
        if kind == "progress":
            self.progress.emit(env[2], env[3])
        elif kind == "partial":
            try:
                obj = wp.decode_body(main, bufs)
            except Exception as exc:  # noqa: BLE001
                self._fail_and_discard(f"a partial result could not be read: {type(exc).__name__}: {exc}",
                                       traceback.format_exc())
                return
            self.partial.emit(obj)
        elif kind == "died":
            proc = self._proc
            what = proc.exit_description() if proc is not None else "it stopped"
            self._fail_and_discard(f"the background process running {self.name!r} stopped unexpectedly "
                                   f"({what}); the job was lost, the next one starts a new process",
                                   f"worker process {self.pid}: {what}")
        else:
            self._end(env, main, bufs)

    def _fail_and_discard(self, message: str, details: str) -> None:
        proc, self._proc = self._proc, None
        self._holder[0] = None
        if proc is not None:
            pool().discard(proc)
        self._end(("failed", self._job, [], message, details), None, [])

    def _end(self, env, main, bufs) -> None:
        """One of finished / failed / cancelled, then ``done``."""
        kind, job, heavy = env[0], env[1], env[2]
        result = None
        if kind == "finished":
            try:
                result = wp.decode_body(main, bufs)
            except Exception as exc:  # noqa: BLE001 - e.g. a class the GUI process cannot import
                kind, env = "failed", ("failed", job, heavy, f"the result of {self.name!r} could not be read: "
                                       f"{type(exc).__name__}: {exc}", traceback.format_exc())
        self._cancel_timer.stop()
        if self._notifier is not None:
            self._notifier.setEnabled(False)
            self._notifier.deleteLater()
            self._notifier = None
        proc, self._proc = self._proc, None
        self._holder[0] = None
        if proc is not None:                 # free for the next job (also one started by a handler below)
            pool().give_back(proc, heavy)
        self._inbox.clear()
        if kind == "finished":
            self.last_times = dict(env[3]) if len(env) > 3 and isinstance(env[3], dict) else {}
            self.last_times["delivered"] = time.perf_counter()
        try:
            if kind == "finished":
                self.finished.emit(result)
            elif kind == "cancelled":
                self.cancelled.emit()
            else:
                self.failed.emit(str(env[3]), str(env[4]))
        finally:
            if self._job == job:
                self._job = None
                self._cancel_at = None
            self.done.emit()

    # -- waiting --------------------------------------------------------------------
    def wait(self, timeout_ms: int = 5000) -> bool:
        """Block until the running job has ended (for shutdown and tests);
        False on timeout. The job's pending signals (``partial``, ``finished``
        / ``failed`` / ``cancelled``, ``done``) are delivered before it
        returns True, so ``is_running()`` is then False."""
        job = self._job
        if job is None:
            return True
        end = time.perf_counter() + timeout_ms / 1000.0
        while self._job == job:
            if self._inbox:
                self._deliver_all(job)
                continue
            now = time.perf_counter()
            if self._cancel_at is not None and now >= self._cancel_at:
                self._enforce_cancel()
                continue
            if now >= end:
                return False
            limit = end if self._cancel_at is None else min(end, self._cancel_at)
            proc = self._proc
            if proc is None:                 # a start failure waiting in the inbox
                continue
            select.select([proc.sock], [], [], max(0.0, limit - now))
            self._drain(None)
        return True

    def shutdown(self, timeout_ms: int = 3000) -> None:
        """Cancel and end the running job (window closing): it gets
        :data:`CANCEL_GRACE` to stop, then its process is terminated."""
        if self._job is not None:
            self.cancel()
            if not self.wait(timeout_ms):
                self._cancel_at = time.perf_counter()
                self._enforce_cancel()


# ---------------------------------------------------------------------------
# torch stays out of the window's process
# ---------------------------------------------------------------------------
def keep_torch_out() -> None:
    """Open model files that need torch (fitted RF-HGNs and gradient-trained
    baselines, alone or embedded in a project) in this process as
    :class:`~studio.worker_process.PackedModel`, without importing torch: the
    studio evaluates them in its workers only. Called once by the studio at
    start-up (``studio.app``); the command line and core's own users keep the
    real models."""
    import dataclasses
    import functools

    from core.files import kinds

    for name in sorted(set(wp.TORCH_MODELS.values())):
        kind = kinds.get(name)
        if kind is not None and not getattr(kind.load, "packs", False):
            load = functools.partial(wp.PackedModel.from_file, kind=name)
            load.packs = True
            kinds.register(dataclasses.replace(kind, load=load))
