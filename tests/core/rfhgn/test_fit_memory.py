"""The fit's memory does not grow with the number of snapshots (issue 11):
the training snapshots are streamed batch by batch from the dataset's own
arrays, never copied whole (benchmarks/bench_fit_memory.py measures the
peak at 2,000, 20,000 and 200,000 snapshots).

Two measures of the extra memory of ``fit`` with the dataset already in
memory, at S and 16 S snapshots: NumPy's allocations (tracemalloc's peak)
and, on Linux, the process's peak resident set during the fit (reset
through /proc/self/clear_refs), which also sees torch's CPU allocator. The
code before this change copied q, p, dq/dt and dp/dt of the training
snapshots (and took squares of all momenta at once): its extra memory at
16 S exceeded that at S by about the size of the training data (40 MB here).
"""
import gc
import tracemalloc

import numpy as np
import pytest

from core.learning.rfhgn import RFConfig, fit
from core.physics import builders
from core.physics.datagen import random_snapshots
from core.physics.trajectory import Dataset

SMALL, LARGE = 1000, 16000


@pytest.fixture(scope="module")
def snapshots():
    system = builders.cubic_lattice(3, 3, 3)
    return system, random_snapshots(system, LARGE, 0.1, 0.1, seed=0)


def _dataset(snapshots, n, order):
    system, a = snapshots
    train = np.arange(n) if order == "consecutive" else np.random.default_rng(1).permutation(LARGE)[:n]
    return Dataset(system, a.q, a.p, a.dqdt, a.dpdt, a.energy, train, np.zeros(0, dtype=np.int64))


def _numpy_peak(ds, cfg) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        fit(ds, cfg)
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def _status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))


def _resident_peak(ds, cfg):
    """Peak resident bytes of the fit above the resident set before it; None
    where the peak cannot be reset (not Linux)."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = _status("VmRSS")
    except OSError:
        return None
    fit(ds, cfg)
    return _status("VmHWM") - before


@pytest.mark.parametrize("order", ["consecutive", "shuffled"])
def test_fit_memory_does_not_grow_with_the_snapshots(snapshots, order):
    cfg = RFConfig(threads=1)
    small, large = _dataset(snapshots, SMALL, order), _dataset(snapshots, LARGE, order)
    fit(small, cfg)  # warm-up: first-fit allocations
    data = sum(x[large.train].nbytes for x in (large.q, large.p, large.dqdt, large.dpdt))  # 40 MB
    grow = _numpy_peak(large, cfg) - _numpy_peak(small, cfg)
    assert grow < 0.05 * data, f"NumPy peak grows by {grow / 2 ** 20:.1f} MiB from {SMALL} to {LARGE} snapshots"
    rs, rl = _resident_peak(small, cfg), _resident_peak(large, cfg)
    if rs is not None:
        assert rl - rs < 0.1 * data, f"resident peak grows by {(rl - rs) / 2 ** 20:.1f} MiB"


def test_fit_streams_the_same_rows_as_copies(snapshots):
    # a gathered (shuffled) training set gives the fit of the same snapshots copied into their own dataset
    system, a = snapshots
    train = np.random.default_rng(2).permutation(2000)[:600]
    cfg = RFConfig(threads=1, batch_size=100)
    streamed = fit(Dataset(system, a.q[:2000], a.p[:2000], a.dqdt[:2000], a.dpdt[:2000], a.energy[:2000], train,
                           np.zeros(0, dtype=np.int64)), cfg)
    copied = fit(Dataset(system, a.q[train], a.p[train], a.dqdt[train], a.dpdt[train], a.energy[train],
                         np.arange(600), np.zeros(0, dtype=np.int64)), cfg)
    assert np.array_equal(streamed.theta, copied.theta)
    assert streamed.info["train_r_max"] == copied.info["train_r_max"]
    assert streamed.info["train_k_max"] == copied.info["train_k_max"]
    assert streamed.constant == copied.constant
