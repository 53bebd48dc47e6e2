"""RF-HGN with damping and forcing identified in the same linear solve (issue 13; docs/port_hamiltonian.md).

For snapshots (q, p, dq/dt, dp/dt, t) of a port-Hamiltonian system
(``core.physics.port``: dp/dt = -dH/dq - gamma dH/dp + F(t), dH/dp = p/m)
the rows

    dPhi/dp (y_s) . theta                                   = dq/dt (s)
   -dPhi/dq (y_s) . theta - gamma (dq/dt)_s + sum_k a_k B_k(t_s) = dp/dt (s)

are linear in (theta, gamma, a): the damping enters through the *observed*
velocity dq/dt (the data's, not the network's dH/dp, so the rows stay
linear), and the forcing through a basis in time B_k, for every candidate
particle i, axis j and known angular frequency w the two columns
cos(w t) e_ij and sin(w t) e_ij, plus (optionally) a constant field: the
columns m_i e_j (F = m g, g unknown). Unknown frequencies: the small
Fourier basis of :meth:`PortSpec.fourier` (harmonics of 2 pi / period).
Damping is one gamma for every
particle ("uniform") or one per particle ("per-particle"). All unknowns come
from one least-squares solve of the augmented normal equations: the hidden
layers are sampled as :func:`core.learning.rfhgn.fitting.fit` samples them,
the columns are scaled to unit norm and ``config.regularisation`` is added
(:func:`core.learning.rfhgn.fitting.solve_block`), so a coefficient's
relative bias from the ridge is of the order of the regularisation.

The assembly here uses the network's general analytic Jacobians
(:meth:`core.learning.hgn.network.HGN.jacobians`) batch by batch, not the
fixed-graph fast path of :mod:`~core.learning.rfhgn.fitting` (the port
columns need the rows themselves); without port columns it solves the same
least-squares problem as ``fit`` (the same theta to round-off).

The fitted model is a :class:`~core.learning.rfhgn.model.FittedModel` whose
``info["port"]`` holds the identified coefficients (saved with the model
file; ``python -m core info MODEL --json`` reports them as ``damping`` and
``forcing``): ``damping`` (a number, or a list per particle), ``forcing``:
``{"frequencies": [...], "nodes": [...], "cos": [[[...]]], "sin": ...,
"amplitude", "phase", "direction"}`` per frequency and node (F_i(t) = c_i
cos(w t) + s_i sin(w t) = A_i cos(w t + phi_i) u_i when c_i and s_i are
parallel, as for any Drive), and ``field``. :func:`identified_port` turns
them back into a :class:`core.physics.port.Port`.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from core.errors import HGNError
from core.jobs import available_cores, check_cancel, report
from core.learning.hgn.device import blas_threads, resolve_device, torch_threads
from core.learning.hgn.graph import Graph
from core.physics.neighbours import minimum_image
from core.physics.port import Port
from core.physics.system import System
from core.physics.trajectory import Dataset
from ..learned import training_source
from ..rollout import carried_port, identified_port  # noqa: F401 (public here too)
from .config import RFConfig
from .fitting import energy_constant, fit as plain_fit, solve_block
from .model import FittedModel
from .sampling import choose_points, local_energies, sample_network

DAMPING_MODES = ("none", "uniform", "per-particle")


@dataclass(frozen=True)
class PortSpec:
    """Which port terms a fit identifies.

    ``damping``: "none", "uniform" (one gamma) or "per-particle" (one per
    particle). ``nodes``: the particles the forcing may act on (all axes);
    ``frequencies``: the known angular frequencies of the forcing (empty: no
    periodic forcing); ``field``: also identify a constant field g (F = m g).
    :meth:`from_system` reads them from a system's own port (the data's).
    """

    damping: str = "uniform"
    nodes: tuple[int, ...] = ()
    frequencies: tuple[float, ...] = ()
    field: bool = False

    def __post_init__(self):
        if self.damping not in DAMPING_MODES:
            raise HGNError(f"port damping must be one of {', '.join(DAMPING_MODES)}, got {self.damping!r}")
        nodes = tuple(int(i) for i in self.nodes)
        if len(set(nodes)) != len(nodes) or any(i < 0 for i in nodes):
            raise HGNError(f"port nodes must be distinct particle indices >= 0, got {list(self.nodes)}")
        object.__setattr__(self, "nodes", nodes)
        freqs = tuple(float(w) for w in self.frequencies)
        if any(not (math.isfinite(w) and w > 0) for w in freqs):
            raise HGNError(f"forcing frequencies must be finite angular frequencies > 0, got {list(freqs)}")
        if len(set(freqs)) != len(freqs):
            raise HGNError(f"forcing frequencies must be distinct, got {list(freqs)}")
        if freqs and not nodes:
            raise HGNError("forcing frequencies need the particles the forcing acts on (nodes)")
        object.__setattr__(self, "frequencies", freqs)
        object.__setattr__(self, "field", bool(self.field))

    @classmethod
    def from_system(cls, system: System) -> "PortSpec":
        """The terms of ``system.port``: its damping mode, its drives' nodes and frequencies, its field."""
        port = system.port
        if port is None:
            return cls(damping="none")
        damping = "per-particle" if port.per_particle else ("uniform" if port.damped else "none")
        nodes = sorted({i for d in port.drives for i in d.nodes})
        freqs = sorted({d.frequency for d in port.drives})
        return cls(damping=damping, nodes=tuple(nodes), frequencies=tuple(freqs), field=port.field is not None)

    @classmethod
    def fourier(cls, nodes, period: float, harmonics: int, damping: str = "uniform",
                field: bool = False) -> "PortSpec":
        """Forcing at unknown frequencies: the small Fourier basis of ``harmonics`` harmonics of the base
        angular frequency 2 pi / ``period`` (e.g. the span of the data in time), cos and sin each, on
        ``nodes``. A drive whose frequency is one of them is identified as such; others are approximated on
        the data's time span only."""
        if isinstance(period, bool) or not isinstance(period, (int, float)) or not (
                math.isfinite(period) and period > 0):
            raise HGNError(f"the Fourier period must be a time > 0, got {period!r}")
        if isinstance(harmonics, bool) or not isinstance(harmonics, int) or harmonics < 1:
            raise HGNError(f"the number of Fourier harmonics must be a whole number >= 1, got {harmonics!r}")
        w1 = 2.0 * math.pi / float(period)
        return cls(damping=damping, nodes=tuple(nodes), frequencies=tuple(k * w1 for k in range(1, harmonics + 1)),
                   field=field)

    @property
    def timed(self) -> bool:
        return bool(self.frequencies)

    def n_columns(self, n: int, d: int) -> int:
        g = {"none": 0, "uniform": 1, "per-particle": n}[self.damping]
        return g + 2 * len(self.frequencies) * len(self.nodes) * d + (d if self.field else 0)

    def check(self, system: System) -> "PortSpec":
        bad = [i for i in self.nodes if i >= system.n]
        if bad:
            raise HGNError(f"port node {bad[0]} does not exist (the system has {system.n} particles)")
        return self

    def to_dict(self) -> dict:
        return {"damping": self.damping, "nodes": list(self.nodes), "frequencies": list(self.frequencies),
                "field": self.field}


def port_columns(spec: PortSpec, system: System, dqdt: np.ndarray, t: np.ndarray | None) -> np.ndarray:
    """The port's columns X (S*N*d, c) of the dp/dt rows of snapshots with velocities dqdt (S, N, d) at
    times t (S,): [-gamma columns | cos, sin per frequency, node, axis | m_i e_j per axis]."""
    S, N, d = dqdt.shape
    cols = []
    if spec.damping == "uniform":
        cols.append(-dqdt.reshape(S, N, d, 1))
    elif spec.damping == "per-particle":
        x = np.zeros((S, N, d, N))
        idx = np.arange(N)
        x[:, idx, :, idx] = -np.moveaxis(dqdt, 1, 0)
        cols.append(x)
    if spec.frequencies:
        nodes = np.asarray(spec.nodes, dtype=np.int64)
        for w in spec.frequencies:
            for fn in (np.cos, np.sin):
                b = fn(w * t)  # (S,)
                x = np.zeros((S, N, d, len(nodes), d))
                for j in range(d):
                    x[:, nodes, j, np.arange(len(nodes)), j] = b[:, None]  # adjacent advanced indices: (S, m)
                cols.append(x.reshape(S, N, d, -1))
    if spec.field:
        x = np.zeros((S, N, d, d))
        for j in range(d):
            x[:, :, j, j] = system.masses[None, :]
        cols.append(x)
    if not cols:
        return np.zeros((S * N * d, 0))
    return np.concatenate(cols, axis=-1).reshape(S * N * d, -1)


class _Normal:
    """Z^T Z, Z^T u, u^T u and the row count of the blocks, in float64 numpy."""

    def __init__(self, network, c: int):
        self.separable = network.separable
        if self.separable:
            self.blocks = {"p": self._zero(network.n_T), "q": self._zero(network.n_V + c)}
        else:
            self.blocks = {"all": self._zero(network.L + c)}

    @staticmethod
    def _zero(n: int) -> list:
        return [np.zeros((n, n)), np.zeros(n), 0.0, 0]

    def add(self, name: str, Z: np.ndarray, u: np.ndarray) -> None:
        blk = self.blocks[name]
        blk[0] += Z.T @ Z
        blk[1] += Z.T @ u
        blk[2] += float(u @ u)
        blk[3] += u.size


def _times(dataset: Dataset, spec: PortSpec) -> np.ndarray | None:
    if not spec.timed:
        return None
    t = dataset.meta.get("time_of_snapshot") if isinstance(dataset.meta, dict) else None
    if t is None:
        raise HGNError("identifying a periodic forcing needs the time of every snapshot (the dataset's "
                       "meta['time_of_snapshot'], kept by simulate --dataset-out and generate for damped or "
                       "driven systems); these data have none")
    t = np.asarray(t, dtype=np.float64).reshape(-1)
    if t.shape != (dataset.n_snapshots,) or not np.all(np.isfinite(t)):
        raise HGNError(f"the dataset's time_of_snapshot must hold {dataset.n_snapshots} finite times, got "
                       f"shape {t.shape}")
    return t


def _assemble(network, system: System, q, p, dqdt, dpdt, t, train, spec: PortSpec, config: RFConfig, device,
              cancel) -> tuple[_Normal, float, float]:
    c = spec.n_columns(system.n, system.dim)
    ne = _Normal(network, c)
    S = len(train)
    step = max(1, min(config.batch_size, int(config.batch_memory_mb * 2 ** 20 /
                                              (8.0 * system.n * system.dim * (2 * network.L + c + 8)))))
    graphs: dict = {}
    masses = torch.as_tensor(system.masses, dtype=torch.float64, device=device)
    r_max, r_min, k_max = 0.0, math.inf, 0.0
    for a in range(0, S, step):
        check_cancel(cancel)
        rows = train[a:a + step]
        qb = torch.as_tensor(np.asarray(q[rows], dtype=np.float64), device=device)
        pb = torch.as_tensor(np.asarray(p[rows], dtype=np.float64), device=device)
        vb = np.asarray(dqdt[rows], dtype=np.float64)
        fb = np.asarray(dpdt[rows], dtype=np.float64)
        if system.edges is not None:
            g = graphs.get(len(rows))
            if g is None:
                g = graphs[len(rows)] = Graph.build(system, qb, device=device)
        else:
            g = Graph.build(system, qb, device=device)
        if g.P:
            r = g.delta(qb)[1]
            if float(r.min()) <= 0:
                raise HGNError("two particles of a snapshot sit on top of each other (pair distance 0); the pair "
                               "features are undefined there")
            r_max, r_min = max(r_max, float(r.max())), min(r_min, float(r.min()))
        k_max = max(k_max, float((0.5 * (pb * pb).sum(-1) / masses).max()))
        with torch.no_grad():
            _, Jq, Jp = network.jacobians(g, qb, pb)
        Jq = Jq.cpu().numpy().reshape(-1, Jq.shape[-1])
        Jp = Jp.cpu().numpy().reshape(-1, Jp.shape[-1])
        X = port_columns(spec, system, vb, None if t is None else t[rows])
        if ne.separable:
            ne.add("p", Jp, vb.reshape(-1))
            ne.add("q", np.concatenate([-Jq, X], axis=1), fb.reshape(-1))
        else:
            ne.add("all", np.concatenate([Jp, np.zeros((Jp.shape[0], X.shape[1]))], axis=1), vb.reshape(-1))
            ne.add("all", np.concatenate([-Jq, X], axis=1), fb.reshape(-1))
    return ne, (r_min, r_max), k_max


def _solve(ne, network, c: int, config: RFConfig, lam: dict | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """theta (L,), the port coefficients (c,) and the solve information. ``ne``: anything with ``blocks``
    (name -> (G, b, u.u, rows): this module's or :class:`~.fitting.NormalEquations`); ``lam``: the
    regularisation per block (default ``config.regularisation`` for all; :mod:`.adapt` passes its choice)."""
    theta = np.zeros(network.L)
    coef = np.zeros(c)
    info: dict = {}
    rows, sse = 0, 0.0
    for name, (G, b, uu, k) in ne.blocks.items():
        x, inf = solve_block(G, b, config.regularisation if lam is None else lam[name], config.solver)
        r = float(x @ G @ x - 2.0 * x @ b + uu)
        inf["train_mse"] = max(r, 0.0) / max(k, 1)
        info[name] = inf
        rows += k
        sse += max(r, 0.0)
        if name == "p":
            theta[network.p_cols] = x
        elif name == "q":
            theta[network.q_cols] = x[:network.n_V]
            coef = x[network.n_V:]
        else:
            theta[:] = x[:network.L]
            coef = x[network.L:]
    info["train_mse"] = sse / max(rows, 1)
    info["rows"] = rows
    return theta, coef, info


def identified(spec: PortSpec, coef: np.ndarray, n: int, d: int) -> dict:
    """The port coefficients of a solve as JSON values (see the module notes)."""
    k = 0
    out: dict = {"spec": spec.to_dict()}
    if spec.damping == "uniform":
        out["damping"] = float(coef[0])
        k = 1
    elif spec.damping == "per-particle":
        out["damping"] = coef[:n].tolist()
        k = n
    else:
        out["damping"] = None
    if spec.frequencies:
        m = len(spec.nodes)
        cos, sin, amp, phase, direction = [], [], [], [], []
        for _ in spec.frequencies:
            c = coef[k:k + m * d].reshape(m, d)
            s = coef[k + m * d:k + 2 * m * d].reshape(m, d)
            k += 2 * m * d
            cos.append(c.tolist())
            sin.append(s.tolist())
            # F = c cos(wt) + s sin(wt) = A cos(wt + phi) u with A u cos(phi) = c, -A u sin(phi) = s (u along
            # the larger of c and s)
            a_f, ph_f, u_f = [], [], []
            for ci, si in zip(c, s):
                ref = ci if np.linalg.norm(ci) >= np.linalg.norm(si) else si
                nrm = np.linalg.norm(ref)
                u = ref / nrm if nrm > 0 else np.eye(d)[0]
                a_c, a_s = float(ci @ u), float(si @ u)
                a = math.hypot(a_c, a_s)
                phi = math.atan2(-a_s, a_c)
                if a_c < 0 and abs(phi) > math.pi / 2:  # prefer a direction with |phase| <= pi/2
                    u, phi = -u, math.atan2(a_s, -a_c)
                a_f.append(a)
                ph_f.append(phi)
                u_f.append(u.tolist())
            amp.append(a_f)
            phase.append(ph_f)
            direction.append(u_f)
        out["forcing"] = {"frequencies": list(spec.frequencies), "nodes": list(spec.nodes), "cos": cos,
                          "sin": sin, "amplitude": amp, "phase": phase, "direction": direction}
    else:
        out["forcing"] = None
    out["field"] = coef[k:k + d].tolist() if spec.field else None
    return out


def fit_port(dataset: Dataset, config: RFConfig | None = None, spec: PortSpec | None = None, progress=None,
             cancel=None) -> FittedModel:
    """Fit an RF-HGN with damping and forcing identified in the same solve (module notes) to the
    training snapshots of ``dataset``. ``spec``: which terms (default: those of the data's system,
    :meth:`PortSpec.from_system`). Returns a FittedModel with ``info["port"]`` the identified
    coefficients."""
    t0 = time.perf_counter()
    config = RFConfig.checked(config)
    if not isinstance(dataset, Dataset):
        raise HGNError(f"fit_port needs a Dataset, got {type(dataset).__name__}")
    system = dataset.system
    spec = (PortSpec.from_system(system) if spec is None else spec).check(system)
    if spec.n_columns(system.n, system.dim) == 0:
        # nothing to identify: exactly today's fit (rfhgn.fitting.fit, bit for bit), with an empty port
        model = plain_fit(dataset, config, progress, cancel)
        model.info.update(source="derivatives (port)", port=identified(spec, np.zeros(0), system.n, system.dim))
        return model
    device = resolve_device(config.device)
    train, q, p, dqdt, dpdt = training_source(dataset)
    dataset.check_trainable(train)
    config.check_memory()
    t = _times(dataset, spec)
    c = spec.n_columns(system.n, system.dim)
    with torch_threads(config.threads), blas_threads(config.threads):
        rng = np.random.default_rng(config.seed)
        report(progress, "sample", 0.0)
        sets = choose_points([(system, q, p, train)], config, rng, device)
        network = sample_network(config, sets, rng, None, progress, cancel)
        ne, (r_min, r_max), k_max = _assemble(network, system, q, p, dqdt, dpdt, t, train, spec, config, device,
                                              cancel)
        report(progress, "solve", 0.0)
        theta, coef, sinfo = _solve(ne, network, c, config)
        rounds = config.adaptive_rounds if config.sampler == "adaptive" else 0
        for _ in range(rounds):
            check_cancel(cancel)
            network = sample_network(config, sets, rng, local_energies(network, theta, sets), None, cancel)
            ne, (r_min, r_max), k_max = _assemble(network, system, q, p, dqdt, dpdt, t, train, spec, config,
                                                  device, cancel)
            theta, coef, sinfo = _solve(ne, network, c, config)
        network.set_theta(theta)
        constant = 0.0
        energy = np.asarray(dataset.energy, dtype=np.float64).reshape(-1)
        known = energy.shape == (dataset.n_snapshots,) and np.isfinite(energy[train[0]])
        if known:
            constant = energy_constant(network, system, q[train[0]], p[train[0]], energy[train[0]], device)
    model = FittedModel(config, network, None, constant, system.n, system)
    model.info.update(
        fit_time=time.perf_counter() - t0, n_snapshots=int(len(train)), n_particles=int(system.n),
        n_features=int(network.L), n_rows=int(sinfo["rows"]), train_mse=float(sinfo["train_mse"]),
        solve={k: v for k, v in sinfo.items() if isinstance(v, dict)}, energy_constant_known=bool(known),
        train_r_max=r_max, train_r_min=r_min if math.isfinite(r_min) else None, train_k_max=k_max,
        cores=available_cores(), device=str(device),
        source="derivatives (port)", port=identified(spec, coef, system.n, system.dim))
    report(progress, "solve", 1.0)
    return model


# ======================================================================
def model_port(model, system: System) -> Port:
    """The identified port of a model fitted by :func:`fit_port` (``info["port"]``), checked against
    ``system`` (drive nodes and per-particle damping must fit it); HGNError for other models."""
    ident = getattr(model, "info", {}).get("port") if isinstance(getattr(model, "info", None), dict) else None
    if not isinstance(ident, dict):
        raise HGNError("this model identified no damping or forcing (fit it with core.learning.rfhgn.port.fit_port "
                       "or 'train' on damped or driven data)")
    port = identified_port(ident)
    try:
        return port.check(system.n, system.dim)
    except HGNError as exc:
        raise HGNError(f"the model's identified damping and forcing do not fit {system!r}: {exc}") from None


def port_time_derivatives(model, system: System, q, p, dqdt, t, port: Port | None = None):
    """(dq/dt, dp/dt) the fitted port-Hamiltonian model predicts at states (S, N, d) with observed
    velocities ``dqdt`` at times ``t`` (S,): dH_hat/dp and -dH_hat/dq - gamma dq/dt + F(t) (the rows of
    the fit). ``port``: default the model's identified one, or for a model that carries the port of the
    system it is given (the true Hamiltonian, ``port_for``) that one. The Hamiltonian part comes from
    ``model.gradients``, never from ``time_derivatives``, which for the true Hamiltonian of a damped or
    driven system already holds its port (the damping would count twice)."""
    if port is None:
        own = getattr(model, "port_for", None)
        port = own(system) if callable(own) else model_port(model, system)
        if port is None:
            raise HGNError(f"{system.name or 'this system'} has no damping or forcing: use the model's "
                           "time_derivatives")
    gq, gp = model.gradients(system, q, p)
    terms = port.terms(system.masses, system.dim)
    dqdt = np.asarray(dqdt, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64).reshape(-1)
    ext = terms.external_series(t) if terms.forced else 0.0
    dp = -np.asarray(gq).reshape(dqdt.shape) - terms.gamma[None, :, None] * dqdt + ext
    return np.asarray(gp).reshape(dqdt.shape), dp


def port_derivative_mse(model, dataset: Dataset, indices=None, batch: int = 256) -> float:
    """:func:`core.learning.metrics.derivative_mse` for a port model: the mean squared error of
    :func:`port_time_derivatives` against the data's (default: the test snapshots)."""
    idx = np.asarray(dataset.test if indices is None else indices, dtype=np.int64).ravel()
    if idx.size == 0:
        raise HGNError("no snapshots to measure the derivative error on")
    port = model_port(model, dataset.system)
    times = dataset.meta.get("time_of_snapshot") if isinstance(dataset.meta, dict) else None
    if times is None:
        if port.forced:
            raise HGNError("the data have no snapshot times (meta['time_of_snapshot']) to evaluate the forcing at")
        times = np.zeros(dataset.n_snapshots)
    times = np.asarray(times, dtype=np.float64)
    total, count = 0.0, 0
    for a in range(0, idx.size, batch):
        b = idx[a:a + batch]
        dq, dp = port_time_derivatives(model, dataset.system, dataset.q[b], dataset.p[b], dataset.dqdt[b], times[b],
                                       port)
        total += np.sum((dq - dataset.dqdt[b]) ** 2) + np.sum((dp - dataset.dpdt[b]) ** 2)
        count += 2 * dq.size
    return float(total / count)


def rollout_port(model, system: System, q0, p0, dt: float, steps: int, save_every: int = 1, t0: float = 0.0,
                 port: Port | None = None, label: str = "RF-HGN (port)"):
    """Roll a separable port model out with its identified damping and forcing (``port``: default the
    model's own, :func:`model_port`; an HGNError for a model that identified none): the Strang splitting of
    ground truth with the learned gradients, which :func:`core.learning.rollout.rollout` runs for any model
    carrying a port (see its ``port`` keyword; this function is that call with the port required and this
    label). Returns the Trajectory (true energies along the predicted path, ``learned_energy``, the energy
    balance in ``injected``/``dissipated``; a roll-out that blows up is stopped and marked ``diverged``)."""
    from core.learning.rollout import rollout

    if not model.separable:
        raise HGNError("rollout_port needs a separable (invariant) model")
    port = model_port(model, system) if port is None else port
    return rollout(model, system, q0, p0, dt, steps, save_every, t0=t0, port=port, label=label)


# ======================================================================
#: central-difference stencils (offsets, weights) of d/dt, by order of accuracy
STENCILS = {2: ((-1, 1), (-0.5, 0.5)), 4: ((-2, -1, 1, 2), (1 / 12, -8 / 12, 8 / 12, -1 / 12))}


def _periodic_differences(q, box, offsets, weights, reach: int):
    """sum_o w_o q[n + o] for the interior frames n of positions ``q`` (F, N, d) in a periodic ``box``,
    saved folded into the box or not: as sum_o w_o (q[n + o] - q[n]) (the weights sum to 0), each
    displacement the sum of the minimum-image steps between consecutive frames, so a particle that
    crosses a face moves by its step, not by a box length (each step must be under half a box)."""
    step = minimum_image(np.diff(q, axis=0), box)  # (F - 1, N, d): frame j -> j + 1
    m = q.shape[0] - 2 * reach
    out = np.zeros((m,) + q.shape[1:])
    for o, w in zip(offsets, weights):
        if o > 0:
            out += w * sum(step[reach + j:reach + j + m] for j in range(o))
        elif o < 0:
            out -= w * sum(step[reach + j:reach + j + m] for j in range(o, 0))
    return out


def series_dataset(trajectories, order: int = 4) -> Dataset:
    """Snapshots with derivatives from time series: every interior frame of every trajectory (all of one
    system, frames equally spaced by h), with dq/dt and dp/dt from central differences of ``order`` 2 or 4
    (error O(h^order) beyond the data's own), its time in ``meta["time_of_snapshot"]`` and its true energy.
    In a periodic box the differences are of minimum-image steps between frames, so runs saved folded
    into the box give the derivatives of the unfolded motion (the snapshots' positions stay as saved).
    Every snapshot is for training. Used by :func:`fit_port_time_series`."""
    from core.physics.trajectory import Trajectory

    if order not in STENCILS:
        raise HGNError(f"the finite-difference order must be one of {sorted(STENCILS)}, got {order!r}")
    trajs = list(trajectories) if not isinstance(trajectories, Trajectory) else [trajectories]
    if not trajs or not all(isinstance(t, Trajectory) for t in trajs):
        raise HGNError("a time-series fit needs a list of Trajectory")
    system = trajs[0].system
    offsets, weights = STENCILS[order]
    reach = max(offsets)
    parts = []
    for k, tr in enumerate(trajs):
        if tr.system.n != system.n or tr.system.dim != system.dim:
            raise HGNError(f"trajectory {k} is of another system ({tr.system!r}); fit one system at a time")
        if tr.n_frames < 2 * reach + 1:
            raise HGNError(f"trajectory {k} has {tr.n_frames} frames; order-{order} differences need at least "
                           f"{2 * reach + 1}")
        h = np.diff(tr.t)
        if not np.allclose(h, h[0], rtol=1e-9, atol=0) or h[0] <= 0:
            raise HGNError(f"the frames of trajectory {k} are not equally spaced in time")
        inner = slice(reach, tr.n_frames - reach)
        if tr.system.box is None:
            dq = sum(w * tr.q[reach + o:tr.n_frames - reach + o] for o, w in zip(offsets, weights)) / h[0]
        else:
            dq = _periodic_differences(np.asarray(tr.q, dtype=np.float64), tr.system.box, offsets, weights,
                                       reach) / h[0]
        dp = sum(w * tr.p[reach + o:tr.n_frames - reach + o] for o, w in zip(offsets, weights)) / h[0]
        parts.append((tr.q[inner], tr.p[inner], dq, dp, tr.total[inner], tr.t[inner]))
    q, p, dq, dp, e, t = (np.concatenate([x[i] for x in parts]) for i in range(6))
    return Dataset(system=system, q=q, p=p, dqdt=dq, dpdt=dp, energy=e, train=np.arange(len(q)),
                   test=np.zeros(0, dtype=np.int64), trajectories=[],
                   meta={"source": f"time series, order-{order} central differences", "time_of_snapshot": t})


def fit_port_time_series(trajectories, config: RFConfig | None = None, spec: PortSpec | None = None,
                         order: int = 4, progress=None, cancel=None) -> FittedModel:
    """:func:`fit_port` on time series without derivatives: the derivatives of the interior frames by
    central differences (:func:`series_dataset`; order 4 by default, so for frames h apart the rows are
    consistent to O(h^4) with the data). ``info["source"]`` says so."""
    ds = series_dataset(trajectories, order)
    model = fit_port(ds, config, spec, progress, cancel)
    model.info["source"] = f"time series (port, order-{order} central differences)"
    return model
