"""Gradient-trained baselines (docs/method.md section 7): the RF-HGN network with
every layer trainable, trained by any of 15 torch optimizers on the same loss
and snapshots, so that RF-HGN's speed and accuracy can be checked against
gradient descent on one machine in one run.

Public API::

    from core.learning.baselines import BaselineConfig, fit, TrainedHGN, OPTIMIZERS, load_model

    model = fit(dataset, BaselineConfig(optimizer="lbfgs", time_budget=30),
                progress=None, cancel=None, monitor=None)
    model.info["loss_history"], model.info["fit_time"]
    model.energy(system, q, p); model.gradients(system, q, p)   # like core.learning.rfhgn.FittedModel
    model.save(path); TrainedHGN.load(path); load_model(path)  # either kind of model file

    from core.learning.baselines.rf_hnn import RFHNNConfig, fit_hnn     # plain (non-graph) RF-HNN

The network is :class:`core.learning.hgn.network.HGN`, the one definition
of the HGN that RF-HGN samples and solves; here every layer is trained.

Modules: ``config`` (BaselineConfig, every default), ``optimizers`` (the
registry of the 15 methods and their default learning rates), ``training``
(fit: the loop with minibatches, LBFGS closure, time budget, early stopping,
progress and cancel, on the CPU or a CUDA GPU, in float32 or float64),
``model`` (TrainedHGN: evaluation through
:class:`core.learning.learned.NetworkHamiltonian` like an RF-HGN, save/load,
conversion to an RF-HGN FittedModel), ``rf_hnn`` (random-feature HNN on the
flattened state, the paper's non-graph comparison; numpy), ``port``
(``fit_port_baseline``: the same network with learnable damping and forcing,
issue 13's baseline; docs/port_hamiltonian.md section 8) and ``port_terms``
(its torch module of the learnable terms).

torch is imported only when a baseline is trained or evaluated.
"""
from .config import BaselineConfig
from .optimizers import OPTIMIZERS, optimizer_keys

__all__ = ["BaselineConfig", "OPTIMIZERS", "optimizer_keys", "fit", "TrainedHGN", "load_model"]


def __getattr__(name):  # lazy: keeps ``import core.learning.baselines`` free of torch
    if name == "fit":
        from .training import fit
        return fit
    if name in ("TrainedHGN", "load_model"):
        from . import model
        return getattr(model, name)
    raise AttributeError(f"module 'core.learning.baselines' has no attribute {name!r}")
