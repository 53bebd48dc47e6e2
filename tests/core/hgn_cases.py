"""Test systems, states and the autograd reference shared by the tests of
the torch network (tests/core/test_hgn_network.py) and of the sampled
RF-HGN network (tests/core/rfhgn/test_rfhgn_gradients.py)."""
from __future__ import annotations

import numpy as np
import torch

from core.physics import builders


def ring_with_masses():
    """A fixed graph with unequal masses and per-edge strengths (static encoder, edge weights)."""
    ang = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    q = np.stack([np.cos(ang), np.sin(ang)], 1) * 1.2
    return builders.custom(2, q, [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [0, 5], [0, 3]],
                           masses=[1.0, 2.0, 0.5, 1.5, 1.0, 2.0], edge_scale=[1.0, 0.5, 2.0, 1.5, 0.7, 3.0, 1.2])


#: name -> system builder: fixed and cutoff graphs, 2D and 3D, free and periodic
CASES = {
    "fixed-2d": lambda: builders.square_lattice(3, 3),
    "fixed-3d": lambda: builders.cubic_lattice(2, 2, 3),
    "fixed-2d-masses-weights": ring_with_masses,
    "cutoff-2d-free": lambda: builders.molecular(16, density=0.7, dim=2, cutoff=2.0, periodic=False, jitter=0.1),
    "cutoff-3d-free": lambda: builders.molecular(27, density=0.8, dim=3, cutoff=1.6, periodic=False, jitter=0.1),
    "cutoff-3d-periodic": lambda: builders.molecular(64, density=0.8, dim=3, cutoff=1.6, jitter=0.1),
}
#: (encoding, case): the frame encoding is undefined in a periodic box; the paper's frame rule
#: ("frame-nearest") on two cases besides the default "farthest"
PAIRS = [(enc, case) for enc in ("invariant", "frame") for case in sorted(CASES)
         if not (enc == "frame" and "periodic" in case)]
PAIRS += [("frame-nearest", "fixed-3d"), ("frame-nearest", "cutoff-2d-free")]


def states(system, S=3, seed=0):
    """S seeded states near the system's positions, as float64 tensors (q, p)."""
    rng = np.random.default_rng(seed)
    q = system.positions + 0.05 * rng.standard_normal((S, system.n, system.dim))
    p = 0.3 * rng.standard_normal((S, system.n, system.dim))
    return torch.tensor(q), torch.tensor(p)


def autograd_jacobians(net, graph, q, p):
    """Phi and dPhi/dq, dPhi/dp (S, N, d, L) of ``net`` by torch autograd, column by column."""
    qt = q.clone().requires_grad_(True)
    pt = p.clone().requires_grad_(True)
    phi = net.features(graph, qt, pt)
    jq = torch.zeros(q.shape + (net.L,), dtype=q.dtype)
    jp = torch.zeros(p.shape + (net.L,), dtype=p.dtype)
    for col in range(net.L):
        gq, gp = torch.autograd.grad(phi[:, col].sum(), (qt, pt), retain_graph=True, allow_unused=True)
        if gq is not None:
            jq[..., col] = gq
        if gp is not None:
            jp[..., col] = gp
    return phi.detach(), jq, jp


def assert_matches_autograd(net, graph, q, p):
    """The analytic Jacobians (``net.jacobians``) and contracted gradients
    (``net.gradients``) of ``net`` equal torch autograd at (q, p); returns
    (the autograd Jacobians (jq, jp), the analytic (gq, gp))."""
    phi, Jq, Jp = net.jacobians(graph, q, p)
    phi_t, jq_t, jp_t = autograd_jacobians(net, graph, q, p)
    scale = max(1.0, float(jq_t.abs().max()), float(jp_t.abs().max()))
    assert float((phi - phi_t).abs().max()) < 1e-12 * max(1.0, float(phi_t.abs().max()))
    assert float((Jq - jq_t[..., net.q_cols]).abs().max()) < 1e-11 * scale
    assert float((Jp - jp_t[..., net.p_cols]).abs().max()) < 1e-11 * scale
    if net.separable:  # the columns left out are exactly zero
        assert torch.all(jq_t[..., net.p_cols] == 0) and torch.all(jp_t[..., net.q_cols] == 0)
    # the contracted (reverse-mode) gradients used by evaluation and roll-outs
    H, gq, gp = net.gradients(graph, q, p)
    qt = q.clone().requires_grad_(True)
    pt = p.clone().requires_grad_(True)
    Ht = net(graph, qt, pt)
    aq, ap = torch.autograd.grad(Ht.sum(), (qt, pt))
    gscale = max(1.0, float(aq.abs().max()), float(ap.abs().max()))
    assert float((H - Ht.detach()).abs().max()) < 1e-11 * max(1.0, float(H.abs().max()))
    assert float((gq - aq).abs().max()) < 1e-11 * gscale
    assert float((gp - ap).abs().max()) < 1e-11 * gscale
    return (jq_t, jp_t), (gq, gp)
