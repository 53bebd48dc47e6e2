"""The command line (core.cli.app): help, ``simulate`` against direct calls of
core, ``info``, and one-line errors with exit code 2. Commands run in-process
through ``core.cli.app.main(argv)``; one subprocess checks ``python -m core``."""
from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from core.physics import builders

from core.cli import app as cli

from core.files import io, xyz
from core.cli.simulate import TqdmProgress
from core.physics.forces import ForceField
from core.physics.initial import initial_state
from core.physics.simulate import simulate

ROOT = Path(__file__).resolve().parents[2]


def run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_same_arrays(a, b):
    for name in ("t", "q", "p", "kinetic", "potential", "momentum"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape and np.array_equal(x, y), name


# ----------------------------------------------------------------------
# help
# ----------------------------------------------------------------------
def test_top_level_help_lists_the_commands(capsys):
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    assert "simulate" in out and "info" in out and "COMMAND --help" in out


def test_simulate_help_explains_every_option(capsys):
    code, out, _ = run(["simulate", "--help"], capsys)
    assert code == 0
    options = ["--system", "--kind", "--n", "--m", "--l", "--spacing", "--mass", "--dim", "--potential", "--param",
               "--cutoff", "--density", "--periodic", "--jitter", "--displacement", "--momentum", "--temperature",
               "--seed", "--dt", "--steps", "--save-every", "--trajectories", "--out", "--dataset-out",
               "--test-fraction", "--symbol", "--forces", "--wrap", "--quiet"]
    for opt in options:
        assert opt in out, opt
    parser = cli.build_parser()
    sim = parser._subparsers._group_actions[0].choices["simulate"]
    for action in sim._actions:
        if action.option_strings and action.dest != "help":
            assert action.help and len(action.help) > 20, action.dest
            if action.default is not None and action.default is not False:
                assert "default" in action.help, action.dest  # every default is stated
    flat = " ".join(out.split())
    for unit in ("length units", "time units", "energy units", "mass units"):
        assert unit in flat


def test_python_dash_m_core_help_in_a_subprocess():
    r = subprocess.run([sys.executable, "-m", "core", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "usage: python -m core" in r.stdout and "simulate" in r.stdout


# ----------------------------------------------------------------------
# simulate
# ----------------------------------------------------------------------
def test_simulate_matches_a_direct_call_with_the_same_seed(tmp_path, capsys):
    f = tmp_path / "chain.npz"
    code, out, err = run(["simulate", "--kind", "chain", "--n", 6, "--potential", "morse", "-P", "D=2", "-P", "a=1.5",
                          "--dt", 0.02, "--steps", 60, "--save-every", 3, "--seed", 11, "--displacement", 0.05,
                          "--momentum", 0.2, "--out", f], capsys)
    assert code == 0, err
    assert f"wrote {f}" in out and "1 trajectory of 21 frames" in out
    (tr,) = io.load_trajectories(f)
    system = builders.chain(6, potential="morse", potential_params={"D": 2.0, "a": 1.5})
    q0, p0 = initial_state(system, 0.05, 0.2, None, seed=11)
    direct = simulate(system, q0, p0, dt=0.02, steps=60, save_every=3)
    assert_same_arrays(tr, direct)
    assert (tr.dt, tr.save_every, tr.label, tr.meta) == (direct.dt, direct.save_every, direct.label, direct.meta)
    assert tr.system.to_header() == system.to_header()
    assert np.array_equal(tr.system.edges, system.edges)


def test_several_trajectories_start_from_consecutive_seeds(tmp_path, capsys):
    f = tmp_path / "sq.npz"
    code, _, err = run(["simulate", "--kind", "square", "--n", 3, "--m", 2, "--trajectories", 3, "--seed", 5,
                        "--steps", 20, "--temperature", 0.05, "-q", "--out", f], capsys)
    assert code == 0, err
    trs = io.load_trajectories(f)
    assert len(trs) == 3 and all(t.system is trs[0].system for t in trs)
    system = builders.square_lattice(3, 2)
    for k, tr in enumerate(trs):
        q0, p0 = initial_state(system, 0.1, 0.1, 0.05, seed=5 + k)
        assert_same_arrays(tr, simulate(system, q0, p0, 0.01, 20, 10))


def test_simulate_writes_numbered_extxyz_files(tmp_path, capsys):
    f = tmp_path / "tri.xyz"
    code, out, err = run(["simulate", "--kind", "triangular", "--n", 3, "--m", 3, "--trajectories", 2,
                          "--steps", 10, "--save-every", 5, "--forces", "--symbol", "Ar", "--out", f], capsys)
    assert code == 0, err
    names = [tmp_path / "tri_0.xyz", tmp_path / "tri_1.xyz"]
    assert all(n.exists() for n in names) and not f.exists()
    system = builders.triangular_lattice(3, 3)
    for k, name in enumerate(names):
        assert f"wrote {name}" in out
        tr = xyz.read_trajectory(name)
        q0, p0 = initial_state(system, 0.1, 0.1, None, seed=k)
        direct = simulate(system, q0, p0, 0.01, 10, 5)
        assert np.max(np.abs(tr.q - direct.q)) < 1e-8 and np.array_equal(tr.potential, direct.potential)
        assert tr.meta["forces"].shape == direct.q.shape
    assert name.read_text().splitlines()[2].split()[0] == "Ar"


def test_dataset_out_holds_exact_derivatives_and_a_split_by_trajectory(tmp_path, capsys):
    d = tmp_path / "data.npz"
    code, out, err = run(["simulate", "--kind", "chain", "--n", 4, "--dim", 3, "--trajectories", 5, "--steps", 30,
                          "--save-every", 10, "--test-fraction", 0.2, "--dataset-out", d], capsys)
    assert code == 0, err
    ds = io.load_dataset(d)
    assert ds.n_snapshots == 5 * 4 and ds.system.dim == 3
    assert len(ds.trajectories) == 5
    # snapshots are the frames of the runs, in order
    assert np.array_equal(ds.q, np.concatenate([t.q for t in ds.trajectories]))
    assert np.array_equal(ds.energy, np.concatenate([t.total for t in ds.trajectories]))
    # derivatives against an independent evaluation: p/m and F(q)
    ff = ForceField(ds.system)
    assert np.allclose(ds.dpdt, np.stack([ff.forces(q) for q in ds.q]), rtol=1e-12, atol=1e-14)
    assert np.array_equal(ds.dqdt, ds.p / ds.system.masses[:, None])
    # one whole trajectory is held out
    traj_of = ds.meta["trajectory_of_snapshot"]
    assert ds.meta["split"] == "trajectory" and len(ds.meta["test_trajectories"]) == 1
    assert set(traj_of[ds.test]) == set(ds.meta["test_trajectories"])
    assert set(traj_of[ds.train]).isdisjoint(traj_of[ds.test])
    assert len(ds.train) + len(ds.test) == ds.n_snapshots


def test_simulate_from_a_system_file(tmp_path, capsys):
    s = builders.custom(2, [[0, 0], [1, 0], [0, 1], [1, 1]], edges=[[0, 1], [0, 2], [1, 3], [2, 3]],
                        masses=[1.0, 2.0, 1.0, 0.5], edge_scale=[1.0, 2.0, 0.5, 1.0])
    io.save_system(tmp_path / "s.npz", s)
    f = tmp_path / "t.npz"
    code, _, err = run(["simulate", "--system", tmp_path / "s.npz", "--steps", 20, "--seed", 3, "-q", "--out", f],
                       capsys)
    assert code == 0, err
    (tr,) = io.load_trajectories(f)
    assert np.array_equal(tr.system.edge_scale, s.edge_scale) and np.array_equal(tr.system.masses, s.masses)
    q0, p0 = initial_state(s, 0.1, 0.1, None, seed=3)
    assert_same_arrays(tr, simulate(s, q0, p0, 0.01, 20, 10))
    # a trajectory file also serves as the system
    code, _, err = run(["simulate", "--system", f, "--steps", 10, "-q", "--out", tmp_path / "u.npz"], capsys)
    assert code == 0, err


def test_simulate_a_periodic_molecular_system(tmp_path, capsys):
    f = tmp_path / "lj.npz"
    code, _, err = run(["simulate", "--kind", "molecular", "--n", 64, "--density", 0.5, "--cutoff", 1.8,
                        "--temperature", 0.2, "--displacement", 0.02, "--dt", 0.005, "--steps", 40, "-q",
                        "--out", f], capsys)
    assert code == 0, err
    (tr,) = io.load_trajectories(f)
    s = tr.system
    assert s.cutoff == 1.8 and s.box is not None and np.allclose(s.box, (64 / 0.5) ** (1 / 3))
    assert np.max(np.abs(tr.energy_drift())) < 1e-2


def test_progress_bar_follows_the_runs(capsys):
    bar = TqdmProgress(runs=2, steps=100, disable=False)
    bar.for_run(0)("simulate", 0.5)
    assert bar.bar.n == 50
    bar.for_run(0)("simulate", 1.0)
    bar.for_run(1)("simulate", 0.25)
    assert bar.bar.n == 125
    bar.for_run(1)("simulate", 1.0)
    assert bar.bar.n == bar.bar.total == 200
    bar.close()
    assert "simulate" in capsys.readouterr().err  # drawn on stderr


# ----------------------------------------------------------------------
# info
# ----------------------------------------------------------------------
def test_info_describes_files(tmp_path, capsys):
    f, d = tmp_path / "t.npz", tmp_path / "d.npz"
    code, _, err = run(["simulate", "--kind", "cubic", "--n", 2, "--steps", 10, "-q", "--out", f, "--dataset-out", d],
                       capsys)
    assert code == 0, err
    code, out, err = run(["info", f, d], capsys)
    assert code == 0, err
    assert "kind: trajectory" in out and "kind: dataset" in out and "8 particles in 3D" in out and "2 frames" in out


# ----------------------------------------------------------------------
# errors: one line, exit code 2
# ----------------------------------------------------------------------
BAD = [
    (["simulate", "--kind", "chain"], "--out FILE and/or --dataset-out"),
    (["simulate", "--kind", "hexagonal", "--out", "x.npz"], "invalid choice: 'hexagonal'"),
    (["simulate", "--steps", "many", "--out", "x.npz"], "invalid int value: 'many'"),
    (["simulate", "--bogus", "--out", "x.npz"], "unrecognized arguments: --bogus"),
    (["simulate", "--dt", "-0.1", "--out", "x.npz"], "dt must be > 0"),
    (["simulate", "--steps", "-5", "--out", "x.npz"], "steps"),
    (["simulate", "--kind", "chain", "--cutoff", "2", "--out", "x.npz"], "--cutoff does not apply to --kind chain"),
    (["simulate", "--kind", "square", "--dim", "3", "--out", "x.npz"], "--dim does not apply to --kind square"),
    (["simulate", "--potential", "yukawa", "--out", "x.npz"], "unknown potential 'yukawa'"),
    (["simulate", "-P", "k=-1", "--out", "x.npz"], "k must be > 0"),
    (["simulate", "-P", "stiffness=2", "--out", "x.npz"], "no parameter(s) ['stiffness']"),
    (["simulate", "-P", "k", "--out", "x.npz"], "--param expects NAME=VALUE"),
    (["simulate", "--n", "1", "--out", "x.npz"], "at least 2"),
    (["simulate", "--trajectories", "0", "--out", "x.npz"], "--trajectories must be at least 1"),
    (["simulate", "--test-fraction", "1.5", "--dataset-out", "x.npz"], "--test-fraction must be in [0, 1)"),
    (["simulate", "--dataset-out", "x.xyz"], "give a .npz name"),
    (["simulate", "--out", "no/such/folder/x.npz"], "folder no/such/folder does not exist"),
    (["simulate", "--system", "missing.npz", "--out", "x.npz"], "file not found: missing.npz"),
    (["simulate", "--kind", "molecular", "--n", "8", "--out", "x.npz"], "cutoff 2.5 is not below half the box"),
    (["info", "missing.npz"], "file not found"),
    (["info"], "the following arguments are required: FILE"),
    ([], "no command given; choose one of: simulate, "),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(a) or "(none)" for a, _ in BAD])
def test_bad_arguments_exit_2_with_one_error_line(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(argv, capsys)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert message in lines[0]
    assert "Traceback" not in err
    assert not (tmp_path / "x.npz").exists()


def test_system_file_with_build_options_is_refused(tmp_path, capsys):
    io.save_system(tmp_path / "s.npz", builders.chain(3))
    code, _, err = run(["simulate", "--system", tmp_path / "s.npz", "--n", 5, "--out", tmp_path / "x.npz"], capsys)
    assert code == 2 and "drop --n" in err


def test_blow_up_is_a_one_line_error(tmp_path, capsys):
    # harmonic chain with omega dt >> 2: Verlet is unstable and grows without bound
    code, out, err = run(["simulate", "--kind", "chain", "-P", "k=100", "--dt", 1, "--steps", 1000,
                          "--out", tmp_path / "x.npz"], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and "blew up" in err
    assert not (tmp_path / "x.npz").exists()


def test_a_new_command_module_is_one_line(monkeypatch, capsys):
    """What core.cli.model will do: a module with register(subparsers)."""
    seen = {}

    def register(sub):
        p = sub.add_parser("hello", help="say hello")
        p.add_argument("--name", default="world", help="who to greet (default: %(default)s)")
        p.set_defaults(func=lambda args: seen.setdefault("name", args.name) and 0)

    monkeypatch.setitem(sys.modules, "fake_cli_module", types.SimpleNamespace(register=register))
    monkeypatch.setattr(cli, "COMMAND_MODULES", cli.COMMAND_MODULES + ["fake_cli_module"])
    code, out, _ = run(["--help"], capsys)
    assert code == 0 and "hello" in out
    assert run(["hello", "--name", "HGN"], capsys)[0] == 0 and seen["name"] == "HGN"


def test_simulate_molecular_with_the_default_settings_runs(tmp_path, capsys):
    """`simulate --kind molecular` with nothing else given must work: a 0.1
    displacement at density 0.8 put Lennard-Jones pairs at r ~ 0.78 and blew
    up at step 9 with the default dt; systems with a cutoff default to a
    smaller displacement, the others keep 0.1."""
    code, out, err = run(["simulate", "--kind", "molecular", "--out", tmp_path / "md.npz"], capsys)
    assert code == 0, err
    (tr,) = io.load_trajectories(tmp_path / "md.npz")
    assert np.isfinite(tr.q).all() and abs(tr.energy_drift()).max() < 1e-2
    lattice = tr.system.positions
    assert np.sqrt(np.mean((tr.q[0] - lattice) ** 2)) == pytest.approx(0.02, rel=0.2)
    code, out, err = run(["simulate", "--kind", "chain", "--out", tmp_path / "chain.npz"], capsys)
    assert code == 0, err
    (ch,) = io.load_trajectories(tmp_path / "chain.npz")
    assert np.sqrt(np.mean((ch.q[0] - ch.system.positions) ** 2)) == pytest.approx(0.1, rel=0.3)


def test_info_names_the_integrator_and_a_divergence(tmp_path, capsys):
    from core.learning.rfhgn import TrueHamiltonian
    from core.learning.rollout import rollout

    code, out, err = run(["simulate", "--kind", "chain", "--n", "4", "--integrator", "rk4", "--steps", "20",
                          "--out", tmp_path / "rk.npz"], capsys)
    assert code == 0, err
    code, out, err = run(["info", tmp_path / "rk.npz"], capsys)
    assert code == 0 and ", rk4, saved every" in out, out
    system = builders.chain(4, dim=2)
    q0, p0 = initial_state(system, 0.1, 0.1, seed=0)
    tr = rollout(TrueHamiltonian(system), system, q0, p0, 2.5, 400, save_every=5)
    assert tr.diverged is not None
    io.save_trajectories(tmp_path / "div.npz", [tr])
    code, out, err = run(["info", tmp_path / "div.npz"], capsys)
    assert code == 0 and f"diverged at step {tr.diverged['step']} " in out, out
