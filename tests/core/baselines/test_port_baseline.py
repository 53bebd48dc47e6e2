"""The Adam baseline of issue 13 (core.learning.baselines.port): the HGN with learnable damping (kept >= 0)
and forcing, trained on the derivative loss; its learned coefficients are reported like fit_port's
(info["port"]), survive save/load, drive rollout_port, and `train --method adam` trains it."""
import json

import numpy as np
import pytest

from core.cli.app import main
from core.errors import HGNError
from core.learning.baselines import BaselineConfig, TrainedHGN, load_model
from core.learning.baselines.port import GAMMA_START, fit_port_baseline
from core.learning.rfhgn.port import PortSpec, identified_port, port_derivative_mse, rollout_port
from core.physics import builders
from core.physics.datagen import DataSpec, generate, random_snapshots
from core.physics.port import Drive, Port

GAMMA = 0.05
FAST = dict(node_width=8, edge_width=16, message_width=16, time_budget=0, patience=0, threads=1,
            port_learning_rate=0.05, seed=0)


@pytest.fixture(scope="module")
def damped():
    """A damped 3x3 lattice: random snapshots (positions and momenta independent, dp/dt = F - gamma p/m)."""
    s = builders.square_lattice(3, 3).copy(port=Port(GAMMA))
    ds = random_snapshots(s, 200, 0.1, 0.3, seed=1, test_fraction=0.2)
    return ds, fit_port_baseline(ds, BaselineConfig(max_epochs=20, **FAST))


def test_recovers_the_damping_of_a_damped_lattice(damped):
    ds, m = damped
    g = m.info["port"]["damping"]
    assert abs(GAMMA_START / GAMMA - 1) > 0.5  # it starts far from the truth
    assert abs(g / GAMMA - 1) < 0.1, g
    assert m.info["port"]["forcing"] is None and m.info["port"]["spec"]["damping"] == "uniform"
    hist = [h[2] for h in m.info["port_history"]]
    assert len(hist) == m.info["epochs"] and hist[0] < hist[-1]
    # the learned right-hand side explains the held-out data better with the learned damping than without
    assert port_derivative_mse(m, ds) < float(np.mean(
        np.concatenate([(m.time_derivatives(ds.system, ds.q[ds.test], ds.p[ds.test])[1] - ds.dpdt[ds.test]).ravel(),
                        (m.time_derivatives(ds.system, ds.q[ds.test], ds.p[ds.test])[0] - ds.dqdt[ds.test]).ravel()
                        ]) ** 2))


def test_save_load_keeps_the_coefficients_and_the_rollout(damped, tmp_path):
    ds, m = damped
    path = m.save(tmp_path / "port.npz")
    back = load_model(path)
    assert isinstance(back, TrainedHGN)
    assert back.info["port"] == m.info["port"]
    assert identified_port(back.info["port"]).to_dict() == identified_port(m.info["port"]).to_dict()
    q0, p0 = ds.q[0], ds.p[0]
    a = rollout_port(m, ds.system, q0, p0, 0.01, 50, save_every=50)
    b = rollout_port(back, ds.system, q0, p0, 0.01, 50, save_every=50)
    np.testing.assert_array_equal(a.q, b.q)
    # the roll-out damps: the learned model's energy falls like the truth's
    assert a.total[-1] < a.total[0]


def test_damping_stays_non_negative_on_undamped_data():
    s = builders.square_lattice(3, 3)
    ds = random_snapshots(s, 60, 0.1, 0.3, seed=2, test_fraction=0.2)
    m = fit_port_baseline(ds, BaselineConfig(max_epochs=30, batch_size=8, **FAST), PortSpec("per-particle"))
    g = np.asarray(m.info["port"]["damping"])
    assert g.shape == (9,) and np.all(g >= 0), g
    assert g.mean() < 0.8 * GAMMA_START  # driven towards 0 (the truth), not below it


def test_learns_a_drive_amplitude_from_time_series_data():
    s = builders.chain(4, dim=2).copy(port=Port(0.0, (Drive((0,), 0.2, 1.5, (1.0, 0.0), 0.0),)))
    ds = generate(s, DataSpec(n_trajectories=2, steps=400, dt=0.01, save_every=4))
    m = fit_port_baseline(ds, BaselineConfig(max_epochs=25, **FAST),
                          PortSpec("none", nodes=(0, 3), frequencies=(1.5,)))
    f = m.info["port"]["forcing"]
    amp = np.asarray(f["amplitude"][0])
    assert f["nodes"] == [0, 3] and abs(amp[0] / 0.2 - 1) < 0.2 and amp[1] < 0.05, amp


def test_refuses_forcing_without_snapshot_times():
    s = builders.square_lattice(3, 3)
    ds = random_snapshots(s, 20, seed=0)
    with pytest.raises(HGNError, match="time of every snapshot"):
        fit_port_baseline(ds, BaselineConfig(max_epochs=1, **FAST), PortSpec("none", nodes=(0,), frequencies=(1.0,)))


def test_cli_train_method_adam_reports_the_learned_damping(tmp_path, capsys):
    data, out = tmp_path / "d.npz", tmp_path / "m.npz"
    assert main(["simulate", "--kind", "square", "--n", "3", "--damping", "0.05", "--steps", "200",
                 "--save-every", "4", "--out", str(tmp_path / "t.npz"), "--dataset-out", str(data), "-q"]) == 0
    capsys.readouterr()
    assert main(["train", "--data", str(data), "--method", "adam", "--epochs", "3", "--time-budget", "0",
                 "--node-width", "8", "--edge-width", "8", "--message-width", "8", "--out", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "trained by HGN (Adam) for 3 epochs" in printed and "learned: " in printed and "damping" in printed
    assert main(["info", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "baseline_model" and doc["identified"] is True
    assert isinstance(doc["damping"], float) and doc["damping"] > 0
    assert doc["damping"] == load_model(out).info["port"]["damping"]
    assert main(["rollout", "--model", str(out), "--steps", "20", "--out", str(tmp_path / "r.npz"), "-q"]) == 0


def test_cli_refuses_an_unknown_method(tmp_path, capsys):
    assert main(["train", "--kind", "chain", "--n", "3", "--method", "nosuch", "--out", str(tmp_path / "m.npz")]) != 0
    err = capsys.readouterr().err
    assert "unknown optimizer 'nosuch'" in err and "adam" in err and not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("optimizer", ["lbfgs", "muon", "sgd"])
def test_other_optimizers_train_the_port_terms(optimizer):
    s = builders.square_lattice(3, 3).copy(port=Port(GAMMA))
    ds = random_snapshots(s, 30, 0.1, 0.3, seed=3, test_fraction=0.2)
    m = fit_port_baseline(ds, BaselineConfig(optimizer=optimizer, max_epochs=3, **FAST))
    g = m.info["port"]["damping"]
    assert g >= 0 and g != pytest.approx(GAMMA_START, rel=1e-9)  # the damping was trained
