"""Saving and loading systems, trajectories and datasets.

Every file is one :mod:`core.container` container: an uncompressed ``.npz``
with named float64/int64 arrays plus a JSON header (``format``, ``version``,
``kind`` and the fields below). Arrays read back bit for bit; headers read
back equal (JSON numbers are written with ``repr``, so floats are exact).
Loading validates the contents and raises :class:`~core.errors.HGNError` with
a message naming the file and what is wrong.

Layout per kind (``N`` particles, ``d`` dimensions, ``T`` frames, ``S``
snapshots, ``E`` edges; ``K``/``J`` count trajectories/systems from 0):

``system`` (one :class:`~core.physics.system.System`)
    header ``system``: ``{dim, n, potential: {kind, params...}, cutoff, name, meta}``
    arrays ``positions`` (N, d), ``masses`` (N,), optional ``edges`` (E, 2)
    int64, ``edge_scale`` (E,), ``box`` (d,).

``trajectory`` (one or several :class:`~core.physics.trajectory.Trajectory`)
    header ``systems``: list of system headers as above (trajectories on the
    same system share one entry); header ``trajectories``: list of
    ``{system: J, n_frames: T, dt, save_every, label, meta, meta_arrays}``.
    arrays ``systemJ.positions``, ``systemJ.masses``, ``systemJ.edges``, ...
    and per trajectory ``trajK.t`` (T,), ``trajK.q`` (T, N, d), ``trajK.p``
    (T, N, d), ``trajK.kinetic`` (T,), ``trajK.potential`` (T,),
    ``trajK.momentum`` (T, d), and ``trajK.meta.<name>`` for every numpy
    array held in the trajectory's ``meta`` (e.g. ``forces`` of an imported
    extxyz file); their names are listed in ``meta_arrays``.

``dataset`` (one :class:`~core.physics.trajectory.Dataset`)
    header ``systems`` as above (entry 0 is the dataset's system), ``dataset``:
    ``{system: 0, n_snapshots: S, meta, meta_arrays}`` and ``trajectories`` for
    the optional time series (as in a trajectory file).
    arrays ``q``, ``p``, ``dqdt``, ``dpdt`` (S, N, d), ``energy`` (S,),
    ``train`` and ``test`` (int64 indices into the snapshots), ``meta.<name>``,
    and ``systemJ.*`` / ``trajK.*`` as in a trajectory file.

``meta`` dictionaries must hold JSON values (numbers, strings, lists, dicts,
None) or, at the top level, numpy arrays; numpy scalars are stored as plain
numbers and tuples as lists.

:func:`load_any` reads any of these (and ``.xyz``/``.extxyz``, models and
projects) by the header's kind, looked up in the registry of file kinds
(:mod:`core.files.kinds`, where this module registers its three kinds);
:func:`describe` says in a few lines what a file holds. Both are the
registry's, as is :func:`system_in`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import numpy as np

from core.errors import HGNError
from . import kinds
from core.container import jsonable, load_npz, save_npz
from core.schema import Arr, Field, check_array, check_arrays, check_fields, check_system_part, field_label
from .kinds import describe, load_any, system_in  # the registry's entry points, also reachable from here
from core.physics.port import energy_balance, port_of, port_summary
from core.physics.system import System
from core.physics.trajectory import Dataset, Trajectory

SYSTEM_KIND = "system"
TRAJECTORY_KIND = "trajectory"
DATASET_KIND = "dataset"

#: the optional arrays of a system, in the order they are stored
_SYSTEM_OPTIONAL = ("edges", "edge_scale", "box")
_TRAJ_ARRAYS = ("t", "q", "p", "kinetic", "potential", "momentum")
DATASET_ARRAYS = ("q", "p", "dqdt", "dpdt", "energy", "train", "test")
XYZ_SUFFIXES = (".xyz", ".extxyz")

# ----------------------------------------------------------------------
# schemas: what a loader accepts (core.schema.Field / Arr), written once
# ----------------------------------------------------------------------
#: names listed in a header (array names of meta arrays)
_NAMES = Field("list", required=False, items=Field("str", lo=1, hi=200))
#: one entry of a header's ``trajectories``
TRAJECTORY_FIELDS = {
    "system": Field("int", required=False, lo=0),
    "n_frames": Field("int", required=False, lo=1),
    "dt": Field("number", above=0),
    "save_every": Field("int", lo=1),
    "label": Field("str", required=False),
    "meta": Field("dict", required=False, null=True),
    "meta_arrays": _NAMES,
}
#: the arrays of trajectory K (``trajK.<name>``; T frames of the system's N particles in d dimensions)
TRAJECTORY_ARRAYS = {
    "t": Arr("float", ("T",)),
    "q": Arr("float", ("T", "N", "d")),
    "p": Arr("float", ("T", "N", "d")),
    "kinetic": Arr("float", ("T",)),
    "potential": Arr("float", ("T",)),
    "momentum": Arr("float", ("T", "d")),
}
#: the header's ``dataset``
DATASET_FIELDS = {
    "system": Field("int", required=False, choices=(0,)),
    "n_snapshots": Field("int", required=False, lo=0),
    "meta": Field("dict", required=False, null=True),
    "meta_arrays": _NAMES,
    "trajectories": Field("list", required=False, items=Field("int", lo=0)),
}
#: a dataset's arrays (S snapshots)
DATASET_ARRAY_SPECS = {
    "q": Arr("float", ("S", "N", "d")),
    "p": Arr("float", ("S", "N", "d")),
    "dqdt": Arr("float", ("S", "N", "d")),
    "dpdt": Arr("float", ("S", "N", "d")),
    "energy": Arr("float", ("S",)),
    "train": Arr("int", (None,)),
    "test": Arr("int", (None,)),
}
#: a file's list of systems and of trajectories
SYSTEMS_FIELD = Field("list", lo=1, items=Field("dict"))
TRAJECTORIES_FIELD = Field("list", required=False, items=Field("dict"))


# ----------------------------------------------------------------------
# meta dictionaries: JSON part and arrays
# ----------------------------------------------------------------------
def split_meta(meta: dict, where: str) -> tuple[dict, dict[str, np.ndarray]]:
    """Split a meta dict into its JSON part and its top-level numpy arrays."""
    if meta is None:
        return {}, {}
    if not isinstance(meta, dict):
        raise HGNError(f"{where} must be a dict, got {type(meta).__name__}")
    plain, arrays = {}, {}
    for k, v in meta.items():
        if not isinstance(k, str):
            raise HGNError(f"{where}: keys must be strings, got {k!r}")
        if isinstance(v, np.ndarray) and v.dtype != object:
            if "/" in k:
                raise HGNError(f"{where}: array name {k!r} may not contain '/'")
            arrays[k] = v
        else:
            plain[k] = jsonable(v, f"{where}.{k}")
    return plain, arrays


# ----------------------------------------------------------------------
# systems inside a file
# ----------------------------------------------------------------------
def system_header(system: System) -> dict:
    """The JSON header of ``system`` (type-checked; meta made JSON-safe)."""
    if not isinstance(system, System):
        raise HGNError(f"expected a System, got {type(system).__name__}")
    h = system.to_header()
    h["meta"] = jsonable(h.get("meta") or {}, "system meta")
    return h


def system_arrays(system: System, prefix: str) -> dict[str, np.ndarray]:
    """The arrays of ``system`` with names prefixed by ``prefix`` (e.g. ``"system0."``)."""
    return {prefix + k: v for k, v in system.to_arrays().items()}


def same_system(a: System, b: System) -> bool:
    """True when ``a`` and ``b`` would be written identically (header and arrays bit for bit)."""
    if a is b:
        return True
    if system_header(a) != system_header(b):
        return False
    aa, bb = a.to_arrays(), b.to_arrays()
    return aa.keys() == bb.keys() and all(
        aa[k].dtype == bb[k].dtype and np.array_equal(aa[k], bb[k]) for k in aa)


def system_from(header: dict, arrays: dict, prefix: str, fname: str, what: str = "system") -> System:
    """The System described by ``header`` and the ``prefix``-named arrays,
    checked against the system schema (:data:`core.schema.SYSTEM_FIELDS`,
    :data:`~core.schema.SYSTEM_ARRAYS`) first; HGNError naming ``fname``."""
    sub = check_system_part(header, arrays, prefix, fname, what)
    try:
        return System.from_header_and_arrays(header, sub)
    except HGNError as exc:
        raise HGNError(f"{fname}: invalid {what}: {exc}") from None
    except (TypeError, ValueError, KeyError, OverflowError, AttributeError) as exc:
        raise HGNError(f"{fname}: invalid {what} ({type(exc).__name__}: {exc})") from None


# ----------------------------------------------------------------------
# System files
# ----------------------------------------------------------------------
def save_system(path, system: System) -> Path:
    """Write one system to ``path`` (kind ``system``)."""
    return save_npz(path, SYSTEM_KIND, {"system": system_header(system)}, system_arrays(system, ""))


def load_system(path) -> System:
    """Read a system file; HGNError if it is not one or is invalid."""
    header, arrays = load_npz(path, SYSTEM_KIND)
    return system_from(header.get("system"), arrays, "", kinds.file_name(path))


# ----------------------------------------------------------------------
# trajectories
# ----------------------------------------------------------------------
def pack_trajectories(trajs: list[Trajectory], systems: list[System]) -> tuple[list[dict], dict]:
    """Headers and arrays of trajectories; appends new systems to ``systems``."""
    entries, arrays = [], {}
    for k, tr in enumerate(trajs):
        if not isinstance(tr, Trajectory):
            raise HGNError(f"trajectory {k} is a {type(tr).__name__}, not a Trajectory")
        j = next((i for i, s in enumerate(systems) if same_system(s, tr.system)), None)
        if j is None:
            system_header(tr.system)  # type check with a clear message
            systems.append(tr.system)
            j = len(systems) - 1
        check_trajectory_shapes(tr, f"trajectory {k}")
        plain, marr = split_meta(tr.meta, f"trajectory {k} meta")
        entries.append({"system": j, "n_frames": tr.n_frames, "dt": float(tr.dt),
                        "save_every": int(tr.save_every), "label": str(tr.label),
                        "meta": plain, "meta_arrays": sorted(marr)})
        pre = f"traj{k}."
        for name in _TRAJ_ARRAYS:
            arrays[pre + name] = np.asarray(getattr(tr, name))
        for name, a in marr.items():
            arrays[pre + "meta." + name] = a
    return entries, arrays


def _real_and_finite(a, name: str, where: str, unit: str) -> None:
    """HGNError unless ``a`` holds real, finite numbers; a non-finite value is
    located by its first index (``unit``: "frame", "snapshot")."""
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise HGNError(f"{where}: {name} must hold real numbers, got dtype {a.dtype}")
    if not np.isfinite(a).all():
        first = int(np.argwhere(~np.isfinite(a))[0, 0])
        raise HGNError(f"{where}: {name} is not finite (NaN or inf) at {unit} {first}")


def check_trajectory_shapes(tr: Trajectory, where: str) -> None:
    """HGNError (starting with ``where``) unless ``tr``'s arrays fit its system and each other."""
    s = tr.system
    n, d = s.n, s.dim
    q = np.asarray(tr.q)
    if q.ndim != 3 or q.shape[1:] != (n, d):
        raise HGNError(f"{where}: q has shape {q.shape}, expected (frames, {n}, {d}) for its system of {n} particles "
                       f"in {d}D")
    t_n = q.shape[0]
    if t_n < 1:
        raise HGNError(f"{where} has no frames")
    expected = {"t": (t_n,), "p": (t_n, n, d), "kinetic": (t_n,), "potential": (t_n,), "momentum": (t_n, d)}
    for name, shape in expected.items():
        a = np.asarray(getattr(tr, name))
        if a.shape != shape:
            raise HGNError(f"{where}: {name} has shape {a.shape}, expected {shape} ({t_n} frames)")
    for name in _TRAJ_ARRAYS:
        _real_and_finite(getattr(tr, name), name, where, "frame")
    if not (isinstance(tr.dt, (int, float, np.number)) and math.isfinite(float(tr.dt)) and float(tr.dt) > 0):
        raise HGNError(f"{where}: time step dt must be a number > 0, got {tr.dt!r}")
    if isinstance(tr.save_every, bool) or not float(tr.save_every).is_integer() or int(tr.save_every) < 1:
        raise HGNError(f"{where}: save_every must be a whole number >= 1, got {tr.save_every!r}")


def meta_of(entry: dict, arrays: dict, pre: str, where: str) -> dict:
    """The meta dict of a header entry with its arrays (``<pre>meta.<name>``) put back."""
    meta = dict(entry.get("meta") or {})
    for name in entry.get("meta_arrays", []):
        if pre + "meta." + name not in arrays:
            raise HGNError(f"{where} is missing array {pre}meta.{name}")
        meta[name] = check_array(arrays[pre + "meta." + name], Arr("any", finite=False), {},
                                 f"{where}: array {pre}meta.{name}")
    return meta


def unpack_trajectories(header: dict, arrays: dict, systems: list[System], fname: str) -> list[Trajectory]:
    """The trajectories listed in ``header`` (inverse of :func:`pack_trajectories`),
    checked against :data:`TRAJECTORY_FIELDS` and :data:`TRAJECTORY_ARRAYS`."""
    entries = TRAJECTORIES_FIELD.check(header.get("trajectories", []), f"{fname}: header field 'trajectories'")
    out = []
    for k, e in enumerate(entries):
        where = f"{fname}: trajectory {k}"
        check_fields(e, TRAJECTORY_FIELDS, field_label(f"{fname}: header field 'trajectories'", f"[{k}]"))
        j = e.get("system", 0)
        if not 0 <= j < len(systems):
            raise HGNError(f"{where} refers to system {j!r}, but the file holds {len(systems)}")
        pre = f"traj{k}."
        missing = [name for name in _TRAJ_ARRAYS if pre + name not in arrays]
        if missing:
            raise HGNError(f"{where} is missing array(s) {', '.join(pre + m for m in missing)} (file damaged?)")
        s = systems[j]
        sizes = {"N": s.n, "d": s.dim}
        if "n_frames" in e:
            sizes["T"] = e["n_frames"]
        try:
            check_arrays(arrays, TRAJECTORY_ARRAYS, fname, sizes, pre)
        except HGNError as exc:
            if "n_frames" in e and "has shape" in str(exc):
                raise HGNError(f"{exc} (header says {e['n_frames']} frames of {s.n} particles in {s.dim}D)") from None
            raise
        meta = meta_of(e, arrays, pre, where)
        tr = Trajectory(system=s, **{name: arrays[pre + name] for name in _TRAJ_ARRAYS},
                        dt=float(e["dt"]), save_every=e["save_every"], label=e.get("label", ""), meta=meta)
        check_trajectory_shapes(tr, where)
        out.append(tr)
    return out


def unpack_systems(header: dict, arrays: dict, fname: str) -> list[System]:
    """The systems listed in ``header["systems"]`` (``systemJ.*`` arrays)."""
    hs = header.get("systems")
    if not isinstance(hs, list) or not hs:
        raise HGNError(f"{fname}: the header lists no systems (file damaged or written by another program)")
    SYSTEMS_FIELD.check(hs, f"{fname}: header field 'systems'")
    return [system_from(h, arrays, f"system{j}.", fname, f"system {j}") for j, h in enumerate(hs)]


def save_trajectories(path, trajectories: Trajectory | Iterable[Trajectory]) -> Path:
    """Write one trajectory or a list of them to ``path`` (kind ``trajectory``).

    Trajectories on equal systems (e.g. ground truth and a rollout) share one
    stored system, and read back sharing one System object.
    """
    trajs = trajectory_list(trajectories)
    if not trajs:
        raise HGNError("nothing to save: the list of trajectories is empty")
    systems: list[System] = []
    entries, arrays = pack_trajectories(trajs, systems)
    for j, s in enumerate(systems):
        arrays.update(system_arrays(s, f"system{j}."))
    header = {"systems": [system_header(s) for s in systems], "trajectories": entries}
    return save_npz(path, TRAJECTORY_KIND, header, arrays)


def trajectory_list(trajectories) -> list:
    """One Trajectory or an iterable of them as a list; HGNError for anything else."""
    if isinstance(trajectories, Trajectory):
        return [trajectories]
    if isinstance(trajectories, (str, bytes, dict)) or not hasattr(trajectories, "__iter__"):
        raise HGNError(f"expected a Trajectory or a list of them, got {type(trajectories).__name__}")
    return list(trajectories)


def save_trajectory(path, trajectory: Trajectory) -> Path:
    """Same as :func:`save_trajectories` with one trajectory."""
    return save_trajectories(path, [trajectory])


def load_trajectories(path) -> list[Trajectory]:
    """Read every trajectory of a trajectory file (a list, in saved order)."""
    fname = kinds.file_name(path)
    header, arrays = load_npz(path, TRAJECTORY_KIND)
    systems = unpack_systems(header, arrays, fname)
    trajs = unpack_trajectories(header, arrays, systems, fname)
    if not trajs:
        raise HGNError(f"{fname} holds no trajectories")
    return trajs


def load_trajectory(path, index: int = 0) -> Trajectory:
    """Read trajectory number ``index`` of a trajectory file."""
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise HGNError(f"the trajectory number must be a whole number, got {index!r}")
    trajs = load_trajectories(path)
    if not -len(trajs) <= index < len(trajs):
        raise HGNError(f"{kinds.file_name(path)} holds {len(trajs)} trajectories; there is no number {index}")
    return trajs[index]


# ----------------------------------------------------------------------
# datasets
# ----------------------------------------------------------------------
def check_dataset(ds: Dataset, where: str) -> None:
    """HGNError (starting with ``where``) unless the dataset's arrays and split fit its system."""
    s = ds.system
    n, d = s.n, s.dim
    q = np.asarray(ds.q)
    if q.ndim != 3 or q.shape[1:] != (n, d):
        raise HGNError(f"{where}: q has shape {q.shape}, expected (snapshots, {n}, {d}) for its system of {n} "
                       f"particles in {d}D")
    n_s = q.shape[0]
    for name in ("p", "dqdt", "dpdt"):
        a = np.asarray(getattr(ds, name))
        if a.shape != q.shape:
            raise HGNError(f"{where}: {name} has shape {a.shape}, expected {q.shape} like q")
    if np.asarray(ds.energy).shape != (n_s,):
        raise HGNError(f"{where}: energy has shape {np.asarray(ds.energy).shape}, expected ({n_s},)")
    for name in ("q", "p", "dqdt", "dpdt", "energy"):
        _real_and_finite(getattr(ds, name), name, where, "snapshot")
    for name in ("train", "test"):
        a = np.asarray(getattr(ds, name))
        if a.ndim != 1 or (a.size and not np.issubdtype(a.dtype, np.integer)):
            raise HGNError(f"{where}: {name} must be a list of whole snapshot indices, got shape {a.shape} dtype "
                           f"{a.dtype}")
        if a.size and (a.min() < 0 or a.max() >= n_s):
            raise HGNError(f"{where}: {name} indices must lie in 0..{n_s - 1}, found {int(a.min())}..{int(a.max())}")


def save_dataset(path, dataset: Dataset) -> Path:
    """Write a dataset (snapshots, derivatives, energies, split and optional
    time series) to ``path`` (kind ``dataset``)."""
    if not isinstance(dataset, Dataset):
        raise HGNError(f"expected a Dataset, got {type(dataset).__name__}")
    check_dataset(dataset, "dataset")
    systems = [dataset.system]
    system_header(dataset.system)
    entries, arrays = pack_trajectories(list(dataset.trajectories), systems)
    for j, s in enumerate(systems):
        arrays.update(system_arrays(s, f"system{j}."))
    plain, marr = split_meta(dataset.meta, "dataset meta")
    for name in DATASET_ARRAYS:
        a = np.asarray(getattr(dataset, name))
        if name in ("train", "test") and a.size == 0:
            a = a.astype(np.int64)
        arrays[name] = a
    for name, a in marr.items():
        arrays["meta." + name] = a
    header = {"systems": [system_header(s) for s in systems],
              "dataset": {"system": 0, "n_snapshots": dataset.n_snapshots, "meta": plain,
                          "meta_arrays": sorted(marr)},
              "trajectories": entries}
    return save_npz(path, DATASET_KIND, header, arrays)


def load_dataset(path) -> Dataset:
    """Read a dataset file; HGNError if it is not one or is inconsistent
    (checked against :data:`DATASET_FIELDS` and :data:`DATASET_ARRAY_SPECS`)."""
    fname = kinds.file_name(path)
    header, arrays = load_npz(path, DATASET_KIND)
    systems = unpack_systems(header, arrays, fname)
    info = header.get("dataset")
    if not isinstance(info, dict):
        raise HGNError(f"{fname}: the header has no dataset description")
    check_fields(info, DATASET_FIELDS, f"{fname}: header field 'dataset'")
    missing = [n for n in DATASET_ARRAYS if n not in arrays]
    if missing:
        raise HGNError(f"{fname} is missing dataset array(s) {', '.join(missing)} (file damaged?)")
    sizes = {"N": systems[0].n, "d": systems[0].dim}
    if "n_snapshots" in info:
        sizes["S"] = info["n_snapshots"]
    check_arrays(arrays, DATASET_ARRAY_SPECS, fname, sizes)
    meta = meta_of(info, arrays, "", fname)
    trajs = unpack_trajectories(header, arrays, systems, fname)
    ds = Dataset(system=systems[0], **{n: arrays[n] for n in DATASET_ARRAYS}, trajectories=trajs, meta=meta)
    check_dataset(ds, fname)
    return ds


# ----------------------------------------------------------------------
# descriptions, and the three kinds in the registry
# ----------------------------------------------------------------------
def is_xyz(path) -> bool:
    """True for the suffixes of extended XYZ files (read through :mod:`core.files.xyz`)."""
    return Path(path).suffix.lower() in XYZ_SUFFIXES


def describe_system(s: System) -> str:
    """One line on a system: particles, masses, potential, graph, box."""
    graph = f"{len(s.edges)} fixed edges" if s.edges is not None else f"cutoff {s.cutoff:g} (dynamic edges)"
    pot = ", ".join(f"{k}={v:g}" for k, v in s.potential.params().items())
    box = f", periodic box {' x '.join(f'{b:g}' for b in s.box)}" if s.box is not None else ""
    scale = ", per-edge scale" if s.edge_scale is not None else ""
    m = s.masses
    mass = f"mass {m[0]:g}" if np.all(m == m[0]) else f"masses {m.min():g}..{m.max():g}"
    port = f"; {s.port.describe()}" if s.port is not None else ""
    return (f"{s.name or 'unnamed'}: {s.n} particles in {s.dim}D, {mass}, {s.potential.kind} ({pot}), "
            f"{graph}{scale}{box}{port}")


def system_summary(s: System) -> dict:
    """A system as JSON values for ``python -m core info --json`` (what :func:`describe_system` says)."""
    m = s.masses
    return {"name": s.name, "n": s.n, "dim": s.dim, "masses": {"min": float(m.min()), "max": float(m.max())},
            "potential": s.potential.to_dict(), "edges": None if s.edges is None else int(len(s.edges)),
            "cutoff": s.cutoff, "box": None if s.box is None else s.box.tolist(),
            "edge_scale": s.edge_scale is not None, "line": describe_system(s), **port_summary(s.port)}


def trajectory_summary(tr: Trajectory) -> dict:
    """A trajectory as JSON values (what :func:`describe_trajectory` says, and the energy balance of a
    damped or driven run)."""
    drift = float(np.max(np.abs(tr.energy_drift()))) if tr.n_frames else 0.0
    out = {"label": tr.label, "frames": tr.n_frames, "t0": float(tr.t[0]), "t1": float(tr.t[-1]), "dt": tr.dt,
           "save_every": tr.save_every, "integrator": tr.meta.get("integrator"), "H0": float(tr.total[0]),
           "max_relative_energy_drift": drift, "diverged": tr.diverged, "line": describe_trajectory(tr)}
    if port_of(tr.system) is not None:
        b = energy_balance(tr)
        out["energy_balance"] = {"injected": float(b["injected"][-1]), "dissipated": float(b["dissipated"][-1]),
                                 "change": float(b["change"][-1]),
                                 "max_abs_residual": float(np.max(np.abs(b["residual"]))),
                                 "accumulated_every_step": b["accumulated"]}
    return out


def describe_trajectory(tr: Trajectory) -> str:
    """One line on a trajectory: frames, times, the integrator (when recorded), H(0), the largest
    energy drift, and where it diverged (a learned roll-out that was stopped)."""
    t = tr.t
    drift = float(np.max(np.abs(tr.energy_drift()))) if tr.n_frames else 0.0
    integ = tr.meta.get("integrator")
    how = f", {integ}" if isinstance(integ, str) and integ else ""
    line = (f"'{tr.label}': {tr.n_frames} frames, t = {t[0]:g}..{t[-1]:g}, dt = {tr.dt:g}{how}, "
            f"saved every {tr.save_every} steps, H(0) = {tr.total[0]:.6g}, max |relative energy drift| = {drift:.3g}")
    if port_of(tr.system) is not None:
        b = energy_balance(tr)
        line += (f"; energy balance: injected {b['injected'][-1]:.6g}, dissipated {b['dissipated'][-1]:.6g}, "
                 f"max |H - H(0) - (injected - dissipated)| {np.max(np.abs(b['residual'])):.3g}")
    div = tr.diverged
    if div:
        line += f"; diverged at step {div.get('step')} (t = {div.get('t')})"
    return line


def _system_lines(path) -> list[str]:
    return ["  system: " + describe_system(load_system(path))]


def _trajectory_lines(path) -> list[str]:
    trajs = load_trajectories(path)
    systems: list[System] = []
    for tr in trajs:
        if not any(s is tr.system for s in systems):
            systems.append(tr.system)
    return (["  system: " + describe_system(s) for s in systems]
            + [f"  trajectory {k}: " + describe_trajectory(tr) for k, tr in enumerate(trajs)])


def _dataset_lines(path) -> list[str]:
    ds = load_dataset(path)
    lines = ["  system: " + describe_system(ds.system),
             f"  snapshots: {ds.n_snapshots} ({len(ds.train)} train, {len(ds.test)} test)",
             f"  time series: {len(ds.trajectories)}"]
    if ds.meta:
        lines.append(f"  generated with: {kinds.short_json(ds.meta)}")
    return lines


def _system_summary(path) -> dict:
    return {"systems": [system_summary(load_system(path))]}


def trajectories_summary(trajs) -> dict:
    systems: list[System] = []
    for tr in trajs:
        if not any(s is tr.system for s in systems):
            systems.append(tr.system)
    return {"systems": [system_summary(s) for s in systems],
            "trajectories": [trajectory_summary(tr) for tr in trajs]}


def _dataset_summary(path) -> dict:
    ds = load_dataset(path)
    return {"systems": [system_summary(ds.system)],
            "dataset": {"snapshots": ds.n_snapshots, "train": int(len(ds.train)), "test": int(len(ds.test)),
                        "time_series": len(ds.trajectories),
                        "meta": jsonable({k: v for k, v in ds.meta.items() if not isinstance(v, np.ndarray)},
                                         "dataset meta"),
                        "meta_arrays": sorted(k for k, v in ds.meta.items() if isinstance(v, np.ndarray))},
            "trajectories": [trajectory_summary(tr) for tr in ds.trajectories]}


kinds.register(kinds.FileKind(SYSTEM_KIND, load_system, "a system", describe=_system_lines,
                              system_of=lambda system: system, summary=_system_summary))
kinds.register(kinds.FileKind(TRAJECTORY_KIND, load_trajectories, "a trajectory", describe=_trajectory_lines,
                              system_of=lambda trajs: trajs[0].system,
                              summary=lambda path: trajectories_summary(load_trajectories(path))))
kinds.register(kinds.FileKind(DATASET_KIND, load_dataset, "a dataset", describe=_dataset_lines,
                              system_of=lambda ds: ds.system, summary=_dataset_summary))


__all__ = ["save_system", "load_system", "save_trajectories", "save_trajectory", "load_trajectories",
           "load_trajectory", "save_dataset", "load_dataset", "load_any", "describe", "system_in", "is_xyz",
           "describe_system", "describe_trajectory", "port_summary", "system_summary", "trajectory_summary",
           "trajectories_summary",
           # building blocks shared with core.files.project and core.files.xyz (same layout inside other containers)
           "DATASET_ARRAYS", "split_meta", "system_header", "system_arrays", "same_system",
           "system_from", "pack_trajectories", "check_trajectory_shapes", "unpack_trajectories",
           "unpack_systems", "check_dataset", "meta_of", "trajectory_list"]
