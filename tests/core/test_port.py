"""Damping and forcing (issue 13): the Strang-split integrator against the
analytic damped and driven oscillator and an independent ODE solver, its
order, exact velocity Verlet without damping and forcing, the energy balance,
the data it makes, the files that carry it, and bad settings refused."""
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from core.errors import HGNError
from core.physics import builders
from core.physics.datagen import DataSpec, generate
from core.physics.forces import ForceField
from core.physics.initial import initial_state
from core.physics.port import Drive, Port, energy_balance
from core.physics.simulate import simulate
from core.physics.system import make_system

M, K, C = 1.0, 1.0, 0.3  # mass, spring constant, friction coefficient


def pair(port, k=K, m=M):
    """Two particles on x joined by a spring k (rest length 1): their separation u = x1 - x0 - 1 obeys
    m u'' = -2k u - c u' + (F1 - F0) when both are damped by c; y stays 0."""
    return make_system(2, [[0.0, 0.0], [1.0, 0.0]], masses=m, potential="harmonic",
                       potential_params={"k": k, "r0": 1.0}, edges=[[0, 1]], port=port)


def oscillator(t, m, c, k, f0=0.0, w=1.0, phi=0.0, u0=0.0, v0=0.0):
    """The analytic solution of m u'' + c u' + k u = f0 cos(w t + phi) (underdamped), u(0)=u0, u'(0)=v0."""
    a = f0 * np.exp(1j * phi) / (k - m * w * w + 1j * c * w)  # steady state: Re(a e^{i w t})
    up = np.real(a * np.exp(1j * w * t))
    up0, vp0 = np.real(a), np.real(1j * w * a)
    s = c / (2 * m)
    wd = np.sqrt(k / m - s * s)
    c1 = u0 - up0
    c2 = (v0 - vp0 + s * c1) / wd
    return np.exp(-s * t) * (c1 * np.cos(wd * t) + c2 * np.sin(wd * t)) + up


def antisymmetric(c, amp, w, phi):
    """Damping c on both, and opposite drives on the two ends: the centre of mass is not driven."""
    return Port(c, (Drive((0,), amp, w, (-1.0, 0.0), phi), Drive((1,), amp, w, (1.0, 0.0), phi)))


Q0 = np.array([[0.0, 0.0], [1.1, 0.0]])
P0 = np.array([[0.05, 0.0], [-0.02, 0.0]])


def separation(tr):
    return tr.q[:, 1, 0] - tr.q[:, 0, 0] - 1.0


def run_pair(port, dt, t_end=20.0, frames=100):
    steps = int(round(t_end / dt))
    return simulate(pair(port), Q0, P0, dt, steps, save_every=steps // frames)


# -- analytic oscillators ------------------------------------------------------
def test_damped_oscillator_matches_the_analytic_solution_to_second_order():
    errors = []
    for dt in (0.02, 0.01, 0.005):
        tr = run_pair(Port(C), dt)
        u = separation(tr)
        ua = oscillator(tr.t, M, C, 2 * K, u0=0.1, v0=(P0[1, 0] - P0[0, 0]) / M)
        errors.append(np.abs(u - ua).max())
        assert np.abs(tr.q[:, :, 1]).max() == 0.0
    # it really decays (to exp(-c t / 2m) = 0.05 of the start by t = 20)
    assert errors[-1] < 2e-5, errors
    ratios = [errors[0] / errors[1], errors[1] / errors[2]]
    assert all(3.6 < r < 4.4 for r in ratios), ratios
    u = separation(tr)
    assert np.abs(u[-10:]).max() < 0.1 * np.abs(u[:10]).max()


def test_driven_damped_oscillator_transient_and_steady_state():
    amp, w, phi = 0.2, 1.7, 0.4
    errors = []
    for dt in (0.02, 0.01, 0.005):
        tr = run_pair(antisymmetric(C, amp, w, phi), dt, t_end=60.0, frames=600)
        u = separation(tr)
        ua = oscillator(tr.t, M, C, 2 * K, 2 * amp, w, phi, u0=0.1, v0=(P0[1, 0] - P0[0, 0]) / M)
        errors.append(np.abs(u - ua).max())
    assert errors[-1] < 3e-5, errors
    ratios = [errors[0] / errors[1], errors[1] / errors[2]]
    assert all(3.6 < r < 4.4 for r in ratios), ratios
    # steady state (transient decayed by exp(-0.15 * 40) = 2.5e-3): least-squares amplitude and phase of the
    # simulated u against the textbook |F| / sqrt((k - m w^2)^2 + (c w)^2) and lag atan2(c w, k - m w^2)
    late = tr.t > 40.0
    t = tr.t[late]
    basis = np.stack([np.cos(w * t + phi), np.sin(w * t + phi)], axis=1)
    (a, b), *_ = np.linalg.lstsq(basis, u[late], rcond=None)
    amp_sim, lag_sim = np.hypot(a, b), np.arctan2(b, a)
    k_eff = 2 * K
    amp_true = 2 * amp / np.hypot(k_eff - M * w * w, C * w)
    lag_true = np.arctan2(C * w, k_eff - M * w * w)
    assert abs(amp_sim / amp_true - 1) < 5e-3, (amp_sim, amp_true)
    assert abs(lag_sim - lag_true) < 5e-3, (lag_sim, lag_true)


def test_constant_field_accelerates_the_centre_of_mass_exactly():
    # a constant force is integrated exactly by the splitting: X(t) = X0 + V0 t + g t^2 / 2 to round-off
    g = (0.3, -0.5)
    s = pair(Port(0.0, (), g), m=2.0)
    tr = simulate(s, Q0, P0, 0.01, 500, save_every=50)
    x = tr.q.mean(axis=1)
    v0 = P0.sum(axis=0) / 4.0
    want = Q0.mean(axis=0)[None, :] + v0[None, :] * tr.t[:, None] + 0.5 * np.asarray(g)[None, :] * tr.t[:, None] ** 2
    np.testing.assert_allclose(x, want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(tr.momentum, P0.sum(axis=0) + 4.0 * np.asarray(g) * tr.t[:, None], atol=1e-12)


def rhs(system):
    """dy/dt of the port-Hamiltonian ODE, written independently of core.physics.port."""
    ff = ForceField(system)
    m = system.masses[:, None]
    gamma = np.asarray(system.port.gamma(system.n))[:, None]

    def f(t, y):
        q, p = y.reshape(2, system.n, system.dim)
        ext = np.zeros_like(p)
        for d in system.port.drives:
            u = np.asarray(d.direction) / np.linalg.norm(d.direction)
            ext[list(d.nodes)] += d.amplitude * np.cos(d.frequency * t + d.phase) * u
        if system.port.field is not None:
            ext += m * np.asarray(system.port.field)
        return np.concatenate([(p / m).ravel(), (ff.forces(q) - gamma * p / m + ext).ravel()])
    return f


def boundary_driven(n=3):
    base = builders.square_lattice(n, n, potential="morse")
    gamma = np.zeros(base.n)
    edge = np.flatnonzero(np.isclose(base.positions[:, 0], base.positions[:, 0].max()))
    gamma[edge] = 0.4  # a damped boundary layer
    port = Port(gamma, (Drive(tuple(np.flatnonzero(np.isclose(base.positions[:, 0], 0.0))), 0.3, 2.1,
                              (1.0, 0.5), 0.7),), (0.0, -0.05))
    return base.copy(port=port)


def test_per_particle_damping_drive_and_field_match_an_independent_ode_solver_to_second_order():
    s = boundary_driven()
    q0, p0 = initial_state(s, 0.05, 0.05, seed=3)
    t_end = 5.0
    sol = solve_ivp(rhs(s), (0, t_end), np.concatenate([q0.ravel(), p0.ravel()]), method="DOP853",
                    rtol=1e-12, atol=1e-12, t_eval=np.linspace(0, t_end, 11))
    ref = sol.y.T.reshape(-1, 2, s.n, s.dim)
    errors = []
    for dt in (0.01, 0.005):
        tr = simulate(s, q0, p0, dt, int(round(t_end / dt)), save_every=int(round(0.5 / dt)))
        errors.append(max(np.abs(tr.q - ref[:, 0]).max(), np.abs(tr.p - ref[:, 1]).max()))
    assert errors[1] < 1e-4, errors
    assert 3.5 < errors[0] / errors[1] < 4.5, errors


# -- Verlet unchanged ------------------------------------------------------------
def test_without_damping_and_forcing_it_is_velocity_verlet_bit_for_bit():
    base = builders.square_lattice(3, 3)
    q0, p0 = initial_state(base, 0.1, 0.1, seed=1)
    ref = simulate(base, q0, p0, 0.01, 200, save_every=10)
    for port in (Port(0.0), Port(np.zeros(base.n)), Port(0.0, (), (0.0, 0.0))):
        tr = simulate(base.copy(port=port), q0, p0, 0.01, 200, save_every=10)
        for name in ("q", "p", "kinetic", "potential", "momentum", "t"):
            assert np.array_equal(getattr(tr, name), getattr(ref, name)), (port, name)
        assert "injected" not in tr.meta


# -- energy balance ---------------------------------------------------------------
def test_energy_balance_closes_to_second_order_and_the_per_step_sums_beat_the_saved_frames():
    s = boundary_driven()
    q0, p0 = initial_state(s, 0.05, 0.05, seed=4)
    res, saved = [], []
    for dt in (0.02, 0.01, 0.005):
        tr = simulate(s, q0, p0, dt, int(round(10.0 / dt)), save_every=int(round(0.2 / dt)))
        b = energy_balance(tr)
        assert b["accumulated"]
        res.append(np.abs(b["residual"]).max())
        saved.append(np.abs(b["residual_saved"]).max())
        # energy really flows in and out, far more than the residual
        assert b["injected"][-1] > 1e3 * res[-1] and b["dissipated"][-1] > 1e3 * res[-1]
    assert 3.5 < res[0] / res[1] < 4.5 and 3.5 < res[1] / res[2] < 4.5, res
    assert res[-1] < 10 * saved[-1], (res, saved)  # saved frames 0.2 apart: a coarser quadrature
    # an undamped, undriven run: nothing injected or dissipated, the residual is its drift
    base = builders.square_lattice(3, 3)
    tr = simulate(base, q0, p0, 0.01, 100, save_every=10)
    b = energy_balance(tr)
    assert not b["accumulated"] and not b["injected"].any() and not b["dissipated"].any()
    np.testing.assert_array_equal(b["residual"], tr.total - tr.total[0])


def test_the_blow_up_check_follows_the_balance_not_h0():
    # driven at resonance from rest at equilibrium (H(0) = 0): H grows beyond the system's own energy
    # scale (1.5x), which the undriven bound |H - H(0)| <= 1.0 x max(K(0) + |V(0)|, energy floor) calls a blow-up;
    # against the balance the run is fine (steady amplitude 2A / (c w0) = 0.71 < 1: the pair never crosses)
    from core.physics.integrators import ENERGY_ERROR_LIMIT
    from core.physics.simulate import energy_floor

    w0 = np.sqrt(2 * K / M)
    s = pair(antisymmetric(0.02, 0.01, w0, 0.0))
    tr = simulate(s, Q0 * [[1, 1], [1 / 1.1, 1]], 0 * P0, 0.01, 20000, save_every=100)
    assert tr.total[0] == 0.0
    assert np.max(tr.total) > 1.4 * ENERGY_ERROR_LIMIT * energy_floor(s), (np.max(tr.total), energy_floor(s))
    assert np.abs(separation(tr)).max() < 0.9
    # a real blow-up (dt beyond the stability limit 2 / w) is still caught
    with pytest.raises(HGNError, match="blew up"):
        simulate(s, Q0, P0, 1.5, 400, save_every=1)


def test_reference_integrators_refuse_a_damped_system_clearly():
    with pytest.raises(HGNError, match="verlet"):
        simulate(pair(Port(C)), Q0, P0, 0.01, 10, integrator="rk4")


# -- data ---------------------------------------------------------------------------
def test_generated_data_carry_the_full_dpdt_and_the_times():
    s = boundary_driven()
    ds = generate(s, DataSpec(n_trajectories=2, steps=400, dt=0.0025, save_every=1, test_fraction=0.0))
    t = ds.meta["time_of_snapshot"]
    tr = ds.trajectories[0]
    n = tr.n_frames
    np.testing.assert_array_equal(t[:n], tr.t)
    # central differences of the saved momenta: O(dt^2) close to the stored dp/dt
    fd = (tr.p[2:] - tr.p[:-2]) / (2 * 0.0025)
    err = np.abs(fd - ds.dpdt[1:n - 1]).max()
    assert err < 1e-4 * np.abs(ds.dpdt[:n]).max(), err
    # and that is not the conservative force alone
    ff = ForceField(s)
    assert np.abs(ds.dpdt[5] - ff.forces(ds.q[5])).max() > 1e-2


# -- files ---------------------------------------------------------------------------
def test_files_round_trip_damping_and_forcing(tmp_path):
    from core.files.io import load_dataset, load_system, load_trajectories, save_dataset, save_system, \
        save_trajectories

    s = boundary_driven()
    back = load_system(save_system(tmp_path / "s.npz", s))
    assert back.port.to_dict() == s.port.to_dict()
    np.testing.assert_array_equal(back.port.damping, s.port.damping)
    assert back.port.drives == s.port.drives and back.port.field == s.port.field
    uniform = pair(antisymmetric(C, 0.2, 1.7, 0.4))
    assert load_system(save_system(tmp_path / "u.npz", uniform)).port.to_dict() == uniform.port.to_dict()
    q0, p0 = initial_state(s, 0.05, 0.05, seed=1)
    tr = simulate(s, q0, p0, 0.01, 50, save_every=10)
    tb = load_trajectories(save_trajectories(tmp_path / "t.npz", tr))[0]
    np.testing.assert_array_equal(tb.meta["injected"], tr.meta["injected"])
    np.testing.assert_array_equal(energy_balance(tb)["residual"], energy_balance(tr)["residual"])
    ds = generate(s, DataSpec(n_trajectories=1, steps=20, dt=0.01, save_every=5))
    db = load_dataset(save_dataset(tmp_path / "d.npz", ds))
    np.testing.assert_array_equal(db.meta["time_of_snapshot"], ds.meta["time_of_snapshot"])
    assert db.system.port.to_dict() == s.port.to_dict()
    # extended XYZ written by HGN Studio keeps the system's record, port included
    from core.files.xyz import read_trajectory, write_trajectory

    xb = read_trajectory(write_trajectory(tmp_path / "t.xyz", tr))
    assert xb.system.port.to_dict() == s.port.to_dict()
    # an undamped system writes no port at all (old files unchanged) and loads without one
    plain = builders.chain(3)
    assert "port" not in plain.to_header()
    assert load_system(save_system(tmp_path / "p.npz", plain)).port is None


def test_a_damaged_port_in_a_file_is_refused_naming_the_file_and_field(tmp_path):
    from core.container import load_npz, save_npz
    from core.files.io import load_system, save_system

    path = save_system(tmp_path / "s.npz", pair(Port(C, (Drive((1,), 0.2, 1.0, (1.0, 0.0)),))))
    header, arrays = load_npz(path)
    for change, words in ((lambda h: h["system"]["port"].update(damping=-1.0), "damping must be >= 0"),
                          (lambda h: h["system"]["port"]["drives"][0].update(frequency=0.0), "frequency"),
                          (lambda h: h["system"]["port"]["drives"][0].update(nodes=[7]), "node 7 does not exist"),
                          (lambda h: h["system"]["port"].update(field=["a", 1]), "field")):
        h = {k: v for k, v in header.items() if k not in ("format", "version", "kind")}
        import copy

        h = copy.deepcopy(h)
        change(h)
        bad = save_npz(tmp_path / "bad.npz", "system", h, arrays)
        with pytest.raises(HGNError, match=words) as info:
            load_system(bad)
        assert "bad.npz" in str(info.value)


# -- bad settings ------------------------------------------------------------------------
@pytest.mark.parametrize("make, words", [
    (lambda: Port(-0.1), "damping must be >= 0"),
    (lambda: Port(float("nan")), "finite"),
    (lambda: Port([0.1, -1.0]), "particle 1"),
    (lambda: Drive((0,), 1.0, 0.0, (1, 0), 0.5), "frequency must be > 0"),
    (lambda: Drive((0,), 1.0, -2.0, (1, 0)), "frequency must be > 0"),
    (lambda: Drive((0,), 1.0, 1.0, (0, 0)), "zero vector"),
    (lambda: Drive((0,), -1.0, 1.0, (1, 0)), "amplitude must be >= 0"),
    (lambda: Drive((), 1.0, 1.0, (1, 0)), "at least one node"),
    (lambda: Drive((0, 0), 1.0, 1.0, (1, 0)), "listed twice"),
    (lambda: Drive((-1,), 1.0, 1.0, (1, 0)), "does not exist"),
    (lambda: pair(Port(0.0, (Drive((2,), 1.0, 1.0, (1, 0)),))), "node 2 does not exist"),
    (lambda: pair(Port(0.0, (Drive((1,), 1.0, 1.0, (1, 0, 0)),))), "3 components; the system is 2D"),
    (lambda: pair(Port([0.1, 0.1, 0.1])), "one value per particle"),
    (lambda: pair(Port(0.0, (), (0.0, 1.0, 0.0))), "field"),
])
def test_bad_settings_are_refused_clearly(make, words):
    with pytest.raises(HGNError, match=words):
        make()


def test_random_snapshots_of_a_damped_system_include_the_damping_and_a_driven_one_is_refused():
    from core.physics.datagen import random_snapshots

    s = builders.chain(4).copy(port=Port(0.3))
    ds = random_snapshots(s, 5, seed=1)
    ff = ForceField(s)
    for k in range(5):
        np.testing.assert_allclose(ds.dpdt[k], ff.forces(ds.q[k]) - 0.3 * ds.p[k], rtol=0, atol=1e-15)
    with pytest.raises(HGNError, match="time series"):
        random_snapshots(boundary_driven(), 5)


def test_a_driven_damped_run_in_chunks_is_one_run():
    # 3 chunks, each passing the first chunk's energy reference (as the studio's pipeline does) and its start
    # time t0: the frames are those of one run, bit for bit; the balance of each chunk is measured from its
    # own start (its H(t0)), with the first chunk's scale
    s = pair(Port(0.5, (Drive((1,), 0.05, 1.7, (1.0, 0.0)),)))
    one = simulate(s, Q0, P0, 0.01, 600, save_every=10)
    q, p, t0, ref, parts = Q0, P0, 0.0, None, []
    for _ in range(3):
        tr = simulate(s, q, p, 0.01, 200, save_every=10, energy_reference=ref, t0=t0)
        ref = ref or tr.meta["energy_reference"]
        assert tr.meta["energy_reference"] == [tr.total[0], ref[1]]
        parts.append(tr)
        q, p, t0 = tr.q[-1], tr.p[-1], tr.t[-1]
    qs = np.concatenate([parts[0].q] + [x.q[1:] for x in parts[1:]])
    ts = np.concatenate([parts[0].t] + [x.t[1:] for x in parts[1:]])
    np.testing.assert_array_equal(qs, one.q)
    np.testing.assert_allclose(ts, one.t, rtol=0, atol=1e-12)
    # without t0 the drive would restart at t = 0 in every chunk
    late = simulate(s, parts[1].q[0], parts[1].p[0], 0.01, 200, save_every=10)
    assert not np.array_equal(late.q, parts[1].q)


# -- carrying a port to another system (zero-shot) ------------------------------------------
def test_transfer_port_drives_and_damps_the_corresponding_particles_of_a_larger_lattice():
    from core.physics.port import transfer_port

    a, b = builders.square_lattice(4, 4), builders.square_lattice(9, 9)
    xa, xb = a.positions[:, 0], b.positions[:, 0]
    edge_a = tuple(int(i) for i in np.flatnonzero(xa == xa.min()))
    edge_b = sorted(int(i) for i in np.flatnonzero(xb == xb.min()))
    # identified-like: one Drive per node, amplitudes and phases differing slightly; ~0 on other nodes
    drives = [Drive((i,), 0.1 * (1 + 1e-4 * k), 1.3, (1.0, 1e-5 * k), 0.3 + 1e-5 * k) for k, i in enumerate(edge_a)]
    drives.append(Drive((5,), 1e-9, 1.3, (0.0, 1.0)))
    far = np.where(a.positions[:, 1] == a.positions[:, 1].max(), 0.2, 0.0)
    port = transfer_port(Port(far, tuple(drives), (0.0, -0.01)), a, b)
    assert sorted(i for d in port.drives for i in d.nodes) == edge_b
    for d in port.drives:
        assert abs(d.amplitude / 0.1 - 1) < 1e-3 and abs(d.phase - 0.3) < 1e-3 and d.frequency == 1.3
        assert abs(d.unit[0] - 1) < 1e-8
    np.testing.assert_array_equal(port.damping, np.where(b.positions[:, 1] == b.positions[:, 1].max(), 0.2, 0.0))
    assert port.field == (0.0, -0.01)
    # the forces they make: F on the target's edge = the source's edge force at every time
    fa = Port(0.0, tuple(drives), (0.0, -0.01)).terms(a.masses, 2).external(0.7)[list(edge_a)]
    fb = port.terms(b.masses, 2).external(0.7)[edge_b]
    np.testing.assert_allclose(fb, np.broadcast_to(fa.mean(axis=0), fb.shape), rtol=1e-3, atol=1e-6)


def test_transfer_port_refuses_what_has_no_counterpart():
    from core.physics.port import transfer_port

    a, b = builders.square_lattice(4, 4), builders.square_lattice(9, 9)
    with pytest.raises(HGNError, match="varies within one group"):
        transfer_port(Port(0.0, (Drive((0, 1), 0.1, 1.0, (1.0, 0.0)),)), a, b)  # part of one edge only
    with pytest.raises(HGNError, match="2D system to a 3D"):
        transfer_port(Port(0.1), a, builders.cubic_lattice(2, 2, 2))
    assert transfer_port(None, a, b) is None
    assert transfer_port(Port(0.1), a, b).damping == 0.1


def test_a_scaled_lattice_carries_the_port():
    from core.physics.builders import rebuild_scaled

    a = builders.square_lattice(3, 3)
    x = a.positions[:, 0]
    a = a.copy(port=Port(0.1, (Drive(tuple(int(i) for i in np.flatnonzero(x == x.min())), 0.2, 1.1, (1.0, 0.0)),)))
    b = rebuild_scaled(a, 3)
    xb = b.positions[:, 0]
    assert b.n == 81 and b.port.damping == 0.1
    assert sorted(i for d in b.port.drives for i in d.nodes) == np.flatnonzero(xb == xb.min()).tolist()
    assert rebuild_scaled(builders.square_lattice(3, 3), 2).port is None


def test_a_subset_of_a_driven_dataset_keeps_each_snapshots_time():
    """Dataset.subset takes meta['time_of_snapshot'] along (it kept the whole
    array before, misaligned with the chosen snapshots)."""
    from core.learning.rfhgn import RFConfig
    from core.learning.rfhgn.port import fit_port
    from core.physics.builders import chain
    from core.physics.datagen import DataSpec, generate
    from core.physics.port import Drive, Port

    s = chain(6).copy(port=Port(0.05, (Drive((0,), 0.1, 1.3, (1.0, 0.0)),)))
    ds = generate(s, DataSpec(n_trajectories=2, steps=200, dt=0.01, save_every=4))
    idx = np.arange(ds.n_snapshots)[::3]
    sub = ds.subset(idx)
    np.testing.assert_array_equal(sub.meta["time_of_snapshot"], np.asarray(ds.meta["time_of_snapshot"])[idx])
    ident = fit_port(sub, RFConfig()).info["port"]          # refused before (times of the wrong length)
    assert abs(ident["damping"] / 0.05 - 1) < 1e-3
