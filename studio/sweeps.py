"""The Sweep panel's plain part (issue 15; no Qt): the sweep's base point from
the document, the grid from the panel's texts, the Pareto front, and the
stored results' check.

A sweep (core.cluster.sweep, docs/cluster.md section 3) simulates each
point's own data on a system core.cluster.sweep.build_system can build: a
generator kind with ``n`` particles along every axis and a built-in
potential. :func:`base_point` describes the current system and settings that
way and lists, as notes, what it cannot carry over (a drawn system, m != n, a
spacing, a port, ...). The results live in the document
(:attr:`studio.document.Document.sweep`, ``ui["sweep"]``: the path of the
sweep's JSON, its records, the system it ran on, and ``stale`` once the
system changed).
"""
from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from core.errors import HGNError

#: the grid axes the panel offers: (axis name of core.cluster.sweep, label, kind of value)
AXES = (("node_width", "Node widths", int), ("edge_width", "Edge widths", int),
        ("message_width", "Message widths", int), ("regularisation", "Regularisation", float),
        ("sampler", "Samplers", str), ("seed", "Seeds", int), ("n", "System sizes n", int))
#: short names of the settings in the table and the colour choice
SHORT = {"node_width": "node", "edge_width": "edge", "message_width": "msg", "regularisation": "reg",
         "sampler": "sampler", "seed": "seed", "n": "n"}
#: the most points a sweep started from the panel may have (making them takes ~0.3 ms each in the GUI thread:
#: 0.6 s at Run; running them, hours. The command line's sweep has no such limit)
MAX_POINTS = 2_000
#: the studio's simulation settings -> the sweep's data settings
DATA_KEYS = {"n_trajectories": "trajectories", "steps": "steps", "dt": "dt", "save_every": "save_every",
             "displacement": "displacement", "momentum": "momentum", "seed": "seed",
             "test_fraction": "test_fraction"}


def parse_values(text: str, kind, label: str) -> list:
    """The values typed in a grid field: "16, 32", "1e-12 1e-8", seeds "0-3" (a range, both ends in);
    HGNError naming the field otherwise."""
    parts = [x for x in re.split(r"[,\s;]+", str(text or "").strip()) if x]
    if not parts:
        raise HGNError(f"{label}: give at least one value (several separated by commas)")
    out = []
    for x in parts:
        if kind is int and re.fullmatch(r"-?\d+-\d+", x):
            lo, hi = (int(v) for v in re.fullmatch(r"(-?\d+)-(\d+)", x).groups())
            if hi < lo or hi - lo > 1000:
                raise HGNError(f"{label}: {x!r} is not a range lo-hi with lo <= hi")
            out += list(range(lo, hi + 1))
            continue
        try:
            v = kind(x) if kind is not int else int(float(x)) if float(x) == int(float(x)) else None
        except ValueError:
            v = None
        if v is None or (kind is float and not np.isfinite(v)):
            what = {int: "whole numbers", float: "numbers", str: "names"}[kind]
            raise HGNError(f"{label}: {x!r} is not one of the {what} this field takes")
        out.append(v)
    seen = []
    for v in out:
        if v not in seen:
            seen.append(v)
    return seen


def base_point(doc) -> tuple[dict, list[str]]:
    """The sweep point that describes the current system and settings (core.cluster.sweep's parts
    system, data, fit, rollout), and notes on what it does not carry over."""
    notes = []
    sim = doc.values("simulation")
    system = doc.system
    kind = doc.get("system", "kind")
    params = doc.values(f"generator/{kind}") if kind not in ("custom", None) else {}
    meta = dict(system.meta or {}) if system is not None else {}
    built = meta.get("builder")
    if system is not None and built in ("chain", "square", "triangular", "cubic", "molecular"):
        kind = built
        params = {k: meta.get(k, v) for k, v in doc.values(f"generator/{kind}").items()}
    if kind not in ("chain", "square", "triangular", "cubic", "molecular"):
        notes.append("the current system is not made by a generator: the sweep uses a cubic lattice")
        kind, params = "cubic", {"n": 3}
    n = int(params.get("n", 3))
    for k in ("m", "l"):
        if k in params and int(params[k]) != n:
            notes.append(f"the sweep's lattices have n particles along every axis ({k} = {params[k]} is not used)")
            break
    for k, default in (("spacing", 1.0), ("mass", 1.0)):
        if k in params and float(params[k]) != default:
            notes.append(f"{k} {params[k]:g} is not used (the sweep's systems have {k} {default:g})")
    if kind == "chain" and int(params.get("dim", 2)) != 2:
        notes.append("the sweep's chains are 2D")
    pot = doc.get("system", "potential")
    potential, pparams = None, {}
    if pot == "spline":
        notes.append("a drawn potential cannot be swept: the generator's default potential is used")
    else:
        potential = pot
        from core.physics.potentials import POTENTIALS

        cls = POTENTIALS.get(pot)
        defaults = {}
        if cls is not None:
            import dataclasses

            defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        pparams = {k: v for k, v in doc.values(f"potential/{pot}").items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and defaults.get(k) != v}
    if system is not None and system.port is not None:
        notes.append("damping and driving are not swept (the sweep's systems are conservative)")
    if sim.get("temperature"):
        notes.append("the sweep draws momenta with the momentum spread, not a temperature")
    if sim.get("integrator", "verlet") != "verlet":
        notes.append("the sweep's ground truth is Verlet")
    data = {DATA_KEYS[k]: sim[k] for k in DATA_KEYS if k in sim}
    fit = {k: v for k, v in doc.values("model/rfhgn").items()}
    rollout = {"steps": int(sim.get("rollout_steps", 200)), "dt": float(sim.get("dt", 0.01)),
               "save_every": int(sim.get("rollout_save_every", 10)), "seed": 1000}
    base = {"system": {"kind": kind, "n": n, "potential": potential, "params": pparams}, "data": data,
            "fit": fit, "rollout": rollout}
    return base, notes


def form_texts(doc) -> dict[str, str]:
    """The grid fields prefilled from the current settings: each axis its current value (samplers:
    the current one; sizes: the current n)."""
    base, _ = base_point(doc)
    fit = base["fit"]
    out = {}
    for name, _label, kind in AXES:
        v = base["system"]["n"] if name == "n" else fit.get(name)
        out[name] = "" if v is None else (f"{v:g}" if kind is float else str(v))
    return out


def space_of(texts: dict[str, str], random: bool = False) -> dict:
    """The panel's fields as sweep axes (AXES order): each a list of values (:func:`parse_values`) or, in a
    random search, a range ``lo:hi`` / ``lo:hi:log`` / ``lo:hi:uniform`` (core.cluster.sweep.parse_range,
    checked against the setting: whole numbers for the widths, lo > 0 for a log-uniform draw, no range of
    a choice); HGNError naming the field otherwise (a range in a grid too)."""
    from core.cluster.sweep import is_range_text, parse_range

    out = {}
    for name, label, kind in AXES:
        text = str(texts.get(name) or "").strip()
        if is_range_text(text):
            if not random:
                raise HGNError(f"{label}: {text!r} is a range lo:hi, which a random search draws from: set "
                               "Random points above 0, or list the values (comma-separated)")
            out[name] = parse_range(name, text, label)
        else:
            out[name] = parse_values(text, kind, label)
    return out


def _checked_space(texts: dict[str, str], random_points: int) -> tuple[dict, int]:
    """(:func:`space_of` the fields, the number of points they make), HGNError for a bad field, a negative
    number of random points or more than :data:`MAX_POINTS`."""
    n = int(random_points)
    if n < 0:
        raise HGNError(f"Random points: {n} is not a number of points (0 = every combination of the grid)")
    space = space_of(texts, random=n > 0)
    if n > 0:
        total = n
    else:
        total = 1
        for values in space.values():
            total *= len(values)
    if total > MAX_POINTS:
        raise HGNError(f"{total:,} points: the studio runs at most {MAX_POINTS:,} (each is a simulation, a fit "
                       "and a roll-out); list fewer values, or draw a random search of fewer points")
    return space, total


def count_points(texts: dict[str, str], random_points: int = 0) -> int:
    """How many points the fields make, without making them (the panel counts on every edit; making
    thousands of points takes a second): the product of the fields' numbers of values for the grid, the
    number asked for in a random search (repeats are dropped when the points are drawn). The fields are
    checked as :func:`grid_points` checks them (HGNError naming a bad one)."""
    return _checked_space(texts, random_points)[1]


def grid_points(texts: dict[str, str], base: dict, random_points: int = 0, random_seed: int = 0) -> list[dict]:
    """The sweep's points on ``base``: with ``random_points`` 0, core.cluster.sweep.grid over the panel's
    fields (AXES order, the last varies fastest); else core.cluster.sweep.random_points: that many points
    drawn with ``default_rng(random_seed)`` (per axis one of its listed values or a value of its range,
    log-uniform for the widths and the regularisation unless the range says; duplicates dropped). Too many
    points are refused (:data:`MAX_POINTS`) before any is made."""
    from core.cluster.sweep import grid, random_points as draw

    n = int(random_points)
    space, _total = _checked_space(texts, n)
    return draw(space, n, int(random_seed), base) if n > 0 else grid(space, base)


def pareto_front(x, y) -> list[int]:
    """Indices of the points no other point beats in both x and y (lower is better), by increasing x."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    order = ok[np.lexsort((y[ok], x[ok]))]
    front, best = [], np.inf
    for i in order:
        if y[i] < best:
            front.append(int(i))
            best = y[i]
    return front


def setting_of(record: dict, name: str):
    """A record's value of a grid axis (core.cluster.sweep's complete settings; RFConfig's default when the
    point leaves a fit setting at its default)."""
    s = record.get("settings") or {}
    if name == "n":
        return (s.get("system") or {}).get("n")
    fit = s.get("fit") or {}
    if name in fit:
        return fit[name]
    return _fit_defaults().get(name)


@lru_cache(maxsize=1)
def _fit_defaults() -> dict:
    from core.learning.rfhgn.config import RFConfig

    return RFConfig().to_dict()


def check_sweep(value, where: str) -> dict:
    """A stored sweep (``ui["sweep"]``), checked: {"records": [{key, settings, status, ...}], "path": str,
    "system": str, "stale": bool}; HGNError saying what is wrong otherwise."""
    if not isinstance(value, dict):
        raise HGNError(f"{where}: expected a dict, got {type(value).__name__}")
    recs = value.get("records")
    if not isinstance(recs, list):
        raise HGNError(f"{where}: 'records' must be a list of sweep records")
    for i, r in enumerate(recs):
        if not isinstance(r, dict) or not isinstance(r.get("key"), str) or not isinstance(r.get("settings"), dict) \
                or r.get("status") not in ("ok", "error"):
            raise HGNError(f"{where}: records[{i}] is not a sweep record (key, settings, status)")
    return {"records": list(recs), "path": str(value.get("path") or ""), "system": str(value.get("system") or ""),
            "stale": bool(value.get("stale", False))}
