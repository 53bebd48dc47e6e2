"""Every tunable of a gradient-trained baseline, with one default each.

:class:`BaselineConfig` holds the network (the same settings and defaults as
:class:`core.learning.rfhgn.RFConfig`: encoding, widths, pooling, seed), how it is
initialised, and how it is trained (optimizer, learning rate, minibatch
size, time budget, epochs, early stopping). The studio builds its form from
these fields; ``to_dict``/``from_dict`` round-trip it; bad values raise
:class:`~core.errors.HGNError` naming the setting.

Initialisation (``init``):

* ``"torch"`` (default): PyTorch's standard ``nn.Linear`` initialisation,
  every weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), applied to
  inputs that are first standardised with the training data's mean and
  spread (folded into the first layer's weights, so the network is still
  exactly the RF-HGN architecture on raw inputs). This is what a user of a
  deep-learning library gets.
* ``"swim"`` / ``"elm"``: the hidden layers start from the same sampling an
  RF-HGN fit uses (:mod:`core.learning.rfhgn.sampling`, same seed), then train.

Arithmetic and device: ``dtype`` float32 (default) or float64 for training
(the trained model is widened exactly to float64 for evaluation and files);
``device`` "cpu" (default) or "cuda" (``cuda:N``): where the network, the
graphs and the snapshots live while training. Asking for CUDA on a machine
without it raises :class:`~core.errors.HGNError` when training starts
(:func:`core.learning.hgn.device.resolve_device`), so a config written on a
GPU machine still opens elsewhere.

Evaluation and roll-outs (``fast_tables``, on by default as for an RF-HGN):
separable models read their pair and kinetic functions from the checked cubic
tables of :mod:`core.learning.stepper` (within 1e-10 of max |f'| of the exact
network at the cell midpoints; ranges from the training data, never from a
state, so a roll-out cut into chunks equals one run). Measured on baselines
trained with the default settings (benchmarks/results/tables.md): the tables
pass for Adam, L-BFGS and SGD from the torch initialisation (4096 knots) and
are refused for the pair function of a SWIM-initialised Adam model (the exact
network is used then); roll-outs with and without tables differ by ~1e-12
after 1000 steps against 0.1-0.8 of model error, and a step on a 12^3
lattice is ~10x faster with them. Off: the exact network.

In every case the output layer theta starts from the torch default
U(-1/sqrt(L), 1/sqrt(L)) (never from a least-squares solve) and the constant
c is set after training from one known energy, as in the RF fit.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from core import validate
from core.errors import HGNError
from core.settings import SettingsMixin, setting
from ..rfhgn.config import ENCODINGS as RF_ENCODINGS
from ..rfhgn.config import MAX_WIDTH, RFConfig
from ..hgn.device import DEVICES
from .optimizers import OPTIMIZERS, get_spec

#: choice lists of the string settings (also in each field's metadata)
INITS = ("torch", "swim", "elm")
DTYPES = ("float32", "float64")
ENCODINGS = RF_ENCODINGS


def _rf_setting(name):
    """A setting of the network with RFConfig's default, help text and choices."""
    f = next(f for f in dataclasses.fields(RFConfig) if f.name == name)
    return setting(f.default, f.metadata["help"], f.metadata.get("choices"))


@dataclass
class BaselineConfig(SettingsMixin):
    """Settings of a gradient-trained Hamiltonian graph network."""

    label = "baseline setting"  # names one setting in error messages (SettingsMixin)

    optimizer: str = setting("adam", "torch.optim method (core.learning.baselines.optimizers.OPTIMIZERS)",
                             tuple(OPTIMIZERS))
    learning_rate: float = setting(0.0, "Learning rate; 0 = the optimizer's default (tuned on the benchmark task)")
    port_learning_rate: float = setting(0.0, "Learning rate of the damping and forcing of a port baseline "
                                             "(core.learning.baselines.port); 0 = 10x the network's")
    batch_size: int = setting(32, "Snapshots per minibatch (the full-batch methods, Rprop and LBFGS, use all)")
    time_budget: float = setting(30.0, "Stop after this many seconds of training (0 = no time limit)")
    max_epochs: int = setting(100000, "Stop after this many epochs (passes over the training snapshots)")
    validation_fraction: float = setting(0.1, "Share of the training snapshots held out to decide early stopping")
    patience: int = setting(200, "Stop when the validation loss has not improved for this many epochs "
                                 "(0 = never)")
    min_delta: float = setting(1e-4, "An improvement must lower the best validation loss by this relative amount")
    restore_best: bool = setting(True, "Put back the weights with the best validation loss at the end")
    init: str = setting("torch", "Initial hidden weights: torch (standard initialisation), swim or elm "
                                 "(sampled as in an RF-HGN fit)", INITS)
    dtype: str = setting("float32", "Arithmetic of training (the trained model is always evaluated in float64)",
                         DTYPES)
    device: str = setting("cpu", "Where training runs: cpu, or cuda (an NVIDIA GPU; cuda:N picks one)", DEVICES)
    threads: int = setting(1, "torch threads while training. One by default: on the 2-core reference machine "
                              "2 threads gave no more epochs when idle (102-124 against 121-132 in 8 s, Adam, "
                              "3x3x3) and about 60x fewer under outside load (16 against 991 in 120 s)")
    seed: int = setting(0, "Seed of the initial weights, the validation split and the minibatch order")
    # -- the network: the same settings, defaults and help as core.learning.rfhgn.RFConfig ------
    encoding: str = _rf_setting("encoding")
    node_width: int = _rf_setting("node_width")
    static_width: int = _rf_setting("static_width")
    edge_width: int = _rf_setting("edge_width")
    message_width: int = _rf_setting("message_width")
    linear_kinetic: bool = _rf_setting("linear_kinetic")
    pool_edges: bool = _rf_setting("pool_edges")
    cutoff_shift: bool = _rf_setting("cutoff_shift")
    # -- roll-outs ---------------------------------------------------------------------------------
    fast_tables: bool = setting(
        True, """Evaluate separable invariant models through 1-D tables of the per-pair and kinetic functions,
        checked against the exact network when built (faster roll-outs); a function too sharp to tabulate
        is evaluated exactly""")

    def __post_init__(self):
        self.validate()

    # ------------------------------------------------------------------
    def validate(self) -> None:
        def label(name):
            return f"baseline setting {name}"

        def number(name, lo, strict=False, hi=None):
            setattr(self, name, validate.number(label(name), getattr(self, name), lo, hi, above=strict,
                                                below=hi is not None))

        def integer(name, lo, hi=None):
            setattr(self, name, validate.whole(label(name), getattr(self, name), lo, hi))

        def flag(name):
            validate.flag(label(name), getattr(self, name))

        def choice(name, options):
            v = getattr(self, name)
            if not isinstance(v, str) or v not in options:
                raise HGNError(f"baseline setting {name}={v!r} is not one of {', '.join(options)}")

        if not isinstance(self.optimizer, str):
            raise HGNError(f"baseline setting optimizer must be a name, got {self.optimizer!r}")
        self.optimizer = get_spec(self.optimizer).key
        number("learning_rate", 0.0)
        number("port_learning_rate", 0.0)
        integer("batch_size", 1)
        number("time_budget", 0.0)
        integer("max_epochs", 1)
        number("validation_fraction", 0.0, hi=1.0)
        integer("patience", 0)
        number("min_delta", 0.0)
        flag("restore_best")
        choice("init", INITS)
        choice("dtype", DTYPES)
        dev = self.device
        if not isinstance(dev, str) or not (dev in DEVICES or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise HGNError(f"baseline setting device={dev!r} is not one of {', '.join(DEVICES)} (or cuda:N)")
        integer("threads", 1, validate.MAX_THREADS)
        integer("seed", 0)
        choice("encoding", ENCODINGS)
        integer("node_width", 1, MAX_WIDTH)
        integer("static_width", 0, MAX_WIDTH)
        integer("edge_width", 1, MAX_WIDTH)
        integer("message_width", 1, MAX_WIDTH)
        flag("linear_kinetic")
        flag("pool_edges")
        flag("cutoff_shift")
        flag("fast_tables")
        if self.encoding == "frame" and self.static_width:
            raise HGNError("baseline setting static_width applies to the invariant encoding only; set it to 0")

    @property
    def lr(self) -> float:
        """The learning rate in use (the optimizer's default when 0)."""
        return self.learning_rate if self.learning_rate > 0 else OPTIMIZERS[self.optimizer].lr

    def widths(self) -> dict[str, int]:
        """Hidden widths per layer of the network (HGN's layer names)."""
        if self.encoding == "invariant":
            return {"kin": self.node_width, "static": self.static_width, "edge": self.edge_width,
                    "msg": self.message_width}
        return {"node": self.node_width, "edge": self.edge_width, "msg": self.message_width}

    def rf_config(self, sampler: str = "swim"):
        """The RFConfig of the same network (for sampling the initial layers
        and for converting a trained model into an RF-HGN FittedModel)."""
        return RFConfig(encoding=self.encoding, sampler=sampler, node_width=self.node_width,
                        static_width=self.static_width, edge_width=self.edge_width,
                        message_width=self.message_width, linear_kinetic=self.linear_kinetic,
                        pool_edges=self.pool_edges, cutoff_shift=self.cutoff_shift, seed=self.seed)

    @classmethod
    def from_rf(cls, rf, **changes) -> "BaselineConfig":
        """The baseline of the same network as an RFConfig, with ``changes``."""
        d = {k: getattr(rf, k) for k in ("encoding", "node_width", "static_width", "edge_width",
                                         "message_width", "linear_kinetic", "pool_edges", "cutoff_shift", "seed")}
        d.update(changes)
        return cls(**d)

    # ------------------------------------------------------------------

