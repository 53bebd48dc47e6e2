"""Pre-training over several systems and fine-tuning on a few snapshots: the
gradient alternative to few-shot adaptation (issue 14; the meta-learning
recipe: learn one network on many systems, then adapt it to a new one with
a few gradient steps).

* :func:`pretrain` trains the HGN (every layer, as :func:`.training.fit`)
  on the pooled training snapshots of several datasets (other potentials,
  parameters, sizes; one dimension). Each minibatch holds snapshots of one
  dataset (their graphs differ); an epoch visits every minibatch of every
  dataset once in a seeded random order. The inputs are standardised by the
  mean and spread of the pooled raw inputs. With ``balance`` (default) each
  dataset's loss is divided by the mean square of its training derivatives,
  so that a stiff system (Lennard-Jones forces in the hundreds) does not
  drown a soft one; the validation loss (a seeded share of each dataset,
  ``config.validation_fraction``) is weighted the same way and decides early
  stopping and the kept weights as in :func:`.training.fit`. The returned
  model has no energy constant (the systems' constants differ):
  ``info["energy_constant_known"]`` is False.
* :func:`finetune` starts from exactly a trained model's parameters
  (every layer and the input normalisation buffers; nothing re-initialised)
  and takes ``steps`` optimizer steps (Adam by default) on ``k`` training
  snapshots of one dataset: full batch when k <= ``batch_size``, otherwise
  minibatches in a seeded order. No validation split (k may be 1): the
  weights after the last step are returned, with the energy constant fixed
  on the first chosen snapshot.

The loss, the data tensors, the input normalisation, the initialisation and
the optimizers are :mod:`.training`'s and :mod:`.optimizers`' own.
"""
from __future__ import annotations

import copy
import math
import time

import numpy as np

from core.errors import HGNError
from core.jobs import available_cores, check_cancel, report
from core.physics.trajectory import Dataset
from ..hgn.device import resolve_device, torch_threads
from ..learned import training_arrays
from .config import BaselineConfig
from .model import TrainedHGN
from .optimizers import get_spec, make_optimizer
from .training import (EarlyStopping, _Data, _evaluate, _loss, _spread, _validation_split, _warm_imports, init_theta,
                       init_torch, input_values, load_raw)


def _check_system(system) -> None:
    if system.edges is not None and len(system.edges) == 0:
        raise HGNError(f"{system.name or 'a system'} has no springs (no edges), so there is no potential to learn")


def _ranges(graph, q, p) -> tuple[float | None, float, float]:
    """(smallest, largest) pair distance and largest kinetic energy per particle of snapshots q, p."""
    import torch

    with torch.no_grad():
        r = graph.delta(q)[1] if graph.P else None
        k = 0.5 * (p * p).sum(-1) / graph.masses
    return (float(r.min()) if r is not None else None, float(r.max()) if r is not None else 0.0,
            float(k.max()))


def pretrain(datasets, config: BaselineConfig | None = None, progress=None, cancel=None, *,
             balance: bool = True, names=None) -> TrainedHGN:
    """The HGN trained on the pooled training snapshots of ``datasets`` (one
    dimension; see the module notes). Stops at the first of
    ``config.time_budget``, ``config.max_epochs``, early stopping, a
    non-finite loss. ``names``: one label per dataset (default the systems'
    names). ``info``: fit_time, epochs, steps, stop_reason, loss curves,
    the pooled names and snapshot counts, the loss weights, the pooled
    training ranges."""
    _warm_imports()
    t0 = time.perf_counter()
    config = BaselineConfig.checked(config)
    datasets = list(datasets) if isinstance(datasets, (list, tuple)) else [datasets]
    if not datasets or not all(isinstance(d, Dataset) for d in datasets):
        raise HGNError("pre-training needs a list of one or more Dataset objects")
    dims = sorted({d.system.dim for d in datasets})
    if len(dims) > 1:
        raise HGNError(f"the datasets of one pre-training must share a dimension, got {dims}D; "
                       "pre-train one network per dimension")
    names = [d.system.name or f"dataset {i}" for i, d in enumerate(datasets)] if names is None else \
        [str(n) for n in names]
    if len(names) != len(datasets):
        raise HGNError(f"{len(names)} names for {len(datasets)} datasets")
    parts = []
    for d in datasets:
        train, q, p, dqdt, dpdt = training_arrays(d)
        d.check_trainable(train)
        _check_system(d.system)
        if config.encoding == "frame" and d.system.box is not None:
            raise HGNError("the frame encoding needs non-periodic systems; use the invariant encoding")
        parts.append((d.system, q, p, dqdt, dpdt))
    spec = get_spec(config.optimizer)
    device = resolve_device(config.device)
    with torch_threads(max(1, min(config.threads, available_cores()))):
        return _pretrain(parts, names, config, spec, device, balance, progress, cancel, t0)


def _pretrain(parts, names, config, spec, device, balance, progress, cancel, t0) -> TrainedHGN:
    import torch

    from ..hgn.graph import Graph
    from ..hgn.network import HGN

    dtype = {"float32": torch.float32, "float64": torch.float64}[config.dtype]
    rng = np.random.default_rng(config.seed)
    gen = torch.Generator().manual_seed(int(config.seed))
    f64 = dict(dtype=torch.float64, device=device)
    datas, vals, weights, raw, sets = [], [], [], {}, []
    r_min, r_max, k_max = math.inf, 0.0, 0.0
    for (system, q, p, dqdt, dpdt), name in zip(parts, names):
        check_cancel(cancel)
        tr, va = _validation_split(len(q), config.validation_fraction, rng)
        q_tr, p_tr = torch.as_tensor(q[tr], **f64), torch.as_tensor(p[tr], **f64)
        g_tr = Graph.build(system, q_tr, device=device)
        if int(g_tr.P) == 0:
            raise HGNError(f"{name}: no pair of particles is within the cutoff in any training snapshot, so there "
                           "is no potential to learn")
        for layer, x in input_values(g_tr, q_tr, p_tr, config.encoding).items():
            raw.setdefault(layer, []).append(x)
        lo, hi, km = _ranges(g_tr, q_tr, p_tr)
        r_min, r_max, k_max = min(r_min, lo if lo is not None else math.inf), max(r_max, hi), max(k_max, km)
        # balance: each dataset's loss relative to the mean square of its own training derivatives
        scale = 0.5 * float(np.mean(dqdt[tr] ** 2) + np.mean(dpdt[tr] ** 2)) if balance else 1.0
        weights.append(1.0 / scale if scale > 0 else 1.0)
        datas.append(_Data(q[tr], p[tr], dqdt[tr], dpdt[tr], g_tr.to(dtype=dtype)))
        vals.append(_Data(q[va], p[va], dqdt[va], dpdt[va],
                          Graph.build(system, q[va], device=device).to(dtype=dtype)) if len(va) else None)
        sets.append((system, q[tr], p[tr]))
    first = parts[0][0]
    network = HGN(config.encoding, first.dim, config.widths(), linear_kinetic=config.linear_kinetic,
                  pool_edges=config.pool_edges, cutoff_shift=config.cutoff_shift, dtype=torch.float64,
                  device=device)
    with torch.no_grad():
        for layer, xs in raw.items():
            mu, s = _spread(np.concatenate(xs, axis=0))
            getattr(network, f"{layer}_mu").copy_(torch.as_tensor(mu))
            getattr(network, f"{layer}_s").copy_(torch.as_tensor(s))
    del raw
    if config.init == "torch":
        init_torch(network, gen)
    else:  # sampled on the pooled snapshots, as a pooled RF basis is
        from ..rfhgn.sampling import choose_points, sample_network

        rf = config.rf_config(config.init)
        srng = np.random.default_rng(config.seed)
        load_raw(network, sample_network(rf, choose_points(sets, rf, srng), srng).to_arrays())
        init_theta(network, gen)
    network = network.to(dtype)
    network.train()

    optimizer = make_optimizer(spec.key, list(network.named_parameters()), config.lr)
    n_total = sum(d.n for d in datas)
    n_val = sum(v.n for v in vals if v is not None)

    def val_loss() -> float:
        if n_val == 0:
            return float("nan")
        return sum(w * _evaluate(network, v) * v.n for w, v in zip(weights, vals) if v is not None) / n_val

    def full_closure():
        check_cancel(cancel)
        optimizer.zero_grad()
        loss = sum(w * _loss(network, d, None, True) * (d.n / n_total) for w, d in zip(weights, datas))
        loss.backward()
        return loss

    full_batch = spec.full_batch
    history = {"epoch": [], "time": [], "train_loss": [], "val_loss": []}
    stopping, best_state = EarlyStopping(config), None
    stop_reason, steps, out_of_time = "max epochs", 0, False
    budget = config.time_budget if config.time_budget > 0 else math.inf
    t_train = time.perf_counter()
    last_progress = -1.0
    report(progress, "epochs", 0.0)
    epoch = 0
    while epoch < config.max_epochs:
        epoch += 1
        losses, counts = [], []
        if full_batch:
            loss = optimizer.step(full_closure)
            steps += 1
            losses.append(float(loss.detach()))
            counts.append(1)
        else:
            batches = []
            for di, d in enumerate(datas):
                perm = torch.randperm(d.n, generator=gen).numpy()
                batches += [(di, perm[a:a + config.batch_size]) for a in range(0, d.n, config.batch_size)]
            order = torch.randperm(len(batches), generator=gen).numpy()
            for b in order:
                di, idx = batches[b]
                check_cancel(cancel)

                def closure(di=di, idx=idx):
                    optimizer.zero_grad()
                    loss = weights[di] * _loss(network, datas[di], idx, True)
                    loss.backward()
                    return loss

                lv = float(optimizer.step(closure).detach())
                steps += 1
                losses.append(lv)
                counts.append(len(idx))
                if not math.isfinite(lv) or time.perf_counter() - t_train >= budget:
                    break
        train_loss = float(np.average(losses, weights=counts)) if losses else float("nan")
        vl = val_loss()
        vl = train_loss if math.isnan(vl) else vl
        t_now = time.perf_counter() - t_train
        history["epoch"].append(epoch)
        history["time"].append(t_now)
        history["train_loss"].append(train_loss)
        history["val_loss"].append(vl)
        if not (math.isfinite(train_loss) and math.isfinite(vl)):
            stop_reason = "diverged (non-finite loss)"
            break
        if stopping.update(vl, epoch) and config.restore_best:
            best_state = copy.deepcopy(network.state_dict())
        fraction = max(epoch / config.max_epochs, t_now / budget if math.isfinite(budget) else 0.0)
        if fraction - last_progress >= 0.005:
            report(progress, "epochs", fraction)
            last_progress = fraction
        if t_now >= budget:
            stop_reason, out_of_time = "time budget", True
            break
        if stopping.stop:
            stop_reason = "early stopping"
            break
    train_time = time.perf_counter() - t_train
    restored = False
    if config.restore_best and isinstance(best_state, dict):
        network.load_state_dict(best_state)
        restored = True
    report(progress, "epochs", 1.0)
    model = TrainedHGN(config, network.to(torch.float64), 0.0, first.n, None)
    model.info.update(
        name=model.name, method="pre-trained HGN (pooled datasets)", pooled=list(names),
        n_snapshots=[int(d.n + (v.n if v is not None else 0)) for d, v in zip(datas, vals)],
        loss_weights=[float(w) for w in weights], balance=bool(balance),
        fit_time=time.perf_counter() - t0, train_time=train_time, epochs=len(history["epoch"]), steps=steps,
        stop_reason=stop_reason, out_of_time=out_of_time, best_epoch=stopping.best_epoch,
        best_val_loss=stopping.best_loss, restored_best=restored,
        loss_history=history["train_loss"], val_history=history["val_loss"], time_history=history["time"],
        optimizer=spec.key, optimizer_label=spec.label, learning_rate=config.lr,
        batch_size=None if full_batch else config.batch_size, full_batch=bool(full_batch), init=config.init,
        dtype=config.dtype, threads=int(torch.get_num_threads()),
        n_parameters=int(sum(prm.numel() for prm in network.parameters())), n_features=int(network.L),
        energy_constant_known=False, train_r_max=r_max, train_r_min=r_min if math.isfinite(r_min) else None,
        train_k_max=k_max,
    )
    return model


def finetune(model: TrainedHGN, dataset: Dataset, k: int | None = None, steps: int = 100, lr: float = 1e-3, *,
             optimizer: str = "adam", batch_size: int | None = None, seed: int | None = None, progress=None,
             cancel=None) -> TrainedHGN:
    """A copy of ``model`` (a :class:`TrainedHGN`; left unchanged) trained
    further by ``steps`` steps of ``optimizer`` at learning rate ``lr`` on
    ``k`` training snapshots of ``dataset`` (None: all): the first k of
    ``dataset.train``, or k drawn with ``seed`` (as
    :func:`core.learning.rfhgn.adapt.adapt` chooses them). Minibatches of
    ``batch_size`` (default the model's config) when k is larger, in an
    order seeded by ``seed`` (0 when None). Training arithmetic: the
    model's config dtype, device and threads. ``info``: fit_time (the whole
    call: data in memory to model), steps, loss_history (per step),
    initial_loss, the pre-trained model's name, k and the snapshots."""
    _warm_imports()
    t0 = time.perf_counter()
    if not isinstance(model, TrainedHGN):
        raise HGNError(f"fine-tuning needs a trained HGN (core.learning.baselines), got {type(model).__name__}")
    if not isinstance(dataset, Dataset):
        raise HGNError(f"fine-tuning needs a Dataset, got {type(dataset).__name__}")
    net0 = model.network
    system = dataset.system
    if int(net0.dim) != system.dim:
        raise HGNError(f"the model is for {net0.dim}D systems, the data are {system.dim}D; "
                       f"pre-train a network on {system.dim}D data")
    if net0.encoding == "invariant" and system.edges is None and system.cutoff is None:
        raise HGNError("the data's system has neither edges nor a cutoff; the invariant network needs a graph")
    if net0.encoding == "frame" and system.box is not None:
        raise HGNError("the frame encoding needs a non-periodic system; use the invariant encoding")
    _check_system(system)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise HGNError(f"steps must be a whole number >= 0, got {steps!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise HGNError(f"learning rate must be a number > 0, got {lr!r}")
    config = model.config
    batch_size = config.batch_size if batch_size is None else batch_size
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise HGNError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    spec = get_spec(optimizer)
    train, q, p, dqdt, dpdt = training_arrays(dataset)
    k = len(train) if k is None else k
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= len(train):
        raise HGNError(f"k (snapshots) must be between 1 and the {len(train)} training snapshots, got {k!r}")
    pick = np.arange(k) if seed is None else np.sort(np.random.default_rng(seed).choice(len(train), k,
                                                                                         replace=False))
    dataset.check_trainable(train[pick])
    q, p, dqdt, dpdt = q[pick], p[pick], dqdt[pick], dpdt[pick]
    device = net0.device
    with torch_threads(max(1, min(config.threads, available_cores()))):
        return _finetune(model, dataset, train[pick], q, p, dqdt, dpdt, int(steps), float(lr), spec,
                         int(batch_size), 0 if seed is None else int(seed), device, progress, cancel, t0)


def _finetune(model, dataset, rows, q, p, dqdt, dpdt, steps, lr, spec, batch_size, seed, device, progress,
              cancel, t0) -> TrainedHGN:
    import torch

    from ..hgn.graph import Graph

    config = model.config
    system = dataset.system
    dtype = {"float32": torch.float32, "float64": torch.float64}[config.dtype]
    network = copy.deepcopy(model.network).to(dtype)
    for prm in network.parameters():
        prm.requires_grad_(True)
    network.train()
    g64 = Graph.build(system, q, device=device)
    lo, hi, km = _ranges(g64, torch.as_tensor(q, dtype=torch.float64, device=device),
                         torch.as_tensor(p, dtype=torch.float64, device=device))
    data = _Data(q, p, dqdt, dpdt, g64.to(dtype=dtype))
    opt = make_optimizer(spec.key, list(network.named_parameters()), lr)
    gen = torch.Generator().manual_seed(seed)
    full = spec.full_batch or data.n <= batch_size
    initial = _evaluate(network, data)
    history = []
    order, pos = None, data.n
    report(progress, "steps", 0.0)
    for step in range(steps):
        check_cancel(cancel)
        if full:
            idx = None
        else:
            if pos >= data.n:
                order, pos = torch.randperm(data.n, generator=gen).numpy(), 0
            idx = order[pos:pos + batch_size]
            pos += batch_size

        def closure(idx=idx):
            opt.zero_grad()
            loss = _loss(network, data, idx, True)
            loss.backward()
            return loss

        lv = float(opt.step(closure).detach())
        history.append(lv)
        if not math.isfinite(lv):
            break
        if steps >= 200 and step % (steps // 100) == 0:
            report(progress, "steps", step / steps)
    report(progress, "steps", 1.0)
    final = _evaluate(network, data)
    out = TrainedHGN(config, network.to(torch.float64), 0.0, system.n, system)
    constant, known = 0.0, False
    energy = np.asarray(dataset.energy, dtype=np.float64).reshape(-1)
    if energy.shape == (dataset.n_snapshots,) and np.isfinite(energy[rows[0]]):
        constant = float(energy[rows[0]]) - float(out.energy(system, q[0], p[0], exact=True))
        out.constant, known = constant, True
    info0 = model.info or {}
    r_los = [x for x in (lo, info0.get("train_r_min")) if x is not None]
    out.info.update(
        name=f"{model.name} fine-tuned", method="fine-tuned HGN", pretrained=info0.get("name", model.name),
        pretrained_on=info0.get("pooled"), fit_time=time.perf_counter() - t0, steps=len(history),
        k=int(len(rows)), snapshots=[int(i) for i in rows[:50]], seed=seed, learning_rate=lr,
        optimizer=spec.key, optimizer_label=spec.label, batch_size=None if full else batch_size,
        full_batch=bool(full), dtype=config.dtype, initial_loss=initial, final_loss=final,
        loss_history=history, n_snapshots=int(len(rows)), n_particles=int(system.n),
        energy_constant_known=known, train_r_min=min(r_los) if r_los else None,
        train_r_max=max(hi, float(info0.get("train_r_max") or 0.0)),
        train_k_max=max(km, float(info0.get("train_k_max") or 0.0)),
    )
    return out
