"""An RF-HGN fit of a chunked dataset: map, tree-sum, local solve (docs/cluster.md).

The fit's normal equations (``core.learning.rfhgn.fitting``: per block
G = Z^T Z, b = Z^T u, u.u and the row count) are sums over snapshots, so

1. **sample** (here, once): the hidden layers are sampled exactly as
   :func:`core.learning.rfhgn.fitting.fit` samples them on the concatenated
   data: ``rng = default_rng(config.seed)``, :func:`~core.learning.rfhgn.
   sampling.choose_points` draws its snapshots from the list of *all*
   training snapshots of the folder (a seeded subsample across the chunks,
   the same indices ``fit`` draws), and only those snapshots are read (from
   the chunks that hold them); then :func:`~core.learning.rfhgn.sampling.
   sample_network`. The network (a few kB) is shipped to the workers.
2. **map**: one task per chunk reads that chunk (checksum checked), and
   assembles its training rows' normal equations with the same
   :func:`~core.learning.rfhgn.fitting.assemble` as ``fit`` (one thread);
   it returns the small blocks (L x L), the training range (largest
   kinetic energy, pair distances) and whether anything moves.
3. **tree-sum**: the chunk results are added pairwise (chunk 0+1, 2+3, ...,
   then the sums pairwise), a fixed order, so a fit on any number of
   workers, and the in-process fit (``client=None``), give the same bits.
4. **solve** here: :func:`~core.learning.rfhgn.fitting.solve` and the energy
   constant from the first training snapshot, as ``fit`` does.

The result equals ``fit(open_chunked(DIR).to_dataset(), config)`` to
round-off: only the order of the sums differs (``fit`` adds its batches in
one running sum). Memory: the client holds the network, the sampled
snapshots and one L x L block per pending chunk result; a worker holds one
chunk and one assembly batch at a time. The sampling needs the list of
training indices (8 bytes a snapshot) and reads the chunks that hold the
sampled snapshots.

Adaptive sampling (``sampler="adaptive"``) repeats map and tree-sum for
every resampling round. Time series (no derivatives) and damped or driven
data are not fitted here (chunked datasets hold Hamiltonian snapshots with
exact derivatives).
"""
from __future__ import annotations

import time

import numpy as np

from core.errors import Cancelled, HGNError
from core.files.chunked import ChunkedDataset, open_chunked
from core.jobs import check_cancel, report
from core.learning.hgn.device import blas_threads, resolve_device, torch_threads
from core.learning.rfhgn.config import RFConfig
from core.learning.rfhgn.fitting import Group, assemble, finish_fit, fit_threads, sample_and_solve
from core.learning.rfhgn.model import FittedModel
from core.learning.rfhgn.sampling import choose_points
from core.physics.trajectory import degenerate
from .engine import POLL_S, finished_batches, one_thread, stop, task_cancel


# ----------------------------------------------------------------------
def chunk_equations(folder: str, k: int, network, config: dict, verify: bool = True, cancel=None) -> dict:
    """The normal equations of chunk ``k``'s training rows (a task; also run
    in-process): ``{"blocks": {name: [G, b, u.u, rows]}, "record": {...},
    "moving": bool, "n_train": int, "chunk": k}``. ``cancel`` is checked
    between assembly batches; on a Dask worker it defaults to the task's own
    (:func:`~core.cluster.engine.task_cancel`: the client cancelled it or
    the worker closes)."""
    with one_thread():
        c = open_chunked(folder, verify_system=False)
        ds = c.chunk(k, verify)
        cfg = RFConfig.from_dict(config)
        train = np.asarray(ds.train, dtype=np.int64)
        record: dict = {}
        group = Group(ds.system, ds.q, ds.p, ds.dqdt, ds.dpdt, train, network.device)
        ne = assemble(network, [group], cfg, record=record,
                      cancel=cancel if cancel is not None else task_cancel())
        moving = bool(len(train)) and not degenerate(ds.p, ds.dpdt, train)
        return {"blocks": ne.blocks, "record": record, "moving": moving, "n_train": int(len(train)),
                "chunks": [k]}


def add_equations(a: dict, b: dict) -> dict:
    """The sum of two chunk results (blocks added, ranges merged)."""
    blocks = {}
    for name, (G, bb, uu, n) in a["blocks"].items():
        G2, b2, uu2, n2 = b["blocks"][name]
        blocks[name] = [G + G2, bb + b2, uu + uu2, n + n2]
    ra, rb = a["record"], b["record"]
    record = {}
    for key, pick in (("k_max", max), ("r_max", max), ("r_min", min)):
        vals = [r[key] for r in (ra, rb) if key in r]
        if vals:
            record[key] = pick(vals)
    return {"blocks": blocks, "record": record, "moving": a["moving"] or b["moving"],
            "n_train": a["n_train"] + b["n_train"], "chunks": a["chunks"] + b["chunks"]}


class SummedEquations:
    """What :func:`core.learning.rfhgn.fitting.solve` reads of a
    NormalEquations: ``network`` and ``blocks``."""

    def __init__(self, network, blocks: dict):
        self.network = network
        self.blocks = blocks


def tree_sum(items: list, add) -> object:
    """Pairwise sums in a fixed order: (0+1), (2+3), ..., then those pairwise."""
    if not items:
        raise HGNError("nothing to add up: no chunks")
    level = list(items)
    while len(level) > 1:
        nxt = [add(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


# ----------------------------------------------------------------------
class _Rows:
    """``x[at]`` of the folder's snapshots for choose_points (q or p), read
    lazily; q and p of the same indices are read together once."""

    def __init__(self, source: ChunkedDataset, name: str, cache: dict):
        self.source, self.name, self.cache = source, name, cache
        self.shape = (source.n_snapshots, source.system.n, source.system.dim)

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, at):
        if isinstance(at, slice):
            at = np.arange(*at.indices(self.shape[0]))
        at = np.asarray(at, dtype=np.int64)
        key = at.tobytes()
        if self.cache.get("key") != key:
            q, p = self.source.sample_rows(at, ("q", "p"))
            self.cache.update(key=key, q=q, p=p)
        return self.cache[self.name]


def _source(source) -> ChunkedDataset:
    if isinstance(source, ChunkedDataset):
        return source
    return open_chunked(source)


def _run_map(source: ChunkedDataset, network, config: RFConfig, client, progress, cancel,
             stage_from: float, stage_to: float) -> dict:
    """Map over the chunks and tree-sum, on ``client`` or in this process."""
    folder, cfg = str(source.folder), config.to_dict()
    n = source.n_chunks
    if client is None:
        results = []
        for k in range(n):
            check_cancel(cancel)
            results.append(chunk_equations(folder, k, network, cfg, cancel=cancel))
            report(progress, "assemble", stage_from + (stage_to - stage_from) * (k + 1) / n)
        return tree_sum(results, add_equations)
    from distributed import as_completed

    net = client.scatter(network, broadcast=True, hash=False)  # sent to each worker once, not with every task
    leaves = [client.submit(chunk_equations, folder, k, net, cfg, pure=False) for k in range(n)]
    futures = [net] + list(leaves)

    def add(a, b):
        f = client.submit(add_equations, a, b, pure=False)
        futures.append(f)
        return f

    try:
        total = tree_sum(leaves, add)
        ac = as_completed(leaves)
        done = 0
        for batch in finished_batches(ac, cancel, lambda: done < n):  # noqa: B023 - read at each poll
            for f in batch:
                if f.status == "error":
                    f.result()  # raises the task's error here (an HGNError naming the chunk's file)
                done += 1
            report(progress, "assemble", stage_from + (stage_to - stage_from) * done / n)
        while not total.done():
            check_cancel(cancel)
            time.sleep(POLL_S)
        return total.result()
    except (Cancelled, KeyboardInterrupt, Exception):
        stop(client, futures)  # cancelled, and off the workers when this returns
        raise


def distributed_fit(source, config: RFConfig | None = None, client=None, progress=None,
                    cancel=None) -> FittedModel:
    """Fit an RF-HGN to the training snapshots of a chunked dataset
    (``source``: its folder or a :class:`~core.files.chunked.ChunkedDataset`)
    as a map over chunks on ``client`` (a ``distributed.Client``; None: in
    this process, one chunk in memory at a time), a tree-sum and the local
    solve (module notes). ``progress(stage, fraction)`` gets "sample",
    "assemble" (chunks done) and "solve"; ``cancel`` (``is_set()``) stops
    it between chunks (pending tasks are cancelled) with
    :class:`~core.errors.Cancelled`. Returns the FittedModel; ``info``
    carries ``distributed`` (chunks, workers, scheduler)."""
    t0 = time.perf_counter()
    config = RFConfig.checked(config)
    device = resolve_device(config.device)
    if client is not None and device.type != "cpu":
        raise HGNError("the distributed fit runs on the workers' CPUs: use device cpu (or fit in one process "
                       "without --workers/--scheduler for a GPU)")
    src = _source(source)
    system = src.system
    if src.n_train == 0:
        raise HGNError(f"{src.folder}: the dataset has no training snapshots")
    config.check_memory()
    train = src.train_rows()
    threads = fit_threads(config, [system], device)
    with torch_threads(threads), blas_threads(threads):
        rng = np.random.default_rng(config.seed)
        report(progress, "sample", 0.0)
        cache: dict = {}
        sets = choose_points([(system, _Rows(src, "q", cache), _Rows(src, "p", cache), train)], config, rng,
                             device)
        cache.clear()
        total: dict = {}

        def equations(network, stage_from, stage_to, first):
            total.update(_run_map(src, network, config, client, progress, cancel, stage_from, stage_to))
            if first and not total["moving"]:
                raise HGNError(f"the training data are degenerate: all {src.n_train} snapshots have zero momentum "
                               "and zero force (particles at rest in equilibrium), so there is no motion to learn")
            return SummedEquations(network, total["blocks"])

        network, theta, sinfo, _ = sample_and_solve(config, sets, rng, progress, cancel, equations)
        kq, kp, kH = src.rows(train[:1], ("q", "p", "energy"))  # checked whole: the known energy
        group = Group(system, kq, kp, kq, kp)  # only to ask which assembly path the system takes
        model = finish_fit(network, theta, sinfo, config, [group] * len(sets), sets,
                           (system, kq[0], kp[0], float(kH[0])), total["record"], src.n_train, device, progress, t0)
    workers = 0 if client is None else len(client.nthreads())
    model.info.update(
        threads=threads,
        source="derivatives",
        distributed={"chunks": src.n_chunks, "workers": workers,
                     "scheduler": None if client is None else str(client.scheduler.address),
                     "folder": str(src.folder)},
        fit_time=time.perf_counter() - t0,
    )
    return model


__all__ = ["distributed_fit", "chunk_equations", "add_equations", "tree_sum", "SummedEquations"]
