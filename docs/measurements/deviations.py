"""Measure the deviations from the paper that docs/method.md describes.

Every case uses the RF-HGN benchmark task of benchmarks/bench_rfhgn.py (3D
simple cubic lattice 3x3x3, harmonic k = 1, r0 = 1, m = 1; 500 training
snapshots drawn with seed 0 and 200 test snapshots with seed 1,
displacements and momenta of standard deviation 0.1) and reports the test
derivative MSE (core.learning.metrics.derivative_mse) over seeds of the fit:

* ``swim``: the SWIM constant s = 0.2 (default) against the paper's ln(3)/2;
* ``pool``: edge encodings pooled beside the messages (default) or not;
* ``frame``: the frame encoding with the farthest-particle rule (default)
  against the paper's nearest-particle rule, at node widths 16 and 64, and
  ``RFConfig.recommended("frame")``;
* ``constant``: a model fitted on 2x2x2 evaluated on 16x16x16 snapshots, its
  energy constant scaled per edge (what the code does) or per particle.

    .venv/bin/python docs/measurements/deviations.py [--cases swim,pool,frame,constant] [--seeds 8]

Prints one line per setting (figures vary a little with the BLAS build).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.learning import metrics
from core.learning.rfhgn import RFConfig, fit
from core.physics import builders
from core.physics.datagen import random_snapshots
from core.physics.trajectory import Dataset

SD = 0.1


def benchmark_data(system, n_train: int = 500, n_test: int = 200) -> Dataset:
    """Training (seed 0) and test (seed 1) snapshots in one Dataset."""
    a = random_snapshots(system, n_train, SD, SD, seed=0)
    b = random_snapshots(system, n_test, SD, SD, seed=1)
    cat = np.concatenate
    return Dataset(system, cat([a.q, b.q]), cat([a.p, b.p]), cat([a.dqdt, b.dqdt]), cat([a.dpdt, b.dpdt]),
                   cat([a.energy, b.energy]), np.arange(n_train), np.arange(n_train, n_train + n_test))


def over_seeds(data: Dataset, seeds: int, **settings) -> tuple[list[float], float]:
    """Test MSE per fit seed and the best fit time."""
    errors, best = [], math.inf
    for seed in range(seeds):
        cfg = RFConfig.from_dict({**settings, "seed": seed})
        t0 = time.perf_counter()
        model = fit(data, cfg)
        best = min(best, time.perf_counter() - t0)
        errors.append(metrics.derivative_mse(model, data))
    return errors, best


def line(label: str, errors: list[float], best: float) -> None:
    e = np.asarray(errors)
    print(f"{label:52s} test MSE median {np.median(e):.2e}  min {e.min():.2e}  max {e.max():.2e}  "
          f"({len(e)} seeds; best fit {best:.3f} s)", flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="swim,pool,frame,constant")
    ap.add_argument("--seeds", type=int, default=8)
    args = ap.parse_args(argv)
    cases = set(args.cases.split(","))
    data = benchmark_data(builders.cubic_lattice(3, 3, 3))
    if "swim" in cases:
        for s, name in ((0.2, "0.2 (default)"), (0.5 * math.log(3.0), "ln(3)/2 (paper)")):
            line(f"invariant SWIM, swim_scale {name}", *over_seeds(data, args.seeds, swim_scale=s))
    if "pool" in cases:
        for pool in (True, False):
            line(f"invariant SWIM, pool_edges {pool}", *over_seeds(data, args.seeds, pool_edges=pool))
    if "frame" in cases:
        n = min(args.seeds, 3)
        for width in (16, 64):
            for rule in ("farthest", "nearest"):
                line(f"frame SWIM, node_width {width}, frame_rule {rule}",
                     *over_seeds(data, n, encoding="frame", node_width=width, frame_rule=rule))
        for rule in ("farthest", "nearest"):
            rec = RFConfig.recommended("frame", frame_rule=rule).to_dict()
            line(f"frame, recommended('frame'), frame_rule {rule}", *over_seeds(data, n, **rec))
    if "constant" in cases:
        small, big = builders.cubic_lattice(2, 2, 2), builders.cubic_lattice(16, 16, 16)
        model = fit(random_snapshots(small, 500, SD, SD, seed=0), RFConfig())
        test = random_snapshots(big, 20, SD, SD, seed=1)
        for label, e_ref in (("per edge (E / E_ref, the code)", model.e_ref), ("per particle (N / N_ref)", None)):
            model.e_ref = e_ref
            e = np.asarray(model.energy(big, test.q, test.p))
            rel = np.max(np.abs(e - test.energy)) / np.max(np.abs(test.energy))
            print(f"energy on 16x16x16 from a 2x2x2 fit, constant {label:32s} max |H_hat - H| / max |H| "
                  f"{rel:.2e}  (c = {model.constant:.4g})", flush=True)


if __name__ == "__main__":
    main()
