"""The drawn system: particles and springs placed by hand, Qt-free.

:class:`DrawingModel` holds 2D points with masses and springs with strength
factors (``System.edge_scale``). Every edit goes through a method that
returns nothing and notifies listeners; undo/redo works on whole-state
snapshots (:meth:`snapshot` / :meth:`restore`), which is simple and exact for
drawings of a few hundred particles. :meth:`to_system` turns the drawing into
a core System through ``core.physics.builders.custom`` -- flat (2D), or extruded into
``layers`` copies stacked along z and joined layer to layer (3D).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from core.errors import HGNError


class DrawingModel:
    def __init__(self):
        self.points = np.zeros((0, 2))
        self.masses = np.zeros(0)
        self.edges: list[tuple[int, int]] = []
        self.scales: list[float] = []
        self._listeners: list[Callable[[], None]] = []

    # -- observers -----------------------------------------------------------
    def subscribe(self, fn: Callable[[], None]) -> None:
        self._listeners.append(fn)

    def _changed(self) -> None:
        for fn in list(self._listeners):
            fn()

    # -- queries -------------------------------------------------------------
    @property
    def n(self) -> int:
        return int(len(self.points))

    def nearest_point(self, xy, radius: float) -> int | None:
        if self.n == 0:
            return None
        d = np.linalg.norm(self.points - np.asarray(xy, float), axis=1)
        i = int(np.argmin(d))
        return i if d[i] <= radius else None

    def nearest_edge(self, xy, radius: float) -> int | None:
        if not self.edges:
            return None
        p = np.asarray(xy, float)
        e = np.asarray(self.edges)
        a, b = self.points[e[:, 0]], self.points[e[:, 1]]
        ab = b - a
        t = np.clip(np.einsum("ij,ij->i", p - a, ab) / np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-12), 0, 1)
        d = np.linalg.norm(a + t[:, None] * ab - p, axis=1)
        k = int(np.argmin(d))
        return k if d[k] <= radius else None

    def has_edge(self, i: int, j: int) -> bool:
        key = (min(i, j), max(i, j))
        return key in self.edges

    def points_in_rect(self, x0, y0, x1, y1) -> list[int]:
        lo = np.minimum([x0, y0], [x1, y1])
        hi = np.maximum([x0, y0], [x1, y1])
        inside = np.all((self.points >= lo) & (self.points <= hi), axis=1)
        return [int(i) for i in np.flatnonzero(inside)]

    # -- snapshots (undo/redo) -------------------------------------------------
    def snapshot(self) -> dict:
        return {"points": self.points.copy(), "masses": self.masses.copy(),
                "edges": list(self.edges), "scales": list(self.scales)}

    def restore(self, state: dict) -> None:
        self.points = np.array(state["points"], float).reshape(-1, 2)
        self.masses = np.array(state["masses"], float)
        self.edges = [tuple(int(x) for x in e) for e in state["edges"]]
        self.scales = [float(s) for s in state["scales"]]
        self._changed()

    # -- edits -------------------------------------------------------------
    def add_point(self, xy, mass: float = 1.0) -> int:
        if not mass > 0:
            raise HGNError(f"mass must be > 0, got {mass}")
        self.points = np.vstack([self.points, np.asarray(xy, float).reshape(1, 2)])
        self.masses = np.append(self.masses, float(mass))
        self._changed()
        return self.n - 1

    def add_edge(self, i: int, j: int, scale: float = 1.0) -> int:
        if i == j:
            raise HGNError("a spring must join two different particles")
        if not (0 <= i < self.n and 0 <= j < self.n):
            raise HGNError("a spring must join existing particles")
        if not scale > 0:
            raise HGNError(f"spring strength must be > 0, got {scale}")
        key = (min(i, j), max(i, j))
        if key in self.edges:
            raise HGNError(f"particles {key[0]} and {key[1]} are already joined")
        self.edges.append(key)
        self.scales.append(float(scale))
        self._changed()
        return len(self.edges) - 1

    def delete(self, points=(), edges=()) -> None:
        """Delete particles (with their springs) and springs; renumbers."""
        points = set(int(i) for i in points)
        edges = set(int(k) for k in edges)
        keep_e = [k for k, (i, j) in enumerate(self.edges)
                  if k not in edges and i not in points and j not in points]
        keep_p = [i for i in range(self.n) if i not in points]
        new_index = {old: new for new, old in enumerate(keep_p)}
        self.edges = [(new_index[self.edges[k][0]], new_index[self.edges[k][1]]) for k in keep_e]
        self.scales = [self.scales[k] for k in keep_e]
        self.points = self.points[keep_p].reshape(-1, 2)
        self.masses = self.masses[keep_p]
        self._changed()

    def move(self, indices, delta) -> None:
        idx = np.asarray(list(indices), dtype=int)
        if idx.size:
            self.points[idx] += np.asarray(delta, float)
            self._changed()

    def set_positions(self, indices, xy) -> None:
        idx = np.asarray(list(indices), dtype=int)
        if idx.size:
            self.points[idx] = np.asarray(xy, float).reshape(-1, 2)
            self._changed()

    def set_mass(self, indices, mass: float) -> None:
        if not (np.isfinite(mass) and mass > 0):
            raise HGNError(f"mass must be > 0, got {mass}")
        idx = np.asarray(list(indices), dtype=int)
        self.masses[idx] = float(mass)
        self._changed()

    def set_spring(self, edge_indices, scale: float) -> None:
        if not (np.isfinite(scale) and scale > 0):
            raise HGNError(f"spring strength must be > 0, got {scale}")
        for k in edge_indices:
            self.scales[int(k)] = float(scale)
        self._changed()

    def clear(self) -> None:
        self.restore({"points": np.zeros((0, 2)), "masses": np.zeros(0), "edges": [], "scales": []})

    # -- to a core System ------------------------------------------------------
    def to_system(self, potential, layers: int = 1, layer_spacing: float = 1.0, name: str = "drawn"):
        """core.physics.builders.custom of the drawing; with layers > 1 the drawing is
        stacked along z (3D) and each particle is joined to its copy in the
        next layer by a spring of strength 1."""
        from core.physics.builders import custom

        if self.n == 0:
            raise HGNError("the drawing is empty: click on the canvas to place particles")
        layers = int(layers)
        if layers < 1:
            raise HGNError(f"layers must be at least 1, got {layers}")
        e = np.asarray(self.edges, dtype=np.int64).reshape(-1, 2)
        s = np.asarray(self.scales, float)
        if layers == 1:
            return custom(2, self.points.copy(), edges=e, masses=self.masses.copy(), potential=potential,
                          edge_scale=s if len(s) else None, name=name)
        if not layer_spacing > 0:
            raise HGNError(f"layer spacing must be > 0, got {layer_spacing}")
        n = self.n
        q = np.concatenate([np.column_stack([self.points, np.full(n, k * layer_spacing)])
                            for k in range(layers)])
        edges = [e + k * n for k in range(layers)]
        scales = [s for _ in range(layers)]
        between = np.stack([np.arange(n), np.arange(n) + n], 1)
        for k in range(layers - 1):
            edges.append(between + k * n)
            scales.append(np.ones(n))
        return custom(3, q, edges=np.concatenate(edges), masses=np.tile(self.masses, layers),
                      potential=potential, edge_scale=np.concatenate(scales), name=f"{name} ({layers} layers)")
