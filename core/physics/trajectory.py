"""Plain data objects that carry runs between core, the files and the studio.

* :class:`Trajectory`: one run (ground truth or a learned rollout) saved every
  ``save_every`` steps, with its energies and total momentum per saved step.
* :class:`Dataset`: what a fit consumes: snapshots (q, p) with exact time
  derivatives and energies, and the time series they came from, with a
  train/test split.

Arrays are float64 and shaped (T, N, d) for states, (T,) for energies and
(T, d) for total momentum.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.errors import HGNError
from .system import System

#: |H(0)| at or below this fraction of the run's energy scale counts as H(0) = 0 (see :func:`energy_drift`)
ZERO_ENERGY_RTOL = 1e-10


@dataclass(eq=False)
class Trajectory:
    system: System
    t: np.ndarray  # (T,)
    q: np.ndarray  # (T, N, d)
    p: np.ndarray  # (T, N, d)
    kinetic: np.ndarray  # (T,)
    potential: np.ndarray  # (T,)
    momentum: np.ndarray  # (T, d) total momentum
    dt: float  # integrator step
    save_every: int  # steps between saved frames
    label: str = "ground truth"
    meta: dict = field(default_factory=dict)

    @property
    def total(self) -> np.ndarray:
        return self.kinetic + self.potential

    @property
    def n_frames(self) -> int:
        return int(self.q.shape[0])

    def energy_drift(self) -> np.ndarray:
        """Relative energy drift per saved frame: :func:`energy_drift` of this run."""
        return energy_drift(self)

    @property
    def diverged(self) -> dict | None:
        """For a learned roll-out that blew up and was stopped
        (``core.learning.rollout``): ``{"step", "t", "reason", "frames"}``
        (where it was detected, the one-line reason, the frames kept), from
        ``meta["diverged"]`` (saved in the file's header); None otherwise."""
        d = self.meta.get("diverged") if isinstance(self.meta, dict) else None
        return d if isinstance(d, dict) else None


def energy_drift(energy, kinetic=None) -> np.ndarray:
    """Relative energy drift (H(t) - H(0)) / E_ref of a run, per frame.

    ``energy`` is a :class:`Trajectory` (its total energy K + V, and its
    kinetic energies) or a (T,) series of total energies; ``kinetic``
    optionally gives the (T,) kinetic energies of such a series.

    The one rule for E_ref, used by every drift core reports (trajectories,
    ``core.learning.metrics``, the CLI, the studio's roll-outs):

    * E_ref = |H(0)| when |H(0)| exceeds ``ZERO_ENERGY_RTOL`` times the run's
      energy scale, which is the mean |K(t)| when kinetic energies are known
      and the mean |H(t)| otherwise;
    * otherwise H(0) counts as zero and a drift relative to it would only
      amplify rounding, so E_ref = the energy scale: the drift is relative to
      the typical kinetic energy (or |H|) of the run;
    * when that scale is zero too (particles at rest), E_ref = 1: the drift
      is absolute.
    """
    if isinstance(energy, Trajectory):
        h = np.asarray(energy.total, dtype=np.float64)
        if kinetic is None:
            kinetic = energy.kinetic
    else:
        h = np.asarray(energy, dtype=np.float64)
    if h.ndim != 1 or h.size == 0:
        raise HGNError("an energy series must be a non-empty 1-D array")
    if kinetic is not None:
        k = np.asarray(kinetic, dtype=np.float64)
        if k.shape != h.shape:
            raise HGNError(f"kinetic energies have shape {k.shape}, expected {h.shape} like the total energies")
        scale = float(np.mean(np.abs(k)))
    else:
        scale = float(np.mean(np.abs(h)))
    h0 = h[0]
    if abs(h0) > ZERO_ENERGY_RTOL * scale:
        ref = abs(h0)
    else:
        ref = scale if scale > 0 else 1.0
    return (h - h0) / ref


@dataclass(eq=False)
class Dataset:
    system: System
    q: np.ndarray  # (S, N, d) snapshots
    p: np.ndarray  # (S, N, d)
    dqdt: np.ndarray  # (S, N, d) exact time derivatives
    dpdt: np.ndarray  # (S, N, d)
    energy: np.ndarray  # (S,) true H at each snapshot
    train: np.ndarray  # indices of training snapshots
    test: np.ndarray  # indices of held-out snapshots
    trajectories: list[Trajectory] = field(default_factory=list)  # the time series (may be empty)
    meta: dict = field(default_factory=dict)  # how it was generated

    @property
    def n_snapshots(self) -> int:
        return int(self.q.shape[0])

    def check_trainable(self, idx=None, where: str = "the training data") -> None:
        """HGNError when the snapshots ``idx`` (default: the training split)
        are degenerate: every momentum and every force is zero, so nothing
        moves and there is nothing to learn (a fit would return H = const and
        report a test error of 0). Seen with data drawn at zero displacement
        and zero momentum."""
        idx = self.train if idx is None else idx
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            raise HGNError(f"{where} hold no snapshots")
        if degenerate(self.p, self.dpdt, idx):
            raise HGNError(f"{where} are degenerate: all {idx.size} snapshots have zero momentum and zero force "
                           "(particles at rest in equilibrium, e.g. drawn with displacement 0 and momentum 0), "
                           "so there is no motion to learn; draw them with a displacement or momentum > 0")

    #: meta entries with one value per snapshot, taken along by :meth:`subset`
    PER_SNAPSHOT_META = ("time_of_snapshot",)

    def subset(self, idx) -> "Dataset":
        """The snapshots ``idx`` as a dataset of their own (all for training);
        per-snapshot meta (:data:`PER_SNAPSHOT_META`) follows them."""
        idx = np.asarray(idx)
        meta = dict(self.meta)
        for key in self.PER_SNAPSHOT_META:
            v = meta.get(key)
            if v is not None and np.ndim(v) >= 1 and len(v) == self.n_snapshots:
                meta[key] = np.asarray(v)[idx]
        return Dataset(self.system, self.q[idx], self.p[idx], self.dqdt[idx], self.dpdt[idx],
                       self.energy[idx], np.arange(len(idx)), np.zeros(0, dtype=np.int64), [], meta)


#: snapshots read at once by :func:`degenerate` (it stops at the first that moves, so data are not copied whole)
_DEGENERATE_CHUNK = 256


def degenerate(p, dpdt, idx=None) -> bool:
    """True when every momentum and every force (dp/dt) of the snapshots
    ``idx`` (default all) is exactly zero: snapshots of particles at rest in
    equilibrium, from which no dynamics can be learned (see
    :meth:`Dataset.check_trainable`). Reads chunks of snapshots and stops at
    the first that moves, so memory stays bounded in the number of snapshots."""
    idx = np.arange(len(p)) if idx is None else np.asarray(idx, dtype=np.int64).reshape(-1)
    for a in range(0, len(idx), _DEGENERATE_CHUNK):
        rows = idx[a:a + _DEGENERATE_CHUNK]
        if np.any(p[rows]) or np.any(dpdt[rows]):
            return False
    return True


def static_series(trajectories) -> bool:
    """True when no trajectory moves: every frame of every run equals its
    first and every momentum is zero (a time series with nothing to learn)."""
    for tr in trajectories:
        if np.any(tr.p) or np.any(tr.q != tr.q[:1]):
            return False
    return True
