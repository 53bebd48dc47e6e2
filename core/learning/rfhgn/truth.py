"""The true Hamiltonian of a system behind the same interface as a fitted model.

Rollout, metric and benchmark code can then treat ground truth and a learned
model alike (``energy``, ``gradients``, ``time_derivatives``, and for
separable Hamiltonians ``potential_gradient``/``kinetic_gradient``).

Shapes (the same as :class:`core.learning.rfhgn.model.FittedModel`): q and p are
(N, d) for one state or (S, N, d) for a batch; ``energy`` returns a 0-d array
for one state and (S,) for a batch; gradients have the shape of q.

Damping and forcing (a system's ``port``, :mod:`core.physics.port`) are not
part of H: ``energy`` and ``gradients`` are the conservative part's. The
system's dynamics include them, and so do this class's: ``time_derivatives``
adds -gamma p/m and F(t) (the time ``t`` is then needed for a driven system),
and a roll-out (:func:`core.learning.rollout.rollout`) uses the port of the
system it runs on (:meth:`TrueHamiltonian.port_for`), so that it is ground
truth's run (``core.physics.simulate``) step for step.
"""
from __future__ import annotations

import numpy as np

from core.errors import HGNError
from core.physics.forces import ForceField, kinetic_energy
from core.physics.neighbours import minimum_image
from core.physics.port import Port, port_of
from core.physics.system import System


class TrueHamiltonian:
    """H(q, p) = sum |p_i|^2/(2 m_i) + sum_pairs V(r_ij) of ``system``.

    Every method takes the system first (like a fitted model); ``None`` means
    the system given to the constructor. A different system of the same kind
    (another size) is evaluated with its own graph and potential.
    """

    separable = True

    def __init__(self, system: System):
        if not isinstance(system, System):
            raise HGNError(f"TrueHamiltonian needs a System, got {type(system).__name__}")
        self.system = system
        self._field_of: tuple[System, ForceField] | None = None

    # ------------------------------------------------------------------
    def _sys(self, system):
        return self.system if system is None else system

    def _field(self, s: System) -> ForceField:
        """The force field of ``s``, kept for the next call on the same system (building one costs as much as
        an evaluation: 0.48 against 0.52 ms on a 20^3 lattice; a cutoff system's neighbour list, which
        rebuilds itself when the particles have moved beyond its skin, is kept with it)."""
        if self._field_of is None or self._field_of[0] is not s:
            self._field_of = (s, ForceField(s))
        return self._field_of[1]

    @staticmethod
    def _check(system: System, x: np.ndarray, name: str) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim not in (2, 3) or x.shape[-2:] != (system.n, system.dim):
            raise HGNError(f"{name} must have shape (N, d) = ({system.n}, {system.dim}) or (S, N, d), got {x.shape}")
        return x

    def potential_energy(self, system: System | None, q) -> np.ndarray:
        s = self._sys(system)
        q = self._check(s, q, "q")
        if q.ndim == 2:
            return np.array(self._field(s).energy(q))
        field = self._field(s)
        return np.array([field.energy(qs) for qs in q])

    def energy(self, system: System | None, q, p) -> np.ndarray:
        s = self._sys(system)
        p = self._check(s, p, "p")
        return kinetic_energy(p, s.masses) + self.potential_energy(s, q)

    def potential_gradient(self, system: System | None, q, pairs=None) -> np.ndarray:
        """dV/dq (= minus the forces). ``pairs`` (optional, cutoff systems):
        candidate pairs (P, 2), e.g. from a neighbour list; pairs farther
        apart than the cutoff are ignored."""
        s = self._sys(system)
        q = self._check(s, q, "q")
        if q.ndim == 3:
            return np.stack([self.potential_gradient(s, qs, pairs) for qs in q])
        if pairs is None or s.edges is not None:
            return -self._field(s).forces(q)
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        i, j = pairs[:, 0], pairs[:, 1]
        dq = minimum_image(q[i] - q[j], s.box)
        r = np.sqrt(np.einsum("ij,ij->i", dq, dq))
        keep = r < s.cutoff
        i, j, dq, r = i[keep], j[keep], dq[keep], r[keep]
        g = s.potential.dvdr(r)
        fvec = (g / r)[:, None] * dq  # dV/dq_i of pair (i, j)
        out = np.empty_like(q)
        for k in range(s.dim):
            out[:, k] = np.bincount(i, fvec[:, k], minlength=s.n) - np.bincount(j, fvec[:, k], minlength=s.n)
        return out

    def kinetic_gradient(self, system: System | None, p) -> np.ndarray:
        """dT/dp = p / m."""
        s = self._sys(system)
        p = self._check(s, p, "p")
        return p / s.masses[:, None]

    def gradients(self, system: System | None, q, p) -> tuple[np.ndarray, np.ndarray]:
        """(dH/dq, dH/dp), each the shape of q."""
        return self.potential_gradient(system, q), self.kinetic_gradient(system, p)

    def port_for(self, system: System | None) -> Port | None:
        """The damping and forcing of the true dynamics on ``system``: its own port (None when it has none
        or an inactive one). :func:`core.learning.rollout.rollout` rolls out with it."""
        return port_of(self._sys(system))

    def time_derivatives(self, system: System | None, q, p, t=None) -> tuple[np.ndarray, np.ndarray]:
        """(dq/dt, dp/dt) = (dH/dp, -dH/dq - gamma p/m + F(t)): the system's true dynamics, with its damping and
        forcing when it has a port. ``t``: the time (a number for one state, one per state (S,) or a number for
        a batch), needed for a driven system (HGNError without it); unused otherwise."""
        s = self._sys(system)
        gq, gp = self.gradients(s, q, p)
        port = self.port_for(s)
        if port is None:
            return gp, -gq
        terms = port.terms(s.masses, s.dim)
        p = self._check(s, p, "p")
        dp = -gq - (terms.gamma / s.masses)[:, None] * p
        if terms.forced:
            if t is None:
                raise HGNError(f"{s.name or 'this system'} is driven ({port.describe()}): its time derivatives "
                               "depend on the time; pass t (a number, or one per state)")
            t = np.asarray(t, dtype=np.float64)
            if p.ndim == 2:
                if t.size != 1:
                    raise HGNError(f"t must be one number for one state, got shape {t.shape}")
                dp = dp + terms.external(float(t.reshape(())))
            else:
                t = np.broadcast_to(t.reshape(-1), (p.shape[0],)) if t.size == 1 else t.reshape(-1)
                if t.shape != (p.shape[0],):
                    raise HGNError(f"t must be a number or one per state ({p.shape[0]}), got shape {t.shape}")
                dp = dp + terms.external_series(t)
        return gp, dp
