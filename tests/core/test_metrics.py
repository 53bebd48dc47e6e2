"""The measures of docs/method.md section 8 against values worked out by hand."""
import math

import numpy as np
import pytest

from core.learning import metrics
from core.physics.builders import chain, molecular
from core.errors import HGNError
from core.physics.trajectory import Dataset, Trajectory


def _traj(system, q, energies=None, t=None):
    q = np.asarray(q, dtype=float)
    T = q.shape[0]
    e = np.zeros(T) if energies is None else np.asarray(energies, dtype=float)
    return Trajectory(system=system, t=np.arange(T, dtype=float) if t is None else np.asarray(t, float),
                      q=q, p=np.zeros_like(q), kinetic=np.zeros(T), potential=e,
                      momentum=np.zeros((T, q.shape[2])), dt=1.0, save_every=1)


def test_derivative_mse_by_hand():
    # two entries per half; errors dq: (1, 0), dp: (0, 2) -> (1 + 4) / 4
    got = metrics.derivative_mse_arrays([[1.0, 0.0]], [[0.0, 2.0]], [[0.0, 0.0]], [[0.0, 0.0]])
    assert got == pytest.approx(5.0 / 4.0)


def test_derivative_mse_of_a_model_uses_the_test_split():
    sys2 = chain(2, dim=2)
    rng = np.random.default_rng(1)
    S = 5
    q = rng.standard_normal((S, 2, 2))
    p = rng.standard_normal((S, 2, 2))
    ds = Dataset(sys2, q, p, dqdt=p.copy(), dpdt=np.zeros_like(q), energy=np.zeros(S),
                 train=np.array([0, 1, 2]), test=np.array([3, 4]))

    class Off:  # predicts dq/dt exactly and dp/dt = 1 everywhere
        def time_derivatives(self, system, q, p):
            return p.copy(), np.ones_like(q)

    # test split: 2 snapshots x 4 entries of dp/dt wrong by 1 -> 8 / (2 * 8)
    assert metrics.derivative_mse(Off(), ds) == pytest.approx(0.5)
    # a perfect model has zero error
    class Perfect:
        def time_derivatives(self, system, q, p):
            return p.copy(), np.zeros_like(q)
    assert metrics.derivative_mse(Perfect(), ds) == 0.0
    # batching does not change the result
    assert metrics.derivative_mse(Off(), ds, indices=np.arange(5), batch=2) == pytest.approx(0.5)


def test_derivative_mse_without_test_snapshots_is_an_error():
    sys2 = chain(2, dim=2)
    z = np.zeros((1, 2, 2))
    ds = Dataset(sys2, z, z, z, z, np.zeros(1), np.array([0]), np.zeros(0, dtype=np.int64))
    with pytest.raises(HGNError, match="held-out"):
        metrics.derivative_mse(None, ds)


def test_position_mse_and_zerr_by_hand():
    s = chain(2, dim=2)
    q = np.array([[[0.0, 0.0], [1.0, 0.0]],
                  [[0.0, 0.0], [3.0, 0.0]]])
    qh = q.copy()
    qh[1, 0] = [0.0, 4.0]  # second frame: particle 0 is off by (0, 4)
    truth, pred = _traj(s, q), _traj(s, qh)
    mse = metrics.position_mse(truth, pred)
    np.testing.assert_allclose(mse, [0.0, 16.0 / 4.0])
    z = metrics.zerr(truth, pred)
    # |dq| = 4, |q_hat| = sqrt(16 + 9) = 5, |q| = 3 -> 4 / 8
    np.testing.assert_allclose(z, [0.0, 0.5])


def test_zerr_of_all_zero_states_is_zero_not_nan():
    z = metrics.zerr(np.zeros((3, 2, 2)), np.zeros((3, 2, 2)))
    assert np.all(z == 0.0)


def test_periodic_differences_use_minimum_image():
    s = molecular(8, density=0.05, dim=2, cutoff=2.5, periodic=True)
    L = s.box[0]
    q = s.positions[None].copy()
    qh = q.copy()
    qh[0, 0, 0] += L + 0.1  # one box length plus 0.1 away: really 0.1 away
    mse = metrics.position_mse(_traj(s, q), _traj(s, qh))
    assert mse[0] == pytest.approx(0.01 / 16)
    # without a box, the same difference counts in full
    assert metrics.position_mse(q, qh)[0] == pytest.approx((L + 0.1) ** 2 / 16)


def test_herr_and_drift_by_hand():
    s = chain(2, dim=2)
    q = np.zeros((3, 2, 2))
    truth = _traj(s, q, energies=[2.0, 2.0, 2.0])
    pred = _traj(s, q, energies=[2.0, 3.0, 1.0])
    np.testing.assert_allclose(metrics.herr(truth, pred), [0.0, 1 / 5, 1 / 3])
    np.testing.assert_allclose(metrics.energy_drift(pred), [0.0, 0.5, -0.5])
    np.testing.assert_allclose(metrics.energy_drift(np.array([-4.0, -2.0])), [0.0, 0.5])


def _energies(system, kinetic, potential):
    T = len(kinetic)
    q = np.zeros((T, system.n, system.dim))
    return Trajectory(system=system, t=np.arange(T, dtype=float), q=q, p=np.zeros_like(q),
                      kinetic=np.asarray(kinetic, float), potential=np.asarray(potential, float),
                      momentum=np.zeros((T, system.dim)), dt=1.0, save_every=1)


def test_energy_drift_when_h0_is_zero_is_relative_to_the_kinetic_scale():
    """H(0) = 0 (kinetic and potential cancel): the drift is taken relative to the
    mean kinetic energy, the same by every route (Trajectory method, metrics, physics)."""
    from core.physics.trajectory import energy_drift

    s = chain(2, dim=2)
    tr = _energies(s, kinetic=[1.0, 1.5, 0.5], potential=[-1.0, -1.49, -0.52])  # H = 0, 0.01, -0.02
    expected = [0.0, 0.01, -0.02]                                                 # mean K = 1
    np.testing.assert_allclose(tr.energy_drift(), expected, atol=1e-15)
    np.testing.assert_allclose(metrics.energy_drift(tr), expected, atol=1e-15)
    np.testing.assert_allclose(energy_drift(tr.total, tr.kinetic), expected, atol=1e-15)
    assert metrics.energy_drift is energy_drift
    # with twice the kinetic scale, half the drift
    np.testing.assert_allclose(energy_drift(tr.total, 2 * tr.kinetic), [0.0, 0.005, -0.01], atol=1e-15)


def test_energy_drift_counts_a_rounding_sized_h0_as_zero():
    """|H(0)| of 1e-14 against kinetic energies of order 1 would turn a drift of 0.01 into 1e12."""
    s = chain(2, dim=2)
    tr = _energies(s, kinetic=[1.0, 1.0], potential=[-1.0 + 1e-14, -0.99])
    d = tr.energy_drift()
    assert d[1] == pytest.approx(0.01, rel=1e-9)
    # just above the threshold, H(0) is an energy like any other: relative to |H(0)|
    tr = _energies(s, kinetic=[1.0, 1.0], potential=[-1.0 + 1e-6, -0.99])
    assert tr.energy_drift()[1] == pytest.approx((0.01 - 1e-6) / 1e-6, rel=1e-6)


def test_energy_drift_of_a_series_without_kinetic_energies_and_at_rest():
    # a bare series with H(0) = 0: relative to the mean |H| (here 4/3)
    np.testing.assert_allclose(metrics.energy_drift(np.array([0.0, 2.0, -2.0])), [0.0, 1.5, -1.5])
    # everything zero (particles at rest, no potential energy): absolute drift, finite
    s = chain(2, dim=2)
    d = _energies(s, kinetic=[0.0, 0.0, 0.0], potential=[0.0, 0.0, 1e-3]).energy_drift()
    np.testing.assert_allclose(d, [0.0, 0.0, 1e-3])
    with pytest.raises(HGNError, match="non-empty 1-D"):
        metrics.energy_drift(np.zeros(0))
    with pytest.raises(HGNError, match="kinetic energies have shape"):
        metrics.energy_drift(np.zeros(3), np.zeros(2))


def test_geometric_mean_by_hand():
    g = metrics.geometric_mean([[1e-2, 1.0], [1e-4, 4.0]])
    np.testing.assert_allclose(g, [1e-3, 2.0])
    # an exact rollout does not make the mean NaN
    assert np.isfinite(metrics.geometric_mean([[0.0], [1.0]])).all()
    with pytest.raises(HGNError):
        metrics.geometric_mean([[-1.0]])


def test_drift_trend_tells_trend_from_oscillation():
    t = np.linspace(0, 100, 1001)
    osc = 1.0 + 1e-3 * np.sin(t)
    trend = 1.0 + 1e-4 * t
    a = metrics.drift_trend(osc, t)
    b = metrics.drift_trend(trend, t)
    assert abs(a["trend_over_run"]) < 0.2 * a["amplitude"]
    assert b["trend_over_run"] == pytest.approx(1e-2, rel=1e-6)
    assert b["slope"] == pytest.approx(1e-4, rel=1e-6)


def test_rollout_measures_summary_matches_parts():
    s = chain(3, dim=2)
    rng = np.random.default_rng(0)
    q = rng.standard_normal((4, 3, 2))
    qh = q + 0.01 * rng.standard_normal(q.shape)
    truth = _traj(s, q, energies=[1.0, 1.1, 0.9, 1.0])
    pred = _traj(s, qh, energies=[1.0, 1.0, 1.2, 1.3])
    m = metrics.rollout_measures(truth, pred)
    assert m["final_position_mse"] == pytest.approx(np.mean((qh[-1] - q[-1]) ** 2))
    assert m["final_herr"] == pytest.approx(0.3 / 2.3)
    assert m["max_abs_drift_prediction"] == pytest.approx(0.3)
    assert len(m["zerr"]) == 4
    bad = _traj(s, q[:3])
    with pytest.raises(HGNError, match="frames"):
        metrics.rollout_measures(truth, bad)


def test_shape_mismatch_is_a_user_error():
    with pytest.raises(HGNError, match="shape"):
        metrics.position_mse(np.zeros((2, 3, 2)), np.zeros((2, 4, 2)))
    with pytest.raises(HGNError, match="shape"):
        metrics.derivative_mse_arrays(np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((2, 3)), np.zeros((2, 2)))


def test_relative_error_elementwise():
    np.testing.assert_allclose(metrics.relative_error([1.0, 0.0, -1.0], [3.0, 0.0, 1.0]), [0.5, 0.0, 1.0])
    assert math.isclose(float(metrics.relative_error(np.array([[3.0, 4.0]]), np.array([[0.0, 0.0]]))[0]), 1.0)
