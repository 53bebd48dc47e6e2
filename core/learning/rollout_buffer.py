"""A comparison roll-out that fills while it is computed: ground truth and a
learned prediction from the same start, on one time axis.

:class:`RolloutBuffer` preallocates the full (T, N, d) arrays of both runs and
grows ``count["truth"]`` / ``count["prediction"]`` as chunks (Trajectory
objects continuing the run) come in; the first
``n_filled = min(count["truth"], count["prediction"])`` frames can be shown
at once. A roll-out read back from a file is the same class, already full
(:meth:`RolloutBuffer.from_trajectories`), so the project keeps one kind of
roll-out: :func:`core.files.project.save_project` writes the filled frames
(:attr:`RolloutBuffer.truth`, :attr:`RolloutBuffer.prediction`) and
:func:`~core.files.project.load_project` returns a buffer.

Measures come from :mod:`core.learning.metrics` on the filled part. Qt-free:
the studio owns a buffer on its GUI thread and the worker only sends chunks.
"""
from __future__ import annotations

import numpy as np

from core.errors import HGNError
from core.physics.system import System
from core.physics.trajectory import Trajectory

RUNS = ("truth", "prediction")


class RolloutBuffer:
    def __init__(self, system: System, dt: float, steps: int, save_every: int,
                 label: str = "prediction", model_name: str = "", zero_shot: bool = False,
                 with_prediction: bool = True):
        if steps < 0 or save_every < 1:
            raise HGNError("a roll-out needs steps >= 0 and save_every >= 1")
        self.system = system
        self.dt = float(dt)
        self.save_every = int(save_every)
        self.steps = int(steps)
        self.label = label
        self.model_name = model_name
        self.zero_shot = bool(zero_shot)
        self.with_prediction = bool(with_prediction)
        t_frames = self.steps // self.save_every + 1
        self.t = np.arange(t_frames) * self.dt * self.save_every
        n, d = system.n, system.dim
        self.q = {k: np.zeros((t_frames, n, d)) for k in RUNS}
        self.p = {k: np.zeros((t_frames, n, d)) for k in RUNS}
        self.kinetic = {k: np.full(t_frames, np.nan) for k in RUNS}
        self.potential = {k: np.full(t_frames, np.nan) for k in RUNS}
        self.momentum = {k: np.zeros((t_frames, d)) for k in RUNS}
        self.count = {"truth": 0, "prediction": 0}
        #: labels of the two runs' trajectories
        self.labels = {"truth": "ground truth", "prediction": label or "prediction"}
        self.finished = False
        #: warnings the learned roll-out raised (shown in the status bar)
        self.warnings: list[str] = []
        self._cache: dict = {}

    @classmethod
    def from_trajectories(cls, truth: Trajectory, prediction: Trajectory | None = None,
                          model_name: str = "", label: str = "", zero_shot: bool = False) -> RolloutBuffer:
        """A full (finished) buffer of a ground-truth trajectory and, optionally,
        a prediction on the same time axis (e.g. a roll-out read from a file)."""
        if not isinstance(truth, Trajectory):
            raise HGNError(f"the roll-out's ground truth must be a Trajectory, got {type(truth).__name__}")
        if prediction is not None:
            if not isinstance(prediction, Trajectory):
                raise HGNError("the roll-out prediction must be a Trajectory")
            if prediction.n_frames != truth.n_frames:
                raise HGNError(f"the roll-out's prediction ({prediction.n_frames} frames) and ground truth "
                               f"({truth.n_frames} frames) must share one time axis")
        buf = cls(truth.system, truth.dt, (truth.n_frames - 1) * truth.save_every, truth.save_every,
                  label=label or (prediction.label if prediction is not None else truth.label),
                  model_name=model_name, zero_shot=zero_shot, with_prediction=prediction is not None)
        buf.t = np.array(truth.t, dtype=float)
        buf.add("truth", truth)
        buf.labels["truth"] = truth.label
        if prediction is not None:
            buf.add("prediction", prediction)
            buf.labels["prediction"] = prediction.label
        buf.finished = True
        return buf

    # ------------------------------------------------------------------
    @property
    def n_frames(self) -> int:
        """Frames the finished roll-out will have."""
        return int(self.t.shape[0])

    @property
    def n_filled(self) -> int:
        """Frames available in both runs (or in the truth alone without a model)."""
        if not self.with_prediction:
            return self.count["truth"]
        return min(self.count["truth"], self.count["prediction"])

    def add(self, which: str, traj: Trajectory) -> None:
        """Append a chunk of frames (a Trajectory continuing the run)."""
        if which not in self.count:
            raise HGNError(f"unknown run {which!r}")
        k = self.count[which]
        if k and traj.n_frames and abs(traj.t[0] - self.t[k - 1]) < 0.5 * self.dt * self.save_every:
            k -= 1       # the chunk starts with the last frame shown (a roll-out's first chunk after set_initial)
        m = min(traj.n_frames, self.n_frames - k)
        if m <= 0:
            return
        self.q[which][k:k + m] = traj.q[:m]
        self.p[which][k:k + m] = traj.p[:m]
        self.kinetic[which][k:k + m] = traj.kinetic[:m]
        self.potential[which][k:k + m] = traj.potential[:m]
        self.momentum[which][k:k + m] = traj.momentum[:m]
        self.count[which] = k + m
        self._cache.clear()

    def set_initial(self, q0: np.ndarray, p0: np.ndarray, kinetic: float, potential: float) -> None:
        """Frame 0 is the same start for both runs: show it at once."""
        for which in RUNS:
            self.q[which][0] = q0
            self.p[which][0] = p0
            self.kinetic[which][0] = kinetic
            self.potential[which][0] = potential
            self.momentum[which][0] = np.sum(p0, axis=0)
            self.count[which] = max(self.count[which], 1)
        self._cache.clear()

    # ------------------------------------------------------------------
    def trajectory(self, which: str, n: int | None = None) -> Trajectory:
        """The filled part (or the first n frames) as a core Trajectory."""
        n = self.n_filled if n is None else n
        return Trajectory(system=self.system, t=self.t[:n], q=self.q[which][:n], p=self.p[which][:n],
                          kinetic=self.kinetic[which][:n], potential=self.potential[which][:n],
                          momentum=self.momentum[which][:n], dt=self.dt,
                          save_every=self.save_every, label=self.labels[which])

    @property
    def truth(self) -> Trajectory:
        """The ground truth's filled frames (what a project file stores)."""
        return self.trajectory("truth")

    @property
    def prediction(self) -> Trajectory | None:
        """The prediction's filled frames; None for a ground truth shown alone."""
        return self.trajectory("prediction") if self.with_prediction else None

    def total(self, which: str) -> np.ndarray:
        n = self.n_filled
        return self.kinetic[which][:n] + self.potential[which][:n]

    def drift(self, which: str) -> np.ndarray:
        """Relative energy drift (H(t) - H(0)) / |H(0)| of the filled part, by
        the one rule of :func:`core.physics.trajectory.energy_drift` (the
        kinetic energies set the scale when H(0) = 0, as for a Trajectory)."""
        from core.physics.trajectory import energy_drift

        key = ("drift", which, self.n_filled)
        if key not in self._cache:
            n = self.n_filled
            h = self.total(which)
            self._cache[key] = energy_drift(h, self.kinetic[which][:n]) if h.size else h
        return self._cache[key]

    def position_mse(self) -> np.ndarray:
        """Roll-out position MSE against ground truth per filled frame."""
        from core.learning.metrics import position_mse

        n = self.n_filled
        key = ("mse", n)
        if key not in self._cache:
            if n == 0 or not self.with_prediction:
                self._cache[key] = np.zeros(0)
            else:
                self._cache[key] = position_mse(self.q["truth"][:n], self.q["prediction"][:n], self.system.box)
        return self._cache[key]

    def measures(self) -> dict:
        """core.learning.metrics.rollout_measures of the filled part (needs >= 1 frame)."""
        from core.learning.metrics import rollout_measures

        return rollout_measures(self.trajectory("truth"), self.trajectory("prediction"))
