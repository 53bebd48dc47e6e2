"""Training a baseline: the same network, loss and snapshots as an RF-HGN fit,
with every layer trained by a torch optimizer (docs/method.md section 7).

Loss: the mean squared error of Hamilton's equations on the training
snapshots, over both halves and every particle and coordinate,

    L = [ sum (dH/dp - dq/dt)^2 + sum (-dH/dq - dp/dt)^2 ] / (2 S N d),

the quantity the RF fit minimises and the one ``core.learning.metrics.derivative_mse``
reports. dH/dq and dH/dp come from torch autograd with ``create_graph=True``
so the loss can be differentiated once more with respect to the weights.

The loop (:func:`fit`):

* a seeded share ``validation_fraction`` of the training snapshots is held
  out; the validation loss decides early stopping (``patience`` epochs
  without a relative improvement of ``min_delta``) and which weights are kept
  (``restore_best``);
* minibatches of ``batch_size`` snapshots in a seeded random order, except
  for the full-batch methods (Rprop, LBFGS), which take every training
  snapshot per step; LBFGS gets a closure that re-evaluates the loss;
* it stops at the first of: ``time_budget`` seconds of training,
  ``max_epochs``, early stopping, a non-finite loss ("diverged");
* job protocol (``core.jobs``): ``progress("epochs", fraction)`` after every
  epoch (fraction of the time budget or of the epochs, whichever is
  further), ``cancel.is_set()`` checked before every optimizer step and in
  every LBFGS closure call; :class:`~core.errors.Cancelled` is raised.

``monitor`` (optional): held-out snapshots whose derivative MSE is recorded
along training (``info["monitor_history"]``: [epoch, training clock, MSE]
rows) with the clock stopped, so the benchmark can tell when a method
reaches a given test error without the measurement counting as training
time. It is taken after the first epoch, then whenever the training clock
has grown by the factor ``monitor_growth`` (at least ``MONITOR_MIN_GAP`` s)
since the last one, and after the last epoch: about 150 measurements for a
run of 40 s with the default 1.05; ``monitor_growth`` 1 measures after every
epoch.

Times: ``info["fit_time"]`` is the wall time from the call (data in memory)
to the usable model, less the monitor's time; ``info["time_history"]`` is the
training clock at the end of each epoch.
"""
from __future__ import annotations

import copy
import math
import time

import numpy as np

from core.errors import HGNError
from core.jobs import available_cores, check_cancel, report
from ..learned import training_arrays
from core.physics.trajectory import Dataset
from .config import BaselineConfig
from .model import TrainedHGN
from .optimizers import get_spec, make_optimizer

#: the share of the time budget (or epochs) between two progress reports is at least this
PROGRESS_STEP = 0.005
#: smallest training time (s) between two monitor measurements
MONITOR_MIN_GAP = 0.02


def _spread(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation per column (spread 1 for constant columns)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    mu = x.mean(axis=0)
    s = x.std(axis=0)
    s = np.where(s > 1e-12 * np.maximum(1.0, np.abs(mu)), s, 1.0)
    return mu, s


def input_statistics(system, q: np.ndarray, p: np.ndarray, graph, encoding: str) -> dict:
    """{layer: (mean, spread)} of the raw inputs of every input layer over the
    snapshots q, p (the fixed input normalisation of the torch network)."""
    masses = np.asarray(system.masses, dtype=np.float64)
    delta = q[graph.snap, graph.i] - q[graph.snap, graph.j] + graph.shift
    r = np.sqrt(np.einsum("ij,ij->i", delta, delta))
    if encoding == "invariant":
        k = 0.5 * np.einsum("sik,sik->si", p, p) / masses
        return {"kin": _spread(k.reshape(-1, 1)), "static": _spread(masses[:, None]),
                "edge": _spread(r[:, None])}
    from ..rfhgn.encoding import build_frame, encode

    S, N, d = q.shape
    fr = build_frame(q)
    qb, pb = encode(fr, p)
    xn = np.concatenate([qb, pb, np.broadcast_to(masses[None, :, None], (S, N, 1))], axis=2).reshape(S * N, -1)
    db = np.einsum("pk,pkl->pl", delta, fr.B[graph.snap])
    xe = np.concatenate([r[:, None], db * db], axis=1)
    return {"node": _spread(xn), "edge": _spread(xe)}


def _validation_split(n: int, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if fraction <= 0 or n < 2:
        return np.arange(n), np.zeros(0, dtype=np.int64)
    n_val = min(n - 1, max(1, int(round(fraction * n))))
    perm = rng.permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _monitor_arrays(monitor, system):
    """(q, p, dqdt, dpdt) of the monitor snapshots, or None."""
    if monitor is None:
        return None
    if isinstance(monitor, Dataset):
        if monitor.system.n != system.n or monitor.system.dim != system.dim:
            raise HGNError("the monitor snapshots must be of a system of the training system's size")
        idx = np.asarray(monitor.test if len(monitor.test) else np.arange(monitor.n_snapshots), dtype=np.int64)
        return monitor.q[idx], monitor.p[idx], monitor.dqdt[idx], monitor.dpdt[idx]
    try:
        q, p, dq, dp = (np.asarray(x, dtype=np.float64) for x in monitor)
    except (TypeError, ValueError):
        raise HGNError("monitor must be a Dataset or a tuple (q, p, dqdt, dpdt)") from None
    if not (q.shape == p.shape == dq.shape == dp.shape) or q.shape[1:] != (system.n, system.dim):
        raise HGNError("monitor arrays must all be shaped (S, N, d) of the training system")
    return q, p, dq, dp


class _Data:
    """Snapshots as torch tensors with their graph."""

    def __init__(self, system, q, p, dqdt, dpdt, graph, dtype):
        import torch

        self.system = system
        self.q = torch.from_numpy(q).to(dtype)
        self.p = torch.from_numpy(p).to(dtype)
        self.dqdt = torch.from_numpy(dqdt).to(dtype)
        self.dpdt = torch.from_numpy(dpdt).to(dtype)
        self.graph = graph
        self.masses = torch.from_numpy(np.asarray(system.masses, dtype=np.float64)).to(dtype)
        self.cutoff = system.cutoff
        self.n = q.shape[0]
        self._full = None

    def batch(self, idx):
        """(graph, q, p, dqdt, dpdt) of the snapshots idx (None = all)."""
        import torch

        if idx is None:
            if self._full is None:
                self._full = self.graph
            g = self._full
            sel = slice(None)
        else:
            idx = np.asarray(idx, dtype=np.int64)
            g = self.graph.select(idx)
            sel = torch.from_numpy(idx)
        return g, self.q[sel], self.p[sel], self.dqdt[sel], self.dpdt[sel]


def _loss(module, data: _Data, idx, create_graph: bool):
    """The MSE of Hamilton's equations on the snapshots idx (None = all)."""
    g, q, p, dq, dp = data.batch(idx)
    q = q.detach().clone().requires_grad_(True)
    p = p.detach().clone().requires_grad_(True)
    _, gq, gp = module.derivatives(g, q, p, data.masses, data.cutoff, create_graph=create_graph)
    err = ((gp - dq) ** 2).sum() + ((gq + dp) ** 2).sum()
    return err / (2 * dq.numel())


def _evaluate(module, data: _Data | None, chunk: int = 256) -> float:
    """Loss on all snapshots of ``data`` without a graph for the weights."""
    if data is None or data.n == 0:
        return float("nan")
    total = 0.0
    for a in range(0, data.n, chunk):
        idx = np.arange(a, min(a + chunk, data.n))
        total += float(_loss(module, data, idx if data.n > chunk else None, False).detach()) * len(idx)
    return total / data.n


def _warm_imports() -> None:
    """Import what torch loads lazily on the first optimizer (torch._dynamo,
    about 1.5 s once per process), so that it does not count as training time."""
    try:
        import torch._dynamo  # noqa: F401
    except Exception:  # pragma: no cover - only a timing nicety
        pass


def fit(dataset: Dataset, config: BaselineConfig | None = None, progress=None, cancel=None, *,
        monitor=None, monitor_growth: float = 1.05) -> TrainedHGN:
    """Train the RF-HGN architecture with every layer trainable on the
    training snapshots of ``dataset`` (see the module notes). Returns a
    :class:`TrainedHGN`; ``info`` holds the loss curves and times."""
    import torch

    _warm_imports()
    t0 = time.perf_counter()
    config = BaselineConfig() if config is None else config
    if not isinstance(config, BaselineConfig):
        raise HGNError(f"config must be a BaselineConfig, got {type(config).__name__}")
    config.validate()
    train, q, p, dqdt, dpdt = training_arrays(dataset)
    system = dataset.system
    if config.encoding == "frame" and system.box is not None:
        raise HGNError("the frame encoding needs a non-periodic system; use the invariant encoding")
    mon = _monitor_arrays(monitor, system)
    spec = get_spec(config.optimizer)

    prev_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, min(config.threads, available_cores())))
    try:
        return _train(dataset, config, spec, system, q, p, dqdt, dpdt, mon, progress, cancel, t0,
                      float(monitor_growth))
    finally:
        torch.set_num_threads(prev_threads)


def _train(dataset, config, spec, system, q, p, dqdt, dpdt, mon, progress, cancel, t0, growth):
    import torch

    from .torch_hgn import TorchGraph, TorchHGN

    dtype = {"float32": torch.float32, "float64": torch.float64}[config.dtype]
    rng = np.random.default_rng(config.seed)
    gen = torch.Generator().manual_seed(int(config.seed))
    tr_idx, val_idx = _validation_split(len(q), config.validation_fraction, rng)
    check_cancel(cancel)

    # graphs and input normalisation from the training part
    g_tr = TorchGraph.build(system, q[tr_idx], config.encoding)
    g_val = TorchGraph.build(system, q[val_idx], config.encoding) if len(val_idx) else None
    stats = input_statistics(system, q[tr_idx], p[tr_idx], g_tr, config.encoding)
    if config.encoding == "invariant":
        widths = {"kin": config.node_width, "static": config.static_width, "edge": config.edge_width,
                  "msg": config.message_width}
    else:
        widths = {"node": config.node_width, "edge": config.edge_width, "msg": config.message_width}
    module = TorchHGN(config.encoding, system.dim, widths, linear_kinetic=config.linear_kinetic,
                      pool_edges=config.pool_edges, cutoff_shift=config.cutoff_shift)
    for name, (mu, s) in stats.items():
        module.set_normalisation(name, mu, s)
    if config.init == "torch":
        module.init_torch(gen)
    else:
        from ..rfhgn.sampling import choose_points, sample_network

        rf = config.rf_config(config.init)
        srng = np.random.default_rng(config.seed)
        sets = choose_points([(system, q[tr_idx], p[tr_idx])], rf, srng)
        net = sample_network(rf, sets, srng)
        module.load_raw(net.to_arrays())
        module.init_theta(gen)
    module = module.to(dtype)
    module.train()

    data = _Data(system, q[tr_idx], p[tr_idx], dqdt[tr_idx], dpdt[tr_idx], g_tr, dtype)
    val = _Data(system, q[val_idx], p[val_idx], dqdt[val_idx], dpdt[val_idx], g_val, dtype) if g_val else None
    mon_data = None
    if mon is not None:
        g_mon = TorchGraph.build(system, mon[0], config.encoding)
        mon_data = _Data(system, *mon, g_mon, dtype)

    lr = config.lr
    optimizer = make_optimizer(spec.key, list(module.named_parameters()), lr)
    full_batch = spec.full_batch or config.batch_size >= data.n
    lbfgs = spec.key == "lbfgs"

    history = {"epoch": [], "time": [], "train_loss": [], "val_loss": [], "monitor": []}
    best_val, best_state, best_epoch, bad = math.inf, None, 0, 0
    stop_reason = "max epochs"
    steps = 0
    budget = config.time_budget if config.time_budget > 0 else math.inf
    paused = 0.0
    t_train = time.perf_counter()
    last_progress = -1.0

    def clock() -> float:
        return time.perf_counter() - t_train - paused

    def closure():
        check_cancel(cancel)
        optimizer.zero_grad()
        loss = _loss(module, data, None, True)
        loss.backward()
        return loss

    next_monitor = 0.0

    def measure_monitor(ep, t_now):
        """Monitor MSE with the clock stopped."""
        nonlocal paused, next_monitor
        tp = time.perf_counter()
        history["monitor"].append([ep, t_now, _evaluate(module, mon_data)])
        paused += time.perf_counter() - tp
        next_monitor = max(t_now * growth, t_now + MONITOR_MIN_GAP) if growth > 1 else t_now

    # the initial monitor value (epoch 0), clock stopped
    if mon_data is not None:
        measure_monitor(0, 0.0)

    report(progress, "epochs", 0.0)
    epoch = 0
    out_of_time = False
    while epoch < config.max_epochs:
        epoch += 1
        losses, counts = [], []
        if full_batch:
            check_cancel(cancel)
            if lbfgs:
                loss = optimizer.step(closure)
            else:
                optimizer.zero_grad()
                loss = _loss(module, data, None, True)
                loss.backward()
                optimizer.step()
            steps += 1
            losses.append(float(loss.detach()))
            counts.append(data.n)
        else:
            perm = torch.randperm(data.n, generator=gen).numpy()
            for a in range(0, data.n, config.batch_size):
                check_cancel(cancel)
                idx = perm[a:a + config.batch_size]
                optimizer.zero_grad()
                loss = _loss(module, data, idx, True)
                loss.backward()
                optimizer.step()
                steps += 1
                lv = float(loss.detach())
                losses.append(lv)
                counts.append(len(idx))
                if not math.isfinite(lv) or clock() >= budget:
                    break
        train_loss = float(np.average(losses, weights=counts)) if losses else float("nan")
        val_loss = _evaluate(module, val) if val is not None else train_loss
        t_now = clock()
        history["epoch"].append(epoch)
        history["time"].append(t_now)
        history["train_loss"].append(train_loss)
        history["val_loss"].append(val_loss)
        if mon_data is not None and (epoch == 1 or t_now >= next_monitor):
            measure_monitor(epoch, t_now)
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            stop_reason = "diverged (non-finite loss)"
            break
        if val_loss < best_val:
            enough = not math.isfinite(best_val) or val_loss < best_val * (1.0 - config.min_delta)
            best_val, best_epoch = val_loss, epoch
            if config.restore_best:
                best_state = copy.deepcopy(module.state_dict())
            bad = 0 if enough else bad + 1
        else:
            bad += 1
        fraction = max(epoch / config.max_epochs, t_now / budget if math.isfinite(budget) else 0.0)
        if fraction - last_progress >= PROGRESS_STEP:
            report(progress, "epochs", fraction)
            last_progress = fraction
        if t_now >= budget:
            stop_reason = "time budget"
            out_of_time = True
            break
        if config.patience and bad >= config.patience:
            stop_reason = "early stopping"
            break
    train_time = clock()
    if mon_data is not None and history["monitor"][-1][0] != len(history["epoch"]):
        measure_monitor(len(history["epoch"]), train_time)
    restored = False
    if config.restore_best and isinstance(best_state, dict):
        module.load_state_dict(best_state)
        restored = True
    report(progress, "epochs", 1.0)

    # the constant from one known energy (as the RF fit does)
    module = module.to(torch.float64)
    constant, known = 0.0, False
    energy = np.asarray(dataset.energy, dtype=np.float64).reshape(-1)
    train = np.asarray(dataset.train, dtype=np.int64).reshape(-1)
    model = TrainedHGN(config, module, 0.0, system.n, system)
    if energy.shape == (dataset.n_snapshots,) and np.isfinite(energy[train[0]]):
        H0 = float(model.energy(system, q[0], p[0]))
        constant, known = float(energy[train[0]]) - H0, True
        model.constant = constant
    fit_time = time.perf_counter() - t0 - paused

    model.info.update(
        name=model.name,
        method="gradient-trained HGN",
        fit_time=fit_time,
        train_time=train_time,
        epochs=len(history["epoch"]),
        steps=steps,
        stop_reason=stop_reason,
        out_of_time=out_of_time,
        best_epoch=best_epoch,
        best_val_loss=best_val if math.isfinite(best_val) else None,
        restored_best=restored,
        loss_history=history["train_loss"],
        val_history=history["val_loss"],
        time_history=history["time"],
        monitor_history=history["monitor"] if mon_data is not None else None,
        monitor_initial=history["monitor"][0][2] if mon_data is not None else None,
        optimizer=spec.key,
        optimizer_label=spec.label,
        learning_rate=lr,
        batch_size=data.n if full_batch else config.batch_size,
        full_batch=bool(full_batch),
        init=config.init,
        dtype=config.dtype,
        threads=int(torch.get_num_threads()),
        cores=available_cores(),
        n_parameters=module.n_parameters(),
        n_features=module.n_features,
        n_snapshots=int(len(q)),
        n_train=int(data.n),
        n_validation=int(len(val_idx)),
        n_particles=int(system.n),
        energy_constant_known=known,
    )
    return model
