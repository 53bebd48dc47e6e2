"""A learned Hamiltonian prepared for repeated evaluation on one system, on one
device and in one precision: what a roll-out calls every step.

:func:`make_stepper` (``model, system, device="cpu", dtype=torch.float64``)
returns a :class:`Stepper` whose methods take and return torch tensors (N, d)
on that device:

* ``potential(q) -> dV/dq`` and ``kinetic(p) -> dT/dp`` (separable models),
* ``both(q, p) -> (dH/dq, dH/dp)`` (any model),
* ``energy(q, p) -> float`` (H_hat with the model's size-scaled constant, for
  saved frames).

Separable (invariant) models -> :class:`TableStepper`
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
* f'(r) from a cubic Hermite table (:class:`HermiteTable`): uniform knots on
  [lo, hi], per-cell polynomial coefficients in t in [0, 1] gathered in one
  pass (``index_select`` of a (cells, 4) block) and evaluated by Horner. The
  table is built from the exact network at float64 (values, first and second
  derivatives at the knots), checked at every cell midpoint against the
  exact network to ``TABLE_TOLERANCE`` (1e-10) of max |f'| (values to 1e-10
  of max(max |f|, max |f'| (hi - lo))), refined (knots doubled, from 2048) up
  to ``TABLE_MAX_KNOTS``; a function that does not pass is evaluated exactly.
  Pair distances outside [lo, hi] are never looked up: those pairs are
  evaluated by the exact network (``range_fallbacks`` counts them). Ranges
  come from the model and the system, never from a state (so a roll-out cut
  into chunks, as the studio runs it, equals one run bit for bit): cutoff
  systems [0, cutoff] (candidates beyond the cutoff contribute exact zeros);
  fixed graphs [0, ``TABLE_RANGE_FACTOR`` (2) x the largest training distance
  ``info["train_r_max"]``] (models that do not record it: 2 x the largest
  edge length of the system's own positions);
* the forces back to particles: one more sparse product D_w^T (f'/r d), the
  edge scale w_ij folded into D_w^T's values (no extra pass). Measured
  against ``index_add_`` on this 2-core machine (47^3 lattice, 305,000
  edges, 1 thread): CSR 1.6 ms, two ``index_add_`` 25 ms, one on
  concatenated indices 7.6 ms, ``scatter_add_`` 5.4 ms; the gather D q
  2.3 ms against 7.6 ms for ``q[i] - q[j]``. ``scatter="index_add"`` selects
  the other one (the choice on a GPU, where atomics are fast);
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

Non-separable networks (the frame encoding) on fixed graphs ->
:class:`NetworkStepper`: the graph (S = 1) is built once on the device and
``HGN.gradients`` / ``HGN.forward`` are called on the tensors directly (no
numpy round trip and no graph build per evaluation; the same arithmetic as
the model's numpy methods, so the same numbers bit for bit).

Anything else (cutoff systems of frame models,
:class:`core.learning.rfhgn.TrueHamiltonian`, hand-made models) ->
:class:`ModelStepper`: the model's own numpy methods
(``potential_gradient``/``kinetic_gradient`` when it has them, else
``gradients``) on float64 copies, with the neighbour list's candidate pairs
for cutoff systems (keyword ``pairs=``, for models that accept it). On the
CPU in float64 the tensors share memory with numpy arrays (no copies).

Precision: ``dtype=torch.float32`` halves memory and traffic; tables are
built in float64 and rounded. Measured: the largest position difference
between a float32 and a float64 roll-out after 1000 steps of dt 0.01 (sd 0.1
displacements and momenta) is 4.6e-6 to 4.9e-5 on 3x3x3, 1.0e-5 on 12^3 and
2.4e-4 on 47^3 (the largest over 103,823 particles; float32 roundings, ~1e-7
relative per step, accumulate along the orbit), against 7.5e-3 and 1.2e-2
for the float64 roll-out against ground truth on the same runs
(tests/core/test_stepper.py, benchmarks/results/torch_core.md). float32 is
allowed only for separable (table) steppers; ``FLOAT32_BOUND`` = 1e-3 is the
tested bound.
"""
from __future__ import annotations

import copy
import inspect
import math
import warnings
import weakref

import numpy as np
import torch

from core.errors import HGNError
from core.physics.forces import DEFAULT_SKIN
try:  # SciPy's CSR kernel behind csr_matrix @ vector (as core.physics.forces uses csr_matvecs)
    from scipy.sparse._sparsetools import csr_matvec as _csr_matvec
except ImportError:  # pragma: no cover - private SciPy API: torch's index_add_ instead
    _csr_matvec = None
from core.physics.neighbours import NeighbourList
from core.physics.system import System

#: tables are refined until the midpoint error is below this times max |f'|
TABLE_TOLERANCE = 1e-10
TABLE_MIN_KNOTS = 2048
#: beyond this many knots (a function too sharp to tabulate) the exact network is used
TABLE_MAX_KNOTS = 1 << 16
#: fixed-edge systems: tables cover [0, TABLE_RANGE_FACTOR * largest training distance]
TABLE_RANGE_FACTOR = 2.0
#: systems with more distinct mass pairs than this are evaluated exactly
TABLE_MAX_CLASSES = 16
#: the kinetic table covers [0, this x the largest k of the training data (info["train_k_max"])] ...
KINETIC_RANGE_FACTOR = 4.0
#: ... and at least [0, this]
KINETIC_MIN_RANGE = 1e-3
PRECISIONS = {"float64": torch.float64, "float32": torch.float32}
#: measured bound on the float32 - float64 position difference of a roll-out of 1000 steps (see module notes)
FLOAT32_BOUND = 1e-3
SCATTERS = ("auto", "csr", "index_add")


def resolve_precision(precision) -> torch.dtype:
    """"float64"/"float32" (or a torch dtype) -> torch dtype; HGNError otherwise."""
    if isinstance(precision, torch.dtype) and precision in PRECISIONS.values():
        return precision
    if precision not in PRECISIONS:
        raise HGNError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return PRECISIONS[precision]


def resolve_device(device) -> torch.device:
    """"cpu", "cuda", "cuda:N" or a torch.device; HGNError when CUDA is asked
    for and absent (NET's ``core.learning.hgn.device.resolve_device`` when it
    exists, the same rule otherwise)."""
    try:
        from core.learning.hgn.device import resolve_device as hgn_resolve
    except ImportError:
        hgn_resolve = None
    if hgn_resolve is not None:
        return hgn_resolve(device)
    if isinstance(device, torch.device):
        name = str(device)
    else:
        name = str(device)
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise HGNError(f"CUDA was asked for but this machine has none: torch {torch.__version__} reports no "
                           "CUDA device; use --device cpu")
        return torch.device(name)
    raise HGNError(f"device must be cpu or cuda (cuda:N), got {device!r}")


def _accepts(fn, name: str) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    return name in sig.parameters or any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())


# ======================================================================
# Hermite tables
# ======================================================================
def hermite_cells(y: np.ndarray, dy: np.ndarray, h: float) -> np.ndarray:
    """Per-cell cubic coefficients (n, 4) of the Hermite interpolant of knot
    values ``y`` and derivatives ``dy`` (n,) with spacing h: cell i holds
    a0 + a1 t + a2 t^2 + a3 t^3, t = (x - x_i) / h in [0, 1]; a last padding
    cell (the value at the last knot, exact at t = 0) lets x = hi be looked up
    without a clamp."""
    y0, y1 = y[:-1], y[1:]
    d0, d1 = h * dy[:-1], h * dy[1:]
    out = np.zeros((len(y), 4))
    out[:-1, 0] = y0
    out[:-1, 1] = d0
    out[:-1, 2] = -3.0 * y0 - 2.0 * d0 + 3.0 * y1 - d1
    out[:-1, 3] = 2.0 * y0 + d0 - 2.0 * y1 + d1
    out[-1, 0] = y[-1]
    out[-1, 1] = h * dy[-1]
    return out


def _horner_mid(c: np.ndarray) -> np.ndarray:
    return c[:, 0] + 0.5 * (c[:, 1] + 0.5 * (c[:, 2] + 0.5 * c[:, 3]))


class HermiteTable:
    """Cubic Hermite tables of C functions f_c on one uniform grid of [lo, hi]:
    of f (from f, f') for energies and of f' (from f', f'') for gradients.

    ``fns``: one callable per class, ``fn(x) -> (f, f', f'')`` exact,
    vectorised, float64 numpy. ``ok`` is False when the tolerance was not met
    with ``TABLE_MAX_KNOTS`` knots (the caller then evaluates exactly);
    ``error`` is the largest midpoint error relative to its scale.
    """

    def __init__(self, fns, lo: float, hi: float, tolerance: float = TABLE_TOLERANCE):
        self.lo, self.hi = float(lo), float(hi)
        self.C = len(fns)
        self.ok = False
        self.error = math.inf
        if not (self.hi > self.lo):
            return
        n = TABLE_MIN_KNOTS
        while n <= TABLE_MAX_KNOTS:
            x = np.linspace(self.lo, self.hi, n)
            h = (self.hi - self.lo) / (n - 1)
            mid = x[:-1] + 0.5 * h
            cv, cd, err = [], [], 0.0
            for fn in fns:
                f, f1, f2 = (np.asarray(a, dtype=np.float64) for a in fn(x))
                g, g1, _ = (np.asarray(a, dtype=np.float64) for a in fn(mid))
                v, d = hermite_cells(f, f1, h), hermite_cells(f1, f2, h)
                scale1 = max(float(np.max(np.abs(f1))), 1e-300)
                scale0 = max(float(np.max(np.abs(f))), scale1 * (self.hi - self.lo), 1e-300)
                err = max(err, float(np.max(np.abs(_horner_mid(d[:-1]) - g1))) / scale1,
                          float(np.max(np.abs(_horner_mid(v[:-1]) - g))) / scale0)
                cv.append(v)
                cd.append(d)
            self.n, self.h, self.error = n, h, err
            if err < tolerance:
                self.ok = True
                #: (C * n, 4) coefficients, class c at rows c*n .. c*n + n - 1
                self.value_cells = np.concatenate(cv)
                self.deriv_cells = np.concatenate(cd)
                break
            n *= 2

    def upload(self, device, dtype) -> "HermiteTable":
        self.inv_h = 1.0 / self.h
        # coefficient a_k of every cell as one contiguous row: four 1-D gathers and contiguous
        # Horner steps (a (P, 4) gather leaves strided columns: measured 2x slower on the CPU)
        self.tv = torch.as_tensor(self.value_cells.T.copy(), device=device).to(dtype).contiguous()
        self.td = torch.as_tensor(self.deriv_cells.T.copy(), device=device).to(dtype).contiguous()
        return self

    def inside(self, s: torch.Tensor) -> bool:
        """All grid positions ``s`` inside [0, n - 1] (one pass, one sync)."""
        if s.numel() == 0:
            return True
        lo, hi = torch.aminmax(s)
        return bool(lo >= 0) and bool(hi <= self.n - 1)

    def evaluate(self, x: torch.Tensor, derivative: bool, ws: "Workspace", offset=None) -> torch.Tensor:
        """The tabulated f' (``derivative``) or f at x (n,), inside [lo, hi]
        (the caller checks with :meth:`inside` on ``ws.s`` after :meth:`position`).
        Every temporary lives in the workspace ``ws`` (fresh multi-megabyte
        tensors each step cost page faults: measured 2-10x on single passes);
        the result is ``ws.b``, overwritten by the next call."""
        cells = self.td if derivative else self.tv
        s, t, cell, a, b = ws.s, ws.t, ws.cell, ws.a, ws.b
        cell.copy_(s)  # truncation = floor for s >= 0
        torch.frac(s, out=t)
        if offset is not None:
            cell += offset
        torch.index_select(cells[3], 0, cell, out=a)
        torch.index_select(cells[2], 0, cell, out=b)
        b.addcmul_(a, t)
        torch.index_select(cells[1], 0, cell, out=a)
        a.addcmul_(b, t)
        torch.index_select(cells[0], 0, cell, out=b)
        b.addcmul_(a, t)
        return b

    def position(self, x: torch.Tensor, ws: "Workspace") -> torch.Tensor:
        """(x - lo) / h into ``ws.s``."""
        if self.lo == 0.0:
            return torch.mul(x, self.inv_h, out=ws.s)
        torch.sub(x, self.lo, out=ws.s)
        return ws.s.mul_(self.inv_h)


#: built tables (numpy coefficients, before upload) per network: a roll-out cut into chunks, the model's
#: numpy fast path and the roll-out build each table once (a refused one costs ~0.7 s of refinement)
_TABLES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _cached_table(net, theta, key, fns, lo, hi) -> HermiteTable:
    """``HermiteTable(fns, lo, hi)`` built once per network, weights and key
    (a fresh copy to upload; the weights' version counters and theta's bytes
    are part of the key, so changed weights build anew)."""
    try:
        stamp = (tuple((t.data_ptr(), t._version) for t in (*net.parameters(), *net.buffers())),
                 _to_numpy(theta).tobytes())
        per_net = _TABLES.setdefault(net, {})
    except (TypeError, AttributeError):  # not a torch module, or no weak references: no cache
        return HermiteTable(fns, lo, hi)
    full = (key, stamp)
    tab = per_net.get(full)
    if tab is None:
        if len(per_net) >= 16:
            per_net.pop(next(iter(per_net)))
        tab = per_net[full] = HermiteTable(fns, lo, hi)
    return copy.copy(tab)


class Workspace:
    """Preallocated per-element buffers of one length (pairs or particles)."""

    def __init__(self, n: int, device, dtype, dim: int = 0):
        kw = dict(device=device, dtype=dtype)
        self.n = n
        self.s, self.t, self.a, self.b, self.r = (torch.empty(n, **kw) for _ in range(5))
        self.cell = torch.empty(n, device=device, dtype=torch.int64)
        self.d = torch.empty((dim, n), **kw) if dim else None
        self.tmp = torch.empty((dim, n), **kw) if dim else None


# ======================================================================
# the exact functions of an invariant network (numpy network today, HGN later)
# ======================================================================
def _to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy().astype(np.float64, copy=False)
    return np.asarray(x, dtype=np.float64)


class InvariantFunctions:
    """The per-pair function f_c(r) = theta_V . pair(r) of each mass class and
    the kinetic function T1(k) = theta_T . kinetic(k), exactly, from a
    network with ``pair(r, gsum, order, shift_at)``, ``static_sum(mi, mj)``
    and a kinetic layer (the numpy ``InvariantNetwork`` or the torch HGN: same
    semantics); numpy float64 in and out."""

    def __init__(self, network, theta, system: System):
        self.net = network
        self.torch_net = isinstance(network, torch.nn.Module)
        theta = _to_numpy(theta)
        self.thT, self.thV = theta[network.p_cols], theta[network.q_cols]
        self.shift = float(system.cutoff) if (system.cutoff is not None
                                              and getattr(network, "cutoff_shift", True)) else None
        if self.torch_net:
            self.tdev = next(network.parameters()).device
            W, b = network.layer("kin")
            self.kin_w, self.kin_b = _to_numpy(W)[:, 0], _to_numpy(b)
        else:
            self.kin_w, self.kin_b = network.kin.W[:, 0].copy(), network.kin.b.copy()
        n_K = len(self.kin_w)
        self.linear = bool(getattr(network, "linear_kinetic", len(self.thT) > n_K))
        self.n_S = self._static_width()

    def _static_width(self) -> int:
        if self.torch_net:
            return int(self.net.widths.get("static", 0)) if hasattr(self.net, "widths") else 0
        return int(self.net.static.n_out)

    def gsum(self, mi: float, mj: float):
        if self.n_S == 0:
            return torch.zeros((1, 0), dtype=torch.float64, device=self.tdev) if self.torch_net else np.zeros((1, 0))
        if self.torch_net:
            with torch.no_grad():
                return self.net.static_sum(torch.tensor([mi], dtype=torch.float64, device=self.tdev),
                                           torch.tensor([mj], dtype=torch.float64, device=self.tdev))
        return self.net.static_sum(np.array([mi]), np.array([mj]))

    def pair(self, r: np.ndarray, gsum, order: int = 2):
        """[f, f', (f'')] of one class (gsum from :meth:`gsum`) at r (P,)."""
        if self.torch_net:
            with torch.no_grad():
                out = self.net.pair(torch.as_tensor(r, dtype=torch.float64, device=self.tdev), gsum, order, self.shift)
            out = [_to_numpy(x) for x in out]
        else:
            out = self.net.pair(np.asarray(r, dtype=np.float64), gsum, order, self.shift)
        return [x @ self.thV for x in out]

    def kinetic(self, k: np.ndarray):
        """(T1, T1', T1'') at k (n,), from the kinetic layer's weights."""
        w, b, th = self.kin_w, self.kin_b, self.thT[:len(self.kin_w)]
        t = np.tanh(k[:, None] * w + b)
        s = 1.0 - t * t
        T = (t - np.tanh(b)) @ th
        g = (s * w) @ th
        g2 = (-2.0 * t * s * w * w) @ th
        if self.linear:
            T = T + self.thT[-1] * k
            g = g + self.thT[-1]
        return T, g, g2


def _rows(x: torch.Tensor) -> torch.Tensor:
    """The (d, N) rows of an (N, d) tensor (a view when its storage already is rows)."""
    xT = x.T
    return xT if xT.is_contiguous() else xT.contiguous()


def _rows_layout(x: torch.Tensor) -> bool:
    return x.dim() == 2 and x.T.is_contiguous()


class _CpuCsr:
    """A scipy CSR matrix applied to the rows (k, n) of a CPU tensor, row by
    row, through SciPy's C kernel on numpy views (no copies; the kernel of the
    ground truth, core.physics.forces). Measured on the 47^3 lattice (305,000
    edges, 1 thread): D q 1.5 ms against 3.6 ms for torch's CSR product."""

    def __init__(self, A, dtype):
        self.A = A
        self.A.data = A.data.astype(dtype)
        # int32 indices where they fit: the row-by-row products read the structure once per axis
        ix = np.int32 if A.nnz < 2 ** 31 - 1 and max(A.shape) < 2 ** 31 - 1 else np.int64
        self.indptr, self.indices = A.indptr.astype(ix), A.indices.astype(ix)

    def matmul(self, xT: torch.Tensor, outT: torch.Tensor) -> torch.Tensor:
        """outT = A xT for rows (k, n) -> (k, m), into the contiguous tensor outT."""
        A = self.A
        xn, on = xT.numpy(), outT.numpy()
        on.fill(0.0)
        for k in range(xn.shape[0]):
            _csr_matvec(A.shape[0], A.shape[1], self.indptr, self.indices, A.data, xn[k], on[k])
        return outT


class _TorchCsr:
    """A torch sparse CSR matrix applied to the rows (k, n) of a tensor."""

    def __init__(self, A):
        self.A = A

    def matmul(self, xT: torch.Tensor, outT: torch.Tensor) -> torch.Tensor:
        outT.copy_((self.A @ xT.T).T)
        return outT


# ======================================================================
class Stepper:
    """A model on one system, one device, one dtype (see the module notes)."""

    separable = False
    kind = "?"

    def __init__(self, system: System, device, dtype):
        self.system = system
        self.device = torch.device(device)
        self.dtype = dtype
        self.n_evaluations = 0
        self.nlist: NeighbourList | None = None

    def tensor(self, x) -> torch.Tensor:
        """x as a (N, d) tensor on the stepper's device and dtype (no copy when it already is one)."""
        return torch.as_tensor(x, device=self.device).to(self.dtype)

    def prepare(self, q: torch.Tensor, p: torch.Tensor) -> None:
        """Build what the first evaluation would (tables that depend on the
        state, workspaces, scratch), so that timing starts at the steady state;
        evaluation counts are unchanged."""

    def scratch(self, like: torch.Tensor) -> torch.Tensor:
        """A reusable tensor of the shape and layout of ``like`` (for the integrator's temporaries)."""
        buf = getattr(self, "_scratch", None)
        if buf is None or buf.shape != like.shape or buf.stride() != like.stride():
            buf = self._scratch = torch.empty_like(like)
        return buf

    def potential(self, q: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def kinetic(self, p: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def both(self, q: torch.Tensor, p: torch.Tensor):
        raise NotImplementedError

    def energy(self, q, p) -> float:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"stepper": self.kind, "device": str(self.device), "precision": str(self.dtype).replace("torch.", "")}


class ModelStepper(Stepper):
    """Any model through its own numpy methods (see the module notes); counts
    the gradient evaluations in ``n_evaluations``."""

    kind = "model"

    def __init__(self, model, system: System, device="cpu", dtype=torch.float64, skin: float = DEFAULT_SKIN):
        super().__init__(system, device, dtype)
        for attr in ("gradients", "energy"):
            if not callable(getattr(model, attr, None)):
                raise HGNError(f"cannot roll out {type(model).__name__}: it has no {attr}() method "
                               "(expected a fitted model)")
        self.model = model
        self.separable = bool(getattr(model, "separable", False))
        self.nlist = NeighbourList(system.cutoff, skin, system.box) if system.cutoff is not None else None
        pg = getattr(model, "potential_gradient", None)
        kg = getattr(model, "kinetic_gradient", None)
        self._pg = pg if callable(pg) else None
        self._kg = kg if callable(kg) else None
        self._pg_pairs = self._pg is not None and _accepts(self._pg, "pairs")
        self._g_pairs = _accepts(model.gradients, "pairs")
        self._e_pairs = _accepts(model.energy, "pairs")

    def _np(self, x) -> np.ndarray:
        if isinstance(x, torch.Tensor):
            if x.device.type == "cpu" and x.dtype == torch.float64:
                return x.numpy()
            return x.detach().cpu().to(torch.float64).numpy()
        return np.asarray(x, dtype=np.float64)

    def _out(self, x, out: torch.Tensor | None = None) -> torch.Tensor:
        x = torch.from_numpy(np.array(x, dtype=np.float64))  # a copy: never a view of the model's own arrays
        if out is not None:
            return out.copy_(x)
        return x.to(device=self.device, dtype=self.dtype)

    def _pairs_kw(self, q: np.ndarray, accepts: bool) -> dict:
        if self.nlist is None or not accepts:
            return {}
        return {"pairs": self.nlist.pairs(q)}

    def potential(self, q, out=None):
        self.n_evaluations += 1
        q = self._np(q)
        if self._pg is not None:
            return self._out(self._pg(self.system, q, **self._pairs_kw(q, self._pg_pairs)), out)
        return self._out(self.model.gradients(self.system, q, np.zeros_like(q),
                                              **self._pairs_kw(q, self._g_pairs))[0], out)

    def kinetic(self, p, q=None, out=None):
        self.n_evaluations += 1
        p = self._np(p)
        if self._kg is not None:
            return self._out(self._kg(self.system, p), out)
        q = self.system.positions if q is None else self._np(q)
        return self._out(self.model.gradients(self.system, q, p, **self._pairs_kw(q, self._g_pairs))[1], out)

    def both(self, q, p):
        self.n_evaluations += 1
        q, p = self._np(q), self._np(p)
        gq, gp = self.model.gradients(self.system, q, p, **self._pairs_kw(q, self._g_pairs))
        return self._out(gq), self._out(gp)

    def energy(self, q, p) -> float:
        q, p = self._np(q), self._np(p)
        e = self.model.energy(self.system, q, p, **self._pairs_kw(q, self._e_pairs))
        return float(np.asarray(e).reshape(-1)[0])


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
            dq = q - self._q_ref
            if self.box is not None:
                dq -= self.box * torch.round(dq / self.box)
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


def _network_model(model) -> bool:
    from core.learning.hgn.network import HGN

    return isinstance(getattr(model, "network", None), HGN) and callable(getattr(model, "_const", None))


def _invariant_network(model) -> bool:
    net = getattr(model, "network", None)
    return (net is not None and bool(getattr(net, "separable", False)) and getattr(net, "encoding", "") == "invariant"
            and callable(getattr(net, "pair", None)) and callable(getattr(model, "_const", None)))


def make_stepper(model, system: System, device="cpu", dtype=torch.float64, *, skin: float = DEFAULT_SKIN,
                 scatter: str = "auto", exact: bool | None = None) -> Stepper:
    """The stepper for ``model`` on ``system`` (see the module notes).

    ``dtype`` torch.float64 or torch.float32 (or "float64"/"float32"); float32
    only for separable invariant networks (HGNError otherwise). ``exact``:
    evaluate the network exactly instead of from tables (default: the model's
    ``config.fast_tables`` negated, False without a config)."""
    if not isinstance(system, System):
        raise HGNError(f"a stepper needs a System to supply the graph, got {type(system).__name__}")
    dev = resolve_device(device)
    dtype = resolve_precision(dtype if isinstance(dtype, (str, torch.dtype)) else str(dtype))
    if _invariant_network(model):
        if exact is None:
            cfg = getattr(model, "config", None)
            exact = not bool(getattr(cfg, "fast_tables", True))
        return TableStepper(model, system, dev, dtype, skin, scatter, exact)
    if dtype != torch.float64:
        raise HGNError("float32 roll-outs are measured and allowed only for separable (invariant) RF-HGN models; "
                       f"this is {type(model).__name__}: use precision float64")
    if _network_model(model) and system.edges is not None:
        return NetworkStepper(model, system, dev, dtype)
    return ModelStepper(model, system, dev, dtype, skin)
