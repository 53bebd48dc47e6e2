"""Reference integrators (issue 12): RK4 and DOP853 converge at their orders
on an analytic oscillator, write frames at the ground truth's times, and
share velocity_verlet's signature, checks and result."""
import threading

import numpy as np
import pytest

from core.errors import Cancelled, HGNError
from core.physics import builders
from core.physics.forces import ForceField
from core.physics.integrators import velocity_verlet
from core.physics.reference import INTEGRATORS, dop853, integrator, rk4

OMEGA = 1.3
MASS = 0.7
T_END = 10.0


def oscillator(q):
    """A 1-D harmonic oscillator of frequency OMEGA and mass MASS: (V, F)."""
    k = MASS * OMEGA**2
    return 0.5 * k * float((q * q).sum()), -k * q


def exact(t, q0=1.0, p0=0.4):
    c, s = np.cos(OMEGA * t), np.sin(OMEGA * t)
    return q0 * c + p0 / (MASS * OMEGA) * s, -q0 * MASS * OMEGA * s + p0 * c


def final_error(run):
    q, p = exact(run.t[-1])
    return abs(run.q[-1, 0, 0] - q) + abs(run.p[-1, 0, 0] - p)


def slope(hs, errs):
    return np.polyfit(np.log(hs), np.log(errs), 1)[0]


def test_rk4_converges_at_fourth_order():
    hs = [0.1, 0.05, 0.025]
    errs = [final_error(rk4(oscillator, [[1.0]], [[0.4]], [MASS], h, int(round(T_END / h)), 10)) for h in hs]
    assert 3.8 < slope(hs, errs) < 4.2, errs
    # and Verlet under the same measurement is second order (the measurement separates the orders)
    errs_v = [final_error(velocity_verlet(oscillator, [[1.0]], [[0.4]], [MASS], h, int(round(T_END / h)), 10))
              for h in hs]
    assert 1.8 < slope(hs, errs_v) < 2.2, errs_v


def test_dop853_converges_at_eighth_order_with_a_fixed_step():
    # huge tolerances accept every step; first_step = max_step = h make it a fixed-step method
    hs = [1.0, 0.5, 0.25]
    errs = []
    for h in hs:
        n = int(round(T_END / h))
        errs.append(final_error(dop853(oscillator, [[1.0]], [[0.4]], [MASS], h, n, n, rtol=1e3, atol=1e3,
                                       max_step=h, first_step=h)))
    assert 7.5 < slope(hs, errs) < 8.5, errs


def test_dop853_reference_is_accurate_and_writes_frames_at_the_verlet_times():
    run = dop853(oscillator, [[1.0]], [[0.4]], [MASS], 0.01, 1000, 25)
    ver = velocity_verlet(oscillator, [[1.0]], [[0.4]], [MASS], 0.01, 1000, 25)
    assert np.array_equal(run.t, ver.t) and run.q.shape == ver.q.shape
    q, p = exact(run.t)
    err = np.max(np.abs(run.q[:, 0, 0] - q)) + np.max(np.abs(run.p[:, 0, 0] - p))
    assert err < 1e-10, err
    err_v = np.max(np.abs(ver.q[:, 0, 0] - q))
    assert err_v > 1e-6  # Verlet at dt 0.01 is far less accurate: the reference can tell
    # saved energies are those of the saved states
    assert np.allclose(run.potential, 0.5 * MASS * OMEGA**2 * run.q[:, 0, 0] ** 2, rtol=1e-14, atol=0)
    assert np.allclose(run.kinetic, run.p[:, 0, 0] ** 2 / (2 * MASS), rtol=1e-14, atol=0)


@pytest.mark.parametrize("name", sorted(INTEGRATORS))
def test_integrators_agree_on_a_system_with_the_ground_truth_signature(name):
    system = builders.chain(n=4, dim=2)
    rng = np.random.default_rng(0)
    q0 = system.positions + 0.05 * rng.standard_normal(system.positions.shape)
    p0 = 0.2 * rng.standard_normal(q0.shape)
    ff = ForceField(system)
    frames = []
    run = integrator(name)(ff.energy_forces, q0, p0, system.masses, 0.005, 400, 20, save_forces=True,
                           on_frame=frames.append)
    ref = dop853(ForceField(system).energy_forces, q0, p0, system.masses, 0.005, 400, 20)
    assert [f.index for f in frames] == list(range(len(run.t))) and len(run.t) == 21
    assert np.array_equal(run.t, ref.t)
    tol = {"verlet": 1e-4, "rk4": 1e-8, "dop853": 0.0}[name]
    assert np.max(np.abs(run.q - ref.q)) <= tol
    assert np.max(np.abs(run.q - q0)) > 1e-2  # it moved
    assert np.allclose(run.forces[-1], ForceField(system).forces(run.q[-1]), rtol=1e-13, atol=1e-13)
    assert np.allclose(run.total, run.total[0], rtol=0, atol=1e-3)


def test_rk4_blow_up_is_refused():
    with pytest.raises(HGNError, match="blew up"):
        rk4(oscillator, [[1.0]], [[0.4]], [MASS], 5.0, 200, 1)


def test_bad_settings_and_names_are_refused():
    with pytest.raises(HGNError, match="dt"):
        rk4(oscillator, [[1.0]], [[0.4]], [MASS], -0.1, 10)
    with pytest.raises(HGNError, match="masses"):
        dop853(oscillator, [[1.0]], [[0.4]], [MASS, 1.0], 0.1, 10)
    with pytest.raises(HGNError, match="rtol"):
        dop853(oscillator, [[1.0]], [[0.4]], [MASS], 0.1, 10, rtol=0.0)
    with pytest.raises(HGNError, match="unknown integrator"):
        integrator("euler")
    assert integrator("Velocity-Verlet") is velocity_verlet


@pytest.mark.parametrize("fn", [rk4, dop853])
def test_cancel_stops_a_reference_run(fn):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        fn(oscillator, [[1.0]], [[0.4]], [MASS], 0.01, 1000, 10, cancel=cancel)


@pytest.mark.parametrize("fn", [rk4, dop853])
def test_energy_reference_and_floor_are_honoured_like_verlet(fn):
    run = fn(oscillator, [[1.0]], [[0.4]], [MASS], 0.01, 100, 10)
    h0 = 0.5 * MASS * OMEGA**2 + 0.4**2 / (2 * MASS)
    assert run.energy_reference[0] == pytest.approx(h0, rel=1e-14)
    # a chunk continued with the first chunk's reference decides against it: a wrong H(0) with a tiny scale trips
    with pytest.raises(HGNError, match="blew up"):
        fn(oscillator, [[1.0]], [[0.4]], [MASS], 0.01, 100, 10, energy_reference=(h0 + 1.0, 1e-3))
    floored = fn(oscillator, [[1.0]], [[0.4]], [MASS], 0.01, 20, 10, energy_floor=50.0)
    assert floored.energy_reference[1] == 50.0


def test_training_data_follow_the_chosen_integrator():
    """DataSpec.integrator: the runs of generate() are integrated by it (the
    studio's ground-truth choice reaches the training data too); the saved
    states differ from Verlet's, the derivatives are the exact forces at them."""
    from core.physics.datagen import DataSpec, generate
    from core.physics.simulate import simulate

    system = builders.chain(5, dim=2)
    spec = dict(n_trajectories=2, steps=40, dt=0.05, save_every=4, seed=3)
    verlet = generate(system, DataSpec(**spec))
    rk = generate(system, DataSpec(**spec, integrator="rk4"))
    assert rk.meta["spec"]["integrator"] == "rk4"
    assert not np.allclose(rk.q, verlet.q, rtol=0, atol=1e-9)
    # the first run's saved states are an rk4 run from its start (frame 0 of the data)
    one = simulate(system, rk.q[0], rk.p[0], 0.05, 40, save_every=4, integrator="rk4")
    n = one.n_frames
    assert any(np.allclose(rk.q[k:k + n], one.q, rtol=0, atol=1e-12) for k in range(0, len(rk.q) - n + 1))
    ff = ForceField(system)
    assert np.allclose(rk.dpdt[5], ff.forces(rk.q[5]), rtol=0, atol=1e-12)
    with pytest.raises(HGNError, match="integrator"):
        DataSpec(**spec, integrator="euler").validate()
    assert DataSpec.from_dict({k: v for k, v in DataSpec().to_dict().items() if k != "integrator"}).integrator \
        == "verlet"                                              # settings saved before keep Verlet


# ----------------------------------------------------------------------
# the ground truth's own error against the DOP853 reference (issue 12)
# ----------------------------------------------------------------------
from core.physics.reference import ReferenceCheck, compare_to_reference, reference_check  # noqa: E402
from core.physics.simulate import simulate  # noqa: E402

DIMER_A = 0.2          # initial stretch of the harmonic dimer (k = 1, r0 = 1, masses 1)
DIMER_T = 8.0


def dimer():
    system = builders.chain(n=2, dim=2)          # harmonic k = 1, r0 = 1, unit masses
    q0 = system.positions.copy()
    q0[1, 0] += DIMER_A
    return system, q0, np.zeros_like(q0)


def dimer_exact(t):
    """Closed form: the bond length r(t) = 1 + a cos(sqrt(2) t), centre of mass at rest."""
    r = 1.0 + DIMER_A * np.cos(np.sqrt(2.0) * t)
    centre = 0.5 * (1.0 + DIMER_A)
    q = np.zeros((len(t), 2, 2))
    q[:, 0, 0] = centre - 0.5 * r
    q[:, 1, 0] = centre + 0.5 * r
    return q


def test_the_reference_of_a_harmonic_dimer_is_its_closed_form():
    system, q0, p0 = dimer()
    truth = simulate(system, q0, p0, 0.05, int(DIMER_T / 0.05), 4)
    from core.physics.reference import reference_trajectory

    ref = reference_trajectory(truth)
    assert np.array_equal(ref.t, truth.t)
    assert np.max(np.abs(ref.q - dimer_exact(ref.t))) < 1e-10
    # the check's errors are the truth's distance from the closed form (to the reference's accuracy)
    check = reference_check(truth)
    exact_err = np.sqrt(((truth.q - dimer_exact(truth.t)) ** 2).sum(-1)).max(-1)
    assert np.allclose(check.position_max, exact_err, rtol=0, atol=1e-9)
    assert check.position_max[0] == 0.0 and check.position_max[-1] > 1e-4
    assert check.integrator == "velocity-verlet" and "DOP853" in check.reference


# energy: Verlet's error is bounded and O(dt^2); RK4 damps a linear oscillator by
# |R(i h w)| = 1 - (h w)^6 / 144 + ... per step, i.e. O(dt^5) over a fixed time
@pytest.mark.parametrize("name,order,energy_order", [("verlet", 2, 2), ("rk4", 4, 5)])
def test_ground_truth_error_against_the_reference_scales_with_the_order(name, order, energy_order):
    system, q0, p0 = dimer()
    hs = [0.1, 0.05, 0.025]
    pos, energy = [], []
    for h in hs:
        n = int(round(DIMER_T / h))
        truth = simulate(system, q0, p0, h, n, n // 8, integrator=name)
        check = reference_check(truth)
        pos.append(check.position_max[-1])
        energy.append(np.max(np.abs(check.energy)))
    assert order - 0.25 < slope(hs, pos) < order + 0.25, pos
    assert energy_order - 0.3 < slope(hs, energy) < energy_order + 0.3, energy


def test_dop853_ground_truth_checks_as_exact_and_periodic_images_compare_alike():
    system, q0, p0 = dimer()
    truth = simulate(system, q0, p0, 0.05, 100, 10, integrator="dop853")
    check = reference_check(truth)
    assert np.max(check.position_max) < 1e-10 and np.max(np.abs(check.energy)) < 1e-10
    # a frame shifted by a whole box length is the same state in a periodic box
    box_sys = builders.chain(n=2, dim=2)
    box_sys.box = np.array([10.0, 10.0])
    shifted = simulate(box_sys, q0, p0, 0.05, 100, 10, integrator="dop853")
    shifted.q[3, 1, 0] += 10.0
    assert np.max(reference_check(shifted).position_max) < 1e-10
    shifted.system.box = None                       # without a box the shift is a real error
    assert np.max(compare_to_reference(shifted, truth).position_max) > 9.9


def test_the_check_round_trips_as_json_and_damaged_ones_are_refused():
    import json

    system, q0, p0 = dimer()
    check = reference_check(simulate(system, q0, p0, 0.1, 40, 5, integrator="rk4"))
    back = ReferenceCheck.from_dict(json.loads(json.dumps(check.to_dict())))
    for k in ReferenceCheck.SERIES:
        assert np.array_equal(getattr(back, k), getattr(check, k))
    assert (back.integrator, back.reference, back.dt) == (check.integrator, check.reference, check.dt)
    assert "largest position error" in back.summary()
    good = check.to_dict()
    for damage, words in [({"t": "x"}, "'t' must be a list"), ({"energy": good["energy"][:-1]}, "'energy' has"),
                          ({"position_max": [float("nan")] * len(good["t"])}, "NaN"),
                          ({"t": good["t"][::-1]}, "must increase"), ({"dt": -1}, "'dt'"),
                          ({"integrator": 3}, "'integrator'")]:
        with pytest.raises(HGNError, match=words):
            ReferenceCheck.from_dict({**good, **damage})
    with pytest.raises(HGNError, match="expected an object"):
        ReferenceCheck.from_dict([1, 2])


def test_the_check_refuses_frames_off_the_save_grid():
    system, q0, p0 = dimer()
    truth = simulate(system, q0, p0, 0.1, 40, 5)
    truth.t[3] += 0.05
    with pytest.raises(HGNError, match="not evenly spaced"):
        reference_check(truth)
    with pytest.raises(HGNError, match="needs a ground-truth Trajectory"):
        reference_check(np.zeros(3))


def test_a_damped_ground_truth_is_not_checked_against_a_conservative_reference():
    from core.physics.port import Port

    system, q0, p0 = dimer()
    damped = simulate(system.copy(port=Port(0.3)), q0, p0, 0.1, 40, 5)
    assert damped.total[-1] < 0.9 * damped.total[0]          # the damping acts
    with pytest.raises(HGNError, match="damped or driven.*conservative"):
        reference_check(damped)
