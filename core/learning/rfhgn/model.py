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

The network is a :class:`core.learning.hgn.network.HGN` (torch, theta
inside it), evaluated through :class:`core.learning.learned.NetworkHamiltonian`
on its device (the fit's device; ``load(path, device=...)`` picks another).

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

import copy
from pathlib import Path

import numpy as np
import torch

from core.errors import HGNError
from core.container import load_npz, save_npz
from core.learning.hgn.device import resolve_device
from core.learning.hgn.network import HGN, assemble_potential
from ..learned import NetworkHamiltonian, plain_info
from core.physics.system import System
from .config import RFConfig

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


class FittedModel(NetworkHamiltonian):
    """A fitted RF-HGN. See the module notes for shapes and the file format.

    ``network``: the sampled HGN; with ``theta`` given, the model holds a copy
    of it with that output layer (the network passed in is left alone),
    without, the network's own theta is used."""

    def __init__(self, config: RFConfig, network: HGN, theta, constant: float, n_ref: int,
                 train_system: System | None = None, info: dict | None = None, e_ref: int | None = None):
        if not isinstance(network, HGN):
            raise HGNError(f"a FittedModel needs an HGN network, got {type(network).__name__}")
        self.config = config
        if theta is not None:
            network = copy.deepcopy(network)
            network.set_theta(np.asarray(theta, dtype=np.float64))
        self.network = network
        self._set_reference(constant, n_ref, train_system, info, e_ref)
        self._tables: dict = {}

    # ------------------------------------------------------------------
    @property
    def dim(self) -> int:
        if self.train_system is not None:
            return self.train_system.dim
        return int(self.network.dim)

    # -- whole H ---------------------------------------------------------
    def energy(self, system: System, q, p, pairs=None, exact: bool = False) -> np.ndarray:
        """H_hat: 0-d array for one state (N, d), (S,) for a batch. ``pairs``:
        optional candidate pairs of a cutoff system (see potential_gradient);
        ``exact``: bypass the fast tables."""
        if not self.separable:
            return super().energy(system, q, p, pairs)
        return (self.kinetic_energy(system, p) + self.potential_energy(system, q, pairs, exact=exact)
                + self._const(system))

    def gradients(self, system: System, q, p, pairs=None, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(dH/dq, dH/dp), each the shape of q."""
        if not self.separable:
            return super().gradients(system, q, p, pairs)
        q = self._check(system, q)
        p = self._check(system, p, "p")
        return self.potential_gradient(system, q, pairs, exact), self.kinetic_gradient(system, p)

    def potential_energy(self, system: System, q, pairs=None, exact: bool = False) -> np.ndarray:
        """V_hat(q) (without the constant): 0-d for one state, (S,) for a batch."""
        self._need_separable("potential_energy")
        return self._potential(system, q, pairs, True, exact)[0]

    def potential_gradient(self, system: System, q, pairs=None, exact: bool = False) -> np.ndarray:
        """dV_hat/dq, the shape of q. ``pairs`` (cutoff systems, optional):
        candidate pairs (P, 2) shared by the snapshots, e.g. from a
        :class:`core.physics.neighbours.NeighbourList`; without them the pairs are
        searched afresh. ``exact``: bypass the fast tables."""
        self._need_separable("potential_gradient")
        return self._potential(system, q, pairs, False, exact)[1]

    def _potential(self, system, q, pairs, energy, exact=False):
        if exact or not self.config.fast_tables:
            return super()._potential(system, q, pairs, energy)
        qb, _, single = self._batch(system, q)
        g = self._graph(system, qb, pairs)
        if g.P == 0:
            return super()._potential(system, q, pairs, energy)
        with torch.no_grad():
            res = self._potential_tables(system, g, qb, energy)
        if res is None:
            return super()._potential(system, q, pairs, energy)
        return self._out(res[0], single), self._out(res[1], single)

    # -- tables ----------------------------------------------------------------
    def _table_range(self, system: System) -> tuple[float, float]:
        if system.cutoff is not None:
            return 0.0, float(system.cutoff)
        rmax = float(self.info.get("train_r_max", 0.0)) or float(np.max(np.linalg.norm(
            system.positions[system.edges[:, 0]] - system.positions[system.edges[:, 1]], axis=1), initial=1.0))
        return 0.0, TABLE_RANGE_FACTOR * rmax

    def _table(self, key, gsum, shift, lo, hi):
        full = (key, lo, hi)
        tab = self._tables.get(full)
        if tab is None:
            net = self.network
            thV = net.theta.detach()[net.q_cols].to(torch.float64)

            def fn(r):
                with torch.no_grad():
                    rt = torch.as_tensor(r, dtype=torch.float64, device=net.device)
                    m, dm, d2m = net.pair(rt.to(net.dtype), gsum, 2, shift)
                    return tuple((x.to(torch.float64) @ thV).cpu().numpy() for x in (m, dm, d2m))

            tab = PairTable(fn, lo, hi)
            self._tables[full] = tab
        return tab

    def _potential_tables(self, system, g, qb, energy):
        """(V or None, dV/dq) through the tables, or None where they do not
        apply (too many mass classes, a function too sharp to tabulate)."""
        net = self.network
        shift = float(system.cutoff) if (system.cutoff is not None and net.cutoff_shift) else None
        lo, hi = self._table_range(system)
        delta, r_t = g.delta(qb)
        r = r_t.detach().to("cpu", torch.float64).numpy()
        masses = system.masses
        if net.widths["static"] == 0:
            classes = [(None, None)]
        else:
            gi, gj = g.i.cpu().numpy(), g.j.cpu().numpy()
            mi, mj = masses[gi], masses[gj]
            a, b = np.minimum(mi, mj), np.maximum(mi, mj)
            keys = np.unique(np.stack([a, b], 1), axis=0)
            if len(keys) > TABLE_MAX_CLASSES:
                return None
            classes = [(tuple(k), (a == k[0]) & (b == k[1])) for k in keys]
        fp = np.empty(g.P)
        fv = np.empty(g.P) if energy else None
        thV = net.theta.detach()[net.q_cols].to(torch.float64)
        for key, sel in classes:
            if key is None:
                gsum = torch.zeros((1, 0), dtype=net.dtype, device=net.device)
                rr = r
            else:
                gsum = net.static_sum(torch.tensor([key[0]], dtype=net.dtype, device=net.device),
                                      torch.tensor([key[1]], dtype=net.dtype, device=net.device))
                rr = r[sel]
            tab = self._table(key, gsum, shift, lo, hi)
            if not tab.ok:
                return None
            inside = tab.inside(rr)
            d1 = np.empty(len(rr))
            d1[inside] = tab.derivative(rr[inside])
            v1 = np.empty(len(rr)) if energy else None
            if energy:
                v1[inside] = tab.value(rr[inside])
            out = ~inside
            if out.any():
                rt = torch.as_tensor(rr[out], dtype=net.dtype, device=net.device)
                res = net.pair(rt, gsum, 1, shift)
                d1[out] = (res[1].to(torch.float64) @ thV).cpu().numpy()
                if energy:
                    v1[out] = (res[0].to(torch.float64) @ thV).cpu().numpy()
            if key is None:
                fp, fv = d1, v1
            else:
                fp[sel] = d1
                if energy:
                    fv[sel] = v1
        t = (lambda x: None if x is None else torch.as_tensor(x, dtype=qb.dtype, device=qb.device))  # noqa: E731
        return assemble_potential(g, delta, r_t, t(fv), t(fp))

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
    def load(cls, path, device=None) -> "FittedModel":
        """Read a model file (any version of the format; ``device``: where
        the network runs, default the CPU)."""
        header, arrays = load_npz(path, "model")
        dev = resolve_device(device)
        try:
            stored = dict(header["config"])
            # files written before frame_rule existed used the paper's rule
            stored.setdefault("frame_rule", "nearest")
            config = RFConfig.from_dict(stored)
            dim = int(header["dim"])
            theta = np.asarray(arrays["theta"], dtype=np.float64)
            constant = float(np.asarray(arrays["constant"]).reshape(-1)[0])
            net = HGN.from_arrays(config.encoding, dim, arrays, linear_kinetic=config.linear_kinetic,
                                  pool_edges=config.pool_edges, cutoff_shift=config.cutoff_shift,
                                  frame_rule=config.frame_rule, device=dev)
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
        net.set_theta(theta)
        return cls(config, net, None, constant, n_ref, train_system, header.get("info", {}), e_ref)

    def __repr__(self) -> str:
        return (f"FittedModel({self.network.encoding}, {self.config.sampler}, {self.network.L} features, "
                f"separable={self.separable})")
