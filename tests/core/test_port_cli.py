"""Damping and forcing on the command line (issue 13): `simulate --damping ... --drive-...`, the files it
writes, bad values refused with one clear line, and `info --json` for every file kind."""
import json

import numpy as np
import pytest

from core.cli.app import main
from core.files import io
from core.physics import builders
from core.physics.initial import initial_state
from core.physics.port import Drive, Port, energy_balance
from core.physics.simulate import simulate

DRIVEN = ["--kind", "square", "--n", "3", "--damping", "0.05", "--drive-nodes", "0,3,6", "--drive-amplitude", "0.2",
          "--drive-frequency", "1.3", "--drive-phase", "0.25", "--drive-direction", "1,0.5", "--field", "0,-0.01",
          "--steps", "300", "--save-every", "10", "--seed", "2"]


def test_simulate_with_damping_and_a_drive_is_the_python_api_bit_for_bit(tmp_path, capsys):
    out, data = tmp_path / "t.npz", tmp_path / "d.npz"
    assert main(["simulate", *DRIVEN, "--out", str(out), "--dataset-out", str(data)]) == 0
    printed = capsys.readouterr().out
    assert "injected" in printed and "dissipated" in printed
    tr = io.load_trajectories(out)[0]
    port = Port(0.05, (Drive((0, 3, 6), 0.2, 1.3, (1.0, 0.5), 0.25),), (0.0, -0.01))
    assert tr.system.port.to_dict() == port.to_dict()
    system = builders.square_lattice(3, 3).copy(port=port)
    q0, p0 = initial_state(system, 0.1, 0.1, seed=2)
    ref = simulate(system, q0, p0, 0.01, 300, save_every=10)
    np.testing.assert_array_equal(tr.q, ref.q)
    np.testing.assert_array_equal(tr.p, ref.p)
    np.testing.assert_array_equal(tr.meta["injected"], ref.meta["injected"])
    ds = io.load_dataset(data)
    assert ds.system.port.to_dict() == port.to_dict()
    np.testing.assert_array_equal(ds.meta["time_of_snapshot"], tr.t)
    b = energy_balance(tr)
    assert b["dissipated"][-1] > 0 and np.abs(b["residual"]).max() < 1e-4 * b["dissipated"][-1] + 1e-8


def test_damping_nodes_damp_a_boundary_layer_only(tmp_path):
    out = tmp_path / "t.npz"
    assert main(["simulate", "--kind", "chain", "--n", "6", "--damping", "0.3", "--damping-nodes", "0,5",
                 "--steps", "20", "--out", str(out), "-q"]) == 0
    port = io.load_trajectories(out)[0].system.port
    assert port.per_particle and port.damping.tolist() == [0.3, 0, 0, 0, 0, 0.3]


def test_without_port_options_files_are_as_before(tmp_path):
    a = tmp_path / "a.npz"
    assert main(["simulate", "--kind", "chain", "--n", "4", "--steps", "50", "--out", str(a), "-q"]) == 0
    from core.container import load_npz

    header, arrays = load_npz(a)
    assert all("port" not in s for s in header["systems"])
    assert not any("injected" in k for k in arrays)


@pytest.mark.parametrize("args, words", [
    (["--damping", "-1"], "--damping: damping must be >= 0"),
    (["--damping", "nan"], "--damping"),
    (["--damping-nodes", "1"], "give --damping"),
    (["--damping", "0.1", "--damping-nodes", "4"], "--damping-nodes: particle 4 does not exist"),
    (["--drive-nodes", "0,9", "--drive-amplitude", "1", "--drive-frequency", "1"],
     "--drive-nodes: particle 9 does not exist"),
    (["--drive-nodes", "0,0", "--drive-amplitude", "1", "--drive-frequency", "1"], "listed twice"),
    (["--drive-nodes", "x", "--drive-amplitude", "1", "--drive-frequency", "1"], "not a particle index"),
    (["--drive-nodes", "0", "--drive-amplitude", "1", "--drive-frequency", "1", "--drive-direction", "0,0"],
     "--drive-direction: .*zero vector"),
    (["--drive-nodes", "0", "--drive-amplitude", "1", "--drive-frequency", "1", "--drive-direction", "1,0,0"],
     "--drive-direction needs 2 components"),
    (["--drive-nodes", "0", "--drive-amplitude", "1", "--drive-frequency", "0", "--drive-phase", "1"],
     "--drive-frequency: drive frequency must be > 0"),
    (["--drive-nodes", "0", "--drive-amplitude", "-1", "--drive-frequency", "1"], "--drive-amplitude"),
    (["--drive-nodes", "0", "--drive-frequency", "1"], "needs --drive-amplitude"),
    (["--drive-amplitude", "1"], "--drive-nodes"),
    (["--field", "1,inf"], "--field must hold finite numbers"),
    (["--damping", "0.1", "--integrator", "dop853"], "integrator verlet"),
])
def test_bad_port_options_are_one_clear_line(tmp_path, capsys, args, words):
    import re

    out = tmp_path / "t.npz"
    code = main(["simulate", "--kind", "chain", "--n", "4", "--steps", "10", "--out", str(out), "-q", *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert re.search(words, err), err
    assert not out.exists()


def test_info_json_for_every_file_kind(tmp_path, capsys):
    from tests.core.file_cases import make_valid_files

    files = make_valid_files(tmp_path)
    driven = tmp_path / "driven.npz"
    assert main(["simulate", *DRIVEN, "--out", str(driven), "-q"]) == 0
    files["driven"] = driven
    capsys.readouterr()
    for name, path in files.items():
        assert main(["info", str(path)]) == 0, name
        text = capsys.readouterr().out.splitlines()
        assert main(["info", str(path), "--json"]) == 0, name
        doc = json.loads(capsys.readouterr().out)
        assert doc["file"] == str(path) and doc["lines"] == text[1:], name
        assert doc["kind"] == {"xyz": "trajectory", "system_periodic": "system", "model_frame": "model",
                               "driven": "trajectory"}.get(name, name)
        if name in ("system", "trajectory", "dataset", "xyz"):
            assert doc["systems"][0]["n"] == 4 and doc["systems"][0]["damping"] is None
        if name in ("model", "baseline_model", "rf_hnn_model", "model_frame"):
            assert "train_system" in doc["header"]
        assert ("damping" in doc) == (name == "driven"), name
    doc = json.loads(json.dumps(doc))
    assert doc["damping"] == 0.05
    assert doc["forcing"] == {"drives": [{"nodes": [0, 3, 6], "amplitude": 0.2, "frequency": 1.3, "phase": 0.25,
                                          "direction": [1.0, 0.5]}], "field": [0.0, -0.01]}
    bal = doc["trajectories"][0]["energy_balance"]
    assert bal["dissipated"] > 0 and bal["max_abs_residual"] < 1e-4
    # several files: a list of documents
    assert main(["info", str(files["system"]), str(driven), "--json"]) == 0
    docs = json.loads(capsys.readouterr().out)
    assert [d["kind"] for d in docs] == ["system", "trajectory"]


def test_a_damped_model_train_system_reports_its_damping(tmp_path, capsys):
    # a model file's train_system carries the port: info --json lifts it to the top level
    from core.learning.rfhgn import RFConfig, fit
    from core.physics.datagen import random_snapshots

    system = builders.chain(4).copy(port=Port(0.2))
    ds = random_snapshots(system, 24, seed=0)
    path = fit(ds, RFConfig(node_width=4, edge_width=4, message_width=8, fast_tables=False)).save(
        tmp_path / "m.npz")
    assert main(["info", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "model" and doc["damping"] == 0.2 and doc["forcing"]["drives"] == []
