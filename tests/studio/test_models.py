"""The studio's Qt-free models: the time model's playback rules, the filling
roll-out buffer, the chunked roll-out job, forms and method discovery."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from core.physics.builders import build
from core.errors import HGNError
from core.physics.simulate import simulate
from studio import pipeline
from studio.methods import METHODS, available_methods, method_by_key
from core.learning.rollout_buffer import RolloutBuffer
from studio.timeline import TimeModel


# -- time model ---------------------------------------------------------------
def test_time_model_loop_modes(qtbot):
    tm = TimeModel()
    tm.set_times(np.arange(5) * 0.5)
    seen = []
    tm.frameChanged.connect(seen.append)
    tm.set_loop("loop")
    tm.set_frame(3)
    tm.advance(3)                 # 3 + 3 = 6 -> wraps to 1 in 5 frames
    assert tm.frame == 1
    tm.set_loop("bounce")
    tm.set_frame(3)
    tm.advance(3)                 # 3 -> 4 -> back to 2
    assert tm.frame == 2
    tm.advance(1)                 # now moving backwards
    assert tm.frame == 1
    tm.set_loop("once")
    tm.play()
    assert tm.playing
    tm.set_frame(3)
    tm.advance(5)                 # stops at the end
    assert tm.frame == 4 and not tm.playing
    assert seen[-1] == 4 and tm.time() == 2.0
    with pytest.raises(ValueError):
        tm.set_loop("sideways")


def test_time_model_waits_for_frames_still_computing(qtbot):
    tm = TimeModel()
    tm.set_times(np.arange(10.0), filled=3)
    tm.set_loop("loop")
    tm.set_frame(9)               # clamped to what exists
    assert tm.frame == 2
    tm.advance(2)                 # does not wrap while the roll-out is filling
    assert tm.frame == 2
    tm.set_filled(10)
    tm.advance(2)
    assert tm.frame == 4


def test_time_model_plays_on_its_timer(qtbot):
    tm = TimeModel(fps=100)
    tm.set_times(np.arange(50.0))
    tm.set_speed(2.0)
    tm.play()
    qtbot.waitUntil(lambda: tm.frame >= 10, timeout=3000)
    tm.pause()
    f = tm.frame
    qtbot.wait(60)
    assert tm.frame == f and f % 2 == 0     # two frames per tick


# -- roll-out buffer and the chunked job --------------------------------------
def _tiny_system():
    return build("square", n=3, m=3)


def test_a_driven_ground_truth_in_chunks_equals_one_run():
    """The roll-out job simulates the truth in chunks; a periodic drive must
    go on from each chunk's absolute time, not restart at t = 0."""
    from core.physics.port import Drive, make_port

    s = _tiny_system().copy()
    s.port = make_port(damping=0.05, drives=[Drive(nodes=(0, 4), amplitude=0.3, frequency=2.0,
                                                   direction=(1.0, 0.5))])
    rng = np.random.default_rng(2)
    q0 = s.positions + 0.05 * rng.standard_normal(s.positions.shape)
    p0 = np.zeros_like(q0)
    dt, steps, save_every = 0.01, 300, 5
    one = simulate(s, q0, p0, dt, steps, save_every=save_every)
    items = []
    pipeline.rollout_job(None, s, q0, p0, dt, steps, save_every, emit=items.append, first_chunk=7)
    truth = [tr for which, tr in items if which == "truth"]
    assert len(truth) > 2                                  # really in chunks
    q = np.concatenate([tr.q for tr in truth])
    assert q.shape == one.q.shape
    np.testing.assert_allclose(q, one.q, rtol=0, atol=1e-12)


def test_chunked_rollout_equals_one_uninterrupted_run():
    from core.learning.rfhgn import TrueHamiltonian

    s = _tiny_system()
    rng = np.random.default_rng(1)
    q0 = s.positions + 0.1 * rng.standard_normal(s.positions.shape)
    p0 = 0.1 * rng.standard_normal(s.positions.shape)
    buf = RolloutBuffer(s, 0.01, 230, 5, model_name="truth-as-model")
    chunks = []

    def emit(item):
        chunks.append(item)
        buf.add(*item)

    out = pipeline.rollout_job(TrueHamiltonian(s), s, q0, p0, 0.01, 230, 5, emit=emit)
    assert out["frames"] == 47 and buf.n_filled == 47 == buf.n_frames
    assert len({id(c) for c in chunks}) > 4          # it really came in pieces
    ref = simulate(s, q0, p0, 0.01, 230, save_every=5)
    assert np.allclose(buf.q["truth"], ref.q, atol=1e-12)
    assert np.allclose(buf.kinetic["truth"], ref.kinetic, atol=1e-12)
    # the exact Hamiltonian as "model": prediction equals the truth to round-off
    assert np.allclose(buf.q["prediction"], ref.q, atol=1e-9)
    assert np.max(buf.position_mse()) < 1e-16
    m = buf.measures()
    assert m["final_position_mse"] < 1e-16 and len(m["t"]) == 47


def test_rollout_buffer_fills_and_measures():
    s = _tiny_system()
    buf = RolloutBuffer(s, 0.02, 20, 2)
    assert buf.n_frames == 11 and buf.n_filled == 0
    tr = simulate(s, s.positions + 0.05, np.zeros((9, 2)) + 0.01 * np.arange(18).reshape(9, 2), 0.02, 20, 2)
    buf.add("truth", tr)
    assert buf.n_filled == 0              # no prediction yet
    buf.add("prediction", tr)
    assert buf.n_filled == 11
    drift = buf.drift("truth")
    assert np.allclose(drift, (tr.total - tr.total[0]) / abs(tr.total[0]))
    with pytest.raises(HGNError):
        buf.add("nonsense", tr)
    with pytest.raises(HGNError):
        RolloutBuffer(s, 0.01, 10, 0)


def test_train_job_measures_on_held_out_data():
    s = _tiny_system()
    m = method_by_key("rfhgn")
    sim = dict(dataclasses.asdict(pipeline_defaults()), steps=40, n_trajectories=3, save_every=4)
    settings = dict(m.default_settings(), node_width=8, edge_width=8, message_width=16, fast_tables=False)
    stages = []
    res = pipeline.train_job(s, sim, m, settings, progress=lambda st, f: stages.append((st, f)))
    assert {"simulate", "sample", "solve"} <= {st for st, _ in stages}
    assert all(0.0 <= f <= 1.0 for _, f in stages)
    ds = res.dataset
    assert len(ds.test) and not set(ds.test) & set(ds.train)
    assert res.test_mse > 0 and np.isfinite(res.test_mse) and res.fit_time > 0


def test_train_job_is_cancelled_by_its_token():
    from core.errors import Cancelled
    from core.jobs import CancelToken

    s = _tiny_system()
    m = method_by_key("rfhgn")
    tok = CancelToken()
    tok.cancel()
    with pytest.raises(Cancelled):
        pipeline.train_job(s, pipeline_defaults_dict(), m, m.default_settings(), cancel=tok)


def test_simulation_settings_are_checked():
    bad = [({"dt": -0.1}, "dt"), ({"steps": 0}, "steps"), ({"save_every": 500}, "save_every"),
           ({"test_fraction": 1.5}, "test_fraction"), ({"displacement": -1}, "displacement")]
    for change, word in bad:
        with pytest.raises(HGNError, match=word):
            pipeline.check_simulation({**pipeline_defaults_dict(), **change})


def pipeline_defaults():
    from studio.defaults import SIMULATION

    return SIMULATION


def pipeline_defaults_dict():
    return dataclasses.asdict(pipeline_defaults())


# -- methods and forms ----------------------------------------------------------
def test_methods_come_from_core_with_core_defaults():
    from core.learning.baselines.config import BaselineConfig
    from core.learning.rfhgn import RFConfig

    assert [m.key for m in available_methods()] == ["rfhgn", "baseline"] == [m.key for m in METHODS]
    m = method_by_key("rfhgn")
    assert m.config_class() is RFConfig and method_by_key("baseline").config_class() is BaselineConfig
    assert m.default_settings() == RFConfig().to_dict()
    assert m.choices()["encoding"] == ["invariant", "frame"]
    assert m.choices()["sampler"] == ["swim", "elm", "adaptive"]
    with pytest.raises(HGNError, match="node_width"):
        m.make_config({"node_width": 0})
    cfg = m.make_config({"node_width": 8, "not_a_setting": 1})        # unknown names are left out
    assert isinstance(cfg, RFConfig) and cfg.node_width == 8
    with pytest.raises(HGNError, match="unknown method"):
        method_by_key("nope")


def test_choices_and_tooltips_come_from_the_metadata_of_core_fields():
    """Every choice list and tooltip of the forms is the metadata of a field of core's
    config (no studio copy, no parsing of source comments)."""
    from core.learning.baselines.optimizers import OPTIMIZERS

    for meth in METHODS:
        fields = {f.name: f for f in dataclasses.fields(meth.config_class())}
        tips, choices = meth.tip_of(), meth.choices()
        assert set(tips) == set(fields)                   # every setting is described
        for name, text in tips.items():
            assert text and text == fields[name].metadata["help"]
        for name, opts in choices.items():
            assert tuple(opts) == fields[name].metadata["choices"]
            # the choices shown are the values the config accepts
            for v in opts:
                assert getattr(meth.make_config({name: v}), name) == v
            with pytest.raises(HGNError, match=name):
                meth.make_config({name: "no-such-choice"})
    base = method_by_key("baseline")
    assert base.choices()["optimizer"] == list(OPTIMIZERS)
    # the network settings of the baseline are RF-HGN's, described once
    assert base.tip_of()["node_width"] == method_by_key("rfhgn").tip_of()["node_width"]
    assert base.gradient_trained and not method_by_key("rfhgn").gradient_trained


def test_importing_the_methods_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, studio.methods as m; assert len(m.available_methods()) == 2; "
            "print(sorted(k for k in ('torch', 'PySide6') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_form_parses_numbers_and_marks_bad_fields(qtbot):
    from studio.widgets.forms import FieldForm, FieldSpec

    f = FieldForm([FieldSpec("x", "X value", "float", 1.0), FieldSpec("w", "Widths", "ints", (8, 16)),
                   FieldSpec("t", "Temperature", "optfloat", None), FieldSpec("n", "Count", "int", 3)])
    qtbot.addWidget(f)
    f.editors["x"].setText("1e-8")
    assert f.values() == {"x": 1e-8, "w": (8, 16), "t": None, "n": 3}
    f.editors["w"].setText("4, 5 6")
    assert f.value("w") == (4, 5, 6)
    f.editors["x"].setText("one")
    with pytest.raises(HGNError, match="X value"):
        f.values()
    assert "not a number" in f.error_text("x")
    assert f.field_for_message("RF-HGN setting count must be at least 1") == "n"
    assert f.show_message("temperature must be >= 0, got -1") and f.error_text("t")


def test_rollout_warnings_are_reported_once_not_per_chunk():
    from core.learning.rfhgn import TrueHamiltonian

    s = _tiny_system()
    model = TrueHamiltonian(s)
    model.info = {"train_r_max": 0.5}       # every spring is longer: the roll-out extrapolates
    items = []
    out = pipeline.rollout_job(model, s, s.positions, np.zeros((9, 2)), 0.01, 200, 5, emit=items.append)
    warnings = [payload for kind, payload in items if kind == "warning"]
    assert len(warnings) == 1 and "training data" in warnings[0]
    assert out["warnings"] == warnings
    assert sum(1 for kind, _ in items if kind == "prediction") > 3     # several chunks, one warning


def test_a_diverging_rollout_ends_the_job_with_its_reason():
    """A learned roll-out that blows up (here the exact Hamiltonian stepped
    with dt far beyond Verlet's stability) stops the chunked job after the
    chunk where it diverged, says why, and decides as one uninterrupted
    run does (the chunks share the first chunk's energy reference)."""
    from core.learning.rfhgn import TrueHamiltonian
    from core.learning.rollout import rollout

    s = _tiny_system()
    rng = np.random.default_rng(3)
    q0 = s.positions + 0.1 * rng.standard_normal(s.positions.shape)
    p0 = 0.1 * rng.standard_normal(s.positions.shape)
    dt, steps, save_every = 2.5, 4000, 5
    one = rollout(TrueHamiltonian(s), s, q0, p0, dt, steps, save_every=save_every)
    assert one.diverged is not None                   # the case really diverges
    items = []
    out = pipeline.rollout_job(TrueHamiltonian(s), s, q0, p0, dt, steps, save_every, emit=items.append,
                               with_truth=False)
    assert out["diverged"] is not None
    assert out["diverged"]["t"] == pytest.approx(one.diverged["t"])
    assert out["diverged"]["step"] == one.diverged["step"]        # counted from the start of the whole run
    assert f"step {one.diverged['step']} " in out["diverged"]["reason"]
    frames = sum(tr.n_frames for which, tr in items if which == "prediction")
    assert frames == one.n_frames < steps // save_every + 1     # nothing after the divergence
    warnings_ = [w for which, w in items if which == "warning"]
    assert any("stopped" in w and "diverged" in w for w in warnings_), warnings_
    assert items[-1][0] == "warning"                  # the job ended right after saying so
