"""A feature basis (issue 14, docs/adapt.md): the sampled hidden layers of
an RF-HGN without an output layer, saved on their own and reused by
:func:`core.learning.rfhgn.adapt.adapt` for other systems.

File (core.container kind ``"basis"``):

* header: ``config`` (RFConfig.to_dict()), ``encoding``, ``dim``,
  ``source`` (where it was sampled: ``system`` name, ``n_snapshots``,
  ``train_r_min``/``train_r_max``, the model file when there was one);
* arrays: the sampled layers ``<layer>_W`` (out, in) and ``<layer>_b``
  (out,) as in a model file; optionally ``theta`` (L,): the output layer
  of the fit the layers came from (a model's own; for a pooled basis the
  one solved on all the pooled rows at once, an "average" Hamiltonian of
  the source systems), which :func:`~.adapt.adapt` pulls toward with
  ``prior="source"`` (``"auto"`` ignores it for a basis: measured no
  better, docs/adapt.md). Files written before it have none and
  load as before (no prior). No energy constant is kept: the pooled one
  mixes systems of different sizes and adapt sets its own from the data.

Loading checks the header fields, the stored settings, every array's dtype,
shape against the layer widths and finiteness, and the layers' input widths
against the encoding (when the network is built); a damaged file is refused
with an HGNError naming the file and the field.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.container import load_npz, save_npz
from core.errors import HGNError
from core.learning.hgn import LAYERS
from core.learning.hgn.device import resolve_device
from core.learning.hgn.network import HGN
from core.schema import Arr, Field, check_arrays, check_fields
from ..learned import plain_info, stored_settings
from .config import RFConfig
from .model import FittedModel

#: the header of a basis file
BASIS_FIELDS = {
    "config": Field("dict"),
    "encoding": Field("str", choices=tuple(LAYERS)),
    "dim": Field("int", choices=(2, 3)),
    "source": Field("dict", required=False, null=True),
}


class Basis:
    """Sampled hidden layers (an HGN whose own theta is ignored) with the
    settings they were sampled with and where (``source``); ``theta``: the
    output layer of the fit they came from (None: unknown), a prior for
    :func:`~.adapt.adapt`."""

    def __init__(self, network: HGN, config: RFConfig, source: dict | None = None, theta=None):
        if not isinstance(network, HGN):
            raise HGNError(f"a basis needs an HGN network, got {type(network).__name__}")
        self.network = network
        self.config = config
        self.source = dict(source or {})
        self.theta = None if theta is None else _checked_theta(theta, network.L, "the basis' theta")

    @property
    def dim(self) -> int:
        return int(self.network.dim)

    @property
    def encoding(self) -> str:
        return self.network.encoding

    @classmethod
    def of(cls, model: FittedModel, where: str | None = None) -> "Basis":
        """The basis of a fitted model (``where``: its file, if any)."""
        if not isinstance(model, FittedModel):
            raise HGNError(f"a basis comes from a fitted RF-HGN model, got {type(model).__name__}")
        info = model.info or {}
        src = {"system": getattr(model.train_system, "name", None), "n_snapshots": info.get("n_snapshots"),
               "train_r_min": info.get("train_r_min"), "train_r_max": info.get("train_r_max"),
               "train_k_max": info.get("train_k_max"), "model_file": where}
        return cls(model.network, model.config, src, theta=model.theta)

    def __repr__(self) -> str:
        return f"Basis({self.encoding}, {self.dim}D, {self.network.L} features)"


def save_basis(model_or_basis, path) -> Path:
    """Write the hidden layers of a FittedModel or a Basis (kind "basis")."""
    basis = model_or_basis if isinstance(model_or_basis, Basis) else Basis.of(model_or_basis)
    header = {"config": basis.config.to_dict(), "encoding": basis.encoding, "dim": basis.dim,
              "source": plain_info(basis.source)}
    arrays = basis.network.to_arrays()
    if basis.theta is not None:
        arrays["theta"] = np.asarray(basis.theta, dtype=np.float64)
    return save_npz(path, "basis", header, arrays)


def load_basis(path, device=None) -> Basis:
    """Read a basis file (see the module notes); HGNError when damaged."""
    header, arrays = load_npz(path, "basis")
    name = Path(path).name
    check_fields(header, BASIS_FIELDS, f"{name}: header")
    stored = dict(header["config"])
    stored.setdefault("frame_rule", "nearest")
    config = stored_settings(RFConfig, stored, name)
    if config.encoding != header["encoding"]:
        raise HGNError(f"{name}: header 'encoding' is {header['encoding']!r} but the stored settings say "
                       f"{config.encoding!r}")
    specs = {}
    for n in LAYERS[config.encoding]:
        specs[f"{n}_W"] = Arr("float", (f"w_{n}", None))
        specs[f"{n}_b"] = Arr("float", (f"w_{n}",))
    specs["theta"] = Arr("float", (None,), required=False)  # (L,): checked against the network below
    check_arrays(arrays, specs, name)
    try:
        net = HGN.from_arrays(config.encoding, header["dim"], arrays, linear_kinetic=config.linear_kinetic,
                              pool_edges=config.pool_edges, cutoff_shift=config.cutoff_shift,
                              frame_rule=config.frame_rule, device=resolve_device(device))
    except HGNError as exc:
        raise HGNError(f"{name}: the stored layers do not fit their settings: {exc}") from None
    net.set_theta(np.zeros(net.L))
    theta = arrays.get("theta")
    if theta is not None:
        theta = _checked_theta(theta, net.L, f"{name}: array 'theta'")
    return Basis(net, config, header.get("source") or {}, theta=theta)


def _checked_theta(theta, L: int, where: str) -> np.ndarray:
    t = np.asarray(theta.detach().cpu().numpy() if hasattr(theta, "detach") else theta)
    if t.dtype.kind not in "iuf" or t.shape != (L,):
        raise HGNError(f"{where} must be {L} real numbers (one per feature), got shape {t.shape} dtype {t.dtype}")
    t = t.astype(np.float64)
    if not np.all(np.isfinite(t)):
        raise HGNError(f"{where} holds a value that is not finite (NaN or inf); sample the basis again")
    return t


def sample_basis(datasets, config: RFConfig | None = None, names=None) -> Basis:
    """A basis sampled from the pooled training snapshots of several
    datasets (other potentials, parameters, sizes; one dimension): the fit's
    own sampling (:func:`core.learning.rfhgn.fitting.choose_points` over
    one group per dataset, then ``sample_network``) as in a fit on all of
    them at once. The output layer that fit solves on the pooled rows is
    kept as ``theta`` (adapt's prior; with ``sampler="adaptive"`` its local
    energies also steer the resampling, a compromise between the systems).
    ``names``: one label per dataset for ``source`` (default the systems'
    reprs)."""
    import time

    from core.learning.hgn.device import blas_threads, torch_threads
    from core.physics.trajectory import Dataset
    from ..learned import training_source
    from .fitting import Group, _fit_groups, fit_threads

    t0 = time.perf_counter()
    config = RFConfig.checked(config)
    datasets = list(datasets)
    if not datasets or not all(isinstance(d, Dataset) for d in datasets):
        raise HGNError("a pooled basis needs one or more Dataset objects")
    dims = {d.system.dim for d in datasets}
    if len(dims) > 1:
        raise HGNError(f"the datasets of one basis must share a dimension, got {sorted(dims)}D; "
                       "sample one basis per dimension")
    names = [repr(d.system) for d in datasets] if names is None else [str(n) for n in names]
    device = resolve_device(config.device)
    threads = fit_threads(config, [d.system for d in datasets], device)
    with torch_threads(threads), blas_threads(threads):
        groups = []
        for d in datasets:
            train, q, p, dqdt, dpdt = training_source(d)
            d.check_trainable(train)
            groups.append(Group(d.system, q, p, dqdt, dpdt, train, device))
        model = _fit_groups(groups, None, config, None, None, t0)
    info = model.info
    src = {"pooled": names, "n_snapshots": [int(g.n) for g in groups],
           "train_r_min": info.get("train_r_min"), "train_r_max": info.get("train_r_max"),
           "train_k_max": info.get("train_k_max"), "sample_time": time.perf_counter() - t0}
    return Basis(model.network, config, src, theta=model.theta)
