"""Pair search for systems with a cutoff: minimum image, one-off pair lists,
and a Verlet neighbour list with a skin for time stepping.

Pair searches use a k-d tree (scipy's cKDTree, periodic via ``boxsize``):
O(N log N), never an O(N^2) scan. The neighbour list keeps the candidate pairs
within ``cutoff + skin`` and rebuilds them only when some particle has moved
more than ``skin / 2`` since the last build, which guarantees that no pair
within the cutoff is missed. The move is the raw displacement (no minimum
image): positions wrapped into the box between two calls count as moved by a
box length, so users of the list that fix each pair's periodic image at build
time (``ForceField``, the roll-out steppers) rebuild it then.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from core.errors import HGNError


def minimum_image(dq: np.ndarray, box: np.ndarray | None) -> np.ndarray:
    """Displacements folded into [-box/2, box/2) (no-op without a box)."""
    if box is None:
        return dq
    return dq - box * np.round(dq / box)


def wrap(q: np.ndarray, box: np.ndarray | None) -> np.ndarray:
    """Positions folded into [0, box) (no-op without a box)."""
    if box is None:
        return q
    w = q - box * np.floor(q / box)
    # round-off can leave a value equal to box (or a hair below 0): that is 0
    return np.where((w >= box) | (w < 0.0), 0.0, w)


def pairs_within(q: np.ndarray, radius: float, box: np.ndarray | None = None) -> np.ndarray:
    """All pairs (i < j) closer than ``radius``, as an (P, 2) int64 array sorted by (i, j)."""
    if not np.all(np.isfinite(q)):
        raise HGNError("positions contain NaN or inf: the simulation has blown up (try a smaller time step)")
    if len(q) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    tree = cKDTree(wrap(q, box), boxsize=box) if box is not None else cKDTree(q)
    pairs = tree.query_pairs(radius, output_type="ndarray").astype(np.int64)
    if len(pairs):
        pairs.sort(axis=1)
        pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    return pairs.reshape(-1, 2)


class NeighbourList:
    """Verlet list with a skin; call :meth:`pairs` with the current positions."""

    def __init__(self, cutoff: float, skin: float = 0.3, box: np.ndarray | None = None):
        if skin < 0:
            raise HGNError(f"neighbour-list skin must be >= 0, got {skin}")
        if box is not None and cutoff + skin >= 0.5 * np.min(box):
            skin = max(0.0, 0.5 * float(np.min(box)) - cutoff - 1e-9)
        self.cutoff = float(cutoff)
        self.skin = float(skin)
        self.box = box
        self._q_ref: np.ndarray | None = None
        self._pairs = np.zeros((0, 2), dtype=np.int64)
        self.n_builds = 0

    def needs_rebuild(self, q: np.ndarray) -> bool:
        if self._q_ref is None or self._q_ref.shape != q.shape:
            return True
        # the raw displacement, not the minimum image: a particle wrapped
        # across a periodic face has jumped by a box length, and the periodic
        # image of each pair fixed at the last build (ForceField, the
        # steppers) is stale after it, so that must count as a move
        d = q - self._q_ref
        return float(np.max(np.einsum("ij,ij->i", d, d), initial=0.0)) > (0.5 * self.skin) ** 2

    def pairs(self, q: np.ndarray) -> np.ndarray:
        """Candidate pairs within cutoff + skin (a superset of those within the cutoff)."""
        if self.needs_rebuild(q):
            self.rebuild(q)
        return self._pairs

    def rebuild(self, q: np.ndarray) -> np.ndarray:
        """Build the candidate pairs at q now (for callers that check the
        displacements themselves, e.g. on a GPU) and return them."""
        self._pairs = pairs_within(q, self.cutoff + self.skin, self.box)
        self._q_ref = np.array(q, dtype=np.float64)
        self.n_builds += 1
        return self._pairs
