"""The measures of docs/method.md section 8: how good a learned Hamiltonian is.

* :func:`derivative_mse` -- the paper's "test MSE": mean squared error of the
  predicted time derivatives (dq/dt, dp/dt) against the exact ones on held-out
  snapshots. The mean runs over every snapshot, particle, coordinate and both
  halves (dq/dt and dp/dt), i.e. over 2 S N d numbers.
* :func:`position_mse` -- rollout error: mean over particles and coordinates of
  (q_hat - q)^2 at every saved step, shape (T,).
* :func:`zerr` -- relative state error Zerr(t) = |q_hat - q| / (|q_hat| + |q|),
  the norm running over all particles and coordinates, shape (T,).
* :func:`herr` -- the same relative form for the TRUE energy along the
  predicted rollout against the true energy along the ground truth.
* :func:`energy_drift` -- (H(t) - H(0)) / |H(0)| of one rollout (the one
  implementation, :func:`core.physics.trajectory.energy_drift`, with its rule
  for H(0) = 0).
* :func:`geometric_mean` -- combine Zerr(t) (or Herr(t)) of several rollouts
  (the paper averages relative errors geometrically over rollouts).
* :func:`drift_trend` -- a least-squares slope of the energy drift, to tell a
  bounded oscillation from a trend.
* :func:`rollout_measures` -- all of the rollout measures for one
  (truth, prediction) pair as a JSON-able dict.

Periodic systems: a predicted and a true particle that sit a whole box length
apart are at the same place, so position *differences* (in position_mse, the
numerator of Zerr) use the minimum-image convention when the system has a box.
The norms |q_hat| and |q| in the denominator of Zerr are taken of the
positions as stored (relative to the box origin); they only set the scale.

Relative errors with both terms zero (0 / 0) are defined as 0. Geometric means
floor each error at ``GEOMETRIC_FLOOR`` so that an exact (zero) error of one
rollout does not turn the mean over all of them into zero.
"""
from __future__ import annotations

import numpy as np

from core.errors import HGNError
from core.physics.neighbours import minimum_image
from core.physics.trajectory import Dataset, Trajectory, energy_drift  # noqa: F401  (one drift rule, re-exported)

#: smallest error entering a geometric mean (keeps log(0) out)
GEOMETRIC_FLOOR = 1e-300


# ---------------------------------------------------------------------------
# derivative error on snapshots
# ---------------------------------------------------------------------------
def derivative_mse_arrays(pred_dqdt, pred_dpdt, true_dqdt, true_dpdt) -> float:
    """Mean of the squared errors over both halves (dq/dt and dp/dt) and every
    entry: sum(|dq_hat - dq|^2 + |dp_hat - dp|^2) / (2 * size)."""
    a = [np.asarray(x, dtype=np.float64) for x in (pred_dqdt, pred_dpdt, true_dqdt, true_dpdt)]
    if not (a[0].shape == a[1].shape == a[2].shape == a[3].shape):
        raise HGNError(f"derivative arrays differ in shape: {[x.shape for x in a]}")
    if a[0].size == 0:
        raise HGNError("no snapshots to measure the derivative error on")
    err = np.sum((a[0] - a[2]) ** 2) + np.sum((a[1] - a[3]) ** 2)
    return float(err / (2 * a[0].size))


def derivative_mse(model, dataset: Dataset, indices=None, batch: int = 256) -> float:
    """Test MSE of ``model.time_derivatives`` on the dataset's held-out
    snapshots (``dataset.test``; pass ``indices`` to choose others, e.g.
    ``dataset.train`` for the training error). Evaluated ``batch`` snapshots at
    a time so memory stays bounded."""
    idx = np.asarray(dataset.test if indices is None else indices, dtype=np.int64).ravel()
    if idx.size == 0:
        raise HGNError("the dataset has no held-out (test) snapshots to measure the derivative error on")
    if idx.min() < 0 or idx.max() >= dataset.n_snapshots:
        raise HGNError(f"snapshot indices out of range (dataset has {dataset.n_snapshots} snapshots)")
    total, count = 0.0, 0
    for start in range(0, idx.size, batch):
        b = idx[start:start + batch]
        dq, dp = model.time_derivatives(dataset.system, dataset.q[b], dataset.p[b])
        dq = np.asarray(dq).reshape(dataset.dqdt[b].shape)
        dp = np.asarray(dp).reshape(dataset.dpdt[b].shape)
        total += np.sum((dq - dataset.dqdt[b]) ** 2) + np.sum((dp - dataset.dpdt[b]) ** 2)
        count += 2 * dq.size
    return float(total / count)


# ---------------------------------------------------------------------------
# rollout errors
# ---------------------------------------------------------------------------
def _states(truth, prediction, box=None):
    """(q_true, q_pred, box) as float arrays of the same shape (T, N, d)."""
    if isinstance(truth, Trajectory):
        box = truth.system.box if box is None else box
        truth = truth.q
    if isinstance(prediction, Trajectory):
        prediction = prediction.q
    q = np.asarray(truth, dtype=np.float64)
    qh = np.asarray(prediction, dtype=np.float64)
    if q.shape != qh.shape:
        raise HGNError(f"truth and prediction differ in shape ({q.shape} vs {qh.shape}); "
                       "they must be saved at the same steps on the same system")
    if q.ndim == 2:
        q, qh = q[None], qh[None]
    if q.ndim != 3:
        raise HGNError(f"positions must be shaped (T, N, d), got {q.shape}")
    return q, qh, box


def position_difference(truth, prediction, box=None) -> np.ndarray:
    """q_hat - q per saved step, (T, N, d), with minimum image in a periodic box."""
    q, qh, box = _states(truth, prediction, box)
    return minimum_image(qh - q, None if box is None else np.asarray(box, dtype=np.float64))


def position_mse(truth, prediction, box=None) -> np.ndarray:
    """Mean over particles and coordinates of (q_hat - q)^2, one value per
    saved step: shape (T,). Accepts Trajectories or (T, N, d) arrays."""
    d = position_difference(truth, prediction, box)
    return np.mean(d * d, axis=(1, 2))


def relative_error(a, b, axis=None) -> np.ndarray:
    """|a - b| / (|a| + |b|) with Euclidean norms over ``axis`` (all axes but
    the first when ``axis`` is None and a is at least 2-D; elementwise for 1-D
    input). 0/0 is 0. Values lie in [0, 1]."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise HGNError(f"shapes differ: {a.shape} vs {b.shape}")
    if axis is None:
        axis = tuple(range(1, a.ndim)) if a.ndim > 1 else None
    if axis is None:
        num, den = np.abs(a - b), np.abs(a) + np.abs(b)
    else:
        num = np.sqrt(np.sum((a - b) ** 2, axis=axis))
        den = np.sqrt(np.sum(a * a, axis=axis)) + np.sqrt(np.sum(b * b, axis=axis))
    return _safe_ratio(num, den)


def _safe_ratio(num, den):
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape)
    nz = den > 0
    np.divide(num, den, out=out, where=nz)
    return out


def zerr(truth, prediction, box=None) -> np.ndarray:
    """Zerr(t) = |q_hat(t) - q(t)| / (|q_hat(t)| + |q(t)|), norms over all
    particles and coordinates (difference with minimum image when periodic);
    shape (T,)."""
    q, qh, box = _states(truth, prediction, box)
    diff = minimum_image(qh - q, None if box is None else np.asarray(box, dtype=np.float64))
    num = np.sqrt(np.sum(diff * diff, axis=(1, 2)))
    den = np.sqrt(np.sum(qh * qh, axis=(1, 2))) + np.sqrt(np.sum(q * q, axis=(1, 2)))
    return _safe_ratio(num, den)


def herr(truth, prediction) -> np.ndarray:
    """Herr(t) = |H_hat(t) - H(t)| / (|H_hat(t)| + |H(t)|) where both are TRUE
    energies: H along the ground truth and H evaluated (with core.physics.forces) along
    the predicted path. Takes Trajectories (uses ``.total``) or (T,) arrays."""
    h = truth.total if isinstance(truth, Trajectory) else np.asarray(truth, dtype=np.float64)
    hh = prediction.total if isinstance(prediction, Trajectory) else np.asarray(prediction, dtype=np.float64)
    if h.shape != hh.shape:
        raise HGNError(f"energy series differ in length ({h.shape} vs {hh.shape})")
    return relative_error(hh, h)


def drift_trend(energy, t=None) -> dict:
    """Separate a systematic drift from a bounded oscillation.

    Returns ``{"slope": s, "amplitude": a, "trend_over_run": s * (t[-1] - t[0])}``
    where s is the least-squares slope of the relative drift against time and
    a the peak-to-peak of the drift. A symplectic rollout has
    |trend_over_run| well below the amplitude; a drifting one does not.
    """
    d = energy_drift(energy)
    if t is None:
        t = energy.t if isinstance(energy, Trajectory) else np.arange(d.size, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    if t.shape != d.shape:
        raise HGNError("time axis and energy series differ in length")
    if d.size < 2:
        return {"slope": 0.0, "amplitude": 0.0, "trend_over_run": 0.0}
    slope = float(np.polyfit(t, d, 1)[0])
    return {"slope": slope, "amplitude": float(np.ptp(d)), "trend_over_run": slope * float(t[-1] - t[0])}


def geometric_mean(errors, axis: int = 0) -> np.ndarray:
    """Geometric mean over rollouts (``axis`` 0 of a (R, T) stack or a list of
    (T,) series); each error is floored at GEOMETRIC_FLOOR first."""
    e = np.asarray([np.asarray(x, dtype=np.float64) for x in errors]) if isinstance(errors, (list, tuple)) \
        else np.asarray(errors, dtype=np.float64)
    if e.size == 0:
        raise HGNError("no rollouts to average")
    if np.any(e < 0):
        raise HGNError("relative errors must be >= 0")
    return np.exp(np.mean(np.log(np.maximum(e, GEOMETRIC_FLOOR)), axis=axis))


def rollout_measures(truth: Trajectory, prediction: Trajectory) -> dict:
    """Every rollout measure of one (truth, prediction) pair, as plain lists
    and numbers (JSON-able): per saved step ``t``, ``position_mse``, ``zerr``,
    ``herr``, ``drift_truth``, ``drift_prediction``, and summaries
    ``final_position_mse``, ``max_position_mse``, ``final_zerr``,
    ``max_abs_drift_prediction``, ``max_abs_drift_truth``."""
    if truth.n_frames != prediction.n_frames:
        raise HGNError(f"truth has {truth.n_frames} saved frames, prediction {prediction.n_frames}")
    if not np.allclose(truth.t, prediction.t, rtol=1e-9, atol=1e-12):
        raise HGNError("truth and prediction are saved at different times")
    mse = position_mse(truth, prediction)
    z = zerr(truth, prediction)
    he = herr(truth, prediction)
    dt_ = energy_drift(truth)
    dp_ = energy_drift(prediction)
    return {
        "t": truth.t.tolist(),
        "position_mse": mse.tolist(),
        "zerr": z.tolist(),
        "herr": he.tolist(),
        "drift_truth": dt_.tolist(),
        "drift_prediction": dp_.tolist(),
        "final_position_mse": float(mse[-1]),
        "max_position_mse": float(mse.max()),
        "final_zerr": float(z[-1]),
        "final_herr": float(he[-1]),
        "max_abs_drift_truth": float(np.max(np.abs(dt_))),
        "max_abs_drift_prediction": float(np.max(np.abs(dp_))),
    }
