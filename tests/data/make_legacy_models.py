"""Model files written by the NumPy RF-HGN and the first torch baseline
(commit b00e48d, before the torch core of issue 10), kept so that the tests
can check that existing model files keep loading and give the same results.

Writes ``legacy_rf_invariant.npz``, ``legacy_rf_frame.npz``,
``legacy_baseline_adam.npz`` and ``legacy_expected.npz`` (the energies and
gradients each model gave on fixed states, from the code that wrote them).

    .venv/bin/python tests/data/make_legacy_models.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.learning.baselines import BaselineConfig
from core.learning.baselines import fit as fit_baseline
from core.learning.rfhgn import RFConfig, fit
from core.physics.builders import build
from core.physics.datagen import random_snapshots

HERE = Path(__file__).parent


def states():
    """The system and the states the expected values are taken at."""
    system = build("square", n=3, m=3)
    data = random_snapshots(system, 6, seed=5)
    return system, data.q, data.p


def main():
    system, q, p = states()
    train = random_snapshots(system, 120, seed=0, test_fraction=0.2)
    models = {
        "rf_invariant": fit(train, RFConfig(static_width=2)),
        "rf_frame": fit(train, RFConfig(encoding="frame", node_width=24)),
        "baseline_adam": fit_baseline(train, BaselineConfig(node_width=8, edge_width=8, message_width=8,
                                                            time_budget=0, threads=1, max_epochs=5,
                                                            batch_size=16)),
    }
    expected = {}
    for name, model in models.items():
        model.save(HERE / f"legacy_{name}.npz")
        gq, gp = model.gradients(system, q, p)
        expected[f"{name}.energy"] = np.asarray(model.energy(system, q, p))
        expected[f"{name}.dHdq"] = gq
        expected[f"{name}.dHdp"] = gp
    np.savez_compressed(HERE / "legacy_expected.npz", **expected)


if __name__ == "__main__":
    main()
