"""The fitting methods the Train panel offers, discovered from ``core``.

A :class:`Method` names a core module, its config dataclass and its fit
function. The method combo lists only the methods whose module exists, so a
method appears as soon as its core module lands (the gradient-trained
baselines in ``core.learning.baselines`` come later) without studio changes beyond
this table. The model settings form is generated from the config
dataclass's fields, so every default stays in core (one default per number).

Contract expected of a method's core module (what RF-HGN's offers):

* a dataclass config with ``to_dict()`` and ``from_dict(d)`` (HGNError on bad
  values) -- found by the attribute name given in :attr:`Method.config_name`,
  or the first dataclass named ``*Config`` in the module;
* ``fit(dataset, config, progress=None, cancel=None) -> model`` where the
  model has ``energy/gradients/time_derivatives(system, q, p)``,
  ``separable`` and an ``info`` dict (``fit_time``; baselines also a loss
  history under one of :data:`LOSS_KEYS`).
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any

from core.errors import HGNError

#: keys under which a gradient-trained model's info may hold its loss curve
LOSS_KEYS = ("loss_history", "loss_curve", "losses", "loss")


@dataclass(frozen=True)
class Method:
    key: str
    label: str
    module: str
    config_name: str | None = None
    fit_name: str = "fit"
    #: config fields the form does not show (set by the studio itself)
    hidden: tuple = ()
    #: short description for the tooltip of the combo entry
    tip: str = ""
    #: fields shown at once; the others go under "Advanced settings" (empty: all shown)
    basic: tuple = ()
    #: tooltips of config fields
    tips: tuple = ()

    def advanced(self) -> tuple:
        if not self.basic:
            return ()
        return tuple(f.name for f in self.fields() if f.name not in self.basic)

    def tip_of(self) -> dict:
        """Tooltips: the ``#:`` comments above the config's fields in core,
        overridden by this table's own ``tips``."""
        return {**field_docs(self.config_class()), **dict(self.tips)}

    # -- discovery ---------------------------------------------------------
    def available(self) -> bool:
        try:
            return importlib.util.find_spec(self.module) is not None
        except (ImportError, ValueError):
            return False

    def _mod(self):
        return importlib.import_module(self.module)

    def config_class(self) -> type:
        mod = self._mod()
        if self.config_name and hasattr(mod, self.config_name):
            return getattr(mod, self.config_name)
        for name in dir(mod):
            obj = getattr(mod, name)
            if name.endswith("Config") and dataclasses.is_dataclass(obj) and isinstance(obj, type):
                return obj
        raise HGNError(f"{self.module} has no config dataclass")

    # -- settings ----------------------------------------------------------
    def fields(self) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(self.config_class())
                if not f.name.startswith("_") and f.name not in self.hidden]

    def choices(self) -> dict[str, list]:
        """Choice lists of string fields, from the config module's constants
        named after the field (``encoding`` -> ENCODINGS, ``optimizer`` ->
        OPTIMIZERS), in the config's module or the method's module."""
        import sys

        cls = self.config_class()
        mods = [sys.modules.get(cls.__module__), self._mod()]
        out = {}
        for f in self.fields():
            key = f.name.upper() + ("ES" if f.name.endswith("s") else "S")
            for mod in mods:
                opts = getattr(mod, key, None) if mod is not None else None
                if isinstance(opts, dict):
                    opts = list(opts)
                if isinstance(opts, (list, tuple)) and opts and all(isinstance(o, str) for o in opts):
                    out[f.name] = list(opts)
                    break
        return out

    def default_settings(self) -> dict[str, Any]:
        """The config's own defaults (core's single source of truth)."""
        cfg = self.config_class()()
        d = cfg.to_dict() if hasattr(cfg, "to_dict") else dataclasses.asdict(cfg)
        return {k: v for k, v in d.items() if k not in self.hidden}

    def make_config(self, settings: dict[str, Any]):
        """Config from a settings dict; raises HGNError naming a bad field."""
        cls = self.config_class()
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in settings.items() if k in known}
        if hasattr(cls, "from_dict"):
            return cls.from_dict(d)
        try:
            return cls(**d)
        except TypeError as exc:
            raise HGNError(str(exc)) from None

    # -- fit ---------------------------------------------------------------
    def fit(self, dataset, config, progress=None, cancel=None):
        fn = getattr(self._mod(), self.fit_name)
        return fn(dataset, config, progress=progress, cancel=cancel)

    @property
    def gradient_trained(self) -> bool:
        return self.key != "rfhgn"


def field_docs(cls) -> dict[str, str]:
    """The ``#: ...`` comment lines written above each field of a dataclass
    (the convention of core's config classes), joined per field."""
    import inspect
    import re

    try:
        src = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    out, pending = {}, []
    for line in src.splitlines():
        s = line.strip()
        if s.startswith("#:"):
            pending.append(s[2:].strip())
            continue
        m = re.match(r"([A-Za-z_]\w*)\s*:", s)
        if m and pending:
            out[m.group(1)] = " ".join(pending)
        if not s.startswith("#"):
            pending = []
    return out


#: every method the studio knows, in combo order
METHODS: list[Method] = [
    Method("rfhgn", "RF-HGN (random features, one linear solve)", "core.learning.rfhgn", "RFConfig",
           tip="Random-feature Hamiltonian graph network: dense layers sampled (SWIM or ELM), "
               "output layer solved by least squares. Fits in well under a second.",
           basic=("encoding", "sampler", "node_width", "edge_width", "message_width", "regularisation", "seed"),
           tips=(("encoding", "invariant: pair distances and kinetic terms (separable, smooth); "
                              "frame: the paper's centre-of-mass frame (not separable)"),
                 ("sampler", "swim: weights from pairs of data points; elm: random Gaussian weights; "
                             "adaptive: SWIM, fit, resample where the fit changes most, refit"),
                 ("node_width", "width of the node (kinetic) encoder"),
                 ("edge_width", "width of the edge (pair distance) encoder"),
                 ("message_width", "width of the message layer"),
                 ("static_width", "width of the static (mass) encoder; 0 = masses do not enter messages"),
                 ("regularisation", "ridge parameter lambda of the linear solve (relative)"),
                 ("seed", "random seed of the sampled layers"),
                 ("linear_kinetic", "add the raw kinetic energy as one more feature"),
                 ("fast_tables", "evaluate separable models through 1-D tables (faster roll-outs)"))),
    Method("baseline", "Gradient-trained HGN (torch optimizer)", "core.learning.baselines", None,
           tip="The same network with every layer trained by a torch optimizer; slower, "
               "shows a loss curve.",
           basic=("optimizer", "learning_rate", "max_epochs", "time_budget", "batch_size", "encoding",
                  "node_width", "edge_width", "message_width", "seed")),
]


def available_methods() -> list[Method]:
    """The methods whose core module is importable now."""
    return [m for m in METHODS if m.available()]


def method_by_key(key: str) -> Method:
    for m in METHODS:
        if m.key == key:
            return m
    raise HGNError(f"unknown method {key!r}")


def loss_curve(model) -> list[float] | None:
    """The loss history of a gradient-trained model, or None."""
    info = getattr(model, "info", None) or {}
    for k in LOSS_KEYS:
        v = info.get(k)
        if v is not None and hasattr(v, "__len__") and len(v) > 1:
            return [float(x) for x in v]
    return None
