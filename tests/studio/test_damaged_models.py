"""The studio's window opens model files without torch (PackedModel.from_file,
installed by studio.workers.keep_torch_out); it must still refuse damaged
models with core's HGNError, as core's loaders do (issue 11), instead of
holding a broken model or raising a traceback."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from core.errors import HGNError
from file_cases import make_valid_files, read_raw, write_raw


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_valid_files(tmp_path_factory.mktemp("valid"))


def _damaged(files, tmp_path, kind, change):
    src = files["baseline_model" if kind == "baseline_model" else "model"]
    header, arrays = read_raw(src)
    change(header, arrays)
    return write_raw(tmp_path / f"damaged-{kind}.npz", header, arrays)


def _wrong_weight_shape(key):
    def change(header, arrays):
        arrays[key] = np.zeros((arrays[key].shape[0] + 3, arrays[key].shape[1]))
    return change


def _nan_theta(key):
    def change(header, arrays):
        arrays[key] = arrays[key].copy()
        arrays[key][0] = np.nan
    return change


def _string_dim(header, arrays):
    header["dim"] = "3"


def _train_system_3d(header, arrays):
    header["train_system"]["dim"] = 3


CASES = [
    ("model", _wrong_weight_shape("edge_W"), "edge_"),
    ("model", _nan_theta("theta"), "theta"),
    ("model", _string_dim, "dim"),
    ("model", _train_system_3d, "train_system|dim"),
    ("baseline_model", _wrong_weight_shape("state.edge_W"), "edge_"),
    ("baseline_model", _nan_theta("state.theta"), "theta"),
    ("baseline_model", _string_dim, "dim"),
]


@pytest.mark.parametrize("kind, change, field", CASES)
def test_the_window_refuses_a_damaged_model_as_core_does(files, tmp_path, kind, change, field):
    from core.learning.baselines.model import TrainedHGN
    from core.learning.rfhgn.model import FittedModel
    from studio.worker_process import PackedModel

    path = _damaged(files, tmp_path, kind, change)
    with pytest.raises(HGNError, match=path.name) as core_error:
        (FittedModel if kind == "model" else TrainedHGN).load(path)
    with pytest.raises(HGNError, match=field) as gui_error:
        PackedModel.from_file(path, kind=kind)
    assert path.name in str(gui_error.value)
    assert "\n" not in str(gui_error.value)
    del core_error


@pytest.mark.parametrize("kind", ["model", "baseline_model"])
def test_the_window_opens_a_valid_model_with_its_facts(files, kind):
    from studio.worker_process import PackedModel

    path = files["baseline_model" if kind == "baseline_model" else "model"]
    packed = PackedModel.from_file(path, kind=kind)
    header, _ = read_raw(path)
    assert packed.meta["kind"] == kind and packed.meta["dim"] == header["dim"]
    assert packed.meta["train_system"].n == header["train_system"]["n"]
    assert packed.blob == path.read_bytes()


def test_checking_a_model_file_in_the_window_imports_no_torch(files):
    code = ("import sys; import studio.worker_process as wp; "
            f"m = wp.PackedModel.from_file({str(files['model'])!r}, kind='model'); "
            f"b = wp.PackedModel.from_file({str(files['baseline_model'])!r}, kind='baseline_model'); "
            "print('torch' in sys.modules, m.meta['dim'], b.meta['dim'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "False", out.stdout
