"""Cubic Hermite tables of a separable invariant network's pair functions
f_c(r) and kinetic function T1(k) (:class:`HermiteTable`), the exact
functions they are built from (:class:`InvariantFunctions`) and the cache of
built tables (:func:`_cached_table`).

A table has uniform knots on [lo, hi], per-cell polynomial coefficients in t
in [0, 1] gathered in one pass (``index_select`` of a (cells, 4) block) and
evaluated by Horner. The table is built from the exact network at float64
(values, first and second derivatives at the knots), checked at every cell
midpoint against the exact network to ``TABLE_TOLERANCE`` (1e-10) of max |f'|
(values to 1e-10 of max(max |f|, max |f'| (hi - lo))), refined (knots
doubled, from 2048) up to ``TABLE_MAX_KNOTS``; a function that does not pass
is evaluated exactly. The ranges (and the constants that set them) are the
table stepper's (``table_stepper.py``).
"""
from __future__ import annotations

import copy
import math
import weakref
from typing import TYPE_CHECKING

import numpy as np
import torch

from core.physics.system import System

if TYPE_CHECKING:
    from core.learning.stepper.workspace import Workspace

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


# ======================================================================
# the exact functions of an invariant network (numpy network today, HGN later)
# ======================================================================
def _to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy().astype(np.float64, copy=False)
    return np.asarray(x, dtype=np.float64)


class InvariantFunctions:
    """The per-pair function f_c(r) = theta_V . pair(r) of each mass class and
    the kinetic function T1(k) = theta_T . kinetic(k), exactly, from an
    invariant :class:`core.learning.hgn.network.HGN` (its ``pair``,
    ``static_sum`` and kinetic layer); numpy float64 in and out."""

    def __init__(self, network, theta, system: System):
        self.net = network
        theta = _to_numpy(theta)
        self.thT, self.thV = theta[network.p_cols], theta[network.q_cols]
        self.shift = float(system.cutoff) if (system.cutoff is not None
                                              and getattr(network, "cutoff_shift", True)) else None
        self.tdev = next(network.parameters()).device
        W, b = network.layer("kin")
        self.kin_w, self.kin_b = _to_numpy(W)[:, 0], _to_numpy(b)
        n_K = len(self.kin_w)
        self.linear = bool(getattr(network, "linear_kinetic", len(self.thT) > n_K))
        self.n_S = int(network.widths.get("static", 0))

    def gsum(self, mi: float, mj: float):
        if self.n_S == 0:
            return torch.zeros((1, 0), dtype=torch.float64, device=self.tdev)
        with torch.no_grad():
            return self.net.static_sum(torch.tensor([mi], dtype=torch.float64, device=self.tdev),
                                       torch.tensor([mj], dtype=torch.float64, device=self.tdev))

    def pair(self, r: np.ndarray, gsum, order: int = 2):
        """[f, f', (f'')] of one class (gsum from :meth:`gsum`) at r (P,)."""
        with torch.no_grad():
            out = self.net.pair(torch.as_tensor(r, dtype=torch.float64, device=self.tdev), gsum, order, self.shift)
        return [_to_numpy(x) @ self.thV for x in out]

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


