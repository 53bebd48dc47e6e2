"""Per-particle quantities the 3D views colour by, and the colour map.

* ``error``: |q_hat_i - q_i| of the prediction against the ground truth
  (minimum image in a periodic box, via core.learning.metrics);
* ``speed``: |p_i| / m_i;
* ``energy``: kinetic energy of particle i plus half of each pair energy it
  takes part in (so the per-particle energies sum to H), using the system's
  potential and graph through core.physics.forces.ForceField.
"""
from __future__ import annotations

import numpy as np

from core.physics.system import System

COLOUR_MODES = {"uniform": "Uniform", "error": "Position error", "speed": "Speed",
                "energy": "Particle energy"}
UNITS = {"error": "|Δq|", "speed": "|v|", "energy": "E_i"}


def particle_error(system: System, q_true: np.ndarray, q_pred: np.ndarray) -> np.ndarray:
    from core.learning.metrics import position_difference

    d = position_difference(q_true[None], q_pred[None], system.box)[0]
    return np.sqrt(np.sum(d * d, axis=1))


def particle_speed(system: System, p: np.ndarray) -> np.ndarray:
    return np.sqrt(np.sum(p * p, axis=1)) / system.masses


class ParticleEnergy:
    """Per-particle energy with a cached force field (one per system)."""

    def __init__(self, system: System):
        from core.physics.forces import ForceField

        self.system = system
        self.ff = ForceField(system)
        pot = system.potential
        self.shift = float(pot.energy(np.array(system.cutoff))) if system.cutoff is not None else 0.0

    def __call__(self, q: np.ndarray, p: np.ndarray) -> np.ndarray:
        s = self.system
        e = 0.5 * np.sum(p * p, axis=1) / s.masses
        i, j, _, r, scale = self.ff.active_pairs(q, fresh=True)
        v = s.potential.energy(r) - self.shift
        if scale is not None:
            v = v * scale
        e += 0.5 * (np.bincount(i, v, minlength=s.n) + np.bincount(j, v, minlength=s.n))
        return e


def colormap_rgba(values: np.ndarray, vmin: float, vmax: float, name: str = "viridis",
                  alpha: float = 1.0) -> np.ndarray:
    """(N, 4) float32 RGBA of values scaled into [vmin, vmax]."""
    from vispy.color import get_colormap

    span = vmax - vmin if vmax > vmin else 1.0
    x = np.clip((np.asarray(values, float) - vmin) / span, 0.0, 1.0)
    rgba = get_colormap(name).map(x.astype(np.float32)).astype(np.float32)
    rgba[:, 3] = alpha
    return rgba
