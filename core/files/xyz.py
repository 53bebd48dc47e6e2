"""Trajectories as extended XYZ (extxyz) files, read and written through ASE.

Extended XYZ is the exchange format of molecular dynamics: OVITO, ASE, VMD
(plain XYZ part) and many codes read it. One file holds one trajectory, one
frame per saved step. HGN Studio's own ``.npz`` files (:mod:`core.files.io`) are
the lossless format; extxyz is for exchange and viewing.

What :func:`write_trajectory` writes per frame
    columns ``species`` (``symbol``, default ``X``), ``pos`` (x, y, z),
    ``masses``, ``momenta`` (px, py, pz) and, when the trajectory's meta holds
    ``forces`` or ``forces=True`` is asked for, ``forces``;
    comment-line keys ``time``, ``energy`` (potential energy, ASE's meaning),
    ``kinetic_energy``, ``total_energy``, ``total_momentum`` (a vector) and
    ``pbc``; a periodic box is the ``Lattice`` (diagonal).
    Positions are written as the trajectory holds them (``core.physics.simulate``
    keeps them unwrapped in periodic boxes); ``wrap=True`` folds them into the
    box for viewers. A 2D system is written with z = 0 (and, when periodic, a zero third
    lattice vector with ``pbc="T T F"``, ASE's convention for a 2D cell).
    Frame 0 also carries ``hgn``: the complete system (dimension, reference
    positions, masses, potential, edges or cutoff, edge scales, box, name,
    meta) and the trajectory's dt, save_every, label and JSON meta, as
    ``zlib`` + url-safe ``base64`` (no padding) of a JSON document. It is
    opaque text to other programs, but lets :func:`read_trajectory` restore
    the graph without being told it.

Precision: ASE writes columns with 8 decimals (``%16.8f``), so positions,
momenta, masses and forces read back to within 5e-9 absolute; the energies,
times and total momentum on the comment line and everything inside ``hgn``
are written with ``repr`` and read back exactly.

Import policy (:func:`read_trajectory`), for files from any program
    * graph and potential: the ``system`` argument (a System, or a path to a
      system / trajectory / dataset file) wins; else the file's ``hgn``
      record; else ``potential`` plus ``cutoff`` or ``edges`` build a new
      system on frame 0's positions. Without any of these it is an error that
      says what to give.
    * dimension: from the system; else ``dim``; else 2 when every z
      coordinate (and z momentum) is exactly 0, otherwise 3.
    * masses: the system's; else the file's ``masses`` column; else the
      ``masses`` argument; else 1.0 each (reduced units; element masses are
      not used).
    * box (new systems only): an orthorhombic ``Lattice`` with ``pbc`` true
      along every axis in use; partly periodic or skewed cells are refused.
    * times: the frames' ``time`` (or ``Time``) key; else ``dt`` (time
      between frames) times the frame index; else, when the file has momenta,
      the frame index (noted in the trajectory's meta).
    * momenta: the ``momenta`` column; else ``velocities`` times the masses;
      else central finite differences of the positions in time (second order,
      minimum image across periodic boundaries), which needs two or more
      frames and times; otherwise an error that says so.
    * forces in the file are kept as ``meta["forces"]`` (frames, N, d).
    * energies: a file written by HGN Studio read with its own system keeps
      its stored energies and total momentum; otherwise they are computed
      from the positions, momenta and the system's potential, and the file's
      ``energy`` values (if any) are kept as ``meta["file_energy"]``.
"""
from __future__ import annotations

import base64
import json
import os
import re
import zlib
from pathlib import Path

import numpy as np

from core.errors import HGNError
from . import kinds
from core.container import (EXPANSION_ALLOWANCE, FORMAT, MAX_EXPANSION, MAX_HEADER_DEPTH, VERSION,
                            atomic_write, existing_file, json_depth_ok)
from core.schema import Field, check_fields
from .io import (XYZ_SUFFIXES, check_trajectory_shapes, describe_system, describe_trajectory, split_meta,
                 system_from, system_header)
from core.jobs import CancelLike, ProgressFn, check_cancel, report
from core.physics.system import System
from core.physics.trajectory import Trajectory

HGN_KEY = "hgn"
#: bounds on what a file may make the reader do (checked before ASE parses it)
#: the comment line without the ``hgn`` record (key=value pairs, Properties) may take at most this many bytes
MAX_COMMENT_BYTES = 2**16
#: ... and hold at most this many ``key=value`` pairs (ASE parses each slowly)
MAX_COMMENT_KEYS = 1000
#: the comment line with the ``hgn`` record at most this many
MAX_RECORD_LINE_BYTES = 256 * 2**20
#: an atom line at most this many
MAX_ATOM_LINE_BYTES = 2**16
#: the columns of ``Properties`` at most this many in all
MAX_COLUMNS = 1000
#: estimated memory per frame (an ase.Atoms) and per atom, against MAX_EXPANSION x the file size
_FRAME_COST, _ATOM_COST = 4096, 256
#: the decoded ``hgn`` record (JSON) of the first frame
HGN_RECORD_FIELDS = {
    "format": Field("str"),
    "version": Field("int", required=False, lo=1),
    "system": Field("dict"),
    "trajectory": Field("dict", required=False, null=True, fields={
        "dt": Field("number", required=False, above=0),
        "save_every": Field("int", required=False, lo=1),
        "label": Field("str", required=False),
        "meta": Field("dict", required=False, null=True)}),
}
#: how far apart (relative) frame times may be and still count as evenly spaced
_EVEN_RTOL = 1e-6


# ----------------------------------------------------------------------
# the hgn record
# ----------------------------------------------------------------------
def _encode(doc: dict) -> str:
    raw = json.dumps(doc, allow_nan=True).encode("utf-8")
    return base64.urlsafe_b64encode(zlib.compress(raw, 6)).decode("ascii").rstrip("=")


def _decode(text: str, fname: str) -> dict:
    """The ``hgn`` record: base64, then zlib inflated to at most
    :data:`~core.container.MAX_EXPANSION` times its size, then JSON of bounded depth."""
    damaged = (f"{fname}: the '{HGN_KEY}' record on the first comment line is damaged; "
               "give the system explicitly to import the positions anyway")
    try:
        pad = "=" * (-len(text) % 4)
        packed = base64.urlsafe_b64decode(text + pad)
        cap = MAX_EXPANSION * len(packed) + EXPANSION_ALLOWANCE
        inflate = zlib.decompressobj()
        raw, tail = bytearray(), packed
        while tail and not inflate.eof:
            raw += inflate.decompress(tail, 2**20)
            tail = inflate.unconsumed_tail
            if len(raw) > cap:
                raise HGNError(f"{fname}: the '{HGN_KEY}' record inflates to more than {cap} bytes from "
                               f"{len(packed)}; refused (a damaged or crafted file)")
        raw += inflate.flush()
        doc = json.loads(raw.decode("utf-8"))
    except HGNError:
        raise
    except RecursionError:
        raise HGNError(f"{damaged} (it nests too deep)") from None
    except (ValueError, zlib.error, UnicodeDecodeError, TypeError, MemoryError):
        raise HGNError(damaged) from None
    if not json_depth_ok(doc, MAX_HEADER_DEPTH):
        raise HGNError(f"{damaged} (it nests deeper than {MAX_HEADER_DEPTH} levels)")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise HGNError(f"{fname}: the '{HGN_KEY}' record was not written by HGN Studio")
    return check_fields(doc, HGN_RECORD_FIELDS, f"{fname}: the '{HGN_KEY}' record")


def _system_record(system: System) -> dict:
    rec = system_header(system)
    rec["arrays"] = {k: v.tolist() for k, v in system.to_arrays().items()}
    return rec


def _system_from_record(rec: dict, fname: str) -> System:
    if not isinstance(rec, dict) or not isinstance(rec.get("arrays"), dict):
        raise HGNError(f"{fname}: the '{HGN_KEY}' record holds no system")
    arrays = {}
    for k, v in rec["arrays"].items():
        arrays[k] = np.asarray(v, dtype=np.int64 if k == "edges" else np.float64)
        if k == "edges" and arrays[k].size == 0:
            arrays[k] = arrays[k].reshape(0, 2)
    head = {k: v for k, v in rec.items() if k != "arrays"}
    return system_from(head, arrays, "", fname, "system in the xyz file")


# ----------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------
def _pad3(a: np.ndarray) -> np.ndarray:
    """(..., d) -> (..., 3) with zeros for missing axes."""
    if a.shape[-1] == 3:
        return np.asarray(a, dtype=np.float64)
    out = np.zeros(a.shape[:-1] + (3,))
    out[..., : a.shape[-1]] = a
    return out


def _frame_forces(traj: Trajectory, forces: bool):
    f = traj.meta.get("forces") if isinstance(traj.meta, dict) else None
    if isinstance(f, np.ndarray) and f.shape == traj.q.shape:
        return f
    if not forces:
        return None
    from core.physics.forces import ForceField

    ff = ForceField(traj.system)
    return np.stack([ff.forces(q) for q in traj.q])


def trajectory_to_atoms(traj: Trajectory, symbol: str = "X", forces: bool = False, wrap: bool = False) -> list:
    """One ``ase.Atoms`` per frame, carrying what :func:`write_trajectory` writes."""
    return list(_iter_atoms(traj, symbol, forces, wrap))


def _iter_atoms(traj: Trajectory, symbol: str, forces: bool, wrap: bool):
    """Checks the trajectory at once, then yields one ``ase.Atoms`` per frame."""
    from ase import Atoms

    if not isinstance(traj, Trajectory):
        raise HGNError(f"expected a Trajectory, got {type(traj).__name__}")
    check_trajectory_shapes(traj, "trajectory")
    if not isinstance(symbol, str):
        raise HGNError(f"symbol must be a chemical symbol such as 'X' or 'Ar', got {symbol!r}")
    s = traj.system
    n, d = s.n, s.dim
    try:
        symbols = [symbol] * n
        Atoms(symbols[:1])
    except (KeyError, ValueError):
        raise HGNError(f"{symbol!r} is not a chemical symbol (use e.g. X, Ar, H)") from None
    plain_meta, _ = split_meta(traj.meta, "trajectory meta")
    q = traj.q
    if wrap and s.box is not None:
        from core.physics.neighbours import wrap as fold

        q = fold(q, s.box)
        plain_meta["wrapped"] = True
        if "unwrapped" in plain_meta:
            plain_meta["unwrapped"] = False
    record = {"format": FORMAT, "version": VERSION, "system": _system_record(s),
              "trajectory": {"dt": float(traj.dt), "save_every": int(traj.save_every),
                             "label": str(traj.label), "meta": plain_meta}}
    if s.box is not None:
        cell = np.diag(_pad3(s.box[None, :])[0])
        pbc = [True] * d + [False] * (3 - d)
    else:
        cell, pbc = np.zeros((3, 3)), [False] * 3
    q3, p3 = _pad3(q), _pad3(traj.p)
    f = _frame_forces(traj, forces)
    f3 = None if f is None else _pad3(f)
    return _frames(traj, symbols, record, cell, pbc, q3, p3, f3)


def _frames(traj, symbols, record, cell, pbc, q3, p3, f3):
    from ase import Atoms

    s = traj.system
    for k in range(traj.n_frames):
        a = Atoms(symbols, positions=q3[k], cell=cell, pbc=pbc)
        a.set_masses(s.masses)
        a.set_momenta(p3[k], apply_constraint=False)
        if f3 is not None:
            a.new_array("forces", f3[k])
        a.info["time"] = float(traj.t[k])
        a.info["energy"] = float(traj.potential[k])
        a.info["kinetic_energy"] = float(traj.kinetic[k])
        a.info["total_energy"] = float(traj.kinetic[k] + traj.potential[k])
        a.info["total_momentum"] = _pad3(np.asarray(traj.momentum[k], dtype=np.float64)[None, :])[0]
        if k == 0:
            a.info[HGN_KEY] = _encode(record)
        yield a


def write_trajectory(path, traj: Trajectory, symbol: str = "X", forces: bool = False,
                     wrap: bool = False, progress: ProgressFn | None = None,
                     cancel: CancelLike | None = None) -> Path:
    """Write ``traj`` to ``path`` as extended XYZ (atomically: a failed or
    cancelled write leaves any previous file intact). ``forces=True``
    computes and writes the force on every particle at every frame;
    ``wrap=True`` folds positions into a periodic box (for viewers;
    ``core.physics.simulate`` saves them unwrapped). Follows the job protocol
    (``core.jobs``): ``progress("export", fraction)`` and ``cancel`` are
    handled frame by frame. Returns the path."""
    import ase.io

    path = Path(path)
    frames = _iter_atoms(traj, symbol, forces, wrap)
    with atomic_write(path, "w") as fh:
        report(progress, "export", 0.0)
        for k, atoms in enumerate(frames):
            check_cancel(cancel)
            ase.io.write(fh, atoms, format="extxyz")
            report(progress, "export", (k + 1) / traj.n_frames)
    return path


# ----------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------
_PROPERTIES = re.compile(rb"(?:^|\s)Properties=(\S+)", re.IGNORECASE)
_HGN_TOKEN = re.compile(rb"(?:^|\s)" + HGN_KEY.encode() + rb"=(\S*)")


def _unreadable(fname: str, what: str) -> HGNError:
    return HGNError(f"{fname} is not a readable extended XYZ file ({what})")


def prescan(path) -> tuple[int, int]:
    """Check the layout of an XYZ file before ASE parses it; returns (frames,
    atoms per frame of frame 0). Bounded: every atom-count line must be a
    whole number whose atom lines are in the file (a count of 99999999999 is
    refused when the file ends, not looped over), comment lines without the
    ``hgn`` record take at most :data:`MAX_COMMENT_BYTES`, ``Properties`` at
    most :data:`MAX_COLUMNS` columns, atom lines at most
    :data:`MAX_ATOM_LINE_BYTES`, and the frames may not need far more memory
    than the file's size justifies."""
    path = existing_file(path)
    fname = path.name
    size = path.stat().st_size
    frames, first, atoms = 0, 0, 0
    with open(path, "rb") as fh:
        line_no = 0
        while True:
            line = fh.readline(256)
            line_no += 1
            if not line.strip():
                break
            if not line.endswith(b"\n") and len(line) == 256:
                raise _unreadable(fname, f"line {line_no} is not an atom count")
            try:
                n = int(line.decode("ascii").strip())
            except (UnicodeDecodeError, ValueError):
                raise _unreadable(fname, f"line {line_no}: expected the number of atoms, got "
                                         f"{line.strip()[:40]!r}") from None
            if n < 0:
                raise _unreadable(fname, f"line {line_no}: a negative number of atoms ({n})")
            comment = fh.readline(MAX_RECORD_LINE_BYTES + 1)
            line_no += 1
            _check_comment(comment, fname, line_no, frames)
            for k in range(n):
                atom = fh.readline(MAX_ATOM_LINE_BYTES + 1)
                line_no += 1
                if not atom:
                    raise _unreadable(fname, f"frame {frames} has {k} atoms, expected {n}: the file ends there")
                if len(atom) > MAX_ATOM_LINE_BYTES:
                    raise _unreadable(fname, f"line {line_no} is longer than {MAX_ATOM_LINE_BYTES} bytes")
            if frames == 0:
                first = n
            frames += 1
            atoms += n
            if frames * _FRAME_COST + atoms * _ATOM_COST > MAX_EXPANSION * size + 64 * EXPANSION_ALLOWANCE:
                raise HGNError(f"{fname}: {frames} frames of {n} atoms in {size} bytes would need far more memory "
                               "than the file's size justifies; refused")
            pos = fh.tell()
            while fh.readline(64).lstrip().startswith(b"VEC"):  # ASE's lattice vectors as pseudo-atoms
                pos = fh.tell()
            fh.seek(pos)
    return frames, first


def _check_comment(comment: bytes, fname: str, line_no: int, frame: int) -> None:
    if len(comment) > MAX_RECORD_LINE_BYTES:
        raise HGNError(f"{fname}: the comment line of frame {frame} is longer than {MAX_RECORD_LINE_BYTES} bytes; "
                       "refused")
    rest = len(comment)
    token = _HGN_TOKEN.search(comment)
    if token is not None:
        if frame > 0:
            raise _unreadable(fname, f"line {line_no}: an '{HGN_KEY}' record on frame {frame} (only frame 0 has one)")
        rest -= len(token.group(1))
    if rest > MAX_COMMENT_BYTES:
        raise HGNError(f"{fname}: the comment line of frame {frame} takes {rest} bytes besides the '{HGN_KEY}' "
                       f"record, more than {MAX_COMMENT_BYTES}; refused")
    keys = comment.count(b"=") - (token is not None)
    if keys > MAX_COMMENT_KEYS:
        raise HGNError(f"{fname}: the comment line of frame {frame} holds {keys} key=value pairs, more than "
                       f"{MAX_COMMENT_KEYS}; refused")
    props = _PROPERTIES.search(comment)
    if props is not None:
        parts = props.group(1).strip(b"\"'").split(b":")
        try:
            cols = sum(int(c) for c in parts[2::3])
        except ValueError:
            raise _unreadable(fname, f"line {line_no}: Properties {props.group(1)[:60]!r} is malformed") from None
        if cols > MAX_COLUMNS or any(int(c) < 0 for c in parts[2::3]):
            raise _unreadable(fname, f"line {line_no}: Properties declares {cols} columns (at most {MAX_COLUMNS})")


def read_frames(path) -> list:
    """All frames of an extxyz file as ``ase.Atoms`` (HGNError for files that
    are missing, empty, not extxyz, or whose frames differ in atom count).
    The file is checked first (:func:`prescan`), so ASE parses only files of
    bounded cost."""
    import ase.io

    path = existing_file(path)
    prescan(path)
    try:
        frames = ase.io.read(path, index=":", format="extxyz")
    except Exception as exc:  # ASE raises a zoo of types for malformed text
        msg = str(exc).replace("ase.io.extxyz: ", "")
        raise HGNError(f"{path.name} is not a readable extended XYZ file ({type(exc).__name__}: {msg})") from None
    if not frames:
        raise HGNError(f"{path.name} holds no frames (empty file?)")
    n0 = len(frames[0])
    for k, a in enumerate(frames):
        if len(a) != n0:
            raise HGNError(f"{path.name}: frame {k} has {len(a)} atoms but frame 0 has {n0}; "
                           "a trajectory needs the same particles in every frame")
    if n0 == 0:
        raise HGNError(f"{path.name}: the frames hold no atoms")
    return frames


def _frame_array(frames, name: str):
    """Per-atom array ``name`` of every frame as (T, N, ...) or None; looks in
    the frame arrays and in a calculator's results (where ASE puts forces)."""
    out = []
    for a in frames:
        if name in a.arrays:
            out.append(np.asarray(a.arrays[name], dtype=np.float64))
        elif a.calc is not None and name in getattr(a.calc, "results", {}):
            out.append(np.asarray(a.calc.results[name], dtype=np.float64))
        else:
            return None
    return np.stack(out)


def _frame_scalar(frames, *names):
    for name in names:
        vals = []
        for a in frames:
            v = a.info.get(name)
            if v is None and a.calc is not None:
                v = getattr(a.calc, "results", {}).get(name)
            if v is None or isinstance(v, (str, bool, list, dict)) or np.ndim(v) != 0:
                vals = None
                break
            vals.append(float(v))
        if vals is not None:
            return np.array(vals)
    return None


def _resolve_system(system, fname: str) -> System:
    if isinstance(system, System):
        return system
    if isinstance(system, (str, os.PathLike)):
        return kinds.system_in(system)
    raise HGNError(f"system must be a System or a file name, got {type(system).__name__}")


def read_trajectory(path, system=None, *, potential=None, cutoff: float | None = None, edges=None,
                    masses=None, dt: float | None = None, dim: int | None = None,
                    label: str | None = None) -> Trajectory:
    """Read an extxyz file into a :class:`Trajectory` (policy in the module docstring).

    ``system``: a System or a path to a system/trajectory/dataset file whose
    system the frames belong to. ``potential`` (a name, a dict with ``kind``,
    or a PairPotential) with ``cutoff`` or ``edges`` builds a system instead.
    ``dt``: time between frames, for files without times. ``dim``: 2 or 3
    for files without a system. ``label`` overrides the trajectory's label.
    HGNError (naming the file) for anything it cannot read.
    """
    path = existing_file(path)
    try:
        return _read_trajectory(path, system, potential, cutoff, edges, masses, dt, dim, label)
    except HGNError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError, ZeroDivisionError) as exc:
        raise HGNError(f"{path.name}: cannot import the trajectory ({type(exc).__name__}: {str(exc)[:200]})") from None


def _read_trajectory(path: Path, system, potential, cutoff, edges, masses, dt, dim, label) -> Trajectory:
    fname = path.name
    frames = read_frames(path)
    T, n = len(frames), len(frames[0])
    info0 = frames[0].info
    record = _decode(info0[HGN_KEY], fname) if isinstance(info0.get(HGN_KEY), str) else None
    notes: dict = {"source": fname}

    # --- the system --------------------------------------------------------
    from_record = False
    if system is not None:
        if potential is not None or cutoff is not None or edges is not None:
            raise HGNError("give either a system or a potential with a cutoff or edges, not both")
        sys_ = _resolve_system(system, fname)
    elif record is not None:
        sys_ = _system_from_record(record.get("system"), fname)
        from_record = True
    elif potential is not None:
        sys_ = _build_system(frames, fname, potential, cutoff, edges, masses, dim, notes)
    else:
        raise HGNError(f"{fname} does not say how its particles interact (it was not written by HGN Studio): "
                       "give a system file, or a potential with a cutoff or edges")
    if sys_.n != n:
        raise HGNError(f"{fname} has {n} atoms per frame but the system has {sys_.n} particles")
    d = sys_.dim
    if dim is not None and int(dim) != d:
        raise HGNError(f"dim={dim} contradicts the system, which is {d}D")

    q3 = np.stack([a.get_positions() for a in frames])
    if d == 2 and np.any(q3[..., 2] != 0):
        raise HGNError(f"{fname}: the system is 2D but some z coordinates are not 0")
    q = q3[..., :d].copy()
    m = sys_.masses

    # --- times ------------------------------------------------------------
    t = _frame_scalar(frames, "time", "Time")
    if t is None and dt is not None:
        if not np.isfinite(dt) or dt <= 0:
            raise HGNError(f"dt (time between frames) must be > 0, got {dt}")
        t = float(dt) * np.arange(T)
        notes["times"] = f"from dt={dt:g} between frames"

    # --- momenta ----------------------------------------------------------
    p3 = _frame_array(frames, "momenta")
    if p3 is None:
        v3 = _frame_array(frames, "velocities")
        if v3 is not None:
            p3 = v3 * m[None, :, None]
            notes["momenta"] = "masses times the file's velocities"
    if p3 is not None:
        if d == 2 and np.any(p3[..., 2] != 0):
            raise HGNError(f"{fname}: the system is 2D but some z momenta are not 0")
        p = p3[..., :d].copy()
    else:
        if t is None or T < 2:
            what = "only one frame" if T < 2 else "no frame times"
            raise HGNError(f"{fname} has no momenta and {what}: give dt (time between frames) "
                           "and at least two frames to estimate momenta from the positions")
        p = _momenta_from_positions(q, t, m, sys_.box, fname)
        notes["momenta"] = "central finite differences of the positions (second order)"
    if t is None:
        t = np.arange(T, dtype=np.float64)
        notes["times"] = "unknown: frame index used as time"

    if np.any(np.diff(t) <= 0):
        raise HGNError(f"{fname}: frame times must increase from frame to frame")
    spacing = float(t[1] - t[0]) if T > 1 else (float(dt) if dt else 1.0)
    if T > 2 and not np.allclose(np.diff(t), spacing, rtol=_EVEN_RTOL, atol=0):
        notes["uneven_times"] = True

    # --- energies, forces, meta --------------------------------------------
    meta: dict = {}
    traj_dt, save_every, lab = spacing, 1, "imported"
    stored_ok = False
    if from_record:
        tr = record.get("trajectory") or {}
        meta.update(tr.get("meta") or {})
        traj_dt = float(tr.get("dt", spacing))
        save_every = int(tr.get("save_every", 1))
        lab = str(tr.get("label", lab))
        kin = _frame_scalar(frames, "kinetic_energy")
        pot = _frame_scalar(frames, "energy")
        mom = [a.info.get("total_momentum") for a in frames]
        if kin is not None and pot is not None and all(isinstance(v, np.ndarray) and v.shape == (3,) for v in mom):
            kinetic, potential_e = kin, pot
            momentum = np.stack(mom)[:, :d].astype(np.float64)
            stored_ok = True
    if not stored_ok:
        from core.physics.forces import ForceField, kinetic_energy

        kinetic = np.asarray(kinetic_energy(p, m), dtype=np.float64)
        ff = ForceField(sys_)
        potential_e = np.array([ff.energy(qk) for qk in q])
        momentum = p.sum(axis=1)
        fe = _frame_scalar(frames, "energy")
        if fe is not None:
            meta["file_energy"] = fe
    f3 = _frame_array(frames, "forces")
    if f3 is not None:
        meta["forces"] = f3[..., :d].copy()
    if len(notes) > 1:
        meta["import"] = notes
    for what, a in (("times", t), ("positions", q), ("momenta", p), ("kinetic energies", kinetic),
                    ("potential energies", potential_e), ("total momenta", momentum)):
        if not np.isfinite(a).all():
            k = int(np.argwhere(~np.isfinite(a))[0, 0])
            raise HGNError(f"{fname}: frame {k}: the {what} are not finite (NaN or inf)")
    return Trajectory(system=sys_, t=t, q=q, p=p, kinetic=kinetic, potential=potential_e, momentum=momentum,
                      dt=traj_dt, save_every=save_every, label=label if label is not None else lab, meta=meta)


def _momenta_from_positions(q, t, m, box, fname) -> np.ndarray:
    """p = m dq/dt by second-order finite differences on (possibly uneven)
    times, following particles across periodic boundaries."""
    from core.physics.neighbours import minimum_image

    steps = minimum_image(np.diff(q, axis=0), box) if box is not None else np.diff(q, axis=0)
    unwrapped = np.concatenate([q[:1], q[:1] + np.cumsum(steps, axis=0)])
    if np.any(np.diff(t) <= 0):
        raise HGNError(f"{fname}: frame times must increase from frame to frame")
    v = np.gradient(unwrapped, t, axis=0, edge_order=2 if len(t) > 2 else 1)
    return v * m[None, :, None]


def _build_system(frames, fname, potential, cutoff, edges, masses, dim, notes) -> System:
    from core.physics.potentials import PairPotential, make_potential

    a0 = frames[0]
    q3 = a0.get_positions()
    n = len(a0)
    if dim is None:
        flat = all(np.all(a.get_positions()[:, 2] == 0) for a in frames)
        mom = _frame_array(frames, "momenta")
        flat = flat and (mom is None or np.all(mom[..., 2] == 0))
        dim = 2 if flat else 3
        notes["dim"] = f"{dim}D inferred from the z coordinates"
    if dim not in (2, 3):
        raise HGNError(f"dimension must be 2 or 3, got {dim!r}")
    if isinstance(potential, PairPotential):
        pot = potential
    elif isinstance(potential, dict):
        pot = PairPotential.from_dict(potential)
    else:
        pot = make_potential(potential)
    m_file = a0.arrays.get("masses")
    if m_file is not None:
        m = np.asarray(m_file, dtype=np.float64)
    elif masses is not None:
        m = np.broadcast_to(np.asarray(masses, dtype=np.float64), (n,)).copy()
    else:
        m = np.ones(n)
        notes["masses"] = "not in the file: 1.0 each"
    pbc = np.asarray(a0.pbc, dtype=bool)
    box = None
    if pbc[:dim].any():
        cell = np.asarray(a0.cell.array)
        if not pbc[:dim].all() or (dim == 2 and pbc[2]):
            raise HGNError(f"{fname} is periodic along some axes only (pbc={pbc.tolist()}); "
                           "only fully periodic or non-periodic boxes are supported")
        if np.any(np.abs(cell[:dim, :dim] - np.diag(np.diag(cell[:dim, :dim]))) > 0):
            raise HGNError(f"{fname} has a skewed cell; only rectangular (orthorhombic) boxes are supported")
        box = np.diag(cell)[:dim].copy()
    if edges is None and cutoff is None:
        raise HGNError("to import a file without an HGN system, give a cutoff (dynamic edges) or a list of edges")
    return System(dim=dim, positions=q3[:, :dim].copy(), masses=m, potential=pot,
                  edges=None if edges is None else np.asarray(edges), cutoff=cutoff, box=box,
                  name=f"imported from {fname}", meta={"builder": "import", "source": fname})


def describe(path) -> str:
    """A few lines on what an extxyz file holds (for ``python -m core info``)."""
    frames = read_frames(path)
    a0 = frames[0]
    cols = sorted(k for k in a0.arrays if k not in ("numbers", "positions"))
    if a0.calc is not None:
        cols += sorted(k for k in a0.calc.results if np.ndim(a0.calc.results[k]) == 2)
    keys = sorted(k for k in a0.info if k != HGN_KEY)
    if a0.calc is not None:
        keys = sorted(keys + [k for k in a0.calc.results if np.ndim(a0.calc.results[k]) == 0])
    lines = [f"  kind: extended XYZ, {len(frames)} frames of {len(a0)} atoms",
             f"  columns: positions{', ' + ', '.join(cols) if cols else ''}",
             f"  comment-line keys: {', '.join(keys) if keys else '(none)'}",
             f"  pbc: {np.asarray(a0.pbc).tolist()}"]
    if isinstance(a0.info.get(HGN_KEY), str):
        tr = read_trajectory(path)
        lines.append("  system: " + describe_system(tr.system))
        lines.append("  trajectory: " + describe_trajectory(tr))
    else:
        lines.append("  no HGN system record: importing needs a system file, or a potential with a cutoff or edges")
    return "\n".join(lines)


def _summary(path) -> dict:
    """``python -m core info --json``: the system and trajectory of a file written by HGN Studio, else only
    the frame count."""
    from .io import trajectories_summary

    frames = read_frames(path)
    out = {"frames": len(frames), "atoms": len(frames[0])}
    if isinstance(frames[0].info.get(HGN_KEY), str):
        out.update(trajectories_summary([read_trajectory(path)]))
    return out


kinds.register(kinds.FileKind("xyz", lambda path: [read_trajectory(path)], "an extended XYZ trajectory",
                              describe=lambda path: [describe(path)], suffixes=XYZ_SUFFIXES,
                              opens_as="trajectory", summary=_summary))


__all__ = ["write_trajectory", "read_trajectory", "read_frames", "trajectory_to_atoms", "describe"]
