"""JobRunner: jobs run in a worker process; their progress, partial results
and end reach the GUI thread in order; errors, crashes and cancels end a job
cleanly and leave the runner usable; wait() works from the GUI thread; models
that need torch travel as their files."""
from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from core.errors import HGNError
from studio import worker_process as wp
from studio import workers
from studio.workers import CANCEL_GRACE, JobRunner
from studio_helpers import baseline_in_worker_script

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def _warm():
    from PySide6.QtWidgets import QApplication

    QApplication.instance() or QApplication([])
    assert workers.warm_up(wait=60.0)      # a worker that has done its imports (the first boot is slow under load)


def _job(x, progress=None, cancel=None, emit=None):
    progress("work", 1.0)
    emit(x + 1)
    return 2 * x


def _bad(progress=None, cancel=None, emit=None):
    raise HGNError("no good")


def _bug(progress=None, cancel=None, emit=None):
    return 1 / 0


def _pid(progress=None, cancel=None, emit=None):
    return os.getpid()


def _steps(progress=None, cancel=None, emit=None):
    progress("first", 0.5)
    emit("a")
    progress("second", 1.0)
    emit({"b": np.arange(3.0)})
    return "end"


def _exit_hard(code, progress=None, cancel=None, emit=None):
    progress("crash", 0.0)
    os._exit(code)


def _kill_self(progress=None, cancel=None, emit=None):
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(10)


def _deaf(progress=None, cancel=None, emit=None):
    """Never looks at its cancel token."""
    progress("deaf", 0.0)
    end = time.time() + 60
    while time.time() < end:
        sum(range(10000))
    return "should not finish"


def _polite(progress=None, cancel=None, emit=None):
    from core.jobs import check_cancel

    progress("polite", 0.0)
    while True:
        check_cancel(cancel)
        time.sleep(0.005)


def _big(n, progress=None, cancel=None, emit=None):
    a = np.arange(n, dtype=np.float64)
    emit(("chunk", a))
    return a[::-1].copy()


def _gone(pid: int) -> bool:
    """True once the process has ended and was reaped (not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _record(runner):
    events = []
    runner.started.connect(lambda name: events.append(("started", name)))
    runner.progress.connect(lambda s, f: events.append(("progress", s, f)))
    runner.partial.connect(lambda obj: events.append(("partial", obj)))
    runner.finished.connect(lambda obj: events.append(("finished", obj)))
    runner.failed.connect(lambda msg, tb: events.append(("failed", msg, tb)))
    runner.cancelled.connect(lambda: events.append(("cancelled",)))
    runner.done.connect(lambda: events.append(("done",)))
    return events


@pytest.mark.parametrize("n", [10, 400_000])
def test_messages_cross_a_socket_whole_and_in_order(n):
    """The wire format on its own: small buffers inline, large ones in a memory
    file whose descriptor comes with the message (and is closed after use)."""
    a, b = socket.socketpair()
    b.setblocking(False)
    arrays = [np.arange(n, dtype=np.float64) * (i + 1) for i in range(3)]
    msgs = [wp.encode(("chunk", i), {"q": arr, "tag": f"t{i}", "f": np.asfortranarray(np.ones((3, 2)))}, True)
            for i, arr in enumerate(arrays)] + [wp.encode(("end", 99))]
    large = 8 * n >= wp.MEMFD_MIN and wp.HAS_MEMFD
    assert [m.memfd() for m in msgs] == [large] * 3 + [False]   # large buffers go in a memory file
    fds_before = len(os.listdir("/proc/self/fd"))
    sender = threading.Thread(target=lambda: [wp.send_message(a, m) for m in msgs])
    sender.start()
    reader = wp.FrameReader()
    end = time.time() + 20
    while len(reader.messages) < 4 and time.time() < end:
        select.select([b], [], [], 0.1)
        assert reader.read(b, budget=0.005)
    sender.join()
    got = list(reader.messages)
    assert [m[0] for m in got] == [("chunk", 0), ("chunk", 1), ("chunk", 2), ("end", 99)]
    for (env, main, bufs), arr in zip(got, arrays):
        body = wp.decode_body(main, bufs)
        assert np.array_equal(body["q"], arr) and body["tag"] == f"t{env[1]}"
        assert body["f"].flags.f_contiguous and np.array_equal(body["f"], np.ones((3, 2)))
    assert got[3][1] is None
    if large:                                                # only headers and pickles went through the socket
        assert reader.bytes_in < 8 * n
    assert len(os.listdir("/proc/self/fd")) == fds_before    # the memory files' descriptors were closed
    a.close()
    assert not reader.read(b)                                # the other end closed: EOF
    b.close()


def test_wait_from_the_gui_thread_returns_when_the_job_ends(qtbot):
    runner = JobRunner()
    got = {"finished": [], "partial": [], "done": 0}
    runner.finished.connect(got["finished"].append)
    runner.partial.connect(got["partial"].append)
    runner.done.connect(lambda: got.__setitem__("done", got["done"] + 1))
    assert runner.start("double", _job, 21)
    t0 = time.perf_counter()
    assert runner.wait(3000)                     # used to block until the timeout and say False
    assert time.perf_counter() - t0 < 2.0
    assert got == {"finished": [42], "partial": [22], "done": 1}
    assert not runner.is_running()
    assert runner.start("again", _job, 1)        # the runner is free for the next job
    assert runner.wait(3000) and got["finished"] == [42, 2]


def test_failed_job_is_reported_and_waitable(qtbot):
    runner = JobRunner()
    failed = []
    runner.failed.connect(lambda msg, tb: failed.append((msg, tb)))
    assert runner.start("bad", _bad)
    assert runner.wait(3000)
    assert failed == [("no good", "")] and not runner.is_running()


def test_the_job_runs_in_another_process(qtbot):
    runner = JobRunner()
    got = []
    runner.finished.connect(got.append)
    assert runner.start("pid", _pid)
    worker_pid = runner.pid
    assert runner.wait(5000)
    assert got == [worker_pid] and worker_pid != os.getpid()


def _threads(progress=None, cancel=None, emit=None):
    import torch

    return os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads()


def test_a_worker_leaves_the_window_a_core(qtbot):
    """A worker's torch (and BLAS) use one core fewer than the machine has
    (unless OMP_NUM_THREADS says otherwise): on a busy 2-core machine torch's
    2 threads made the table build after a fit 10-20x slower."""
    want = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 2) - 1))
    assert wp.worker_threads() == max(1, (os.cpu_count() or 2) - 1)
    runner = JobRunner()
    got = []
    runner.finished.connect(got.append)
    runner.failed.connect(lambda m, tb: got.append(m + tb))
    assert runner.start("threads", _threads)
    assert runner.wait(60000)
    assert got == [(want, int(want))], got


def test_signals_arrive_in_order_through_the_event_loop(qtbot):
    runner = JobRunner()
    events = _record(runner)
    with qtbot.waitSignal(runner.done, timeout=10000):
        assert runner.start("steps", _steps)
        assert not runner.start("second", _steps)     # one job at a time
    assert [e[0] for e in events] == ["started", "progress", "partial", "progress", "partial", "finished", "done"]
    assert events[1] == ("progress", "first", 0.5) and events[2] == ("partial", "a")
    assert events[3] == ("progress", "second", 1.0)
    assert np.array_equal(events[4][1]["b"], np.arange(3.0))
    assert events[5] == ("finished", "end")


def test_a_bug_in_the_job_is_reported_with_its_traceback(qtbot):
    runner = JobRunner()
    events = _record(runner)
    assert runner.start("bug", _bug)
    assert runner.wait(5000)
    kind, msg, tb = events[1]
    assert kind == "failed" and msg.startswith("ZeroDivisionError") and "1 / 0" in tb
    assert events[-1] == ("done",)


def test_a_job_that_cannot_be_sent_fails_without_a_worker(qtbot):
    runner = JobRunner()
    events = _record(runner)
    assert runner.start("lambda", lambda progress=None, cancel=None, emit=None: 1)
    assert runner.wait(2000)
    assert events[1][0] == "failed" and "cannot run 'lambda' in a worker process" in events[1][1]
    assert not runner.is_running() and runner.start("after", _job, 1) and runner.wait(5000)


@pytest.mark.parametrize("crash", ["exit", "sigkill"])
def test_a_worker_that_dies_fails_the_job_and_the_next_job_runs(qtbot, crash):
    runner = JobRunner()
    events = _record(runner)
    if crash == "exit":
        assert runner.start("crash", _exit_hard, 3)
    else:
        assert runner.start("crash", _kill_self)
    dead = runner.pid
    assert runner.wait(10000)
    failed = [e for e in events if e[0] == "failed"]
    assert len(failed) == 1 and "stopped unexpectedly" in failed[0][1]
    assert ("exit status 3" if crash == "exit" else "SIGKILL") in failed[0][1]
    assert events[-1] == ("done",) and not runner.is_running()
    qtbot.waitUntil(lambda: _gone(dead), timeout=3000)   # reaped, not a zombie
    got = []
    runner.finished.connect(got.append)
    assert runner.start("next", _pid)
    assert runner.wait(20000)
    assert got and got[0] != dead


def test_cancel_of_a_job_that_never_checks_ends_within_the_grace(qtbot):
    runner = JobRunner()
    events = _record(runner)
    assert runner.start("deaf", _deaf)
    qtbot.waitUntil(lambda: any(e[0] == "progress" for e in events), timeout=20000)
    pid = runner.pid
    t0 = time.perf_counter()
    with qtbot.waitSignal(runner.cancelled, timeout=5000):
        runner.cancel()
    latency = time.perf_counter() - t0
    assert latency < CANCEL_GRACE + 0.15, latency
    assert [e[0] for e in events][-2:] == ["cancelled", "done"] and not runner.is_running()
    qtbot.waitUntil(lambda: _gone(pid), timeout=3000)    # the process was ended and reaped
    got = []
    runner.finished.connect(got.append)
    assert runner.start("next", _job, 5) and runner.wait(20000) and got == [10]


def test_cancel_of_a_job_that_checks_keeps_its_worker(qtbot):
    runner = JobRunner()
    events = _record(runner)
    assert runner.start("polite", _polite)
    qtbot.waitUntil(lambda: any(e[0] == "progress" for e in events), timeout=20000)
    pid = runner.pid
    runner.cancel()
    assert runner.wait(3000)
    assert [e[0] for e in events][-2:] == ["cancelled", "done"]
    os.kill(pid, 0)                               # still alive: it stopped by itself
    got = []
    runner.finished.connect(got.append)
    assert runner.start("pid", _pid) and runner.wait(5000) and got == [pid]


def test_wait_enforces_a_pending_cancel(qtbot):
    runner = JobRunner()
    events = _record(runner)
    assert runner.start("deaf", _deaf)
    qtbot.waitUntil(lambda: any(e[0] == "progress" for e in events), timeout=20000)
    runner.cancel()
    t0 = time.perf_counter()
    assert runner.wait(5000)
    assert time.perf_counter() - t0 < CANCEL_GRACE + 0.15
    assert ("cancelled",) in events and events[-1] == ("done",)


def test_shutdown_ends_a_deaf_job(qtbot):
    runner = JobRunner()
    events = _record(runner)
    assert runner.start("deaf", _deaf)
    qtbot.waitUntil(lambda: any(e[0] == "progress" for e in events), timeout=20000)
    t0 = time.perf_counter()
    runner.shutdown(3000)
    assert time.perf_counter() - t0 < 1.0 and not runner.is_running()
    assert ("cancelled",) in events


def test_large_results_arrive_intact(qtbot):
    runner = JobRunner()
    events = _record(runner)
    n = 3_000_000                                 # 24 MB each way
    with qtbot.waitSignal(runner.done, timeout=30000):
        assert runner.start("big", _big, n)
    (_, (tag, a)), = [e for e in events if e[0] == "partial"]
    (_, b), = [e for e in events if e[0] == "finished"]
    assert tag == "chunk" and np.array_equal(a, np.arange(n, dtype=np.float64))
    assert np.array_equal(b, np.arange(n, dtype=np.float64)[::-1])
    b[0] = -1.0                                   # results are ordinary writable arrays


def test_a_runner_deleted_while_its_job_runs_ends_the_job(qtbot):
    from PySide6.QtCore import QObject

    owner = QObject()
    runner = JobRunner(owner)
    events = _record(runner)
    assert runner.start("deaf", _deaf)
    qtbot.waitUntil(lambda: any(e[0] == "progress" for e in events), timeout=20000)
    pid = runner.pid
    owner.deleteLater()
    del runner
    qtbot.waitUntil(lambda: _gone(pid), timeout=5000)


def test_two_runners_run_at_once_in_different_processes(qtbot):
    r1, r2 = JobRunner(), JobRunner()
    got = []
    r1.finished.connect(got.append)
    r2.finished.connect(got.append)
    assert r1.start("one", _polite)
    assert r2.start("two", _pid)
    assert r2.wait(20000)
    assert got and got[0] != r1.pid
    r1.cancel()
    assert r1.wait(3000)


@pytest.mark.parametrize("method, kind, name", [
    ("baseline", "baseline_model", "HGN (Adam)"),
    ("rfhgn", "model", "RF-HGN (SWIM, invariant)"),
])
def test_the_window_process_never_imports_torch(tmp_path, method, kind, name):
    """A model trained (baseline) or fitted (RF-HGN: it holds the torch network
    too) and rolled out through JobRunner: torch is imported in the worker
    only; the model comes back packed under its name, saves itself without
    torch, a saved file opens packed as its kind, and the file is the model."""
    script = baseline_in_worker_script(f"""
        from studio.worker_process import PackedModel
        assert isinstance(res.model, PackedModel), type(res.model)
        assert res.model.kind == {kind!r} and res.model.name == {name!r}, res.model
        assert res.test_mse > 0 and (res.loss or {method!r} != "baseline")   # a loss curve for a trained model
        chunks = []
        runner.partial.connect(chunks.append)
        q0, p0 = pipeline.rollout_start(system, sim)
        runner.start("rollout", pipeline.rollout_job, res.model, system, q0, p0, 0.01, 20, 5)
        assert runner.wait(120000) and "err" not in out, out.get("err")
        pred = [c[1] for c in chunks if c[0] == "prediction"]
        assert sum(t.n_frames for t in pred) == 5, [t.n_frames for t in pred]
        path = res.model.save({str(tmp_path / "m.npz")!r})
        from core.files import kinds
        kind, opened = kinds.load_any(path)        # opening a model file in the window: packed too
        assert kind == {kind!r} and isinstance(opened, PackedModel), (kind, type(opened))
        assert opened.blob == res.model.blob and opened.name == res.model.name
        print("TORCH_IN_GUI", "torch" in sys.modules)
        np.save({str(tmp_path / "q.npy")!r}, pred[-1].q[-1])
    """, method=method)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         cwd=str(ROOT))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "TORCH_IN_GUI False" in out.stdout
    # the saved file is the model: rolled out here, it gives the worker's prediction
    from core.files.kinds import load_any
    from core.learning.rollout import rollout
    from core.physics.builders import build
    from studio import pipeline

    system = build("chain", n=4)
    _, model = load_any(tmp_path / "m.npz")
    q0, p0 = pipeline.rollout_start(system, dict(displacement=0.1, momentum=0.1, seed=0))
    tr = rollout(model, system, q0, p0, 0.01, 20, save_every=5)
    assert np.allclose(tr.q[-1], np.load(tmp_path / "q.npy"), rtol=0, atol=1e-12)
