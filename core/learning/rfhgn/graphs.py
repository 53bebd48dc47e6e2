"""Edge lists of a batch of snapshots, flattened over snapshots.

A :class:`GraphBatch` holds every interacting pair of every snapshot of a
batch in one flat list, with global node indices s * N + i, so that the
network runs over all edges of all snapshots at once and scatters back to
nodes with one sparse incidence product (no ``np.add.at``).

* fixed graphs (``system.edges``): the same pairs in every snapshot;
* cutoff systems: the pairs closer than ``system.cutoff`` in each snapshot,
  from :func:`core.physics.neighbours.pairs_within` (or filtered from candidate pairs
  such as a neighbour list's), minimum image in periodic boxes.

``delta`` = q_i - q_j (minimum image) and ``r`` = |delta| per edge; ``weight``
is the system's ``edge_scale`` per edge (or None), which multiplies the edge's
message in the pooled sum.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from core.errors import HGNError
from core.physics.neighbours import minimum_image, pairs_within
from core.physics.system import System


@dataclass
class GraphBatch:
    S: int  # snapshots
    N: int  # particles per snapshot
    d: int
    i: np.ndarray  # (P,) local index of the first particle of each edge
    j: np.ndarray  # (P,) local index of the second particle
    snap: np.ndarray  # (P,) snapshot of each edge
    delta: np.ndarray  # (P, d) q_i - q_j (minimum image)
    r: np.ndarray  # (P,)
    weight: np.ndarray | None  # (P,) edge_scale per edge, or None
    E_fixed: int | None = None  # edges per snapshot when every snapshot has the same list
    source_edges: np.ndarray | None = None  # the system's fixed edge array (for caching)
    _inc_i: sp.csc_matrix | None = None
    _inc_j: sp.csc_matrix | None = None
    _inc_s: sp.csr_matrix | None = None

    @property
    def P(self) -> int:
        return int(self.r.shape[0])

    @property
    def gi(self) -> np.ndarray:
        return self.snap * self.N + self.i

    @property
    def gj(self) -> np.ndarray:
        return self.snap * self.N + self.j

    def _incidence(self, nodes: np.ndarray) -> sp.csc_matrix:
        P = self.P
        return sp.csc_matrix((np.ones(P), nodes.astype(np.int64), np.arange(P + 1, dtype=np.int64)),
                             shape=(self.S * self.N, P))

    def scatter_i(self, values: np.ndarray) -> np.ndarray:
        """sum over edges of values[e] into node gi[e]: (P, ...) -> (S*N, ...)."""
        if self._inc_i is None:
            self._inc_i = self._incidence(self.gi)
        return _spmm(self._inc_i, values)

    def scatter_j(self, values: np.ndarray) -> np.ndarray:
        if self._inc_j is None:
            self._inc_j = self._incidence(self.gj)
        return _spmm(self._inc_j, values)

    def scatter_signed(self, values: np.ndarray) -> np.ndarray:
        """values[e] into gi[e] and -values[e] into gj[e]."""
        if self._inc_s is None:
            self._inc_s = _cached_incidence(self)
        return _spmm(self._inc_s, values)

    def pool(self, values: np.ndarray) -> np.ndarray:
        """sum over the edges of each snapshot: (P, L) -> (S, L)."""
        if self.E_fixed is not None:
            return values.reshape((self.S, self.E_fixed) + values.shape[1:]).sum(axis=1)
        return _spmm(sp.csc_matrix((np.ones(self.P), self.snap, np.arange(self.P + 1)),
                                   shape=(self.S, self.P)), values)


#: signed incidence matrices of recent fixed graphs, keyed by the edge array
#: (rollouts evaluate the same graph every step); a few entries only
_INCIDENCE_CACHE: list[tuple] = []
_INCIDENCE_CACHE_SIZE = 4


def _signed_incidence(g: "GraphBatch") -> sp.csr_matrix:
    P = g.P
    rows = np.concatenate([g.gi, g.gj])
    cols = np.concatenate([np.arange(P), np.arange(P)])
    data = np.concatenate([np.ones(P), -np.ones(P)])
    return sp.csr_matrix((data, (rows, cols)), shape=(g.S * g.N, P))


def _cached_incidence(g: "GraphBatch") -> sp.csr_matrix:
    if g.source_edges is None:
        return _signed_incidence(g)
    for edges, copy, S, N, A in _INCIDENCE_CACHE:
        if edges is g.source_edges and S == g.S and N == g.N and np.array_equal(copy, g.source_edges):
            return A
    A = _signed_incidence(g)
    _INCIDENCE_CACHE.insert(0, (g.source_edges, g.source_edges.copy(), g.S, g.N, A))
    del _INCIDENCE_CACHE[_INCIDENCE_CACHE_SIZE:]
    return A


def _spmm(A: sp.spmatrix, values: np.ndarray) -> np.ndarray:
    shape = values.shape
    flat = values.reshape(shape[0], -1)
    out = A @ flat
    return np.asarray(out).reshape((A.shape[0],) + shape[1:])


def batch_graph(system: System, q: np.ndarray, pairs: np.ndarray | None = None) -> GraphBatch:
    """Edges of each snapshot of q (S, N, d) for ``system``.

    ``pairs`` (cutoff systems only, optional): candidate pairs (P, 2) shared by
    all snapshots (e.g. a neighbour list with a skin); those not closer than
    the cutoff are dropped. Without it each snapshot gets a fresh pair search.
    """
    q = np.asarray(q, dtype=np.float64)
    if q.ndim != 3 or q.shape[1:] != (system.n, system.dim):
        raise HGNError(f"positions must have shape (S, {system.n}, {system.dim}), got {q.shape}")
    S, N, d = q.shape
    if system.edges is not None:
        e = system.edges
        E = len(e)
        i = np.tile(e[:, 0], S)
        j = np.tile(e[:, 1], S)
        snap = np.repeat(np.arange(S), E)
        delta = minimum_image(q[:, e[:, 0]] - q[:, e[:, 1]], system.box).reshape(-1, d)
        w = None if system.edge_scale is None else np.tile(system.edge_scale, S)
    else:
        cut = float(system.cutoff)
        ii, jj, ss, dd = [], [], [], []
        for s in range(S):
            if pairs is None:
                pr = pairs_within(q[s], cut, system.box)
            else:
                pr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
            dl = minimum_image(q[s, pr[:, 0]] - q[s, pr[:, 1]], system.box)
            if pairs is not None:
                keep = np.einsum("ij,ij->i", dl, dl) < cut * cut
                pr, dl = pr[keep], dl[keep]
            ii.append(pr[:, 0])
            jj.append(pr[:, 1])
            ss.append(np.full(len(pr), s, dtype=np.int64))
            dd.append(dl)
        i = np.concatenate(ii) if ii else np.zeros(0, dtype=np.int64)
        j = np.concatenate(jj) if jj else np.zeros(0, dtype=np.int64)
        snap = np.concatenate(ss) if ss else np.zeros(0, dtype=np.int64)
        delta = np.concatenate(dd) if dd else np.zeros((0, d))
        w = None
    r = np.sqrt(np.einsum("ij,ij->i", delta, delta))
    if r.size and np.min(r) <= 0:
        raise HGNError("two particles of a snapshot sit on top of each other (pair distance 0); "
                       "the pair features are undefined there")
    E_fixed = len(system.edges) if system.edges is not None else None
    return GraphBatch(S, N, d, i.astype(np.int64), j.astype(np.int64), snap, delta, r, w, E_fixed,
                      system.edges)
