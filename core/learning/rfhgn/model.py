"""A fitted RF-HGN: evaluation, fast tables, saving and loading.

H_hat(q, p) = theta . Phi(q, p) + c * size / size_ref

Phi is extensive (sums over nodes and edges), so a model applies to any
system of the same kind: the graph comes from the ``system`` argument of each
call (its edges, or its cutoff and box for dynamic pairs). The constant c was
fixed with one known energy of the training system. Derivatives do not tell
how much of it belongs to each node and each edge, so the network pins the
kinetic part (T_hat(p = 0) = 0) and c is taken per edge for fixed graphs
(size = number of edges; the pair function carries the constant) and per
particle otherwise (cutoff systems, whose pair features vanish at the cutoff,
and the frame encoding). Energies of other sizes are then extensive.

Shapes: q and p are (N, d) or (S, N, d); energies are 0-d arrays for one
state and (S,) for a batch; gradients have the shape of q.

Fast path (separable invariant models, ``config.fast_tables``): the potential
is sum over edges of w_ij f(r_ij) with one scalar function f per pair of
masses, so ``potential_gradient`` needs f'(r) per edge only. It is read from a
cubic Hermite table (exact values and derivatives at the knots, built on
first use, checked at the cell midpoints against the exact network to a
relative error of 1e-10 of max |f'|, refined until it is, and never used
outside its range, where the exact network is evaluated instead). Pass
``exact=True`` to bypass the tables.

File (``save``/``load``, core.container kind "model"):

* header: ``config`` (RFConfig.to_dict()), ``encoding``, ``dim``,
  ``constant`` (c, also stored bit-exact as an array), ``n_ref`` and
  ``e_ref`` (particles and edges of the system c was fixed on),
  ``info`` (fit time, snapshots, train MSE, solver details, ...),
  ``train_system`` (the header of the system it was fitted on);
* arrays: ``theta`` (L,), ``constant`` (1,), the sampled layers as
  ``<layer>_W`` (out, in) and ``<layer>_b`` (out,) with layers kin, static,
  edge, msg (invariant) or node, edge, msg (frame), and the training system's
  arrays prefixed ``train_system.`` (positions, masses, edges, ...).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.errors import HGNError
from core.container import load_npz, save_npz
from ..learned import LearnedHamiltonian, plain_info
from core.physics.system import System
from .config import RFConfig
from .graphs import batch_graph
from .network import FrameNetwork, InvariantNetwork

#: tables are refined until the midpoint error is below this times max |f'|
TABLE_TOLERANCE = 1e-10
TABLE_MIN_KNOTS = 2048
#: beyond this many knots (a function too sharp to tabulate) the exact network is used:
#: bounds the memory and time of building a table (2**21 knots once took 17 GB)
TABLE_MAX_KNOTS = 1 << 16
#: fixed-edge systems: tables cover [0, TABLE_RANGE_FACTOR * largest training distance]
TABLE_RANGE_FACTOR = 2.0
#: systems with more distinct mass pairs than this are evaluated exactly
TABLE_MAX_CLASSES = 16


class PairTable:
    """Cubic Hermite tables of f(r) and f'(r) on [lo, hi] (uniform knots)."""

    def __init__(self, fn, lo: float, hi: float):
        """``fn(r) -> (f, f', f'')`` exact, vectorised."""
        self.lo, self.hi = float(lo), float(hi)
        self.ok = False
        n = TABLE_MIN_KNOTS
        while n <= TABLE_MAX_KNOTS:
            r = np.linspace(self.lo, self.hi, n)
            f, f1, f2 = fn(r)
            self.h = (self.hi - self.lo) / (n - 1)
            self.f, self.f1, self.f2 = f, f1, f2
            mid = r[:-1] + 0.5 * self.h
            g, g1, _ = fn(mid)
            scale1 = max(float(np.max(np.abs(f1))), 1e-300)
            scale0 = max(float(np.max(np.abs(f))), scale1 * (self.hi - self.lo), 1e-300)
            err1 = float(np.max(np.abs(self.derivative(mid) - g1))) / scale1
            err0 = float(np.max(np.abs(self.value(mid) - g))) / scale0
            if err1 < TABLE_TOLERANCE and err0 < TABLE_TOLERANCE:
                self.ok = True
                self.error = max(err0, err1)
                break
            n *= 2

    def _locate(self, r):
        x = (r - self.lo) / self.h
        i = np.minimum(np.floor(x).astype(np.int64), len(self.f) - 2)
        i = np.maximum(i, 0)
        return i, x - i

    @staticmethod
    def _hermite(t, h, y0, d0, y1, d1):
        t2 = t * t
        t3 = t2 * t
        return ((2 * t3 - 3 * t2 + 1) * y0 + (t3 - 2 * t2 + t) * (h * d0)
                + (-2 * t3 + 3 * t2) * y1 + (t3 - t2) * (h * d1))

    def derivative(self, r):
        i, t = self._locate(r)
        return self._hermite(t, self.h, self.f1[i], self.f2[i], self.f1[i + 1], self.f2[i + 1])

    def value(self, r):
        i, t = self._locate(r)
        return self._hermite(t, self.h, self.f[i], self.f1[i], self.f[i + 1], self.f1[i + 1])

    def inside(self, r):
        return (r >= self.lo) & (r <= self.hi)


class FittedModel(LearnedHamiltonian):
    """A fitted RF-HGN. See the module notes for shapes and the file format."""

    def __init__(self, config: RFConfig, network, theta: np.ndarray, constant: float, n_ref: int,
                 train_system: System | None = None, info: dict | None = None, e_ref: int | None = None):
        self.config = config
        self.network = network
        self.theta = np.asarray(theta, dtype=np.float64)
        self._set_reference(constant, n_ref, train_system, info, e_ref)
        self._tables: dict = {}

    # ------------------------------------------------------------------
    @property
    def separable(self) -> bool:
        """True when H = T(p) + V(q) (the invariant encoding)."""
        return bool(self.network.separable)

    @property
    def dim(self) -> int:
        if self.train_system is not None:
            return self.train_system.dim
        return int(getattr(self.network, "dim", 0))

    @staticmethod
    def raw_energy(network, theta, system, q, p):
        """theta . Phi for q, p (S, N, d), without the constant."""
        return network.features(system, q, p) @ theta

    # -- whole H ---------------------------------------------------------
    def energy(self, system: System, q, p, pairs=None, exact: bool = False) -> np.ndarray:
        """H_hat: 0-d array for one state (N, d), (S,) for a batch. ``pairs``:
        optional candidate pairs of a cutoff system (see potential_gradient)."""
        q = self._check(system, q)
        p = self._check(system, p, "p")
        single = q.ndim == 2
        qb, pb = (q[None], p[None]) if single else (q, p)
        if self.separable:
            e = (self.kinetic_energy(system, pb) + self.potential_energy(system, qb, pairs, exact=exact)
                 + self._const(system))
        else:
            e = self.network.features(system, qb, pb, batch_graph(system, qb, pairs)) @ self.theta + self._const(system)
        return e[0] if single else e

    def gradients(self, system: System, q, p, pairs=None, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(dH/dq, dH/dp), each the shape of q."""
        q = self._check(system, q)
        p = self._check(system, p, "p")
        if self.separable:
            return self.potential_gradient(system, q, pairs, exact), self.kinetic_gradient(system, p)
        single = q.ndim == 2
        qb, pb = (q[None], p[None]) if single else (q, p)
        g = batch_graph(system, qb, pairs)
        _, gq, gp = self.network.evaluate(system, qb, pb, self.theta, g, energy=False)
        return (gq[0], gp[0]) if single else (gq, gp)

    # -- separable parts ---------------------------------------------------

    def kinetic_energy(self, system: System, p) -> np.ndarray:
        """T_hat(p) (without the constant): 0-d for one state, (S,) for a batch."""
        self._need_separable("kinetic_energy")
        p = self._check(system, p, "p")
        T, _ = self.network.kinetic_part(system.masses, p, self.theta[self.network.p_cols])
        return T

    def kinetic_gradient(self, system: System, p) -> np.ndarray:
        """dT_hat/dp, the shape of p."""
        self._need_separable("kinetic_gradient")
        p = self._check(system, p, "p")
        return self.network.kinetic_part(system.masses, p, self.theta[self.network.p_cols], energy=False)[1]

    def potential_energy(self, system: System, q, pairs=None, exact: bool = False) -> np.ndarray:
        """V_hat(q) (without the constant): 0-d for one state, (S,) for a batch."""
        self._need_separable("potential_energy")
        return self._potential(system, q, pairs, exact, energy=True)[0]

    def potential_gradient(self, system: System, q, pairs=None, exact: bool = False) -> np.ndarray:
        """dV_hat/dq, the shape of q. ``pairs`` (cutoff systems, optional):
        candidate pairs (P, 2) shared by the snapshots, e.g. from a
        :class:`core.physics.neighbours.NeighbourList`; without them the pairs are
        searched afresh."""
        self._need_separable("potential_gradient")
        return self._potential(system, q, pairs, exact, energy=False)[1]

    def _potential(self, system, q, pairs, exact, energy):
        q = self._check(system, q)
        single = q.ndim == 2
        qb = q[None] if single else q
        g = batch_graph(system, qb, pairs)
        net = self.network
        thV = self.theta[net.q_cols]
        if exact or not self.config.fast_tables or g.P == 0:
            V, grad = net.potential_part(system, g, thV, energy)
        else:
            V, grad = self._potential_tables(system, g, thV, energy)
        if single:
            return (None if V is None else V[0]), grad[0]
        return V, grad

    # -- tables ----------------------------------------------------------------
    def _table_range(self, system: System) -> tuple[float, float]:
        if system.cutoff is not None:
            return 0.0, float(system.cutoff)
        rmax = float(self.info.get("train_r_max", 0.0)) or float(np.max(np.linalg.norm(
            system.positions[system.edges[:, 0]] - system.positions[system.edges[:, 1]], axis=1), initial=1.0))
        return 0.0, TABLE_RANGE_FACTOR * rmax

    def _table(self, key, gsum: np.ndarray, shift, lo, hi, thV):
        full = (key, lo, hi)
        tab = self._tables.get(full)
        if tab is None:
            net = self.network

            def fn(r):
                m, dm, d2m = net.pair(r, gsum, 2, shift)
                return m @ thV, dm @ thV, d2m @ thV

            tab = PairTable(fn, lo, hi)
            self._tables[full] = tab
        return tab

    def _potential_tables(self, system, g, thV, energy):
        net = self.network
        shift = float(system.cutoff) if (system.cutoff is not None and net.cutoff_shift) else None
        lo, hi = self._table_range(system)
        masses = system.masses
        if net.static.n_out == 0:
            classes = [(None, None)]
        else:
            mi, mj = masses[g.i], masses[g.j]
            a, b = np.minimum(mi, mj), np.maximum(mi, mj)
            keys = np.unique(np.stack([a, b], 1), axis=0)
            if len(keys) > TABLE_MAX_CLASSES:
                return net.potential_part(system, g, thV, energy)
            classes = [(tuple(k), (a == k[0]) & (b == k[1])) for k in keys]
        fp = np.empty(g.P)
        fv = np.empty(g.P) if energy else None
        for key, sel in classes:
            if key is None:
                gsum = np.zeros((1, 0))
                r = g.r
            else:
                gsum = net.static_sum(np.array([key[0]]), np.array([key[1]]))
                r = g.r[sel]
            tab = self._table(key, gsum, shift, lo, hi, thV)
            if not tab.ok:
                return net.potential_part(system, g, thV, energy)
            inside = tab.inside(r)
            d1 = np.empty(len(r))
            d1[inside] = tab.derivative(r[inside])
            v1 = np.empty(len(r)) if energy else None
            if energy:
                v1[inside] = tab.value(r[inside])
            out = ~inside
            if out.any():
                res = net.pair(r[out], gsum, 1, shift)
                d1[out] = res[1] @ thV
                if energy:
                    v1[out] = res[0] @ thV
            if key is None:
                fp, fv = d1, v1
            else:
                fp[sel] = d1
                if energy:
                    fv[sel] = v1
        return net._assemble_potential(g, fv, fp)

    # -- files ------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the model (kind "model"); see the module notes for the contents."""
        header = {
            "config": self.config.to_dict(),
            "encoding": self.network.encoding,
            "dim": int(self.dim),
            "constant": self.constant,
            "n_ref": self.n_ref,
            "e_ref": self.e_ref,
            "info": plain_info(self.info),
        }
        arrays = {"theta": self.theta, "constant": np.array([self.constant])}
        arrays.update(self.network.to_arrays())
        if self.train_system is not None:
            header["train_system"] = self.train_system.to_header()
            for k, v in self.train_system.to_arrays().items():
                arrays[f"train_system.{k}"] = v
        return save_npz(path, "model", header, arrays)

    @classmethod
    def load(cls, path) -> "FittedModel":
        header, arrays = load_npz(path, "model")
        try:
            stored = dict(header["config"])
            # files written before frame_rule existed used the paper's rule
            stored.setdefault("frame_rule", "nearest")
            config = RFConfig.from_dict(stored)
            dim = int(header["dim"])
            theta = np.asarray(arrays["theta"], dtype=np.float64)
            constant = float(np.asarray(arrays["constant"]).reshape(-1)[0])
            if config.encoding == "invariant":
                net = InvariantNetwork.from_arrays(arrays, config.linear_kinetic, config.cutoff_shift,
                                                   config.pool_edges)
            else:
                net = FrameNetwork.from_arrays(arrays, dim, config.pool_edges, config.frame_rule)
            train_system = None
            if "train_system" in header:
                sys_arrays = {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("train_system.")}
                train_system = System.from_header_and_arrays(header["train_system"], sys_arrays)
            n_ref = int(header["n_ref"])
            e_ref = header.get("e_ref")
        except KeyError as exc:
            raise HGNError(f"{Path(path).name}: model file is missing {exc.args[0]!r}") from None
        if theta.shape != (net.L,):
            raise HGNError(f"{Path(path).name}: output layer has {theta.shape} weights, the network needs {net.L}")
        return cls(config, net, theta, constant, n_ref, train_system, header.get("info", {}), e_ref)

    def __repr__(self) -> str:
        return (f"FittedModel({self.network.encoding}, {self.config.sampler}, {self.network.L} features, "
                f"separable={self.separable})")
