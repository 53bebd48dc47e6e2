"""The engine: a ``distributed.Client`` on this machine or on a cluster.

:func:`connect` starts a ``LocalCluster`` of worker *processes* (one thread
each: the fits are single-threaded numpy/torch work, and one thread per
process keeps them from competing for the GIL) or connects to a running
scheduler (``dask scheduler`` / ``dask worker ADDRESS``, docs/cluster.md).
Workers run with OMP/MKL/OpenBLAS at 1 thread (Dask's nanny sets these in
``distributed.nanny.pre-spawn-environ``; :func:`connect` also sets them and
``HGN_CLUSTER_WORKER=1`` in the LocalCluster's environment) and every task
of this package sets torch's intra-op threads to 1 (:func:`one_thread`).
"""
from __future__ import annotations

import contextlib
import os
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


def local_cores() -> int:
    """Cores this process may use (the affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def connect(workers: int | None = None, scheduler: str | None = None, memory_limit="auto",
            dashboard: bool = False):
    """A Client: on an existing scheduler (``scheduler``: "tcp://host:8786"
    or a scheduler file's path) or on a new LocalCluster of ``workers``
    processes (default: this machine's cores), one thread each. Close it
    with :func:`close` (also stops a LocalCluster it started); or use
    :func:`engine` as a context manager. HGNError for bad settings or a
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
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=":0" if dashboard else None, memory_limit=memory_limit,
                           env=dict(WORKER_ENV))
    client = Client(cluster)
    client._hgn_owned_cluster = cluster
    return client


def close(client) -> None:
    """Close ``client`` and the LocalCluster :func:`connect` started for it (a
    remote cluster keeps running)."""
    if client is None:
        return
    cluster = getattr(client, "_hgn_owned_cluster", None)
    try:
        client.close()
    finally:
        if cluster is not None:
            cluster.close()


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
           "WORKER_ENV", "POLL_S"]
