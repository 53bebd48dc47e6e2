"""Issue 11, inputs half: every item of "Physics bug", "No silent garbage" and
"Inputs" as a test that fails on the code before the change (9e2be3b)."""
from __future__ import annotations

import numpy as np
import pytest

from core.errors import HGNError
from core.physics import builders
from core.physics.forces import ForceField, derivatives, potential_energy
from core.physics.initial import initial_state
from core.physics.neighbours import wrap
from core.physics.simulate import simulate


# ---------------------------------------------------------------------------
# physics bug: periodic boxes with wrapped positions
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lj_crossing():
    """A periodic LJ liquid whose unwrapped trajectory crosses the box faces."""
    s = builders.molecular(125, density=0.8, cutoff=2.5)
    q0, p0 = initial_state(s, displacement=0.0, momentum=0.0, temperature=1.5, seed=3)
    tr = simulate(s, q0, p0, dt=0.005, steps=600, save_every=3)
    # the run crosses faces: some wrapped coordinate differs from the unwrapped one
    crossed = [not np.array_equal(wrap(q, s.box), q) for q in tr.q]
    assert sum(crossed) >= 10
    return s, tr


def _fresh(s, q):
    return ForceField(s).energy_forces(q)


def test_issue_reproduction_wrapped_after_unwrapped():
    s = builders.molecular(125, density=0.8, cutoff=2.5)
    q = s.positions + np.array([0.7, 0.2, 0.1])  # some particles now lie beyond a face
    assert (q >= s.box).any()
    ff = ForceField(s)
    ff.energy(q)
    qw = wrap(q, s.box)
    assert ff.energy(qw) == pytest.approx(ForceField(s).energy(qw), rel=1e-12, abs=1e-9)


@pytest.mark.parametrize("order", ["wrapped", "alternating", "unwrapped"])
def test_one_force_field_matches_a_fresh_one_on_every_frame(lj_crossing, order):
    s, tr = lj_crossing
    ff = ForceField(s)
    for k, q in enumerate(tr.q):
        if order == "wrapped" or (order == "alternating" and k % 2):
            q = wrap(q, s.box)
        v, f = ff.energy_forces(q)
        v0, f0 = _fresh(s, q)
        assert v == pytest.approx(v0, rel=1e-11, abs=1e-9), f"frame {k}"
        np.testing.assert_allclose(f, f0, rtol=1e-9, atol=1e-9, err_msg=f"frame {k}")
    # and the energies of the unwrapped run itself (the integrator's own field)
    np.testing.assert_allclose(tr.potential, [_fresh(s, q)[0] for q in tr.q], rtol=1e-11, atol=1e-9)


def test_batched_derivatives_and_energies_of_wrapped_frames(lj_crossing):
    s, tr = lj_crossing
    qw = np.stack([wrap(q, s.box) if k % 2 else q for k, q in enumerate(tr.q)])
    v = potential_energy(s, qw)
    _, dpdt = derivatives(s, qw, tr.p)
    for k in range(len(qw)):
        v0, f0 = _fresh(s, qw[k])
        assert v[k] == pytest.approx(v0, rel=1e-11, abs=1e-9), f"frame {k}"
        np.testing.assert_allclose(dpdt[k], f0, rtol=1e-9, atol=1e-9, err_msg=f"frame {k}")


def test_learned_table_stepper_rebuilds_its_pairs_after_a_wrap():
    """The roll-out's TableStepper fixes pair images at build time like ForceField."""
    import torch

    from core.learning.rfhgn import RFConfig, fit
    from core.learning.stepper import make_stepper
    from core.physics.datagen import random_snapshots

    s = builders.molecular(64, density=0.8, cutoff=2.0, jitter=0.1, seed=2)
    model = fit(random_snapshots(s, 40, 0.05, 0.1, seed=0), RFConfig(fast_tables=True))
    q = s.positions + np.array([0.6, 0.3, 0.2])
    assert (q >= s.box).any()
    qw = wrap(q, s.box)
    st = make_stepper(model, s)
    if not hasattr(st, "nlist") or st.nlist is None:
        pytest.skip("this model does not roll out through a stepper with a neighbour list")
    st.potential(torch.from_numpy(q.copy()))
    got = st.potential(torch.from_numpy(qw.copy())).numpy().copy()
    want = make_stepper(model, s).potential(torch.from_numpy(qw.copy())).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------------------
# no silent garbage
# ---------------------------------------------------------------------------
def cli(argv, capsys):
    """Run the command line in this process: (exit code, stdout, stderr)."""
    from core.cli import main

    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str, warnings: bool = False) -> str:
    lines = err.strip().splitlines()
    if warnings:  # the roll-out's extrapolation warning comes first, as its own line
        lines = [x for x in lines if not x.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def test_exploding_ground_truth_stops_naming_the_step_and_writes_nothing(tmp_path, capsys):
    # the run of the issue: relative drift 7.6e287, exit 0 and a dataset that later broke train
    code, out, err = cli(["simulate", "--kind", "cubic", "--n", 3, "--dt", 0.8, "--out", tmp_path / "t.npz",
                          "--dataset-out", tmp_path / "d.npz", "-q"], capsys)
    line = one_error_line(err)
    assert code == 2 and out == ""
    assert "at step" in line and "energy error" in line and "Reduce the time step" in line
    assert list(tmp_path.iterdir()) == []


def test_exploding_ground_truth_in_the_python_api():
    from core.physics.datagen import DataSpec, generate

    s = builders.cubic_lattice(3, 3, 3)
    q0, p0 = initial_state(s, seed=0)
    with pytest.raises(HGNError, match=r"blew up at step \d+ .*energy error.*Reduce the time step dt \(now 0.8"):
        simulate(s, q0, p0, dt=0.8, steps=100, save_every=10)
    with pytest.raises(HGNError, match="Reduce the time step"):
        generate(s, DataSpec(n_trajectories=2, steps=100, dt=0.8))
    # a stable step is untouched: the same start at dt 0.1 runs with a small energy error
    tr = simulate(s, q0, p0, dt=0.1, steps=1000, save_every=100)
    assert np.abs(tr.energy_drift()).max() < 0.05


def test_degenerate_training_data_are_refused(tmp_path, capsys):
    code, out, err = cli(["train", "--kind", "chain", "--n", 4, "--displacement", 0, "--momentum", 0,
                          "--out", tmp_path / "m.npz", "-q"], capsys)
    assert code == 2 and "degenerate" in one_error_line(err)
    assert not (tmp_path / "m.npz").exists()


def test_degenerate_data_are_refused_by_the_baseline_fit():
    from core.learning.baselines import BaselineConfig
    from core.learning.baselines import fit as fit_baseline
    from core.physics.datagen import random_snapshots

    ds = random_snapshots(builders.chain(4), 20, displacement=0.0, momentum=0.0, seed=0)
    with pytest.raises(HGNError, match="degenerate"):
        fit_baseline(ds, BaselineConfig(time_budget=1.0))


@pytest.fixture(scope="module")
def narrow_model(tmp_path_factory):
    """An RF-HGN fitted on tiny motions of a chain: it breaks far outside them."""
    from core.learning.rfhgn import RFConfig, fit
    from core.physics.datagen import random_snapshots

    s = builders.chain(4)
    model = fit(random_snapshots(s, 500, 0.02, 0.02, seed=0, test_fraction=0.2), RFConfig())
    path = tmp_path_factory.mktemp("model") / "narrow.model.npz"
    model.save(path)
    return s, model, path


def test_a_diverging_rollout_is_stopped_and_marked(narrow_model, tmp_path):
    from core.files.io import load_trajectories, save_trajectories
    from core.learning.rollout import rollout

    s, model, _ = narrow_model
    q0, p0 = initial_state(s, 0.1, 0.5, seed=0)
    tr = rollout(model, s, q0, p0, 0.05, 2000, 10)
    d = tr.diverged
    assert d is not None and 0 < d["step"] < 2000 and d["frames"] == tr.n_frames < 201
    assert "diverged at step" in d["reason"] and "energy" in d["reason"]
    assert np.isfinite(tr.q).all() and len(tr.t) == tr.n_frames
    # every kept frame is within the bound; the file keeps the mark in its header
    save_trajectories(tmp_path / "r.npz", [tr])
    back = load_trajectories(tmp_path / "r.npz")[0]
    assert back.diverged == d


def test_cli_rollout_that_diverges_exits_non_zero_with_one_line(narrow_model, tmp_path, capsys):
    from core.files.io import load_trajectories

    _, _, path = narrow_model
    code, out, err = cli(["rollout", "--model", path, "--momentum", 0.5, "--dt", 0.05, "--steps", 2000,
                          "--out", tmp_path / "r.npz", "--json", tmp_path / "r.json", "-q"], capsys)
    line = one_error_line(err, warnings=True)
    assert code == 3 and "diverged at step" in line
    truth, pred = load_trajectories(tmp_path / "r.npz")
    assert truth.diverged is None and pred.diverged is not None and pred.n_frames < truth.n_frames
    import json

    assert json.loads((tmp_path / "r.json").read_text())["diverged"]["step"] == pred.diverged["step"]


# ---------------------------------------------------------------------------
# inputs: refused before work starts, with an estimate where it helps
# ---------------------------------------------------------------------------
@pytest.fixture
def no_run(monkeypatch):
    """Fail the test if any ground-truth run starts (the refusal must come first)."""
    import core.physics.simulate as sim

    def run_system(*a, **k):
        raise AssertionError("the simulation started before the input was refused")

    monkeypatch.setattr(sim, "run_system", run_system)


@pytest.mark.parametrize("argv", [
    ["simulate", "--kind", "chain", "--n", 1_000_000_000_000],
    ["simulate", "--kind", "cubic", "--n", 100_000],
    ["simulate", "--kind", "chain", "--steps", 1_000_000_000_000_000],
    ["simulate", "--kind", "chain", "--steps", 10 ** 12, "--save-every", 1, "--trajectories", 3],
], ids=["n=1e12", "cubic 1e5^3", "steps=1e15", "frames"])
def test_sizes_beyond_memory_are_refused_with_an_estimate(argv, tmp_path, capsys, no_run):
    code, out, err = cli(argv + ["--out", tmp_path / "x.npz", "-q"], capsys)
    line = one_error_line(err)
    assert code == 2 and "needs about" in line and "this machine has" in line, line
    assert list(tmp_path.iterdir()) == []


def test_runs_that_cannot_finish_are_refused_with_an_estimate(tmp_path, capsys, no_run):
    # few saved frames, so memory is no obstacle: the old code started a run of 1e15 steps
    code, out, err = cli(["simulate", "--kind", "chain", "--steps", 10 ** 15, "--save-every", 10 ** 15,
                          "--out", tmp_path / "x.npz", "-q"], capsys)
    line = one_error_line(err)
    assert code == 2 and "would take at least" in line and "years" in line, line


def test_width_beyond_any_machine_is_refused(tmp_path, capsys):
    code, out, err = cli(["train", "--kind", "chain", "--n", 4, "--edge-width", 100_000_000, "--out",
                          tmp_path / "m.npz", "-q"], capsys)
    assert code == 2 and "edge_width" in one_error_line(err)
    code, out, err = cli(["train", "--kind", "chain", "--n", 4, "--edge-width", 400_000, "--out",
                          tmp_path / "m.npz", "-q"], capsys)
    line = one_error_line(err)
    assert code == 2 and "needs about" in line and "TB" in line and "this machine has" in line


@pytest.mark.parametrize("argv,words", [
    (["--kind", "chain", "--spacing", 1e300], "spacing"),
    (["--kind", "cubic", "--n", 2, "--spacing", 1e300], "spacing"),
    (["--kind", "molecular", "--n", 8, "--cutoff", 0.5, "--density", 1e-300], "density"),
    (["--kind", "molecular", "--n", 8, "--cutoff", 1e300, "--density", 1e-300], "cutoff"),
])
def test_lengths_beyond_reduced_units_are_refused_before_the_run(argv, words, tmp_path, capsys, no_run):
    code, out, err = cli(["simulate"] + argv + ["--out", tmp_path / "x.npz", "-q"], capsys)
    line = one_error_line(err)
    assert code == 2 and words in line and "length units" in line, line


@pytest.mark.parametrize("target", ["/sys/hgn-test.npz", "FILE/x.npz", "DIR.npz"])
def test_unwritable_output_is_reported_before_the_computing(target, tmp_path, capsys, no_run):
    (tmp_path / "FILE").write_text("a file, not a folder")
    (tmp_path / "DIR.npz").mkdir()
    out_path = target if target.startswith("/") else tmp_path / target
    code, out, err = cli(["simulate", "--kind", "chain", "--out", out_path, "-q"], capsys)
    line = one_error_line(err)
    assert code == 2 and "cannot write" in line, line


@pytest.mark.parametrize("argv", [
    ["simulate", "--kind", "chain", "--out", "nan"],
    ["simulate", "--kind", "chain", "--out", "x.npz", "--dataset-out", "{"],
    ["train", "--kind", "chain", "--out", "-0.5"],
])
def test_output_names_without_a_file_ending_are_refused(argv, tmp_path, capsys, monkeypatch, no_run):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(argv + ["-q"], capsys)
    assert code == 2 and "give a file name ending in" in one_error_line(err)
    assert list(tmp_path.iterdir()) == []


def test_rollout_output_checked_before_the_roll_out(narrow_model, tmp_path, capsys, no_run):
    _, _, path = narrow_model
    code, out, err = cli(["rollout", "--model", path, "--out", "/sys/hgn-test.npz", "-q"], capsys)
    assert code == 2 and "cannot write" in one_error_line(err)


def test_scale_beyond_memory_is_refused(narrow_model, tmp_path, capsys):
    from core.files.io import save_system

    save_system(tmp_path / "cube.npz", builders.cubic_lattice(2, 2, 2))
    code, out, err = cli(["rollout", "--model", narrow_model[2], "--system", tmp_path / "cube.npz", "--scale",
                          100_000, "--out", tmp_path / "r.npz", "-q"], capsys)
    line = one_error_line(err)
    assert code == 2 and "needs about" in line and "this machine has" in line


def test_scale_of_a_system_without_builder_fields_is_refused(narrow_model, tmp_path, capsys):
    from core.files.io import save_system

    s = builders.chain(4)
    s.meta = {"builder": "chain", "dim": 2}  # n, spacing and mass lost
    save_system(tmp_path / "s.npz", s)
    code, out, err = cli(["rollout", "--model", narrow_model[2], "--system", tmp_path / "s.npz", "--scale", 2,
                          "--out", tmp_path / "r.npz", "-q"], capsys)
    line = one_error_line(err)
    assert code == 2 and "lacks n, spacing, mass" in line
    with pytest.raises(HGNError, match="names no builder"):
        builders.rebuild_scaled(builders.chain(4).copy(meta={}), 2)


def test_a_system_without_springs_trains_or_is_refused_clearly(tmp_path, capsys):
    from core.files.io import save_system
    from core.learning.baselines import BaselineConfig
    from core.learning.baselines import fit as fit_baseline
    from core.physics.datagen import random_snapshots

    drawn = builders.custom(2, [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # particles drawn, no springs
    with pytest.raises(HGNError, match="no springs"):
        fit_baseline(random_snapshots(drawn, 20, seed=0), BaselineConfig(time_budget=1.0))
    save_system(tmp_path / "drawn.npz", drawn)
    code, out, err = cli(["train", "--system", tmp_path / "drawn.npz", "--out", tmp_path / "m.npz", "-q"], capsys)
    assert code == 0 and (tmp_path / "m.npz").exists(), err


@pytest.mark.parametrize("call,match", [
    (lambda: initial_state(builders.chain(4), displacement="large"), "displacement"),
    (lambda: initial_state(builders.chain(4), momentum=[0.1]), "momentum"),
    (lambda: initial_state(builders.chain(4), seed=-1), "seed"),
    (lambda: initial_state("chain", seed=0), "System"),
    (lambda: builders.molecular(8, cutoff=0.5, jitter=0.1, seed=-3), "seed"),
    (lambda: builders.chain(4, spacing="1.0"), "spacing"),
    (lambda: builders.chain(4, potential_params=[1.0, 2.0]), "potential_params"),
    (lambda: simulate("chain", np.zeros((4, 2)), np.zeros((4, 2)), 0.01, 10), "System"),
    (lambda: simulate(builders.chain(4), np.zeros((4, 2)), np.zeros((4, 2)), 0.01, 10, skin="0.3"), "skin"),
    (lambda: __import__("core.learning.rfhgn", fromlist=["RFConfig"]).RFConfig(edge_widht=8), "known are"),
    (lambda: __import__("core.learning.rfhgn", fromlist=["RFConfig"]).RFConfig(*range(30)), "known are"),
    (lambda: __import__("core.learning.baselines", fromlist=["BaselineConfig"]).BaselineConfig(lr=1e-3),
     "known are"),
    (lambda: __import__("core.physics.datagen", fromlist=["generate"]).generate(builders.chain(4), spec="fast"),
     "DataSpec"),
    (lambda: __import__("core.physics.datagen", fromlist=["DataSpec"]).DataSpec.from_dict(["steps", 5]), "mapping"),
    (lambda: __import__("core.physics.datagen", fromlist=["x"]).dataset_from_parts(
        builders.chain(4), [], 0.2, np.random.default_rng(0), [], {}), "at least one"),
    (lambda: __import__("core.physics.datagen", fromlist=["x"]).random_snapshots("chain", 5), "System"),
    (lambda: __import__("core.physics.potentials", fromlist=["x"]).PairPotential.from_dict("harmonic"), "mapping"),
])
def test_python_api_misuse_is_an_hgn_error(call, match):
    with pytest.raises(HGNError, match=match):
        call()


def test_cli_evaluate_with_diverging_rollouts_exits_non_zero_with_one_line(narrow_model, tmp_path, capsys):
    import json

    code, _, err = cli(["simulate", "--kind", "chain", "--n", 4, "--momentum", 0.5, "--dt", 0.05, "--steps", 400,
                        "--trajectories", 2, "--out", tmp_path / "t.npz", "--dataset-out", tmp_path / "d.npz",
                        "-q"], capsys)
    assert code == 0, err
    code, out, err = cli(["evaluate", "--model", narrow_model[2], "--data", tmp_path / "d.npz", "--json",
                          tmp_path / "e.json", "-q"], capsys)
    line = one_error_line(err, warnings=True)
    assert code == 3 and "diverged" in line
    doc = json.loads((tmp_path / "e.json").read_text())
    assert doc["diverged"] and doc["diverged"][0]["step"] > 0 and "rollouts" not in doc


def test_the_energy_bound_has_the_system_scale_as_floor():
    """A start almost at rest (K(0) + |V(0)| ~ 1e-31) must not trip the bound on round-off."""
    from core.learning.rfhgn.truth import TrueHamiltonian
    from core.learning.rollout import rollout
    from core.physics.simulate import energy_floor

    s = builders.chain(4)
    assert energy_floor(s) == pytest.approx(3 * 0.125)  # harmonic k=1, r0=1: V(1.5) - V(1) per edge
    q0 = s.positions + 1e-16
    p0 = np.full_like(q0, 1e-16)
    tr = simulate(s, q0, p0, 0.01, 200, 20)
    assert tr.meta["energy_reference"][1] == pytest.approx(energy_floor(s))
    pred = rollout(TrueHamiltonian(s), s, q0, p0, 0.01, 200, 20)
    assert pred.diverged is None and pred.n_frames == 11


def test_a_roll_out_in_chunks_decides_as_one_run(narrow_model):
    from core.learning.rollout import rollout

    s, model, _ = narrow_model
    q0, p0 = initial_state(s, 0.1, 0.5, seed=0)
    one = rollout(model, s, q0, p0, 0.05, 2000, 10, learned_energy=False)
    assert one.diverged is not None
    q, p, t0, ref, frames = q0, p0, 0.0, None, 0
    while True:  # chunks of 5 frames, each from the last state of the one before, as the studio does
        part = rollout(model, s, q, p, 0.05, 50, 10, t0=t0, energy_reference=ref, learned_energy=False)
        ref = ref or part.meta["energy_reference"]
        frames += part.n_frames - (1 if t0 else 0)
        if part.diverged is not None:
            assert part.diverged["t"] == pytest.approx(one.diverged["t"])
            break
        q, p, t0 = part.q[-1], part.p[-1], t0 + 50 * 0.05
        assert t0 < 100
    assert frames == one.n_frames


def test_the_python_fit_refuses_degenerate_data_and_impossible_widths():
    from core.learning.rfhgn import RFConfig, fit
    from core.physics.datagen import random_snapshots

    with pytest.raises(HGNError, match="degenerate"):
        fit(random_snapshots(builders.chain(4), 20, displacement=0.0, momentum=0.0, seed=0), RFConfig())
    with pytest.raises(HGNError, match="needs about .* this machine has"):
        fit(random_snapshots(builders.chain(4), 20, seed=0), RFConfig(edge_width=500_000))


def test_settings_checked_gives_defaults_and_refuses_the_wrong_kind_or_bad_values():
    """SettingsMixin.checked: what fit, fit_port, adapt, sample_basis, the
    distributed fit and the baselines run with."""
    from core.learning.baselines.config import BaselineConfig
    from core.learning.rfhgn import RFConfig

    assert RFConfig.checked(None) == RFConfig()
    cfg = RFConfig(node_width=8)
    assert RFConfig.checked(cfg) is cfg
    with pytest.raises(HGNError, match="config must be an RFConfig, got BaselineConfig"):
        RFConfig.checked(BaselineConfig())
    with pytest.raises(HGNError, match="config must be a BaselineConfig, got dict"):
        BaselineConfig.checked({})
    bad = RFConfig()
    bad.node_width = -3
    with pytest.raises(HGNError, match="node_width"):
        RFConfig.checked(bad)
