"""Energies and forces of a system: H(q, p) = sum |p|^2/2m + sum_edges V(r).

For fixed graphs the sum runs over ``system.edges`` (each scaled by
``edge_scale`` when given). For cutoff systems it runs over all pairs closer
than the cutoff, with V truncated and shifted so that it is continuous there:
V_c(r) = V(r) - V(r_c) for r < r_c, else 0. Periodic boxes use the minimum
image convention.
"""
from __future__ import annotations

import numpy as np

from .neighbours import NeighbourList, minimum_image, pairs_within
from .system import System


def kinetic_energy(p: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """sum_i |p_i|^2 / (2 m_i); works on (N, d) and batched (..., N, d)."""
    return 0.5 * np.sum(p * p / masses[:, None], axis=(-2, -1))


class ForceField:
    """Evaluates V(q) and F(q) = -dV/dq of one system, reusing a neighbour
    list between calls for cutoff systems (so it is meant for one trajectory
    at a time; make another for an unrelated configuration)."""

    def __init__(self, system: System, skin: float = 0.3):
        self.system = system
        self.potential = system.potential
        self.box = system.box
        self.n = system.n
        if system.edges is not None:
            self.cutoff = None
            self._nlist = None
            self._v_shift = 0.0
        else:
            self.cutoff = float(system.cutoff)
            self._nlist = NeighbourList(self.cutoff, skin, system.box)
            self._v_shift = float(self.potential.energy(np.array(self.cutoff)))

    # ------------------------------------------------------------------
    def active_pairs(self, q: np.ndarray, fresh: bool = False):
        """(i, j, dq, r, scale) of the interacting pairs at positions q,
        dq = q_i - q_j (minimum image)."""
        s = self.system
        if s.edges is not None:
            i, j = s.edges[:, 0], s.edges[:, 1]
            scale = s.edge_scale
            dq = minimum_image(q[i] - q[j], self.box)
            r = np.sqrt(np.einsum("ij,ij->i", dq, dq))
            return i, j, dq, r, scale
        cand = pairs_within(q, self.cutoff, self.box) if fresh else self._nlist.pairs(q)
        i, j = cand[:, 0], cand[:, 1]
        dq = minimum_image(q[i] - q[j], self.box)
        r = np.sqrt(np.einsum("ij,ij->i", dq, dq))
        keep = r < self.cutoff
        return i[keep], j[keep], dq[keep], r[keep], None

    def energy(self, q: np.ndarray) -> float:
        _, _, _, r, scale = self.active_pairs(q)
        v = self.potential.energy(r) - self._v_shift
        if scale is not None:
            v = v * scale
        return float(np.sum(v))

    def energy_forces(self, q: np.ndarray) -> tuple[float, np.ndarray]:
        i, j, dq, r, scale = self.active_pairs(q)
        v = self.potential.energy(r) - self._v_shift
        g = self.potential.dvdr(r)
        if scale is not None:
            v = v * scale
            g = g * scale
        # force on i from pair (i, j): -dV/dr * (q_i - q_j) / r
        fvec = (-g / r)[:, None] * dq
        n, d = self.n, q.shape[1]
        f = np.empty((n, d))
        for k in range(d):
            f[:, k] = np.bincount(i, fvec[:, k], minlength=n) - np.bincount(j, fvec[:, k], minlength=n)
        return float(np.sum(v)), f

    def forces(self, q: np.ndarray) -> np.ndarray:
        return self.energy_forces(q)[1]


def potential_energy(system: System, q: np.ndarray) -> np.ndarray:
    """V for one (N, d) configuration or a batch (S, N, d)."""
    ff = ForceField(system)
    if q.ndim == 2:
        return np.array(ff.energy(q))
    return np.array([ForceField(system).energy(qs) for qs in q])


def hamiltonian(system: System, q: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Total energy for one configuration or a batch."""
    return kinetic_energy(p, system.masses) + potential_energy(system, q)


def derivatives(system: System, q: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact time derivatives (dq/dt, dp/dt) = (p/m, F(q)), one state or a batch."""
    dqdt = p / system.masses[:, None]
    if q.ndim == 2:
        return dqdt, ForceField(system).forces(q)
    dpdt = np.stack([ForceField(system).forces(qs) for qs in q])
    return dqdt, dpdt
