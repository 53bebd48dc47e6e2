"""Write the example systems in this folder (open them with File > Open).

    .venv/bin/python assets/examples/make_examples.py

* ``hexagon-wheel.npz`` -- a drawn-style system: a hexagon of six particles
  around a heavier centre, rim springs twice as stiff as the spokes
  (``System.edge_scale``), harmonic pairs;
* ``morse-chain.npz`` -- a 12-particle Morse chain in 2D;
* ``lj-gas-2d.npz`` -- 64 Lennard-Jones particles at low density in a
  periodic 2D box (cutoff pairs).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from core.physics import builders

from core.files import io  # noqa: E402
def main() -> None:
    ring = [(math.cos(k * math.pi / 3), math.sin(k * math.pi / 3)) for k in range(6)]
    positions = [(0.0, 0.0)] + ring
    spokes = [(0, k) for k in range(1, 7)]
    rim = [(k, k % 6 + 1) for k in range(1, 7)]
    wheel = builders.custom(2, positions, edges=spokes + rim, masses=[3.0] + [1.0] * 6,
                            potential="harmonic", edge_scale=[1.0] * 6 + [2.0] * 6, name="hexagon wheel")
    io.save_system(HERE / "hexagon-wheel.npz", wheel)
    io.save_system(HERE / "morse-chain.npz",
                   builders.chain(12, dim=2, potential="morse", potential_params={"D": 1.0, "a": 1.5}))
    io.save_system(HERE / "lj-gas-2d.npz", builders.molecular(64, density=0.3, dim=2, cutoff=2.5))
    for p in sorted(HERE.glob("*.npz")):
        print(p.name, io.load_system(p))


if __name__ == "__main__":
    main()
