"""A trained baseline behind the interface of :class:`core.learning.rfhgn.FittedModel`.

:class:`TrainedHGN` holds the trained :class:`core.learning.hgn.network.HGN`
(``self.network``, float64) and subclasses
:class:`core.learning.learned.NetworkHamiltonian`, so a baseline evaluates
through the same code as an RF-HGN (analytic float64 gradients of the one
network, no second definition): :mod:`core.learning.rollout`,
:mod:`core.learning.metrics`, the command line and the studio use it exactly
like an RF-HGN: ``energy``, ``gradients``, ``time_derivatives`` (and for the
separable invariant encoding ``kinetic_energy``, ``kinetic_gradient``,
``potential_energy``, ``potential_gradient``), ``separable``, ``info``,
``save``/``load``.

Evaluation is always float64 (weights trained in float32 are widened
exactly). The energy is H_hat = theta . Phi + c * N / N_ref, the constant
fixed after training from one known energy, as in the RF fit, and scaled to
other sizes the same way (per edge for separable models on fixed graphs,
E / E_ref; per particle otherwise, N / N_ref).

:meth:`TrainedHGN.to_rf_model` gives the same function as a
``core.learning.rfhgn.FittedModel`` (the same weights with the input
normalisation folded in), e.g. for its fast pair tables on long roll-outs.

File (``save``/``load``, core.container kind ``"baseline_model"``), unchanged
since the first torch baselines (files written then load and give the same
values to round-off):

* header: ``config`` (BaselineConfig.to_dict()), ``encoding``, ``dim``,
  ``widths``, ``linear_kinetic``, ``pool_edges``, ``cutoff_shift``,
  ``frame_rule`` (absent in older files: "farthest", the rule they used),
  ``constant``, ``n_ref``, ``e_ref``, ``info`` (losses, times, optimizer...),
  ``train_system`` (header of the training system);
* arrays: ``state.<name>`` for every parameter and normalisation buffer of the
  network (``<layer>_W``, ``<layer>_b``, ``theta``, ``<layer>_mu``,
  ``<layer>_s``; float64, bit-exact), ``constant`` (1,), and the training
  system's arrays prefixed ``train_system.``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.schema import Field
from core.errors import HGNError
from ..hgn import ENCODINGS, FRAME_RULES
from ..learned import NetworkHamiltonian, plain_info
from core.physics.system import System

FILE_KIND = "baseline_model"
#: the header of a baseline model file (core.schema.Field); arrays are checked in TrainedHGN.load
FILE_FIELDS = {
    "config": Field("dict"),
    "encoding": Field("str", choices=ENCODINGS),
    "dim": Field("int", choices=(2, 3)),
    "widths": Field("dict"),
    "linear_kinetic": Field("bool"),
    "pool_edges": Field("bool"),
    "cutoff_shift": Field("bool"),
    "frame_rule": Field("str", required=False, choices=FRAME_RULES),
    "constant": Field("number", required=False),
    "n_ref": Field("int", lo=1),
    "e_ref": Field("int", required=False, null=True, lo=0),
    "info": Field("dict", required=False, null=True),
    "train_system": Field("dict", required=False),
}


class TrainedHGN(NetworkHamiltonian):
    """A gradient-trained Hamiltonian graph network (see the module notes).

    ``network``: the trained HGN (moved to float64 here, on its device; its
    parameters stop requiring gradients)."""

    made = "trained"

    def __init__(self, config, network, constant: float, n_ref: int, train_system: System | None = None,
                 info: dict | None = None, e_ref: int | None = None):
        import torch

        from ..hgn.network import HGN

        if not isinstance(network, HGN):
            raise HGNError(f"a TrainedHGN needs an HGN network, got {type(network).__name__}")
        self.config = config
        self.network = network.to(torch.float64)
        self.network.eval()
        for prm in self.network.parameters():
            prm.requires_grad_(False)
        self._set_reference(constant, n_ref, train_system, info, e_ref)

    # ------------------------------------------------------------------
    @property
    def dim(self) -> int:
        if self.train_system is not None:
            return self.train_system.dim
        return int(self.network.dim)

    @property
    def name(self) -> str:
        from .optimizers import OPTIMIZERS

        spec = OPTIMIZERS.get(self.config.optimizer)
        return f"HGN ({spec.label if spec else self.config.optimizer})"

    def __repr__(self) -> str:
        return (f"TrainedHGN({self.network.encoding}, {self.config.optimizer}, {self.network.L} features, "
                f"separable={self.separable})")

    # -- conversion ----------------------------------------------------------
    def to_rf_model(self, fast_tables: bool | None = None):
        """The same function as a ``core.learning.rfhgn.FittedModel``: the
        trained weights with the input normalisation folded in (raw weights,
        identity buffers), theta and the constant. ``fast_tables`` (None: the
        config's, on by default): the pair tables are refined until they
        match the network to 1e-10 (a function too sharp for the knot limit,
        as gradient training can produce, is evaluated exactly)."""
        if fast_tables is None:
            fast_tables = self.config.fast_tables
        from ..hgn.network import HGN
        from ..rfhgn.model import FittedModel

        net = self.network
        raw = HGN.from_arrays(net.encoding, net.dim, net.to_arrays(), self.theta, dtype=net.dtype,
                              device=net.device, **net.options())
        info = dict(self.info)
        info["name"] = self.name
        config = self.config.rf_config().replace(fast_tables=bool(fast_tables), frame_rule=net.frame_rule)
        return FittedModel(config, raw, None, self.constant, self.n_ref, self.train_system, info, e_ref=self.e_ref)

    # -- files ------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the model (kind "baseline_model"); see the module notes."""
        import torch

        from core.container import save_npz

        net = self.network
        header = {
            "config": self.config.to_dict(),
            "encoding": net.encoding,
            "dim": int(self.dim),
            "widths": dict(net.widths),
            "linear_kinetic": bool(net.linear_kinetic),
            "pool_edges": bool(net.pool_edges),
            "cutoff_shift": bool(net.cutoff_shift),
            "frame_rule": net.frame_rule,
            "constant": self.constant,
            "n_ref": self.n_ref,
            "e_ref": self.e_ref,
            "info": plain_info(self.info),
        }
        arrays = {f"state.{k}": v.detach().to("cpu", torch.float64).numpy()
                  for k, v in net.state_dict().items()}
        arrays["constant"] = np.array([self.constant])
        if self.train_system is not None:
            header["train_system"] = self.train_system.to_header()
            for k, v in self.train_system.to_arrays().items():
                arrays[f"train_system.{k}"] = v
        return save_npz(path, FILE_KIND, header, arrays)

    @classmethod
    def load(cls, path, device=None) -> "TrainedHGN":
        """Open a baseline model file on ``device`` (None or "cpu": the CPU; "cuda"; float64).
        The header is checked against :data:`FILE_FIELDS` and every array's
        dtype, shape (against the header's widths) and finiteness before the
        network is built (:func:`check_model_file`, torch-free)."""
        import torch

        from core.container import load_npz
        from ..hgn import DEFAULT_FRAME_RULE
        from ..hgn.device import resolve_device
        from ..hgn.network import HGN

        dev = resolve_device(device)
        header, arrays = load_npz(path, FILE_KIND)
        name = Path(path).name
        config, train_system = check_model_file(header, arrays, name)
        encoding, widths = header["encoding"], header["widths"]
        try:
            network = HGN(encoding, header["dim"], widths,
                          linear_kinetic=header["linear_kinetic"], pool_edges=header["pool_edges"],
                          cutoff_shift=header["cutoff_shift"],
                          frame_rule=header.get("frame_rule", DEFAULT_FRAME_RULE), dtype=torch.float64)
        except HGNError as exc:
            raise HGNError(f"{name}: the stored network is invalid: {exc}") from None
        state = {k.split(".", 1)[1]: torch.from_numpy(np.array(v, dtype=np.float64))
                 for k, v in arrays.items() if k.startswith("state.")}
        try:
            network.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            why = " ".join(str(exc).split())
            raise HGNError(f"{name}: the stored weights do not fit the stored network ({why})") from None
        constant = float(np.asarray(arrays["constant"]).reshape(-1)[0])
        return cls(config, network.to(dev), constant, header["n_ref"], train_system, header.get("info") or {},
                   header.get("e_ref"))


def check_model_file(header: dict, arrays: dict, name: str):
    """``(config, train_system)`` of a baseline model file's header and
    arrays after checking the header against :data:`FILE_FIELDS`, the stored
    settings, the layer names, every array's dtype, shape (against the
    header's widths) and finiteness, and the training system; HGNError naming
    the file (``name``) and the field otherwise. Torch-free: the studio's
    window checks model files with it too."""
    from core.schema import Arr, check_arrays, check_fields
    from ..hgn import LAYERS
    from ..learned import stored_settings, train_system_of
    from .config import BaselineConfig

    check_fields(header, FILE_FIELDS, f"{name}: header")
    config = stored_settings(BaselineConfig, header["config"], name)
    encoding, widths = header["encoding"], header["widths"]
    unknown = sorted(set(widths) - set(LAYERS[encoding]))
    if unknown:
        raise HGNError(f"{name}: header field 'widths' names layer(s) {unknown} that the {encoding} encoding "
                       f"does not have ({', '.join(LAYERS[encoding])})")
    sizes = {f"w_{n}": widths.get(n, 0) for n in LAYERS[encoding]}
    specs = {"state.theta": Arr("float", ("L",)), "constant": Arr("float", (1,))}
    for n in LAYERS[encoding]:
        specs[f"state.{n}_W"] = Arr("float", (f"w_{n}", f"in_{n}"))
        specs[f"state.{n}_b"] = Arr("float", (f"w_{n}",))
        specs[f"state.{n}_mu"] = Arr("float", (f"in_{n}",), required=False)
        specs[f"state.{n}_s"] = Arr("float", (f"in_{n}",), required=False)
    check_arrays(arrays, specs, name, sizes)
    for key, value in arrays.items():
        if key.startswith("state.") and key.endswith("_s") and bool((np.asarray(value) <= 0).any()):
            raise HGNError(f"{name}: array '{key}' (input scales) must be > 0")
    return config, train_system_of(header, arrays, name)


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
