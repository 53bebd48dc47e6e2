"""A fitted RF-HGN: evaluation, fast tables, saving and loading.

H_hat(q, p) = theta . Phi(q, p) + c * size / size_ref

Phi is extensive (sums over nodes and edges), so a model applies to any
system of the same kind: the graph comes from the ``system`` argument of each
call (its edges, or its cutoff and box for dynamic pairs). The constant c was
fixed with one known energy of the training system. Derivatives do not tell
how much of it belongs to each node and each edge, so the network pins the
kinetic part (T_hat(p = 0) = 0) and c is taken per edge for fixed graphs
(size = number of edges; the pair function carries the constant) and per
particle otherwise (cutoff systems, whose pair features vanish at the cutoff,
and the frame encoding). Energies of other sizes are then extensive.

Shapes: q and p are (N, d) or (S, N, d); energies are 0-d arrays for one
state and (S,) for a batch; gradients have the shape of q.

The network is a :class:`core.learning.hgn.network.HGN` (torch, theta
inside it), evaluated through :class:`core.learning.learned.NetworkHamiltonian`
on its device (the fit's device; ``load(path, device=...)`` picks another).

Fast path (separable invariant models, ``config.fast_tables``): the potential
is sum over edges of w_ij f(r_ij) with one scalar function f per pair of
masses and the kinetic energy a sum of T1(k_i), so the separable parts need
f, f' per edge and T1, T1' per particle only. They are read from the
roll-out stepper's cubic Hermite tables (:mod:`core.learning.stepper`, the
one table implementation; see :class:`core.learning.learned.NetworkHamiltonian`):
exact values and derivatives at the knots, checked at the cell midpoints
against the exact network to a relative error of 1e-10 of max |f'|, refined
until they are, ranges from the training data (``info["train_r_max"]``,
``info["train_k_max"]``) or the cutoff, never used outside them (the exact
network is evaluated there). Pass ``exact=True`` to bypass the tables.

File (``save``/``load``, core.container kind "model"):

* header: ``config`` (RFConfig.to_dict()), ``encoding``, ``dim``,
  ``constant`` (c, also stored bit-exact as an array), ``n_ref`` and
  ``e_ref`` (particles and edges of the system c was fixed on),
  ``info`` (fit time, snapshots, train MSE, solver details, ...),
  ``train_system`` (the header of the system it was fitted on);
* arrays: ``theta`` (L,), ``constant`` (1,), the sampled layers as
  ``<layer>_W`` (out, in) and ``<layer>_b`` (out,) with layers kin, static,
  edge, msg (invariant) or node, edge, msg (frame), and the training system's
  arrays prefixed ``train_system.`` (positions, masses, edges, ...).
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from core.errors import HGNError
from core.container import load_npz, save_npz
from core.learning.hgn.device import resolve_device
from core.learning.hgn.network import HGN
from ..learned import NetworkHamiltonian, plain_info
from core.physics.system import System
from .config import RFConfig
from .model_file import MODEL_FIELDS, check_model_file  # noqa: F401 - MODEL_FIELDS re-exported

class FittedModel(NetworkHamiltonian):
    """A fitted RF-HGN. See the module notes for shapes and the file format.

    ``network``: the sampled HGN; with ``theta`` given, the model holds a copy
    of it with that output layer (the network passed in is left alone),
    without, the network's own theta is used."""

    def __init__(self, config: RFConfig, network: HGN, theta, constant: float, n_ref: int,
                 train_system: System | None = None, info: dict | None = None, e_ref: int | None = None):
        if not isinstance(network, HGN):
            raise HGNError(f"a FittedModel needs an HGN network, got {type(network).__name__}")
        self.config = config
        if theta is not None:
            network = copy.deepcopy(network)
            network.set_theta(np.asarray(theta, dtype=np.float64))
        self.network = network
        self._set_reference(constant, n_ref, train_system, info, e_ref)

    # ------------------------------------------------------------------
    @property
    def dim(self) -> int:
        if self.train_system is not None:
            return self.train_system.dim
        return int(self.network.dim)

    # -- files ------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the model (kind "model"); see the module notes for the contents."""
        header = {
            "config": self.config.to_dict(),
            "encoding": self.network.encoding,
            "dim": int(self.dim),
            "constant": self.constant,
            "n_ref": self.n_ref,
            "e_ref": self.e_ref,
            "info": plain_info(self.info),
        }
        arrays = {"theta": self.theta, "constant": np.array([self.constant])}
        arrays.update(self.network.to_arrays())
        if self.train_system is not None:
            header["train_system"] = self.train_system.to_header()
            for k, v in self.train_system.to_arrays().items():
                arrays[f"train_system.{k}"] = v
        return save_npz(path, "model", header, arrays)

    @classmethod
    def load(cls, path, device=None) -> "FittedModel":
        """Read a model file (any version of the format; ``device``: where
        the network runs, default the CPU). The header is checked against
        :data:`MODEL_FIELDS` and every array's dtype, shape (against the
        layer widths and the network's inputs) and finiteness before use."""
        header, arrays = load_npz(path, "model")
        name = Path(path).name
        dev = resolve_device(device)
        config, train_system = check_model_file(header, arrays, name)
        dim = header["dim"]
        theta = np.asarray(arrays["theta"], dtype=np.float64)
        constant = float(np.asarray(arrays["constant"]).reshape(-1)[0])
        try:
            net = HGN.from_arrays(config.encoding, dim, arrays, linear_kinetic=config.linear_kinetic,
                                  pool_edges=config.pool_edges, cutoff_shift=config.cutoff_shift,
                                  frame_rule=config.frame_rule, device=dev)
        except HGNError as exc:
            raise HGNError(f"{name}: the stored network does not fit its settings: {exc}") from None
        if theta.shape != (net.L,):
            raise HGNError(f"{name}: array 'theta' has {theta.shape[0]} weights, the network needs {net.L}")
        net.set_theta(theta)
        return cls(config, net, None, constant, header["n_ref"], train_system, header.get("info") or {},
                   header.get("e_ref"))

    def __repr__(self) -> str:
        return (f"FittedModel({self.network.encoding}, {self.config.sampler}, {self.network.L} features, "
                f"separable={self.separable})")
