"""Non-separable networks (the frame encoding) on fixed graphs ->
:class:`NetworkStepper`: the graph (S = 1) is built once on the device and
``HGN.gradients`` / ``HGN.forward`` are called on the tensors directly (no
numpy round trip and no graph build per evaluation; the same arithmetic as
the model's numpy methods, so the same numbers bit for bit).
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from core.learning.stepper.base import Stepper
from core.physics.system import System


class NetworkStepper(Stepper):
    """A network model (``model.network`` an HGN, ``model._const``) on a fixed
    graph, evaluated on tensors: the graph (S = 1) lives on the device from
    the start, ``HGN.gradients`` and ``HGN.forward`` are called directly (the
    frame encoding's roll-outs: no numpy round trip, no graph build per
    evaluation; the same arithmetic as the model's numpy methods)."""

    kind = "network"

    def __init__(self, model, system: System, device="cpu", dtype=torch.float64):
        super().__init__(system, device, dtype)
        from core.learning.hgn.graph import Graph

        net = model.network
        if net.device != self.device or net.dtype != dtype:
            net = copy.deepcopy(net).to(device=self.device, dtype=dtype)  # the model's own network stays put
        self.network = net
        self.separable = bool(net.separable)
        masses = torch.as_tensor(system.masses, dtype=dtype, device=self.device)
        box = None if system.box is None else torch.as_tensor(system.box, dtype=dtype, device=self.device)
        e = np.asarray(system.edges, dtype=np.int64).reshape(-1, 2)
        self.graph = Graph.fixed(e, 1, system.n, system.dim, masses, box, system.edge_scale, system.cutoff)
        self.const = float(model._const(system))
        self._q0 = None

    def both(self, q, p):
        self.n_evaluations += 1
        _, gq, gp = self.network.gradients(self.graph, q[None], p[None], energy=False)
        return gq[0], gp[0]

    def _out(self, x, out):
        return x if out is None else out.copy_(x)

    def potential(self, q, out=None):
        return self._out(self.both(q, torch.zeros_like(q))[0], out)

    def kinetic(self, p, q=None, out=None):
        if q is None:
            if self._q0 is None:
                self._q0 = self.tensor(self.system.positions)
            q = self._q0
        return self._out(self.both(q, p)[1], out)

    def energy(self, q, p) -> float:
        q, p = self.tensor(q), self.tensor(p)
        with torch.no_grad():
            e = self.network(self.graph, q[None], p[None])
        return float(e.reshape(-1)[0]) + self.const
