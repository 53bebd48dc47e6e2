"""The plain data model of a particle system.

A :class:`System` is what every part of the studio passes around: the
simulation, the fit, the files and the views. It holds no state of a run
(momenta, time); those live in trajectories (``core.physics.trajectory``).

Interactions are either a fixed graph (``edges``, for lattices and drawn
systems) or dynamic (``cutoff``: every pair closer than the cutoff interacts,
for molecular systems). An optional periodic ``box`` (one length per axis)
applies the minimum-image convention.
"""
from __future__ import annotations

import json
import numbers
from dataclasses import dataclass, field

import numpy as np

from core.errors import HGNError
from core.validate import MAX_LENGTH
from .port import Port
from .potentials import PairPotential, make_potential

#: two particles closer than this (in length units) count as overlapping
OVERLAP_TOLERANCE = 1e-6


@dataclass(eq=False)
class System:
    dim: int
    positions: np.ndarray  # (N, dim) float64, the reference configuration
    masses: np.ndarray  # (N,) float64, > 0
    potential: PairPotential
    edges: np.ndarray | None = None  # (E, 2) int64 with i < j, fixed graph
    cutoff: float | None = None  # dynamic graph: all pairs with r < cutoff
    box: np.ndarray | None = None  # (dim,) periodic box lengths, or None
    edge_scale: np.ndarray | None = None  # (E,) multiplier of V per edge (e.g. spring stiffness factor)
    name: str = ""
    #: free-form description of how the system was built (builder and args)
    meta: dict = field(default_factory=dict)
    #: damping and forcing (``core.physics.port``); None: Hamiltonian dynamics
    port: Port | None = None

    def __post_init__(self):
        self.positions = _as_float_array(self.positions, "positions")
        self.masses = _as_float_array(self.masses, "masses")
        if self.edges is not None:
            try:
                e = np.asarray(self.edges)
            except (TypeError, ValueError, OverflowError):
                raise HGNError("edges must be pairs of integer particle indices") from None
            if e.size == 0:
                e = np.zeros((0, 2), dtype=np.int64)
            if e.dtype.kind not in "iuf":
                raise HGNError(f"edges must be pairs of integer particle indices, got {self.edges!r:.60}")
            if not np.issubdtype(e.dtype, np.integer):
                if not np.all(np.isfinite(e)) or not np.all(np.asarray(e) == np.round(e)) \
                        or (e.size and np.abs(e).max() >= 2.0 ** 62):
                    raise HGNError("edges must be pairs of integer particle indices")
                e = e.astype(np.int64)
            self.edges = e.astype(np.int64)
        if self.edge_scale is not None:
            self.edge_scale = _as_float_array(self.edge_scale, "edge_scale")
        if self.box is not None:
            self.box = _as_float_array(self.box, "box")
        if self.cutoff is not None:
            try:
                self.cutoff = float(self.cutoff)
            except (TypeError, ValueError):
                raise HGNError(f"cutoff must be a number, got {self.cutoff!r}") from None
        if isinstance(self.potential, dict):
            self.potential = PairPotential.from_dict(self.potential)
        if not isinstance(self.name, str):
            raise HGNError(f"a system's name must be text, got {self.name!r:.80}")
        if not isinstance(self.meta, dict):
            raise HGNError(f"a system's meta must be a mapping, got {type(self.meta).__name__}")
        if self.port is not None and not isinstance(self.port, Port):
            self.port = Port.from_dict(self.port)
        self.validate()

    # ------------------------------------------------------------------
    @property
    def n(self) -> int:
        return int(self.positions.shape[0])

    @property
    def has_fixed_edges(self) -> bool:
        return self.edges is not None

    @property
    def periodic(self) -> bool:
        return self.box is not None

    def validate(self) -> None:
        """Raise :class:`HGNError` naming the first thing that is wrong."""
        if isinstance(self.dim, bool) or not isinstance(self.dim, numbers.Real) or self.dim not in (2, 3):
            raise HGNError(f"dimension must be 2 or 3, got {self.dim!r}")
        self.dim = int(self.dim)
        q = self.positions
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise HGNError(f"positions must have shape (N, {self.dim}), got {q.shape}")
        n = q.shape[0]
        if n < 1:
            raise HGNError("a system needs at least one particle")
        if not np.all(np.isfinite(q)):
            bad = int(np.argwhere(~np.isfinite(q))[0, 0])
            raise HGNError(f"position of particle {bad} is not finite (NaN or inf)")
        if np.abs(q).max() > MAX_LENGTH:
            bad = int(np.argmax(np.abs(q).max(axis=1)))
            raise HGNError(f"position of particle {bad} ({np.abs(q[bad]).max():g}) is beyond {MAX_LENGTH:g} length "
                           "units: lengths are in reduced units (a spacing is ~1), and float64 positions that "
                           "large cannot resolve a displacement")
        m = self.masses
        if m.shape != (n,):
            raise HGNError(f"masses must have one value per particle ({n}), got shape {m.shape}")
        if not np.all(np.isfinite(m)):
            raise HGNError("masses must be finite numbers (found NaN or inf)")
        if np.any(m <= 0):
            bad = int(np.argmax(m <= 0))
            raise HGNError(f"masses must be > 0; particle {bad} has mass {m[bad]}")
        if not isinstance(self.potential, PairPotential):
            raise HGNError(f"potential must be a PairPotential, got {type(self.potential).__name__}")
        if (self.edges is None) == (self.cutoff is None):
            raise HGNError("a system needs either fixed edges or a cutoff (dynamic edges), not both and not neither")
        if self.edges is not None:
            e = self.edges
            if e.ndim != 2 or e.shape[1] != 2:
                raise HGNError(f"edges must have shape (E, 2), got {e.shape}")
            if e.size and (e.min() < 0 or e.max() >= n):
                bad = e[(e < 0).any(1) | (e >= n).any(1)][0]
                raise HGNError(f"edge {tuple(int(x) for x in bad)} refers to a particle that does not exist "
                               f"(there are {n}, numbered 0..{n - 1})")
            if np.any(e[:, 0] == e[:, 1]):
                bad = int(e[e[:, 0] == e[:, 1]][0, 0])
                raise HGNError(f"edge ({bad}, {bad}) joins a particle to itself")
            if _has_duplicate_pairs(e, n):
                raise HGNError("edges contain the same pair twice")
            if self.edge_scale is not None:
                if self.edge_scale.shape != (len(e),):
                    raise HGNError(f"edge_scale must have one value per edge ({len(e)}), "
                                   f"got shape {self.edge_scale.shape}")
                if not np.all(np.isfinite(self.edge_scale)) or np.any(self.edge_scale <= 0):
                    raise HGNError("edge_scale values (per-edge strength) must be finite and > 0")
        else:
            if self.edge_scale is not None:
                raise HGNError("edge_scale needs fixed edges; a cutoff system has no fixed edge list")
            if not np.isfinite(self.cutoff) or self.cutoff <= 0:
                raise HGNError(f"cutoff must be > 0, got {self.cutoff}")
            if self.cutoff > MAX_LENGTH:
                raise HGNError(f"cutoff {self.cutoff:g} is beyond {MAX_LENGTH:g} length units (reduced units)")
        if self.box is not None:
            b = self.box
            if b.shape != (self.dim,):
                raise HGNError(f"box must have one length per axis ({self.dim}), got shape {b.shape}")
            if not np.all(np.isfinite(b)) or np.any(b <= 0) or np.any(b > MAX_LENGTH):
                raise HGNError(f"box lengths must be > 0 and at most {MAX_LENGTH:g} (reduced units), "
                               f"got {b.tolist()}")
            if self.cutoff is not None and self.cutoff >= 0.5 * b.min():
                raise HGNError(f"cutoff {self.cutoff} must be less than half the smallest box length "
                               f"({0.5 * b.min()}) for the minimum-image convention")
        if self.port is not None:
            self.port.check(n, self.dim)
        self._check_overlaps()

    def _check_overlaps(self) -> None:
        if self.n < 2:
            return
        from scipy.spatial import cKDTree

        q = self.positions
        if self.box is not None:
            from .neighbours import wrap  # np.mod can return the box length itself, which cKDTree refuses

            q = wrap(q, self.box)
        # Two particles closer than the tolerance are closer than it along any unit direction u,
        # and so are all particles between them in the order of q.u: they lie in one run of
        # consecutive gaps below the tolerance. Only particles in such runs go to the k-d tree
        # (for a 100^3 lattice none, 0.1 s instead of 0.75 s for the tree of all). In a periodic
        # box the wrap can separate two close particles along u: there every particle is searched.
        if self.box is None:
            s = q @ _OVERLAP_DIRECTIONS[self.dim]
            order = np.argsort(s, kind="stable")
            close = np.diff(s[order]) < OVERLAP_TOLERANCE
            if not close.any():
                return
            sel = np.zeros(len(q), dtype=bool)
            sel[:-1] |= close
            sel[1:] |= close
            cand = order[sel]
            tree = cKDTree(q[cand])
            pairs = cand[tree.query_pairs(OVERLAP_TOLERANCE, output_type="ndarray")]
        else:
            tree = cKDTree(q, boxsize=self.box)
            pairs = tree.query_pairs(OVERLAP_TOLERANCE, output_type="ndarray")
        if len(pairs):
            i, j = sorted(int(x) for x in pairs[0])
            raise HGNError(f"particles {i} and {j} overlap (closer than {OVERLAP_TOLERANCE}); "
                           "move or delete one of them")

    # ------------------------------------------------------------------
    def copy(self, **changes) -> "System":
        """A deep copy, optionally with some fields replaced (validated)."""
        d = dict(dim=self.dim, positions=self.positions.copy(), masses=self.masses.copy(),
                 potential=self.potential,
                 edges=None if self.edges is None else self.edges.copy(),
                 cutoff=self.cutoff, box=None if self.box is None else self.box.copy(),
                 edge_scale=None if self.edge_scale is None else self.edge_scale.copy(),
                 name=self.name, meta=json.loads(json.dumps(self.meta)), port=self.port)
        d.update(changes)
        return System(**d)

    def to_header(self) -> dict:
        """JSON-able description of everything but the arrays."""
        h = {"dim": self.dim, "n": self.n, "potential": self.potential.to_dict(),
             "cutoff": self.cutoff, "name": self.name, "meta": self.meta}
        if self.port is not None:  # only then: files of undamped, undriven systems stay as they were
            h["port"] = self.port.to_dict()
        return h

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The arrays, under the names the file format uses."""
        out = {"positions": self.positions, "masses": self.masses}
        if self.edges is not None:
            out["edges"] = self.edges
        if self.edge_scale is not None:
            out["edge_scale"] = self.edge_scale
        if self.box is not None:
            out["box"] = self.box
        return out

    @classmethod
    def from_header_and_arrays(cls, header: dict, arrays: dict) -> "System":
        try:
            return cls(dim=int(header["dim"]), positions=arrays["positions"], masses=arrays["masses"],
                       potential=PairPotential.from_dict(header["potential"]),
                       edges=arrays.get("edges"), cutoff=header.get("cutoff"), box=arrays.get("box"),
                       edge_scale=arrays.get("edge_scale"), name=header.get("name", ""),
                       meta=header.get("meta", {}) or {}, port=header.get("port"))
        except KeyError as exc:
            raise HGNError(f"system description is missing {exc.args[0]!r}") from None

    def __repr__(self) -> str:
        graph = f"{len(self.edges)} edges" if self.edges is not None else f"cutoff {self.cutoff}"
        box = f", box {self.box.tolist()}" if self.box is not None else ""
        port = f", {self.port.describe()}" if self.port is not None else ""
        return (f"System({self.name or 'unnamed'}: {self.n} particles in {self.dim}D, {self.potential.kind}, "
                f"{graph}{box}{port})")


#: per dimension, a unit direction with irrational components (lattice sites project apart) for the
#: overlap pre-check
_OVERLAP_DIRECTIONS = {d: v / np.linalg.norm(v) for d, v in
                       ((2, np.array([1.0, np.sqrt(2.0) - 1.0])),
                        (3, np.array([1.0, np.sqrt(2.0) - 1.0, np.sqrt(3.0) - 1.0])))}


def _has_duplicate_pairs(e: np.ndarray, n: int) -> bool:
    """True when two rows of ``e`` (E, 2) join the same two particles (in
    either order). One int64 key min * n + max per edge; keys already strictly
    increasing (as every builder writes them) need no sort."""
    if len(e) < 2:
        return False
    key = np.minimum(e[:, 0], e[:, 1]) * n + np.maximum(e[:, 0], e[:, 1])
    if (key[1:] > key[:-1]).all():
        return False
    key.sort()
    return bool((key[1:] == key[:-1]).any())


def _as_float_array(x, name: str) -> np.ndarray:
    try:
        a = np.array(x, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise HGNError(f"{name} must be numbers") from None
    return a


def make_system(dim, positions, masses=1.0, potential="harmonic", potential_params=None, **kw) -> System:
    """Convenience constructor: scalar masses broadcast, potential by name."""
    q = _as_float_array(positions, "positions")
    m = np.broadcast_to(_as_float_array(masses, "masses"), (q.shape[0],)).copy() if np.ndim(masses) == 0 else masses
    pot = potential if isinstance(potential, PairPotential) else make_potential(potential, **(potential_params or {}))
    return System(dim=dim, positions=q, masses=m, potential=pot, **kw)
