"""The RF-HGN network in torch with every layer trainable (docs/method.md section 7).

:class:`TorchHGN` is layer for layer the network of :mod:`core.learning.rfhgn.network`
(same inputs, widths, tanh activations, pooling and linear output), so that a
gradient-trained baseline and an RF-HGN differ only in how the weights are
found. With the same weights both give the same H and gradients (checked to
1e-10 in float64 by tests/core/baselines).

Invariant encoding (separable)::

    k_i  = |p_i|^2 / (2 m_i)
    h_i  = tanh(W_K k_i + b_K) - tanh(b_K)      kinetic encoder ("kin"; zero at rest)
    g_i  = tanh(W_S m_i + b_S)                  static encoder ("static", may be empty)
    e_ij = tanh(W_E r_ij + b_E)                 edge encoder ("edge")
    m_ij = tanh(W_M [g_i + g_j, e_ij] + b_M)    message ("msg")
    H    = theta . [sum_i h_i, (sum_i k_i), sum_edges w_ij ([e_ij, m_ij] - [e, m]|r=r_c)] (+ c)

([e, m] pooled only with ``pool_edges``; the cutoff shift only for cutoff
systems with ``cutoff_shift``.)

Frame encoding (the paper's; not separable)::

    x_i  = [q_bar_i, p_bar_i, m_i],  x_ij = [r_ij, (q_bar_i - q_bar_j)^2 per axis]
    h_i  = tanh(W_V x_i + b_V)                  node encoder ("node")
    e_ij = tanh(W_E x_ij + b_E)                 edge encoder ("edge")
    m_ij = tanh(W_M [h_i + h_j, e_ij] + b_M)    message ("msg")
    H    = theta . [sum_i h_i, sum_edges w_ij [e_ij, m_ij]] (+ c)

with the frame of :func:`core.learning.rfhgn.encoding.build_frame` (its choice of the
particles a and b is discrete and taken from numpy; everything continuous is
differentiated by torch).

Parameterisation. Each encoder that reads raw inputs (kin, static, edge,
node) first standardises them with fixed buffers ``<layer>_mu`` and
``<layer>_s`` (mean and spread of the training inputs): the trainable
``<layer>_W`` acts on (x - mu) / s. This is the input normalisation any
practitioner adds in front of a network; it is a fixed affine map, so the
function class is exactly RF-HGN's, and :meth:`TorchHGN.raw_arrays` folds it
back into raw weights (W_raw = W / s, b_raw = b - W_raw . mu) in the layout of
``network.to_arrays()``.

Graphs. :class:`TorchGraph` holds the edges of a batch of snapshots (from
:func:`core.learning.rfhgn.graphs.batch_graph`): global node indices, the constant
periodic-image shift of every pair, the per-edge weights, and for the frame
encoding the frame's particle choice. A graph of all training snapshots is
built once; :meth:`TorchGraph.select` cuts minibatches out of it.
"""
from __future__ import annotations

import numpy as np
import torch

from core.errors import HGNError
from core.physics.system import System

#: names of the layers that read raw inputs, per encoding, and their input widths
def _input_layers(encoding: str, dim: int) -> dict[str, int]:
    if encoding == "invariant":
        return {"kin": 1, "static": 1, "edge": 1}
    return {"node": 2 * dim + 1, "edge": 1 + dim}


def _tdtype(dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    return {"float32": torch.float32, "float64": torch.float64}[str(dtype)]


# ======================================================================
class TorchGraph:
    """Edges of S snapshots, flattened (see the module notes)."""

    def __init__(self, S, N, d, i, j, snap, shift, weight, frame=None, offsets=None):
        self.S, self.N, self.d = int(S), int(N), int(d)
        self.i = np.asarray(i, dtype=np.int64)  # local particle indices
        self.j = np.asarray(j, dtype=np.int64)
        self.snap = np.asarray(snap, dtype=np.int64)
        self.shift = np.asarray(shift, dtype=np.float64)  # (P, d) delta = q_i - q_j + shift
        self.weight = None if weight is None else np.asarray(weight, dtype=np.float64)
        #: (a, b, xb_fixed) of the frame per snapshot (frame encoding) or None
        self.frame = frame
        if offsets is None:
            offsets = np.searchsorted(self.snap, np.arange(self.S + 1))
            if self.snap.size and np.any(np.diff(self.snap) < 0):
                raise HGNError("internal: graph edges must be ordered by snapshot")
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self._cache: dict = {}

    @property
    def P(self) -> int:
        return int(self.i.shape[0])

    @classmethod
    def build(cls, system: System, q: np.ndarray, encoding: str, pairs=None) -> "TorchGraph":
        """Graph of the snapshots q (S, N, d) of ``system`` (``pairs``: optional
        candidate pairs of a cutoff system, as for batch_graph)."""
        from ..rfhgn.graphs import batch_graph

        q = np.asarray(q, dtype=np.float64)
        g = batch_graph(system, q, pairs)
        raw = q[g.snap, g.i] - q[g.snap, g.j]
        frame = None
        if encoding == "frame":
            from ..rfhgn.encoding import build_frame, check_frame_system

            check_frame_system(system)
            fr = build_frame(q)
            frame = (fr.a.copy(), fr.b.copy(), fr.xb.copy())
        return cls(g.S, g.N, g.d, g.i, g.j, g.snap, g.delta - raw, g.weight, frame)

    def select(self, idx) -> "TorchGraph":
        """The graph of the snapshots ``idx`` (in that order)."""
        idx = np.asarray(idx, dtype=np.int64)
        start, stop = self.offsets[idx], self.offsets[idx + 1]
        counts = stop - start
        total = int(counts.sum())
        new_off = np.concatenate([[0], np.cumsum(counts)])
        eids = np.arange(total) - np.repeat(new_off[:-1] - start, counts)
        snap = np.repeat(np.arange(len(idx)), counts)
        frame = None if self.frame is None else tuple(x[idx] for x in self.frame)
        return TorchGraph(len(idx), self.N, self.d, self.i[eids], self.j[eids], snap, self.shift[eids],
                          None if self.weight is None else self.weight[eids], frame, new_off)

    def tensors(self, dtype: torch.dtype) -> dict:
        """Torch views of the index and constant arrays (cached per dtype)."""
        t = self._cache.get(dtype)
        if t is None:
            t = {"i": torch.from_numpy(self.i), "j": torch.from_numpy(self.j),
                 "snap": torch.from_numpy(self.snap),
                 "gi": torch.from_numpy(self.snap * self.N + self.i),
                 "gj": torch.from_numpy(self.snap * self.N + self.j),
                 "shift": torch.from_numpy(self.shift).to(dtype),
                 "weight": None if self.weight is None else torch.from_numpy(self.weight).to(dtype)[:, None]}
            if self.frame is not None:
                a, b, xb = self.frame
                t["has_a"] = torch.from_numpy(a >= 0)
                t["a"] = torch.from_numpy(np.maximum(a, 0))
                t["has_b"] = torch.from_numpy(b >= 0)
                t["b"] = torch.from_numpy(np.maximum(b, 0))
                t["xb"] = torch.from_numpy(xb).to(dtype)
            self._cache[dtype] = t
        return t


# ======================================================================
class TorchHGN(torch.nn.Module):
    """The RF-HGN architecture with trainable layers (see the module notes).

    Build it with :meth:`from_network` (weights of a sampled or fitted
    ``core.learning.rfhgn`` network) or :meth:`empty` (zeros, then :meth:`init_torch`).
    ``forward(graph, q, p)`` returns theta . Phi (S,), without the constant.
    """

    def __init__(self, encoding: str, dim: int, widths: dict[str, int], *, linear_kinetic: bool = True,
                 pool_edges: bool = True, cutoff_shift: bool = True, masses=None, cutoff=None):
        super().__init__()
        if encoding not in ("invariant", "frame"):
            raise HGNError(f"unknown encoding {encoding!r}")
        self.encoding = encoding
        self.dim = int(dim)
        self.linear_kinetic = bool(linear_kinetic) and encoding == "invariant"
        self.pool_edges = bool(pool_edges)
        self.cutoff_shift = bool(cutoff_shift)
        self.widths = {k: int(v) for k, v in widths.items()}
        ins = _input_layers(encoding, self.dim)
        if encoding == "invariant":
            n_in_msg = self.widths["static"] + self.widths["edge"]
            self.layer_names = ["kin", "static", "edge", "msg"]
        else:
            n_in_msg = self.widths["node"] + self.widths["edge"]
            self.layer_names = ["node", "edge", "msg"]
        shapes = {name: (self.widths[name], ins.get(name, n_in_msg)) for name in self.layer_names}
        for name, (o, i) in shapes.items():
            self.register_parameter(f"{name}_W", torch.nn.Parameter(torch.zeros(o, i, dtype=torch.float64)))
            self.register_parameter(f"{name}_b", torch.nn.Parameter(torch.zeros(o, dtype=torch.float64)))
            if name in ins:
                self.register_buffer(f"{name}_mu", torch.zeros(i, dtype=torch.float64))
                self.register_buffer(f"{name}_s", torch.ones(i, dtype=torch.float64))
        self.register_parameter("theta", torch.nn.Parameter(torch.zeros(self.n_features, dtype=torch.float64)))

    # ------------------------------------------------------------------
    @property
    def separable(self) -> bool:
        return self.encoding == "invariant"

    @property
    def n_T(self) -> int:
        """Kinetic feature columns (invariant encoding)."""
        return self.widths["kin"] + int(self.linear_kinetic) if self.encoding == "invariant" else 0

    @property
    def n_features(self) -> int:
        w = self.widths
        pooled = w["msg"] + (w["edge"] if self.pool_edges else 0)
        if self.encoding == "invariant":
            return w["kin"] + int(self.linear_kinetic) + pooled
        return w["node"] + pooled

    @property
    def dtype(self) -> torch.dtype:
        return self.theta.dtype

    def n_parameters(self) -> int:
        return int(sum(p.numel() for p in self.parameters()))

    # -- construction --------------------------------------------------
    @classmethod
    def from_network(cls, network, theta=None, normalisation: dict | None = None) -> "TorchHGN":
        """A TorchHGN with the weights of a ``core.learning.rfhgn`` network (and output
        layer ``theta``, zeros when None). ``normalisation``: {layer: (mu, s)}
        for the input layers (identity when None)."""
        from ..rfhgn.network import FrameNetwork, InvariantNetwork

        if isinstance(network, InvariantNetwork):
            widths = {"kin": network.kin.n_out, "static": network.static.n_out,
                      "edge": network.edge.n_out, "msg": network.msg.n_out}
            mod = cls("invariant", 0, widths, linear_kinetic=network.linear_kinetic,
                      pool_edges=network.pool_edges, cutoff_shift=network.cutoff_shift)
        elif isinstance(network, FrameNetwork):
            widths = {"node": network.node.n_out, "edge": network.edge.n_out, "msg": network.msg.n_out}
            mod = cls("frame", network.dim, widths, pool_edges=network.pool_edges)
        else:
            raise HGNError(f"not an RF-HGN network: {type(network).__name__}")
        for name, (mu, s) in (normalisation or {}).items():
            mod.set_normalisation(name, mu, s)
        mod.load_raw(network.to_arrays(), theta)
        return mod

    def set_normalisation(self, name: str, mu, s) -> None:
        mu = torch.as_tensor(np.asarray(mu, dtype=np.float64).reshape(-1))
        s = torch.as_tensor(np.asarray(s, dtype=np.float64).reshape(-1))
        buf_mu, buf_s = getattr(self, f"{name}_mu"), getattr(self, f"{name}_s")
        if mu.shape != buf_mu.shape or s.shape != buf_s.shape or bool((s <= 0).any()):
            raise HGNError(f"normalisation of layer {name} must be {tuple(buf_mu.shape)} with positive spreads")
        with torch.no_grad():
            buf_mu.copy_(mu.to(buf_mu.dtype))
            buf_s.copy_(s.to(buf_s.dtype))

    def load_raw(self, arrays: dict, theta=None) -> None:
        """Set the weights from raw arrays (layout of ``network.to_arrays()``),
        converting them into the normalised parameterisation."""
        with torch.no_grad():
            for name in self.layer_names:
                W = np.asarray(arrays[f"{name}_W"], dtype=np.float64)
                b = np.asarray(arrays[f"{name}_b"], dtype=np.float64)
                pW, pb = getattr(self, f"{name}_W"), getattr(self, f"{name}_b")
                if W.shape != tuple(pW.shape) or b.shape != tuple(pb.shape):
                    raise HGNError(f"layer {name}: weights {W.shape}/{b.shape} do not fit {tuple(pW.shape)}")
                if hasattr(self, f"{name}_mu"):
                    mu = getattr(self, f"{name}_mu").double().numpy()
                    s = getattr(self, f"{name}_s").double().numpy()
                    b = b + W @ mu  # b_raw = b - (W s^-1) mu  <=>  b = b_raw + W_raw mu
                    W = W * s
                pW.copy_(torch.from_numpy(W).to(pW.dtype))
                pb.copy_(torch.from_numpy(b).to(pb.dtype))
            if theta is not None:
                th = np.asarray(theta, dtype=np.float64).reshape(-1)
                if th.shape != tuple(self.theta.shape):
                    raise HGNError(f"output layer has {th.shape[0]} weights, the network needs {self.n_features}")
                self.theta.copy_(torch.from_numpy(th).to(self.theta.dtype))

    def raw_arrays(self) -> dict[str, np.ndarray]:
        """Raw float64 weights (normalisation folded in), keyed like
        ``network.to_arrays()``, plus ``theta``."""
        out = {}
        with torch.no_grad():
            for name in self.layer_names:
                W = getattr(self, f"{name}_W").double().numpy().copy()
                b = getattr(self, f"{name}_b").double().numpy().copy()
                if hasattr(self, f"{name}_mu"):
                    mu = getattr(self, f"{name}_mu").double().numpy()
                    s = getattr(self, f"{name}_s").double().numpy()
                    W = W / s
                    b = b - W @ mu
                out[f"{name}_W"], out[f"{name}_b"] = W, b
            out["theta"] = self.theta.double().numpy().copy()
        return out

    def to_network(self):
        """The equivalent ``core.learning.rfhgn`` network (float64) and theta."""
        from ..rfhgn.network import FrameNetwork, InvariantNetwork

        arrays = self.raw_arrays()
        theta = arrays.pop("theta")
        if self.encoding == "invariant":
            net = InvariantNetwork.from_arrays(arrays, self.linear_kinetic, self.cutoff_shift, self.pool_edges)
        else:
            net = FrameNetwork.from_arrays(arrays, self.dim, self.pool_edges)
        return net, theta

    def init_torch(self, generator: torch.Generator) -> None:
        """PyTorch's nn.Linear initialisation of every layer and of theta:
        U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (on normalised inputs)."""
        with torch.no_grad():
            for name in self.layer_names:
                W, b = getattr(self, f"{name}_W"), getattr(self, f"{name}_b")
                bound = 1.0 / max(W.shape[1], 1) ** 0.5
                W.copy_((torch.rand(W.shape, generator=generator, dtype=torch.float64) * 2 - 1).to(W.dtype) * bound)
                b.copy_((torch.rand(b.shape, generator=generator, dtype=torch.float64) * 2 - 1).to(b.dtype) * bound)
        self.init_theta(generator)

    def init_theta(self, generator: torch.Generator) -> None:
        with torch.no_grad():
            bound = 1.0 / max(self.n_features, 1) ** 0.5
            self.theta.copy_((torch.rand(self.theta.shape, generator=generator, dtype=torch.float64) * 2 - 1)
                             .to(self.theta.dtype) * bound)

    # -- evaluation ------------------------------------------------------
    def _dense(self, name: str, x):
        if hasattr(self, f"{name}_mu"):
            x = (x - getattr(self, f"{name}_mu")) / getattr(self, f"{name}_s")
        return torch.tanh(x @ getattr(self, f"{name}_W").T + getattr(self, f"{name}_b"))

    def kinetic(self, p, masses):
        """theta_T . Phi_T(p) (S,) of the invariant encoding."""
        k = 0.5 * (p * p).sum(-1) / masses  # (S, N)
        # features vanish at rest (T_hat(p = 0) = 0), as in core.learning.rfhgn
        h = self._dense("kin", k[..., None]) - self._dense("kin", torch.zeros((1, 1), dtype=k.dtype))
        phi = h.sum(1)
        if self.linear_kinetic:
            phi = torch.cat([phi, k.sum(1, keepdim=True)], dim=1)
        return phi @ self.theta[:self.n_T]

    def _pool(self, vals, snap, S):
        out = torch.zeros((S,) + tuple(vals.shape[1:]), dtype=vals.dtype)
        return out.index_add(0, snap, vals)

    def _deltas(self, t, q):
        S, N, d = q.shape
        qf = q.reshape(S * N, d)
        delta = qf[t["gi"]] - qf[t["gj"]] + t["shift"]
        return delta, torch.sqrt((delta * delta).sum(-1))

    def potential(self, graph: TorchGraph, q, masses, cutoff: float | None):
        """theta_V . Phi_V(q) (S,) of the invariant encoding."""
        t = graph.tensors(q.dtype)
        _, r = self._deltas(t, q)
        nS = self.widths["static"]
        WM, bM = self.msg_W, self.msg_b
        if nS:
            gm = self._dense("static", masses[:, None])  # (N, nS)
            zs = (gm[t["i"]] + gm[t["j"]]) @ WM[:, :nS].T + bM
        else:
            zs = bM
        e = self._dense("edge", r[:, None])
        m = torch.tanh(e @ WM[:, nS:].T + zs)
        feats = torch.cat([e, m], 1) if self.pool_edges else m
        if cutoff is not None and self.cutoff_shift:
            rc = torch.full((1, 1), float(cutoff), dtype=q.dtype)
            ec = self._dense("edge", rc)
            mc = torch.tanh(ec @ WM[:, nS:].T + zs)
            feats = feats - (torch.cat([ec.expand(mc.shape[0], -1), mc], 1) if self.pool_edges else mc)
        if t["weight"] is not None:
            feats = feats * t["weight"]
        return self._pool(feats, t["snap"], graph.S) @ self.theta[self.n_T:]

    def frame_features(self, graph: TorchGraph, q, p, masses):
        """Phi (S, L) of the frame encoding."""
        t = graph.tensors(q.dtype)
        S, N, d = q.shape
        delta, r = self._deltas(t, q)
        x = q - q.mean(1, keepdim=True)
        rows = torch.arange(S)
        xa = x[rows, t["a"]]
        e1_fixed = torch.zeros((S, d), dtype=q.dtype)
        e1_fixed[:, 0] = 1.0
        e1 = torch.where(t["has_a"][:, None], xa / torch.sqrt((xa * xa).sum(-1, keepdim=True)), e1_fixed)
        if d == 2:
            B = torch.stack([e1, torch.stack([-e1[:, 1], e1[:, 0]], 1)], 2)
        else:
            xb = torch.where(t["has_b"][:, None], x[rows, t["b"]], t["xb"])
            u = xb - (xb * e1).sum(-1, keepdim=True) * e1
            e2 = u / torch.sqrt((u * u).sum(-1, keepdim=True))
            B = torch.stack([e1, e2, torch.linalg.cross(e1, e2, dim=1)], 2)
        qb = torch.einsum("sik,skl->sil", x, B)
        pb = torch.einsum("sik,skl->sil", p, B)
        xn = torch.cat([qb, pb, masses[None, :, None].expand(S, N, 1)], 2).reshape(S * N, 2 * d + 1)
        h = self._dense("node", xn)
        db = torch.einsum("pk,pkl->pl", delta, B[t["snap"]])
        e = self._dense("edge", torch.cat([r[:, None], db * db], 1))
        nh = self.widths["node"]
        m = torch.tanh((h[t["gi"]] + h[t["gj"]]) @ self.msg_W[:, :nh].T + e @ self.msg_W[:, nh:].T + self.msg_b)
        em = torch.cat([e, m], 1) if self.pool_edges else m
        if t["weight"] is not None:
            em = em * t["weight"]
        return torch.cat([h.reshape(S, N, nh).sum(1), self._pool(em, t["snap"], S)], dim=1)

    def forward(self, graph: TorchGraph, q, p, masses, cutoff: float | None = None):
        """theta . Phi (S,) for q, p (S, N, d) tensors of the module's dtype."""
        if self.encoding == "invariant":
            return self.kinetic(p, masses) + self.potential(graph, q, masses, cutoff)
        return self.frame_features(graph, q, p, masses) @ self.theta

    def derivatives(self, graph: TorchGraph, q, p, masses, cutoff=None, create_graph: bool = False):
        """(H (S,), dH/dq, dH/dp) by autograd; q and p must require grad.
        ``create_graph`` keeps the graph for a loss on the gradients."""
        H = self.forward(graph, q, p, masses, cutoff)
        gq, gp = torch.autograd.grad(H.sum(), (q, p), create_graph=create_graph)
        return H, gq, gp
