"""The learnable port terms of a port baseline (:mod:`core.learning.baselines.port`): damping kept >= 0 by a
softplus, forcing amplitudes on cos/sin columns of given frequencies, a constant field; torch module built
by :func:`make_terms` (used by :mod:`.training`)."""
from __future__ import annotations

import math

import numpy as np

#: the damping every learnable gamma starts from (softplus(g) = GAMMA_START)
GAMMA_START = 0.01


def make_terms(spec, system, device, dtype):
    """The torch module of the learnable port terms of ``spec`` on ``system`` (see the module notes)."""
    import torch

    class PortTerms(torch.nn.Module):
        """Learnable damping (softplus), forcing amplitudes and field; ``force(dqdt, t)`` -> (S, N, d)."""

        def __init__(self):
            super().__init__()
            n, d = system.n, system.dim
            self.spec, self.n, self.d = spec, n, d
            kw = dict(dtype=torch.float64, device=device)
            if spec.damping != "none":
                size = 1 if spec.damping == "uniform" else n
                g0 = math.log(math.expm1(GAMMA_START))
                self.gamma_raw = torch.nn.Parameter(torch.full((size,), g0, **kw))
            if spec.frequencies:
                self.forcing = torch.nn.Parameter(torch.zeros((len(spec.frequencies), 2, len(spec.nodes), d), **kw))
                self.register_buffer("omega", torch.as_tensor(spec.frequencies, **kw))
                self.register_buffer("nodes", torch.as_tensor(spec.nodes, dtype=torch.int64, device=device))
            if spec.field:
                self.field = torch.nn.Parameter(torch.zeros(d, **kw))
            self.register_buffer("masses", torch.as_tensor(system.masses, **kw))
            self.to(dtype)

        def gamma(self):
            return torch.nn.functional.softplus(self.gamma_raw)

        def force(self, dqdt, t):
            """-gamma dq/dt + F(t) + m g for velocities (S, N, d) at times (S,) (None without forcing)."""
            out = torch.zeros_like(dqdt)
            if self.spec.damping != "none":
                out = out - self.gamma().view(1, -1, 1) * dqdt
            if self.spec.frequencies:
                wt = t[:, None] * self.omega[None, :]  # (S, nf)
                basis = torch.stack([torch.cos(wt), torch.sin(wt)], dim=-1)  # (S, nf, 2)
                fn = torch.einsum("sfk,fkmd->smd", basis, self.forcing)
                out = out.index_add(1, self.nodes, fn)
            if self.spec.field:
                out = out + self.masses.view(1, -1, 1) * self.field.view(1, 1, -1)
            return out

        def coefficients(self) -> np.ndarray:
            """The coefficient vector in the layout of ``fit_port`` (gamma, then per frequency the cos and the
            sin amplitudes (nodes, axes), then the field), float64."""
            parts = []
            with torch.no_grad():
                if self.spec.damping != "none":
                    parts.append(self.gamma().double().cpu().numpy().reshape(-1))
                if self.spec.frequencies:
                    f = self.forcing.double().cpu().numpy()
                    for k in range(f.shape[0]):
                        parts += [f[k, 0].reshape(-1), f[k, 1].reshape(-1)]
                if self.spec.field:
                    parts.append(self.field.double().cpu().numpy())
            return np.concatenate(parts) if parts else np.zeros(0)

    return PortTerms()


def snapshot_times(dataset, spec, indices) -> np.ndarray | None:
    """The times of the snapshots ``indices`` (the dataset's ``meta["time_of_snapshot"]``) when the spec has a
    forcing in time, else None; HGNError when the data have none or the wrong number."""
    if not spec.timed:
        return None
    from core.learning.rfhgn.port import _times

    return _times(dataset, spec)[np.asarray(indices, dtype=np.int64)]
