"""The fitting methods the Train panel offers: a plain registry.

A :class:`Method` holds its config dataclass from ``core`` and its fit
function. The model settings form is generated from the config's fields,
with their defaults, help texts (tooltips) and choices (combo boxes) taken
from the fields' metadata in core (:func:`core.settings.setting`), so every
default and every description lives in core, once.

Both methods' core modules always exist and are imported directly. Importing
this module stays light (the GUI process imports it): the fit modules are
imported inside :func:`fit_rfhgn` and :func:`fit_baseline`, in the process
that trains, so the GUI never imports torch (the baselines' training does).

Contract of a method:

* ``config``: a dataclass with ``to_dict()``, ``from_dict(d)`` (HGNError on
  bad values), ``help_texts()`` and ``choice_lists()``
  (:class:`core.settings.SettingsMixin`);
* ``fit_fn(dataset, config, progress=None, cancel=None) -> model``, a
  module-level function (so a method can be sent to a worker process), whose
  model has ``energy/gradients/time_derivatives(system, q, p)``,
  ``separable`` and an ``info`` dict (``fit_time``; gradient-trained models
  also a loss history under one of :data:`LOSS_KEYS`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from core.errors import HGNError
from core.learning.baselines.config import BaselineConfig
from core.learning.rfhgn.config import RFConfig

#: keys under which a gradient-trained model's info may hold its loss curve
LOSS_KEYS = ("loss_history", "loss_curve", "losses", "loss")


def fit_rfhgn(dataset, config, progress=None, cancel=None):
    """Fit an RF-HGN (the fitting module, with SciPy's solvers, is imported when called). Data of a damped
    or driven system (``system.port``): the damping and forcing are identified in the same solve
    (core.learning.rfhgn.port.fit_port with the terms of the data's own port, as the CLI's ``train`` does;
    docs/port_hamiltonian.md)."""
    from core.physics.port import port_of

    if port_of(dataset.system) is not None:
        from core.learning.rfhgn.port import PortSpec, fit_port

        return fit_port(dataset, config, PortSpec.from_system(dataset.system), progress=progress, cancel=cancel)
    from core.learning.rfhgn.fitting import fit

    return fit(dataset, config, progress=progress, cancel=cancel)


def identified_port_of(model):
    """The damping and forcing a model identified (its ``info["port"]``, core.learning.rfhgn.port), or None."""
    info = getattr(model, "info", None)
    ident = info.get("port") if isinstance(info, dict) else None
    return ident if isinstance(ident, dict) else None


def fit_baseline(dataset, config, progress=None, cancel=None):
    """Train a gradient-trained HGN (imports torch, only when called). Data of a damped or driven system:
    the damping and forcing are learned beside the network (core.learning.baselines.port.fit_port_baseline
    with the terms of the data's own port)."""
    from core.physics.port import port_of

    if port_of(dataset.system) is not None:
        from core.learning.baselines.port import fit_port_baseline
        from core.learning.rfhgn.port import PortSpec

        return fit_port_baseline(dataset, config, PortSpec.from_system(dataset.system), progress=progress,
                                 cancel=cancel)
    from core.learning.baselines.training import fit

    return fit(dataset, config, progress=progress, cancel=cancel)


@dataclass(frozen=True)
class Method:
    key: str
    label: str
    #: the config dataclass (core)
    config: type
    #: ``fit_fn(dataset, config, progress=None, cancel=None) -> model``
    fit_fn: Callable
    #: config fields the form does not show (set by the studio itself)
    hidden: tuple = ()
    #: short description for the tooltip of the combo entry
    tip: str = ""
    #: fields shown at once; the others go under "Advanced settings" (empty: all shown)
    basic: tuple = ()
    #: trained by gradient descent (has a loss curve)
    gradient_trained: bool = False

    def config_class(self) -> type:
        return self.config

    def fields(self) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(self.config)
                if not f.name.startswith("_") and f.name not in self.hidden]

    def advanced(self) -> tuple:
        if not self.basic:
            return ()
        return tuple(f.name for f in self.fields() if f.name not in self.basic)

    def tip_of(self) -> dict[str, str]:
        """Tooltips of the settings: their help texts in core."""
        return self.config.help_texts()

    def choices(self) -> dict[str, list]:
        """Choice lists of the settings that have a fixed set of values (from core)."""
        return self.config.choice_lists()

    def default_settings(self) -> dict[str, Any]:
        """The config's own defaults (core's single source of truth)."""
        return {k: v for k, v in self.config().to_dict().items() if k not in self.hidden}

    def make_config(self, settings: dict[str, Any]):
        """Config from a settings dict (names the config does not know are
        ignored); raises HGNError naming a bad field."""
        known = {f.name for f in dataclasses.fields(self.config)}
        return self.config.from_dict({k: v for k, v in settings.items() if k in known})

    def fit(self, dataset, config, progress=None, cancel=None):
        return self.fit_fn(dataset, config, progress=progress, cancel=cancel)


#: every method the studio offers, in combo order
METHODS: list[Method] = [
    Method("rfhgn", "RF-HGN (random features, one linear solve)", RFConfig, fit_rfhgn,
           tip="Random-feature Hamiltonian graph network: dense layers sampled (SWIM or ELM), "
               "output layer solved by least squares. Fits in well under a second.",
           basic=("encoding", "sampler", "node_width", "edge_width", "message_width", "regularisation", "seed")),
    Method("baseline", "Gradient-trained HGN (torch optimizer)", BaselineConfig, fit_baseline,
           tip="The same network with every layer trained by a torch optimizer; slower, "
               "shows a loss curve.",
           basic=("optimizer", "learning_rate", "max_epochs", "time_budget", "batch_size", "encoding",
                  "node_width", "edge_width", "message_width", "seed"),
           gradient_trained=True),
]


def available_methods() -> list[Method]:
    """The methods the Train panel offers (all of :data:`METHODS`)."""
    return list(METHODS)


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
