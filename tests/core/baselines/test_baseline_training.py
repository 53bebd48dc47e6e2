"""Training loop of the gradient-trained baselines: it learns, it stops (time
budget, epochs, early stopping, cancel), every optimizer runs, and the
settings are validated."""
import threading
import time

import numpy as np
import pytest
import torch

from core.physics import builders
from core.learning.baselines import OPTIMIZERS, BaselineConfig, fit
from core.physics.datagen import random_snapshots
from core.errors import Cancelled, HGNError
from core.learning.metrics import derivative_mse

SMALL = dict(node_width=8, edge_width=8, message_width=16, time_budget=0, threads=1)


@pytest.fixture(scope="module")
def lattice_data():
    s = builders.cubic_lattice(2, 2, 2)
    return random_snapshots(s, 60, seed=0, test_fraction=0.25)


def test_adam_reduces_the_loss_and_the_test_error(lattice_data):
    ds = lattice_data
    m = fit(ds, BaselineConfig(optimizer="adam", max_epochs=40, batch_size=8, restore_best=False, **SMALL),
            monitor=ds, monitor_growth=1.0)
    info = m.info
    losses = info["loss_history"]
    assert len(losses) == info["epochs"] == 40
    assert losses[-1] < 0.05 * losses[0]
    test = derivative_mse(m, ds)
    assert test < 0.05 * info["monitor_initial"]
    # the monitor measured what derivative_mse measures (with the float32 training weights),
    # after epoch 0 (the initial weights) and then after every epoch (growth 1)
    mon = np.array(info["monitor_history"])
    assert mon[-1, 2] == pytest.approx(test, rel=1e-3)
    assert list(mon[:, 0]) == list(range(41))
    assert np.allclose(mon[1:, 1], info["time_history"])
    assert not info["restored_best"]
    assert info["stop_reason"] == "max epochs"
    assert info["fit_time"] > 0 and info["train_time"] > 0
    assert info["n_train"] + info["n_validation"] == len(ds.train)
    assert len(info["time_history"]) == 40 and np.all(np.diff(info["time_history"]) >= 0)


def test_restore_best_keeps_the_weights_with_the_lowest_validation_loss(lattice_data):
    m = fit(lattice_data, BaselineConfig(optimizer="sgd", learning_rate=3.0, max_epochs=12, batch_size=4,
                                         **SMALL))
    val = m.info["val_history"]
    finite = [v for v in val if np.isfinite(v)]
    assert m.info["best_val_loss"] == pytest.approx(min(finite))
    assert m.info["best_epoch"] == 1 + int(np.nanargmin(np.where(np.isfinite(val), val, np.nan)))


def test_every_optimizer_takes_steps(lattice_data):
    ds = lattice_data
    for key, spec in OPTIMIZERS.items():
        m = fit(ds, BaselineConfig(optimizer=key, max_epochs=2, batch_size=16, patience=0, **SMALL))
        info = m.info
        assert info["optimizer"] == key
        assert info["epochs"] == 2, key
        assert info["steps"] == (2 if spec.full_batch else 2 * int(np.ceil(info["n_train"] / 16))), key
        assert info["full_batch"] == spec.full_batch
        assert all(np.isfinite(info["loss_history"])), key
        dq, dp = m.time_derivatives(ds.system, ds.q[:2], ds.p[:2])
        assert np.all(np.isfinite(dq)) and np.all(np.isfinite(dp)), key


def test_weights_change_from_their_initial_values(lattice_data):
    a = fit(lattice_data, BaselineConfig(optimizer="adam", max_epochs=1, **SMALL))
    b = fit(lattice_data, BaselineConfig(optimizer="adam", max_epochs=3, **SMALL))
    wa = dict(a.network.to_arrays(), theta=a.theta)
    wb = dict(b.network.to_arrays(), theta=b.theta)
    assert any(not np.allclose(wa[k], wb[k]) for k in wa)
    # same seed, same settings: the same weights
    a2 = fit(lattice_data, BaselineConfig(optimizer="adam", max_epochs=1, **SMALL))
    w2 = dict(a2.network.to_arrays(), theta=a2.theta)
    assert all(np.array_equal(wa[k], w2[k]) for k in wa)


def test_early_stopping_triggers_on_a_plateau(lattice_data):
    # a learning rate so small that nothing improves by the relative min_delta
    m = fit(lattice_data, BaselineConfig(optimizer="sgd", learning_rate=1e-12, max_epochs=500, patience=5,
                                         min_delta=1e-3, **SMALL))
    assert m.info["stop_reason"] == "early stopping"
    assert m.info["epochs"] == 6  # the first epoch sets the best, five more without improvement


def test_time_budget_stops_training(lattice_data):
    t = time.perf_counter()
    m = fit(lattice_data, BaselineConfig(optimizer="adam", node_width=8, edge_width=8, message_width=16,
                                         time_budget=0.5, max_epochs=10 ** 6, patience=0, threads=1))
    wall = time.perf_counter() - t
    assert m.info["stop_reason"] == "time budget"
    assert 0.5 <= m.info["train_time"] < 1.5
    assert wall < 10


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_cancel_stops_training_within_a_second(optimizer):
    s = builders.cubic_lattice(3, 3, 3)
    ds = random_snapshots(s, 200, seed=1)
    cancel = threading.Event()
    stages = []
    box = {}

    def run():
        try:
            box["model"] = fit(ds, BaselineConfig(optimizer=optimizer, time_budget=60, patience=0, threads=1),
                               progress=lambda st, f: stages.append((st, f)), cancel=cancel)
        except Cancelled:
            box["cancelled"] = time.perf_counter()

    th = threading.Thread(target=run)
    th.start()
    deadline = time.perf_counter() + 30
    while not stages and time.perf_counter() < deadline:  # training has started
        time.sleep(0.05)
    time.sleep(0.3)
    t_set = time.perf_counter()
    cancel.set()
    th.join(timeout=10)
    assert not th.is_alive()
    assert "cancelled" in box and "model" not in box
    assert box["cancelled"] - t_set < 1.0
    assert stages and all(st == "epochs" for st, _ in stages)


def test_progress_reports_epochs_from_zero_to_one(lattice_data):
    seen = []
    fit(lattice_data, BaselineConfig(optimizer="rprop", max_epochs=30, **SMALL),
        progress=lambda st, f: seen.append((st, f)))
    assert {st for st, _ in seen} == {"epochs"}
    fr = [f for _, f in seen]
    assert fr[0] == 0.0 and fr[-1] == 1.0
    assert all(0.0 <= f <= 1.0 for f in fr) and np.all(np.diff(fr) >= 0)


def test_the_energy_constant_comes_from_a_known_energy(lattice_data):
    ds = lattice_data
    m = fit(ds, BaselineConfig(optimizer="adam", max_epochs=3, **SMALL))
    t0 = ds.train[0]
    assert m.info["energy_constant_known"]
    # the constant is fixed with the exact network; the tables (fast_tables, on by default) agree to 1e-10 of f'
    assert float(m.energy(ds.system, ds.q[t0], ds.p[t0], exact=True)) == pytest.approx(ds.energy[t0], rel=1e-12,
                                                                                       abs=1e-12)
    assert float(m.energy(ds.system, ds.q[t0], ds.p[t0])) == pytest.approx(ds.energy[t0], rel=1e-9, abs=1e-9)


def test_the_training_range_is_recorded_for_roll_outs(lattice_data):
    """Like an RF fit, the smallest and largest training pair distance and
    the largest kinetic input are in ``info`` (the roll-out's training-range check reads them)."""
    from core.learning.rollout import training_distance_range

    ds = lattice_data
    m = fit(ds, BaselineConfig(optimizer="adam", max_epochs=1, validation_fraction=0.0, **SMALL))
    q, p = ds.q[ds.train], ds.p[ds.train]
    e = ds.system.edges
    r = np.linalg.norm(q[:, e[:, 0]] - q[:, e[:, 1]], axis=-1)
    assert m.info["train_r_max"] == pytest.approx(r.max(), rel=1e-14)
    assert m.info["train_k_max"] == pytest.approx((0.5 * (p * p).sum(-1) / ds.system.masses).max(), rel=1e-14)
    assert m.info["train_r_min"] == pytest.approx(r.min(), rel=1e-14)
    assert training_distance_range(m) == pytest.approx((r.min(), r.max()))


@pytest.mark.parametrize("init", ["swim", "elm"])
def test_sampled_initialisation_and_frame_encoding_train(lattice_data, init):
    m = fit(lattice_data, BaselineConfig(optimizer="adam", max_epochs=5, init=init, encoding="frame", **SMALL))
    assert not m.separable
    assert m.info["init"] == init
    assert m.info["loss_history"][-1] < m.info["loss_history"][0]


def test_cutoff_system_trains():
    s = builders.molecular(64, density=0.8, dim=3, cutoff=1.6, jitter=0.05, seed=1)
    ds = random_snapshots(s, 20, displacement=0.03, temperature=0.5, seed=0, test_fraction=0.2)
    m = fit(ds, BaselineConfig(optimizer="adam", max_epochs=5, **SMALL))
    assert np.isfinite(derivative_mse(m, ds))
    assert m.info["loss_history"][-1] < m.info["loss_history"][0]


def test_bad_settings_are_rejected():
    with pytest.raises(HGNError, match="unknown optimizer"):
        BaselineConfig(optimizer="adamant")
    with pytest.raises(HGNError, match="batch_size"):
        BaselineConfig(batch_size=0)
    with pytest.raises(HGNError, match="validation_fraction"):
        BaselineConfig(validation_fraction=1.0)
    with pytest.raises(HGNError, match="init"):
        BaselineConfig(init="xavier")
    with pytest.raises(HGNError, match="unknown baseline setting"):
        BaselineConfig.from_dict({"optimiser": "adam"})
    with pytest.raises(HGNError, match="Dataset"):
        fit("not data", BaselineConfig())
    assert BaselineConfig(optimizer="SGD with momentum").optimizer == "sgd_momentum"
    c = BaselineConfig(optimizer="lbfgs")
    assert BaselineConfig.from_dict(c.to_dict()) == c
    assert c.lr == OPTIMIZERS["lbfgs"].lr


def test_fifteen_optimizers():
    assert len(OPTIMIZERS) == 15
    labels = {s.label.split(" (")[0] for s in OPTIMIZERS.values()}
    for name in ("Adam", "AdamW", "Adamax", "NAdam", "RAdam", "Adagrad", "Adadelta", "Adafactor", "RMSprop",
                 "Rprop", "SGD", "SGD with momentum", "ASGD", "LBFGS"):
        assert name in labels
    assert {k for k, s in OPTIMIZERS.items() if s.full_batch} == {"rprop", "lbfgs"}


#: loss histories of the first torch baselines (commit b00e48d, their own TorchHGN network) on
#: lattice_data with SMALL, Adam, batch 8, 5 epochs, float64: the HGN trains the same way
B00E48D_LOSSES = {
    "invariant-torch": [1.019413149049e+00, 2.639426774310e-01, 5.396301288817e-02, 6.766212526297e-02,
                        1.999172162407e-02],
    "frame-torch": [3.373660676581e-01, 8.186073193442e-02, 3.446884971904e-02, 2.280200236030e-02,
                    1.038803392997e-02],
    "invariant-swim": [3.136214314594e-01, 6.202278746682e-02, 3.365941161262e-02, 8.239594315017e-03,
                       6.988947399902e-03],
}


@pytest.mark.parametrize("case", sorted(B00E48D_LOSSES))
def test_float64_training_repeats_the_first_torch_baselines(lattice_data, case):
    """Same initial weights (torch init: the same generator draws; swim: the
    same sampling), same standardisation, minibatches and loss: the loss
    history of the code before the one network (b00e48d) to round-off."""
    encoding, init = case.split("-")
    cfg = BaselineConfig(optimizer="adam", max_epochs=5, batch_size=8, dtype="float64", encoding=encoding,
                         init=init, **SMALL)
    m = fit(lattice_data, cfg)
    assert m.info["loss_history"] == pytest.approx(B00E48D_LOSSES[case], rel=1e-9)


def test_float32_training_stays_close_to_float64(lattice_data):
    cfg = dict(optimizer="adam", max_epochs=3, batch_size=8, **SMALL)
    a = fit(lattice_data, BaselineConfig(dtype="float32", **cfg))
    b = fit(lattice_data, BaselineConfig(dtype="float64", **cfg))
    assert a.info["dtype"] == "float32" and b.info["dtype"] == "float64"
    assert a.info["loss_history"] == pytest.approx(b.info["loss_history"], rel=1e-4)
    assert a.network.dtype == torch.float64  # evaluation is float64 either way
    assert a.theta.dtype == np.float64


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error(lattice_data):
    cfg = BaselineConfig(device="cuda", max_epochs=1, **SMALL)  # a setting, valid anywhere
    assert BaselineConfig.from_dict(cfg.to_dict()).device == "cuda"
    with pytest.raises(HGNError, match="CUDA was asked for but this machine has none"):
        fit(lattice_data, cfg)
    with pytest.raises(HGNError, match="device"):
        BaselineConfig(device="tpu")
    assert BaselineConfig(device="cuda:1").device == "cuda:1"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("encoding", ["invariant", "frame"])
def test_training_on_cuda_matches_the_cpu(lattice_data, encoding, tmp_path):
    """float64 training on the GPU follows the CPU's loss history to round-off;
    the model evaluates on the GPU, saves, and loads on either device."""
    cfg = dict(optimizer="adam", max_epochs=4, batch_size=8, dtype="float64", encoding=encoding, **SMALL)
    cpu = fit(lattice_data, BaselineConfig(**cfg))
    gpu = fit(lattice_data, BaselineConfig(device="cuda", **cfg))
    assert gpu.network.device.type == "cuda"
    assert gpu.info["loss_history"] == pytest.approx(cpu.info["loss_history"], rel=1e-8)
    ds = lattice_data
    q, p = ds.q[ds.test], ds.p[ds.test]
    for a, b in zip(gpu.gradients(ds.system, q, p), cpu.gradients(ds.system, q, p)):
        assert np.allclose(a, b, rtol=1e-7, atol=1e-9)
    from core.learning.baselines import TrainedHGN

    path = gpu.save(tmp_path / "gpu.npz")
    on_cpu = TrainedHGN.load(path)
    on_gpu = TrainedHGN.load(path, device="cuda")
    assert on_cpu.network.device.type == "cpu" and on_gpu.network.device.type == "cuda"
    assert np.array_equal(on_gpu.energy(ds.system, q, p), gpu.energy(ds.system, q, p))  # same device: bit for bit
    assert np.allclose(on_cpu.energy(ds.system, q, p), gpu.energy(ds.system, q, p), rtol=1e-12, atol=1e-12)
    float32 = fit(lattice_data, BaselineConfig(device="cuda", **dict(cfg, dtype="float32")))
    assert float32.info["loss_history"] == pytest.approx(cpu.info["loss_history"], rel=1e-3)
