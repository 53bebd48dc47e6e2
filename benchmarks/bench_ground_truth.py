"""Ground-truth speed: velocity Verlet on the two reference systems.

* a 10x10x10 harmonic simple cubic lattice (1000 particles, 2700 springs,
  k = m = 1), 1000 steps of dt = 0.01 from random displacements and momenta
  (sd 0.05), target <= 0.25 s;
* a 1000-particle Lennard-Jones liquid (density 0.8, cutoff 2.5, periodic,
  started on a simple cubic lattice at k_B T = 1.0), 1000 steps of
  dt = 0.005, target <= 10 s.

A compiled MD code does them in about 0.07 s and 4.4 s. Each case runs
``--repeat`` times (fresh force field each time); the table shows the best
and the median wall time, with the target. Results go to
benchmarks/results/ground_truth.json with the machine (CPU count, Python,
NumPy, SciPy).

    .venv/bin/python benchmarks/bench_ground_truth.py [--repeat 5] [--save-every 10]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.physics import builders  # noqa: E402
from core.physics.initial import initial_state  # noqa: E402
from core.physics.simulate import simulate  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "ground_truth.json"


def cases():
    lat = builders.cubic_lattice(10, 10, 10)
    q, p = initial_state(lat, displacement=0.05, momentum=0.05, seed=0)
    liq = builders.molecular(1000, density=0.8, dim=3, cutoff=2.5)
    ql, pl = initial_state(liq, displacement=0.0, temperature=1.0, seed=0)
    return [
        {"name": "harmonic cubic lattice 10x10x10", "system": lat, "q0": q, "p0": p, "dt": 0.01,
         "steps": 1000, "target_s": 0.25, "compiled_md_s": 0.07},
        {"name": "Lennard-Jones liquid N=1000 rho=0.8 rc=2.5", "system": liq, "q0": ql, "p0": pl,
         "dt": 0.005, "steps": 1000, "target_s": 10.0, "compiled_md_s": 4.4},
    ]


def machine() -> dict:
    return {"cpu_count": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "platform": platform.platform(), "processor": platform.processor()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per case (best and median reported)")
    ap.add_argument("--save-every", type=int, default=10, help="steps between saved frames")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    rows = []
    for c in cases():
        times, tr = [], None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            tr = simulate(c["system"], c["q0"], c["p0"], c["dt"], c["steps"], save_every=args.save_every)
            times.append(time.perf_counter() - t0)
        rows.append({
            "case": c["name"], "particles": c["system"].n, "steps": c["steps"], "dt": c["dt"],
            "save_every": args.save_every, "best_s": min(times), "median_s": statistics.median(times),
            "all_s": times, "target_s": c["target_s"], "compiled_md_s": c["compiled_md_s"],
            "meets_target": min(times) <= c["target_s"],
            "us_per_step": 1e6 * min(times) / c["steps"],
            "max_rel_energy_error": float(np.max(np.abs(tr.energy_drift()))),
            "neighbour_builds": tr.meta.get("neighbour_builds", 0),
        })
    info = machine()
    print(f"ground truth (velocity Verlet, float64) on {info['cpu_count']} CPUs, Python {info['python']}, "
          f"NumPy {info['numpy']}, SciPy {info['scipy']}; {args.repeat} runs each")
    head = (f"{'case':44s} {'N':>5s} {'steps':>6s} {'best s':>8s} {'median s':>9s} {'target s':>9s} "
            f"{'compiled s':>10s} {'ok':>3s} {'max |dH|/|H|':>13s}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['case']:44s} {r['particles']:5d} {r['steps']:6d} {r['best_s']:8.3f} {r['median_s']:9.3f} "
              f"{r['target_s']:9.2f} {r['compiled_md_s']:10.2f} {'yes' if r['meets_target'] else 'NO':>3s} "
              f"{r['max_rel_energy_error']:13.2e}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"benchmark": "ground_truth", "machine": info,
                                    "repeat": args.repeat, "results": rows}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
