"""Energies and forces of a system: H(q, p) = sum |p|^2/2m + sum_edges V(r).

For fixed graphs the sum runs over ``system.edges`` (each scaled by
``edge_scale`` when given). For cutoff systems it runs over all pairs closer
than the cutoff, with V truncated and shifted so that it is continuous there:
V_c(r) = V(r) - V(r_c) for r < r_c, else 0. Periodic boxes use the minimum
image convention, so positions may be passed unwrapped (the integrators keep
them unwrapped; see ``core.physics.integrators``).

How the hot path is organised (``ForceField.energy_forces``, called once per
time step): the interacting pairs are held as a sparse signed incidence
matrix D (one row per pair, +1 at i and -1 at j), so the pair displacements
are one sparse product ``dq = D @ q`` and the forces are one more,
``F = D^T @ (c * dq)`` with ``c = -V'(r)/r``. For fixed graphs D is built
once. For cutoff systems D is rebuilt only when the Verlet neighbour list is
(candidate pairs within cutoff + skin), and for a periodic box the periodic
image of each candidate pair is fixed at that moment, which is exact between
rebuilds because cutoff + skin < half the box (see ``_set_pairs``). Candidate
pairs beyond the cutoff contribute exact zeros, so results do not depend on
when the list was last rebuilt (time reversibility holds to round-off).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

try:  # the C kernel behind ``csr_matrix @ dense``; calling it directly skips
    # ~10 us of Python dispatch per product (a quarter of a small lattice step)
    from scipy.sparse._sparsetools import csr_matvecs as _csr_matvecs
except ImportError:  # pragma: no cover - private SciPy API; fall back to the operator
    _csr_matvecs = None

from .neighbours import NeighbourList, minimum_image, pairs_within
from .system import System

#: default neighbour-list skin (length units) for cutoff systems
DEFAULT_SKIN = 0.3


def kinetic_energy(p: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """sum_i |p_i|^2 / (2 m_i); works on (N, d) and batched (..., N, d)."""
    return 0.5 * np.sum(p * p / masses[:, None], axis=(-2, -1))


def _incidence(i: np.ndarray, j: np.ndarray, n: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Signed incidence matrix D (P x n): row k has +1 at i[k] and -1 at j[k];
    returned with its transpose, both in CSR form for fast products."""
    p = len(i)
    indices = np.empty(2 * p, dtype=np.int64)
    indices[0::2] = i
    indices[1::2] = j
    data = np.empty(2 * p)
    data[0::2] = 1.0
    data[1::2] = -1.0
    indptr = np.arange(0, 2 * p + 1, 2, dtype=np.int64)
    d = sp.csr_matrix((data, indices, indptr), shape=(p, n))
    return d, d.T.tocsr()


def _spmm(a: sp.csr_matrix, x: np.ndarray) -> np.ndarray:
    """a @ x for a CSR matrix and a C-contiguous float64 (n, k) array."""
    if _csr_matvecs is None:
        return a @ x
    out = np.zeros((a.shape[0], x.shape[1]))
    _csr_matvecs(a.shape[0], a.shape[1], x.shape[1], a.indptr, a.indices, a.data, x.ravel(), out.ravel())
    return out


def _check_spmm() -> None:
    """Disable the direct kernel if it does not agree with SciPy's operator."""
    global _csr_matvecs
    if _csr_matvecs is None:
        return
    a = sp.csr_matrix(np.array([[1.0, -1.0, 0.0], [0.0, 2.0, 3.0]]))
    x = np.arange(6.0).reshape(3, 2)
    try:
        ok = np.array_equal(_spmm(a, x), a @ x)
    except Exception:  # noqa: BLE001 - any failure means: do not use it
        ok = False
    if not ok:
        _csr_matvecs = None


_check_spmm()


class ForceField:
    """Evaluates V(q) and F(q) = -dV/dq of one system, reusing a neighbour
    list between calls for cutoff systems. It is meant for one trajectory at
    a time; unrelated configurations are still handled correctly (the list is
    rebuilt whenever a particle moved more than skin/2 since the last build),
    only less efficiently."""

    def __init__(self, system: System, skin: float = DEFAULT_SKIN):
        self.system = system
        self.potential = system.potential
        self.box = system.box
        self.n = system.n
        self.n_evaluations = 0
        if system.edges is not None:
            self.cutoff = None
            self._nlist = None
            self._v_shift = 0.0
            self._scale = system.edge_scale
            self._set_pairs(system.edges[:, 0], system.edges[:, 1], None)
        else:
            self.cutoff = float(system.cutoff)
            self._nlist = NeighbourList(self.cutoff, skin, system.box)
            self._v_shift = float(self.potential.energy(np.array(self.cutoff)))
            self._scale = None
            self._built = -1  # n_builds of the neighbour list that D belongs to

    @property
    def neighbour_builds(self) -> int:
        """How often the neighbour list was (re)built (0 for fixed graphs)."""
        return 0 if self._nlist is None else self._nlist.n_builds

    # ------------------------------------------------------------------
    def _set_pairs(self, i: np.ndarray, j: np.ndarray, image: np.ndarray | None) -> None:
        self._i, self._j = i, j
        self._D, self._DT = _incidence(i, j, self.n)
        self._image = image

    def _refresh(self, q: np.ndarray) -> None:
        """Cutoff systems: bring D up to date with the neighbour list.

        With a periodic box the image offset of each candidate pair,
        box * round((q_i - q_j) / box), is fixed at build time. Between
        rebuilds every particle moves less than skin/2, so a pair's fixed-image
        displacement changes by less than skin. A pair now closer than the
        cutoff (minimum image) was within cutoff + skin at the build, so it is
        in the list; if its fixed image were not the minimum image, the two
        would differ by a box vector, making the fixed-image distance at least
        L_min - cutoff > cutoff + 2 skin (as cutoff + skin < L_min / 2): so
        every pair with fixed-image distance below the cutoff is exactly a
        minimum-image pair, and no such pair is missed.
        """
        cand = self._nlist.pairs(q)
        if self._nlist.n_builds != self._built:
            i, j = cand[:, 0], cand[:, 1]
            image = None
            if self.box is not None:
                image = self.box * np.round((q[i] - q[j]) / self.box)
            self._set_pairs(i, j, image)
            self._built = self._nlist.n_builds

    def _pair_vectors(self, q: np.ndarray) -> np.ndarray:
        dq = _spmm(self._D, q)
        if self._image is not None:
            dq -= self._image
        elif self.box is not None:  # fixed graph in a periodic box
            dq = minimum_image(dq, self.box)
        return dq

    # ------------------------------------------------------------------
    def active_pairs(self, q: np.ndarray, fresh: bool = False):
        """(i, j, dq, r, scale) of the interacting pairs at positions q,
        dq = q_i - q_j (minimum image)."""
        q = np.ascontiguousarray(q, dtype=np.float64)
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

    def _terms(self, q: np.ndarray, want_forces: bool):
        q = np.ascontiguousarray(q, dtype=np.float64)
        if self._nlist is not None:
            self._refresh(q)
        self.n_evaluations += 1
        dq = self._pair_vectors(q)
        r2 = np.einsum("ij,ij->i", dq, dq)
        if self.cutoff is not None:
            inside = r2 < self.cutoff * self.cutoff
            # pairs beyond the cutoff are evaluated at the cutoff (finite, and
            # then zeroed), so no potential sees an out-of-range distance
            r = np.sqrt(np.where(inside, r2, self.cutoff * self.cutoff))
            v = np.where(inside, self.potential.energy(r) - self._v_shift, 0.0)
        else:
            inside = None
            r = np.sqrt(r2)
            v = self.potential.energy(r)
        if self._scale is not None:
            v = v * self._scale
        energy = float(v.sum())
        if not want_forces:
            return energy, None
        c = self.potential.dvdr(r)
        c /= r
        np.negative(c, out=c)
        if inside is not None:
            c = np.where(inside, c, 0.0)
        if self._scale is not None:
            c *= self._scale
        dq *= c[:, None]
        return energy, _spmm(self._DT, dq)

    def energy(self, q: np.ndarray) -> float:
        return self._terms(q, False)[0]

    def energy_forces(self, q: np.ndarray) -> tuple[float, np.ndarray]:
        """(V, F) at positions q (N, d); F is a new (N, d) float64 array."""
        return self._terms(q, True)

    def forces(self, q: np.ndarray) -> np.ndarray:
        return self.energy_forces(q)[1]


def potential_energy(system: System, q: np.ndarray) -> np.ndarray:
    """V for one (N, d) configuration or a batch (S, N, d)."""
    ff = ForceField(system)
    if q.ndim == 2:
        return np.array(ff.energy(q))
    return np.array([ff.energy(qs) for qs in q])


def hamiltonian(system: System, q: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Total energy for one configuration or a batch."""
    return kinetic_energy(p, system.masses) + potential_energy(system, q)


def derivatives(system: System, q: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact time derivatives (dq/dt, dp/dt) = (p/m, F(q)), one state or a batch."""
    dqdt = p / system.masses[:, None]
    ff = ForceField(system)
    if q.ndim == 2:
        return dqdt, ff.forces(q)
    dpdt = np.stack([ff.forces(qs) for qs in q]) if len(q) else np.zeros_like(q)
    return dqdt, dpdt
