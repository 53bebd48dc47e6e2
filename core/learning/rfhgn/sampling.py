"""Sampling the hidden layers (docs/method.md section 3).

Layers are sampled one after the other, each from the inputs it sees in the
training data: for the invariant network the kinetic encoder from the k_i of
the training nodes, the static encoder from the masses, the edge encoder from
the pair distances of the training edges, and the message layer from
[g_i + g_j, e_ij] of those edges computed with the layers already sampled;
for the frame network the node encoder from [q_bar_i, p_bar_i, m_i], the edge
encoder from [r_ij, (q_bar_i - q_bar_j)^2] and the message layer from
[h_i + h_j, e_ij].

At most ``config.sample_points`` points per layer are used: a random subset
of the training snapshots (all of them when small enough), then a random
subset of its edges. Every random choice comes from one
``numpy.random.Generator(config.seed)``, so a fit is reproducible (and the
weights equal those of the NumPy implementation before the torch core to
round-off: tests/core/rfhgn/test_numpy_reference.py). The layers' inputs are
computed by the torch network (:class:`core.learning.hgn.network.HGN`) on the
fit's device; the points of one layer go to the CPU once for the sampler's
numpy arithmetic, and the sampled weights go into the network with
``HGN.set_layer``. Fixed graphs need no positions to list their edges, so
only the chosen edges' distances are computed.

Samplers:

* **SWIM** (uniform pairs): pick pairs of distinct points (x1, x2) and set
  w = 2 s (x2 - x1)/|x2 - x1|^2, b = -<w, x1> - s with s = ``swim_scale``
  (default 0.2; the paper's ln(3)/2 makes tanh read -1/2 at x1 and +1/2 at
  x2, see docs/method.md section 10.2). Pairs closer than 1e-12 times the
  spread of the points are redrawn. A layer whose points are all equal (e.g.
  the static encoder when every mass is the same) cannot be SWIM-sampled and
  falls back to ELM (its features are then constant on the training data).
  With ``standardise`` (default) the pairs and weights of a layer with more
  than one input are computed in coordinates scaled to mean 0 and standard
  deviation 1 over the layer's points and folded back into W and b: without
  it, w = 2 s (x2 - x1)/|x2 - x1|^2 hardly sees coordinates with a small
  spread (the frame encoding's momenta beside its positions). 1-D layers are
  unaffected (SWIM is scale-free there).
* **ELM**: each input coordinate scaled to [-1, 1] by its training range,
  W ~ N(0, 1), b ~ U(-b0, b0) (folded back into W and b for raw inputs).
* **adaptive**: SWIM with uniform pairs, fit, then for every layer draw
  ``ADAPTIVE_CANDIDATES`` x width candidate pairs uniformly and keep width of
  them with probability proportional to |t(x2) - t(x1)| / |x2 - x1|, where
  t is the fitted local energy of the point (see
  :func:`local_energies`); refit. This is SWIM's gradient-weighted rule with
  the first fit's local energies as layer targets.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from core.errors import HGNError
from core.jobs import check_cancel, report
from core.learning.hgn.fixed import norms, squares, tanh_, workspace
from core.learning.hgn.graph import Graph
from core.learning.hgn.network import HGN
from core.physics.system import System
from .config import RFConfig

#: candidate pairs per neuron drawn by the adaptive sampler
ADAPTIVE_CANDIDATES = 10
#: a share of the uniform distribution mixed into the adaptive probabilities
ADAPTIVE_FLOOR = 0.05


@dataclass
class SampleSet:
    """The training points the layers are sampled from, for one system."""

    system: System
    q: torch.Tensor  # (S', N, d) chosen snapshots, on the fit's device
    p: torch.Tensor
    graph: Graph  # edges of those snapshots
    edges: torch.Tensor  # indices into the graph's edges that are used as points

    def __post_init__(self):
        self._r = None

    def edge_r(self) -> torch.Tensor:
        """|q_i - q_j| (minimum image) of the chosen edges only (computed once)."""
        if self._r is None:
            g = self.graph
            if g.edges is not None and g.E_fixed and self.q.device.type == "cpu":
                # NumPy gathers (the same differences as torch's advanced indexing, measured 5x faster for the
                # 20,000 edges of the 3x3x3 task)
                S, N, d = self.q.shape
                k = self.edges.numpy()
                snap, loc = np.divmod(k, g.E_fixed)
                e = g.edges.numpy()
                qf = self.q.numpy().reshape(S * N, d)
                dl = qf.take(snap * N + e[loc, 0], axis=0)
                dl -= qf.take(snap * N + e[loc, 1], axis=0)
                if g.box is not None:
                    box = g.box.numpy()
                    dl -= box * np.round(dl / box)
                self._r = torch.from_numpy(norms(dl))
            else:
                if g.edges is not None and g.E_fixed:
                    snap = torch.div(self.edges, g.E_fixed, rounding_mode="floor")
                    loc = self.edges - snap * g.E_fixed
                    dl = self.q[snap, g.edges[loc, 0]] - self.q[snap, g.edges[loc, 1]]
                else:
                    qf = self.q.reshape(-1, g.d)
                    dl = qf[g.gi[self.edges]] - qf[g.gj[self.edges]]
                if g.box is not None:
                    dl = dl - g.box * torch.round(dl / g.box)
                self._r = torch.linalg.vector_norm(dl, dim=-1)
        return self._r


def _rows(x, at, device):
    """x[at] as a float64 tensor on ``device`` (x numpy or a tensor; no copy
    for a slice of float64 rows on the same device)."""
    if isinstance(x, torch.Tensor):
        if not isinstance(at, slice):
            at = torch.as_tensor(np.asarray(at), device=x.device)
        return torch.as_tensor(x[at], dtype=torch.float64, device=device)
    x = np.ascontiguousarray(x[at], dtype=np.float64)
    if not x.flags.writeable:
        x = x.copy()  # at most the chosen snapshots
    return torch.as_tensor(x, device=device)


def choose_points(groups: list, config: RFConfig, rng: np.random.Generator, device=None) -> list[SampleSet]:
    """Pick the snapshots and edges that the layers are sampled from.

    ``groups``: (system, q (S, N, d), p (S, N, d)) of the training data (one
    group per system; usually one), numpy arrays or tensors, or (system, q,
    p, rows) where the training snapshots are q[rows], p[rows] (a slice or
    an index array): only the chosen snapshots are copied."""
    budget = max(2, config.sample_points // max(1, len(groups)))
    out = []
    for system, q, p, *rows in groups:
        rows = rows[0] if rows else slice(None)
        S = len(range(*rows.indices(len(q)))) if isinstance(rows, slice) else len(rows)
        N = q.shape[1]
        n_snap = min(S, max(1, math.ceil(budget / max(N, 1))))
        idx = np.sort(rng.permutation(S)[:n_snap]) if n_snap < S else np.arange(S)
        if n_snap < S:
            if isinstance(rows, slice):
                start, _, step = rows.indices(len(q))
                at = start + step * idx
            else:
                at = np.asarray(rows)[idx]
        else:
            at = rows
        q, p = (_rows(x, at, device) for x in (q, p))
        if system.edges is not None:  # fixed graph: its edges need no positions (the fit checks distances)
            g = Graph.fixed(np.asarray(system.edges, dtype=np.int64).reshape(-1, 2), n_snap, N, system.dim,
                            torch.as_tensor(system.masses, dtype=torch.float64, device=q.device),
                            None if system.box is None else torch.as_tensor(system.box, dtype=torch.float64,
                                                                            device=q.device),
                            system.edge_scale, system.cutoff)
        else:
            g = Graph.build(system, q, device=q.device)
        edges = np.arange(g.P)
        if g.P > budget:
            pick = np.zeros(g.P, dtype=bool)  # the chosen edges in increasing order (as np.sort, in O(P))
            pick[rng.choice(g.P, size=budget, replace=False)] = True
            edges = np.flatnonzero(pick)
        out.append(SampleSet(system, q, p, g, torch.as_tensor(edges, device=q.device)))
    return out


# ----------------------------------------------------------------------
#: doubles per chunk of the column statistics (in cache)
STATS_CHUNK = 1 << 15


def _column_sums(X, out, fill=None):
    """sum over the rows of X (n, m) bit for bit as NumPy's ``X.sum(0)`` (which
    adds an outer axis row after row): chunk by chunk in the buffer ``out``
    (k + 1, m) with the running sum as the chunk's first row. ``fill(a, b, x)``
    writes rows a..b into x first (then copied into X); otherwise x = X[a:b]
    or, with ``fill="square"`` and a centre mu as (``"square"``, mu), (X[a:b]
    - mu)^2."""
    n, m = X.shape
    step = out.shape[0] - 1
    s = np.zeros(m)
    for a in range(0, n, step):
        b = min(a + step, n)
        x = out[1:b - a + 1]
        if fill is None:
            x[...] = X[a:b]
        elif isinstance(fill, tuple):
            np.subtract(X[a:b], fill[1], out=x)
            np.multiply(x, x, out=x)
        else:
            fill(a, b, x)
            X[a:b] = x
        out[0] = s
        s = out[:b - a + 1].sum(axis=0)
    return s


class ArrayPoints:
    """The points of a layer as an array X (n, width). ``extremes``: the
    column (lo, hi) when known (else from X). The column mean and sd are
    NumPy's ``X.mean(0)``, ``X.std(0)`` bit for bit, summed in cache-sized
    chunks (measured on the 3x3x3 task's 20,000 x 32 message points: 1.1
    against 2.2 ms)."""

    def __init__(self, X, extremes=None, col_sum=None):
        self.X = np.asarray(X, dtype=np.float64)
        self.n, self.width = self.X.shape
        self._extremes = extremes
        self._sum = col_sum

    def take(self, i) -> np.ndarray:
        return self.X[i]

    def extremes(self):
        """(lo, hi) per column (n > 0)."""
        if self._extremes is None:
            self._extremes = (self.X.min(axis=0), self.X.max(axis=0))
        return self._extremes

    def moments(self):
        """(mean, sd) per column."""
        n, m = self.X.shape
        if n == 0:
            return np.zeros(m), np.zeros(m)
        out = np.empty((max(1, min(n, STATS_CHUNK // max(m, 1))) + 1, m))
        col_sum = self._sum if self._sum is not None else _column_sums(self.X, out)
        mu = col_sum / n
        return mu, np.sqrt(_column_sums(self.X, out, ("square", mu)) / n)


#: doubles per chunk of :class:`TanhPoints`' streamed moments (in the L2 cache)
TANH_CHUNK = 1 << 16


class TanhPoints:
    """The points tanh(r w + b) (n, len(w)) of 1-D inputs r, never stored
    whole: rows are computed when drawn (:meth:`take`), the column extremes
    are the rows at r's extremes (each column is monotone in r) and the
    column mean and sd are streamed chunk by chunk in cache (each chunk's
    own mean and sum of squared deviations, merged by Chan's update: as
    stable as the two-pass formula, one pass over the points). The
    pre-activation is ``torch.addcmul`` as the network's, tanh NumPy's as
    :func:`core.learning.hgn.fixed.tanh_`. Measured on the 3x3x3 task's
    20,000 x 32 message points: 1.5 against 4.5 ms for the stored array and
    its column sums in two passes; the moments agree to round-off."""

    def __init__(self, r, w, b):
        self.r = r.detach().reshape(-1).cpu().contiguous()
        self.w = w.detach().reshape(-1).cpu().contiguous()
        self.b = b.detach().reshape(-1).cpu().contiguous()
        self.n, self.width = len(self.r), len(self.w)
        self._extremes = None

    def take(self, i) -> np.ndarray:
        i = np.asarray(i, dtype=np.int64)
        x = torch.addcmul(self.b, self.r[torch.from_numpy(i.reshape(-1))][:, None], self.w).numpy()
        np.tanh(x, out=x)
        return x.reshape(i.shape + (self.width,))

    def extremes(self):
        """(lo, hi) per column (n > 0)."""
        if self._extremes is None:
            ends = self.take([int(torch.argmin(self.r)), int(torch.argmax(self.r))])
            self._extremes = (ends.min(axis=0), ends.max(axis=0))
        return self._extremes

    def moments(self):
        """(mean, sd) per column."""
        n, m = self.n, self.width
        if n == 0:
            return np.zeros(m), np.zeros(m)
        step = max(1, min(n, TANH_CHUNK // max(m, 1)))
        tb = workspace("sampling.tanh_points", (step, m))
        buf = tb.numpy()
        ones = np.ones(step)  # column sums as BLAS products (measured 7 against 40 us a chunk for x.sum(0))
        mean, m2, count = np.zeros(m), np.zeros(m), 0
        for a in range(0, n, step):
            k = min(a + step, n) - a
            x = buf[:k]
            torch.addcmul(self.b, self.r[a:a + k, None], self.w, out=tb[:k])
            np.tanh(x, out=x)
            mc = (ones[:k] @ x) / k
            x -= mc
            np.multiply(x, x, out=x)
            m2c = ones[:k] @ x
            if count == 0:
                mean, m2 = mc, m2c
            else:
                total = count + k
                delta = mc - mean
                mean = mean + delta * (k / total)
                m2 = m2 + m2c + delta * delta * (count * k / total)
            count += k
        return mean, np.sqrt(m2 / n)


def _points(X):
    if isinstance(X, (ArrayPoints, TanhPoints)):
        return X
    X = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X, dtype=np.float64)
    return ArrayPoints(X)


def swim_layer(X, width: int, rng: np.random.Generator, s: float,
               weights: np.ndarray | None = None, scale: tuple | None = None):
    """SWIM with uniform pairs (``weights`` None) or pairs drawn with
    probability proportional to ``weights`` over ``ADAPTIVE_CANDIDATES*width``
    uniform candidates (``weights`` is then a function of the pair indices).
    ``X``: the points, an array (n, in) or :class:`ArrayPoints`. ``scale`` = (mu, sd): sample in the points
    (X - mu) / sd (only the drawn rows are transformed; the spread from the
    transformed column extremes, which are the extremes transformed, rounding
    being monotone). Returns (W (width, in), b (width,)) numpy, or None when
    the points do not vary (the caller falls back to ELM)."""
    pts = _points(X)
    n = pts.n
    if width == 0:
        return np.zeros((0, pts.width)), np.zeros(0)
    lo, hi = pts.extremes() if n else (None, None)
    if scale is None:
        def rows(i):
            return pts.take(i)
        spread = float(np.max(hi - lo)) if n else 0.0
    else:
        mu, sd = scale

        def rows(i):
            return (pts.take(i) - mu) / sd
        spread = float(np.max((hi - mu) / sd - (lo - mu) / sd)) if n else 0.0
    if n < 2 or spread == 0.0:
        return None  # caller falls back to ELM
    tiny = (1e-12 * spread) ** 2

    def draw(k):
        i1 = rng.integers(0, n, size=k)
        i2 = rng.integers(0, n, size=k)
        for _ in range(100):
            dx = rows(i2) - rows(i1)
            dist2 = np.einsum("ij,ij->i", dx, dx)
            bad = dist2 <= tiny
            if not bad.any():
                break
            i1[bad] = rng.integers(0, n, size=int(bad.sum()))
            i2[bad] = rng.integers(0, n, size=int(bad.sum()))
        else:
            raise HGNError("could not find distinct pairs of training points to sample a layer from "
                           "(the training data hardly vary); use more varied data or the ELM sampler")
        return i1, i2

    if weights is None:
        i1, i2 = draw(width)
    else:
        c1, c2 = draw(ADAPTIVE_CANDIDATES * width)
        dx = rows(c2) - rows(c1)
        score = np.abs(weights[c2] - weights[c1]) / np.sqrt(np.einsum("ij,ij->i", dx, dx))
        total = score.sum()
        prob = np.full(len(score), 1.0 / len(score))
        if np.isfinite(total) and total > 0:
            prob = (1.0 - ADAPTIVE_FLOOR) * score / total + ADAPTIVE_FLOOR / len(score)
        pick = rng.choice(len(score), size=width, replace=False, p=prob)
        i1, i2 = c1[pick], c2[pick]
    x1, x2 = rows(i1), rows(i2)
    diff = x2 - x1
    W = 2.0 * s * diff / np.einsum("ij,ij->i", diff, diff)[:, None]
    b = -np.einsum("ij,ij->i", W, x1) - s
    return W, b


def elm_layer(X: np.ndarray, width: int, rng: np.random.Generator, b0: float):
    """ELM: inputs scaled to [-1, 1] per coordinate, W ~ N(0, 1), b ~ U(-b0, b0);
    (W, b) numpy."""
    pts = _points(X)
    n_in = pts.width
    lo, hi = pts.extremes() if pts.n else (np.zeros(n_in), np.zeros(n_in))
    half = 0.5 * (hi - lo)
    mid = 0.5 * (hi + lo)
    half = np.where(half > 0, half, np.maximum(np.abs(mid), 1.0))
    W0 = rng.standard_normal((width, n_in))
    bias = rng.uniform(-b0, b0, size=width) if b0 > 0 else np.zeros(width)
    W = W0 / half
    return W, bias - W @ mid


def _layer(X, width, config: RFConfig, rng, weights=None):
    pts = _points(X)
    if config.sampler == "elm":
        return elm_layer(pts, width, rng, config.elm_bias)
    if config.standardise and pts.width > 1:
        # SWIM in per-coordinate standardised inputs, folded back into W and b
        mu, sd = pts.moments()
        sd = np.where(sd > 0, sd, 1.0)
        layer = swim_layer(pts, width, rng, config.swim_scale, weights, (mu, sd))
        if layer is not None:
            W = layer[0] / sd
            layer = (W, layer[1] - W @ mu)
    else:
        layer = swim_layer(pts, width, rng, config.swim_scale, weights)
    if layer is None:
        layer = elm_layer(pts, width, rng, config.elm_bias)
    return layer


def empty_network(config: RFConfig, dim: int, device=None) -> HGN:
    """The configured network with zero weights, float64, on ``device``."""
    if config.encoding == "invariant":
        widths = {"kin": config.node_width, "static": config.static_width, "edge": config.edge_width,
                  "msg": config.message_width}
    else:
        widths = {"node": config.node_width, "edge": config.edge_width, "msg": config.message_width}
    return HGN(config.encoding, dim, widths, linear_kinetic=config.linear_kinetic, pool_edges=config.pool_edges,
               cutoff_shift=config.cutoff_shift, frame_rule=config.frame_rule, dtype=torch.float64,
               device=device if device is not None else "cpu")


def _kinetic_inputs(s: SampleSet):
    """k = |p_i|^2 / (2 m_i) of the sample set's particles, flattened."""
    if s.p.device.type == "cpu" and s.p.dtype == torch.float64 and not s.p.requires_grad:
        S, N, _ = s.p.shape  # NumPy's column sums (fixed.squares): 5x faster than torch's sum over d = 3
        return torch.from_numpy((0.5 * squares(s.p).reshape(S, N) / s.graph.masses.numpy()).reshape(-1))
    return (0.5 * (s.p * s.p).sum(-1) / s.graph.masses).reshape(-1)


# ----------------------------------------------------------------------
@torch.no_grad()
def sample_network(config: RFConfig, sets: list[SampleSet], rng: np.random.Generator,
                   targets: list[dict] | None = None, progress=None, cancel=None) -> HGN:
    """Sample every hidden layer of the configured network from the points;
    returns the network (theta zero) on the points' device.

    ``targets``: per sample set, a dict layer name -> local energy per point
    (from :func:`local_energies`) for the adaptive rule; None = uniform pairs.
    """
    dim = sets[0].system.dim
    if any(s.system.dim != dim for s in sets):
        raise HGNError("all training systems of one fit must have the same dimension")
    net = empty_network(config, dim, sets[0].q.device)

    def tgt(name):
        if targets is None:
            return None
        return np.concatenate([t[name] for t in targets])

    if config.encoding == "invariant":
        k = torch.cat([_kinetic_inputs(s) for s in sets])[:, None]
        net.set_layer("kin", *_layer(k, config.node_width, config, rng, tgt("kin")))
        report(progress, "sample", 0.25)
        check_cancel(cancel)
        if config.static_width:
            masses = np.concatenate([s.system.masses for s in sets])[:, None]
            net.set_layer("static", *_layer(masses, config.static_width, config, rng, None))
        r = torch.cat([s.edge_r() for s in sets])[:, None]
        net.set_layer("edge", *_layer(r, config.edge_width, config, rng, tgt("edge")))
        report(progress, "sample", 0.5)
        check_cancel(cancel)
        We, be = net.layer("edge")
        if config.static_width:
            e = tanh_(torch.addcmul(be, r, We[:, 0]))
            gs = torch.cat([net.static_sum(s.graph.masses[s.graph.i[s.edges]], s.graph.masses[s.graph.j[s.edges]])
                            for s in sets])
            z = torch.cat([gs, e], 1)
        else:  # e = tanh(r w_E + b_E), computed where needed
            z = TanhPoints(r, We[:, 0], be)
        net.set_layer("msg", *_layer(z, config.message_width, config, rng, tgt("msg")))
        report(progress, "sample", 1.0)
        return net

    # frame encoding
    xn_all, xe_all = [], []
    for s in sets:
        _, xn, xe, _, _ = net.frame_inputs(s.graph, s.q, s.p)
        xn_all.append(xn)
        xe_all.append(xe[s.edges])
    net.set_layer("node", *_layer(torch.cat(xn_all), config.node_width, config, rng, tgt("node")))
    report(progress, "sample", 0.33)
    check_cancel(cancel)
    net.set_layer("edge", *_layer(torch.cat(xe_all), config.edge_width, config, rng, tgt("edge")))
    report(progress, "sample", 0.66)
    check_cancel(cancel)
    Wn, bn = net.layer("node")
    We, be = net.layer("edge")
    zs = []
    for s, xn, xe in zip(sets, xn_all, xe_all):
        h = torch.tanh(xn @ Wn.T + bn)
        g = s.graph
        zs.append(torch.cat([h[g.gi[s.edges]] + h[g.gj[s.edges]], torch.tanh(xe @ We.T + be)], 1))
    net.set_layer("msg", *_layer(torch.cat(zs), config.message_width, config, rng, tgt("msg")))
    report(progress, "sample", 1.0)
    return net


@torch.no_grad()
def local_energies(network: HGN, theta, sets: list[SampleSet]) -> list[dict]:
    """The fitted local energy of every sample point, per layer: the adaptive
    sampler's layer targets (numpy).

    Invariant: kinetic point -> theta_T . h(k); edge and message points ->
    theta_V . [e, m](r) of that edge. Frame: node point -> theta_h . h_i plus
    half of theta_m . m_ij over its edges; edge and message points ->
    theta_m . m_ij.
    """
    theta = torch.as_tensor(np.asarray(theta, dtype=np.float64), device=network.device)
    out = []
    for s in sets:
        g = s.graph
        if network.encoding == "invariant":
            f, _ = network.kinetic(_kinetic_inputs(s))
            tk = f @ theta[network.p_cols]
            gsum = network._gsum(g)
            gs = gsum[s.edges] if gsum.shape[0] > 1 else gsum
            m = network.pair(s.edge_r(), gs, 0)[0]
            te = m @ theta[network.q_cols]
            out.append({"kin": tk.cpu().numpy(), "edge": te.cpu().numpy(), "msg": te.cpu().numpy()})
        else:
            S, N, _ = s.q.shape
            _, _, _, _, _, h, e, m = network._frame_forward(g, s.q, s.p)
            nh = network.n_h
            em = torch.cat([e, m], 1) if network.pool_edges else m
            tm = em @ theta[nh:]
            tn = h @ theta[:nh] + 0.5 * (g.scatter_i(tm) + g.scatter_j(tm))
            tm = tm[s.edges].cpu().numpy()
            out.append({"node": tn.cpu().numpy(), "edge": tm, "msg": tm})
    return out
