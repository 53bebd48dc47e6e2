"""Anything else (cutoff systems of frame models,
:class:`core.learning.rfhgn.TrueHamiltonian`, hand-made models) ->
:class:`ModelStepper`: the model's own numpy methods
(``potential_gradient``/``kinetic_gradient`` when it has them, else
``gradients``) on float64 copies, with the neighbour list's candidate pairs
for cutoff systems (keyword ``pairs=``, for models that accept it). On the
CPU in float64 the tensors share memory with numpy arrays (no copies).
"""
from __future__ import annotations

import inspect

import numpy as np
import torch

from core.errors import HGNError
from core.learning.stepper.base import Stepper
from core.physics.forces import DEFAULT_SKIN
from core.physics.neighbours import NeighbourList
from core.physics.system import System


def _accepts(fn, name: str) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    return name in sig.parameters or any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())


class ModelStepper(Stepper):
    """Any model through its own numpy methods (see the module notes); counts
    the gradient evaluations in ``n_evaluations``."""

    kind = "model"

    def __init__(self, model, system: System, device="cpu", dtype=torch.float64, skin: float = DEFAULT_SKIN):
        super().__init__(system, device, dtype)
        for attr in ("gradients", "energy"):
            if not callable(getattr(model, attr, None)):
                raise HGNError(f"cannot roll out {type(model).__name__}: it has no {attr}() method "
                               "(expected a fitted model)")
        self.model = model
        self.separable = bool(getattr(model, "separable", False))
        self.nlist = NeighbourList(system.cutoff, skin, system.box) if system.cutoff is not None else None
        pg = getattr(model, "potential_gradient", None)
        kg = getattr(model, "kinetic_gradient", None)
        self._pg = pg if callable(pg) else None
        self._kg = kg if callable(kg) else None
        self._pg_pairs = self._pg is not None and _accepts(self._pg, "pairs")
        self._g_pairs = _accepts(model.gradients, "pairs")
        self._e_pairs = _accepts(model.energy, "pairs")

    def _np(self, x) -> np.ndarray:
        if isinstance(x, torch.Tensor):
            if x.device.type == "cpu" and x.dtype == torch.float64:
                return x.numpy()
            return x.detach().cpu().to(torch.float64).numpy()
        return np.asarray(x, dtype=np.float64)

    def _out(self, x, out: torch.Tensor | None = None) -> torch.Tensor:
        x = torch.from_numpy(np.array(x, dtype=np.float64))  # a copy: never a view of the model's own arrays
        if out is not None:
            return out.copy_(x)
        return x.to(device=self.device, dtype=self.dtype)

    def _pairs_kw(self, q: np.ndarray, accepts: bool) -> dict:
        if self.nlist is None or not accepts:
            return {}
        return {"pairs": self.nlist.pairs(q)}

    def potential(self, q, out=None):
        self.n_evaluations += 1
        q = self._np(q)
        if self._pg is not None:
            return self._out(self._pg(self.system, q, **self._pairs_kw(q, self._pg_pairs)), out)
        return self._out(self.model.gradients(self.system, q, np.zeros_like(q),
                                              **self._pairs_kw(q, self._g_pairs))[0], out)

    def kinetic(self, p, q=None, out=None):
        self.n_evaluations += 1
        p = self._np(p)
        if self._kg is not None:
            return self._out(self._kg(self.system, p), out)
        q = self.system.positions if q is None else self._np(q)
        return self._out(self.model.gradients(self.system, q, p, **self._pairs_kw(q, self._g_pairs))[1], out)

    def both(self, q, p):
        self.n_evaluations += 1
        q, p = self._np(q), self._np(p)
        gq, gp = self.model.gradients(self.system, q, p, **self._pairs_kw(q, self._g_pairs))
        return self._out(gq), self._out(gp)

    def energy(self, q, p) -> float:
        q, p = self._np(q), self._np(p)
        e = self.model.energy(self.system, q, p, **self._pairs_kw(q, self._e_pairs))
        return float(np.asarray(e).reshape(-1)[0])


