"""Ground truth: the velocity-Verlet integrator against conservation laws,
time reversal, symmetry, an analytic solution and an independent ODE solver;
the simulate() job protocol; and data generation."""
import threading
import time

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from core.physics import builders
from core.physics.datagen import DataSpec, generate, random_snapshots
from core.errors import Cancelled, HGNError
from core.physics.forces import ForceField, derivatives, hamiltonian
from core.physics.initial import initial_state
from core.physics.integrators import Frame, velocity_verlet
from core.jobs import CancelToken
from core.physics.simulate import simulate


@pytest.fixture(scope="module")
def lattice():
    return builders.cubic_lattice(4, 4, 4)


@pytest.fixture(scope="module")
def liquid():
    # 216 Lennard-Jones particles, density 0.8, cutoff 2.5 in a periodic box
    return builders.molecular(216, density=0.8, dim=3, cutoff=2.5)


# -- energy ------------------------------------------------------------------
def test_harmonic_cubic_lattice_conserves_energy_to_1e_6_over_10000_steps(lattice):
    # 4x4x4 springs (k = m = 1, highest frequency 2*sqrt(3) < 3.5); small
    # displacements and momenta (sd 0.05) and dt = 0.001: the Verlet energy
    # error is about 2e-7 of H
    q0, p0 = initial_state(lattice, displacement=0.05, momentum=0.05, seed=1)
    tr = simulate(lattice, q0, p0, dt=0.001, steps=10_000, save_every=10)
    assert tr.n_frames == 1001
    rel = np.max(np.abs(tr.total - tr.total[0])) / abs(tr.total[0])
    assert rel < 1e-6
    # the energy really moves between kinetic and potential (a live system)
    assert np.ptp(tr.kinetic) > 0.1 * tr.total[0]


def test_lennard_jones_liquid_has_no_energy_drift(liquid):
    # NVE at T = 1, dt = 0.005, 3000 steps (15 time units): the energy
    # fluctuates (bounded) but its mean does not move
    q0, p0 = initial_state(liquid, displacement=0.0, temperature=1.0, seed=1)
    tr = simulate(liquid, q0, p0, dt=0.005, steps=3000, save_every=5)
    h = tr.total
    k = len(h) // 10
    h0 = abs(h[0])
    drift = abs(h[-k:].mean() - h[:k].mean()) / h0
    assert drift < 1e-4, drift
    assert np.max(np.abs(h - h[0])) / h0 < 1e-3
    # and a liquid it is: the potential energy moves by far more than H
    assert np.ptp(tr.potential) > 20 * np.ptp(h)
    assert tr.meta["neighbour_builds"] > 10


def test_energy_error_of_verlet_is_second_order_in_dt(lattice):
    q0, p0 = initial_state(lattice, displacement=0.05, momentum=0.05, seed=2)
    errs = []
    for dt in (0.04, 0.02):
        tr = simulate(lattice, q0, p0, dt=dt, steps=int(round(8 / dt)), save_every=1)
        errs.append(np.max(np.abs(tr.total - tr.total[0])))
    assert 3.5 < errs[0] / errs[1] < 4.5


# -- time reversal -----------------------------------------------------------
def _reverse(system, q0, p0, dt, steps):
    fwd = simulate(system, q0, p0, dt, steps, save_every=steps)
    back = simulate(system, fwd.q[-1], -fwd.p[-1], dt, steps, save_every=steps)
    return fwd, back


def test_time_reversal_recovers_the_start_for_a_lattice(lattice):
    q0, p0 = initial_state(lattice, displacement=0.1, momentum=0.1, seed=3)
    fwd, back = _reverse(lattice, q0, p0, 0.01, 1000)
    assert np.max(np.abs(fwd.q[-1] - q0)) > 0.05  # it did go somewhere
    assert np.max(np.abs(back.q[-1] - q0)) < 1e-11
    assert np.max(np.abs(-back.p[-1] - p0)) < 1e-11


def test_time_reversal_recovers_the_start_for_a_cutoff_system(liquid):
    q0, p0 = initial_state(liquid, displacement=0.0, temperature=1.0, seed=4)
    fwd, back = _reverse(liquid, q0, p0, 0.005, 300)
    assert fwd.meta["neighbour_builds"] > 3
    assert np.max(np.abs(fwd.q[-1] - q0)) > 0.3
    assert np.max(np.abs(back.q[-1] - q0)) < 1e-8
    assert np.max(np.abs(-back.p[-1] - p0)) < 1e-8


# -- conservation of momentum ------------------------------------------------
@pytest.mark.parametrize("make", [lambda: builders.cubic_lattice(3, 3, 3, potential="morse"),
                                  lambda: builders.molecular(125, density=0.5, dim=3, cutoff=2.5)],
                         ids=["lattice", "periodic-lj"])
def test_total_momentum_is_conserved(make):
    s = make()
    rng = np.random.default_rng(5)
    q0 = s.positions + 0.05 * rng.standard_normal(s.positions.shape)
    p0 = 0.3 * rng.standard_normal(s.positions.shape) + np.array([0.2, -0.1, 0.05])  # net drift
    tr = simulate(s, q0, p0, 0.005, 500, save_every=10)
    assert np.allclose(tr.momentum[0], p0.sum(0))
    assert np.max(np.abs(tr.momentum - tr.momentum[0])) < 1e-11


def test_angular_momentum_of_a_free_cluster_is_conserved():
    s = builders.molecular(27, density=0.8, dim=3, cutoff=2.5, periodic=False, jitter=0.1)
    q0, p0 = initial_state(s, displacement=0.0, momentum=0.5, seed=6)
    tr = simulate(s, q0, p0, 0.002, 1000, save_every=50)
    ang = np.cross(tr.q, tr.p).sum(axis=1)
    assert np.max(np.abs(ang[0])) > 0.1
    assert np.max(np.abs(ang - ang[0])) < 1e-11


# -- invariances of the energy -----------------------------------------------
def _random_orthogonal(dim, rng):
    m, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return m * np.sign(np.diag(r))


def test_energy_is_invariant_under_translation(any_system, perturb):
    q = perturb(any_system, 0.05, seed=7)
    shift = np.random.default_rng(8).uniform(-5, 5, any_system.dim)
    v, f = ForceField(any_system).energy_forces(q)
    v2, f2 = ForceField(any_system).energy_forces(q + shift)
    assert v2 == pytest.approx(v, rel=1e-11, abs=1e-11)
    assert np.allclose(f2, f, rtol=1e-9, atol=1e-9)


def test_energy_is_invariant_under_rotation(free_system, perturb):
    any_system = free_system  # a periodic box is not rotation invariant
    rng = np.random.default_rng(9)
    q = perturb(any_system, 0.05, seed=10)
    rot = _random_orthogonal(any_system.dim, rng)
    assert np.allclose(rot @ rot.T, np.eye(any_system.dim))
    v, f = ForceField(any_system).energy_forces(q)
    v2, f2 = ForceField(any_system).energy_forces(q @ rot.T)
    assert v2 == pytest.approx(v, rel=1e-11, abs=1e-11)
    assert np.allclose(f2, f @ rot.T, rtol=1e-9, atol=1e-9)  # forces rotate with the system


def test_energy_is_invariant_under_relabelling(any_system, perturb):
    rng = np.random.default_rng(11)
    s = any_system
    perm = rng.permutation(s.n)  # new particle a is old particle perm[a]
    inv = np.argsort(perm)
    edges = None if s.edges is None else np.sort(inv[s.edges], axis=1)
    relabelled = s.copy(positions=s.positions[perm], masses=s.masses[perm], edges=edges)
    q = perturb(s, 0.05, seed=12)
    v, f = ForceField(s).energy_forces(q)
    v2, f2 = ForceField(relabelled).energy_forces(q[perm])
    assert v2 == pytest.approx(v, rel=1e-11, abs=1e-11)
    assert np.allclose(f2, f[perm], rtol=1e-9, atol=1e-9)


# -- analytic solution and convergence ---------------------------------------
def _two_body(k, m, amp):
    s = builders.chain(2, dim=2, mass=m, potential_params={"k": k, "r0": 1.0})
    q0 = np.array([[0.0, 0.0], [1.0 + amp, 0.0]])
    return s, q0, np.zeros_like(q0), np.sqrt(2 * k / m)


def test_two_particle_oscillator_follows_the_analytic_solution():
    # relative coordinate r(t) = r0 + A cos(omega t), omega = sqrt(2k/m)
    k, m, amp = 1.5, 0.7, 0.1
    s, q0, p0, omega = _two_body(k, m, amp)
    tr = simulate(s, q0, p0, dt=0.001, steps=10_000, save_every=10)
    r = tr.q[:, 1, 0] - tr.q[:, 0, 0]
    exact = 1.0 + amp * np.cos(omega * tr.t)
    assert np.max(np.abs(r - exact)) < 1e-6
    assert np.allclose(tr.q[:, :, 1], 0.0)  # no motion off the axis
    assert np.allclose(tr.q[:, :, 0].mean(1), (1.0 + amp) / 2)  # centre of mass at rest


def test_verlet_converges_with_second_order_against_the_analytic_solution():
    s, q0, p0, omega = _two_body(2.0, 1.0, 0.2)
    errs = []
    for dt in (0.04, 0.02, 0.01):
        steps = int(round(4.0 / dt))
        tr = simulate(s, q0, p0, dt=dt, steps=steps, save_every=steps)
        r = tr.q[-1, 1, 0] - tr.q[-1, 0, 0]
        errs.append(abs(r - (1.0 + 0.2 * np.cos(omega * 4.0))))
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all((orders > 1.9) & (orders < 2.1)), orders


def test_nonlinear_chain_matches_an_independent_ode_solver():
    # a Morse chain, integrated by scipy's DOP853 at tight tolerance from the
    # same start: Verlet's error must be small and fall 4x when dt halves
    s = builders.chain(5, dim=2, potential="morse", potential_params={"D": 1.0, "a": 1.5})
    q0, p0 = initial_state(s, displacement=0.1, momentum=0.2, seed=13)
    ff = ForceField(s)
    shape = q0.shape

    def rhs(_, y):
        q, p = y[: y.size // 2].reshape(shape), y[y.size // 2:].reshape(shape)
        return np.concatenate([(p / s.masses[:, None]).ravel(), ff.forces(q).ravel()])

    ref = solve_ivp(rhs, (0, 3.0), np.concatenate([q0.ravel(), p0.ravel()]), method="DOP853",
                    rtol=1e-12, atol=1e-12).y[:, -1]
    errs = []
    for dt in (0.01, 0.005):
        tr = simulate(s, q0, p0, dt, int(round(3.0 / dt)), save_every=int(round(3.0 / dt)))
        errs.append(np.max(np.abs(tr.q[-1].ravel() - ref[: q0.size])))
    assert errs[1] < 1e-4
    assert 3.5 < errs[0] / errs[1] < 4.5


# -- the run itself: frames, unwrapped positions, protocol -------------------
def test_saved_frames_are_evenly_spaced_and_start_with_the_initial_state():
    s = builders.chain(4)
    q0, p0 = initial_state(s, seed=14)
    tr = simulate(s, q0, p0, dt=0.01, steps=25, save_every=10)
    assert tr.n_frames == 3 and np.allclose(tr.t, [0.0, 0.1, 0.2])
    assert np.array_equal(tr.q[0], q0) and np.array_equal(tr.p[0], p0)
    # frame 2 equals a run of exactly 20 steps
    tr20 = simulate(s, q0, p0, dt=0.01, steps=20, save_every=20)
    assert np.array_equal(tr.q[2], tr20.q[-1])
    zero = simulate(s, q0, p0, dt=0.01, steps=0)
    assert zero.n_frames == 1 and zero.potential[0] == pytest.approx(ForceField(s).energy(q0))
    assert np.allclose(tr.total, hamiltonian(s, tr.q, tr.p), rtol=1e-12)
    assert np.allclose(tr.momentum, tr.p.sum(1))


def test_periodic_positions_stay_unwrapped_and_continuous(liquid):
    q0, p0 = initial_state(liquid, displacement=0.0, temperature=1.0, seed=15)
    p0 += np.array([-3.0, 0.0, 0.0])  # the whole liquid flows towards -x
    tr = simulate(liquid, q0, p0, 0.005, 100, save_every=1)
    assert np.sum(tr.q[-1, :, 0] < 0.0) > 20  # they left the box and were not folded back
    assert np.max(np.abs(np.diff(tr.q, axis=0))) < 0.1


def test_on_frame_sees_every_saved_frame_while_running():
    s = builders.square_lattice(3, 3)
    q0, p0 = initial_state(s, seed=16)
    frames = []
    tr = simulate(s, q0, p0, 0.01, 50, save_every=5, on_frame=frames.append)
    assert [f.index for f in frames] == list(range(11))
    assert [f.step for f in frames] == list(range(0, 51, 5))
    for f in frames:
        assert isinstance(f, Frame) and f.n_frames == 11
        assert np.array_equal(f.q, tr.q[f.index]) and np.array_equal(f.p, tr.p[f.index])
        assert f.t == pytest.approx(tr.t[f.index])
        assert f.total == pytest.approx(tr.total[f.index], rel=1e-14)
        assert np.allclose(f.momentum, tr.momentum[f.index])
        assert not f.q.flags.writeable


def test_progress_reports_the_simulate_stage_up_to_one():
    s = builders.chain(5)
    q0, p0 = initial_state(s, seed=17)
    seen = []
    simulate(s, q0, p0, 0.01, 200, progress=lambda stage, x: seen.append((stage, x)))
    assert {st for st, _ in seen} == {"simulate"}
    fr = [x for _, x in seen]
    assert fr[0] == 0.0 and fr[-1] == 1.0 and fr == sorted(fr)


def test_cancel_stops_a_run():
    s = builders.chain(5)
    q0, p0 = initial_state(s, seed=18)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        simulate(s, q0, p0, 0.01, 100, cancel=token)
    token = CancelToken()

    def stop_at_5(frame):
        if frame.index == 5:
            token.cancel()
    frames_before = []
    with pytest.raises(Cancelled):
        simulate(s, q0, p0, 0.01, 1000, on_frame=lambda f: (frames_before.append(f.index), stop_at_5(f)), cancel=token)
    assert frames_before[-1] == 5  # stopped at the next step


def test_cancel_from_another_thread_is_quick(lattice):
    q0, p0 = initial_state(lattice, seed=19)
    token = CancelToken()
    outcome = {}

    def work():
        try:
            simulate(lattice, q0, p0, 0.001, 10_000_000, save_every=1_000_000, cancel=token)
        except Cancelled:
            outcome["stopped"] = time.perf_counter()

    th = threading.Thread(target=work)
    th.start()
    time.sleep(0.2)
    token.cancel()
    t_cancel = time.perf_counter()
    th.join(5.0)
    # the run checks the flag every step (~40 us here); allow for a busy machine
    assert "stopped" in outcome and outcome["stopped"] - t_cancel < 0.5


def test_blow_up_asks_for_a_smaller_time_step():
    s = builders.chain(10)  # highest frequency 2: Verlet needs dt < 1
    q0, p0 = initial_state(s, seed=20)
    with pytest.raises(HGNError, match="blew up.*Reduce the time step"):
        simulate(s, q0, p0, dt=2.5, steps=100_000, save_every=1000)
    # the same start is fine at a stable step
    assert np.isfinite(simulate(s, q0, p0, dt=0.1, steps=1000, save_every=100).total).all()


def test_integrator_is_generic_in_the_force_function():
    # a 1D-like harmonic well V = |q|^2 / 2 given as a plain function
    q0 = np.array([[1.0, 0.0]])
    p0 = np.array([[0.0, 1.0]])
    run = velocity_verlet(lambda q: (0.5 * float(np.sum(q * q)), -q), q0, p0, np.ones(1),
                          dt=0.001, steps=6284, save_every=6284, save_forces=True)
    assert np.allclose(run.q[-1], q0, atol=2e-3)  # one period 2 pi
    assert np.allclose(run.forces[-1], -run.q[-1])
    assert run.total[-1] == pytest.approx(1.0, rel=1e-6)
    assert np.array_equal(q0, [[1.0, 0.0]])  # the caller's arrays are untouched


# -- data generation ---------------------------------------------------------
@pytest.fixture(scope="module", params=["lattice", "cutoff"])
def dataset(request):
    if request.param == "lattice":
        s = builders.square_lattice(3, 3, potential="anharmonic")
    else:
        s = builders.molecular(64, density=0.6, dim=2, cutoff=2.5)
    spec = DataSpec(n_trajectories=5, steps=60, dt=0.005, save_every=10, displacement=0.05,
                    test_fraction=0.4, seed=3)
    return s, spec, generate(s, spec)


def test_dataset_derivatives_and_energies_are_exact(dataset):
    s, spec, d = dataset
    assert d.n_snapshots == 5 * 7
    dq, dp = derivatives(s, d.q, d.p)
    assert np.allclose(d.dqdt, dq, rtol=1e-14, atol=0)
    assert np.allclose(d.dpdt, dp, rtol=1e-11, atol=1e-12)
    assert np.allclose(d.energy, hamiltonian(s, d.q, d.p), rtol=1e-12)
    assert np.max(np.abs(d.dpdt)) > 1e-3


def test_dataset_snapshots_are_the_saved_frames_of_its_trajectories(dataset):
    s, spec, d = dataset
    assert len(d.trajectories) == 5
    for idx in range(d.n_snapshots):
        k, f = d.meta["trajectory_of_snapshot"][idx], d.meta["frame_of_snapshot"][idx]
        assert np.array_equal(d.q[idx], d.trajectories[k].q[f])
        assert np.array_equal(d.p[idx], d.trajectories[k].p[f])
    assert d.trajectories[0].dt == spec.dt and d.trajectories[0].save_every == spec.save_every


def test_dataset_split_is_disjoint_and_by_trajectory(dataset):
    s, spec, d = dataset
    train, test = set(d.train.tolist()), set(d.test.tolist())
    assert not train & test and train | test == set(range(d.n_snapshots))
    traj = d.meta["trajectory_of_snapshot"]
    assert set(traj[d.test]).isdisjoint(set(traj[d.train]))
    assert d.meta["split"] == "trajectory" and len(d.meta["test_trajectories"]) == 2


def test_generation_is_reproducible_from_its_seed():
    s = builders.chain(4, potential="morse")
    spec = DataSpec(n_trajectories=4, steps=20, save_every=5, seed=7)
    a, b = generate(s, spec), generate(s, spec)
    assert np.array_equal(a.q, b.q) and np.array_equal(a.p, b.p) and np.array_equal(a.dpdt, b.dpdt)
    assert np.array_equal(a.test, b.test)
    c = generate(s, DataSpec(n_trajectories=4, steps=20, save_every=5, seed=8))
    assert not np.array_equal(a.q, c.q)


def test_single_trajectory_is_split_by_snapshot():
    s = builders.chain(4)
    d = generate(s, DataSpec(n_trajectories=1, steps=90, save_every=10, test_fraction=0.3))
    assert d.meta["split"] == "snapshot"
    assert len(d.test) == 3 and len(d.train) == 7
    assert not set(d.train) & set(d.test)


def test_generate_reports_progress_and_can_be_cancelled():
    s = builders.chain(4)
    seen = []
    generate(s, DataSpec(n_trajectories=3, steps=10), progress=lambda st, x: seen.append((st, x)))
    assert {st for st, _ in seen} == {"simulate"}
    fr = [x for _, x in seen]
    assert fr == sorted(fr) and fr[-1] == 1.0
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        generate(s, DataSpec(), cancel=token)


def test_random_snapshots_have_the_requested_spread_and_exact_derivatives():
    s = builders.cubic_lattice(3, 3, 3)
    d = random_snapshots(s, 500, displacement=0.1, momentum=0.1, seed=1)
    assert d.q.shape == (500, 27, 3) and len(d.train) == 500 and len(d.test) == 0
    assert d.trajectories == []
    assert np.std(d.q - s.positions) == pytest.approx(0.1, rel=0.03)
    # momenta have sd 0.1 before the centre-of-mass part (1/27 of the variance) is removed
    assert np.std(d.p) == pytest.approx(0.1 * np.sqrt(26 / 27), rel=0.03)
    assert np.allclose(d.p.sum(axis=1), 0.0, atol=1e-14)
    dq, dp = derivatives(s, d.q, d.p)
    assert np.allclose(d.dpdt, dp, rtol=1e-12, atol=1e-14) and np.allclose(d.dqdt, dq)
    assert np.allclose(d.energy, hamiltonian(s, d.q, d.p), rtol=1e-12)
    again = random_snapshots(s, 500, displacement=0.1, momentum=0.1, seed=1)
    assert np.array_equal(again.q, d.q) and np.array_equal(again.p, d.p)
    other = random_snapshots(s, 500, seed=2)
    assert not np.array_equal(other.q, d.q)


def test_random_snapshots_of_a_cutoff_system_and_their_split():
    s = builders.molecular(64, density=0.8, dim=3, cutoff=2.0)
    d = random_snapshots(s, 40, displacement=0.05, momentum=0.2, seed=3, test_fraction=0.25)
    assert len(d.test) == 10 and not set(d.test) & set(d.train)
    _, dp = derivatives(s, d.q, d.p)
    assert np.allclose(d.dpdt, dp, rtol=1e-11, atol=1e-12)
