"""Separable (invariant) models -> :class:`TableStepper`
-----------------------------------------------------
H = T(p) + V(q) with T = sum_i T1(k_i), k_i = |p_i|^2 / 2 m_i, and
V = sum_edges w_ij f_c(r_ij): one scalar pair function f_c per class c of
mass pairs (one class without a static encoder). Per step:

* positions: the pair displacements are one sparse product D q with the
  signed incidence matrix D (P x N, +1 at i, -1 at j; CSR, uploaded once for
  a fixed graph, at each neighbour-list rebuild for a cutoff system), minimum
  image in periodic boxes (fixed graphs: folded every step; cutoff systems:
  the image of each candidate pair fixed at the rebuild, exact between
  rebuilds as in ``core.physics.forces``), r = |d|;
* f'(r) from a cubic Hermite table (:class:`HermiteTable`, built, checked and
  refined as ``tables.py`` says; a function that does not pass is evaluated exactly).
  Pair distances outside [lo, hi] are never looked up: those pairs are
  evaluated by the exact network (``range_fallbacks`` counts them). Ranges
  come from the model and the system, never from a state (so a roll-out cut
  into chunks, as the studio runs it, equals one run bit for bit): cutoff
  systems [0, cutoff] (candidates beyond the cutoff contribute exact zeros);
  fixed graphs [0, ``TABLE_RANGE_FACTOR`` (2) x the largest training distance
  ``info["train_r_max"]``] (models that do not record it: 2 x the largest
  edge length of the system's own positions);
* the forces back to particles: one more sparse product D_w^T (f'/r d), the
  edge scale w_ij folded into D_w^T's values (``workspace.py``: the measured choice
  of CSR or ``index_add_``);
* momenta: dT/dp = g(k) p / m with g = dT1/dk from a Hermite table in k on
  [0, K], K = ``KINETIC_RANGE_FACTOR`` (4) x the largest k of the training
  data ``info["train_k_max"]`` (at least ``KINETIC_MIN_RANGE``; models that
  do not record it: no kinetic table), checked like the pair table;
  particles with k > K are evaluated exactly (tanh of the kinetic layer).

The same tables are the numpy fast path of a fitted model
(:class:`core.learning.learned.NetworkHamiltonian` with ``config.fast_tables``:
``potential_gradient``, ``potential_energy``, ``kinetic_gradient``,
``kinetic_energy``) through :func:`evaluate` on a stepper the model caches per
system; a batch (S, N, d) on a fixed graph is evaluated as one state of S
disjoint copies of the graph (:meth:`TableStepper.tiled`).

Mass classes (static encoder): the (lighter, heavier) mass pairs present
(at most ``TABLE_MAX_CLASSES``, else exact), one table each on a shared grid,
stacked so that the class is an offset added to the cell index.
"""
from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import torch

from core.errors import HGNError
from core.learning.stepper.base import Stepper
from core.learning.stepper.tables import (KINETIC_MIN_RANGE, KINETIC_RANGE_FACTOR, TABLE_MAX_CLASSES,
                                          TABLE_RANGE_FACTOR, InvariantFunctions, _cached_table, _to_numpy)
from core.learning.stepper.workspace import SCATTERS, Workspace, _CpuCsr, _csr_matvec, _rows, _rows_layout, _TorchCsr
from core.physics.forces import DEFAULT_SKIN
from core.physics.neighbours import NeighbourList
from core.physics.system import System


class TableStepper(Stepper):
    """A separable invariant network on tables (see the module notes)."""

    separable = True
    kind = "tables"

    def __init__(self, model, system: System, device="cpu", dtype=torch.float64, skin: float = DEFAULT_SKIN,
                 scatter: str = "auto", exact: bool = False):
        super().__init__(system, device, dtype)
        if scatter not in SCATTERS:
            raise HGNError(f"scatter must be one of {', '.join(SCATTERS)}, got {scatter!r}")
        if scatter == "auto":
            scatter = "csr" if (self.device.type == "cpu" and _csr_matvec is not None) else "index_add"
        self.scatter = scatter
        net = model.network
        theta = getattr(model, "theta", None)
        if theta is None:
            theta = net.theta
        self.fn = InvariantFunctions(net, theta, system)
        self.const = float(model._const(system)) if hasattr(model, "_const") else 0.0
        self.exact = bool(exact)
        self.range_fallbacks = 0
        m = torch.as_tensor(system.masses, device=self.device, dtype=torch.float64)
        self.inv_m = (1.0 / m).to(dtype)
        self.half_inv_m = (0.5 / m).to(dtype)
        self.box = None if system.box is None else torch.as_tensor(system.box, device=self.device, dtype=dtype)
        self.box_col = None if self.box is None else self.box[:, None]
        self.cutoff = None if system.cutoff is None else float(system.cutoff)
        #: particles (S x N for a :meth:`tiled` copy)
        self.n_nodes = system.n
        self._tiles: dict = {}
        # mass classes: (lighter, heavier) pairs of the masses present
        masses = system.masses
        if self.fn.n_S == 0:
            self.classes = [(None, None)]
            self.mass_index = None
        else:
            u, inv = np.unique(masses, return_inverse=True)
            self.mass_index = inv.astype(np.int64)
            if system.edges is not None:
                a, b = inv[system.edges[:, 0]], inv[system.edges[:, 1]]
                present = np.unique(np.stack([np.minimum(a, b), np.maximum(a, b)], 1), axis=0)
            else:
                present = np.array([(x, y) for x in range(len(u)) for y in range(x, len(u))], dtype=np.int64)
            self.classes = [(float(u[x]), float(u[y])) for x, y in present]
            self.class_of = np.full((len(u), len(u)), -1, dtype=np.int64)
            for c, (x, y) in enumerate(present):
                self.class_of[x, y] = self.class_of[y, x] = c
        self._gsums = [self.fn.gsum(a, b) if a is not None else self.fn.gsum(0.0, 0.0) for a, b in self.classes]
        if len(self.classes) > TABLE_MAX_CLASSES:
            self.exact = True
        self.pair_table = None
        if not self.exact:
            lo, hi = self._pair_range(model)
            fns = [lambda r, g=g: self.fn.pair(r, g, 2) for g in self._gsums]
            tab = _cached_table(net, theta, ("pair", lo, hi, self.fn.shift, tuple(self.classes)), fns, lo, hi)
            self.pair_table = tab.upload(self.device, dtype) if tab.ok else None
        self.kin_table = None
        if not self.exact:
            k_hi = self._kinetic_range(model)
            if k_hi is not None:
                tab = _cached_table(net, theta, ("kinetic", k_hi), [self.fn.kinetic], 0.0, k_hi)
                self.kin_table = tab.upload(self.device, dtype) if tab.ok else None
        self._ws_pairs: Workspace | None = None
        self._ws_nodes: Workspace | None = None
        # the graph
        if system.edges is not None:
            self._set_pairs(system.edges[:, 0], system.edges[:, 1], None, system.edge_scale)
        else:
            self.nlist = NeighbourList(self.cutoff, skin, system.box)
            self._q_ref: torch.Tensor | None = None

    # -- setup ------------------------------------------------------------
    def _pair_range(self, model) -> tuple[float, float]:
        s = self.system
        if s.cutoff is not None:
            return 0.0, float(s.cutoff)
        info = getattr(model, "info", None) or {}
        rmax = float(info.get("train_r_max", 0.0) or 0.0)
        if not rmax > 0:
            e = s.edges
            rmax = float(np.max(np.linalg.norm(s.positions[e[:, 0]] - s.positions[e[:, 1]], axis=1), initial=1.0))
        return 0.0, TABLE_RANGE_FACTOR * rmax

    @staticmethod
    def _kinetic_range(model) -> float | None:
        """The kinetic table's upper end: ``KINETIC_RANGE_FACTOR`` x the largest
        k of the training data (``info["train_k_max"]``), at least
        ``KINETIC_MIN_RANGE``; None (no table: exact) when the model does not
        record it. Never from a state, so a roll-out cut into chunks is one run."""
        info = getattr(model, "info", None) or {}
        try:
            kmax = float(info.get("train_k_max"))
        except (TypeError, ValueError):
            return None
        if not math.isfinite(kmax) or kmax < 0:
            return None
        return max(KINETIC_RANGE_FACTOR * kmax, KINETIC_MIN_RANGE)

    def _set_pairs(self, i: np.ndarray, j: np.ndarray, image: np.ndarray | None, scale: np.ndarray | None) -> None:
        import scipy.sparse as sp

        dev, dt = self.device, self.dtype
        P, N = len(i), self.n_nodes
        self.P = P
        self.i = torch.as_tensor(i, device=dev, dtype=torch.int64)
        self.j = torch.as_tensor(j, device=dev, dtype=torch.int64)
        self.scale = None if scale is None else torch.as_tensor(scale, device=dev, dtype=dt)
        #: (d, P) fixed periodic image offsets of cutoff systems' candidate pairs
        self.image = None if image is None else torch.as_tensor(np.ascontiguousarray(image.T), device=dev, dtype=dt)
        self.cls = self.cls_offset = None
        if len(self.classes) > 1:
            self.cls = torch.as_tensor(self.class_of[self.mass_index[i], self.mass_index[j]], device=dev)
            if self.pair_table is not None:
                self.cls_offset = self.cls * self.pair_table.n
        self.D = self.DT = None
        if self.scatter != "csr" or P == 0:
            return
        # D (P x N): +1 at i, -1 at j; D_w^T (N x P): +w at i, -w at j
        cols = np.empty(2 * P, dtype=np.int64)
        cols[0::2], cols[1::2] = i, j
        vals = np.empty(2 * P)
        vals[0::2], vals[1::2] = 1.0, -1.0
        indptr = np.arange(0, 2 * P + 1, 2, dtype=np.int64)
        D = sp.csr_matrix((vals, cols, indptr), shape=(P, N))
        w = np.ones(P) if scale is None else np.asarray(scale, dtype=np.float64)
        DT = sp.csr_matrix((vals * np.repeat(w, 2), cols, indptr), shape=(P, N)).T.tocsr()
        if self.device.type == "cpu":
            npd = np.float64 if dt == torch.float64 else np.float32
            self.D, self.DT = _CpuCsr(D, npd), _CpuCsr(DT, npd)
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
            self.D, self.DT = _TorchCsr(self._csr(D)), _TorchCsr(self._csr(DT))

    def _csr(self, A) -> torch.Tensor:
        dev = self.device
        return torch.sparse_csr_tensor(torch.as_tensor(A.indptr.astype(np.int64), device=dev),
                                       torch.as_tensor(A.indices.astype(np.int64), device=dev),
                                       torch.as_tensor(A.data, device=dev, dtype=self.dtype), size=A.shape,
                                       check_invariants=False)

    def _refresh(self, q: torch.Tensor) -> None:
        """Cutoff systems: rebuild the candidate pairs when some particle moved
        more than skin/2 since the last build (checked on the device)."""
        if self.nlist is None:
            return
        if self._q_ref is not None:
            dq = q - self._q_ref  # raw, no minimum image: a wrapped position makes the fixed images stale
            if float((dq * dq).sum(1).max()) <= (0.5 * self.nlist.skin) ** 2:
                return
        qn = q.detach().to("cpu", torch.float64).numpy()
        cand = self.nlist.rebuild(np.ascontiguousarray(qn))
        i, j = cand[:, 0], cand[:, 1]
        image = None
        if self.system.box is not None:
            image = self.system.box * np.round((qn[i] - qn[j]) / self.system.box)
        self._set_pairs(i, j, image, None)
        self._q_ref = q.detach().clone()

    # -- pairs -------------------------------------------------------------
    def _pairs(self, q: torch.Tensor):
        """(d (dim, P), r (P,), inside mask or None) at q (N, dim): the pair
        displacements in structure-of-arrays layout (one contiguous row per
        axis: products with per-pair values are then contiguous, measured
        3.5x faster than broadcasting over (P, 3) on the CPU), in the pair
        workspace (overwritten by the next call)."""
        self._refresh(q)
        dim = q.shape[1]
        if self.P == 0:
            return q.new_zeros((dim, 0)), q.new_zeros(0), None
        ws = self._ws_pairs
        if ws is None or ws.n != self.P:
            ws = self._ws_pairs = Workspace(self.P, self.device, self.dtype, dim)
        qT = _rows(q)
        d = ws.d
        if self.D is not None:
            self.D.matmul(qT, d)
        else:
            torch.index_select(qT, 1, self.i, out=d)
            torch.index_select(qT, 1, self.j, out=ws.tmp)
            d -= ws.tmp
        if self.image is not None:
            d -= self.image
        elif self.box is not None:
            torch.div(d, self.box_col, out=ws.tmp)
            ws.tmp.round_().mul_(self.box_col)
            d -= ws.tmp
        r = torch.mul(d[0], d[0], out=ws.r)
        for k in range(1, dim):
            r.addcmul_(d[k], d[k])
        r.sqrt_()
        inside = None
        if self.cutoff is not None:
            inside = r < self.cutoff
        return d, r, inside

    def _exact_pair(self, r: torch.Tensor, cls: torch.Tensor | None, order: int):
        """[f, f'] (order 1) or [f] exactly at r, numpy network on the CPU in float64."""
        rn = _to_numpy(r)
        out = [np.empty(len(rn)) for _ in range(order + 1)]
        if cls is None:
            res = self.fn.pair(rn, self._gsums[0], order)
            for a, b in zip(out, res):
                a[:] = b
        else:
            cn = cls.cpu().numpy()
            for c in np.unique(cn):
                sel = cn == c
                res = self.fn.pair(rn[sel], self._gsums[c], order)
                for a, b in zip(out, res):
                    a[sel] = b
        return [torch.as_tensor(a, device=self.device).to(self.dtype) for a in out]

    def _pair_values(self, r: torch.Tensor, inside, derivative: bool) -> torch.Tensor:
        """f'(r) (derivative) or f(r) per pair, zero beyond the cutoff (a
        workspace tensor, overwritten by the next call)."""
        tab = self.pair_table
        which = 1 if derivative else 0
        if self.cutoff is not None:
            r = torch.clamp(r, max=self.cutoff)  # candidates beyond the cutoff: looked up at it, then zeroed
        if tab is None:
            out = self._exact_pair(r, self.cls, 1)[which]
        else:
            ws = self._ws_pairs
            sc = tab.position(r, ws)
            if tab.inside(sc):
                out = tab.evaluate(r, derivative, ws, self.cls_offset)
            else:
                bad = (sc < 0) | (sc > tab.n - 1)
                self.range_fallbacks += int(bad.sum())
                sc.clamp_(0, tab.n - 1)
                out = tab.evaluate(r, derivative, ws, self.cls_offset)
                idx = torch.nonzero(bad).reshape(-1)
                out[idx] = self._exact_pair(r[idx], None if self.cls is None else self.cls[idx], 1)[which]
        if inside is not None:
            out = torch.where(inside, out, torch.zeros((), device=out.device, dtype=out.dtype))
        return out

    def _scatter(self, v: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """D_w^T v: +w v into i, -w v into j, (dim, P) -> (N, dim) (a view of
        (dim, N) rows; written into ``out`` when given, an (N, dim) tensor of that layout)."""
        outT = out.T if out is not None else torch.empty((v.shape[0], self.n_nodes), device=v.device,
                                                          dtype=v.dtype)
        if self.DT is not None:
            self.DT.matmul(v, outT)
            return outT.T
        if self.scale is not None:
            v = v * self.scale
        outT.zero_()
        outT.index_add_(1, self.i, v)
        outT.index_add_(1, self.j, v, alpha=-1)
        return outT.T

    # -- kinetic -----------------------------------------------------------
    def _k(self, pT: torch.Tensor) -> torch.Tensor:
        """k = |p|^2 / 2m from the (dim, N) rows of p (in the particle workspace)."""
        ws = self._ws_nodes
        if ws is None or ws.n != pT.shape[1]:
            ws = self._ws_nodes = Workspace(pT.shape[1], self.device, self.dtype)
        k = torch.mul(pT[0], pT[0], out=ws.r)
        for a in range(1, pT.shape[0]):
            k.addcmul_(pT[a], pT[a])
        return k.mul_(self.half_inv_m)

    def _kin_exact(self, k: torch.Tensor, which: int) -> torch.Tensor:
        w = torch.as_tensor(self.fn.kin_w, device=k.device, dtype=k.dtype)
        b = torch.as_tensor(self.fn.kin_b, device=k.device, dtype=k.dtype)
        th = torch.as_tensor(self.fn.thT, device=k.device, dtype=k.dtype)
        nK = len(self.fn.kin_w)
        t = torch.tanh(k[:, None] * w + b)
        if which == 0:
            out = (t - torch.tanh(b)) @ th[:nK]
            return out + th[-1] * k if self.fn.linear else out
        out = ((1.0 - t * t) * w) @ th[:nK]
        return out + th[-1] if self.fn.linear else out

    def _kin_values(self, k: torch.Tensor, derivative: bool) -> torch.Tensor:
        tab = self.kin_table
        which = 1 if derivative else 0
        if tab is None:
            return self._kin_exact(k, which)
        ws = self._ws_nodes
        sc = tab.position(k, ws)
        if tab.inside(sc):
            return tab.evaluate(k, derivative, ws)
        bad = sc > tab.n - 1
        self.range_fallbacks += int(bad.sum())
        sc.clamp_(0, tab.n - 1)
        out = tab.evaluate(k, derivative, ws)
        idx = torch.nonzero(bad).reshape(-1)
        out[idx] = self._kin_exact(k[idx], which)
        return out

    # -- the interface -----------------------------------------------------
    def tensor(self, x) -> torch.Tensor:
        """x as an (N, d) tensor on the device whose storage is (d, N) rows
        (the layout every method computes in; results come back the same way)."""
        t = torch.as_tensor(x, device=self.device).to(self.dtype)
        return t if _rows_layout(t) else t.T.contiguous().T

    def prepare(self, q: torch.Tensor, p: torch.Tensor) -> None:
        n = self.n_evaluations
        self.potential(q)
        self.kinetic(p)
        self.scratch(p)
        self.n_evaluations = n

    def potential(self, q: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """dV/dq at q (N, d); ``out``: an (N, d) tensor of :meth:`tensor`'s layout to write into."""
        self.n_evaluations += 1
        d, r, inside = self._pairs(q)
        if self.P == 0:
            return torch.zeros_like(q) if out is None else out.zero_()
        fp = self._pair_values(r, inside, True)
        fp.div_(r)
        d.mul_(fp)
        return self._scatter(d, out)

    def kinetic(self, p: torch.Tensor, q=None, out: torch.Tensor | None = None) -> torch.Tensor:
        """dT/dp at p (N, d); ``out`` as for :meth:`potential`."""
        self.n_evaluations += 1
        pT = _rows(p)
        g = self._kin_values(self._k(pT), True)
        g.mul_(self.inv_m)
        if out is None:
            return (pT * g).T
        torch.mul(pT, g, out=out.T)
        return out

    def both(self, q, p):
        self.n_evaluations -= 1
        return self.potential(q), self.kinetic(p)

    def pair_energies(self, q: torch.Tensor) -> torch.Tensor:
        """w_ij f(r_ij) per pair (P,) at q (zero beyond the cutoff; a workspace
        tensor or a fresh one, read it before the next call)."""
        d, r, inside = self._pairs(q)
        if self.P == 0:
            return q.new_zeros(0)
        f = self._pair_values(r, inside, False)
        return f if self.scale is None else f * self.scale

    def particle_kinetic(self, p: torch.Tensor) -> torch.Tensor:
        """T1(k_i) per particle (N,) at p (a workspace tensor: read it before the next call)."""
        return self._kin_values(self._k(_rows(p)), False)

    def energy(self, q, p) -> float:
        """H_hat(q, p) with the constant (float64 sum)."""
        q, p = self.tensor(q), self.tensor(p)
        V = float(self.pair_energies(q).sum(dtype=torch.float64))
        T = float(self.particle_kinetic(p).sum(dtype=torch.float64))
        return T + V + self.const

    def tiled(self, S: int) -> "TableStepper":
        """This stepper on S disjoint copies of its fixed graph (S x N
        particles, S x E edges, the same tables): a batch of S states is one
        state of the copy (:func:`evaluate`). Cached per S (a few)."""
        if self.system.edges is None:
            raise HGNError("tiled steppers exist for fixed graphs only")
        if S == 1:
            return self
        t = self._tiles.get(S)
        if t is not None:
            return t
        t = copy.copy(self)
        t._tiles = {}
        t._ws_pairs = t._ws_nodes = None
        t.__dict__.pop("_scratch", None)
        N = self.n_nodes
        t.n_nodes = S * N
        t.inv_m, t.half_inv_m = self.inv_m.repeat(S), self.half_inv_m.repeat(S)
        t.mass_index = None if self.mass_index is None else np.tile(self.mass_index, S)
        e = self.system.edges
        off = (np.arange(S, dtype=np.int64) * N)[:, None]
        scale = self.system.edge_scale
        t._set_pairs((e[:, 0][None] + off).reshape(-1), (e[:, 1][None] + off).reshape(-1), None,
                     None if scale is None else np.tile(np.asarray(scale, dtype=np.float64), S))
        if len(self._tiles) >= 4:
            self._tiles.pop(next(iter(self._tiles)))
        self._tiles[S] = t
        return t

    def describe(self) -> dict:
        out = super().describe()
        out.update({"tables": self.pair_table is not None, "scatter": self.scatter,
                    "table_knots": None if self.pair_table is None else self.pair_table.n,
                    "table_error": None if self.pair_table is None else self.pair_table.error,
                    "range_fallbacks": self.range_fallbacks})
        return out


#: a batch evaluated through a tiled stepper holds at most about this many pairs (or particles) per block
BATCH_ELEMENTS = 1 << 20
EVALUATIONS = ("potential_gradient", "kinetic_gradient", "potential_energy", "kinetic_energy")


def evaluate(stepper: "TableStepper", what: str, x) -> np.ndarray:
    """The numpy face of a table stepper (a model's fast path): ``what`` one
    of ``EVALUATIONS`` at x, numpy float64 (N, d) or (S, N, d); gradients have
    x's shape, energies are 0-d for one state and (S,) for a batch (without
    the constant). A batch on a fixed graph goes through :meth:`TableStepper.tiled`
    in blocks of about ``BATCH_ELEMENTS`` pairs; on a cutoff system state by
    state (its neighbour list rebuilds where needed)."""
    if what not in EVALUATIONS:
        raise HGNError(f"what must be one of {', '.join(EVALUATIONS)}, got {what!r}")
    x = np.asarray(x, dtype=np.float64)
    single = x.ndim == 2
    xb = x[None] if single else x
    S, N, d = xb.shape
    if S == 0:
        return np.zeros(xb.shape if what.endswith("gradient") else (0,))
    if stepper.system.edges is not None:
        B = max(1, min(S, BATCH_ELEMENTS // max(stepper.P, N, 1)))
    else:
        B = 1
    out = np.empty(xb.shape) if what.endswith("gradient") else np.empty(S)
    with torch.no_grad():
        for a in range(0, S, B):
            b = min(a + B, S)
            st = stepper.tiled(b - a) if stepper.system.edges is not None else stepper
            t = st.tensor(torch.from_numpy(xb[a:b].reshape((b - a) * N, d)))
            if what == "potential_gradient":
                out[a:b] = st.potential(t).reshape(b - a, N, d).cpu().double().numpy()
            elif what == "kinetic_gradient":
                out[a:b] = st.kinetic(t).reshape(b - a, N, d).cpu().double().numpy()
            elif what == "kinetic_energy":
                out[a:b] = st.particle_kinetic(t).reshape(b - a, N).sum(1, dtype=torch.float64).cpu().numpy()
            else:
                f = st.pair_energies(t)
                out[a:b] = (f.reshape(b - a, -1).sum(1, dtype=torch.float64).cpu().numpy() if f.numel()
                            else 0.0)
    if single:
        return out[0] if what.endswith("gradient") else np.asarray(out[0])
    return out
