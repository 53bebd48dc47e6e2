"""The HGN network (docs/method.md section 2), one definition in torch, and
its exact feature gradients.

Every hidden layer is dense and tanh. RF-HGN samples them (never trains them)
and solves for the output layer theta (core.learning.rfhgn); the baselines
train every layer (core.learning.baselines). One message-passing step, sum
aggregation, sum pooling: the features Phi are sums over nodes and edges, so
H_hat = theta . Phi + c is extensive and applies to any size.

Invariant network (``encoding="invariant"``)
--------------------------------------------
Inputs: k_i = |p_i|^2/(2 m_i) per node; r_ij = |q_i - q_j| (minimum image)
per edge; the mass m_i as a static node attribute.

    h_i  = tanh(W_K k_i + b_K) - tanh(b_K)           node (kinetic) encoder "kin", width n_K
                                                     (zero at rest, so T_hat(0) = 0)
    g_i  = tanh(W_S m_i + b_S)                       static encoder "static", width n_S (may be 0)
    e_ij = tanh(W_E r_ij + b_E)                      edge encoder "edge", width n_E
    m_ij = tanh(W_M [g_i + g_j, e_ij] + b_M)         message "msg", width n_M (symmetric in i, j)
    Phi  = [ sum_i h_i, (sum_i k_i), sum_(i,j) w_ij ([e_ij, m_ij] - [e_ij, m_ij]|r=r_c) ]

with w_ij the system's ``edge_scale`` (1 without it), the edge encodings
pooled beside the messages (``pool_edges``, a skip connection: the single
layer e(r) gives smooth pair functions that the message layer alone
represents poorly), the optional linear kinetic feature ``sum_i k_i``
(``linear_kinetic``) and the cutoff shift (subtracting the features at
r = cutoff, cutoff systems with ``cutoff_shift`` only). Aggregation
a_i = sum_j m_ij and pooling sum_i a_i = 2 sum_edges m_ij are folded into the
edge sum. H = theta_T . Phi_T(p) + theta_V . Phi_V(q) + c is separable: the
kinetic columns (``p_cols``, ``n_T`` of them) only see momenta and the
potential columns (``q_cols``, ``n_V``) only positions. The potential is a sum
over edges of one scalar function f(r) = theta_V . [e, m](r) per pair of
masses; :meth:`HGN.pair` gives the pair features and their first and second
r-derivatives exactly, :meth:`HGN.kinetic` the kinetic features and their
k-derivative (the stepper tabulates both).

Frame network (``encoding="frame"``, the paper's)
-------------------------------------------------
Inputs in the frame of :mod:`core.learning.hgn.frame` (its ``frame_rule``):
node x_i = [q_bar_i, p_bar_i, m_i] (2d + 1), edge
x_ij = [r_ij, (q_bar_i - q_bar_j)_k^2 for each axis k] (1 + d, symmetric in i, j).

    h_i  = tanh(W_V x_i + b_V)                       node encoder "node", width n_V
    e_ij = tanh(W_E x_ij + b_E)                      edge encoder "edge", width n_E
    m_ij = tanh(W_M [h_i + h_j, e_ij] + b_M)         message "msg", width n_M
    Phi  = [ sum_i h_i, sum_(i,j) w_ij [e_ij, m_ij] ]   (e_ij only with ``pool_edges``)

Not separable (momenta enter the messages through h): every column sees both
(``p_cols = q_cols`` = all, ``n_T = n_V = L``).

Parameters and buffers
----------------------
Weights are stored (out, in) and a layer computes tanh(x W^T + b).
Parameters ``<layer>_W``, ``<layer>_b`` and ``theta`` (L,); the layers that
read raw inputs (invariant kin, static, edge; frame node, edge) have buffers
``<layer>_mu`` and ``<layer>_s`` (identity by default): they see
(x - mu) / s. :meth:`HGN.layer` folds them into the raw weights
(W / s, b - (W / s) mu), which every computation uses; RF-HGN keeps them at
the identity and stores raw weights (:meth:`HGN.to_arrays`, the model file
format), the baselines standardise their inputs with them. These names are
the file format of baseline models (``state.<name>``).

Gradients
---------
:meth:`HGN.features` is plain torch and differentiable by autograd wrt q, p
and the parameters (the baselines train through it, the time-series fit takes
Hessian-vector products through it). :meth:`HGN.jacobians` gives Phi and the
exact Jacobians dPhi/dq, dPhi/dp of every feature without autograd (forward
mode over the few input coordinates, one ``index_add`` scatter from edges to
nodes, then the frame adjoint): the fit's hot path. :meth:`HGN.gradients`
gives theta . Phi and dH/dq, dH/dp by reverse mode written out (roll-outs and
evaluation). Both are checked against autograd and finite differences
(tests/core/test_hgn_network.py).

Devices and precision: everything runs where the parameters are (CPU or
CUDA); the graph (:class:`core.learning.hgn.graph.Graph`) must be on the same
device and dtype. Fits run in float64; evaluation may use float32
(``HGN(..., dtype=torch.float32)`` or ``net.to(torch.float32)``).
"""
from __future__ import annotations

import numpy as np
import torch

from core.errors import HGNError
from . import DEFAULT_FRAME_RULE, ENCODINGS, LAYERS
from .fixed import tanh_
from .frame import build_frame, check_frame_graph, check_rule, choose, encode, frame_adjoint

#: layers that read raw inputs (and so have normalisation buffers)
RAW_INPUT_LAYERS = {"invariant": ("kin", "static", "edge"), "frame": ("node", "edge")}
#: edges per chunk when contracting the pair features with theta (memory bound)
EDGE_CHUNK = 1 << 18


class HGN(torch.nn.Module):
    """The HGN of the module notes: encoders, one message layer, sum pooling,
    linear output theta."""

    def __init__(self, encoding: str, dim: int, widths: dict, *, linear_kinetic: bool = True,
                 pool_edges: bool = True, cutoff_shift: bool = True, frame_rule: str = DEFAULT_FRAME_RULE,
                 dtype=torch.float64, device="cpu"):
        super().__init__()
        if encoding not in ENCODINGS:
            raise HGNError(f"encoding {encoding!r} is not one of {', '.join(ENCODINGS)}")
        dim = int(dim)
        if dim not in (2, 3) and encoding == "frame":
            raise HGNError(f"the frame encoding needs 2 or 3 dimensions, got {dim}")
        check_rule(frame_rule)
        self.encoding = encoding
        self.dim = dim
        self.linear_kinetic = bool(linear_kinetic)
        self.pool_edges = bool(pool_edges)
        self.cutoff_shift = bool(cutoff_shift)
        self.frame_rule = frame_rule
        self.separable = encoding == "invariant"
        self.layer_names = list(LAYERS[encoding])
        unknown = set(widths) - set(self.layer_names)
        if unknown:
            raise HGNError(f"unknown layer(s) {sorted(unknown)} for the {encoding} encoding "
                           f"(layers: {', '.join(self.layer_names)})")
        w = {n: int(widths.get(n, 0)) for n in self.layer_names}
        for n, v in w.items():
            if v < 0 or (v == 0 and n != "static"):
                raise HGNError(f"layer {n} needs a positive width, got {v}")
        self.widths = w
        if encoding == "invariant":
            n_in = {"kin": 1, "static": 1, "edge": 1, "msg": w["static"] + w["edge"]}
            self.n_T = w["kin"] + int(self.linear_kinetic)
            self.n_V = w["msg"] + (w["edge"] if self.pool_edges else 0)
            self.L = self.n_T + self.n_V
            self.p_cols = slice(0, self.n_T)
            self.q_cols = slice(self.n_T, self.L)
        else:
            n_in = {"node": 2 * dim + 1, "edge": 1 + dim, "msg": w["node"] + w["edge"]}
            self.n_h, self.n_e, self.n_M = w["node"], (w["edge"] if self.pool_edges else 0), w["msg"]
            self.L = self.n_h + self.n_e + self.n_M
            self.n_T = self.n_V = self.L
            self.p_cols = self.q_cols = slice(0, self.L)
        self.n_in = n_in
        kw = dict(dtype=dtype, device=torch.device(device) if isinstance(device, str) else device)
        for n in self.layer_names:
            setattr(self, f"{n}_W", torch.nn.Parameter(torch.zeros((w[n], n_in[n]), **kw)))
            setattr(self, f"{n}_b", torch.nn.Parameter(torch.zeros(w[n], **kw)))
        for n in RAW_INPUT_LAYERS[encoding]:
            self.register_buffer(f"{n}_mu", torch.zeros(n_in[n], **kw))
            self.register_buffer(f"{n}_s", torch.ones(n_in[n], **kw))
        self.theta = torch.nn.Parameter(torch.zeros(self.L, **kw))

    # -- properties ------------------------------------------------------
    @property
    def rule(self) -> str:
        """The frame rule (alias of ``frame_rule``)."""
        return self.frame_rule

    @property
    def device(self) -> torch.device:
        return self.theta.device

    @property
    def dtype(self):
        return self.theta.dtype

    def options(self) -> dict:
        """The keyword options of the constructor (for from_arrays / copies)."""
        return dict(linear_kinetic=self.linear_kinetic, pool_edges=self.pool_edges,
                    cutoff_shift=self.cutoff_shift, frame_rule=self.frame_rule)

    def extra_repr(self) -> str:
        return f"{self.encoding}, dim={self.dim}, widths={self.widths}, L={self.L}"

    # -- weights ---------------------------------------------------------
    def layer(self, name: str):
        """(W (out, in), b (out,)) of a layer with its input normalisation
        folded in: the raw weights that act on raw inputs (differentiable)."""
        W = getattr(self, f"{name}_W")
        b = getattr(self, f"{name}_b")
        if name in RAW_INPUT_LAYERS[self.encoding]:
            mu = getattr(self, f"{name}_mu")
            s = getattr(self, f"{name}_s")
            W = W / s
            b = b - W @ mu
        return W, b

    @torch.no_grad()
    def set_layer(self, name: str, W, b) -> None:
        """Set a layer's raw weights (numpy or tensors); its normalisation
        buffers go back to the identity."""
        Wp, bp = getattr(self, f"{name}_W"), getattr(self, f"{name}_b")
        W = torch.as_tensor(np.asarray(W) if not isinstance(W, torch.Tensor) else W)
        b = torch.as_tensor(np.asarray(b) if not isinstance(b, torch.Tensor) else b)
        if tuple(W.shape) != tuple(Wp.shape) or tuple(b.reshape(-1).shape) != tuple(bp.shape):
            raise HGNError(f"layer {name}: weights of shape {tuple(W.shape)} / {tuple(b.shape)}, the network needs "
                           f"{tuple(Wp.shape)} / {tuple(bp.shape)}")
        Wp.copy_(W)
        bp.copy_(b.reshape(-1))
        if name in RAW_INPUT_LAYERS[self.encoding]:
            getattr(self, f"{name}_mu").zero_()
            getattr(self, f"{name}_s").fill_(1.0)

    @torch.no_grad()
    def set_theta(self, theta) -> None:
        t = torch.as_tensor(np.asarray(theta) if not isinstance(theta, torch.Tensor) else theta)
        if tuple(t.shape) != (self.L,):
            raise HGNError(f"theta has shape {tuple(t.shape)}, the network needs ({self.L},)")
        self.theta.copy_(t)

    def to_arrays(self) -> dict:
        """``{"<layer>_W", "<layer>_b"}`` as numpy float64, raw (normalisation
        folded in): the RF-HGN model file format."""
        out = {}
        with torch.no_grad():
            for n in self.layer_names:
                W, b = self.layer(n)
                out[f"{n}_W"] = W.detach().to("cpu", torch.float64).numpy().copy()
                out[f"{n}_b"] = b.detach().to("cpu", torch.float64).numpy().copy()
        return out

    @classmethod
    def from_arrays(cls, encoding: str, dim: int, arrays: dict, theta=None, **options) -> "HGN":
        """A network with the raw weights ``arrays`` (as from :meth:`to_arrays`)
        and optionally theta; ``options`` go to the constructor (dtype, device,
        linear_kinetic, ...)."""
        if encoding not in ENCODINGS:
            raise HGNError(f"encoding {encoding!r} is not one of {', '.join(ENCODINGS)}")
        try:
            widths = {n: int(np.shape(arrays[f"{n}_W"])[0]) for n in LAYERS[encoding]}
            net = cls(encoding, dim, widths, **options)
            for n in LAYERS[encoding]:
                W = np.asarray(arrays[f"{n}_W"], dtype=np.float64)
                if W.size == 0:
                    W = W.reshape(widths[n], net.n_in[n])
                net.set_layer(n, W, np.asarray(arrays[f"{n}_b"], dtype=np.float64))
        except KeyError as exc:
            raise HGNError(f"the network weights are missing {exc.args[0]!r}") from None
        if theta is not None:
            net.set_theta(theta)
        return net

    # -- invariant: per-node and per-edge functions ------------------------
    def kinetic(self, k):
        """Kinetic features of k (...,) and their derivative d/dk, each (..., n_T)."""
        W, b = self.layer("kin")
        w = W[:, 0]
        h = torch.tanh(k[..., None] * w + b)
        dh = (1.0 - h * h) * w
        h = h - torch.tanh(b)  # features vanish at rest: T_hat(p = 0) = 0 for every system
        if self.linear_kinetic:
            h = torch.cat([h, k[..., None]], -1)
            dh = torch.cat([dh, torch.ones_like(k)[..., None]], -1)
        return h, dh

    def static_sum(self, mi, mj):
        """g_i + g_j per edge, (P, n_S)."""
        if self.widths["static"] == 0:
            return mi.new_zeros((mi.shape[0], 0))
        W, b = self.layer("static")
        return torch.tanh(mi[:, None] * W[:, 0] + b) + torch.tanh(mj[:, None] * W[:, 0] + b)

    def pair(self, r, gsum, order: int = 1, shift_at=None):
        """Pair features of edges with distance r (P,) and static sums gsum
        (P, n_S) or (1, n_S): [e, m] (or m alone without ``pool_edges``);
        returns [f, f', (f'')], the features and their r-derivatives up to
        ``order`` (each (P, n_V)). ``shift_at``: subtract the features at
        that distance (same gsum)."""
        We, be = self.layer("edge")
        Wm, bm = self.layer("msg")
        nS = self.widths["static"]
        wE = We[:, 0]
        WMe = Wm[:, nS:]
        zs = (gsum @ Wm[:, :nS].T + bm) if nS else bm
        e = torch.tanh(r[:, None] * wE + be)
        m = torch.tanh(e @ WMe.T + zs)
        out_e, out_m = [e], [m]
        if order >= 1:
            de = (1.0 - e * e) * wE
            dz = de @ WMe.T
            sm = 1.0 - m * m
            out_e.append(de)
            out_m.append(sm * dz)
            if order >= 2:
                d2e = -2.0 * e * de * wE
                d2z = d2e @ WMe.T
                out_e.append(d2e)
                out_m.append(-2.0 * m * sm * dz * dz + sm * d2z)
        if shift_at is not None:
            ec = torch.tanh(float(shift_at) * wE + be)
            mc = torch.tanh(ec @ WMe.T + zs)
            out_e[0] = e - ec
            out_m[0] = m - mc
        if not self.pool_edges:
            return out_m
        return [torch.cat([a, b], 1) for a, b in zip(out_e, out_m)]

    def _gsum(self, graph):
        if self.widths["static"] == 0:
            return graph.masses.new_zeros((1, 0))
        m = graph.masses
        return self.static_sum(m[graph.i], m[graph.j])

    def _shift(self, graph):
        return graph.cutoff if (graph.cutoff is not None and self.cutoff_shift) else None

    # -- the network on a graph -------------------------------------------
    def _check(self, graph, q, p):
        if graph.N != q.shape[1] or q.shape != p.shape or q.shape[0] != graph.S or q.shape[2] != self.dim:
            raise HGNError(f"q, p of shape {tuple(q.shape)}, {tuple(p.shape)} do not fit the graph "
                           f"(S={graph.S}, N={graph.N}) of a {self.dim}D network")
        if self.encoding == "frame":
            check_frame_graph(graph)

    def frame_inputs(self, graph, q, p, choice=None):
        """Frame encoding: (frame, node inputs (S*N, 2d+1), edge inputs
        (P, 1+d), delta_bar (P, d), r (P,))."""
        check_frame_graph(graph)
        S, N, d = q.shape
        fr = build_frame(q, self.frame_rule, choice)
        qb, pb = encode(fr, p)
        m = graph.masses[None, :, None].expand(S, N, 1).to(q.dtype)
        xn = torch.cat([qb, pb, m], 2).reshape(S * N, 2 * d + 1)
        delta, r = graph.delta(q)
        if graph.E_fixed is not None:
            db = torch.bmm(delta.reshape(S, graph.E_fixed, d), fr.B).reshape(-1, d)
        else:
            db = torch.bmm(delta[:, None, :], fr.B[graph.snap])[:, 0]
        xe = torch.cat([r[:, None], db * db], 1)
        return fr, xn, xe, db, r

    def _frame_forward(self, graph, q, p, choice=None):
        """Frame, node inputs (S*N, 2d+1), edge inputs (P, 1+d), delta_bar
        (P, d), r, and the layer outputs h, e, m."""
        fr, xn, xe, db, r = self.frame_inputs(graph, q, p, choice)
        Wn, bn = self.layer("node")
        We, be = self.layer("edge")
        Wm, bm = self.layer("msg")
        # without autograd (the fit's Jacobians) tanh runs in place on the fresh pre-activations (fixed.tanh_)
        act = torch.tanh if torch.is_grad_enabled() else tanh_
        h = act(torch.addmm(bn, xn, Wn.T))
        e = act(torch.addmm(be, xe, We.T))
        nh = self.n_h
        mm = act(torch.addmm(bm, e, Wm[:, nh:].T).add_((h[graph.gi] + h[graph.gj]) @ Wm[:, :nh].T))
        return fr, xn, xe, db, r, h, e, mm

    def _frame_pooled(self, graph, h, e, m):
        em = torch.cat([e, m], 1) if self.pool_edges else m
        if graph.weight is not None:
            em = em * graph.weight[:, None]
        return torch.cat([h.reshape(graph.S, graph.N, -1).sum(1), graph.pool(em)], 1)

    def features(self, graph, q, p):
        """Phi (S, L) for q, p (S, N, d) tensors; differentiable by autograd
        wrt q, p and the parameters."""
        self._check(graph, q, p)
        if self.encoding == "frame":
            _, _, _, _, _, h, e, m = self._frame_forward(graph, q, p)
            return self._frame_pooled(graph, h, e, m)
        k = 0.5 * (p * p).sum(-1) / graph.masses
        f, _ = self.kinetic(k)
        _, r = graph.delta(q)
        mm = self.pair(r, self._gsum(graph), 0, self._shift(graph))[0]
        if graph.weight is not None:
            mm = mm * graph.weight[:, None]
        return torch.cat([f.sum(1), graph.pool(mm)], 1)

    def forward(self, graph, q, p):
        """theta . Phi (S,)."""
        return self.features(graph, q, p) @ self.theta

    # -- analytic Jacobians (the fit) -------------------------------------
    @torch.no_grad()
    def jacobians(self, graph, q, p):
        """(Phi (S, L), dPhi/dq, dPhi/dp) without autograd. Invariant:
        dPhi/dq (S, N, d, n_V) for the columns ``q_cols`` and dPhi/dp
        (S, N, d, n_T) for ``p_cols``; frame: both (S, N, d, L)."""
        self._check(graph, q, p)
        if self.encoding == "frame":
            return self._frame_jacobians(graph, q, p)
        S, N, d = q.shape
        m = graph.masses
        k = 0.5 * (p * p).sum(-1) / m
        f, df = self.kinetic(k)
        Jp = df[:, :, None, :] * (p / m[:, None])[..., None]
        delta, r = graph.delta(q)
        mm, dm = self.pair(r, self._gsum(graph), 1, self._shift(graph))
        if graph.weight is not None:
            mm = mm * graph.weight[:, None]
            dm = dm * graph.weight[:, None]
        u = delta / r[:, None]
        Jq = graph.scatter_signed(u[:, :, None] * dm[:, None, :]).reshape(S, N, d, self.n_V)
        phi = torch.cat([f.sum(1), graph.pool(mm)], 1)
        return phi, Jq, Jp

    def _frame_jacobians(self, graph, q, p):
        S, N, d = q.shape
        fr, xn, xe, db, r, h, e, m = self._frame_forward(graph, q, p)
        nh, ne, nM, L = self.n_h, self.n_e, self.n_M, self.L
        Wn, _ = self.layer("node")
        We, _ = self.layer("edge")
        Wm, _ = self.layer("msg")
        WMh, WMe = Wm[:, :nh], Wm[:, nh:]
        sh = 1.0 - h * h  # (SN, nh)
        se = 1.0 - e * e  # (P, nE)
        sm = 1.0 - m * m
        if graph.weight is not None:
            sm = sm * graph.weight[:, None]
            sew = se * graph.weight[:, None]
        else:
            sew = se
        ub = db / r[:, None]  # d r / d q_bar_i
        G = q.new_zeros((S * N, d, L))
        Pg = q.new_zeros((S * N, d, L))
        P = graph.P
        dmi = q.new_empty((P, 2, d, nM))  # [q or p, coordinate] for node i
        dmj = q.new_empty((P, 2, d, nM))
        V0 = (se * We[:, 0]) @ WMe.T  # dz/dr (P, nM)
        gi, gj = graph.gi, graph.gj
        for c in range(d):
            dh_q = sh * Wn[:, c]  # dh/dq_bar_c (SN, nh)
            dh_p = sh * Wn[:, d + c]
            G[:, c, :nh] = dh_q
            Pg[:, c, :nh] = dh_p
            Uq = dh_q @ WMh.T  # (SN, nM)
            Up = dh_p @ WMh.T
            Vc = (se * We[:, 1 + c]) @ WMe.T  # dz/d(db_c^2)
            edge_part = V0 * ub[:, c:c + 1] + Vc * (2.0 * db[:, c:c + 1])
            if ne:
                dedc = sew * (We[:, 0] * ub[:, c:c + 1] + We[:, 1 + c] * (2.0 * db[:, c:c + 1]))
                G[:, c, nh:nh + ne] = graph.scatter_signed(dedc)
            dmi[:, 0, c] = sm * (Uq[gi] + edge_part)
            dmj[:, 0, c] = sm * (Uq[gj] - edge_part)
            dmi[:, 1, c] = sm * Up[gi]
            dmj[:, 1, c] = sm * Up[gj]
        node_grad = graph.scatter_i(dmi) + graph.scatter_j(dmj)  # (SN, 2, d, nM)
        G[:, :, nh + ne:] = node_grad[:, 0]
        Pg[:, :, nh + ne:] = node_grad[:, 1]
        phi = self._frame_pooled(graph, h, e, m)
        dq, dp = frame_adjoint(fr, p, G.reshape(S, N, d, L), Pg.reshape(S, N, d, L))
        return phi, dq, dp

    # -- analytic reverse mode (evaluation, roll-outs) ---------------------
    @torch.no_grad()
    def gradients(self, graph, q, p, energy: bool = True):
        """(theta . Phi (S,) or None, dH/dq, dH/dp) for H = theta . Phi, q, p
        (S, N, d), without autograd."""
        self._check(graph, q, p)
        theta = self.theta
        if self.encoding == "frame":
            return self._frame_gradients(graph, q, p, theta, energy)
        T, gp = self.kinetic_part(graph.masses, p, theta[self.p_cols], energy)
        V, gq = self.potential_part(graph, q, theta[self.q_cols], energy)
        return (T + V if energy else None), gq, gp

    def kinetic_part(self, masses, p, theta_T, energy: bool = True):
        """(T (S,) or None, dT/dp like p) for p (S, N, d) (invariant only)."""
        k = 0.5 * (p * p).sum(-1) / masses
        f, df = self.kinetic(k)
        grad = (df @ theta_T)[..., None] * p / masses[:, None]
        return ((f @ theta_T).sum(-1) if energy else None), grad

    def potential_part(self, graph, q, theta_V, energy: bool = True):
        """(V (S,) or None, dV/dq (S, N, d)) from the exact network, in edge
        chunks (invariant only)."""
        delta, r = graph.delta(q)
        gsum = self._gsum(graph)
        shift = self._shift(graph)
        P = graph.P
        if P <= EDGE_CHUNK:
            res = self.pair(r, gsum, 1, shift)
            fp = res[1] @ theta_V
            fv = res[0] @ theta_V if energy else None
        else:
            fp = r.new_empty(P)
            fv = r.new_empty(P) if energy else None
            for a in range(0, P, EDGE_CHUNK):
                b = min(a + EDGE_CHUNK, P)
                gs = gsum[a:b] if gsum.shape[0] > 1 else gsum
                res = self.pair(r[a:b], gs, 1, shift)
                fp[a:b] = res[1] @ theta_V
                if energy:
                    fv[a:b] = res[0] @ theta_V
        return assemble_potential(graph, delta, r, fv, fp)

    def _frame_gradients(self, graph, q, p, theta, energy):
        S, N, d = q.shape
        fr, xn, xe, db, r, h, e, m = self._frame_forward(graph, q, p)
        nh, ne = self.n_h, self.n_e
        Wn, _ = self.layer("node")
        We, _ = self.layer("edge")
        Wm, _ = self.layer("msg")
        WMh, WMe = Wm[:, :nh], Wm[:, nh:]
        th_h, th_e, th_m = theta[:nh], theta[nh:nh + ne], theta[nh + ne:]
        w = 1.0 if graph.weight is None else graph.weight[:, None]
        gz = (w * th_m) * (1.0 - m * m)  # (P, nM)
        gh_edge = gz @ WMh  # (P, nh)
        gh = th_h + graph.scatter_i(gh_edge) + graph.scatter_j(gh_edge)
        gxn = (gh * (1.0 - h * h)) @ Wn  # (SN, 2d+1)
        ge = gz @ WMe
        if ne:
            ge = ge + w * th_e
        gxe = (ge * (1.0 - e * e)) @ We  # (P, 1+d)
        ub = db / r[:, None]
        evec = gxe[:, :1] * ub + gxe[:, 1:] * 2.0 * db
        Gq = gxn[:, :d] + graph.scatter_signed(evec)
        Gp = gxn[:, d:2 * d]
        dq, dp = frame_adjoint(fr, p, Gq.reshape(S, N, d, 1), Gp.reshape(S, N, d, 1))
        H = self._frame_pooled(graph, h, e, m) @ theta if energy else None
        return H, dq[..., 0], dp[..., 0]

    # -- helpers for the sampler -------------------------------------------
    def frame_choice(self, q):
        """The discrete frame choice (a, b, fixed axis) of q (see frame.choose)."""
        return choose(q, self.frame_rule)


def assemble_potential(graph, delta, r, fv, fp):
    """(V (S,) or None, dV/dq (S, N, d)) from the per-edge pair energies fv
    (P,) (or None) and their r-derivatives fp (P,), weighted by edge_scale."""
    if graph.weight is not None:
        fp = fp * graph.weight
        fv = None if fv is None else fv * graph.weight
    grad = graph.scatter_signed((fp / r)[:, None] * delta).reshape(graph.S, graph.N, graph.d)
    V = None if fv is None else graph.pool(fv[:, None])[:, 0]
    return V, grad
