"""A trained baseline behind the interface of :class:`core.learning.rfhgn.FittedModel`.

:class:`TrainedHGN` wraps a trained :class:`~core.learning.baselines.torch_hgn.TorchHGN`
so that :mod:`core.learning.rollout`, :mod:`core.learning.metrics`, the command line and the
studio use it exactly like an RF-HGN: ``energy``, ``gradients``,
``time_derivatives`` (and for the separable invariant encoding
``kinetic_energy``, ``kinetic_gradient``, ``potential_energy``,
``potential_gradient``), ``separable``, ``info``, ``save``/``load``.

Evaluation is always float64 (the weights trained in float32 are widened
exactly), by torch autograd, in batches of ``EVAL_BATCH`` snapshots. The
energy is H_hat = theta . Phi + c * N / N_ref, the constant fixed after
training from one known energy, as in the RF fit, and scaled to other sizes
the same way (per edge for separable models on fixed graphs, E / E_ref;
per particle otherwise, N / N_ref).

:meth:`TrainedHGN.to_rf_model` gives the same function as a
``core.learning.rfhgn.FittedModel`` (its numpy network with the trained weights), for
fast rollouts on large systems.

File (``save``/``load``, core.container kind ``"baseline_model"``):

* header: ``config`` (BaselineConfig.to_dict()), ``encoding``, ``dim``,
  ``widths``, ``constant``, ``n_ref``, ``info`` (losses, times, optimizer...),
  ``train_system`` (header of the training system);
* arrays: ``state.<name>`` for every parameter and normalisation buffer of the
  torch module (float64, bit-exact), ``constant`` (1,), and the training
  system's arrays prefixed ``train_system.``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.errors import HGNError
from ..learned import LearnedHamiltonian, plain_info
from core.physics.system import System

#: snapshots evaluated at once
EVAL_BATCH = 256
FILE_KIND = "baseline_model"


class TrainedHGN(LearnedHamiltonian):
    """A gradient-trained Hamiltonian graph network (see the module notes)."""

    made = "trained"

    def __init__(self, config, module, constant: float, n_ref: int, train_system: System | None = None,
                 info: dict | None = None, e_ref: int | None = None):
        import torch

        self.config = config
        self.module = module.to(torch.float64)
        self.module.eval()
        for prm in self.module.parameters():
            prm.requires_grad_(False)
        self._set_reference(constant, n_ref, train_system, info, e_ref)

    # ------------------------------------------------------------------
    @property
    def separable(self) -> bool:
        return bool(self.module.separable)

    @property
    def dim(self) -> int:
        if self.train_system is not None:
            return self.train_system.dim
        return int(self.module.dim)

    @property
    def name(self) -> str:
        from .optimizers import OPTIMIZERS

        spec = OPTIMIZERS.get(self.config.optimizer)
        return f"HGN ({spec.label if spec else self.config.optimizer})"

    def __repr__(self) -> str:
        return (f"TrainedHGN({self.module.encoding}, {self.config.optimizer}, {self.module.n_features} features, "
                f"separable={self.separable})")

    # ------------------------------------------------------------------
    def _run(self, system: System, q, p, want_grad: bool, pairs=None, part: str = "all"):
        """(H (S,), dH/dq, dH/dp) in numpy for q, p (S, N, d); ``part`` "all",
        "kinetic" or "potential" (separable models) evaluates one part only."""
        import torch

        from .torch_hgn import TorchGraph

        S = q.shape[0]
        masses = torch.from_numpy(np.asarray(system.masses, dtype=np.float64))
        Hs, gqs, gps = [], [], []
        for a in range(0, S, EVAL_BATCH):
            qb = torch.from_numpy(np.ascontiguousarray(q[a:a + EVAL_BATCH])).requires_grad_(want_grad)
            pb = torch.from_numpy(np.ascontiguousarray(p[a:a + EVAL_BATCH])).requires_grad_(want_grad)
            with torch.set_grad_enabled(want_grad):
                if part == "kinetic":
                    H = self.module.kinetic(pb, masses)
                else:
                    graph = TorchGraph.build(system, q[a:a + EVAL_BATCH], self.module.encoding, pairs)
                    if part == "potential":
                        H = self.module.potential(graph, qb, masses, system.cutoff)
                    else:
                        H = self.module(graph, qb, pb, masses, system.cutoff)
                if want_grad:
                    inputs = {"kinetic": (pb,), "potential": (qb,)}.get(part, (qb, pb))
                    grads = torch.autograd.grad(H.sum(), inputs, allow_unused=True)
                    grads = [torch.zeros_like(x) if g is None else g for g, x in zip(grads, inputs)]
                    if part == "kinetic":
                        gps.append(grads[0].numpy())
                    elif part == "potential":
                        gqs.append(grads[0].numpy())
                    else:
                        gqs.append(grads[0].numpy())
                        gps.append(grads[1].numpy())
            Hs.append(H.detach().numpy())
        cat = lambda xs: np.concatenate(xs) if xs else None  # noqa: E731
        return cat(Hs), cat(gqs), cat(gps)

    @staticmethod
    def _batch(x):
        return (x[None], True) if x.ndim == 2 else (x, False)

    # -- whole H ---------------------------------------------------------
    def energy(self, system: System, q, p, pairs=None) -> np.ndarray:
        """H_hat: 0-d array for one state (N, d), (S,) for a batch."""
        q = self._check(system, q)
        p = self._check(system, p, "p")
        qb, single = self._batch(q)
        pb, _ = self._batch(p)
        H, _, _ = self._run(system, qb, pb, False, pairs)
        H = H + self._const(system)
        return np.asarray(H[0]) if single else H

    def gradients(self, system: System, q, p, pairs=None) -> tuple[np.ndarray, np.ndarray]:
        """(dH/dq, dH/dp), each the shape of q."""
        q = self._check(system, q)
        p = self._check(system, p, "p")
        qb, single = self._batch(q)
        pb, _ = self._batch(p)
        _, gq, gp = self._run(system, qb, pb, True, pairs)
        return (gq[0], gp[0]) if single else (gq, gp)

    # -- separable parts ---------------------------------------------------

    def kinetic_energy(self, system: System, p) -> np.ndarray:
        self._need_separable("kinetic_energy")
        p = self._check(system, p, "p")
        pb, single = self._batch(p)
        H, _, _ = self._run(system, pb, pb, False, part="kinetic")
        return np.asarray(H[0]) if single else H

    def kinetic_gradient(self, system: System, p) -> np.ndarray:
        self._need_separable("kinetic_gradient")
        p = self._check(system, p, "p")
        pb, single = self._batch(p)
        _, _, gp = self._run(system, pb, pb, True, part="kinetic")
        return gp[0] if single else gp

    def potential_energy(self, system: System, q, pairs=None) -> np.ndarray:
        self._need_separable("potential_energy")
        q = self._check(system, q)
        qb, single = self._batch(q)
        H, _, _ = self._run(system, qb, qb, False, pairs, part="potential")
        return np.asarray(H[0]) if single else H

    def potential_gradient(self, system: System, q, pairs=None) -> np.ndarray:
        self._need_separable("potential_gradient")
        q = self._check(system, q)
        qb, single = self._batch(q)
        _, gq, _ = self._run(system, qb, qb, True, pairs, part="potential")
        return gq[0] if single else gq

    # -- conversion ----------------------------------------------------------
    def to_rf_model(self, fast_tables: bool = False):
        """The same function as a ``core.learning.rfhgn.FittedModel`` (numpy network
        with the trained weights): exact analytic gradients without torch,
        for long rollouts. ``fast_tables`` off by default: the pair tables are
        refined until they match the network to 1e-10, which for the sharper
        functions gradient training can produce takes many knots."""
        from ..rfhgn.model import FittedModel

        net, theta = self.module.to_network()
        info = dict(self.info)
        info["name"] = self.name
        config = self.config.rf_config().replace(fast_tables=bool(fast_tables))
        model = FittedModel(config, net, theta, self.constant, self.n_ref, self.train_system, info, e_ref=self.e_ref)
        return model

    # -- files ------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the model (kind "baseline_model"); see the module notes."""
        from core.container import save_npz

        header = {
            "config": self.config.to_dict(),
            "encoding": self.module.encoding,
            "dim": int(self.dim),
            "widths": dict(self.module.widths),
            "linear_kinetic": bool(self.module.linear_kinetic),
            "pool_edges": bool(self.module.pool_edges),
            "cutoff_shift": bool(self.module.cutoff_shift),
            "constant": self.constant,
            "n_ref": self.n_ref,
            "e_ref": self.e_ref,
            "info": plain_info(self.info),
        }
        arrays = {f"state.{k}": v.detach().double().numpy() for k, v in self.module.state_dict().items()}
        arrays["constant"] = np.array([self.constant])
        if self.train_system is not None:
            header["train_system"] = self.train_system.to_header()
            for k, v in self.train_system.to_arrays().items():
                arrays[f"train_system.{k}"] = v
        return save_npz(path, FILE_KIND, header, arrays)

    @classmethod
    def load(cls, path) -> "TrainedHGN":
        import torch

        from core.container import load_npz
        from .config import BaselineConfig
        from .torch_hgn import TorchHGN

        header, arrays = load_npz(path, FILE_KIND)
        name = Path(path).name
        try:
            config = BaselineConfig.from_dict(header["config"])
            module = TorchHGN(header["encoding"], int(header["dim"]), header["widths"],
                              linear_kinetic=bool(header["linear_kinetic"]), pool_edges=bool(header["pool_edges"]),
                              cutoff_shift=bool(header["cutoff_shift"]))
            state = {k.split(".", 1)[1]: torch.from_numpy(np.asarray(v, dtype=np.float64))
                     for k, v in arrays.items() if k.startswith("state.")}
            constant = float(np.asarray(arrays["constant"]).reshape(-1)[0])
            n_ref = int(header["n_ref"])
            e_ref = header.get("e_ref")
            train_system = None
            if "train_system" in header:
                sys_arrays = {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("train_system.")}
                train_system = System.from_header_and_arrays(header["train_system"], sys_arrays)
        except KeyError as exc:
            raise HGNError(f"{name}: baseline model file is missing {exc.args[0]!r}") from None
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise HGNError(f"{name}: the stored weights do not fit the stored network ({exc})") from None
        return cls(config, module, constant, n_ref, train_system, header.get("info", {}), e_ref)


def load_model(path):
    """Open a model file of any kind: an RF-HGN (``"model"``), a
    gradient-trained baseline (``"baseline_model"``) or an RF-HNN
    (``"rf_hnn_model"``)."""
    from core.container import load_npz

    header, _ = load_npz(path)
    kind = header.get("kind")
    if kind == FILE_KIND:
        return TrainedHGN.load(path)
    if kind == "rf_hnn_model":
        from .rf_hnn import RFHNNModel

        return RFHNNModel.load(path)
    if kind == "model":
        from ..rfhgn.model import FittedModel

        return FittedModel.load(path)
    raise HGNError(f"{Path(path).name} holds a {kind!r}, not a model")
