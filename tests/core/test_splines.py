"""Potentials as data (issue 12): the clamped cubic spline potential, its
continuations outside the knots, the Gaussian-random-field generator, the
built-in quartic spring, and spline potentials inside system files."""
import json
import subprocess
import sys

import numpy as np
import pytest

from core.errors import HGNError
from core.files.io import load_system, save_system
from core.physics.forces import ForceField
from core.physics.potentials import Harmonic, Morse, PairPotential, QuarticSpring, make_potential
from core.physics.simulate import simulate
from core.physics.splines import SplinePotential, grf_potential
from core.physics.system import make_system
from tests.core.file_cases import read_raw, write_raw

KNOTS = dict(r=[0.6, 0.8, 1.0, 1.3, 1.7, 2.2], V=[2.0, 0.4, -0.3, 0.1, 0.5, 0.7], slopes=[-9.0, 0.8])


def spline(**changes):
    return SplinePotential.from_params(**{**KNOTS, **changes})


def fd(pot, r, h=1e-6):
    return (pot.energy(r + h) - pot.energy(r - h)) / (2 * h)


def test_spline_interpolates_its_points_and_matches_the_end_slopes():
    s = spline()
    r = np.array(KNOTS["r"])
    assert np.max(np.abs(s.energy(r) - np.array(KNOTS["V"]))) < 1e-13
    assert s.dvdr(np.array(r[0])) == pytest.approx(-9.0, abs=1e-12)
    assert s.dvdr(np.array(r[-1])) == pytest.approx(0.8, abs=1e-12)
    # one-sided finite differences inside the range see the same slopes
    assert (s.energy(np.array(r[0] + 1e-7)) - s.energy(np.array(r[0]))) / 1e-7 == pytest.approx(-9.0, abs=1e-5)
    assert (s.energy(np.array(r[-1])) - s.energy(np.array(r[-1] - 1e-7))) / 1e-7 == pytest.approx(0.8, abs=1e-5)


def test_spline_is_the_clamped_cubic_through_a_cubic_exactly():
    # a cubic polynomial is its own clamped cubic spline: an independent check of the interpolant
    c = np.array([0.3, -1.2, 0.5, 2.0])  # V = c0 r^3 + c1 r^2 + c2 r + c3
    r = np.linspace(0.5, 2.5, 7)
    s = SplinePotential(r=tuple(r), V=tuple(np.polyval(c, r)), slopes=tuple(np.polyval(np.polyder(c), r[[0, -1]])))
    x = np.linspace(0.5, 2.5, 301)
    assert np.max(np.abs(s.energy(x) - np.polyval(c, x))) < 1e-12
    assert np.max(np.abs(s.dvdr(x) - np.polyval(np.polyder(c), x))) < 1e-11


def test_force_is_minus_dv_dr_everywhere_including_knots_and_range_ends():
    s = spline()
    knots = np.array(KNOTS["r"])
    r = np.concatenate([np.linspace(0.15, 3.5, 157), knots, knots + 1e-4, knots - 1e-4])
    deriv = s.dvdr(r)
    num = fd(s, r)
    # the spline is C2 inside; at r_lo and r_hi the continuations are C1 (V'' jumps), where the central
    # difference has an O(h) error: 1e-6 x |jump| is well below the tolerance
    assert np.max(np.abs(deriv - num) / np.maximum(1.0, np.abs(num))) < 2e-6
    # and the force of a dimer system is minus the gradient of its energy, on every side of the range
    for dist in (0.3, 0.6, 0.95, 1.7, 2.2, 3.0):
        sys_ = make_system(2, [[0.0, 0.0], [dist, 0.0]], potential=s, edges=[[0, 1]])
        ff = ForceField(sys_)
        q = sys_.positions.copy()
        v, f = ff.energy_forces(q)
        q[1, 0] += 1e-6
        vp = ff.energy(q)
        q[1, 0] -= 2e-6
        vm = ff.energy(q)
        assert f[1, 0] == pytest.approx(-(vp - vm) / 2e-6, rel=1e-5, abs=5e-6)  # O(h) at the C1 ends


@pytest.mark.parametrize("slopes", [[-9.0, 0.8], [0.0, 0.0], [3.0, -2.0]])
def test_energy_and_force_are_continuous_at_r_lo_and_r_hi(slopes):
    s = spline(slopes=slopes)
    for edge in (s.r_lo, s.r_hi):
        e = 1e-9
        left, right = np.array(edge - e), np.array(edge + e)
        assert abs(s.energy(left) - s.energy(right)) < 1e-7
        assert abs(s.dvdr(left) - s.dvdr(right)) < 1e-6


def test_wall_below_is_repulsive_and_tail_above_levels_off():
    s = spline()
    r = np.linspace(0.02, 0.5, 50)
    assert np.all(s.dvdr(r) < 0)  # pushes apart
    assert s.energy(np.array(0.02)) > 10.0
    # above: slope decays as exp(-(r - r_hi)/tau) to the constant V_hi + s_R tau
    far = np.array(s.r_hi + 40 * s.tau)
    assert s.energy(far) == pytest.approx(KNOTS["V"][-1] + 0.8 * s.tau, abs=1e-12)
    assert abs(s.dvdr(far)) < 1e-15
    flat = spline(slopes=[-9.0, 0.0])
    assert np.all(flat.energy(np.linspace(2.2001, 9.0, 20)) == KNOTS["V"][-1])
    assert np.all(flat.dvdr(np.linspace(2.2001, 9.0, 20)) == 0.0)


def test_spline_travels_as_json_and_rebuilds_the_same_function():
    s = spline()
    d = json.loads(json.dumps(s.to_dict()))
    t = PairPotential.from_dict(d)
    assert t == s
    r = np.linspace(0.1, 4.0, 1001)
    assert np.array_equal(t.energy(r), s.energy(r)) and np.array_equal(t.dvdr(r), s.dvdr(r))


@pytest.mark.parametrize("change,field", [
    (dict(r=[1.0], V=[0.0]), "'r'"),
    (dict(r=[0.6, 0.8, 0.8, 1.3, 1.7, 2.2]), "'r'"),
    (dict(r=[0.6, 0.5, 1.0, 1.3, 1.7, 2.2]), "'r'"),
    (dict(r=[0.0, 0.8, 1.0, 1.3, 1.7, 2.2]), "'r'"),
    (dict(V=[2.0, 0.4, float("nan"), 0.1, 0.5, 0.7]), "'V'"),
    (dict(V=[2.0, 0.4, float("inf"), 0.1, 0.5, 0.7]), "'V'"),
    (dict(V=[2.0, 0.4, 0.1]), "'V'"),
    (dict(V=[2.0, 0.4, "x", 0.1, 0.5, 0.7]), "'V'"),
    (dict(V="0.1 0.2"), "'V'"),
    (dict(slopes=[1.0]), "'slopes'"),
    (dict(slopes=[1.0, float("nan")]), "'slopes'"),
    (dict(wall=-1.0), "'wall'"),
    (dict(wall=True), "'wall'"),
    (dict(knots=3), "knots"),
])
def test_damaged_descriptions_are_refused_naming_the_field(change, field):
    d = {"kind": "spline", **KNOTS, **change}
    with pytest.raises(HGNError, match=field):
        PairPotential.from_dict(d)


def test_missing_knots_are_refused():
    with pytest.raises(HGNError, match="'V' is missing"):
        PairPotential.from_dict({"kind": "spline", "r": [0.5, 1.0]})


def test_grf_samples_are_bounded_and_reproducible():
    a = grf_potential(7, length_scale=0.25, amplitude=2.0)
    b = grf_potential(7, length_scale=0.25, amplitude=2.0)
    c = grf_potential(8, length_scale=0.25, amplitude=2.0)
    assert a.to_dict() == b.to_dict()
    r = np.linspace(0.1, 4.0, 2001)
    assert np.array_equal(a.energy(r), b.energy(r))
    assert a.V != c.V and not np.array_equal(a.energy(r), c.energy(r))
    for seed in range(40):
        p = grf_potential(seed, length_scale=0.3, amplitude=2.0)
        v = np.array(p.V)
        assert v.min() > 0.0 and v.max() <= 2.0 and v[0] == v[-1] == 2.0
        dense = p.energy(np.linspace(p.r_lo, p.r_hi, 2001))
        # the cubic between bounded knots overshoots a little at most (measured < 0.2 A over these seeds)
        assert dense.min() > -0.25 * 2.0 and dense.max() < 1.25 * 2.0
        assert np.all(p.energy(np.linspace(p.r_hi + 1e-9, 10.0, 50)) == 2.0)  # constant rim above


def test_grf_length_scale_controls_smoothness():
    rough = [np.abs(np.diff(grf_potential(s, length_scale=0.1).V, 2)).mean() for s in range(10)]
    smooth = [np.abs(np.diff(grf_potential(s, length_scale=0.6).V, 2)).mean() for s in range(10)]
    assert np.mean(smooth) < 0.5 * np.mean(rough)


@pytest.mark.parametrize("kw,msg", [(dict(seed=-1), "seed"), (dict(seed=1.5), "seed"),
                                    (dict(seed=1, length_scale=0.0), "length_scale"),
                                    (dict(seed=1, amplitude=float("nan")), "amplitude"),
                                    (dict(seed=1, r_lo=2.0, r_hi=1.0), "r_lo"),
                                    (dict(seed=1, knots=2), "knots")])
def test_grf_settings_are_checked(kw, msg):
    with pytest.raises(HGNError, match=msg):
        grf_potential(**kw)


def test_grf_is_the_same_in_another_process():
    code = ("import json; from core.physics.splines import grf_potential; "
            "print(json.dumps(grf_potential(11, length_scale=0.2, amplitude=1.5).to_dict()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == grf_potential(11, length_scale=0.2, amplitude=1.5).to_dict()


@pytest.mark.parametrize("true,lo,hi,tol", [(Harmonic(k=2.0, r0=1.0), 0.4, 1.8, 1e-12),
                                            (Morse(D=1.0, a=1.5, r0=1.1), 0.6, 2.2, 5e-5)])
def test_spline_fitted_to_a_potential_reproduces_its_ground_truth(true, lo, hi, tol):
    # a quadratic is its own clamped cubic spline (harmonic: the same trajectory to round-off);
    # Morse: interpolation error ~ h^4 with 57 knots
    knots = np.linspace(lo, hi, 57)
    s = SplinePotential.fit(true, knots)
    pos = [[0.0, 0.0], [1.0, 0.1], [2.05, -0.05], [2.9, 0.2]]
    edges = [[0, 1], [1, 2], [2, 3]]
    p0 = np.array([[0.1, 0.0], [-0.2, 0.1], [0.15, -0.1], [-0.05, 0.0]])
    a = simulate(make_system(2, pos, potential=true, edges=edges), pos, p0, dt=0.01, steps=800, save_every=10)
    b = simulate(make_system(2, pos, potential=s, edges=edges), pos, p0, dt=0.01, steps=800, save_every=10)
    spread = np.max(np.abs(a.q - a.q[0]))
    assert spread > 0.05  # the system moves
    err = np.max(np.abs(a.q - b.q)) + np.max(np.abs(a.p - b.p))
    assert err < tol, err
    if isinstance(true, Harmonic):
        return
    # a coarse spline is visibly worse: the check can see the interpolation error
    coarse = SplinePotential.fit(true, np.linspace(lo, hi, 4))
    c = simulate(make_system(2, pos, potential=coarse, edges=edges), pos, p0, dt=0.01, steps=800, save_every=10)
    assert np.max(np.abs(a.q - c.q)) + np.max(np.abs(a.p - c.p)) > 100 * err


def test_spline_systems_round_trip_bit_for_bit_through_files(tmp_path):
    pot = grf_potential(5)
    sys_ = make_system(2, [[0.0, 0.0], [1.2, 0.0], [2.3, 0.3]], potential=pot, edges=[[0, 1], [1, 2]])
    path = save_system(tmp_path / "s.hgn", sys_)
    back = load_system(path)
    assert back.potential == pot and back.potential.to_dict() == pot.to_dict()
    r = np.linspace(0.05, 5.0, 999)
    assert np.array_equal(back.potential.energy(r), pot.energy(r))
    assert np.array_equal(back.potential.dvdr(r), pot.dvdr(r))


@pytest.mark.parametrize("damage,msg", [
    (lambda d: d.update(V=d["V"][:-1]), "'V' has"),
    (lambda d: d.update(r=list(reversed(d["r"]))), "strictly increasing"),
    (lambda d: d.update(V=[*d["V"][:-1], "NaN"]), "'V'"),
    (lambda d: d.pop("r"), "'r' is missing"),
    (lambda d: d.update(slopes=[0.0, 0.0, 1.0]), "'slopes'"),
])
def test_damaged_spline_files_are_refused_clearly(tmp_path, damage, msg):
    sys_ = make_system(2, [[0.0, 0.0], [1.2, 0.0]], potential=spline(), edges=[[0, 1]])
    path = save_system(tmp_path / "s.hgn", sys_)
    header, arrays = read_raw(path)
    damage(header["system"]["potential"])
    write_raw(path, header, arrays)
    with pytest.raises(HGNError, match=msg):
        load_system(path)


def test_quartic_spring_is_the_neurips_benchmark_spring():
    q = make_potential("neurips-spring")
    assert isinstance(q, QuarticSpring)
    r = np.array([0.0, 0.5, 1.0, 1.5, 2.0])
    assert np.array_equal(q.energy(r), (r**2 - 1.0) ** 2)
    assert np.max(np.abs(q.dvdr(r) - fd(q, r))) < 1e-6
    assert q.r_min == 1.0 and q.dvdr(np.array(1.0)) == 0.0


def test_potential_files_are_read_and_refused_clearly(tmp_path):
    from core.physics.splines import read_potential_file

    f = tmp_path / "V.json"
    f.write_text(json.dumps({"kind": "spline", "r": KNOTS["r"], "V": KNOTS["V"], "slopes": KNOTS["slopes"]}))
    assert read_potential_file(f) == spline()
    f.write_text(json.dumps({"kind": "spline", "r": KNOTS["r"], "V": KNOTS["V"]}))
    assert read_potential_file(f).slopes == (0.0, 0.0)  # stated default
    for text, msg in [("{", "not valid JSON"), ("[1, 2]", "one JSON object"),
                      (json.dumps({"kind": "spline", "r": [1.0, 2.0], "V": [0.0]}), "'V' has 1 values"),
                      (json.dumps({"kind": "spline", "r": [1.0, 2.0], "V": [0.0, 1e400]}), "'V'")]:
        f.write_text(text)
        with pytest.raises(HGNError, match=msg) as err:
            read_potential_file(f)
        assert "V.json" in str(err.value)
    with pytest.raises(HGNError, match="does not exist"):
        read_potential_file(tmp_path / "missing.json")


def test_grf_from_command_line_settings():
    from core.physics.splines import grf_from_settings

    assert grf_from_settings(3, {"length_scale": 0.2, "knots": 20.0}) == grf_potential(3, length_scale=0.2, knots=20)
    with pytest.raises(HGNError, match="no setting"):
        grf_from_settings(3, {"sigma": 1.0})
    with pytest.raises(HGNError, match="knots"):
        grf_from_settings(3, {"knots": 20.5})


def test_models_and_datasets_fitted_on_a_spline_carry_it(tmp_path):
    from core.files.io import load_dataset, save_dataset
    from core.learning.rfhgn import FittedModel, RFConfig, fit
    from core.learning.rollout import rollout
    from core.physics.datagen import random_snapshots

    pot = grf_potential(2, length_scale=0.4)
    system = make_system(2, [[0.0, 0.0], [1.5, 0.0], [3.0, 0.1]], potential=pot, edges=[[0, 1], [1, 2]])
    ds = random_snapshots(system, 300, displacement=0.1, momentum=0.3, seed=1)
    back = load_dataset(save_dataset(tmp_path / "d.npz", ds))
    assert back.system.potential == pot
    model = fit(ds, RFConfig(edge_width=64, fast_tables=False))
    loaded = FittedModel.load(model.save(tmp_path / "m.npz"))
    assert loaded.train_system.potential == pot
    # a roll-out on a larger system of the same potential (zero-shot) runs and stays near the truth early on
    big = make_system(2, [[0.0, 0.0], [1.5, 0.0], [3.0, 0.1], [4.4, 0.0]], potential=pot,
                      edges=[[0, 1], [1, 2], [2, 3]])
    p0 = np.zeros((4, 2))
    p0[0, 0] = 0.2
    pred = rollout(loaded, big, big.positions, p0, 0.01, 50, 10)
    true = simulate(big, big.positions, p0, 0.01, 50, 10)
    assert pred.n_frames == true.n_frames
    assert np.max(np.abs(pred.q - true.q)) < 0.05 * np.max(np.abs(true.q - true.q[0])) + 1e-3


# -- the command line (python -m core simulate) ------------------------------------------------------------
def _cli(argv, capsys):
    from core.cli import app

    code = app.main(argv)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_cli_simulates_a_potential_file_bit_for_bit_as_the_python_api(tmp_path, capsys):
    from core.files.io import load_trajectory
    from core.physics.datagen import DataSpec
    from core.physics.initial import initial_state

    f = tmp_path / "V.json"
    f.write_text(json.dumps({"kind": "spline", **KNOTS}))
    out = tmp_path / "t.npz"
    code, text = _cli(["simulate", "--potential-file", str(f), "--kind", "chain", "--n", "3", "--steps", "60",
                       "--dt", "0.01", "--save-every", "3", "--seed", "2", "--integrator", "rk4", "--out", str(out),
                       "-q"], capsys)
    assert code == 0, text
    tr = load_trajectory(out)
    assert tr.system.potential == spline() and tr.meta["integrator"] == "rk4"
    from core.physics import builders

    system = builders.chain(3, potential=spline())
    spec = DataSpec()
    q0, p0 = initial_state(system, spec.displacement, spec.momentum, spec.temperature, seed=2)
    ref = simulate(system, q0, p0, dt=0.01, steps=60, save_every=3, integrator="rk4")
    assert np.array_equal(tr.q, ref.q) and np.array_equal(tr.p, ref.p)


def test_cli_draws_a_grf_potential_from_its_seed(tmp_path, capsys):
    from core.files.io import load_trajectory

    out = tmp_path / "t.npz"
    code, text = _cli(["simulate", "--potential", "grf", "--potential-seed", "4", "-P", "length_scale=0.2",
                       "-P", "amplitude=2", "--kind", "chain", "--n", "2", "--spacing", "1.5", "--steps", "20",
                       "--out", str(out), "-q"], capsys)
    assert code == 0, text
    assert load_trajectory(out).system.potential == grf_potential(4, length_scale=0.2, amplitude=2.0)


@pytest.mark.parametrize("argv,msg", [
    (["--potential-seed", "3"], "--potential grf only"),
    (["--potential", "grf", "-P", "sigma=1"], "no setting"),
    (["--potential-file", "{f}", "-P", "k=1"], "drop --potential"),
    (["--potential-file", "{missing}"], "does not exist"),
    (["--integrator", "euler"], "invalid choice"),
])
def test_cli_refuses_bad_potential_options_with_one_line(tmp_path, capsys, argv, msg):
    f = tmp_path / "V.json"
    f.write_text(json.dumps({"kind": "spline", **KNOTS}))
    argv = [a.format(f=f, missing=tmp_path / "nope.json") for a in argv]
    code, text = _cli(["simulate", "--kind", "chain", "--n", "2", "--steps", "5", "--out", str(tmp_path / "t.npz"),
                       *argv], capsys)
    assert code == 2 and msg in text
    assert "Traceback" not in text


def test_a_potential_written_by_one_process_is_simulated_by_another(tmp_path):
    from core.files.io import load_trajectory
    from core.physics.datagen import DataSpec
    from core.physics.initial import initial_state

    pot = grf_potential(9, length_scale=0.25)
    system = make_system(2, [[0.0, 0.0], [1.4, 0.0], [2.6, 0.2]], potential=pot, edges=[[0, 1], [1, 2]])
    path = save_system(tmp_path / "s.npz", system)
    out = tmp_path / "t.npz"
    cmd = [sys.executable, "-m", "core", "simulate", "--system", str(path), "--steps", "80", "--dt", "0.01",
           "--save-every", "4", "--seed", "5", "--integrator", "dop853", "--out", str(out), "-q"]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    tr = load_trajectory(out)
    assert tr.system.potential.to_dict() == pot.to_dict()
    spec = DataSpec()
    q0, p0 = initial_state(system, spec.displacement, spec.momentum, spec.temperature, seed=5)
    ref = simulate(system, q0, p0, dt=0.01, steps=80, save_every=4, integrator="dop853")
    assert np.array_equal(tr.q, ref.q) and np.array_equal(tr.p, ref.p)
    assert np.max(np.abs(tr.q - tr.q[0])) > 1e-3


def test_project_files_carry_a_spline_potential_and_its_trajectories(tmp_path):
    from core.files.project import Project, load_project, save_project

    pot = grf_potential(12)
    system = make_system(2, [[0.0, 0.0], [1.5, 0.0]], potential=pot, edges=[[0, 1]])
    tr = simulate(system, system.positions, np.array([[-0.2, 0.0], [0.2, 0.0]]), 0.02, 40, 4, integrator="dop853")
    back = load_project(save_project(tmp_path / "p.hgnproj", Project(system=system, ground_truth=[tr])))
    assert back.system.potential == pot
    assert back.ground_truth[0].system.potential == pot
    assert np.array_equal(back.ground_truth[0].q, tr.q) and back.ground_truth[0].meta["integrator"] == "dop853"


# -- models fitted on a random potential behave like any other (command line, zero-shot, another process) ----------
def test_a_model_fitted_on_a_grf_chain_rolls_out_zero_shot_here_and_in_another_process(tmp_path, capsys):
    import subprocess
    import sys
    from pathlib import Path

    from core.files.io import load_trajectory
    from core.learning.rfhgn import FittedModel

    pot = grf_potential(3, amplitude=2.0)
    a = f"{pot.r_min!r}"                               # the chain sits in the potential's deepest well
    data, model, out = tmp_path / "d.npz", tmp_path / "m.npz", tmp_path / "r.npz"
    code, text = _cli(["simulate", "--potential", "grf", "--potential-seed", "3", "-P", "amplitude=2", "--kind",
                       "chain", "--n", "4", "--spacing", a, "--steps", "200", "--dt", "0.01", "--save-every", "2",
                       "--trajectories", "6", "--out", str(tmp_path / "t.npz"), "--dataset-out", str(data), "-q"],
                      capsys)
    assert code == 0, text
    code, text = _cli(["train", "--data", str(data), "--out", str(model), "--edge-width", "64", "-q"], capsys)
    assert code == 0, text
    assert FittedModel.load(model).train_system.potential == pot            # the potential is in the model file
    # zero-shot: the chain twice as long, same potential, no refit
    code, text = _cli(["rollout", "--model", str(model), "--scale", "2", "--steps", "200", "--save-every", "10",
                       "--dt", "0.01", "--seed", "5", "--out", str(out), "--json", str(tmp_path / "r.json"), "-q"],
                      capsys)
    assert code == 0, text
    truth, pred = load_trajectory(out, index=0), load_trajectory(out, index=1)
    assert truth.system.n == pred.system.n == 8 and truth.system.potential == pot
    moved = np.max(np.abs(truth.q - truth.q[0]))
    assert moved > 1e-3 and np.max(np.abs(pred.q - truth.q)) < 0.1 * moved     # follows the truth
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["n_particles"] == 8 and result["outside_training_range"] is False
    assert result["final_position_mse"] < 1e-3 * float(np.mean((truth.q[-1] - truth.q[0]) ** 2))
    # another process knows nothing of this potential but what the model file says
    out2 = tmp_path / "r2.npz"
    root = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "-m", "core", "rollout", "--model", str(model), "--scale", "2", "--steps",
                        "200", "--save-every", "10", "--dt", "0.01", "--seed", "5", "--out", str(out2), "-q"],
                       capture_output=True, text=True, cwd=root, timeout=300)
    assert r.returncode == 0, r.stderr
    t2, p2 = load_trajectory(out2, index=0), load_trajectory(out2, index=1)
    assert t2.system.potential == pot
    assert np.array_equal(t2.q, truth.q)                                      # the same ground truth, bit for bit
    assert np.allclose(p2.q, pred.q, rtol=0, atol=1e-12)
