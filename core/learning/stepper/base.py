"""The base class of the steppers (:class:`Stepper`: one system, one
device, one dtype) and the device and precision names they accept."""
from __future__ import annotations

import torch

from core.errors import HGNError
from core.physics.neighbours import NeighbourList
from core.physics.system import System

PRECISIONS = {"float64": torch.float64, "float32": torch.float32}
#: measured bound on the float32 - float64 position difference of a roll-out of 1000 steps (see the package notes)
FLOAT32_BOUND = 1e-3


def resolve_precision(precision) -> torch.dtype:
    """"float64"/"float32" (or a torch dtype) -> torch dtype; HGNError otherwise."""
    if isinstance(precision, torch.dtype) and precision in PRECISIONS.values():
        return precision
    if precision not in PRECISIONS:
        raise HGNError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return PRECISIONS[precision]


def resolve_device(device) -> torch.device:
    """"cpu", "cuda", "cuda:N" or a torch.device; HGNError when CUDA is asked
    for and absent (the one rule, :func:`core.learning.hgn.device.resolve_device`)."""
    from core.learning.hgn.device import resolve_device as hgn_resolve

    return hgn_resolve(device)


class Stepper:
    """A model on one system, one device, one dtype (see the package notes)."""

    separable = False
    kind = "?"

    def __init__(self, system: System, device, dtype):
        self.system = system
        self.device = torch.device(device)
        self.dtype = dtype
        self.n_evaluations = 0
        self.nlist: NeighbourList | None = None

    def tensor(self, x) -> torch.Tensor:
        """x as a (N, d) tensor on the stepper's device and dtype (no copy when it already is one)."""
        return torch.as_tensor(x, device=self.device).to(self.dtype)

    def prepare(self, q: torch.Tensor, p: torch.Tensor) -> None:
        """Build what the first evaluation would (tables that depend on the
        state, workspaces, scratch), so that timing starts at the steady state;
        evaluation counts are unchanged."""

    def scratch(self, like: torch.Tensor) -> torch.Tensor:
        """A reusable tensor of the shape and layout of ``like`` (for the integrator's temporaries)."""
        buf = getattr(self, "_scratch", None)
        if buf is None or buf.shape != like.shape or buf.stride() != like.stride():
            buf = self._scratch = torch.empty_like(like)
        return buf

    def potential(self, q: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def kinetic(self, p: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def both(self, q: torch.Tensor, p: torch.Tensor):
        raise NotImplementedError

    def energy(self, q, p) -> float:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"stepper": self.kind, "device": str(self.device), "precision": str(self.dtype).replace("torch.", "")}

