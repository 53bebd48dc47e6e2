"""The fit's hot path: exact Jacobian rows of the invariant network on a
fixed graph, in snapshot chunks that stay in the CPU's cache
(docs/method.md section 4).

The least-squares fit needs Z^T Z and Z^T u for the rows dPhi/dq_ik and
dPhi/dp_ik of every snapshot, particle i and axis k. For the invariant
encoding (separable) on a fixed graph (``system.edges``) both blocks have a
structure that :meth:`core.learning.hgn.network.HGN.jacobians` does not use:

* kinetic block: dPhi_T/dp_ik = h'(k_i) p_ik / m_i, so the d rows of a
  particle are one vector h'(k_i) times p_ik / m_i and
  sum_k J^T J = |p_i|^2 / m_i^2 h'^T h', sum_k J u_k = (p_i . u_i) / m_i h':
  one row per particle (d times fewer rows, no (S, N, d, n_T) array)
  (:meth:`FixedJacobians.kinetic`);
* potential block: dPhi_V/dq_ik = sum over the edges (i, j) of
  +-u_ij,k f'(r_ij), with u the unit vector along the edge and f' the
  r-derivatives of the pair features [e, m]. The edge computations (one
  ``addmm`` with the bias and an in-place tanh per layer, (1 - t^2) in
  place) and the edge-to-node sum run on ``chunk`` snapshots at a time in
  preallocated buffers, so the Jacobian rows of a chunk are still in cache
  when Z^T Z and Z^T u take them (:meth:`FixedJacobians.rows`). The edge-to-
  node sum is a batched product over each particle's edge slots
  (u_h (d x T) times f'_h (T x n_V), T = the largest degree; a padded slot
  has sign 0) when the degrees are even enough, else two ``index_add``
  scatters.

Rows are snapshot-major (s, i, k), the order of ``dpdt.reshape(-1)``.
tests/core/test_hgn_network.py checks the rows and the kinetic Gram against
:meth:`HGN.jacobians` (itself checked against autograd and finite
differences).

:func:`tanh_` is tanh in place; on the CPU it runs NumPy's vectorised tanh
on the tensor's memory, measured 3.2x faster than ``torch.tanh`` for float64
here (torch 2.13 CPU: 5.8 ns against 1.8 ns an element), to round-off the
same values.
"""
from __future__ import annotations

import math
import threading
import warnings

import numpy as np
import torch

from core.errors import HGNError

#: target size of one chunk's working set on the CPU (bytes): the edge
#: features, their derivatives and the Jacobian rows of a chunk stay in cache
#: (measured on the 3x3x3 task, 2-core AMD EPYC, 1 MiB L2 a core: see
#: benchmarks/fit_speed.py)
CHUNK_BYTES = 3 << 20
#: the per-particle slot product is used while the padded slots (N x T) are at
#: most this many times the half-edges (2E); otherwise index_add scatters
SLOT_PADDING = 2.0
#: CPU work buffers up to this size (bytes) are kept between calls and fits
#: (per thread): a fresh buffer costs a page fault per 4 KiB on first touch
#: (measured: ~1,750 faults and 4.5 ms of system time per 3x3x3 fit before).
#: The fit names 9 buffers, so at most 36 MiB stay (5.1 MiB after a 3x3x3
#: fit); :func:`release_workspace` frees them.
WORKSPACE_BYTES = 4 << 20

_LOCAL = threading.local()


def workspace(name: str, shape, dtype=torch.float64, device=None) -> torch.Tensor:
    """An uninitialised tensor of ``shape`` for the work buffer ``name``: on
    the CPU a view of this thread's buffer of that name, kept and reused
    between calls while at most :data:`WORKSPACE_BYTES` (the next request of
    the same name overwrites it); elsewhere (or larger) a fresh tensor
    (torch's CUDA allocator caches its memory itself)."""
    shape = tuple(shape)
    cache = getattr(_LOCAL, "work", None)
    if cache is None:
        cache = _LOCAL.work = {}
    key = (name, dtype, device)
    hit = cache.get(key)
    if hit is not None and hit[1] == shape:
        return hit[2]
    dev = torch.device("cpu") if device is None else torch.device(device)
    n = math.prod(shape)
    if dev.type != "cpu" or n * _ITEMSIZE.get(dtype, 8) > WORKSPACE_BYTES:
        return torch.empty(shape, dtype=dtype, device=dev)
    flat = hit[0] if hit is not None and hit[0].numel() >= n else torch.empty(max(n, 1), dtype=dtype)
    view = flat[:n].view(shape)
    cache[key] = (flat, shape, view)
    return view


def release_workspace() -> int:
    """Drop this thread's kept work buffers; returns the bytes they held."""
    cache = getattr(_LOCAL, "work", None) or {}
    held = sum(flat.numel() * flat.element_size() for flat, _, _ in cache.values())
    _LOCAL.work = {}
    return held


_ITEMSIZE = {torch.float64: 8, torch.float32: 4, torch.int64: 8, torch.int32: 4}


def tanh_(x: torch.Tensor) -> torch.Tensor:
    """tanh(x) in place (x must not need autograd); returns x."""
    if x.device.type == "cpu" and x.dtype in (torch.float64, torch.float32) and x.is_contiguous() \
            and not x.requires_grad:
        a = x.numpy()
        np.tanh(a, out=a)
        return x
    return x.tanh_()


def _host(*xs) -> bool:
    return all(x.device.type == "cpu" and x.dtype == torch.float64 and not x.requires_grad for x in xs)


def mm_(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out = a @ b (out contiguous). On the CPU through NumPy's OpenBLAS:
    measured 2.5-4x faster than torch's MKL for these tall, narrow products
    ((2376 x 32) @ (32 x 16): 0.9 against 2.1-2.4 ms for 12 of them, one
    thread)."""
    if _host(a, b, out) and out.is_contiguous():
        np.matmul(a.numpy(), b.numpy(), out=out.numpy())
        return out
    return torch.mm(a, b, out=out)


def gram_add_(G: torch.Tensor, Z: torch.Tensor) -> None:
    """G += Z^T Z. On the CPU NumPy's ``Z.T @ Z`` (OpenBLAS syrk: half the
    flops of a general product; measured 4.1 against 5.7 ms for the 40,500 x 48
    rows of the 3x3x3 task, one thread)."""
    if _host(G, Z) and G.is_contiguous():
        Zn = Z.numpy()
        Gn = G.numpy()
        Gn += Zn.T @ Zn
    else:
        G.addmm_(Z.T, Z)


def gemv_add_(b: torch.Tensor, Z: torch.Tensor, u: torch.Tensor, alpha: float = 1.0) -> None:
    """b += alpha Z^T u (NumPy on the CPU, as :func:`gram_add_`)."""
    if _host(b, Z, u) and b.is_contiguous():
        bn = b.numpy()
        v = Z.numpy().T @ u.numpy()
        if alpha == 1.0:
            bn += v
        else:
            bn -= v if alpha == -1.0 else -alpha * v
    else:
        b.addmv_(Z.T, u, alpha=alpha)


def squares(x) -> np.ndarray:
    """|x_i|^2 over the last axis of a CPU float64 tensor or array (..., d),
    flattened (NumPy: d products and sums of columns, measured 8x faster
    than ``(x * x).sum(-1)`` for d = 3)."""
    a = (x.numpy() if isinstance(x, torch.Tensor) else x).reshape(-1, x.shape[-1])
    out = a[:, 0] * a[:, 0]
    for k in range(1, a.shape[1]):
        out += a[:, k] * a[:, k]
    return out


def norms(x: np.ndarray) -> np.ndarray:
    """|x_i| over the last axis of a float64 array (..., d), shape (...)
    (to round-off torch's ``vector_norm``; measured 4x faster for the
    (256, 54, 3) pair vectors of a fit batch)."""
    out = squares(x)
    np.sqrt(out, out=out)
    return out.reshape(x.shape[:-1])


def one_minus_square_(t: torch.Tensor, scale=None) -> torch.Tensor:
    """t <- (1 - t^2) * scale, in place; returns t."""
    t.mul_(t).sub_(1.0)
    if scale is None:
        return t.neg_()
    return t.mul_(-scale)


_CSR_WARNED = False
_ONE = torch.ones(1, dtype=torch.float64)
#: the edge-to-node sum's structure per edge list ((N, d, edges bytes) -> :func:`_sum_structure`) and its
#: CSR index arrays per chunk size and device, kept between fits (a fit builds a new FixedJacobians)
_STRUCTURES: dict = {}
_CSR_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()  # fits may run in several threads at once


def _remember(cache: dict, key, value, size: int):
    """cache[key] = value, dropping the oldest entries beyond ``size`` (under the lock)."""
    with _CACHE_LOCK:
        cache[key] = value
        while len(cache) > size:
            cache.pop(next(iter(cache)))
    return value


def _sum_structure(e: np.ndarray, N: int, d: int):
    """(degree (N,), entry edge, entry value index (edge * d + axis), entry sign, nonzeros a row) of
    the edge-to-node sum of one snapshot with edges e (E, 2): row (i, k) holds one entry per edge of i,
    + where i is the edge's first end."""
    E = len(e)
    ends = np.concatenate([e[:, 0], e[:, 1]])
    order = np.argsort(ends, kind="stable")
    ends = ends[order]
    eid = np.concatenate([np.arange(E), np.arange(E)])[order]
    sgn = np.concatenate([np.ones(E), -np.ones(E)])[order]
    degree = np.bincount(ends, minlength=N)
    # per snapshot: entries of rows (i, k) = the node's edges, repeated for each axis k
    start = np.concatenate([[0], np.cumsum(degree)])
    pos = np.arange(2 * E) - start[ends]  # half-edge h's place among its node's edges
    at = (d * start[ends])[:, None] + np.arange(d)[None, :] * degree[ends][:, None] + pos[:, None]
    ent_edge = np.zeros(2 * E * d, np.int64)
    ent_axis = np.zeros(2 * E * d, np.int64)
    ent_sign = np.zeros(2 * E * d)
    ent_edge[at] = eid[:, None]
    ent_axis[at] = np.arange(d)[None, :]
    ent_sign[at] = sgn[:, None]
    return degree, ent_edge, ent_edge * d + ent_axis, ent_sign, np.repeat(degree, d)


def _csr(crow, col, values, size):
    """A sparse CSR tensor without torch's once-per-process beta warning."""
    global _CSR_WARNED
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse CSR tensor support is in beta.*")
        A = torch.sparse_csr_tensor(crow, col, values, size=size, check_invariants=False)
    _CSR_WARNED = True  # torch warns once per process (TORCH_WARN_ONCE)
    return A


def quiet_csr() -> None:
    """Make torch's once-per-process beta warning of sparse CSR tensors now,
    silenced (:func:`_csr` changes the warning filters, which is not
    thread-safe: call this before threads make CSR tensors)."""
    if not _CSR_WARNED:
        z = torch.zeros(1, dtype=torch.int32)
        _csr(torch.zeros(2, dtype=torch.int32), z, torch.zeros(1, dtype=torch.float64), (1, 1))


class FixedJacobians:
    """Jacobian rows of an invariant :class:`HGN` on a fixed graph (see the
    module notes). ``graph``: a fixed :class:`core.learning.hgn.graph.Graph`
    (any S; its edges, masses, box and edge weights are used);
    ``chunk``: snapshots per chunk (None: from :data:`CHUNK_BYTES` on the CPU,
    the whole batch on other devices)."""

    def __init__(self, network, graph, chunk: int | None = None, scatter: str = "auto"):
        if network.encoding != "invariant" or graph.edges is None:
            raise HGNError("FixedJacobians needs the invariant encoding and a fixed graph")
        self.net = network
        dev, dt = network.device, network.dtype
        self.device, self.dtype = dev, dt
        self.N, self.d = graph.N, graph.d
        edges = graph.edges
        self.E = E = int(edges.shape[0])
        self.ei, self.ej = edges[:, 0], edges[:, 1]
        self.masses = graph.masses
        self.box = graph.box
        self.weight = None if graph.weight is None else graph.weight[:E]
        with torch.no_grad():
            We, be = (x.detach() for x in network.layer("edge"))
            Wm, bm = (x.detach() for x in network.layer("msg"))
            Wk, bk = (x.detach() for x in network.layer("kin"))
        nS = network.widths["static"]
        self.nE, self.nM, self.nK = We.shape[0], Wm.shape[0], Wk.shape[0]
        self.nV, self.nT = network.n_V, network.n_T
        self.wE, self.be = We[:, 0].contiguous(), be.contiguous()
        self.wE_row = self.wE.reshape(1, -1)
        self.WMeT = Wm[:, nS:].T.contiguous()  # (nE, nM)
        self.wK, self.bK = Wk[:, 0].contiguous(), bk.contiguous()
        self.wK_row = self.wK.reshape(1, -1)
        if nS:  # message bias per edge: b_M + (g_i + g_j) W_MS^T
            m = graph.masses
            with torch.no_grad():
                self.zs = (network.static_sum(m[self.ei], m[self.ej]) @ Wm[:, :nS].T + bm).contiguous()  # (E, nM)
        else:
            self.zs = None
        self.bm = bm.contiguous()
        # the edge-to-node sum as a sparse matrix of each chunk: row (s, i, k), one entry per edge of i,
        # column s * E + edge, value +-u_k (+ where i is the edge's first end); rows in order
        e = edges.cpu().numpy()
        self._key = (self.N, self.d, e.tobytes())
        st = _STRUCTURES.get(self._key)
        if st is None:
            st = _remember(_STRUCTURES, self._key, _sum_structure(e, self.N, self.d), 8)
        self.degree, ent_edge, ent_value, ent_sign, self._row_nnz = st
        self._ent_edge = ent_edge
        self._ent_value = torch.as_tensor(ent_value, device=dev)
        self._ent_sign = torch.as_tensor(ent_sign, dtype=dt, device=dev)
        self._ent_value_np, self._ent_sign_np = ent_value, ent_sign
        self._ei_np, self._ej_np = e[:, 0].copy(), e[:, 1].copy()
        if scatter == "auto":
            scatter = "csr"
        if scatter not in ("csr", "index_add"):
            raise HGNError(f"scatter {scatter!r} is not one of csr, index_add")
        self.scatter = scatter
        per_snap = 8 * E * (2 * self.nE + 2 * self.nM + self.nV)
        per_snap += 8 * self.N * self.d * self.nV
        if scatter == "index_add":
            per_snap += 8 * E * self.d * self.nV
        self.per_snapshot_bytes = per_snap
        if chunk is None:
            chunk = max(1, CHUNK_BYTES // per_snap) if dev.type == "cpu" else None
        self.chunk = chunk
        self._csr: dict = {}
        self._zs: dict = {}
        self._plans: dict = {}
        self._lean = self.device.type == "cpu" and self.dtype == torch.float64 and self.scatter == "csr"
        #: the column scale s of the folded rows (:meth:`rows_folded`): rows = Z' diag(s), or None (s = 1)
        self.col_scale = None
        if self._lean:
            self._WMeT, self._bm = self.WMeT.numpy(), self.bm.numpy()
            # w_E folded into the message layer's weights: dz = (1 - e^2) (diag(w_E) W_ME^T), so the edge
            # columns of the folded rows are (1 - e^2) without the w_E factor (one pass over them less)
            self._W2 = (self.wE[:, None] * self.WMeT).contiguous().numpy()
            if network.pool_edges:
                self.col_scale = np.concatenate([self.wE.numpy(), np.ones(self.nM)])
        if self.device.type == "cpu":
            self._masses2 = (2.0 * self.masses.double()).cpu().numpy()
            self._wK, self._bK = self.wK.cpu().numpy(), self.bK.cpu().numpy()
            self._neg_wK = -self._wK

    # ------------------------------------------------------------------
    @torch.no_grad()
    def kinetic(self, p, pp=None):
        """D = dPhi_T/dk (S*N, n_T) for p (S, N, d): the kinetic rows of
        particle i are D[s, i] p_ik / m_i, so with a = |p_i| / m_i
        Z_p^T Z_p = (a D)^T (a D) and Z_p^T u = D^T ((p_i . u_i) / m_i).
        ``pp``: |p_i|^2 (S*N,) when already known. On the CPU D is the
        transpose of a :func:`workspace` buffer that the next call overwrites."""
        S, N, d = p.shape
        if _host(p):
            # NumPy on a reused buffer, the linear column written once (measured 0.3 against 0.6 ms for
            # 256 snapshots of the 3x3x3 task with torch's ops, (p * p).sum(-1) and the concatenation)
            if pp is None:
                pp = squares(p)
            # D^T (n_T, S*N) row-major, so that every row (feature) is contiguous for NumPy's SIMD loops
            DT = workspace("fixed.kinetic", (self.nT, S * N)).numpy()
            h = DT[:self.nK]
            k = (pp.reshape(S, N) / self._masses2).reshape(1, -1)
            np.multiply(self._wK[:, None], k, out=h)  # k w_K
            h += self._bK[:, None]
            np.tanh(h, out=h)
            np.multiply(h, h, out=h)  # (1 - h^2) w_K
            h -= 1.0
            h *= self._neg_wK[:, None]
            DT[self.nK:] = 1.0  # linear feature: dk/dk = 1
            return torch.from_numpy(DT).T
        k = (p * p).sum(-1).mul_(0.5).div_(self.masses)  # (S, N)
        h = torch.addcmul(self.bK, k.reshape(-1, 1), self.wK_row)
        tanh_(h)
        h.mul_(h)  # (1 - h^2) w_K
        torch.addcmul(self.wK_row, h, self.wK_row, value=-1.0, out=h)
        D = torch.cat([h, h.new_ones((S * N, 1))], 1) if self.nT > self.nK else h  # linear feature: dk/dk = 1
        return D

    @torch.no_grad()
    def geometry(self, q):
        """(r (S, E), v) of q (S, N, d): the pair distances and, for the
        sparse edge-to-node sum, the values of its entries (S * 2E * d,)
        (signed unit-vector components, edge weights folded in); for
        index_add, the unit vectors u (S, E, d)."""
        if _host(q) and self.scatter == "csr":
            # the same arithmetic with NumPy's gathers (measured 0.51 against 0.94 ms for 256 snapshots)
            qn = q.numpy()
            S = qn.shape[0]
            dl = workspace("fixed.pair_vectors", (S, self.E, self.d)).numpy()
            tmp = workspace("fixed.pair_ends", (S, self.E, self.d)).numpy()
            np.take(qn, self._ei_np, axis=1, out=dl, mode="clip")
            np.take(qn, self._ej_np, axis=1, out=tmp, mode="clip")
            dl -= tmp  # (S, E, d)
            if self.box is not None:
                box = self.box.numpy()
                dl -= box * np.round(dl / box)
            rn = norms(dl)  # (S, E)
            dl /= rn[..., None]
            r = torch.from_numpy(rn)
            if self.weight is not None:
                dl *= self.weight.numpy()[:, None]
            v = workspace("fixed.sum_values", (S, len(self._ent_value_np))).numpy()
            np.take(dl.reshape(S, -1), self._ent_value_np, axis=1, out=v, mode="clip")
            v *= self._ent_sign_np
            return r, torch.from_numpy(v.reshape(-1))
        dl = q[:, self.ei] - q[:, self.ej]  # (S, E, d)
        if self.box is not None:
            dl = dl - self.box * torch.round(dl / self.box)
        r = torch.linalg.vector_norm(dl, dim=-1)  # (S, E)
        u = dl.div_(r[..., None])
        if self.weight is not None:
            u.mul_(self.weight[:, None])
        if self.scatter == "index_add":
            return r, u
        v = u.reshape(q.shape[0], -1)[:, self._ent_value].mul_(self._ent_sign)
        return r, v.reshape(-1)

    def _sum_matrix(self, c):
        """The CSR matrix structure of a chunk of c snapshots (rows c*N*d, columns c*E), kept between
        fits (per edge list, chunk size and device); int32 indices on the CPU (measured ~5% faster
        sparse products than int64 for the 3x3x3 task's chunks)."""
        key = (self._key, c, str(self.device))
        st = _CSR_CACHE.get(key)
        if st is None:
            nnz = len(self._ent_edge)
            small = self.device.type == "cpu" and c * max(nnz, self.E) < 2 ** 31 - 1
            crow = np.zeros(c * self.N * self.d + 1, np.int64)
            crow[1:] = np.cumsum(np.tile(self._row_nnz, c))
            col = (np.arange(c)[:, None] * self.E + self._ent_edge[None, :]).reshape(-1)
            if small:
                crow, col = crow.astype(np.int32), col.astype(np.int32)
            st = _remember(_CSR_CACHE, key, (torch.as_tensor(crow, device=self.device),
                                             torch.as_tensor(col, device=self.device), nnz), 16)
        return st

    def _buffers(self, c):
        """The chunk's work buffers (:func:`workspace`: kept between chunks and fits on the CPU)."""
        ce = c * self.E
        kw = dict(dtype=self.dtype, device=self.device)
        buf = {"e": workspace("fixed.e", (ce, self.nE), **kw), "m": workspace("fixed.m", (ce, self.nM), **kw),
               "dz": workspace("fixed.dz", (ce, self.nM), **kw), "dm": workspace("fixed.dm", (ce, self.nV), **kw),
               "J": workspace("fixed.J", (c, self.N, self.d, self.nV) if self.scatter == "index_add"
                              else (c * self.N * self.d, self.nV), **kw)}
        if not self.net.pool_edges:
            buf["de"] = workspace("fixed.de", (ce, self.nE), **kw)
        if self.zs is not None:
            zs = self._zs.get(c)
            if zs is None:
                zs = self._zs[c] = self.zs.repeat(c, 1)
                if len(self._zs) > 2:  # the full chunk and the last, shorter one
                    self._zs.pop(next(iter(self._zs)))
            buf["zs"] = zs
        return buf

    @torch.no_grad()
    def rows(self, r, uh, a: int, b: int, features: bool = False):
        """The potential block's Jacobian rows of snapshots a..b of a
        :meth:`geometry` result: ((b-a)*N*d, n_V), a view of a buffer that the
        next call overwrites. ``features``: also return the pair features
        [e, m] of those edges ((b-a)*E, n_V) before the derivatives overwrite
        them (a fresh tensor)."""
        c = b - a
        E, N, d, nE, nV = self.E, self.N, self.d, self.nE, self.nV
        ce = c * E
        if self._lean and not features:
            Z, scale = self.rows_folded(r, uh, a, b)
            if scale is not None:
                Z[:, :nE] *= self.wE_row  # the true rows: Z' diag(s)
            return Z
        buf = self._buffers(c)
        e, m, dz, dm, J = buf["e"], buf["m"], buf["dz"], buf["dm"], buf["J"]
        torch.addcmul(self.be, r[a:b].reshape(ce, 1), self.wE_row, out=e)
        tanh_(e)
        mm_(e, self.WMeT, m)
        m.add_(buf["zs"] if self.zs is not None else self.bm)
        tanh_(m)
        feats = None
        if features:
            feats = torch.cat([e, m], 1) if self.net.pool_edges else m.clone()
        pool = self.net.pool_edges
        de = dm[:, :nE] if pool else buf["de"]
        torch.mul(e, e, out=de)  # f'_e = (1 - e^2) w_E
        torch.addcmul(self.wE_row, de, self.wE_row, value=-1.0, out=de)
        mm_(de, self.WMeT, dz)
        dmm = dm[:, nE:] if pool else dm
        m.mul_(m)  # f'_m = (1 - m^2) dz
        torch.addcmul(dz, m, dz, value=-1.0, out=dmm)
        if self.scatter == "csr":
            crow, col, nnz = self._sum_matrix(c)
            A = _csr(crow, col, uh[a * nnz:b * nnz], (c * N * d, ce))
            Z = torch.addmm(J, A, dm, beta=0.0, out=J)  # no zero-fill and copy of the result
        else:
            X = uh[a:b, :, :, None] * dm.view(c, E, 1, nV)
            J.zero_()
            J.index_add_(1, self.ei, X)
            J.index_add_(1, self.ej, X, alpha=-1.0)
            Z = J.view(c * N * d, nV)
        return (Z, feats) if features else Z

    def _plan(self, c):
        """The lean path's per-chunk-size views (buffers, their NumPy arrays,
        the CSR structure), built once per chunk size (kept with the
        :func:`workspace` buffers they view: two sizes, the full chunk and the last)."""
        # per thread: the views are of this thread's workspace buffers (a fit's assembly threads,
        # rfhgn.fitting.assemble, may take turns with one FixedJacobians)
        key = (threading.get_ident(), c)
        pl = self._plans.get(key)
        if pl is None:
            buf = self._buffers(c)
            nE, pool = self.nE, self.net.pool_edges
            dm = buf["dm"]
            crow, col, nnz = self._sum_matrix(c)
            pl = {"e": buf["e"], "en": buf["e"].numpy(), "mn": buf["m"].numpy(), "m": buf["m"],
                  "dz": buf["dz"], "dzn": buf["dz"].numpy(), "dm": dm,
                  "de": dm.numpy()[:, :nE] if pool else buf["de"].numpy(),
                  "det": dm[:, :nE] if pool else buf["de"],
                  "dmm": dm[:, nE:] if pool else dm, "J": buf["J"], "crow": crow, "col": col, "nnz": nnz,
                  "bias": buf["zs"].numpy() if self.zs is not None else self._bm}
            self._plans[key] = pl
            if len(self._plans) > 8:
                self._plans.pop(next(iter(self._plans)))
        return pl

    def rows_folded(self, r, uh, a, b):
        """(Z', s): the potential block's rows of snapshots a..b as Z' with
        the true rows Z = Z' diag(s) (s: :attr:`col_scale`, or None for s =
        1), so that Z^T Z = diag(s) Z'^T Z' diag(s) and Z^T u = diag(s) Z'^T u
        (the fit scales its sums once at the end). On the CPU in float64 with
        the CSR sum the w_E factor of the edge columns is folded out of Z'
        (into the message layer's product and into s): one pass over the edge
        features less per chunk. Z' is a view of a buffer that the next call
        overwrites."""
        if not self._lean:
            with torch.no_grad():
                return self.rows(r, uh, a, b), None
        # (no torch.no_grad here: every tensor is a plain buffer or detached weight; measured ~10 us a call)
        c = b - a
        ce = c * self.E
        pl = self._plan(c)
        mn, dzn, de = pl["mn"], pl["dzn"], pl["de"]
        torch.addcmul(self.be, r[a:b].reshape(ce, 1), self.wE_row, out=pl["e"])
        e = pl["en"]
        np.tanh(e, out=e)
        np.matmul(e, self._WMeT, out=mn)
        mn += pl["bias"]
        np.tanh(mn, out=mn)
        # f'_e / w_E = 1 - e^2, written into the edge columns of dm (rows of nE in rows of n_V): torch's
        # one strided pass (measured 0.23 against 1.16 ms for NumPy's two over the 3x3x3 task's 27,000 rows,
        # whose per-row loop overhead dominates)
        torch.addcmul(_ONE, pl["e"], pl["e"], value=-1.0, out=pl["det"])
        np.matmul(de, self._W2, out=dzn)  # dz = f'_e W_ME^T
        np.multiply(mn, mn, out=mn)  # f'_m = (1 - m^2) dz
        torch.addcmul(pl["dz"], pl["m"], pl["dz"], value=-1.0, out=pl["dmm"])
        nnz, J = pl["nnz"], pl["J"]
        if _CSR_WARNED:
            A = torch.sparse_csr_tensor(pl["crow"], pl["col"], uh[a * nnz:b * nnz], size=(J.shape[0], ce),
                                        check_invariants=False)
        else:
            A = _csr(pl["crow"], pl["col"], uh[a * nnz:b * nnz], (J.shape[0], ce))
        return torch.addmm(J, A, pl["dm"], beta=0.0, out=J), self.col_scale

    @torch.no_grad()
    def jacobian_q(self, q):
        """dPhi_V/dq (S, N, d, n_V) of q (S, N, d) (for checks; the fit takes
        :meth:`rows` chunk by chunk)."""
        S = q.shape[0]
        r, uh = self.geometry(q)
        out = q.new_empty((S, self.N, self.d, self.nV))
        step = self.chunk or S
        for a in range(0, S, step):
            b = min(a + step, S)
            out[a:b] = self.rows(r, uh, a, b).view(b - a, self.N, self.d, self.nV)
        return out
