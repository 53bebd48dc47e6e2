"""Initial conditions: displaced positions and random momenta, seeded.

Total momentum is always removed, so the centre of mass does not drift.
"""
from __future__ import annotations

import math

import numpy as np

from core import validate
from core.errors import HGNError
from .neighbours import wrap
from .system import System


def remove_total_momentum(p: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Subtract the centre-of-mass velocity: sum_i p_i = 0 afterwards.

    Works on (N, d) or batched (..., N, d) momenta.
    """
    m = masses[:, None]
    v_cm = p.sum(axis=-2, keepdims=True) / m.sum()
    return p - m * v_cm


def kinetic_temperature(p: np.ndarray, masses: np.ndarray) -> float:
    """k_B T from the kinetic energy with d(N - 1) degrees of freedom."""
    n, d = p.shape
    ke = 0.5 * np.sum(p * p / masses[:, None])
    dof = max(d * (n - 1), 1)
    return 2.0 * ke / dof


def initial_state(system: System, displacement: float = 0.1, momentum: float = 0.1,
                  temperature: float | None = None, seed: int | None = 0,
                  rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Random start (q0, p0) around the system's reference positions.

    ``displacement`` and ``momentum`` are standard deviations of Gaussian
    perturbations per coordinate. With ``temperature`` (k_B T in energy units)
    the momenta are drawn from the Maxwell-Boltzmann distribution instead and
    rescaled to that temperature exactly. Total momentum is removed.
    """
    if not isinstance(system, System):
        raise HGNError(f"initial_state needs a System, got {type(system).__name__}")
    displacement = validate.amplitude("displacement amplitude", displacement)
    momentum = validate.amplitude("momentum amplitude", momentum)
    if temperature is not None:
        temperature = validate.amplitude("temperature", temperature)
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise HGNError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    if rng is None:
        rng = np.random.default_rng(None if seed is None else validate.seed(seed))
    n, d = system.n, system.dim
    q = system.positions + displacement * rng.standard_normal((n, d))
    if system.box is not None:
        q = wrap(q, system.box)  # into [0, box); np.mod can return the box length itself
    m = system.masses
    if temperature is not None:
        p = rng.standard_normal((n, d)) * np.sqrt(m * temperature)[:, None]
        p = remove_total_momentum(p, m)
        if n > 1 and temperature > 0:
            t_now = kinetic_temperature(p, m)
            p *= math.sqrt(temperature / t_now) if t_now > 0 else 0.0
        elif temperature == 0:
            p[:] = 0.0
    else:
        p = momentum * rng.standard_normal((n, d))
        if n > 1:
            p = remove_total_momentum(p, m)
    return q, p
