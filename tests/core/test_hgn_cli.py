"""``python -m core train --device cpu|cuda --threads N``: the settings reach
the fitted model, and asking for CUDA without one is a one-line error before
any work."""
import pytest
import torch

from core.cli.app import main
from core.learning.rfhgn import FittedModel

SMALL = ["--set", "edge_width=8", "--set", "message_width=8", "--set", "node_width=4"]
TRAIN = ["train", "--kind", "square", "--n", "2", "--m", "3", "--snapshots", "20", "--test-snapshots", "5", "-q"]


def test_train_device_and_threads_reach_the_model(tmp_path, capsys):
    out = tmp_path / "m.npz"
    assert main([*TRAIN, "--device", "cpu", "--threads", "1", "--out", str(out), *SMALL]) == 0
    model = FittedModel.load(out)
    assert model.config.device == "cpu" and model.config.threads == 1
    assert main([*TRAIN, "--threads", "0", "--out", str(out), *SMALL]) == 0
    assert FittedModel.load(out).config.threads == 0
    assert main([*TRAIN, "--threads", "-1", "--out", str(tmp_path / "bad.npz"), *SMALL]) != 0
    assert "threads" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_train_on_cuda_without_one_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "m.npz"
    code = main([*TRAIN, "--device", "cuda", "--out", str(out), *SMALL])
    err = capsys.readouterr().err
    assert code != 0 and not out.exists()
    assert "CUDA was asked for but this machine has none" in err and "--device cpu" in err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_train_on_cuda_loads_on_the_cpu(tmp_path):
    out = tmp_path / "m.npz"
    assert main([*TRAIN, "--device", "cuda", "--out", str(out), *SMALL]) == 0
    model = FittedModel.load(out)
    assert model.config.device == "cuda" and model.network.device.type == "cpu"
