"""Random-feature Hamiltonian graph networks (RF-HGN): the network, the
sampling of its hidden layers, and the linear-solve fit (docs/method.md sections 2-5).

Public API::

    from core.learning.rfhgn import RFConfig, fit, fit_time_series, FittedModel, TrueHamiltonian

    model = fit(dataset, RFConfig(), progress=None, cancel=None)
    model.energy(system, q, p); model.gradients(system, q, p)
    model.save(path); FittedModel.load(path)

Modules: ``config`` (RFConfig), ``sampling`` (SWIM, ELM, adaptive),
``fitting`` (normal equations on the fit's device, solve, time series),
``model`` (FittedModel, save/load, fast tables), ``truth`` (TrueHamiltonian).
The network itself, its graphs and the frame encoding are
:mod:`core.learning.hgn` (torch, one definition shared with the baselines).
"""
from .config import RFConfig
from .truth import TrueHamiltonian

__all__ = ["RFConfig", "TrueHamiltonian", "fit", "fit_time_series", "FittedModel"]


def __getattr__(name):  # lazy: keeps ``import core.learning.rfhgn`` cheap
    if name in ("fit", "fit_time_series"):
        from . import fitting
        return getattr(fitting, name)
    if name == "FittedModel":
        from .model import FittedModel
        return FittedModel
    raise AttributeError(f"module 'core.learning.rfhgn' has no attribute {name!r}")
