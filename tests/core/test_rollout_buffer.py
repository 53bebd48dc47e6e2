"""core.learning.rollout_buffer: the roll-out that fills while it is computed
measures energy drift by the one rule of core.physics.trajectory.energy_drift."""
import numpy as np

from core.learning.rollout_buffer import RolloutBuffer
from core.physics import builders
from core.physics.trajectory import Trajectory


def _trajectory(system, kinetic, potential):
    t = len(kinetic)
    q = np.zeros((t, system.n, system.dim))
    return Trajectory(system, np.arange(t) * 0.1, q, q.copy(), np.asarray(kinetic, float),
                      np.asarray(potential, float), np.zeros((t, system.dim)), 0.1, 1)


def test_buffer_drift_is_the_trajectory_drift_also_when_h0_is_zero():
    system = builders.chain(3)
    # H(0) = 0 exactly: the kinetic energies set the scale (mean K = 2.0)
    traj = _trajectory(system, [1.0, 2.0, 3.0], [-1.0, -1.9, -3.2])
    buf = RolloutBuffer(system, 0.1, 2, 1, with_prediction=False)
    buf.add("truth", traj)
    drift = buf.drift("truth")
    assert np.allclose(drift, traj.energy_drift())
    assert np.allclose(drift, np.array([0.0, 0.1, -0.2]) / 2.0)


def test_buffer_drift_relative_to_h0():
    system = builders.chain(3)
    traj = _trajectory(system, [1.0, 1.5, 0.5], [1.0, 0.6, 1.6])
    buf = RolloutBuffer(system, 0.1, 2, 1, with_prediction=False)
    buf.add("truth", traj)
    assert np.allclose(buf.drift("truth"), [0.0, 0.05, 0.05])
