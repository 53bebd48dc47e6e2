"""Learned rollouts (core.learning.rollout): the integrators against ground truth,
reference solutions and their own symmetries, and zero-shot rollouts of a
fitted model on a larger lattice."""
import threading

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from core.learning import metrics
from core.physics.builders import chain, cubic_lattice, molecular
from core.errors import Cancelled, HGNError
from core.physics.forces import ForceField, kinetic_energy
from core.physics.initial import initial_state
from core.learning.rfhgn import TrueHamiltonian
from core.learning.rollout import (RolloutConvergenceWarning, RolloutExtrapolationWarning, compare, learned_energy,
                                   rollout)
from core.physics.simulate import simulate


class SkewHarmonic:
    """A hand-written NON-separable Hamiltonian on a harmonic spring system:

        H = K(p) (1 + a s(q)) + V(q),  K = sum |p_i|^2 / 2m_i,
        V = 1/2 k s(q),  s = sum_edges (r_ij - r0)^2,

    with exact gradients from the force field (ds/dq = -2 F / k):
        H_q = -(1 + 2 a K / k) F,   H_p = (1 + a s) p / m.
    """

    separable = False
    name = "skew harmonic"

    def __init__(self, system, a=0.5):
        self.system, self.a = system, a
        self.k = system.potential.k
        self.ff = ForceField(system)

    def _parts(self, q):
        v, f = self.ff.energy_forces(q)
        return v, f, 2.0 * v / self.k

    def energy(self, system, q, p):
        v, _, s = self._parts(q)
        return np.array(kinetic_energy(p, system.masses) * (1 + self.a * s) + v)

    def gradients(self, system, q, p):
        _, f, s = self._parts(q)
        kin = kinetic_energy(p, system.masses)
        return -(1.0 + 2.0 * self.a * kin / self.k) * f, (1.0 + self.a * s) * p / system.masses[:, None]

    def time_derivatives(self, system, q, p):
        gq, gp = self.gradients(system, q, p)
        return gp, -gq


class SeparableOnlyViaGradients:
    """The true Hamiltonian with only the generic interface (no
    potential_gradient/kinetic_gradient): exercises the fallback."""

    separable = True

    def __init__(self, system):
        self.t = TrueHamiltonian(system)

    def energy(self, system, q, p):
        return self.t.energy(system, q, p)

    def gradients(self, system, q, p):
        return self.t.gradients(system, q, p)


@pytest.fixture(scope="module")
def lattice():
    s = cubic_lattice(3, 3, 3)
    q0, p0 = initial_state(s, 0.1, 0.1, seed=3)
    return s, q0, p0


# ---------------------------------------------------------------------------
# against ground truth
# ---------------------------------------------------------------------------
def test_true_hamiltonian_rollout_reproduces_simulate_on_a_lattice(lattice):
    s, q0, p0 = lattice
    truth = simulate(s, q0, p0, 0.01, 300, 5)
    pred = rollout(TrueHamiltonian(s), s, q0, p0, 0.01, 300, 5)
    assert pred.q.shape == truth.q.shape
    np.testing.assert_allclose(pred.q, truth.q, rtol=0, atol=1e-13)
    np.testing.assert_allclose(pred.p, truth.p, rtol=0, atol=1e-13)
    np.testing.assert_allclose(pred.total, truth.total, rtol=1e-13)
    np.testing.assert_allclose(pred.t, truth.t)
    # the learned H of the true Hamiltonian is the true energy
    np.testing.assert_allclose(learned_energy(pred), truth.total, rtol=1e-13)
    assert pred.label == "true Hamiltonian"
    assert pred.meta["integrator"] == "stoermer-verlet"


def test_true_hamiltonian_rollout_reproduces_simulate_with_cutoff_pairs():
    s = molecular(216, density=0.8, dim=3, cutoff=2.5, periodic=True)
    q0, p0 = initial_state(s, 0.05, 0.3, seed=2)
    truth, pred = compare(TrueHamiltonian(s), s, q0, p0, 0.005, 200, 10)
    np.testing.assert_allclose(pred.q, truth.q, rtol=0, atol=1e-10)
    np.testing.assert_allclose(pred.total, truth.total, rtol=1e-10)
    # the rollout reused a neighbour list (not a fresh search every step)
    assert 1 <= pred.meta["neighbour_builds"] < 100


def test_fallback_without_split_gradients_matches(lattice):
    s, q0, p0 = lattice
    a = rollout(TrueHamiltonian(s), s, q0, p0, 0.01, 50)
    b = rollout(SeparableOnlyViaGradients(s), s, q0, p0, 0.01, 50)
    np.testing.assert_allclose(a.q, b.q, rtol=0, atol=1e-14)


# ---------------------------------------------------------------------------
# the generalised leapfrog
# ---------------------------------------------------------------------------
def test_implicit_on_a_separable_model_agrees_with_the_explicit_one(lattice):
    s, q0, p0 = lattice
    m = TrueHamiltonian(s)
    tol = 1e-12
    a = rollout(m, s, q0, p0, 0.01, 200, 10)
    b = rollout(m, s, q0, p0, 0.01, 200, 10, integrator="implicit", tol=tol)
    assert b.meta["integrator"] == "generalised-leapfrog"
    scale = 1 + np.abs(a.q).max()
    assert np.abs(a.q - b.q).max() <= 10 * tol * scale
    assert np.abs(a.p - b.p).max() <= 10 * tol * scale


def _skew_setup():
    s = chain(4, dim=2)
    q0, p0 = initial_state(s, 0.15, 0.3, seed=5)
    return s, SkewHarmonic(s), q0, p0


def test_implicit_integrator_is_time_reversible():
    s, m, q0, p0 = _skew_setup()
    fwd = rollout(m, s, q0, p0, 0.02, 250, 250, tol=1e-14)
    back = rollout(m, s, fwd.q[-1], -fwd.p[-1], 0.02, 250, 250, tol=1e-14)
    assert np.abs(fwd.q[-1] - q0).max() > 0.05  # it did move
    np.testing.assert_allclose(back.q[-1], q0, rtol=0, atol=1e-11)
    np.testing.assert_allclose(-back.p[-1], p0, rtol=0, atol=1e-11)


def _reference(m, s, q0, p0, t_end):
    n, d = q0.shape

    def rhs(_, y):
        q, p = y[: n * d].reshape(n, d), y[n * d:].reshape(n, d)
        gq, gp = m.gradients(s, q, p)
        return np.concatenate([gp.ravel(), -gq.ravel()])

    sol = solve_ivp(rhs, (0, t_end), np.concatenate([q0.ravel(), p0.ravel()]), method="DOP853",
                    rtol=1e-12, atol=1e-13)
    return sol.y[: n * d, -1].reshape(n, d)


def test_implicit_integrator_is_second_order_against_a_reference_solution():
    s, m, q0, p0 = _skew_setup()
    t_end = 2.0
    ref = _reference(m, s, q0, p0, t_end)
    errs = []
    for dt in (0.04, 0.02, 0.01):
        tr = rollout(m, s, q0, p0, dt, int(round(t_end / dt)), int(round(t_end / dt)), learned_energy=False)
        errs.append(np.abs(tr.q[-1] - ref).max())
    ratios = [errs[0] / errs[1], errs[1] / errs[2]]
    assert all(3.4 < r < 4.6 for r in ratios), (errs, ratios)


def test_implicit_integrator_keeps_the_learned_energy_bounded():
    s, m, q0, p0 = _skew_setup()
    tr = rollout(m, s, q0, p0, 0.02, 3000, 10)
    h = learned_energy(tr)
    drift = metrics.drift_trend(h, tr.t)
    assert drift["amplitude"] < 2e-3
    # no trend: the systematic change over the run is well below the oscillation
    assert abs(drift["trend_over_run"]) < 0.25 * drift["amplitude"]
    # and the true energy of this non-physical model is NOT what it conserves
    assert np.ptp(tr.total) > 10 * np.ptp(h)


def test_non_convergence_is_an_error_or_a_warning():
    s, m, q0, p0 = _skew_setup()
    with pytest.raises(HGNError, match="did not converge at step 1"):
        rollout(m, s, q0, p0, 0.05, 3, max_iter=2)
    with pytest.warns(RolloutConvergenceWarning, match="did not converge"):
        tr = rollout(m, s, q0, p0, 0.05, 3, max_iter=2, on_no_convergence="warn")
    assert tr.meta["unconverged_stages"] >= 3


def test_explicit_integrator_refuses_a_non_separable_model():
    s, m, q0, p0 = _skew_setup()
    with pytest.raises(HGNError, match="separable"):
        rollout(m, s, q0, p0, 0.01, 3, integrator="explicit")


# ---------------------------------------------------------------------------
# job protocol and bad input
# ---------------------------------------------------------------------------
def test_progress_cancel_and_frames(lattice):
    s, q0, p0 = lattice
    stages, frames = [], []
    rollout(TrueHamiltonian(s), s, q0, p0, 0.01, 20, 5, progress=lambda st, f: stages.append((st, f)),
            on_frame=frames.append)
    assert {st for st, _ in stages} == {"rollout"} and stages[-1][1] == 1.0
    assert [f.index for f in frames] == [0, 1, 2, 3, 4] and frames[-1].step == 20
    truth = simulate(s, q0, p0, 0.01, 20, 5)
    assert frames[2].total == pytest.approx(truth.total[2], rel=1e-12)

    cancel = threading.Event()

    def stop_at_two(frame):
        if frame.index == 2:
            cancel.set()

    with pytest.raises(Cancelled):
        rollout(TrueHamiltonian(s), s, q0, p0, 0.01, 10_000, 1, cancel=cancel, on_frame=stop_at_two)


def test_a_rollout_continued_in_chunks_equals_one_run(lattice):
    s, q0, p0 = lattice
    m = TrueHamiltonian(s)
    whole = rollout(m, s, q0, p0, 0.01, 40, 10)
    a = rollout(m, s, q0, p0, 0.01, 20, 10)
    b = rollout(m, s, a.q[-1], a.p[-1], 0.01, 20, 10, t0=a.t[-1])
    np.testing.assert_array_equal(np.concatenate([a.q, b.q[1:]]), whole.q)
    np.testing.assert_allclose(np.concatenate([a.t, b.t[1:]]), whole.t, rtol=1e-15)


@pytest.mark.parametrize("kw, match", [
    (dict(dt=0.0), "dt"), (dict(steps=-1), "steps"), (dict(save_every=0), "save_every"),
    (dict(integrator="rk4"), "integrator"), (dict(tol=0.0), "tolerance"), (dict(max_iter=0), "max_iter"),
    (dict(on_no_convergence="ignore"), "on_no_convergence"), (dict(t0=float("nan")), "t0"),
    (dict(threads=-1), "threads"), (dict(threads=1.5), "threads"), (dict(threads="2"), "threads"),
])
def test_bad_settings_are_user_errors(lattice, kw, match):
    s, q0, p0 = lattice
    args = dict(dt=0.01, steps=5, save_every=1)
    args.update(kw)
    with pytest.raises(HGNError, match=match):
        rollout(TrueHamiltonian(s), s, q0, p0, **args)


def test_rollout_threads_apply_while_it_runs_and_are_restored(lattice):
    """``threads`` sets torch's intra-op threads for the roll-out only: the
    model sees the count while it is evaluated, the caller's count is back
    afterwards, the result does not depend on it, and meta records it."""
    import torch

    s, q0, p0 = lattice
    seen = []

    class Spy(TrueHamiltonian):
        def potential_gradient(self, system=None, q=None, **kw):
            seen.append(torch.get_num_threads())
            return super().potential_gradient(system, q, **kw)

    before = torch.get_num_threads()
    other = 2 if before != 2 else 1
    a = rollout(Spy(s), s, q0, p0, 0.01, 10, threads=other)
    assert set(seen) == {other} and torch.get_num_threads() == before
    assert a.meta["threads"] == other
    seen.clear()
    b = rollout(Spy(s), s, q0, p0, 0.01, 10, threads=0)   # 0: the libraries' own setting
    assert set(seen) == {before} and b.meta["threads"] == 0
    np.testing.assert_array_equal(a.q, b.q)


def test_state_of_the_wrong_size_and_a_non_model_are_user_errors(lattice):
    s, q0, p0 = lattice
    with pytest.raises(HGNError, match="shape"):
        rollout(TrueHamiltonian(s), s, q0[:5], p0[:5], 0.01, 5)
    with pytest.raises(HGNError, match="gradients"):
        rollout(object(), s, q0, p0, 0.01, 5)


def test_blow_up_is_reported_with_advice(lattice):
    s, q0, p0 = lattice

    far = np.abs(q0 - s.positions).max() + 0.1

    class Exploding(TrueHamiltonian):
        def potential_gradient(self, system, q, pairs=None):
            g = super().potential_gradient(system, q)
            return g * np.inf if np.abs(q - system.positions).max() > far else g

    # default: stopped and marked diverged, the frames before it kept
    tr = rollout(Exploding(s), s, q0, 50 * p0, 0.05, 200)
    d = tr.diverged
    assert d is not None and 0 < d["step"] < 200 and "NaN or infinite" in d["reason"]
    assert "Reduce the time step" in d["reason"] and tr.n_frames == d["frames"] < 201
    assert np.isfinite(tr.q).all() and np.isfinite(tr.total).all() and len(tr.t) == tr.n_frames
    with pytest.raises(HGNError, match="diverged at step .*NaN or infinite.*Reduce the time step"):
        rollout(Exploding(s), s, q0, 50 * p0, 0.05, 200, on_divergence="error")


# ---------------------------------------------------------------------------
# zero-shot: fitted on 2x2x2, rolled out on 6x6x6
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def zero_shot():
    from core.physics.datagen import random_snapshots
    from core.learning.rfhgn import RFConfig, fit

    small = cubic_lattice(2, 2, 2)
    model = fit(random_snapshots(small, 500, 0.1, 0.1, seed=0), RFConfig())
    big = cubic_lattice(6, 6, 6)
    q0, p0 = initial_state(big, 0.1, 0.1, seed=1)
    # the benchmark's headline run (1000 steps of dt 0.01) on a smaller lattice
    truth, pred = compare(model, big, q0, p0, 0.01, 1000, 10)
    return model, big, q0, p0, truth, pred


def test_zero_shot_rollout_on_a_larger_lattice_stays_close_to_ground_truth(zero_shot):
    model, big, _, _, truth, pred = zero_shot
    assert model.separable and pred.meta["integrator"] == "stoermer-verlet"
    assert pred.q.shape == truth.q.shape == (101, 216, 3)
    mse = metrics.position_mse(truth, pred)
    z = metrics.zerr(truth, pred)
    # positions agree to 1e-3 of the displacement scale (0.1) over the run:
    # MSE below 1e-6 (the benchmark's target), Zerr below 1e-4
    assert mse.max() < 1e-6, mse.max()
    assert z.max() < 1e-4, z.max()
    # the true energy along the prediction matches the true energy of the truth
    assert metrics.herr(truth, pred).max() < 1e-4
    # the true energy along the prediction oscillates no more than 3x the
    # ground truth's own Verlet oscillation
    assert np.ptp(pred.total) < 3 * np.ptp(truth.total) + 1e-12


def test_energy_along_a_long_learned_rollout_does_not_drift(zero_shot):
    model, big, q0, p0, _, _ = zero_shot
    pred = rollout(model, big, q0, p0, 0.01, 8000, 80)  # t = 80
    for series in (pred.total, learned_energy(pred)):
        d = metrics.drift_trend(series, pred.t)
        assert np.max(np.abs(metrics.energy_drift(series))) < 1e-3
        # bounded oscillation, no trend: the least-squares change over the run
        # is a small part of the peak-to-peak oscillation
        assert abs(d["trend_over_run"]) < 0.25 * d["amplitude"], d


def test_rollout_records_its_pair_distances_against_the_training_range(zero_shot):
    model, big, *_, pred = zero_shot
    lo, hi = pred.meta["pair_distance_range"]
    r = np.linalg.norm(pred.q[:, big.edges[:, 0]] - pred.q[:, big.edges[:, 1]], axis=-1)
    assert lo == pytest.approx(r.min()) and hi == pytest.approx(r.max())
    assert pred.meta["training_pair_distance_range"][1] == model.info["train_r_max"]
    k = 0.5 * np.einsum("fij,fij,i->fi", pred.p, pred.p, 1.0 / big.masses)  # each particle's kinetic energy
    assert pred.meta["particle_kinetic_energy_max"] == pytest.approx(k.max(), rel=1e-12)
    assert pred.meta["training_particle_kinetic_energy_max"] == model.info["train_k_max"]
    assert pred.meta["outside_training_range"] == (hi > model.info["train_r_max"]
                                                   or k.max() > model.info["train_k_max"])


def test_leaving_the_training_kinetic_energies_is_flagged_and_warned():
    """The kinetic features are sampled on the particles' kinetic energies of the training data: a frame with
    a particle above the largest (info["train_k_max"]) is reported like a pair distance outside the range."""
    s = chain(6, dim=2)
    q0, p0 = initial_state(s, 0.02, 0.02, seed=0)

    class Slow(TrueHamiltonian):  # "trained" on particle kinetic energies up to 0.01, every distance
        info = {"train_k_max": 0.01, "train_r_max": 10.0, "train_r_min": 0.0}

    calm = rollout(Slow(s), s, q0, p0, 0.01, 100, 10)
    assert calm.meta["outside_training_range"] is False and "training_range_left" not in calm.meta
    q1, p1 = initial_state(s, 0.02, 0.5, seed=0)
    with pytest.warns(RolloutExtrapolationWarning, match="particle kinetic energy .* beyond the largest") as rec:
        fast = rollout(Slow(s), s, q1, p1, 0.01, 100, 10)
    k = 0.5 * np.einsum("fij,fij,i->fi", fast.p, fast.p, 1.0 / s.masses)
    assert fast.meta["outside_training_range"] is True
    assert fast.meta["particle_kinetic_energy_max"] == pytest.approx(k.max(), rel=1e-12)
    left = fast.meta["training_range_left"]
    assert left["quantity"] == "particle kinetic energy" and left["bound"] == 0.01
    first = int(np.argmax(k.max(axis=1) > 0.01))  # the first saved frame with a particle above
    assert left["step"] == first * 10 and left["at_start"] == (first == 0)
    assert left["value"] == pytest.approx(k[first].max(), rel=1e-12)
    rel = (k[first].max() - 0.01) / 0.01
    assert left["relative"] == pytest.approx(rel, rel=1e-12)
    msg = str(rec[0].message)
    assert f"{100 * rel:.2g}% above it" in msg, msg


def test_leaving_the_training_distances_is_flagged_and_warned():
    s = chain(6, dim=2)
    q0, p0 = initial_state(s, 0.02, 0.02, seed=0)

    class Narrow(TrueHamiltonian):  # "trained" on distances 0.95..1.05 only
        info = {"train_r_max": 1.05, "train_r_min": 0.95}

    calm = rollout(Narrow(s), s, q0, p0, 0.01, 100, 10)
    assert calm.meta["outside_training_range"] is False
    q1, p1 = initial_state(s, 0.02, 0.5, seed=0)  # fast: bonds stretch well past 1.05
    with pytest.warns(RolloutExtrapolationWarning, match="beyond the largest in the training data"):
        wild = rollout(Narrow(s), s, q1, p1, 0.01, 100, 10)
    assert wild.meta["outside_training_range"] is True
    lo, hi = wild.meta["pair_distance_range"]
    r = np.linalg.norm(wild.q[:, s.edges[:, 0]] - wild.q[:, s.edges[:, 1]], axis=-1)
    assert hi == pytest.approx(r.max()) and lo == pytest.approx(r.min())
    # a model that does not report its training range is not checked
    assert "outside_training_range" not in rollout(TrueHamiltonian(s), s, q1, p1, 0.01, 10).meta


def test_extrapolation_warning_prints_distances_that_differ():
    """A distance just beyond the training range is printed with enough
    digits to differ from the bound (it once read "1.455 beyond ... (1.455)")."""
    from core.learning.rollout import _distinct

    a, b = _distinct(1.45512, 1.45501)
    assert a != b and float(a) > float(b)
    assert _distinct(1.5, 1.2) == ("1.5", "1.2")
    assert _distinct(2.0, 2.0 + 1e-14)[0] != _distinct(2.0, 2.0 + 1e-14)[1]


@pytest.mark.parametrize("how", ["rf", "rf_series", "baseline"])
def test_fitted_models_know_their_smallest_training_distance_and_warn_below_it(how):
    """A learned pair function is unreliable below the training data's
    smallest pair distance as well as above its largest (the one-frame energy
    spike of the studio's 4x4x4 roll-out at t = 13 is a bond compressed to
    0.511 against a training minimum of 0.534); the fits record both ends."""
    from core.learning.baselines import BaselineConfig
    from core.learning.baselines import fit as fit_baseline
    from core.learning.rfhgn import RFConfig, fit, fit_time_series
    from core.physics.datagen import random_snapshots

    s = chain(4)
    if how == "rf_series":
        q0, p0 = initial_state(s, 0.05, 0.05, seed=3)
        tr = simulate(s, q0, p0, 0.01, 400, save_every=2)
        model = fit_time_series([tr], RFConfig())
        r = np.linalg.norm(tr.q[:, s.edges[:, 0]] - tr.q[:, s.edges[:, 1]], axis=-1)
    else:
        ds = random_snapshots(s, 200, 0.05, 0.05, seed=3)
        model = fit(ds, RFConfig()) if how == "rf" else fit_baseline(
            ds, BaselineConfig(node_width=8, edge_width=8, message_width=8, time_budget=0, max_epochs=2, threads=1))
        tr_idx = np.asarray(ds.train)
        r = np.linalg.norm(ds.q[tr_idx][:, s.edges[:, 0]] - ds.q[tr_idx][:, s.edges[:, 1]], axis=-1)
    if how == "baseline":  # trained on its own part of the training snapshots (the rest validates)
        assert r.min() <= model.info["train_r_min"] < model.info["train_r_max"] <= r.max()
    else:
        assert model.info["train_r_min"] == pytest.approx(r.min(), rel=1e-12)
        assert model.info["train_r_max"] == pytest.approx(r.max(), rel=1e-12)
    q = s.positions.copy()
    q[0, 0] += 0.3                                   # end bond 0-1 at 0.7, far below anything trained on
    with pytest.warns(RolloutExtrapolationWarning, match="below the smallest in the training data"):
        out = rollout(model, s, q, np.zeros_like(q), 0.01, 20, 10)
    assert out.meta["outside_training_range"] is True


# ---------------------------------------------------------------------------
# the training-range warning says what the roll-out did, not what it was given
# ---------------------------------------------------------------------------
class _Narrow(TrueHamiltonian):
    """The true chain Hamiltonian "trained" on pair distances 0.95..1.05 only."""
    info = {"train_r_max": 1.05, "train_r_min": 0.95}


def _range_warnings(fn):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn()
    return out, [str(w.message) for w in caught if issubclass(w.category, RolloutExtrapolationWarning)]


def test_an_initial_state_outside_the_training_range_is_reported_as_the_initial_state():
    """A start that is already outside the training range (a larger lattice's random start has more extreme
    bonds than the small one's data) is the caller's state, not something the roll-out did: the warning says
    so, and the meta records step 0 as the start."""
    s = chain(6, dim=2)
    q = s.positions.copy()
    q[0, 0] -= 0.2                                   # bond 0-1 at 1.2, beyond 1.05, before any step
    pred, msgs = _range_warnings(lambda: rollout(_Narrow(s), s, q, np.zeros_like(q), 0.01, 20, 5))
    assert len(msgs) == 1, msgs
    assert "the initial state" in msgs[0] and "before any step" in msgs[0], msgs[0]
    assert "reached" not in msgs[0], msgs[0]
    assert "pair distance 1.2 beyond the largest in the training data (1.05)" in msgs[0], msgs[0]
    left = pred.meta["training_range_left"]
    assert left["step"] == 0 and left["t"] == 0.0 and left["at_start"] is True
    assert left["quantity"] == "pair distance" and left["value"] == pytest.approx(1.2)
    assert left["bound"] == 1.05 and left["side"] == "above"


def test_the_range_warning_names_the_first_step_outside_also_in_a_continued_rollout():
    """Inside at the start, outside later: the warning names the first saved step outside and its time;
    a roll-out continued in chunks (t0 > 0, as the studio runs it) names the same step of the whole run,
    and a chunk that starts outside (the previous chunk's end) says it starts there."""
    s = chain(6, dim=2)
    q0, p0 = initial_state(s, 0.005, 0.1, seed=0)
    r0 = np.linalg.norm(q0[s.edges[:, 0]] - q0[s.edges[:, 1]], axis=-1)
    assert 0.95 < r0.min() and r0.max() < 1.05          # the start is inside
    dt, steps = 0.01, 200
    one, msgs = _range_warnings(lambda: rollout(_Narrow(s), s, q0, p0, dt, steps))
    r = np.linalg.norm(one.q[:, s.edges[:, 0]] - one.q[:, s.edges[:, 1]], axis=-1)
    first = int(np.argmax((r > 1.05).any(axis=1) | (r < 0.95).any(axis=1)))
    assert 5 < first < steps - 5
    assert len(msgs) == 1 and f"at step {first} (t = {first * dt:.6g})" in msgs[0], (first, msgs)
    assert "reached" in msgs[0] and "initial" not in msgs[0]
    assert one.meta["training_range_left"]["step"] == first
    assert one.meta["training_range_left"]["at_start"] is False
    # the same run in two chunks, cut 3 steps before it leaves the range
    c = first - 3
    a, msgs_a = _range_warnings(lambda: rollout(_Narrow(s), s, q0, p0, dt, c))
    assert msgs_a == [] and "training_range_left" not in a.meta
    b, msgs_b = _range_warnings(lambda: rollout(_Narrow(s), s, a.q[-1], a.p[-1], dt, steps - c, t0=c * dt))
    assert len(msgs_b) == 1 and f"at step {first} (t = {first * dt:.6g})" in msgs_b[0], msgs_b
    assert b.meta["training_range_left"]["step"] == first
    # a chunk that starts outside the range: its start is the state the run had reached at step first + 2
    k = first + 2
    _, msgs_c = _range_warnings(lambda: rollout(_Narrow(s), s, one.q[k], one.p[k], dt, 10, t0=k * dt))
    assert len(msgs_c) == 1 and f"starts at step {k} (t = {k * dt:.6g})" in msgs_c[0], msgs_c
    assert "before any step" not in msgs_c[0]
