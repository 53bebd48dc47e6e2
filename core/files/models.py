"""Fitted-model files in the registry of file kinds (:mod:`core.files.kinds`).

The model classes live in :mod:`core.learning` and write their own containers
(``save``/``load``). ``core.files`` sits above ``core.learning``, so the
learning layer never imports this package: the model kinds are registered
here, and each loader imports its learning module only when a model is read
(the baselines import torch).

* ``model``: an RF-HGN :class:`~core.learning.rfhgn.model.FittedModel`
* ``baseline_model``: a gradient-trained HGN :class:`~core.learning.baselines.model.TrainedHGN`
* ``rf_hnn_model``: a random-feature HNN :class:`~core.learning.baselines.rf_hnn.RFHNNModel`

Projects embed models of these kinds (:mod:`core.files.project`).
"""
from __future__ import annotations

from . import kinds


def load_rfhgn(path):
    """An RF-HGN model file (kind ``model``)."""
    from core.learning.rfhgn.model import FittedModel

    return FittedModel.load(path)


def load_baseline(path):
    """A gradient-trained baseline file (kind ``baseline_model``); imports torch."""
    from core.learning.baselines.model import TrainedHGN

    return TrainedHGN.load(path)


def load_rf_hnn(path):
    """An RF-HNN file (kind ``rf_hnn_model``)."""
    from core.learning.baselines.rf_hnn import RFHNNModel

    return RFHNNModel.load(path)


kinds.register(kinds.FileKind("model", load_rfhgn, "a fitted model", model=True))
kinds.register(kinds.FileKind("baseline_model", load_baseline, "a fitted baseline model", model=True))
kinds.register(kinds.FileKind("rf_hnn_model", load_rf_hnn, "a fitted RF-HNN model", model=True))

__all__ = ["load_rfhgn", "load_baseline", "load_rf_hnn"]
