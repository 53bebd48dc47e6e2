"""The RF-HGN network in torch (float64), layer for layer the same as
:mod:`core.learning.rfhgn.network`.

Uses:

* the tests check the analytic feature gradients of the numpy network
  against torch autograd through this implementation;
* the time-series correction (``fitting._project_correction``) needs
  Hessian-vector products of H_hat, taken here by double backward;
* gradient-trained baselines (docs/method.md section 7) can train the same
  architecture: pass ``params`` (a dict of torch tensors with
  ``requires_grad``, e.g. from :func:`params_from_network`) and every layer
  becomes trainable.

The graph (which pairs interact, the periodic image of each pair) and the
frame's choice of particles a and b are discrete and taken from numpy
(:func:`core.learning.rfhgn.graphs.batch_graph`, :func:`core.learning.rfhgn.encoding.build_frame`);
everything continuous is differentiated by torch.
"""
from __future__ import annotations

import numpy as np

from core.physics.system import System
from .encoding import build_frame
from .graphs import batch_graph
from .network import FrameNetwork, InvariantNetwork


def _torch():
    import torch
    return torch


def params_from_network(network, requires_grad: bool = False) -> dict:
    """The layer weights as float64 torch tensors, keyed like ``to_arrays``."""
    torch = _torch()
    return {k: torch.tensor(v, dtype=torch.float64, requires_grad=requires_grad)
            for k, v in network.to_arrays().items()}


def _dense(params, name, x):
    torch = _torch()
    return torch.tanh(x @ params[f"{name}_W"].T + params[f"{name}_b"])


def torch_features(network, system: System, q, p, params: dict | None = None):
    """Phi (S, L) as a torch tensor, differentiable wrt q, p (S, N, d) torch
    tensors and wrt ``params`` (defaults to the network's weights, constant)."""
    torch = _torch()
    params = params_from_network(network) if params is None else params
    qn = q.detach().cpu().numpy()
    g = batch_graph(system, qn)
    S, N, d = qn.shape
    snap = torch.as_tensor(g.snap)
    ii = torch.as_tensor(g.i)
    jj = torch.as_tensor(g.j)
    # the periodic image of each pair is discrete: a constant shift
    raw = qn[g.snap, g.i] - qn[g.snap, g.j]
    shift = torch.as_tensor(raw - g.delta)
    delta = q[snap, ii] - q[snap, jj] - shift
    r = torch.sqrt((delta * delta).sum(-1))
    masses = torch.as_tensor(system.masses)
    w = None if g.weight is None else torch.as_tensor(g.weight)[:, None]

    def pool(vals):
        out = torch.zeros((S,) + tuple(vals.shape[1:]), dtype=vals.dtype)
        return out.index_add(0, snap, vals)

    if isinstance(network, InvariantNetwork):
        k = 0.5 * (p * p).sum(-1) / masses
        h = torch.tanh(k[..., None] * params["kin_W"][:, 0] + params["kin_b"])
        h = h - torch.tanh(params["kin_b"])
        phi_t = h.sum(1)
        if network.linear_kinetic:
            phi_t = torch.cat([phi_t, k.sum(1, keepdim=True)], dim=1)
        if network.static.n_out:
            gm = _dense(params, "static", masses[:, None])
            gsum = gm[ii] + gm[jj]
        else:
            gsum = torch.zeros((len(r), 0), dtype=torch.float64)
        nS = network.static.n_out

        def pair(rr):
            e = torch.tanh(rr[:, None] * params["edge_W"][:, 0] + params["edge_b"])
            m = torch.tanh(gsum @ params["msg_W"][:, :nS].T + e @ params["msg_W"][:, nS:].T + params["msg_b"])
            return torch.cat([e, m], 1) if network.pool_edges else m

        feats = pair(r)
        if system.cutoff is not None and network.cutoff_shift:
            feats = feats - pair(torch.full_like(r, float(system.cutoff)))
        if w is not None:
            feats = feats * w
        return torch.cat([phi_t, pool(feats)], dim=1)

    assert isinstance(network, FrameNetwork)
    fr = build_frame(qn, network.rule)
    x = q - q.mean(1, keepdim=True)
    rows = torch.arange(S)
    e1 = torch.zeros((S, d), dtype=torch.float64)
    e1[:, 0] = 1.0
    has_a = torch.as_tensor(fr.a >= 0)
    a = torch.as_tensor(np.maximum(fr.a, 0))
    xa = x[rows, a]
    e1 = torch.where(has_a[:, None], xa / torch.sqrt((xa * xa).sum(-1, keepdim=True)), e1)
    if d == 2:
        e2 = torch.stack([-e1[:, 1], e1[:, 0]], 1)
        B = torch.stack([e1, e2], 2)
    else:
        has_b = torch.as_tensor(fr.b >= 0)
        b = torch.as_tensor(np.maximum(fr.b, 0))
        xb = torch.where(has_b[:, None], x[rows, b], torch.as_tensor(fr.xb))
        u = xb - (xb * e1).sum(-1, keepdim=True) * e1
        e2 = u / torch.sqrt((u * u).sum(-1, keepdim=True))
        e3 = torch.linalg.cross(e1, e2, dim=1)
        B = torch.stack([e1, e2, e3], 2)
    qb = torch.einsum("sik,skl->sil", x, B)
    pb = torch.einsum("sik,skl->sil", p, B)
    xn = torch.cat([qb, pb, masses[None, :, None].expand(S, N, 1)], 2).reshape(S * N, 2 * d + 1)
    h = _dense(params, "node", xn)
    db = torch.einsum("pk,pkl->pl", delta, B[snap])
    xe = torch.cat([r[:, None], db * db], 1)
    e = _dense(params, "edge", xe)
    gi = torch.as_tensor(g.gi)
    gj = torch.as_tensor(g.gj)
    nh = network.n_h
    m = torch.tanh((h[gi] + h[gj]) @ params["msg_W"][:, :nh].T + e @ params["msg_W"][:, nh:].T + params["msg_b"])
    em = torch.cat([e, m], 1) if network.pool_edges else m
    if w is not None:
        em = em * w
    return torch.cat([h.reshape(S, N, nh).sum(1), pool(em)], dim=1)


def torch_energy(network, theta, system: System, q, p, params: dict | None = None):
    """theta . Phi (S,) in torch."""
    torch = _torch()
    th = theta if isinstance(theta, torch.Tensor) else torch.as_tensor(np.asarray(theta, dtype=np.float64))
    return torch_features(network, system, q, p, params) @ th


def correction_gradients(network, theta, system: System, q: np.ndarray, p: np.ndarray):
    """Gradients of C = dH/dq . dH/dp (H = theta . Phi) wrt q and p, exact
    (double backward); numpy (S, N, d) in, numpy (dC/dq, dC/dp) out."""
    torch = _torch()
    qt = torch.tensor(q, dtype=torch.float64, requires_grad=True)
    pt = torch.tensor(p, dtype=torch.float64, requires_grad=True)
    H = torch_energy(network, theta, system, qt, pt).sum()
    gq, gp = torch.autograd.grad(H, (qt, pt), create_graph=True)
    C = (gq * gp).sum()
    cq, cp = torch.autograd.grad(C, (qt, pt))
    return cq.numpy().copy(), cp.numpy().copy()
