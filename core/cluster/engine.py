"""The engine: a ``distributed.Client`` on this machine or on a cluster.

:func:`connect` starts a ``LocalCluster`` of worker *processes* (one thread
each: the fits are single-threaded numpy/torch work, and one thread per
process keeps them from competing for the GIL) or connects to a running
scheduler (``dask scheduler`` / ``dask worker ADDRESS``, docs/cluster.md).
Workers run with OMP/MKL/OpenBLAS at 1 thread (Dask's nanny sets these in
``distributed.nanny.pre-spawn-environ``; :func:`connect` also sets them and
``HGN_CLUSTER_WORKER=1`` in the LocalCluster's environment) and every task
of this package sets torch's intra-op threads to 1 (:func:`one_thread`).

No dashboard unless asked for (``connect(dashboard=True)``): Dask's scheduler
always serves a small HTTP endpoint (health checks, metrics), on port 8787
when nothing else is said, so a LocalCluster with ``dashboard_address=None``
still takes 8787 and warns "Port 8787 is already in use" when another cluster
(or RStudio) holds it. :func:`connect` puts that endpoint on a free port of
127.0.0.1 instead (``scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}``;
``dashboard=False`` keeps the dashboard's pages off).

Stopping: the tasks of this package check :func:`task_cancel` as they work
(the ``cancel`` of ``core.jobs``), which is set when the client cancelled the
task or the worker is closing; so a cancelled sweep point or chunk stops at
its next check (milliseconds) instead of running to its end, and
:func:`stop` waits for that. :func:`close` closes the client, then the
LocalCluster it started (with a timeout), and makes sure that no worker
process outlives it.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time

from core.errors import HGNError
from core.jobs import check_cancel

#: environment of the LocalCluster's worker processes
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "HGN_CLUSTER_WORKER": "1"}
#: seconds to wait for a scheduler given by address
CONNECT_TIMEOUT = 20
#: seconds between polls for finished tasks (a cancel is seen within this)
POLL_S = 0.05
#: seconds :func:`stop` waits for cancelled tasks to leave the workers, and :func:`close` for each step
STOP_TIMEOUT = 10.0
#: where the scheduler's HTTP endpoint listens when no dashboard is asked for (a free port, this machine only)
NO_DASHBOARD = "127.0.0.1:0"
#: where the dashboard listens when asked for (Dask's usual port; Dask moves it and says so when it is taken)
DASHBOARD = ":8787"


def local_cores() -> int:
    """Cores this process may use (the affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def connect(workers: int | None = None, scheduler: str | None = None, memory_limit="auto",
            dashboard: bool | str = False):
    """A Client: on an existing scheduler (``scheduler``: "tcp://host:8786"
    or a scheduler file's path) or on a new LocalCluster of ``workers``
    processes (default: this machine's cores), one thread each. Close it
    with :func:`close` (also stops a LocalCluster it started); or use
    :func:`engine` as a context manager. ``dashboard``: False (default: no
    dashboard, module notes), True (Dask's dashboard on :data:`DASHBOARD`; it
    needs bokeh) or an address like ":8790". HGNError for bad settings or a
    scheduler that does not answer."""
    if workers is not None and scheduler is not None:
        raise HGNError("give either a number of local workers or a scheduler address, not both")
    from distributed import Client, LocalCluster  # here: the single-process paths never import Dask

    if scheduler is not None:
        if not isinstance(scheduler, str) or not scheduler.strip():
            raise HGNError(f"the scheduler address must be text like tcp://host:8786, got {scheduler!r}")
        scheduler = scheduler.strip()
        try:
            if os.path.isfile(scheduler):
                return Client(scheduler_file=scheduler, timeout=CONNECT_TIMEOUT)
            return Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as exc:
            raise HGNError(f"could not connect to the Dask scheduler at {scheduler}: {exc} (start one with "
                           "'dask scheduler' and workers with 'dask worker ADDRESS', docs/cluster.md)") from None
    if workers is None:
        workers = local_cores()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise HGNError(f"the number of workers must be a whole number >= 1, got {workers!r}")
    if isinstance(dashboard, str) and dashboard.strip():
        address, extra = dashboard.strip(), {}
    elif dashboard is True:
        address, extra = DASHBOARD, {}
    elif dashboard is False or dashboard is None:
        # dashboard_address=None turns the dashboard's pages off but not the HTTP endpoint, which would take 8787
        address, extra = None, {"scheduler_kwargs": {"dashboard_address": NO_DASHBOARD}}
    else:
        raise HGNError(f"dashboard must be True, False or an address like ':8787', got {dashboard!r}")
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=address,
                           memory_limit=memory_limit, env=dict(WORKER_ENV), **extra)
    try:
        client = Client(cluster)
    except BaseException:
        cluster.close(timeout=STOP_TIMEOUT)
        raise
    client._hgn_owned_cluster = cluster
    return client


def _worker_processes(cluster) -> list:
    """The worker processes of a LocalCluster (its nannies' children) as psutil.Process objects."""
    import psutil

    procs = []
    for nanny in list(getattr(cluster, "workers", {}).values()):
        pid = getattr(nanny, "pid", None)
        if pid:
            try:
                procs.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                pass
    return procs


def close(client, timeout: float = STOP_TIMEOUT) -> None:
    """Close ``client``, then the LocalCluster :func:`connect` started for it
    (a remote cluster keeps running), each within ``timeout`` seconds.
    The workers' tasks of this package stop at their next cancel check when
    the workers close (:func:`task_cancel`), so the nannies need not kill
    them; a worker process still there afterwards is killed and reaped, so
    none outlives this call."""
    if client is None:
        return
    cluster = getattr(client, "_hgn_owned_cluster", None)
    procs = _worker_processes(cluster) if cluster is not None else []
    if cluster is not None:
        _quiesce(client, timeout)
    try:
        client.close(timeout=timeout)
    finally:
        if cluster is not None:
            try:
                cluster.close(timeout=timeout)
            finally:
                _reap(procs, timeout)


def _quiesce(client, timeout: float) -> None:
    """(A LocalCluster about to close) tell the workers' tasks of this package to stop
    (:func:`task_cancel`) and wait until their threads are idle, so that closing the workers cancels
    nothing under way (Dask would log each cancelled task)."""
    deadline = time.monotonic() + timeout
    try:
        client.run(_mark_stopping, on_error="return")
        while time.monotonic() < deadline:
            busy = client.run(_running_keys, None, on_error="return")
            if not any(isinstance(v, list) and v for v in busy.values()):
                return
            time.sleep(POLL_S)
    except Exception:  # noqa: BLE001 - the cluster is half gone already: closing it is all that is left
        return


def _mark_stopping(dask_worker=None) -> None:
    """(On a worker) from now on every task's :func:`task_cancel` is set."""
    dask_worker._hgn_stopping = True


def _reap(procs: list, timeout: float) -> None:
    """Kill and wait for the processes of ``procs`` still running (they should all have ended)."""
    import psutil

    alive = [p for p in procs if _running(p)]
    if not alive:
        return
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=timeout)


def _running(proc) -> bool:
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# ----------------------------------------------------------------------
class _TaskCancel:
    """``is_set()`` inside a task on a Dask worker: true once the client no
    longer wants the task (cancelled, released) or the worker is closing."""

    #: task states in which the task is still wanted
    WANTED = ("executing", "long-running", "resumed")

    def __init__(self, worker, key):
        from distributed.core import Status

        self.worker, self.key = worker, key
        self.stopping = (Status.closing, Status.closed, Status.failed)

    def is_set(self) -> bool:
        w = self.worker
        if w.status in self.stopping or getattr(w, "_hgn_stopping", False):
            return True
        ts = w.state.tasks.get(self.key)
        return ts is None or ts.state not in self.WANTED


def task_cancel():
    """The cancel flag (``is_set()``, :mod:`core.jobs`) of the Dask task
    this thread runs, or None outside a task (in this process: nothing to
    watch). Pass it as ``cancel`` to the work a task does. Dask is not
    imported here: a process that has not loaded it runs no Dask task."""
    if "distributed" not in sys.modules:
        return None
    try:
        from distributed import get_worker

        worker = get_worker()
        key = worker.get_current_task()
        worker.state.tasks  # noqa: B018 - the attribute is_set reads (fails here, not in the work)
    except (ImportError, ValueError, KeyError, AttributeError):
        return None
    return _TaskCancel(worker, key)


def stop(client, futures, timeout: float = STOP_TIMEOUT) -> None:
    """Cancel ``futures`` and wait (at most ``timeout`` s) until no worker
    still runs one of them: tasks that check :func:`task_cancel` stop within
    a step of their work, so the workers are free for what comes next and a
    following :func:`close` finds nothing running. Errors talking to the
    workers (one just died) are not raised here."""
    futures = list(futures)
    if not futures:
        return
    keys = {f.key for f in futures}
    try:
        client.cancel(futures)
    except Exception:  # noqa: BLE001 - the client is closing or the scheduler gone: nothing left to cancel
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            running = client.run(_running_keys, list(keys), on_error="return")
        except Exception:  # noqa: BLE001 - a worker gone mid-call: asking again is all we can do
            running = None
        if running is not None and not any(isinstance(v, list) and v for v in running.values()):
            return
        time.sleep(POLL_S)


def _running_keys(keys, dask_worker=None) -> list:
    """(On a worker) those of ``keys`` (None: any) its threads run now."""
    running = list(dask_worker.active_threads.values())
    return running if keys is None else [k for k in running if k in set(keys)]


@contextlib.contextmanager
def engine(workers: int | None = None, scheduler: str | None = None, **kw):
    """``with engine(2) as client: ...``: :func:`connect`, then :func:`close`."""
    client = connect(workers, scheduler, **kw)
    try:
        yield client
    finally:
        close(client)


@contextlib.contextmanager
def one_thread():
    """torch's intra-op threads and BLAS at 1 inside a task (restored after)."""
    from core.learning.hgn.device import blas_threads, torch_threads

    with torch_threads(1), blas_threads(1):
        yield


def finished_batches(ac, cancel, more):
    """The futures of ``ac`` (a ``distributed.as_completed``) in batches as they finish, while ``more()``
    holds: polls every :data:`POLL_S` seconds and checks ``cancel`` before each poll
    (:class:`~core.errors.Cancelled`)."""
    while more():
        check_cancel(cancel)
        batch = ac.next_batch(block=False)
        if not batch:
            time.sleep(POLL_S)
            continue
        yield batch


def worker_pids(client) -> dict[str, int]:
    """worker address -> its process id."""
    return client.run(os.getpid)


__all__ = ["connect", "close", "engine", "one_thread", "local_cores", "worker_pids", "finished_batches",
           "task_cancel", "stop", "WORKER_ENV", "POLL_S", "STOP_TIMEOUT"]
