"""A plain random-feature Hamiltonian network on the flattened state: the
paper's RF-HNN comparison (arXiv 2411.17511), no graph.

    y = [q_1 .. q_N, p_1 .. p_N]  (2 N d inputs)
    h = tanh(W y + b)             one dense layer of ``width`` sampled neurons
    H = theta . h + c

The hidden layer is sampled (SWIM pairs of training states, or ELM), theta
is solved from Hamilton's equations on the training snapshots exactly like
the RF-HGN output layer (ridge least squares, relative lambda). With
a_s = 1 - h_s^2 the feature gradients are a_s[l] W[l], so the normal
equations take a closed form: Z^T Z = (W W^T) * (A^T A) (elementwise, A the
S x width matrix of a_s) and Z^T u = sum_s a_s * (W v_s) with
v_s = [-dp/dt, dq/dt] -- no Jacobian is ever stored.

It has no notion of particles: a model trained on N particles cannot be
applied to another N (HGNError), which is the point of the comparison with
RF-HGN's zero-shot transfer. Not separable; rollouts use the implicit
integrator.

It stays in numpy: it is a plain one-layer MLP on the flattened state, not a
graph network, so it shares nothing with :class:`core.learning.hgn.network.HGN`
(the one definition of the HGN), and its fit is one dense least-squares solve
that numpy/LAPACK does at full speed on the CPU.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.linalg as sla

from core.schema import Field
from core.errors import HGNError
from core.jobs import check_cancel, report
from core.physics.system import System
from core.physics.trajectory import Dataset
from ..learned import stored_settings

FILE_KIND = "rf_hnn_model"
#: the header of an RF-HNN file (core.schema.Field; arrays are checked in RFHNNModel.load)
FILE_FIELDS = {"config": Field("dict"), "constant": Field("number", required=False),
               "info": Field("dict", required=False, null=True), "train_system": Field("dict")}


@dataclass
class RFHNNConfig:
    """Settings of a random-feature HNN on the flattened state."""

    #: hidden neurons
    width: int = 512
    #: "swim" (pairs of training states) or "elm" (Gaussian weights on standardised inputs)
    sampler: str = "swim"
    #: SWIM constant s (pre-activation -s at x1 and +s at x2)
    swim_scale: float = 0.5 * math.log(3.0)
    #: ELM bias range
    elm_bias: float = 1.0
    #: ridge parameter, relative to the column norms of Z
    regularisation: float = 1e-10
    seed: int = 0

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        if isinstance(self.width, bool) or not float(self.width).is_integer() or int(self.width) < 1:
            raise HGNError(f"RF-HNN width must be a whole number >= 1, got {self.width!r}")
        self.width = int(self.width)
        if self.sampler not in ("swim", "elm"):
            raise HGNError(f"RF-HNN sampler must be 'swim' or 'elm', got {self.sampler!r}")
        for name in ("swim_scale", "elm_bias", "regularisation"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise HGNError(f"RF-HNN setting {name} must be a number >= 0, got {v!r}")
        if isinstance(self.seed, bool) or not float(self.seed).is_integer() or self.seed < 0:
            raise HGNError(f"RF-HNN seed must be a whole number >= 0, got {self.seed!r}")
        self.seed = int(self.seed)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RFHNNConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise HGNError(f"unknown RF-HNN setting(s): {', '.join(unknown)}")
        return cls(**d)


def _flat(q: np.ndarray, p: np.ndarray) -> np.ndarray:
    S = q.shape[0]
    return np.concatenate([q.reshape(S, -1), p.reshape(S, -1)], axis=1)


class RFHNNModel:
    """A fitted RF-HNN with the evaluation interface of core.learning.rfhgn.FittedModel."""

    separable = False

    def __init__(self, config: RFHNNConfig, W, b, theta, constant: float, train_system: System, info=None):
        self.config = config
        self.W = np.asarray(W, dtype=np.float64)
        self.b = np.asarray(b, dtype=np.float64)
        self.theta = np.asarray(theta, dtype=np.float64)
        self.constant = float(constant)
        self.train_system = train_system
        self.info = dict(info or {})
        self.name = f"RF-HNN ({config.sampler.upper()}, no graph)"

    @property
    def dim(self) -> int:
        return self.train_system.dim

    def _check(self, system: System, x, name="q"):
        if not isinstance(system, System):
            raise HGNError(f"a model needs the System to evaluate on, got {type(system).__name__}")
        ts = self.train_system
        if system.n != ts.n or system.dim != ts.dim:
            raise HGNError(f"an RF-HNN works on the flattened state of its training system ({ts.n} particles "
                           f"in {ts.dim}D) and cannot be applied to {system.n} particles in {system.dim}D; "
                           "use RF-HGN, which applies to any size")
        x = np.asarray(x, dtype=np.float64)
        if x.ndim not in (2, 3) or x.shape[-2:] != (system.n, system.dim):
            raise HGNError(f"{name} must have shape (N, d) = ({system.n}, {system.dim}) or (S, N, d), got {x.shape}")
        return x

    def _eval(self, system, q, p, grad: bool):
        q = self._check(system, q)
        p = self._check(system, p, "p")
        single = q.ndim == 2
        qb, pb = (q[None], p[None]) if single else (q, p)
        h = np.tanh(_flat(qb, pb) @ self.W.T + self.b)
        H = h @ self.theta + self.constant
        gq = gp = None
        if grad:
            g = ((1.0 - h * h) * self.theta) @ self.W
            nd = qb.shape[1] * qb.shape[2]
            gq, gp = g[:, :nd].reshape(qb.shape), g[:, nd:].reshape(pb.shape)
            if single:
                gq, gp = gq[0], gp[0]
        return (np.asarray(H[0]) if single else H), gq, gp

    def energy(self, system: System, q, p, pairs=None) -> np.ndarray:
        return self._eval(system, q, p, False)[0]

    def gradients(self, system: System, q, p, pairs=None):
        _, gq, gp = self._eval(system, q, p, True)
        return gq, gp

    def time_derivatives(self, system: System, q, p, pairs=None):
        gq, gp = self.gradients(system, q, p)
        return gp, -gq

    def save(self, path) -> Path:
        from core.container import save_npz
        from ..learned import plain_info

        header = {"config": self.config.to_dict(), "constant": self.constant, "info": plain_info(self.info),
                  "train_system": self.train_system.to_header()}
        arrays = {"W": self.W, "b": self.b, "theta": self.theta, "constant": np.array([self.constant])}
        for k, v in self.train_system.to_arrays().items():
            arrays[f"train_system.{k}"] = v
        return save_npz(path, FILE_KIND, header, arrays)

    @classmethod
    def load(cls, path) -> "RFHNNModel":
        """Read an RF-HNN file: header checked against :data:`FILE_FIELDS`,
        arrays against the training system (W is (width, 2 N d)) before use."""
        from core.container import load_npz
        from core.schema import Arr, check_arrays, check_fields, check_system_part

        header, arrays = load_npz(path, FILE_KIND)
        name = Path(path).name
        check_fields(header, FILE_FIELDS, f"{name}: header")
        config = stored_settings(RFHNNConfig, header["config"], name)
        sys_arrays = check_system_part(header["train_system"], arrays, "train_system.", name, "train_system")
        try:
            system = System.from_header_and_arrays(header["train_system"], sys_arrays)
        except HGNError as exc:
            raise HGNError(f"{name}: invalid training system: {exc}") from None
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
            raise HGNError(f"{name}: invalid training system ({type(exc).__name__}: {exc})") from None
        sizes = {"width": config.width, "D": 2 * system.n * system.dim}
        check_arrays(arrays, {"W": Arr("float", ("width", "D")), "b": Arr("float", ("width",)),
                              "theta": Arr("float", ("width",)), "constant": Arr("float", (1,))}, name, sizes)
        return cls(config, arrays["W"], arrays["b"], arrays["theta"],
                   float(np.asarray(arrays["constant"]).reshape(-1)[0]), system, header.get("info") or {})


def _sample(X: np.ndarray, config: RFHNNConfig, rng: np.random.Generator):
    n, D = X.shape
    L = config.width
    if config.sampler == "swim" and n >= 2:
        i1 = rng.integers(0, n, size=L)
        i2 = rng.integers(0, n, size=L)
        same = i1 == i2
        i2[same] = (i2[same] + 1) % n
        diff = X[i2] - X[i1]
        d2 = np.einsum("ij,ij->i", diff, diff)
        if np.any(d2 <= 0):
            raise HGNError("two training states are identical; the RF-HNN cannot be SWIM-sampled from them")
        W = 2.0 * config.swim_scale * diff / d2[:, None]
        b = -np.einsum("ij,ij->i", W, X[i1]) - config.swim_scale
        return W, b
    mu, sd = X.mean(axis=0), X.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    W0 = rng.standard_normal((L, D)) / np.sqrt(D)
    W = W0 / sd
    b = rng.uniform(-config.elm_bias, config.elm_bias, size=L) - W @ mu
    return W, b


def fit_hnn(dataset: Dataset, config: RFHNNConfig | None = None, progress=None, cancel=None,
            batch: int = 512) -> RFHNNModel:
    """Fit an RF-HNN to the training snapshots of ``dataset`` (same loss as RF-HGN)."""
    t0 = time.perf_counter()
    config = RFHNNConfig() if config is None else config
    config.validate()
    if not isinstance(dataset, Dataset):
        raise HGNError(f"fit_hnn needs a Dataset, got {type(dataset).__name__}")
    train = np.asarray(dataset.train, dtype=np.int64).reshape(-1)
    if train.size == 0:
        raise HGNError("the dataset has no training snapshots")
    system = dataset.system
    q, p = np.asarray(dataset.q, float)[train], np.asarray(dataset.p, float)[train]
    dq, dp = np.asarray(dataset.dqdt, float)[train], np.asarray(dataset.dpdt, float)[train]
    rng = np.random.default_rng(config.seed)
    X = _flat(q, p)
    V = _flat(-dp, dq)  # the targets in the order of the inputs: -dH/dq = dp/dt, dH/dp = dq/dt
    report(progress, "sample", 0.0)
    W, b = _sample(X, config, rng)
    report(progress, "sample", 1.0)
    L = config.width
    AtA = np.zeros((L, L))
    rhs = np.zeros(L)
    for a in range(0, len(X), batch):
        check_cancel(cancel)
        h = np.tanh(X[a:a + batch] @ W.T + b)
        A = 1.0 - h * h
        AtA += A.T @ A
        rhs += np.sum(A * (V[a:a + batch] @ W.T), axis=0)
        report(progress, "assemble", min(1.0, (a + batch) / len(X)))
    G = (W @ W.T) * AtA
    dg = np.sqrt(np.clip(np.diag(G), 0.0, None))
    dg = np.where(dg > 0, dg, 1.0)
    Gs = G / dg[:, None] / dg[None, :]
    Gs[np.diag_indices(L)] += config.regularisation
    report(progress, "solve", 0.0)
    try:
        x = sla.solve(Gs, rhs / dg, assume_a="pos")
    except (np.linalg.LinAlgError, ValueError):
        w, U = np.linalg.eigh(Gs)
        keep = w > L * np.finfo(float).eps * max(w.max(), 1e-300)
        x = U[:, keep] @ ((U[:, keep].T @ (rhs / dg)) / w[keep])
    theta = x / dg
    report(progress, "solve", 1.0)
    energy = np.asarray(dataset.energy, dtype=np.float64).reshape(-1)
    constant = 0.0
    if energy.shape == (dataset.n_snapshots,) and np.isfinite(energy[train[0]]):
        constant = float(energy[train[0]] - np.tanh(X[0] @ W.T + b) @ theta)
    model = RFHNNModel(config, W, b, theta, constant, system)
    model.info.update(fit_time=time.perf_counter() - t0, n_snapshots=int(len(train)), n_features=L,
                      name=model.name, method="RF-HNN (flattened state, no graph)")
    return model
