"""Table 2: harmonic, anharmonic (FPU-beta) and Morse lattices; Adam-trained
HGN against RF-HGN with ELM and with SWIM: test derivative MSE and time.

Each potential on the 3x3x3 simple cubic lattice of table 1 with its default
parameters (k = 1, r0 = 1; beta = 1; D = 1, a = 1, r0 = 1), the same numbers
of training and test snapshots (displacements and momenta sd 0.1).
"""
from __future__ import annotations

from .common import best_of, test_set

POTENTIALS = [("harmonic", "harmonic (spring)", {"k": 1.0, "r0": 1.0}),
              ("anharmonic", "anharmonic (FPU-beta)", {"k": 1.0, "r0": 1.0, "beta": 1.0}),
              ("morse", "Morse", {"D": 1.0, "a": 1.0, "r0": 1.0})]


def run(mode, log) -> dict:
    from core.physics import builders
    from core.learning.baselines import BaselineConfig, fit
    from core.physics.datagen import random_snapshots
    from core.learning.metrics import derivative_mse
    from core.learning.rfhgn import RFConfig
    from core.learning.rfhgn import fit as rf_fit

    rows = []
    for pot, label, params in POTENTIALS:
        system = builders.cubic_lattice(3, 3, 3, potential=pot, potential_params=params)
        train = random_snapshots(system, mode.n_train, seed=mode.seed)
        test = test_set(system, mode.n_test, seed=mode.seed + 1)
        row = {"potential": pot, "label": label, "params": params}
        m = fit(train, BaselineConfig(optimizer="adam", time_budget=mode.budget, threads=mode.threads,
                                      seed=mode.seed))
        row["adam"] = {"test_mse": derivative_mse(m, test), "time": m.info["fit_time"], "epochs": m.info["epochs"],
                       "stop_reason": m.info["stop_reason"]}
        for sampler in ("elm", "swim"):
            cfg = RFConfig(sampler=sampler)
            model, best, times = best_of(lambda train=train, cfg=cfg: rf_fit(train, cfg), mode.repeats)
            row[sampler] = {"test_mse": derivative_mse(model, test), "time": best, "times": times}
        log(f"potentials: {label}: Adam {row['adam']['test_mse']:.2e} ({row['adam']['time']:.1f} s), "
            f"ELM {row['elm']['test_mse']:.2e} ({row['elm']['time']:.3f} s), "
            f"SWIM {row['swim']['test_mse']:.2e} ({row['swim']['time']:.3f} s)")
        rows.append(row)
    return {"table": "potentials", "task": {"system": "3D simple cubic lattice 3x3x3", "train": mode.n_train,
                                            "test": mode.n_test, "adam_budget": mode.budget},
            "rows": rows}
