"""Shared pieces of the benchmark suite: the run mode (full or short), the
machine record, timing and memory helpers, and the measures every table uses.

Timing rules (the same for every method, in one process on one machine):

* RF-HGN fits are timed ``mode.repeats`` times; the table shows the best
  (the usual convention for a deterministic computation on a shared machine)
  and the JSON keeps every run;
* a gradient-trained baseline is trained once (its run *is* the time budget);
  its time is the wall time from data in memory to the trained model
  (``info["fit_time"]``), with the monitor measurements of the test error
  excluded (``core.learning.baselines.training``);
* torch uses ``mode.threads`` threads (at most 2 on the reference machine);
  NumPy's BLAS uses its default (all cores of the machine).
"""
from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
import tracemalloc
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as ``python benchmarks/suite`` or ``-m benchmarks.suite``
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"
TABLES = ("optimizers", "potentials", "zero_shot", "scaling", "molecular")


@dataclass
class Mode:
    """Sizes and budgets of a run. ``short`` is the CI mode (under 2 minutes)."""

    short: bool = False
    #: torch threads of the baselines
    threads: int = 2
    #: training budget (s) of each gradient-trained baseline
    budget: float = 20.0
    #: Adam and LBFGS on table 1 get at least this many times RF-HGN's fit
    #: time (to test the 1000x target), capped by ``long_budget_cap``
    target_factor: float = 1000.0
    long_budget_cap: float = 240.0
    #: timed repeats of every RF-HGN fit
    repeats: int = 3
    n_train: int = 500
    n_test: int = 200
    #: rollouts per model in table 1 and their length
    n_rollouts: int = 3
    rollout_steps: int = 500
    rollout_dt: float = 0.01
    #: zero-shot sizes
    zero_shot_3d: tuple = (2, 4, 8, 16)
    zero_shot_2d: tuple = (3, 10, 30, 100)
    zero_shot_2x2: tuple = (2, 10, 100)
    zero_shot_frame: tuple = (2, 4, 10)
    zero_shot_steps: int = 1000
    #: scaling sweeps
    scale_snapshots: tuple = (100, 250, 500, 1000, 2000)
    scale_lattice: tuple = (2, 3, 4, 6, 8)
    scale_width: tuple = (0.5, 1, 2, 4, 8)
    scale_rollout: tuple = (3, 10, 22, 46)
    scale_rollout_steps: int = 20
    #: molecular dynamics (table 5)
    md_particles: int = 125
    md_trajectories: int = 10
    md_steps: int = 400
    md_budget: float = 30.0
    seed: int = 0
    extra: dict = field(default_factory=dict)

    @classmethod
    def make(cls, short: bool, **over) -> "Mode":
        if not short:
            m = cls()
        else:
            m = cls(short=True, threads=1, budget=0.5, target_factor=0.0, long_budget_cap=1.0, repeats=1, n_train=100,
                    n_test=50, n_rollouts=1, rollout_steps=50, zero_shot_3d=(2, 4), zero_shot_2d=(3, 10),
                    zero_shot_2x2=(2, 10), zero_shot_frame=(2, 4), zero_shot_steps=50,
                    scale_snapshots=(50, 100), scale_lattice=(2, 3), scale_width=(1, 2), scale_rollout=(3, 10),
                    scale_rollout_steps=3, md_particles=125, md_trajectories=2, md_steps=40, md_budget=0.5)
        for k, v in over.items():
            if v is not None:
                setattr(m, k, v)
        return m

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2 ** 20, 1)
    except OSError:
        pass
    return None


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def machine() -> dict:
    """What the figures were measured on."""
    import scipy
    import torch

    try:
        load = list(os.getloadavg())
    except OSError:  # pragma: no cover
        load = None
    return {"cpu": _cpu_model(), "cores": cores(), "cpu_count": os.cpu_count(), "memory_gib": _memory_gib(),
            "platform": platform.platform(), "python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "torch": torch.__version__, "load_average": load,
            "thread_env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                          "MKL_NUM_THREADS") if os.environ.get(k)},
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


# ----------------------------------------------------------------------
def best_of(fn, repeats: int):
    """Run ``fn()`` ``repeats`` times; returns (last result, best seconds, all seconds)."""
    times, out = [], None
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, min(times), times


def peak_memory(fn):
    """(result, peak bytes allocated through Python and NumPy during fn) by tracemalloc."""
    tracemalloc.start()
    try:
        out = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return out, int(peak)


def max_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def test_set(system, n: int, seed: int):
    """``n`` held-out snapshots (all of them the test set), drawn with another seed."""
    from core.physics.datagen import random_snapshots

    ds = random_snapshots(system, n, seed=seed)
    ds.test = np.arange(n)
    ds.train = np.zeros(0, dtype=np.int64)
    return ds


def relative_derivative_error(model, ds) -> float:
    """|predicted - true| / |true| of the time derivatives on the test
    snapshots (norms over every snapshot, particle and coordinate)."""
    idx = np.asarray(ds.test, dtype=np.int64)
    num = den = 0.0
    for a in range(0, len(idx), 128):
        b = idx[a:a + 128]
        dq, dp = model.time_derivatives(ds.system, ds.q[b], ds.p[b])
        num += float(np.sum((dq - ds.dqdt[b]) ** 2) + np.sum((dp - ds.dpdt[b]) ** 2))
        den += float(np.sum(ds.dqdt[b] ** 2) + np.sum(ds.dpdt[b] ** 2))
    return math.sqrt(num / den) if den > 0 else float("nan")


def rollout_summary(model, system, starts, dt: float, steps: int, save_every: int = 10) -> dict:
    """Roll ``model`` out from each start (q0, p0) beside the ground truth and
    summarise: geometric mean over rollouts of the final Zerr and Herr, the
    largest |energy drift| of the predictions and of the truth, and the
    model's seconds per step."""
    from core.learning.metrics import geometric_mean, rollout_measures
    from core.learning.rollout import compare

    save_every = max(1, min(save_every, steps))
    zs, hs, dp, dtr, sps, zmax = [], [], [], [], [], []
    failed = None
    for q0, p0 in starts:
        try:
            truth, pred = compare(model, system, q0, p0, dt, steps, save_every, on_no_convergence="warn")
        except Exception as exc:  # a blow-up is a result, not a crash of the suite
            failed = f"{type(exc).__name__}: {exc}"
            break
        if pred.diverged is not None:  # stopped and marked by core.learning.rollout: a result too
            failed = f"diverged: {pred.diverged['reason']}"
            break
        m = rollout_measures(truth, pred)
        zs.append(max(m["final_zerr"], 1e-300))
        zmax.append(float(np.max(m["zerr"])))
        hs.append(max(m["final_herr"], 1e-300))
        dp.append(m["max_abs_drift_prediction"])
        dtr.append(m["max_abs_drift_truth"])
        sps.append(pred.meta["seconds_per_step"])
    if failed is not None:
        return {"failed": failed, "rollouts": len(zs)}
    return {"final_zerr": float(geometric_mean(zs)), "max_zerr": float(np.max(zmax)),
            "final_herr": float(geometric_mean(hs)), "max_abs_drift": float(np.max(dp)),
            "max_abs_drift_truth": float(np.max(dtr)), "seconds_per_step": float(np.median(sps)),
            "rollouts": len(zs), "steps": steps, "dt": dt}


def starts_from(ds, n: int, indices=None):
    """(q0, p0) of the first ``n`` test snapshots."""
    idx = np.asarray(ds.test if indices is None else indices, dtype=np.int64)[:n]
    return [(ds.q[i].copy(), ds.p[i].copy()) for i in idx]


def jsonable(x):
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else None
    return x


def write_json(path: Path, doc: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(jsonable(doc), indent=1))
    tmp.replace(path)
    return path


class Log:
    """Prints a line with the elapsed time of the suite."""

    def __init__(self, quiet: bool = False):
        self.t0 = time.perf_counter()
        self.quiet = quiet

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            print(f"[{time.perf_counter() - self.t0:7.1f} s] {msg}", flush=True)
