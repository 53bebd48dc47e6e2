"""Studio responsiveness on a busy machine: GUI stalls, Cancel, Train to first frame.

Drives the real main window (OpenGL through Xvfb + Mesa llvmpipe) while two
busy-loop processes started by this benchmark keep both cores of the machine
loaded (``--load 2``), and measures:

* **longest GUI stall** -- the longest gap between ticks of a 5 ms timer on
  the GUI thread (Qt's precise timer; an idle window ticks every 5-6 ms)
  during each stage: *fit* (Train on the default 4x4x4 lattice until the
  model is in the table: simulate the training data and fit RF-HGN),
  *roll-out* (the comparison roll-out after each fit, and a zero-shot
  roll-out on the lattice scaled by 2), *baseline* (Train with the
  gradient-trained HGN, Adam, a 3 s budget: torch is imported and trained)
  and *export* (the export dialog writing 60 frames at 640x360, H.264).
  Target <= 50 ms.
* **Cancel latency** -- from Cancel to the job having ended (the runner no
  longer running; the export dialog's job ended), in every stage:
  simulating training data, the RF-HGN fit (its assembly and solve), a long
  roll-out, baseline epochs and an export. Target <= 200 ms.
* **Train to first roll-out frame** -- from pressing Train (default lattice,
  settings and method) until the first roll-out frame after the start is
  drawn in the views. Target <= 1 s.

``--before PATH`` (a checkout of older code, e.g. ``git worktree add
/tmp/old <commit>``) or ``--before-ref COMMIT`` (the benchmark makes and
removes such a worktree itself) measures the same things on that code first,
in the same run and under the same load, so the figures compare. Each stage
runs ``--repeat`` times; the worst and the median are printed and written to
benchmarks/results/studio.json and studio.md with the machine description.
Without a DISPLAY the script re-runs itself under ``xvfb-run``.

    .venv/bin/python benchmarks/bench_studio.py [--repeat 3] [--before-ref HEAD~3] [--load 2]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "studio.json"
SCREEN = "1600x1000x24"
TARGETS = {"stall_ms": 50.0, "cancel_ms": 200.0, "first_frame_s": 1.0}
STALL_STAGES = [("fit", "fit (simulate + RF-HGN)"), ("rollout", "roll-out"),
                ("baseline", "baseline training (Adam)"), ("export", "video export")]
CANCEL_STAGES = [("simulate", "simulating training data"), ("fit", "RF-HGN fit"), ("rollout", "roll-out"),
                 ("baseline", "baseline epochs"), ("export", "video export")]


# ---------------------------------------------------------------------------
# the measuring process (one per code version)
# ---------------------------------------------------------------------------
class Ticks:
    """Timestamps of a fast GUI-thread timer; the longest gap in any interval.

    With ``diagnose``, a watchdog thread samples the GUI thread's stack every
    5 ms while the timer is more than 30 ms late, so a report can say where
    the GUI thread was during its stalls (:meth:`sources`)."""

    def __init__(self, interval_ms: int = 5, diagnose: bool = True, code: Path | None = None):
        import threading

        from PySide6.QtCore import Qt, QTimer

        self.t: list[float] = []
        self.timer = QTimer()
        self.timer.setTimerType(Qt.PreciseTimer)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(lambda: self.t.append(time.perf_counter()))
        self.timer.start()
        self.samples: list[tuple[float, str]] = []
        #: (time, ns the GUI thread has run, ns it has waited on a run queue) every 5 ms
        #: (Linux's /proc/<pid>/task/<tid>/schedstat), so a stall splits into running,
        #: waiting for a CPU and sleeping (blocked on something else)
        self.sched: list[tuple[float, int, int]] = []
        self._schedstat = f"/proc/self/task/{threading.get_native_id()}/schedstat"
        self.code = str(code or ROOT)
        if diagnose:
            self._main = threading.get_ident()
            threading.Thread(target=self._watch, daemon=True).start()

    def _read_sched(self) -> None:
        try:
            with open(self._schedstat) as fh:
                run, wait = fh.read().split()[:2]
        except (OSError, ValueError):
            return
        self.sched.append((time.perf_counter(), int(run), int(wait)))

    def split(self, a: float, b: float) -> dict | None:
        """How the GUI thread spent [a, b] (ms; from the schedstat samples
        just outside it, so a slightly longer span): ran, waited for a CPU,
        and slept (the rest: blocked, e.g. on the X server or another thread)."""
        import bisect

        ts = [x[0] for x in self.sched]
        i, j = bisect.bisect_right(ts, a) - 1, bisect.bisect_left(ts, b)
        if i < 0 or j >= len(ts):
            return None
        (t0, r0, w0), (t1, r1, w1) = self.sched[i], self.sched[j]
        ran, waited = (r1 - r0) / 1e6, (w1 - w0) / 1e6
        span = 1e3 * (t1 - t0)
        return {"span_ms": span, "ran_ms": ran, "waited_ms": waited, "slept_ms": max(0.0, span - ran - waited)}

    def _watch(self) -> None:
        while True:
            time.sleep(0.005)
            self._read_sched()
            if not self.t or time.perf_counter() - self.t[-1] < 0.03:
                continue
            frame = sys._current_frames().get(self._main)
            own, lib = None, None
            while frame is not None:
                fn = frame.f_code.co_filename
                here = f"{Path(fn).name}:{frame.f_code.co_name}"
                if lib is None:
                    lib = here
                if own is None and fn.startswith(self.code) and "/benchmarks/" not in fn \
                        and "/.venv/" not in fn:
                    own = f"{Path(fn).relative_to(self.code)}:{frame.f_code.co_name}"
                frame = frame.f_back
            self.samples.append((time.perf_counter(), f"{own or '?'} ({lib})"))

    def sources(self, a: float, b: float, top: int = 4) -> list:
        """Where the GUI thread was while late in [a, b]: [(where, ms), ...]."""
        from collections import Counter

        c = Counter(where for t, where in self.samples if a <= t <= b)
        return [(where, 5 * n) for where, n in c.most_common(top)]

    def worst_gap(self, a: float, b: float) -> tuple[float, float]:
        """(start, end) of the longest gap between consecutive ticks that overlaps [a, b]."""
        import bisect

        t = self.t
        i = max(0, bisect.bisect_left(t, a) - 1)
        j = min(len(t) - 1, bisect.bisect_right(t, b))
        best = (a, a)
        for k in range(i, j):
            if t[k + 1] - t[k] > best[1] - best[0]:
                best = (t[k], t[k + 1])
        if t and t[-1] < b and b - t[-1] > best[1] - best[0]:   # the interval ends in a gap still open
            best = (t[-1], b)
        return best

    def gaps(self, a: float, b: float, top: int = 3) -> list[tuple[float, float]]:
        """The ``top`` longest gaps between consecutive ticks within [a, b], longest first."""
        import bisect

        t = self.t
        i = max(0, bisect.bisect_left(t, a) - 1)
        j = min(len(t) - 1, bisect.bisect_right(t, b))
        return sorted(((t[k], t[k + 1]) for k in range(i, j)), key=lambda g: g[0] - g[1])[:top]

    def max_gap(self, a: float, b: float) -> float:
        """Longest gap between consecutive ticks that overlaps [a, b] (seconds)."""
        g0, g1 = self.worst_gap(a, b)
        return g1 - g0


class EventLog:
    """``--events``: how long the GUI thread spent in each event it handled
    (QApplication.notify, nested: a window's paint holds its widgets' paints)
    and in the studio's own functions and pyqtgraph's painting, so that each
    long stall can be taken apart. Records only what took over ``min_ms``.
    Adds a little time to every event: figures measured with it are not the
    benchmark's."""

    #: pyqtgraph functions that paint or re-lay out plots (module, class, method)
    LIBRARY = [("pyqtgraph.graphicsItems.AxisItem", "AxisItem", "paint"),
               ("pyqtgraph.graphicsItems.AxisItem", "AxisItem", "generateDrawSpecs"),
               ("pyqtgraph.graphicsItems.AxisItem", "AxisItem", "_updateWidth"),
               ("pyqtgraph.graphicsItems.AxisItem", "AxisItem", "_updateHeight"),
               ("pyqtgraph.graphicsItems.ViewBox.ViewBox", "ViewBox", "updateAutoRange"),
               ("pyqtgraph.graphicsItems.ViewBox.ViewBox", "ViewBox", "updateMatrix"),
               ("pyqtgraph.graphicsItems.PlotDataItem", "PlotDataItem", "setData"),
               ("pyqtgraph.graphicsItems.PlotCurveItem", "PlotCurveItem", "paint"),
               ("pyqtgraph.widgets.GraphicsView", "GraphicsView", "paintEvent")]

    def __init__(self, min_ms: float = 2.0):
        self.records: list[tuple[float, float, int, str]] = []
        self.depth = 0
        self.min_s = min_ms / 1e3

    def application(self, argv):
        """A QApplication that times every event it delivers."""
        from PySide6.QtWidgets import QApplication

        log = self

        class TimedApplication(QApplication):
            def notify(self, receiver, event):  # noqa: N802 (Qt name)
                t0 = time.perf_counter()
                log.depth += 1
                try:
                    return super().notify(receiver, event)
                finally:
                    log.depth -= 1
                    t1 = time.perf_counter()
                    if t1 - t0 > log.min_s:
                        try:
                            name = receiver.objectName() or ""
                            parent = receiver.parent() if not name and hasattr(receiver, "parent") else None
                            if parent is not None and parent.objectName():    # a plot's viewport: the plot
                                name = f"{parent.objectName()}.viewport"
                            what = f"{event.type().name} -> {type(receiver).__name__}" + (f"#{name}" if name else "")
                        except Exception:   # noqa: BLE001 - a receiver being deleted
                            what = "event"
                        log.records.append((t0, t1, log.depth, what))

        return TimedApplication(argv)

    def wrap(self, owner, name: str, label: str) -> None:
        import functools
        import inspect

        fn = owner.__dict__.get(name)
        if not callable(fn) or isinstance(fn, (staticmethod, classmethod)) or getattr(fn, "_timed", False):
            return
        log = self
        code = fn.__code__
        # a signal passes as many arguments as its slot takes (PySide reads the
        # slot's code): the wrapper passes on no more than ``fn`` takes
        n_args = None if code.co_flags & inspect.CO_VARARGS else code.co_argcount

        @functools.wraps(fn)
        def timed(*a, **kw):
            t0 = time.perf_counter()
            log.depth += 1
            try:
                return fn(*a[:n_args], **kw)
            finally:
                log.depth -= 1
                t1 = time.perf_counter()
                if t1 - t0 > log.min_s:
                    log.records.append((t0, t1, log.depth, label))

        timed._timed = True
        setattr(owner, name, timed)

    def install(self) -> None:
        """Time pyqtgraph's painting and every method of the studio's classes."""
        import importlib
        import inspect
        import pkgutil
        import threading

        main = threading.main_thread()
        assert threading.current_thread() is main
        for mod, cls, meth in self.LIBRARY:
            try:
                owner = getattr(importlib.import_module(mod), cls)
            except (ImportError, AttributeError):
                continue
            self.wrap(owner, meth, f"{cls}.{meth}")
        import studio

        names = [m.name for m in pkgutil.walk_packages(studio.__path__, "studio.")
                 if not m.name.endswith(("worker_process", "screenshots", ".cli", "studio.app"))]
        for name in names:
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            for cname, cls in inspect.getmembers(module, inspect.isclass):
                if cls.__module__ != name:
                    continue
                for attr, value in list(cls.__dict__.items()):
                    if inspect.isfunction(value) and not (attr.startswith("__") and attr.endswith("__")):
                        self.wrap(cls, attr, f"{name[len('studio.'):]}.{cname}.{attr}")
            for fname, fn in inspect.getmembers(module, inspect.isfunction):
                if fn.__module__ == name and fname.startswith("_render"):
                    self.wrap(module, fname, f"{name[len('studio.'):]}.{fname}")

    def within(self, a: float, b: float) -> list:
        """[(start ms after a, ms, depth, what), ...] of the records overlapping [a, b]."""
        out = [(1e3 * (t0 - a), 1e3 * (t1 - t0), d, w) for t0, t1, d, w in self.records if t1 > a and t0 < b]
        return sorted(out)


def _wait(cond, timeout: float = 300.0, what: str = "") -> float:
    """Run the event loop until ``cond()``; the time it became true."""
    from PySide6.QtCore import QEventLoop, QTimer

    if cond():
        return time.perf_counter()
    loop = QEventLoop()
    poll = QTimer()
    poll.setInterval(1)
    end = time.perf_counter() + timeout
    hit = []

    def check():
        if cond():
            hit.append(time.perf_counter())
            loop.quit()
        elif time.perf_counter() > end:
            loop.quit()

    poll.timeout.connect(check)
    poll.start()
    loop.exec()
    poll.stop()
    if not hit:
        raise RuntimeError(f"timed out waiting for {what or 'a condition'}")
    return hit[0]


def _pump(seconds: float) -> None:
    end = time.perf_counter() + seconds
    _wait(lambda: time.perf_counter() >= end, seconds + 5)


class Studio:
    """The main window, reached through the names the old and new code share."""

    def __init__(self):
        from PySide6.QtWidgets import QApplication

        from studio.gl import ensure_backend
        from studio.style import apply_style

        self.app = QApplication.instance() or QApplication([])
        try:
            from studio.app import prepare_gui_process   # the start-up of `python main.py` (new code)
        except ImportError:
            prepare_gui_process = None
        self.boot = {}
        if prepare_gui_process is not None:
            prepare_gui_process()
        ensure_backend()
        apply_style(self.app)
        from studio.main_window import MainWindow

        self.w = MainWindow(restore=False)
        self.w.show()
        _wait(lambda: self.doc.system is not None, 60, "the start-up system")
        _pump(1.0)
        try:                                        # the idle worker has done its imports (new code)
            from studio import workers

            if hasattr(workers, "warm_up"):
                t0 = time.perf_counter()
                workers.warm_up(wait=60.0)
                self.boot["worker_ready_wait_s"] = time.perf_counter() - t0
        except ImportError:
            pass
        self.progress: list[tuple[float, str, float]] = []
        for jobs in (self.w.trainJobs, self.w.rolloutJobs):
            jobs.progress.connect(lambda s, f: self.progress.append((time.perf_counter(), s, f)))
        self.sim0 = self.w.trainPanel.simForm.values()

    @property
    def doc(self):
        return getattr(self.w, "document", None) or self.w.session

    @property
    def models(self):
        return self.doc.models

    def idle(self) -> bool:
        return not self.w.trainJobs.is_running() and not self.w.rolloutJobs.is_running()

    def wait_idle(self, timeout: float = 600.0) -> float:
        return _wait(self.idle, timeout, "the jobs to end")

    def set_method(self, key: str, **settings) -> None:
        tp = self.w.trainPanel
        tp.set_method(key)
        if settings:
            tp.methodForms[key].set_values(settings)

    def set_sim(self, **values) -> None:
        self.w.trainPanel.simForm.set_values({**self.sim0, **values})

    def wait_stage(self, stages, after: float, t_from: float, timeout: float = 300.0) -> None:
        """Run until a progress report of one of ``stages`` arrived (after
        ``t_from``), then ``after`` seconds more."""
        _wait(lambda: any(t >= t_from and s in stages for t, s, _f in self.progress), timeout,
              f"stage {stages}")
        _pump(after)


def _worker_nice() -> int | None:
    """How many nice steps the studio's worker processes run below the window (the most of them)."""
    try:
        from studio import workers

        pids = [w.popen.pid for w in workers.pool().all if w.popen is not None and w.popen.poll() is None]
        own = os.getpriority(os.PRIO_PROCESS, 0)
        return max((os.getpriority(os.PRIO_PROCESS, p) - own for p in pids), default=None)
    except (ImportError, AttributeError, OSError):
        return None


def _gui_slice() -> float | None:
    """The GUI thread's time slice as the kernel reports it (us; None: not readable)."""
    if not sys.platform.startswith("linux") or platform.machine() != "x86_64":
        return None
    try:
        import ctypes

        buf = (ctypes.c_uint64 * 8)()
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syscall(315, 0, buf, 56, 0) == 0:
            return buf[3] / 1e3                 # size+policy, flags, nice+priority, runtime
    except (OSError, AttributeError):
        pass
    return None


def _phase(text: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def measure(repeat: int, code: Path, diagnose: bool = True, events: bool = False) -> dict:
    import faulthandler
    import signal

    from PySide6.QtCore import QCoreApplication

    faulthandler.register(signal.SIGUSR1)         # kill -USR1 <pid>: where is it?

    log = None
    if events:
        log = EventLog()
        app = log.application([])                 # noqa: F841 - the QApplication Studio() finds
        log.install()
    st = Studio()
    w = st.w
    ticks = Ticks(5, diagnose, code)
    spans: dict[str, list] = {k: [] for k, _ in STALL_STAGES}
    intervals: dict[str, list] = {k: [] for k, _ in STALL_STAGES}

    def stall(stage: str, a: float, b: float) -> None:
        g0, g1 = ticks.worst_gap(a, b)
        stalls[stage].append(g1 - g0)
        spans[stage].append((g0, g1))
        intervals[stage].append((a, b))

    _pump(0.5)
    out = {"system": st.doc.system.name, "particles": st.doc.system.n, "boot": st.boot}
    idle_gap = ticks.max_gap(time.perf_counter() - 0.5, time.perf_counter())
    stalls = {k: [] for k, _ in STALL_STAGES}
    cancels = {k: [] for k, _ in CANCEL_STAGES}
    first = []
    timelines: list[dict] = []
    #: how long the work itself took (wall seconds): lowering the workers' priority must not slow it much
    durations: dict[str, list] = {"fit": [], "rollout": [], "zero_shot": [], "export": []}

    # -- Train (RF-HGN) -> first frame; stalls while fitting and rolling out ----
    _phase(f"{code}: Train (RF-HGN) x{repeat}")
    for _ in range(repeat):
        n = len(st.models)
        w.train()
        t_press = w.timing["train_pressed"]
        _wait(lambda n=n: len(st.models) > n, 300, "the fit")
        t_trained = w.timing.get("trained", time.perf_counter())
        t_done = _wait(st.idle, 300, "the roll-out")
        first.append(w.timing["first_frame"] - t_press)
        durations["fit"].append(t_trained - t_press)
        durations["rollout"].append(t_done - t_trained)
        # what the first frame waited for: each stage's first report after Train, the model's
        # arrival, the roll-out's first report and the first frame (seconds after Train)
        line: dict = {}
        for t, s_, _f in st.progress:
            if t >= t_press and s_ not in line:
                line[s_] = t - t_press
        for k, t in (getattr(w.trainJobs, "last_times", None) or {}).items():
            line[f"result {k}"] = t - t_press
        line["model in the window"] = t_trained - t_press
        line["first frame"] = w.timing["first_frame"] - t_press
        timelines.append(line)
        stall("fit", t_press, t_trained)
        stall("rollout", t_trained, t_done)
        _pump(0.3)

    # -- a longer roll-out: zero-shot on the lattice scaled by 2 (512 particles) -----
    _phase("zero-shot roll-outs")
    for _ in range(repeat):
        t0 = time.perf_counter()
        w.zero_shot(len(st.models) - 1, 2, 2000, 5)
        t1 = _wait(st.idle, 300, "the zero-shot roll-out")
        stall("rollout", t0, t1)
        durations["zero_shot"].append(t1 - t0)
        _pump(0.3)
    rf_model = len(st.models) - 1

    # -- baseline (Adam, 3 s): torch is imported and trained ------------------------
    _phase("baselines")
    st.set_method("baseline", optimizer="adam", time_budget=3.0, max_epochs=100000)
    _pump(0.3)                 # chosen before Train is pressed (not in the same event-loop turn)
    for _ in range(repeat):
        n = len(st.models)
        t0 = time.perf_counter()
        w.train()
        t1 = _wait(lambda n=n: len(st.models) > n, 300, "the baseline")
        stall("baseline", t0, t1)
        # its roll-out (torch in the job): stalls count as roll-out stalls; a long one is cancelled
        try:
            t2 = _wait(st.idle, 5.0)
        except RuntimeError:
            t2 = time.perf_counter()
            w.cancel()
            st.wait_idle()
        stall("rollout", t1, t2)
        _pump(0.3)
    st.set_method("rfhgn")
    w.rollout_model(rf_model)
    st.wait_idle()
    _pump(0.5)

    # -- export: 60 frames at 640x360 through the export dialog ----------------------
    _phase("exports")
    from studio.export.gui import ExportVideoDialog
    from studio.export.settings import ExportSettings

    folder = Path(tempfile.mkdtemp(prefix="bench-studio-"))
    buf = st.doc.rollout
    for k in range(repeat):
        dlg = ExportVideoDialog(buf, ExportSettings(width=640, height=360), folder=str(folder), parent=w)
        dlg.show()
        dlg.pathEdit.setText(str(folder / f"clip{k}.mp4"))
        dlg.strideSpin.setValue(max(1, buf.n_filled // 60))
        # the dialog is shown and drawn before Export is pressed (a user cannot
        # press it in the turn that opens the dialog): its opening is not the export's
        _pump(0.3)
        t0 = time.perf_counter()
        dlg.start_export()
        t1 = _wait(lambda d=dlg: d.job is None or not d.job.is_running(), 600, "the export")
        if dlg.result is None:
            raise RuntimeError(f"export failed: {dlg.statusLabel.text()}")
        stall("export", t0, t1)
        durations["export"].append(t1 - t0)
        dlg.close()
        dlg.deleteLater()
        _pump(0.3)

    # -- Cancel in every stage ------------------------------------------------------------
    _phase("cancels")
    def cancel_train(stages, after, **sim):
        st.set_sim(**sim)
        t_from = time.perf_counter()
        w.train()
        st.wait_stage(stages, after, t_from)
        if not w.trainJobs.is_running():
            raise RuntimeError(f"the job ended before it could be cancelled in {stages}")
        t0 = time.perf_counter()
        w.cancel()
        t1 = _wait(lambda: not w.trainJobs.is_running(), 60, "the cancelled job")
        st.set_sim()
        st.wait_idle()
        _pump(0.3)
        return t1 - t0

    for _ in range(repeat):
        cancels["simulate"].append(cancel_train(("simulate",), 0.3, n_trajectories=400, steps=4000,
                                                save_every=50))
    for _ in range(repeat):
        cancels["fit"].append(cancel_train(("assemble", "solve"), 0.15, n_trajectories=48, steps=1000,
                                           save_every=1))
    st.set_method("baseline", optimizer="adam", time_budget=60.0, max_epochs=100000)
    for _ in range(repeat):
        cancels["baseline"].append(cancel_train(("epochs",), 0.5))
    st.set_method("rfhgn")
    for _ in range(repeat):
        w.zero_shot(rf_model, 3, 40000, 5)
        _wait(lambda: st.doc.rollout is not None and st.doc.rollout.n_filled > 1, 60, "a roll-out frame")
        _pump(0.5)
        if not w.rolloutJobs.is_running():
            raise RuntimeError("the roll-out ended before it could be cancelled")
        t0 = time.perf_counter()
        w.cancel()
        t1 = _wait(lambda: not w.rolloutJobs.is_running(), 60, "the cancelled roll-out")
        cancels["rollout"].append(t1 - t0)
        _pump(0.3)
    w.rollout_model(rf_model)
    st.wait_idle()
    buf = st.doc.rollout
    for k in range(repeat):
        dlg = ExportVideoDialog(buf, ExportSettings(width=1280, height=720), folder=str(folder), parent=w)
        dlg.show()
        dlg.pathEdit.setText(str(folder / f"long{k}.mp4"))
        dlg.start_export()
        _wait(lambda d=dlg: d.progressBar.value() >= 3, 120, "exported frames")
        t0 = time.perf_counter()
        dlg.cancelButton.click()
        t1 = _wait(lambda d=dlg: not d.job.is_running(), 60, "the cancelled export")
        cancels["export"].append(t1 - t0)
        left = [p.name for p in folder.iterdir() if p.name.startswith(f".long{k}")]
        if left:
            raise RuntimeError(f"a cancelled export left {left}")
        dlg.close()
        dlg.deleteLater()
        _pump(0.3)
    shutil.rmtree(folder, ignore_errors=True)

    import sys as _sys
    out.update({
        "idle_gap_ms": 1e3 * idle_gap,
        "first_frame_s": first,
        "durations_s": durations,
        "first_train_timeline_s": timelines,
        "worker_nice": _worker_nice(),
        "gui_slice_us": _gui_slice(),
        "stall_ms": {k: [1e3 * g for g in v] for k, v in stalls.items()},
        "cancel_ms": {k: [1e3 * g for g in v] for k, v in cancels.items()},
        "torch_in_gui_process": "torch" in _sys.modules,
        # where the GUI thread was during the longest stall of each stage
        "stall_sources": {k: [[w_, ms] for w_, ms in ticks.sources(*max(v, key=lambda g: g[1] - g[0]))]
                          for k, v in spans.items() if v} if diagnose else {},
        # the GUI thread's time in the longest stall of each stage: ran / waited for a CPU / slept
        "stall_split": {k: ticks.split(*max(v, key=lambda g: g[1] - g[0]))
                        for k, v in spans.items() if v} if diagnose else {},
        # the GUI thread over each whole stage (every run of it): ran / waited for a CPU / slept
        "stage_split": {k: [x for x in (ticks.split(a, b) for a, b in v) if x]
                        for k, v in intervals.items() if v} if diagnose else {},
    })
    if log is not None:
        # the longest gaps of each stage and what the GUI thread handled in them
        out["stall_events"] = {}
        for k, _ in STALL_STAGES:
            gaps = sorted((g for a, b in intervals[k] for g in ticks.gaps(a, b, 4)),
                          key=lambda g: g[0] - g[1])[:6]
            out["stall_events"][k] = [{"ms": 1e3 * (g1 - g0), "events": log.within(g0, g1)} for g0, g1 in gaps]
    w.projects.choose = lambda *_a: "discard"     # closing with unsaved models asks; a benchmark discards
    w.close()
    QCoreApplication.processEvents()
    return out


# ---------------------------------------------------------------------------
# the driver: load, both code versions, report
# ---------------------------------------------------------------------------
def _machine() -> dict:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numpy
    import PySide6
    import vispy

    return {"cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "numpy": numpy.__version__,
            "pyside6": PySide6.__version__, "vispy": vispy.__version__, "load_average": os.getloadavg()}


def _start_load(n: int) -> list:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def _stop_load(procs: list) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def run_version(code: Path, repeat: int, load: int, diagnose: bool = True, events: bool = False) -> dict:
    """Measure the studio of the checkout ``code`` in a fresh process under load."""
    with tempfile.TemporaryDirectory(prefix="bench-studio-") as d:
        out = Path(d) / "out.json"
        env = dict(os.environ, HGN_STUDIO_SETTINGS=str(Path(d) / "bench.ini"))
        cmd = [sys.executable, __file__, "--measure", str(code), "--out", str(out), "--repeat", str(repeat)]
        if not diagnose:
            cmd.append("--no-diagnose")
        if events:
            cmd.append("--events")
        load_before = os.getloadavg()[0]
        procs = _start_load(load)
        try:
            t0 = time.perf_counter()
            rc = subprocess.call(cmd, env=env)
            wall = time.perf_counter() - t0
        finally:
            _stop_load(procs)
        if rc != 0 or not out.exists():
            raise SystemExit(f"measuring {code} failed (exit code {rc})")
        res = json.loads(out.read_text())
        res["wall_s"] = wall
        # 1-minute load average before this version's run (its own load not yet started) and at its end
        res["load_average"] = [load_before, os.getloadavg()[0]]
        res["code"] = str(code)
        res["commit"] = subprocess.run(["git", "-C", str(code), "rev-parse", "--short", "HEAD"],
                                       capture_output=True, text=True).stdout.strip()
        return res


def summary(res: dict) -> dict:
    """Worst and median of every figure."""
    def agg(v):
        return {"worst": max(v), "median": statistics.median(v)} if v else None

    return {"first_frame_s": agg(res["first_frame_s"]),
            "stall_ms": {k: agg(v) for k, v in res["stall_ms"].items()},
            "cancel_ms": {k: agg(v) for k, v in res["cancel_ms"].items()}}


def rows(results: dict) -> list[tuple]:
    """(measure, target, {version: (worst, median)}) rows of the report."""
    out = []
    labels = dict(STALL_STAGES)
    for k, _ in STALL_STAGES:
        out.append((f"longest GUI stall: {labels[k]}", TARGETS["stall_ms"], "ms",
                    {v: r["summary"]["stall_ms"][k] for v, r in results.items()}))
    labels = dict(CANCEL_STAGES)
    for k, _ in CANCEL_STAGES:
        out.append((f"Cancel -> job ended: {labels[k]}", TARGETS["cancel_ms"], "ms",
                    {v: r["summary"]["cancel_ms"][k] for v, r in results.items()}))
    out.append(("Train -> first roll-out frame", TARGETS["first_frame_s"], "s",
                {v: r["summary"]["first_frame_s"] for v, r in results.items()}))
    return out


def _fmt(a, unit):
    if a is None:
        return "-"
    if unit == "s":
        return f"{a['worst']:.2f} / {a['median']:.2f} s"
    return f"{a['worst']:.0f} / {a['median']:.0f} ms"


def _split_text(s: dict) -> str:
    return (f"the GUI thread ran {s['ran_ms']:.0f} ms, waited for a CPU {s['waited_ms']:.0f} ms, slept "
            f"{s['slept_ms']:.0f} ms (of {s['span_ms']:.0f} ms around it)")


def _work_line(r: dict) -> str:
    """Median wall time of the work itself, the workers' priority and the machine's load during a version."""
    d = r.get("durations_s") or {}
    names = {"fit": "fit", "rollout": "roll-out after Train", "zero_shot": "zero-shot roll-out", "export": "export"}
    work = ", ".join(f"{names[k]} {statistics.median(v):.2f} s" for k, v in d.items() if v)
    nice = r.get("worker_nice")
    la = r.get("load_average")
    sl = r.get("gui_slice_us")
    return ("median work time " + (work or "-") + "; workers "
            + ("at the window's priority" if not nice else f"{nice} nice steps below the window")
            + (f"; GUI thread's time slice {sl / 1e3:g} ms" if sl else "")
            + (f"; load average {la[0]:.1f} before, {la[1]:.1f} after" if la else ""))


def report(doc: dict) -> tuple[str, str]:
    versions = list(doc["results"])
    table = rows(doc["results"])
    m = doc["machine"]
    head = (f"HGN Studio under load ({m['cpus']} cores, {m['cpu']}, Python {m['python']}, PySide6 {m['pyside6']}, "
            f"Xvfb + Mesa llvmpipe; {doc['load']} busy-loop processes; load average before "
            f"{m['load_average'][0]:.1f}); worst / median of {doc['repeat']} runs")
    names = {v: f"{v} ({doc['results'][v].get('commit', '')})" for v in versions}
    width = 52
    lines = [head, f"{'measure':{width}s} " + " ".join(f"{names[v]:>24s}" for v in versions) + f" {'target':>9s}"]
    for label, target, unit, vals in table:
        t = f"<= {target:g} {unit}"
        lines.append(f"{label:{width}s} " + " ".join(f"{_fmt(vals[v], unit):>24s}" for v in versions)
                     + f" {t:>9s}")
    for v in versions:
        r = doc["results"][v]
        lines.append(f"{v}: idle timer gap {r['idle_gap_ms']:.0f} ms; torch imported by the window's process: "
                     f"{'yes' if r['torch_in_gui_process'] else 'no'}; measured in {r['wall_s']:.0f} s")
        lines.append(f"{v}: {_work_line(r)}")
    for v in versions:
        src = doc["results"][v].get("stall_sources") or {}
        split = doc["results"][v].get("stall_split") or {}
        for k, label in STALL_STAGES:
            if src.get(k):
                where, ms = src[k][0]
                lines.append(f"  {v}, longest stall in {label}: GUI thread mostly in {where} ({ms} ms sampled)")
            if split.get(k):
                lines.append(f"  {v}, longest stall in {label}: {_split_text(split[k])}")
        whole = doc["results"][v].get("stage_split") or {}
        shares = []
        for k, label in STALL_STAGES:
            runs = whole.get(k) or []
            span = sum(x["span_ms"] for x in runs)
            if span > 0:
                shares.append(f"{label} ran {100 * sum(x['ran_ms'] for x in runs) / span:.0f}%, waited "
                              f"{100 * sum(x['waited_ms'] for x in runs) / span:.0f}%")
        if shares:
            lines.append(f"  {v}, the GUI thread over the stages: " + "; ".join(shares))
        for line in doc["results"][v].get("first_train_timeline_s") or []:
            lines.append(f"  {v}, Train ->: " + ", ".join(f"{k} {t:.2f} s" for k, t in line.items()))
    text = "\n".join(lines)

    md = ["# Studio responsiveness under load (`benchmarks/bench_studio.py`)", "",
          head + ".", "",
          "| measure | " + " | ".join(names[v] for v in versions) + " | target |",
          "| --- | " + " | ".join("---" for _ in versions) + " | --- |"]
    for label, target, unit, vals in table:
        cells = []
        for v in versions:
            a = vals[v]
            ok = a is not None and a["worst"] <= target
            cells.append(_fmt(vals[v], unit) + ("" if a is None else (" (met)" if ok else " (missed)")))
        md.append(f"| {label} | " + " | ".join(cells) + f" | <= {target:g} {unit} |")
    md += ["", "Worst / median over the runs. A GUI stall is the longest gap between ticks of a 5 ms timer "
           "on the GUI thread during the stage; Cancel latency runs from the Cancel click to the job having "
           "ended; the first frame is the first roll-out frame after the start drawn in the views.", ""]
    for v in versions:
        r = doc["results"][v]
        md.append(f"- {names[v]}: idle timer gap {r['idle_gap_ms']:.0f} ms; torch imported by the window's "
                  f"process: {'yes' if r['torch_in_gui_process'] else 'no'}; {_work_line(r)}; all figures: "
                  f"`benchmarks/results/studio.json`.")
    for v in versions:
        src = doc["results"][v].get("stall_sources") or {}
        if any(src.values()):
            md += ["", f"Where the GUI thread was during the longest stall of each stage ({names[v]}; sampled "
                   "every 5 ms while the timer was more than 30 ms late; the studio's file:function when it is "
                   "on the stack, then the innermost frame):", ""]
            split = doc["results"][v].get("stall_split") or {}
            for k, label in STALL_STAGES:
                if src.get(k):
                    md.append(f"- {label}: " + "; ".join(f"`{where}` {ms} ms" for where, ms in src[k])
                              + (f"; {_split_text(split[k])}" if split.get(k) else ""))
    return text, "\n".join(md) + "\n"


def event_report(doc: dict, min_ms: float = 4.0) -> str:
    """``--events``: the longest stalls of each stage and what ran in them
    (start after the gap began, duration, nested by depth)."""
    lines = []
    for v, r in doc["results"].items():
        for k, label in STALL_STAGES:
            for gap in (r.get("stall_events") or {}).get(k, []):
                lines.append(f"{v}, {label}: stall {gap['ms']:.0f} ms")
                for start, ms, depth, what in gap["events"]:
                    if ms >= min_ms:
                        lines.append(f"    {'  ' * depth}+{start:6.1f} ms {ms:6.1f} ms  {what}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--load", type=int, default=2, help="busy-loop processes competing for the CPU (default 2)")
    ap.add_argument("--before", type=Path, default=None, help="a checkout of the code to compare with")
    ap.add_argument("--before-ref", default=None, help="a commit to compare with (a temporary git worktree)")
    ap.add_argument("--no-diagnose", action="store_true",
                    help="do not sample where the GUI thread is during stalls")
    ap.add_argument("--events", action="store_true",
                    help="time every GUI-thread event and the studio's functions; print what ran in the "
                         "longest stalls of each stage (slows the window a little: a diagnosis, not figures)")
    ap.add_argument("--measure", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.measure is not None:                  # the measuring process
        sys.path.insert(0, str(args.measure.resolve()))
        res = measure(args.repeat, args.measure.resolve(), not args.no_diagnose, args.events)
        args.out.write_text(json.dumps(res, indent=2))
        return 0

    if not os.environ.get("DISPLAY") and shutil.which("xvfb-run"):
        cmd = ["xvfb-run", "-a", "-s", f"-screen 0 {SCREEN}", sys.executable, __file__] + list(argv or sys.argv[1:])
        return subprocess.call(cmd)

    tmp_tree = None
    before = args.before
    if args.before_ref:
        tmp_tree = Path(tempfile.mkdtemp(prefix="bench-studio-before-")) / "tree"
        subprocess.check_call(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tmp_tree),
                               args.before_ref], stdout=subprocess.DEVNULL)
        before = tmp_tree
    doc = {"machine": _machine(), "load": args.load, "repeat": args.repeat, "targets": TARGETS, "results": {}}
    try:
        if before is not None:
            doc["results"]["before"] = run_version(before.resolve(), args.repeat, args.load, not args.no_diagnose,
                                                   args.events)
        doc["results"]["after"] = run_version(ROOT, args.repeat, args.load, not args.no_diagnose, args.events)
    finally:
        if tmp_tree is not None:
            subprocess.call(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tmp_tree)])
    for r in doc["results"].values():
        r["summary"] = summary(r)
    doc["machine"]["load_average_after"] = os.getloadavg()
    text, md = report(doc)
    if args.events:                               # a diagnosis: printed, not written as the figures
        print(text)
        print(event_report(doc))
        return 0
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2))
    RESULTS.with_suffix(".md").write_text(md)
    print(text)
    print(f"(written to {RESULTS.relative_to(ROOT)} and {RESULTS.with_suffix('.md').relative_to(ROOT)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
