"""Training a baseline: the same network, loss and snapshots as an RF-HGN fit,
with every layer trained by a torch optimizer (docs/method.md section 7).

The network is :class:`core.learning.hgn.network.HGN`, the one definition
RF-HGN samples and solves: here every parameter ``<layer>_W``, ``<layer>_b``
and ``theta`` is trained, on inputs standardised by the fixed buffers
``<layer>_mu``, ``<layer>_s`` (mean and spread of the training inputs,
measured in float64; a fixed affine map, so the function class is RF-HGN's).
Graphs are :class:`core.learning.hgn.graph.Graph`; minibatches are cut out
of the training graph with ``Graph.select``. Training runs in
``config.dtype`` (float32 or float64) on ``config.device`` (CPU or CUDA);
the trained model is widened to float64 and stays on that device (its file
is device-free: ``TrainedHGN.load(path, device=...)``).

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
from ..hgn import DEFAULT_FRAME_RULE
from ..hgn.device import resolve_device, torch_threads
from .optimizers import get_spec, make_optimizer

#: the share of the time budget (or epochs) between two progress reports is at least this
PROGRESS_STEP = 0.005
#: smallest training time (s) between two monitor measurements
MONITOR_MIN_GAP = 0.02


def _spread(x) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation per column (spread 1 for constant columns)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    mu = x.mean(axis=0)
    s = x.std(axis=0)
    s = np.where(s > 1e-12 * np.maximum(1.0, np.abs(mu)), s, 1.0)
    return mu, s


def input_statistics(graph, q, p, encoding: str, frame_rule: str = DEFAULT_FRAME_RULE) -> dict:
    """{layer: (mean, spread)} of the raw inputs of every input layer over the
    snapshots q, p ((S, N, d) float64 tensors on the graph's device; ``graph``
    a float64 :class:`~core.learning.hgn.graph.Graph` of them): the fixed
    input normalisation of the network's buffers ``<layer>_mu``, ``<layer>_s``."""
    return {name: _spread(x) for name, x in input_values(graph, q, p, encoding, frame_rule).items()}


def input_values(graph, q, p, encoding: str, frame_rule: str = DEFAULT_FRAME_RULE) -> dict:
    """{layer: (rows, inputs) float64 numpy array} of the raw inputs of every
    input layer (see :func:`input_statistics`; pooled over several systems
    by :mod:`.finetune`)."""
    import torch

    from ..hgn.frame import build_frame, encode

    def host(x):
        return x.detach().to("cpu", torch.float64).numpy()

    masses = graph.masses
    with torch.no_grad():
        delta, r = graph.delta(q)
        if encoding == "invariant":
            k = 0.5 * (p * p).sum(-1) / masses
            return {"kin": host(k).reshape(-1, 1), "static": host(masses)[:, None], "edge": host(r)[:, None]}
        S, N, d = q.shape
        fr = build_frame(q, frame_rule)
        qb, pb = encode(fr, p)
        xn = torch.cat([qb, pb, masses[None, :, None].expand(S, N, 1)], 2).reshape(S * N, -1)
        db = torch.bmm(delta[:, None, :], fr.B[graph.snap])[:, 0]
        xe = torch.cat([r[:, None], db * db], 1)
    return {"node": host(xn), "edge": host(xe)}


def init_torch(network, generator) -> None:
    """PyTorch's ``nn.Linear`` initialisation of every layer and of theta,
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), on the standardised inputs (drawn in
    float64 on the CPU from ``generator``, layer by layer: W then b, then theta)."""
    import torch

    with torch.no_grad():
        for name in network.layer_names:
            W, b = getattr(network, f"{name}_W"), getattr(network, f"{name}_b")
            bound = 1.0 / max(W.shape[1], 1) ** 0.5
            for prm in (W, b):
                draw = torch.rand(tuple(prm.shape), generator=generator, dtype=torch.float64) * 2 - 1
                prm.copy_(draw.to(prm.device, prm.dtype) * bound)
    init_theta(network, generator)


def init_theta(network, generator) -> None:
    """The output layer from U(-1/sqrt(L), 1/sqrt(L)) (never a least-squares solve)."""
    import torch

    with torch.no_grad():
        bound = 1.0 / max(network.L, 1) ** 0.5
        draw = torch.rand(tuple(network.theta.shape), generator=generator, dtype=torch.float64) * 2 - 1
        network.theta.copy_(draw.to(network.theta.device, network.theta.dtype) * bound)


def load_raw(network, arrays: dict) -> None:
    """Set the hidden layers from raw weights (``<layer>_W``, ``<layer>_b`` acting
    on raw inputs, as ``HGN.to_arrays`` gives them), keeping the network's
    input normalisation: W = W_raw * s, b = b_raw + W_raw . mu."""
    import torch

    with torch.no_grad():
        for name in network.layer_names:
            W = np.asarray(arrays[f"{name}_W"], dtype=np.float64)
            b = np.asarray(arrays[f"{name}_b"], dtype=np.float64).reshape(-1)
            pW, pb = getattr(network, f"{name}_W"), getattr(network, f"{name}_b")
            if W.size == 0:
                W = W.reshape(tuple(pW.shape))
            if W.shape != tuple(pW.shape) or b.shape != tuple(pb.shape):
                raise HGNError(f"layer {name}: weights {W.shape}/{b.shape} do not fit {tuple(pW.shape)}")
            mu_buf = getattr(network, f"{name}_mu", None)
            if mu_buf is not None:
                mu = mu_buf.detach().to("cpu", torch.float64).numpy()
                s = getattr(network, f"{name}_s").detach().to("cpu", torch.float64).numpy()
                b = b + W @ mu
                W = W * s
            pW.copy_(torch.as_tensor(W).to(pW.device, pW.dtype))
            pb.copy_(torch.as_tensor(b).to(pb.device, pb.dtype))


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
    """Snapshots as tensors (training dtype, on the training device) with their graph."""

    def __init__(self, q, p, dqdt, dpdt, graph, t=None):
        import torch

        kw = dict(dtype=graph.dtype, device=graph.device)
        #: the snapshots' times (port baselines with a forcing in time), or None
        self.t = None if t is None else torch.as_tensor(np.asarray(t, dtype=np.float64), **kw)
        self.q = torch.as_tensor(q, **kw)
        self.p = torch.as_tensor(p, **kw)
        self.dqdt = torch.as_tensor(dqdt, **kw)
        self.dpdt = torch.as_tensor(dpdt, **kw)
        self.graph = graph
        self.n = int(self.q.shape[0])
        #: minibatch graphs of a fixed-edge system depend only on the batch size
        self._fixed: dict[int, object] = {}

    def batch(self, idx):
        """(graph, q, p, dqdt, dpdt) of the snapshots idx (None = all)."""
        import torch

        if idx is None:
            return self.graph, self.q, self.p, self.dqdt, self.dpdt
        idx = np.asarray(idx, dtype=np.int64)
        if self.graph.E_fixed is not None:
            g = self._fixed.get(len(idx))
            if g is None:
                g = self._fixed[len(idx)] = self.graph.select(np.arange(len(idx)))
        else:
            g = self.graph.select(idx)
        sel = torch.as_tensor(idx, device=self.q.device)
        return g, self.q[sel], self.p[sel], self.dqdt[sel], self.dpdt[sel]

    def times(self, idx):
        """The times of the snapshots idx (None = all), or None."""
        if self.t is None or idx is None:
            return self.t
        import torch

        return self.t[torch.as_tensor(np.asarray(idx, dtype=np.int64), device=self.t.device)]


def _loss(network, data: _Data, idx, create_graph: bool, port=None):
    """The MSE of Hamilton's equations on the snapshots idx (None = all), with
    dH/dq, dH/dp by autograd through the network (``create_graph`` keeps the
    graph for differentiating the loss with respect to the weights). ``port``
    (a port baseline's terms, :mod:`.port`): dp/dt = -dH/dq + port.force(dq/dt, t)."""
    import torch

    g, q, p, dq, dp = data.batch(idx)
    if port is not None:
        dp = dp - port.force(dq, data.times(idx))
    q = q.detach().requires_grad_(True)
    p = p.detach().requires_grad_(True)
    with torch.enable_grad():
        H = network(g, q, p)
        gq, gp = torch.autograd.grad(H.sum(), (q, p), create_graph=create_graph)
    err = ((gp - dq) ** 2).sum() + ((gq + dp) ** 2).sum()
    return err / (2 * dq.numel())


def _evaluate(network, data: _Data | None, chunk: int = 256, port=None) -> float:
    """Loss on all snapshots of ``data`` without a graph for the weights."""
    if data is None or data.n == 0:
        return float("nan")
    total = 0.0
    for a in range(0, data.n, chunk):
        idx = np.arange(a, min(a + chunk, data.n))
        total += float(_loss(network, data, idx if data.n > chunk else None, False, port).detach()) * len(idx)
    return total / data.n


def _warm_imports() -> None:
    """Import what torch loads lazily on the first optimizer (torch._dynamo,
    about 1.5 s once per process), so that it does not count as training time."""
    try:
        import torch._dynamo  # noqa: F401
    except Exception:  # pragma: no cover - only a timing nicety
        pass


class EarlyStopping:
    """The best validation loss so far, its epoch, and the epochs since the
    loss last fell by more than ``config.min_delta`` (relative); training
    stops after ``config.patience`` such epochs (0: never)."""

    def __init__(self, config):
        self.min_delta, self.patience = config.min_delta, config.patience
        self.best_val, self.best_epoch, self.bad = math.inf, 0, 0

    def update(self, val_loss: float, epoch: int) -> bool:
        """Record an epoch's validation loss; True when it is the best so far
        (the caller keeps the network's state then)."""
        if val_loss < self.best_val:
            enough = not math.isfinite(self.best_val) or val_loss < self.best_val * (1.0 - self.min_delta)
            self.best_val, self.best_epoch = val_loss, epoch
            self.bad = 0 if enough else self.bad + 1
            return True
        self.bad += 1
        return False

    @property
    def stop(self) -> bool:
        return bool(self.patience) and self.bad >= self.patience

    @property
    def best_loss(self) -> float | None:
        return self.best_val if math.isfinite(self.best_val) else None


def fit(dataset: Dataset, config: BaselineConfig | None = None, progress=None, cancel=None, *,
        monitor=None, monitor_growth: float = 1.05, port=None) -> TrainedHGN:
    """Train the RF-HGN architecture with every layer trainable on the
    training snapshots of ``dataset`` (see the module notes). Returns a
    :class:`TrainedHGN`; ``info`` holds the loss curves and times. ``port``
    (a :class:`core.learning.rfhgn.port.PortSpec`): also learn damping and
    forcing (:mod:`core.learning.baselines.port`; ``info["port"]``)."""
    _warm_imports()
    t0 = time.perf_counter()
    config = BaselineConfig.checked(config)
    train, q, p, dqdt, dpdt = training_arrays(dataset)
    system = dataset.system
    dataset.check_trainable(train)
    if system.edges is not None and len(system.edges) == 0:
        raise HGNError("the system has no springs (no edges), so there is no potential to learn and the "
                       "baseline's edge encoder has no input; draw springs between the particles, or fit an "
                       "RF-HGN, which learns the kinetic energy alone")
    if config.encoding == "frame" and system.box is not None:
        raise HGNError("the frame encoding needs a non-periodic system; use the invariant encoding")
    mon = _monitor_arrays(monitor, system)
    spec = get_spec(config.optimizer)
    times = None
    if port is not None:
        from .port_terms import snapshot_times

        port.check(system)
        if mon is not None:
            raise HGNError("a monitor is not supported when training a port baseline")
        times = snapshot_times(dataset, port, train)

    device = resolve_device(config.device)
    with torch_threads(max(1, min(config.threads, available_cores()))):
        return _train(dataset, config, spec, system, q, p, dqdt, dpdt, mon, progress, cancel, t0,
                      float(monitor_growth), device, port, times)


def _train(dataset, config, spec, system, q, p, dqdt, dpdt, mon, progress, cancel, t0, growth, device,
           port_spec=None, times=None):
    import torch

    from ..hgn.graph import Graph
    from ..hgn.network import HGN

    dtype = {"float32": torch.float32, "float64": torch.float64}[config.dtype]
    rng = np.random.default_rng(config.seed)
    gen = torch.Generator().manual_seed(int(config.seed))
    tr_idx, val_idx = _validation_split(len(q), config.validation_fraction, rng)
    check_cancel(cancel)

    # graphs (float64 first: the input normalisation is measured in float64 on the training part)
    f64 = dict(dtype=torch.float64, device=device)
    q_tr = torch.as_tensor(q[tr_idx], **f64)
    g_tr = Graph.build(system, q_tr, device=device)
    if int(g_tr.P) == 0:
        raise HGNError(f"no pair of particles is within the cutoff {system.cutoff:g} in any training snapshot, so "
                       "there is no potential to learn; use a larger cutoff or a higher density")
    p_tr = torch.as_tensor(p[tr_idx], **f64)
    stats = input_statistics(g_tr, q_tr, p_tr, config.encoding)
    with torch.no_grad():  # the training range (roll-outs check it and tables cover it, as for RF-HGN)
        r_tr = g_tr.delta(q_tr)[1] if g_tr.P else None
        r_max = float(r_tr.max()) if r_tr is not None else 0.0
        r_min = float(r_tr.min()) if r_tr is not None else None
        k_max = float((0.5 * (p_tr * p_tr).sum(-1) / g_tr.masses).max())
    g_val = Graph.build(system, q[val_idx], device=device) if len(val_idx) else None
    network = HGN(config.encoding, system.dim, config.widths(), linear_kinetic=config.linear_kinetic,
                  pool_edges=config.pool_edges, cutoff_shift=config.cutoff_shift, dtype=torch.float64,
                  device=device)
    with torch.no_grad():
        for name, (mu, s) in stats.items():
            getattr(network, f"{name}_mu").copy_(torch.as_tensor(mu))
            getattr(network, f"{name}_s").copy_(torch.as_tensor(s))
    if config.init == "torch":
        init_torch(network, gen)
    else:
        from ..rfhgn.sampling import choose_points, sample_network

        rf = config.rf_config(config.init)
        srng = np.random.default_rng(config.seed)
        sets = choose_points([(system, q[tr_idx], p[tr_idx])], rf, srng)
        load_raw(network, sample_network(rf, sets, srng).to_arrays())
        init_theta(network, gen)
    network = network.to(dtype)
    network.train()

    t_tr = None if times is None else times[tr_idx]
    t_val = None if times is None else times[val_idx]
    data = _Data(q[tr_idx], p[tr_idx], dqdt[tr_idx], dpdt[tr_idx], g_tr.to(dtype=dtype), t_tr)
    val = (_Data(q[val_idx], p[val_idx], dqdt[val_idx], dpdt[val_idx], g_val.to(dtype=dtype), t_val)
           if g_val else None)
    port = None
    if port_spec is not None:
        from .port_terms import make_terms

        port = make_terms(port_spec, system, device, dtype)
    mon_data = None
    if mon is not None:
        mon_data = _Data(*mon, Graph.build(system, mon[0], device=device).to(dtype=dtype))

    lr = config.lr
    named = list(network.named_parameters())
    port_lr = config.port_learning_rate if config.port_learning_rate > 0 else 10.0 * lr
    one_group = spec.key == "lbfgs" or spec.cls_name == "MuonWithAdamW"
    if port is not None and one_group:  # optimizers of one parameter group: the network's learning rate
        named += [(f"port.{k}", v) for k, v in port.named_parameters()]
    optimizer = make_optimizer(spec.key, named, lr)
    if port is not None and not one_group and list(port.parameters()):
        optimizer.add_param_group({"params": list(port.parameters()), "lr": port_lr})
    full_batch = spec.full_batch or config.batch_size >= data.n
    lbfgs = spec.key == "lbfgs"

    history = {"epoch": [], "time": [], "train_loss": [], "val_loss": [], "monitor": [], "port": []}
    stopping, best_state = EarlyStopping(config), None
    best_port = None
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
        loss = _loss(network, data, None, True, port)
        loss.backward()
        return loss

    next_monitor = 0.0

    def measure_monitor(ep, t_now):
        """Monitor MSE with the clock stopped."""
        nonlocal paused, next_monitor
        tp = time.perf_counter()
        history["monitor"].append([ep, t_now, _evaluate(network, mon_data)])
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
                loss = _loss(network, data, None, True, port)
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
                loss = _loss(network, data, idx, True, port)
                loss.backward()
                optimizer.step()
                steps += 1
                lv = float(loss.detach())
                losses.append(lv)
                counts.append(len(idx))
                if not math.isfinite(lv) or clock() >= budget:
                    break
        train_loss = float(np.average(losses, weights=counts)) if losses else float("nan")
        val_loss = _evaluate(network, val, port=port) if val is not None else train_loss
        t_now = clock()
        history["epoch"].append(epoch)
        history["time"].append(t_now)
        history["train_loss"].append(train_loss)
        history["val_loss"].append(val_loss)
        if port is not None and port_spec.damping != "none":
            history["port"].append([epoch, t_now, float(port.gamma().detach().mean())])
        if mon_data is not None and (epoch == 1 or t_now >= next_monitor):
            measure_monitor(epoch, t_now)
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            stop_reason = "diverged (non-finite loss)"
            break
        if stopping.update(val_loss, epoch) and config.restore_best:
            best_state = copy.deepcopy(network.state_dict())
            best_port = copy.deepcopy(port.state_dict()) if port is not None else None
        fraction = max(epoch / config.max_epochs, t_now / budget if math.isfinite(budget) else 0.0)
        if fraction - last_progress >= PROGRESS_STEP:
            report(progress, "epochs", fraction)
            last_progress = fraction
        if t_now >= budget:
            stop_reason = "time budget"
            out_of_time = True
            break
        if stopping.stop:
            stop_reason = "early stopping"
            break
    train_time = clock()
    if mon_data is not None and history["monitor"][-1][0] != len(history["epoch"]):
        measure_monitor(len(history["epoch"]), train_time)
    restored = False
    if config.restore_best and isinstance(best_state, dict):
        network.load_state_dict(best_state)
        if port is not None:
            port.load_state_dict(best_port)
        restored = True
    report(progress, "epochs", 1.0)

    # the constant from one known energy (as the RF fit does)
    network = network.to(torch.float64)
    constant, known = 0.0, False
    energy = np.asarray(dataset.energy, dtype=np.float64).reshape(-1)
    train = np.asarray(dataset.train, dtype=np.int64).reshape(-1)
    model = TrainedHGN(config, network, 0.0, system.n, system)
    if energy.shape == (dataset.n_snapshots,) and np.isfinite(energy[train[0]]):
        H0 = float(model.energy(system, q[0], p[0], exact=True))  # the exact network, not the tables
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
        best_epoch=stopping.best_epoch,
        best_val_loss=stopping.best_loss,
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
        n_parameters=int(sum(prm.numel() for prm in network.parameters())),
        n_features=int(network.L),
        n_snapshots=int(len(q)),
        n_train=int(data.n),
        n_validation=int(len(val_idx)),
        n_particles=int(system.n),
        energy_constant_known=known,
        train_r_max=r_max,
        train_r_min=r_min,
        train_k_max=k_max,
    )
    if port is not None:
        from core.learning.rfhgn.port import identified

        model.info.update(port=identified(port_spec, port.coefficients(), system.n, system.dim),
                          port_history=history["port"], port_learning_rate=port_lr,
                          source="derivatives (port baseline)")
    return model
