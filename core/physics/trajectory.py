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

from .system import System


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
        """(H(t) - H(0)) / |H(0)| per saved frame (relative to |H(0)|, or to
        the mean kinetic energy when H(0) is zero)."""
        h = self.total
        ref = abs(h[0]) if h[0] != 0 else max(float(np.mean(np.abs(self.kinetic))), 1e-300)
        return (h - h[0]) / ref


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

    def subset(self, idx) -> "Dataset":
        idx = np.asarray(idx)
        return Dataset(self.system, self.q[idx], self.p[idx], self.dqdt[idx], self.dpdt[idx],
                       self.energy[idx], np.arange(len(idx)), np.zeros(0, dtype=np.int64), [], dict(self.meta))
