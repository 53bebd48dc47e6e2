"""The RF-HGN network (docs/method.md section 2) and its exact feature gradients.

Every hidden layer is dense, tanh, and sampled (never trained); only the
output layer theta (and the constant c) is solved for. One message-passing
step, sum aggregation, sum pooling: the features Phi are sums over nodes and
edges, so H_hat = theta . Phi + c is extensive and applies to any size.

Invariant network (:class:`InvariantNetwork`, ``encoding="invariant"``)
-----------------------------------------------------------------------
Inputs: k_i = |p_i|^2/(2 m_i) per node; r_ij = |q_i - q_j| (minimum image)
per edge; the mass m_i as a static node attribute.

    h_i  = tanh(W_K k_i + b_K) - tanh(b_K)           node (kinetic) encoder, width n_K
                                                     (zero at rest, so T_hat(0) = 0)
    g_i  = tanh(W_S m_i + b_S)                       static encoder, width n_S (may be 0)
    e_ij = tanh(W_E r_ij + b_E)                      edge encoder, width n_E
    m_ij = tanh(W_M [g_i + g_j, e_ij] + b_M)         message, width n_M (symmetric in i, j)
    Phi  = [ sum_i h_i, (sum_i k_i), sum_(i,j) w_ij ([e_ij, m_ij] - [e_ij, m_ij]|r=r_c) ]

with w_ij the system's ``edge_scale`` (1 without it), the edge encodings
pooled beside the messages (``pool_edges``, a skip connection: the single
layer e(r) gives smooth pair functions that the message layer alone
represents poorly), the optional linear kinetic feature ``sum_i k_i``
(``linear_kinetic``) and the cutoff shift
(subtracting the message at r = cutoff, cutoff systems with ``cutoff_shift``
only). Aggregation a_i = sum_j m_ij and pooling sum_i a_i = 2 sum_edges m_ij
are folded into the edge sum. H = theta_T . Phi_T(p) + theta_V . Phi_V(q) + c
is separable: the kinetic columns only see momenta and the potential columns
only positions. The potential is a sum over edges of one scalar function
f(r) = theta_V . m(r) per pair of masses; :meth:`InvariantNetwork.pair` gives
f, f' and f'' exactly.

Frame network (:class:`FrameNetwork`, ``encoding="frame"``, the paper's)
------------------------------------------------------------------------
Inputs in the frame of :mod:`core.learning.rfhgn.encoding` (its ``rule``, stored as
``FrameNetwork.rule`` and ``RFConfig.frame_rule``): node x_i = [q_bar_i,
p_bar_i, m_i] (2d + 1), edge x_ij = [r_ij, (q_bar_i - q_bar_j)_k^2 for each
axis k] (1 + d, symmetric in i, j).

    h_i  = tanh(W_V x_i + b_V)                       node encoder, width n_V
    e_ij = tanh(W_E x_ij + b_E)                      edge encoder, width n_E
    m_ij = tanh(W_M [h_i + h_j, e_ij] + b_M)         message, width n_M
    Phi  = [ sum_i h_i, sum_(i,j) w_ij [e_ij, m_ij] ]   (e_ij only with ``pool_edges``)

Not separable (momenta enter the messages through h).

Gradients
---------
``jacobians`` gives Phi and the exact Jacobians dPhi/dq, dPhi/dp of every
feature (forward mode over the few input coordinates, then one sparse scatter
from edges to nodes, then the frame adjoint) for the fit; ``evaluate`` gives
H and dH/dq, dH/dp for one theta (reverse mode) for rollouts. Weight matrices
are stored (out, in) and a layer computes tanh(x W^T + b).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import HGNError
from core.physics.system import System
from .encoding import (DEFAULT_FRAME_RULE, FRAME_RULES, build_frame, check_frame_system, encode, frame_adjoint,
                       kinetic_inputs)
from .graphs import GraphBatch, batch_graph


@dataclass
class Dense:
    """One sampled tanh layer: y = tanh(x W^T + b), W (out, in), b (out,)."""

    W: np.ndarray
    b: np.ndarray

    @property
    def n_out(self) -> int:
        return int(self.W.shape[0])

    @property
    def n_in(self) -> int:
        return int(self.W.shape[1])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.tanh(x @ self.W.T + self.b)


def _empty_layer(n_in: int) -> Dense:
    return Dense(np.zeros((0, n_in)), np.zeros(0))


# ======================================================================
class InvariantNetwork:
    """Separable RF-HGN on invariant inputs (see the module notes)."""

    encoding = "invariant"
    separable = True

    def __init__(self, kin: Dense, static: Dense, edge: Dense, msg: Dense, linear_kinetic: bool,
                 cutoff_shift: bool = True, pool_edges: bool = True):
        self.kin, self.static, self.edge, self.msg = kin, static, edge, msg
        self.linear_kinetic = bool(linear_kinetic)
        self.cutoff_shift = bool(cutoff_shift)
        self.pool_edges = bool(pool_edges)
        if msg.n_in != static.n_out + edge.n_out:
            raise HGNError("message layer input width must be static width + edge width")
        self.n_T = kin.n_out + int(self.linear_kinetic)
        self.n_V = msg.n_out + (edge.n_out if self.pool_edges else 0)
        self.L = self.n_T + self.n_V
        #: feature columns that depend on momenta / on positions
        self.p_cols = slice(0, self.n_T)
        self.q_cols = slice(self.n_T, self.L)

    # -- per-node and per-edge functions -------------------------------
    def kinetic(self, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Kinetic features of k (...,) and their derivative d/dk, each (..., n_T)."""
        w, b = self.kin.W[:, 0], self.kin.b
        h = np.tanh(k[..., None] * w + b)
        dh = (1.0 - h * h) * w
        h -= np.tanh(b)  # features vanish at rest: T_hat(p = 0) = 0 for every system
        if self.linear_kinetic:
            h = np.concatenate([h, k[..., None]], axis=-1)
            dh = np.concatenate([dh, np.ones(k.shape + (1,))], axis=-1)
        return h, dh

    def static_sum(self, masses_i: np.ndarray, masses_j: np.ndarray) -> np.ndarray:
        """g_i + g_j per edge, (P, n_S)."""
        if self.static.n_out == 0:
            return np.zeros((len(masses_i), 0))
        return self.static(masses_i[:, None]) + self.static(masses_j[:, None])

    def pair(self, r: np.ndarray, gsum: np.ndarray, order: int = 1, shift_at: float | None = None):
        """Pair features of edges with distance r (P,) and static sums gsum
        (P, n_S) or (1, n_S): [e, m] (or m alone without ``pool_edges``);
        returns the features and their r-derivatives up to ``order`` (each
        (P, n_V)). ``shift_at``: subtract the features at that distance (same gsum)."""
        wE, bE = self.edge.W[:, 0], self.edge.b
        n_S, n_E = self.static.n_out, self.edge.n_out
        WMs, WMe = self.msg.W[:, :n_S], self.msg.W[:, n_S:]
        P = len(r)
        # features [e | m] written side by side (the e block is dropped without pool_edges)
        out = [np.empty((P, n_E + self.msg.n_out)) for _ in range(order + 1)]
        f0 = out[0]
        e = f0[:, :n_E]
        np.multiply(r[:, None], wE, out=e)
        e += bE
        np.tanh(e, out=e)
        zs = gsum @ WMs.T + self.msg.b
        m = f0[:, n_E:]
        np.matmul(e, WMe.T, out=m)
        m += zs
        np.tanh(m, out=m)
        if order >= 1:
            se = 1.0 - e * e
            de = out[1][:, :n_E]
            np.multiply(se, wE, out=de)
            dz = de @ WMe.T
            sm = 1.0 - m * m
            np.multiply(sm, dz, out=out[1][:, n_E:])
            if order >= 2:
                d2e = out[2][:, :n_E]
                np.multiply(-2.0 * e * de, wE, out=d2e)
                d2z = d2e @ WMe.T
                out[2][:, n_E:] = -2.0 * m * sm * dz * dz + sm * d2z
        if shift_at is not None:
            ec = np.tanh(shift_at * wE + bE)
            mc = np.tanh(ec @ WMe.T + zs)
            e -= ec
            m -= mc
        if not self.pool_edges:
            return [x[:, n_E:] for x in out]
        return out

    # -- batched features ----------------------------------------------
    def _graph_parts(self, system: System, g: GraphBatch):
        m = system.masses
        gsum = self.static_sum(m[g.i], m[g.j]) if self.static.n_out else np.zeros((1, 0))
        shift = float(system.cutoff) if (system.cutoff is not None and self.cutoff_shift) else None
        return gsum, shift

    def jacobians(self, system: System, q: np.ndarray, p: np.ndarray, graph: GraphBatch | None = None):
        """Phi (S, L), dPhi/dq (S, N, d, n_V) for the columns ``q_cols`` and
        dPhi/dp (S, N, d, n_T) for the columns ``p_cols``."""
        S, N, d = q.shape
        g = graph if graph is not None else batch_graph(system, q)
        masses = system.masses
        k = kinetic_inputs(p, masses)
        f, df = self.kinetic(k)
        Jp = df[:, :, None, :] * (p / masses[:, None])[..., None]
        gsum, shift = self._graph_parts(system, g)
        mm, dm = self.pair(g.r, gsum, 1, shift)
        if g.weight is not None:
            mm = mm * g.weight[:, None]
            dm = dm * g.weight[:, None]
        u = g.delta / g.r[:, None]
        Jq = g.scatter_signed(u[:, :, None] * dm[:, None, :]).reshape(S, N, d, self.n_V)
        phi = np.concatenate([f.sum(axis=1), g.pool(mm)], axis=1)
        return phi, Jq, Jp

    def features(self, system: System, q: np.ndarray, p: np.ndarray, graph: GraphBatch | None = None):
        """Phi (S, L) only."""
        g = graph if graph is not None else batch_graph(system, q)
        f, _ = self.kinetic(kinetic_inputs(p, system.masses))
        gsum, shift = self._graph_parts(system, g)
        mm = self.pair(g.r, gsum, 0, shift)[0]
        if g.weight is not None:
            mm = mm * g.weight[:, None]
        return np.concatenate([f.sum(axis=1), g.pool(mm)], axis=1)

    # -- contracted with theta (rollouts) ------------------------------
    def kinetic_part(self, masses: np.ndarray, p: np.ndarray, theta_T: np.ndarray, energy: bool = True):
        """(T (S,) or None, dT/dp like p) for p (S, N, d)."""
        k = kinetic_inputs(p, masses)
        f, df = self.kinetic(k)
        grad = (df @ theta_T)[..., None] * p / masses[:, None]
        return ((f @ theta_T).sum(axis=-1) if energy else None), grad

    def potential_part(self, system: System, g: GraphBatch, theta_V: np.ndarray, energy: bool = True,
                       chunk: int = 65536):
        """(V (S,) or None, dV/dq (S, N, d)) from the exact network, in edge chunks."""
        gsum_all, shift = self._graph_parts(system, g)
        fp = np.empty(g.P)
        fv = np.empty(g.P) if energy else None
        for a in range(0, g.P, chunk):
            b = min(a + chunk, g.P)
            gs = gsum_all[a:b] if gsum_all.shape[0] > 1 else gsum_all
            res = self.pair(g.r[a:b], gs, 1, shift)
            fp[a:b] = res[1] @ theta_V
            if energy:
                fv[a:b] = res[0] @ theta_V
        return self._assemble_potential(g, fv, fp)

    @staticmethod
    def _assemble_potential(g: GraphBatch, fv, fp):
        if g.weight is not None:
            fp = fp * g.weight
            fv = None if fv is None else fv * g.weight
        vec = (fp / g.r)[:, None] * g.delta
        grad = g.scatter_signed(vec).reshape(g.S, g.N, g.d)
        V = None if fv is None else g.pool(fv[:, None])[:, 0]
        return V, grad

    def evaluate(self, system: System, q: np.ndarray, p: np.ndarray, theta: np.ndarray,
                 graph: GraphBatch | None = None, energy: bool = True):
        """(theta . Phi (S,) or None, dH/dq, dH/dp) for q, p (S, N, d)."""
        g = graph if graph is not None else batch_graph(system, q)
        T, gp = self.kinetic_part(system.masses, p, theta[self.p_cols], energy)
        V, gq = self.potential_part(system, g, theta[self.q_cols], energy)
        return (T + V if energy else None), gq, gp

    # -- sampling helpers ------------------------------------------------
    def layer_names(self) -> list[str]:
        return ["kin", "static", "edge", "msg"]

    # -- storage ---------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for name in ("kin", "static", "edge", "msg"):
            layer = getattr(self, name)
            out[f"{name}_W"], out[f"{name}_b"] = layer.W, layer.b
        return out

    @classmethod
    def from_arrays(cls, arrays: dict, linear_kinetic: bool, cutoff_shift: bool,
                    pool_edges: bool) -> "InvariantNetwork":
        layers = [Dense(np.asarray(arrays[f"{n}_W"], dtype=np.float64), np.asarray(arrays[f"{n}_b"], dtype=np.float64))
                  for n in ("kin", "static", "edge", "msg")]
        return cls(*layers, linear_kinetic=linear_kinetic, cutoff_shift=cutoff_shift, pool_edges=pool_edges)


# ======================================================================
class FrameNetwork:
    """Non-separable RF-HGN in the paper's frame (see the module notes)."""

    encoding = "frame"
    separable = False

    def __init__(self, node: Dense, edge: Dense, msg: Dense, dim: int, pool_edges: bool = True,
                 rule: str = DEFAULT_FRAME_RULE):
        if rule not in FRAME_RULES:
            raise HGNError(f"frame rule {rule!r} is not one of {', '.join(FRAME_RULES)}")
        self.rule = rule
        self.node, self.edge, self.msg = node, edge, msg
        self.dim = int(dim)
        self.pool_edges = bool(pool_edges)
        if node.n_in != 2 * dim + 1 or edge.n_in != 1 + dim:
            raise HGNError(f"frame network layers do not match dimension {dim}")
        if msg.n_in != node.n_out + edge.n_out:
            raise HGNError("message layer input width must be node width + edge width")
        self.n_h = node.n_out
        self.n_e = edge.n_out if self.pool_edges else 0
        self.n_M = msg.n_out
        self.L = self.n_h + self.n_e + self.n_M
        self.p_cols = slice(0, self.L)
        self.q_cols = slice(0, self.L)

    # -- inputs ------------------------------------------------------------
    def inputs(self, system: System, q: np.ndarray, p: np.ndarray, graph: GraphBatch | None = None):
        """Frame, node inputs (S*N, 2d+1), edge inputs (P, 1+d), graph, and
        (q_bar, p_bar, delta_bar)."""
        check_frame_system(system)
        S, N, d = q.shape
        g = graph if graph is not None else batch_graph(system, q)
        fr = build_frame(q, self.rule)
        qb, pb = encode(fr, p)
        masses = np.broadcast_to(system.masses[None, :, None], (S, N, 1))
        xn = np.concatenate([qb, pb, masses], axis=2).reshape(S * N, 2 * d + 1)
        db = np.einsum("pk,pkl->pl", g.delta, fr.B[g.snap])
        xe = np.concatenate([g.r[:, None], db * db], axis=1)
        return fr, xn, xe, g, db

    def _forward(self, system, q, p, graph):
        fr, xn, xe, g, db = self.inputs(system, q, p, graph)
        h = self.node(xn)
        e = self.edge(xe)
        hs = h[g.gi] + h[g.gj]
        m = np.tanh(hs @ self.msg.W[:, :self.n_h].T + e @ self.msg.W[:, self.n_h:].T + self.msg.b)
        return fr, g, db, h, e, m

    def _pooled(self, S, N, g, h, e, m):
        em = np.concatenate([e, m], axis=1) if self.pool_edges else m
        if g.weight is not None:
            em = em * g.weight[:, None]
        return np.concatenate([h.reshape(S, N, -1).sum(axis=1), g.pool(em)], axis=1)

    def features(self, system: System, q: np.ndarray, p: np.ndarray, graph: GraphBatch | None = None):
        S, N, d = q.shape
        fr, g, db, h, e, m = self._forward(system, q, p, graph)
        return self._pooled(S, N, g, h, e, m)

    def jacobians(self, system: System, q: np.ndarray, p: np.ndarray, graph: GraphBatch | None = None):
        """Phi (S, L), dPhi/dq and dPhi/dp (S, N, d, L)."""
        S, N, d = q.shape
        fr, g, db, h, e, m = self._forward(system, q, p, graph)
        nh, ne, nM = self.n_h, self.n_e, self.n_M
        WMh, WMe = self.msg.W[:, :nh], self.msg.W[:, nh:]
        sh = 1.0 - h * h  # (SN, nh)
        se = 1.0 - e * e  # (P, nE)
        sm = 1.0 - m * m
        if g.weight is not None:
            sm = sm * g.weight[:, None]
            sew = se * g.weight[:, None]
        else:
            sew = se
        ub = db / g.r[:, None]  # d r / d q_bar_i
        G = np.zeros((S * N, d, self.L))
        Pg = np.zeros((S * N, d, self.L))
        dmi = np.empty((g.P, 2, d, nM))  # [q or p, coordinate] for node i
        dmj = np.empty((g.P, 2, d, nM))
        V0 = (se * self.edge.W[:, 0]) @ WMe.T  # dz/dr (P, nM)
        for c in range(d):
            dh_q = sh * self.node.W[:, c]  # dh/dq_bar_c (SN, nh)
            dh_p = sh * self.node.W[:, d + c]
            G[:, c, :nh] = dh_q
            Pg[:, c, :nh] = dh_p
            Uq = dh_q @ WMh.T  # (SN, nM)
            Up = dh_p @ WMh.T
            Vc = (se * self.edge.W[:, 1 + c]) @ WMe.T  # dz/d(db_c^2)
            edge_part = V0 * ub[:, c:c + 1] + Vc * (2.0 * db[:, c:c + 1])
            if ne:
                dedc = sew * (self.edge.W[:, 0] * ub[:, c:c + 1] + self.edge.W[:, 1 + c] * (2.0 * db[:, c:c + 1]))
                G[:, c, nh:nh + ne] = g.scatter_signed(dedc)
            dmi[:, 0, c] = sm * (Uq[g.gi] + edge_part)
            dmj[:, 0, c] = sm * (Uq[g.gj] - edge_part)
            dmi[:, 1, c] = sm * Up[g.gi]
            dmj[:, 1, c] = sm * Up[g.gj]
        node_grad = g.scatter_i(dmi) + g.scatter_j(dmj)  # (SN, 2, d, nM)
        G[:, :, nh + ne:] = node_grad[:, 0]
        Pg[:, :, nh + ne:] = node_grad[:, 1]
        phi = self._pooled(S, N, g, h, e, m)
        dq, dp = frame_adjoint(fr, p, G.reshape(S, N, d, self.L), Pg.reshape(S, N, d, self.L))
        return phi, dq, dp

    def evaluate(self, system: System, q: np.ndarray, p: np.ndarray, theta: np.ndarray,
                 graph: GraphBatch | None = None, energy: bool = True):
        """(theta . Phi (S,), dH/dq, dH/dp) by reverse mode."""
        S, N, d = q.shape
        fr, g, db, h, e, m = self._forward(system, q, p, graph)
        nh, ne = self.n_h, self.n_e
        WMh, WMe = self.msg.W[:, :nh], self.msg.W[:, nh:]
        th_h, th_e, th_m = theta[:nh], theta[nh:nh + ne], theta[nh + ne:]
        w = 1.0 if g.weight is None else g.weight[:, None]
        gz = (w * th_m) * (1.0 - m * m)  # (P, nM)
        gh_edge = gz @ WMh  # (P, nh)
        gh = th_h + g.scatter_i(gh_edge) + g.scatter_j(gh_edge)
        gxn = (gh * (1.0 - h * h)) @ self.node.W  # (SN, 2d+1)
        ge = gz @ WMe
        if ne:
            ge = ge + w * th_e
        gxe = (ge * (1.0 - e * e)) @ self.edge.W  # (P, 1+d)
        ub = db / g.r[:, None]
        evec = gxe[:, :1] * ub + gxe[:, 1:] * 2.0 * db
        Gq = gxn[:, :d] + g.scatter_signed(evec)
        Gp = gxn[:, d:2 * d]
        dq, dp = frame_adjoint(fr, p, Gq.reshape(S, N, d, 1), Gp.reshape(S, N, d, 1))
        H = self._pooled(S, N, g, h, e, m) @ theta if energy else None
        return H, dq[..., 0], dp[..., 0]

    def layer_names(self) -> list[str]:
        return ["node", "edge", "msg"]

    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for name in ("node", "edge", "msg"):
            layer = getattr(self, name)
            out[f"{name}_W"], out[f"{name}_b"] = layer.W, layer.b
        return out

    @classmethod
    def from_arrays(cls, arrays: dict, dim: int, pool_edges: bool, rule: str = DEFAULT_FRAME_RULE) -> "FrameNetwork":
        layers = [Dense(np.asarray(arrays[f"{n}_W"], dtype=np.float64), np.asarray(arrays[f"{n}_b"], dtype=np.float64))
                  for n in ("node", "edge", "msg")]
        return cls(*layers, dim=dim, pool_edges=pool_edges, rule=rule)
