"""Pre-training over pooled systems and fine-tuning on a few snapshots
(core.learning.baselines.finetune; issue 14's gradient alternative to adaptation)."""
import numpy as np
import pytest
import torch

from core.errors import HGNError
from core.learning.baselines import BaselineConfig
from core.learning.baselines.finetune import finetune, pretrain
from core.learning.metrics import derivative_mse
from core.physics import builders
from core.physics.datagen import random_snapshots

SMALL = dict(node_width=8, static_width=4, edge_width=8, message_width=8, time_budget=0, threads=1,
             batch_size=16, patience=0)


def _data(potential, n, seed):
    return random_snapshots(builders.square_lattice(3, 3, potential=potential), n, seed=seed)


@pytest.fixture(scope="module")
def pooled():
    harmonic, morse = _data("harmonic", 40, 1), _data("morse", 40, 2)
    model = pretrain([harmonic, morse], BaselineConfig(max_epochs=15, validation_fraction=0, **SMALL),
                     names=["harmonic", "morse"])
    return harmonic, morse, model


@pytest.fixture(scope="module")
def target():
    return _data("fpu-beta", 30, 3), _data("fpu-beta", 40, 4)


def test_pretraining_lowers_the_pooled_loss_and_records_the_pool(pooled):
    _, _, model = pooled
    info = model.info
    assert info["pooled"] == ["harmonic", "morse"] and info["n_snapshots"] == [40, 40]
    assert info["epochs"] == 15 and info["steps"] == 15 * 6  # 40 snapshots in batches of 16: 3 per dataset
    assert info["loss_history"][-1] < 0.5 * info["loss_history"][0]
    assert info["energy_constant_known"] is False and model.constant == 0.0


def test_pooled_input_normalisation_and_loss_weights(pooled):
    harmonic, morse, model = pooled
    net = model.network
    # kinetic energy per particle, pooled over both datasets (every snapshot trains: validation_fraction 0)
    k = np.concatenate([0.5 * (d.p ** 2).sum(-1).ravel() for d in (harmonic, morse)])
    assert net.kin_mu.item() == pytest.approx(k.mean(), rel=1e-6)
    assert net.kin_s.item() == pytest.approx(k.std(), rel=1e-6)
    # edge lengths of the 12 springs of the 3x3 lattice in every snapshot of both datasets
    r = []
    for d in (harmonic, morse):
        e = d.system.edges
        r.append(np.linalg.norm(d.q[:, e[:, 1]] - d.q[:, e[:, 0]], axis=-1).ravel())
    r = np.concatenate(r)
    assert net.edge_mu.item() == pytest.approx(r.mean(), rel=1e-6)
    assert net.edge_s.item() == pytest.approx(r.std(), rel=1e-6)
    w = [1.0 / (0.5 * (np.mean(d.dqdt ** 2) + np.mean(d.dpdt ** 2))) for d in (harmonic, morse)]
    assert model.info["loss_weights"] == pytest.approx(w, rel=1e-12)


def test_finetuning_lowers_the_target_loss(pooled, target):
    _, _, model = pooled
    train, test = target
    before = derivative_mse(model, test, np.arange(test.n_snapshots))
    tuned = finetune(model, train, k=10, steps=60, lr=1e-2)
    info = tuned.info
    assert info["steps"] == 60 and info["k"] == 10 and info["full_batch"] is True
    assert info["final_loss"] < 0.5 * info["initial_loss"]
    after = derivative_mse(tuned, test, np.arange(test.n_snapshots))
    assert after < 0.5 * before, (before, after)
    # the energy constant comes from the first chosen snapshot
    e0 = tuned.energy(train.system, train.q[0], train.p[0], exact=True)
    assert e0 == pytest.approx(train.energy[0], rel=1e-9, abs=1e-12)


def test_finetuning_starts_from_exactly_the_pretrained_parameters(pooled, target):
    _, _, model = pooled
    train, _ = target
    before = {k: v.clone() for k, v in model.network.state_dict().items()}
    same = finetune(model, train, k=5, steps=0)
    for name, v in same.network.state_dict().items():
        assert torch.equal(v, before[name]), name
    assert same.network is not model.network
    moved = finetune(model, train, k=5, steps=3, lr=1e-2)
    # the first recorded loss is the pre-trained network's loss on those snapshots; the model itself is untouched
    assert moved.info["loss_history"][0] == pytest.approx(moved.info["initial_loss"], rel=1e-5)
    assert moved.info["initial_loss"] == pytest.approx(same.info["initial_loss"], rel=1e-12)
    assert not torch.equal(moved.network.theta, before["theta"])
    for name, v in model.network.state_dict().items():
        assert torch.equal(v, before[name]), name


def test_minibatches_when_k_exceeds_the_batch(pooled, target):
    _, _, model = pooled
    train, _ = target
    tuned = finetune(model, train, k=30, steps=4, lr=1e-3, seed=7)
    assert tuned.info["full_batch"] is False and tuned.info["batch_size"] == 16
    assert len(tuned.info["snapshots"]) == 30


def test_refuses_mismatched_dimension_and_bad_arguments(pooled, target):
    harmonic, _, model = pooled
    cubic = random_snapshots(builders.cubic_lattice(2, 2, 2), 10, seed=0)
    with pytest.raises(HGNError, match="model is for 2D systems, the data are 3D"):
        finetune(model, cubic, k=5, steps=1)
    with pytest.raises(HGNError, match="share a dimension"):
        pretrain([harmonic, cubic], BaselineConfig(max_epochs=1, **SMALL))
    train, _ = target
    with pytest.raises(HGNError, match="k \\(snapshots\\) must be between 1 and the 30"):
        finetune(model, train, k=31)
    with pytest.raises(HGNError, match="steps"):
        finetune(model, train, k=3, steps=-1)
    with pytest.raises(HGNError, match="trained HGN"):
        finetune("model.npz", train)
