"""Zero-shot Morse lattice against the amplitude of the training data.

A model fitted on 2x2x2 is rolled out on 16x16x16 (4,096 particles) for 1,000
steps of dt = 0.01 from displacements and momenta of sd 0.1. A large lattice
samples the tails of the bond-length distribution much further than 500
snapshots of 8 particles do, so training at the rollout's own amplitude (0.1)
leaves the learned Morse pair function outside its training range; wider
training data (sd 0.15, 0.2) cover it. Prints a table and writes
benchmarks/results/training_range.json.

    .venv/bin/python benchmarks/bench_training_range.py
"""
from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

import numpy as np

from core.physics import builders
from core.physics.datagen import random_snapshots
from core.errors import HGNError
from core.physics.initial import initial_state
from core.learning.rfhgn import RFConfig, fit
from core.learning.rollout import compare


def main() -> None:
    warnings.simplefilter("ignore")  # extrapolation warnings are the point here
    big = builders.cubic_lattice(16, 16, 16, potential="morse")
    q0, p0 = initial_state(big, 0.1, 0.1, seed=1)
    rows = []
    print("| training sd | sampler | final position MSE (16^3, 1000 x 0.01) | seconds |")
    print("| --- | --- | --- | --- |")
    for sd in (0.1, 0.15, 0.2):
        for sampler in ("swim", "elm"):
            t = time.perf_counter()
            small = builders.cubic_lattice(2, 2, 2, potential="morse")
            model = fit(random_snapshots(small, 500, sd, sd, seed=0), RFConfig(sampler=sampler))
            try:
                truth, pred = compare(model, big, q0, p0, 0.01, 1000, save_every=100)
                mse = float(np.mean((truth.q[-1] - pred.q[-1]) ** 2))
            except HGNError as exc:  # a rollout that blows up
                mse = float("nan")
                print(f"  ({sd}, {sampler}) failed: {exc}")
            secs = time.perf_counter() - t
            rows.append({"training_sd": sd, "sampler": sampler, "final_position_mse": mse, "seconds": secs})
            print(f"| {sd} | {sampler} | {mse:.3g} | {secs:.1f} |", flush=True)
    out = Path(__file__).parent / "results" / "training_range.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "cpus": os.cpu_count(), "load_average": os.getloadavg()}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
