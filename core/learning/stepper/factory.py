"""The choice of stepper for a model (:func:`make_stepper`, see the package
notes)."""
from __future__ import annotations

import torch

from core.errors import HGNError
from core.learning.stepper.base import Stepper, resolve_device, resolve_precision
from core.learning.stepper.model_stepper import ModelStepper
from core.learning.stepper.network_stepper import NetworkStepper
from core.learning.stepper.table_stepper import TableStepper
from core.physics.forces import DEFAULT_SKIN
from core.physics.system import System


def _network_model(model) -> bool:
    """A learned model holding an HGN (a NetworkHamiltonian or the like)."""
    from core.learning.hgn.network import HGN

    return isinstance(getattr(model, "network", None), HGN) and callable(getattr(model, "_const", None))


def _invariant_network(model) -> bool:
    """A learned model holding a separable (invariant) HGN: the table stepper's."""
    return _network_model(model) and model.network.encoding == "invariant"


def make_stepper(model, system: System, device="cpu", dtype=torch.float64, *, skin: float = DEFAULT_SKIN,
                 scatter: str = "auto", exact: bool | None = None) -> Stepper:
    """The stepper for ``model`` on ``system`` (see the package notes).

    ``dtype`` torch.float64 or torch.float32 (or "float64"/"float32"); float32
    only for separable invariant networks (HGNError otherwise). ``exact``:
    evaluate the network exactly instead of from tables (default: the model's
    ``config.fast_tables`` negated, False without a config)."""
    if not isinstance(system, System):
        raise HGNError(f"a stepper needs a System to supply the graph, got {type(system).__name__}")
    dev = resolve_device(device)
    dtype = resolve_precision(dtype if isinstance(dtype, (str, torch.dtype)) else str(dtype))
    if _invariant_network(model):
        if exact is None:
            cfg = getattr(model, "config", None)
            exact = not bool(getattr(cfg, "fast_tables", True))
        return TableStepper(model, system, dev, dtype, skin, scatter, exact)
    if dtype != torch.float64:
        raise HGNError("float32 roll-outs are measured and allowed only for separable (invariant) RF-HGN models; "
                       f"this is {type(model).__name__}: use precision float64")
    if _network_model(model) and system.edges is not None:
        return NetworkStepper(model, system, dev, dtype)
    return ModelStepper(model, system, dev, dtype, skin)
