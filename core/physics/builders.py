"""Builders for the studio's systems: chains, lattices, molecular systems and
custom (drawn) systems. Each returns a validated :class:`~core.physics.system.System`
whose ``meta`` records the builder and its arguments, so a system can be
rebuilt (and scaled up for zero-shot tests) from its description.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from core import validate
from core.errors import HGNError
from .potentials import PairPotential, make_potential
from .system import System


#: peak bytes per particle while a builder makes a system (measured with
#: tracemalloc: chain 207, square 160, cubic 229, molecular 145, triangular 520
#: (its Python edge list), rounded up), for the memory check before building
BUILD_BYTES_PER_PARTICLE = 600


def _potential(potential, params) -> PairPotential:
    if params is not None and not isinstance(params, dict):
        raise HGNError(f"potential_params must be a mapping of parameter names to numbers, got {params!r:.80}")
    if isinstance(potential, PairPotential):
        if params:
            raise HGNError("give potential parameters either in the potential object or as potential_params, not both")
        return potential
    return make_potential(potential, **(params or {}))


def _count(name: str, v, minimum: int = 1) -> int:
    return validate.whole(name, v, minimum)


def _positive(name: str, v) -> float:
    return validate.positive(name, v)


def _dim(dim) -> int:
    if isinstance(dim, bool) or not isinstance(dim, numbers.Real) or dim not in (2, 3):
        raise HGNError(f"dimension must be 2 or 3, got {dim!r}")
    return int(dim)


def check_size(what: str, n: float) -> None:
    """HGNError before building ``n`` particles that cannot fit in memory."""
    validate.check_memory(f"{what} of {n:.0f} particles", float(n) * BUILD_BYTES_PER_PARTICLE,
                          "build a smaller system")


def _extent(name: str, spacing: float, cells: int) -> None:
    """The system's extent (spacing x cells) within MAX_LENGTH (see core.validate)."""
    if spacing * cells > validate.MAX_LENGTH:
        raise HGNError(f"{name} {spacing:g} x {cells} cells spans {spacing * cells:g} length units, beyond "
                       f"{validate.MAX_LENGTH:g}: lengths are in reduced units (a spacing is ~1)")


def _grid(shape: tuple[int, ...]) -> np.ndarray:
    """Integer coordinates of a regular grid in C order (last index fastest), (prod(shape), len(shape))."""
    return np.indices(shape, dtype=np.int64).reshape(len(shape), -1).T


def _grid_edges(shape: tuple[int, ...], offsets: list[tuple[int, ...]], periodic: bool = False) -> np.ndarray:
    """Edges (i < j) joining each grid node to the node ``offset`` away, for
    every offset (periodic: wrapped around), sorted by (i, j), no duplicates
    and no self-loops.

    Built by index arithmetic on the C-order numbering (node (a, b, c) is
    a*m*l + b*l + c): with positive unit offsets and no wrap the pairs come
    out sorted by construction (per node, the offsets in order of increasing
    stride), so no sort is needed (a 100x100x100 lattice's 2,970,000 edges in
    ~30 ms; the old coordinate-list + ``np.unique(axis=0)`` took ~3 s);
    otherwise pairs are made unique and sorted through one int64 key
    i * N + j (a 1-D sort)."""
    shape = tuple(int(s) for s in shape)
    n = int(np.prod(shape))
    strides = np.array([int(np.prod(shape[k + 1:])) for k in range(len(shape))], dtype=np.int64)
    offs = [np.asarray(o, dtype=np.int64) for o in offsets]
    if not offs or n < 2:
        return np.zeros((0, 2), dtype=np.int64)
    unit = all(((o == 0) | (o == 1)).all() and o.sum() == 1 for o in offs)
    coords = np.indices(shape, dtype=np.int64).reshape(len(shape), -1)  # (dim, N), views of one block
    idx = np.arange(n, dtype=np.int64)
    if unit and not periodic:
        # per node, targets i + stride for each axis with room, in increasing stride order
        axes = sorted((int(np.argmax(o)) for o in offs), key=lambda a: strides[a])
        tgt = np.empty((n, len(axes)), dtype=np.int64)
        ok = np.empty((n, len(axes)), dtype=bool)
        for col, a in enumerate(axes):
            np.add(idx, strides[a], out=tgt[:, col])
            np.less(coords[a], shape[a] - 1, out=ok[:, col])
        src = np.broadcast_to(idx[:, None], tgt.shape)[ok]
        return np.stack([src, tgt[ok]], 1)
    keys = []
    for o in offs:
        t = coords + o[:, None]
        if periodic:
            t %= np.array(shape, dtype=np.int64)[:, None]
            ok = slice(None)
        else:
            ok = np.all((t >= 0) & (t < np.array(shape)[:, None]), axis=0)
        dst = strides @ t[:, ok] if not periodic else strides @ t
        src = idx[ok]
        a, b = np.minimum(src, dst), np.maximum(src, dst)
        keys.append((a * n + b)[a != b])
    key = np.unique(np.concatenate(keys))
    return np.stack([key // n, key % n], 1)


def _lattice_system(name, dim, positions, edges, mass, potential, params, meta) -> System:
    pot = _potential(potential, params)
    n = len(positions)
    return System(dim=dim, positions=positions, masses=np.full(n, mass), potential=pot,
                  edges=edges, name=name, meta=meta)


def chain(n: int, spacing: float = 1.0, dim: int = 2, mass: float = 1.0,
          potential="harmonic", potential_params=None) -> System:
    """n particles on a straight line along x, joined neighbour to neighbour."""
    n = _count("chain length n", n, 2)
    a = validate.length("spacing", spacing)
    dim = _dim(dim)
    mass = _positive("mass", mass)
    check_size("a chain", n)
    _extent("spacing", a, n)
    q = np.zeros((n, dim))
    q[:, 0] = a * np.arange(n)
    e = np.stack([np.arange(n - 1), np.arange(1, n)], 1)
    meta = {"builder": "chain", "n": n, "spacing": a, "dim": dim, "mass": mass}
    return _lattice_system(f"chain {n}", dim, q, e, mass, potential, potential_params, meta)


def square_lattice(n: int, m: int, spacing: float = 1.0, mass: float = 1.0,
                   potential="harmonic", potential_params=None) -> System:
    """n x m square lattice in 2D with nearest-neighbour springs."""
    n, m = _count("n", n), _count("m", m)
    if n * m < 2:
        raise HGNError("a lattice needs at least two particles")
    a = validate.length("spacing", spacing)
    mass = _positive("mass", mass)
    check_size(f"a {n} x {m} square lattice", n * m)
    _extent("spacing", a, max(n, m))
    g = _grid((n, m))
    e = _grid_edges((n, m), [(1, 0), (0, 1)])
    meta = {"builder": "square", "n": n, "m": m, "spacing": a, "mass": mass}
    return _lattice_system(f"square {n}x{m}", 2, a * g.astype(float), e, mass, potential, potential_params, meta)


def triangular_lattice(n: int, m: int, spacing: float = 1.0, mass: float = 1.0,
                       potential="harmonic", potential_params=None) -> System:
    """n rows of m particles on a triangular lattice in 2D (six neighbours inside)."""
    n, m = _count("n", n), _count("m", m)
    if n * m < 2:
        raise HGNError("a lattice needs at least two particles")
    a = validate.length("spacing", spacing)
    mass = _positive("mass", mass)
    check_size(f"a {n} x {m} triangular lattice", n * m)
    _extent("spacing", a, max(n, m))
    g = _grid((n, m)).astype(float)  # (row, col)
    row, col = g[:, 0], g[:, 1]
    x = a * (col + 0.5 * (row % 2))
    y = a * math.sqrt(3) / 2 * row
    q = np.stack([x, y], 1)
    # neighbours: same row, and the two in the next row (offset depends on parity)
    idx = np.arange(n * m).reshape(n, m)
    edges = []
    for r in range(n):
        for c in range(m):
            i = idx[r, c]
            if c + 1 < m:
                edges.append((i, idx[r, c + 1]))
            if r + 1 < n:
                shift = 0 if r % 2 == 0 else 1
                for dc in (shift - 1, shift):
                    cc = c + dc
                    if 0 <= cc < m:
                        edges.append((i, idx[r + 1, cc]))
    e = np.unique(np.sort(np.array(edges, dtype=np.int64).reshape(-1, 2), axis=1), axis=0)
    meta = {"builder": "triangular", "n": n, "m": m, "spacing": a, "mass": mass}
    return _lattice_system(f"triangular {n}x{m}", 2, q, e, mass, potential, potential_params, meta)


def cubic_lattice(n: int, m: int, l: int, spacing: float = 1.0, mass: float = 1.0,
                  potential="harmonic", potential_params=None) -> System:
    """n x m x l simple cubic lattice in 3D with nearest-neighbour springs."""
    n, m, l = _count("n", n), _count("m", m), _count("l", l)
    if n * m * l < 2:
        raise HGNError("a lattice needs at least two particles")
    a = validate.length("spacing", spacing)
    mass = _positive("mass", mass)
    check_size(f"a {n} x {m} x {l} cubic lattice", n * m * l)
    _extent("spacing", a, max(n, m, l))
    g = _grid((n, m, l))
    e = _grid_edges((n, m, l), [(1, 0, 0), (0, 1, 0), (0, 0, 1)])
    meta = {"builder": "cubic", "n": n, "m": m, "l": l, "spacing": a, "mass": mass}
    return _lattice_system(f"cubic {n}x{m}x{l}", 3, a * g.astype(float), e, mass, potential, potential_params, meta)


def molecular(n: int, density: float = 0.8, dim: int = 3, potential="lennard-jones",
              potential_params=None, cutoff: float = 2.5, periodic: bool = True,
              mass: float = 1.0, seed: int = 0, jitter: float = 0.0) -> System:
    """n particles interacting by all pairs closer than ``cutoff``.

    Particles start on a simple cubic (square in 2D) lattice filling a box of
    the requested number density, so no two are closer than the lattice
    spacing. With ``periodic`` the box is periodic; otherwise the same block of
    particles floats free. ``jitter`` (in units of the spacing, < 0.3) displaces
    the lattice sites randomly with ``seed``. Temperature is an initial
    condition (``core.physics.initial``), not part of the system.
    """
    n = _count("particle count n", n, 2)
    rho = _positive("density", density)
    rc = validate.length("cutoff", cutoff)
    dim = _dim(dim)
    jitter = validate.number("jitter (in lattice spacings)", jitter, 0.0, 0.3, below=True)
    seed = validate.seed(seed)
    mass = _positive("mass", mass)
    periodic = validate.flag("periodic", periodic)
    pot = _potential(potential, potential_params)
    side = (n / rho) ** (1.0 / dim)
    if not side <= validate.MAX_LENGTH:
        raise HGNError(f"{n} particles at density {rho:g} fill a box of side {side:g}, beyond "
                       f"{validate.MAX_LENGTH:g} length units: use a higher density (reduced units: ~1)")
    check_size("a molecular system", n)
    k = math.ceil(n ** (1.0 / dim) - 1e-9)
    a = side / k
    g = _grid((k,) * dim)[:n].astype(float)
    q = a * (g + 0.5)
    if jitter:
        q += a * jitter * np.random.default_rng(seed).uniform(-1, 1, q.shape)
    box = np.full(dim, side) if periodic else None
    if periodic and rc >= side / 2:
        raise HGNError(f"cutoff {rc} is not below half the box length {side / 2:.4g}: use more particles, a higher "
                       "density or a smaller cutoff")
    meta = {"builder": "molecular", "n": n, "density": rho, "dim": dim, "cutoff": rc,
            "periodic": bool(periodic), "mass": mass, "seed": seed, "jitter": jitter}
    name = f"{pot.kind} {n} particles, density {rho:g}"
    return System(dim=dim, positions=q, masses=np.full(n, mass), potential=pot,
                  cutoff=rc, box=box, name=name, meta=meta)


def custom(dim: int, positions, edges=None, masses=1.0, potential="harmonic", potential_params=None,
           cutoff: float | None = None, box=None, edge_scale=None, name: str = "custom") -> System:
    """A system from explicit particles and edges (what the drawing tool makes)."""
    dim = _dim(dim)
    try:
        q = np.asarray(positions, dtype=float)
        m = np.full(len(q), float(masses)) if np.ndim(masses) == 0 else np.asarray(masses, dtype=float)
    except (TypeError, ValueError, OverflowError):
        raise HGNError("positions and masses of a custom system must be numbers") from None
    if q.ndim != 2:
        raise HGNError(f"positions must be a list of {dim}-vectors")
    if not isinstance(name, str):
        raise HGNError(f"name must be text, got {name!r:.80}")
    if edges is None and cutoff is None:
        edges = np.zeros((0, 2), dtype=np.int64)
    return System(dim=dim, positions=q, masses=m, potential=_potential(potential, potential_params),
                  edges=None if edges is None else np.asarray(edges), cutoff=cutoff, box=box,
                  edge_scale=edge_scale, name=name, meta={"builder": "custom"})


BUILDERS = {"chain": chain, "square": square_lattice, "triangular": triangular_lattice,
            "cubic": cubic_lattice, "molecular": molecular}


def build(kind: str, **kwargs) -> System:
    """Build a system by builder name (as the CLI, files and studio do)."""
    if not isinstance(kind, str) or kind not in BUILDERS:
        raise HGNError(f"unknown system kind {kind!r}; known kinds: {', '.join(BUILDERS)}")
    try:
        return BUILDERS[kind](**kwargs)
    except TypeError as exc:
        raise HGNError(f"{kind}: {exc}") from None


def rebuild_scaled(system: System, factor: int) -> System:
    """The same lattice ``factor`` times larger along every axis (for zero-shot
    roll-outs). Only for systems made by a lattice builder. A damped or driven
    system's port is carried to the corresponding particles
    (:func:`core.physics.port.transfer_port`)."""
    if not isinstance(system, System):
        raise HGNError(f"rebuild_scaled needs a System, got {type(system).__name__}")
    meta = dict(system.meta) if isinstance(system.meta, dict) else {}
    kind = meta.pop("builder", None)
    factor = _count("scale factor", factor)
    pot = system.potential
    if kind not in _SCALE_FIELDS:
        raise HGNError("only systems made by a builder (chain, lattice, molecular) can be scaled up"
                       + (f"; this one was made by {kind!r}" if isinstance(kind, str) else
                          "; this one's description (meta) names no builder"))
    missing = [f for f in _SCALE_FIELDS[kind] if f not in meta]
    if missing:
        raise HGNError(f"cannot scale this {kind} system: its description (meta) lacks {', '.join(missing)}, "
                       "which the builder needs to make it larger; build the larger system with the builder's "
                       "options instead")
    sizes = {k: _count(f"{k} in the system's description", meta[k]) for k in ("n", "m", "l") if k in meta}
    dims = validate.whole("dim in the system's description", meta.get("dim", 3), 2, 3)
    grow = factor ** dims if kind == "molecular" else factor ** len(sizes)
    check_size(f"the system scaled {factor}x ({kind})", float(np.prod([float(v) for v in sizes.values()])) * grow)
    if kind == "chain":
        out = chain(sizes["n"] * factor, meta["spacing"], meta["dim"], meta["mass"], pot)
    elif kind in ("square", "triangular"):
        out = BUILDERS[kind](sizes["n"] * factor, sizes["m"] * factor, meta["spacing"], meta["mass"], pot)
    elif kind == "cubic":
        out = cubic_lattice(sizes["n"] * factor, sizes["m"] * factor, sizes["l"] * factor, meta["spacing"],
                            meta["mass"], pot)
    else:
        out = molecular(sizes["n"] * factor ** dims, meta["density"], meta["dim"], pot, None,
                        meta["cutoff"], meta["periodic"], meta["mass"], meta["seed"], meta["jitter"])
    if system.port is not None:  # damping and forcing on the corresponding particles (core.physics.port)
        from .port import transfer_port

        out = out.copy(port=transfer_port(system.port, system, out))
    return out


#: the meta fields each builder needs to rebuild a system larger (rebuild_scaled)
_SCALE_FIELDS = {"chain": ("n", "spacing", "dim", "mass"), "square": ("n", "m", "spacing", "mass"),
                 "triangular": ("n", "m", "spacing", "mass"), "cubic": ("n", "m", "l", "spacing", "mass"),
                 "molecular": ("n", "density", "dim", "cutoff", "periodic", "mass", "seed", "jitter")}
