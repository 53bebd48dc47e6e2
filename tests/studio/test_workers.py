"""JobRunner: a job's end reaches the GUI thread, and wait() works from it."""
from __future__ import annotations

import time

from core.errors import HGNError
from studio.workers import JobRunner


def _job(x, progress=None, cancel=None, emit=None):
    progress("work", 1.0)
    emit(x + 1)
    return 2 * x


def _bad(progress=None, cancel=None, emit=None):
    raise HGNError("no good")


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
