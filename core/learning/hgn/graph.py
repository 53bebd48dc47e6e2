"""The edges of a batch of snapshots, flattened over snapshots, on a device.

A :class:`Graph` holds every interacting pair of every snapshot of a batch in
one flat list with global node indices gi = s * N + i, so that the network
runs over all edges of all snapshots at once and scatters back to nodes with
``index_add`` (no Python loop over snapshots or edges).

* fixed graphs (``system.edges``): the same pairs in every snapshot
  (``E_fixed`` edges each); the differences q_i - q_j are taken as one
  gather per edge end for all snapshots, and pooling per snapshot is a
  reshape and a sum;
* cutoff systems: the pairs closer than ``system.cutoff`` in each snapshot,
  from :func:`core.physics.neighbours.pairs_within` (a k-d tree, numpy on the
  CPU; or filtered from candidate pairs such as a neighbour list's), then
  uploaded. This discrete choice is the only part made in numpy.

:meth:`Graph.delta` gives delta = q_i - q_j with the minimum image in a
periodic box (delta - box * round(delta / box): the image is piecewise
constant, so the expression is differentiable by autograd with the right
derivative) and r = |delta|. ``weight`` is the system's ``edge_scale`` per
edge (or None); it multiplies the edge's features in the pooled sum.
``masses`` (N,) and ``cutoff`` come from the system too: the network reads
them from the graph.
"""
from __future__ import annotations

import numpy as np
import torch

from core.errors import HGNError
from core.physics.neighbours import minimum_image, pairs_within
from .device import resolve_device


class Graph:
    """Edges of S snapshots of N particles in d dimensions (see the module notes).

    Attributes: ``S, N, d, P`` (ints), ``i, j, snap, gi, gj`` (int64 tensors,
    (P,)), ``weight`` ((P,) or None), ``box`` ((d,) tensor or None),
    ``E_fixed`` (edges per snapshot of a fixed graph, else None), ``edges``
    ((E, 2) int64 tensor of a fixed graph, else None), ``masses`` (N,),
    ``cutoff`` (float or None), ``device``, ``dtype``.
    """

    def __init__(self, S, N, d, i, j, snap, weight, box, E_fixed, masses, cutoff=None, edges=None):
        self.S, self.N, self.d = int(S), int(N), int(d)
        # (i, j, snap, gi, gj); a fixed graph (i None) builds them when first asked for (the fit's
        # fast path and the sampler only need the edge list: measured ~0.2 ms and ~90 page faults
        # saved per 3x3x3 fit for 500 snapshots)
        self._idx = None if i is None else (i, j, snap, snap * self.N + i, snap * self.N + j)
        self.weight = weight
        self.box = box
        self.E_fixed = None if E_fixed is None else int(E_fixed)
        self.edges = edges
        self.masses = masses
        self.cutoff = None if cutoff is None else float(cutoff)
        self.device = masses.device
        self.dtype = masses.dtype
        if edges is not None:
            self._ei, self._ej = edges[:, 0], edges[:, 1]

    def _index(self):
        if self._idx is None:
            e, S = self.edges, self.S
            i = e[:, 0].repeat(S)
            j = e[:, 1].repeat(S)
            snap = torch.arange(S, device=e.device).repeat_interleave(int(e.shape[0]))
            self._idx = (i, j, snap, snap * self.N + i, snap * self.N + j)
        return self._idx

    @property
    def i(self):
        return self._index()[0]

    @property
    def j(self):
        return self._index()[1]

    @property
    def snap(self):
        return self._index()[2]

    @property
    def gi(self):
        return self._index()[3]

    @property
    def gj(self):
        return self._index()[4]

    @property
    def P(self) -> int:
        if self._idx is None:
            return self.S * int(self.edges.shape[0])
        return int(self._idx[0].shape[0])

    # ------------------------------------------------------------------
    @classmethod
    def build(cls, system, q, pairs=None, device=None, dtype=torch.float64) -> "Graph":
        """Edges of each snapshot of q (S, N, d) (numpy or tensor) for ``system``.

        ``pairs`` (cutoff systems only, optional): candidate pairs (P, 2) shared
        by all snapshots (e.g. a neighbour list with a skin); those not closer
        than the cutoff are dropped. Without it each snapshot gets a fresh pair
        search. ``device``: where the graph lives (default: q's device for a
        tensor, else the CPU)."""
        if device is None:
            device = q.device if isinstance(q, torch.Tensor) else torch.device("cpu")
        device = resolve_device(device)
        shape = tuple(q.shape)
        if len(shape) != 3 or shape[1:] != (system.n, system.dim):
            raise HGNError(f"positions must have shape (S, {system.n}, {system.dim}), got {shape}")
        S, N, d = shape
        masses = torch.as_tensor(system.masses, dtype=dtype, device=device)
        box = None if system.box is None else torch.as_tensor(system.box, dtype=dtype, device=device)
        if system.edges is not None:
            e = np.asarray(system.edges, dtype=np.int64).reshape(-1, 2)
            g = cls.fixed(e, S, N, d, masses, box, system.edge_scale, system.cutoff)
            if len(e) and S:
                _, r = g.delta(torch.as_tensor(q, device=device).to(dtype))
                if float(r.min()) <= 0:
                    raise HGNError("two particles of a snapshot sit on top of each other (pair distance 0); "
                                   "the pair features are undefined there")
            return g
        qn = q.detach().cpu().numpy() if isinstance(q, torch.Tensor) else np.asarray(q)
        qn = np.asarray(qn, dtype=np.float64)
        cut = float(system.cutoff)
        ii, jj, ss = [], [], []
        cand = None if pairs is None else np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        rmin = np.inf
        for s in range(S):
            if cand is None:
                pr = pairs_within(qn[s], cut, system.box)
            else:
                pr = cand
            dl = minimum_image(qn[s, pr[:, 0]] - qn[s, pr[:, 1]], system.box)
            r2 = np.einsum("ij,ij->i", dl, dl)
            if cand is not None:
                keep = r2 < cut * cut
                pr, r2 = pr[keep], r2[keep]
            if len(r2):
                rmin = min(rmin, float(r2.min()))
            ii.append(pr[:, 0])
            jj.append(pr[:, 1])
            ss.append(np.full(len(pr), s, dtype=np.int64))
        if rmin <= 0:
            raise HGNError("two particles of a snapshot sit on top of each other (pair distance 0); "
                           "the pair features are undefined there")
        def cat(x):
            return (torch.as_tensor(np.concatenate(x) if x else np.zeros(0, np.int64), device=device))
        return cls(S, N, d, cat(ii), cat(jj), cat(ss), None, box, None, masses, system.cutoff)

    @classmethod
    def fixed(cls, edges, S, N, d, masses, box=None, edge_scale=None, cutoff=None) -> "Graph":
        """The same edges (E, 2) in each of S snapshots (no positions needed)."""
        device, dtype = masses.device, masses.dtype
        e = torch.as_tensor(np.asarray(edges, dtype=np.int64).reshape(-1, 2), device=device)
        E = int(e.shape[0])
        w = None
        if edge_scale is not None:
            w = torch.as_tensor(np.asarray(edge_scale, dtype=np.float64), dtype=dtype, device=device).repeat(S)
        return cls(S, N, d, None, None, None, w, box, E, masses, cutoff, edges=e)  # indices when asked for

    def to(self, device=None, dtype=None) -> "Graph":
        """The same graph on another device and/or in another float dtype."""
        device = self.device if device is None else resolve_device(device)
        dtype = self.dtype if dtype is None else dtype
        def f(x):
            return (None if x is None else x.to(device=device, dtype=dtype))
        def n(x):
            return (None if x is None else x.to(device))
        ijs = (None, None, None) if self._idx is None else (n(self.i), n(self.j), n(self.snap))
        return Graph(self.S, self.N, self.d, *ijs, f(self.weight), f(self.box),
                     self.E_fixed, f(self.masses), self.cutoff, n(self.edges))

    # ------------------------------------------------------------------
    def delta(self, q):
        """(delta (P, d), r (P,)): q_i - q_j (minimum image) and |q_i - q_j|
        for q (S, N, d), differentiable by autograd."""
        if self.edges is not None:
            dl = (q[:, self._ei] - q[:, self._ej]).reshape(-1, self.d)
        else:
            qf = q.reshape(-1, self.d)
            dl = qf[self.gi] - qf[self.gj]
        if self.box is not None:
            dl = dl - self.box * torch.round(dl / self.box)
        return dl, torch.sqrt((dl * dl).sum(-1))

    def scatter_i(self, x):
        """Sum over edges of x[e] into node gi[e]: (P, ...) -> (S*N, ...)."""
        out = x.new_zeros((self.S * self.N,) + tuple(x.shape[1:]))
        return out.index_add_(0, self.gi, x)

    def scatter_j(self, x):
        """Sum over edges of x[e] into node gj[e]: (P, ...) -> (S*N, ...)."""
        out = x.new_zeros((self.S * self.N,) + tuple(x.shape[1:]))
        return out.index_add_(0, self.gj, x)

    def scatter_signed(self, x):
        """x[e] into node gi[e] and -x[e] into node gj[e]: (P, ...) -> (S*N, ...)."""
        out = x.new_zeros((self.S * self.N,) + tuple(x.shape[1:]))
        out.index_add_(0, self.gi, x)
        return out.index_add_(0, self.gj, x, alpha=-1)

    def pool(self, x):
        """Sum over the edges of each snapshot: (P, ...) -> (S, ...)."""
        if self.E_fixed is not None:
            return x.reshape((self.S, self.E_fixed) + tuple(x.shape[1:])).sum(1)
        out = x.new_zeros((self.S,) + tuple(x.shape[1:]))
        return out.index_add_(0, self.snap, x)

    def select(self, idx) -> "Graph":
        """The graph of the snapshots ``idx`` (in that order), e.g. a minibatch."""
        idx = torch.as_tensor(np.asarray(idx.cpu() if isinstance(idx, torch.Tensor) else idx, dtype=np.int64),
                              device=self.device).reshape(-1)
        S2 = int(idx.shape[0])
        if self.edges is not None:
            return Graph.fixed(self.edges.cpu().numpy(), S2, self.N, self.d, self.masses, self.box,
                               None if self.weight is None else self.weight[:self.E_fixed].cpu().numpy(),
                               self.cutoff)
        pos = torch.full((self.S,), -1, dtype=torch.int64, device=self.device)
        pos[idx] = torch.arange(S2, device=self.device)
        if S2 and len(torch.unique(idx)) != S2:
            raise HGNError("select: snapshot indices must be distinct")
        new = pos[self.snap]
        keep = new >= 0
        order = torch.argsort(new[keep], stable=True)
        pick = torch.nonzero(keep).reshape(-1)[order]
        w = None if self.weight is None else self.weight[pick]
        return Graph(S2, self.N, self.d, self.i[pick], self.j[pick], new[pick], w, self.box, None, self.masses,
                     self.cutoff)
