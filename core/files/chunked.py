"""Chunked datasets: snapshots for fitting that need not fit in memory.

A chunked dataset is a folder::

    DIR/manifest.json        what the folder holds (below)
    DIR/system.npz           the system (a ``system`` file, :func:`core.files.io.save_system`)
    DIR/chunk-000000.npz     snapshots 0 .. n0-1: an ordinary ``dataset`` file
    DIR/chunk-000001.npz     the next n1 snapshots, ...

Every chunk is a normal dataset file (:func:`core.files.io.load_dataset`
opens it on its own): ``q``, ``p``, ``dqdt``, ``dpdt`` (n, N, d), ``energy``
(n,), the chunk's own ``train`` / ``test`` indices (local to the chunk) and
``meta.trajectory_of_snapshot`` / ``meta.frame_of_snapshot`` (n,); no time
series. The manifest (UTF-8 JSON) is::

    {"format": "hgn-studio-chunked", "version": 1, "kind": "chunked_dataset",
     "system": {system header}, "system_file": {"file", "bytes", "sha256"},
     "N": particles, "d": dimension, "chunk_size": snapshots per chunk (the last may hold fewer),
     "n_snapshots": S, "n_train": ..., "n_test": ..., "split": "trajectory" | "snapshot" | "none",
     "complete": true once the writer finished, "meta": {how it was made},
     "chunks": [{"file": "chunk-000000.npz", "n_snapshots": n, "n_train": .., "n_test": ..,
                 "bytes": size, "sha256": hex digest}, ...]}

The split (train/test) is decided when the data are written and stored per
chunk (the chunk's ``train`` and ``test``): with several trajectories whole
trajectories are held out (the same seeded rule and draw as
``simulate --dataset-out``: :func:`core.physics.datagen.split_indices` over
the trajectories with ``SeedSequence(seed).spawn(1)[0]``); with one
trajectory a seeded random share of each chunk's snapshots (chunk k draws with
``SeedSequence([seed, k])``). The training snapshots of the whole folder, in
order, are the chunks' training snapshots in chunk order (:meth:`ChunkedDataset.train_rows`).

Writing is incremental (:class:`ChunkWriter`): a chunk is written
atomically when it is full, then the manifest is rewritten (atomically) with
it, so a killed writer leaves a readable prefix marked ``"complete": false``
(refused by the reader unless ``allow_incomplete``). Reading is lazy
(:func:`open_chunked` reads the manifest; :meth:`ChunkedDataset.chunk` one
chunk, whose size and SHA-256 are checked against the manifest first). A
missing, damaged or foreign manifest or chunk is an HGNError naming the file
and what is wrong.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np

from core.container import as_path, atomic_write, jsonable
from core.errors import HGNError
from core.physics.system import System
from core.physics.trajectory import Dataset
from . import kinds
from .io import load_dataset, load_system, same_system, save_dataset, save_system, system_header

FORMAT = "hgn-studio-chunked"
VERSION = 1
KIND = "chunked_dataset"
MANIFEST = "manifest.json"
SYSTEM_FILE = "system.npz"
#: the manifest is small; anything larger is not one
MAX_MANIFEST_BYTES = 64 * 2 ** 20
_CHUNK_RE = re.compile(r"^chunk-[0-9]{6,}\.npz$")
_SPLITS = ("trajectory", "snapshot", "none")


def chunk_name(k: int) -> str:
    return f"chunk-{k:06d}.npz"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def is_chunked(path) -> bool:
    """True when ``path`` is a folder holding a manifest.json."""
    try:
        p = Path(path)
    except TypeError:
        return False
    return p.is_dir() and (p / MANIFEST).is_file()


# ----------------------------------------------------------------------
class ChunkWriter:
    """Writes a chunked dataset snapshot by snapshot, holding at most one
    chunk (``chunk_size`` snapshots) in memory.

    ``split``: "trajectory" (the caller says per snapshot whether it is a
    test snapshot: :meth:`add`'s ``test``), "snapshot" (a seeded random
    ``test_fraction`` of each chunk, chunk k drawn with
    ``SeedSequence([seed, k])``) or "none" (all training). The folder must
    not exist or be empty. Use as a context manager or call :meth:`close`."""

    def __init__(self, folder, system: System, chunk_size: int, split: str = "snapshot",
                 test_fraction: float = 0.0, seed: int = 0, meta: dict | None = None, part_of: int | None = None):
        """``part_of``: write chunk files only, numbered from ``part_of``, into an
        existing folder whose manifest another writer keeps (a task of a
        distributed generation, :func:`write_simulated` with a client);
        :meth:`close` then returns the chunks' manifest entries via :attr:`chunks`."""
        from core import validate

        if not isinstance(system, System):
            raise HGNError(f"a chunked dataset needs a System, got {type(system).__name__}")
        if getattr(system, "port", None) is not None:
            raise HGNError("chunked datasets hold Hamiltonian systems only: this system is damped or driven "
                           "(its dp/dt needs the snapshot times); write a plain dataset (--dataset-out) instead")
        self.chunk_size = validate.whole("chunk size", chunk_size, 1)
        if split not in _SPLITS:
            raise HGNError(f"split must be one of {', '.join(_SPLITS)}, got {split!r}")
        self.test_fraction = validate.fraction("test fraction", test_fraction)
        self.folder = as_path(folder, "chunked dataset folder")
        self.part_of = part_of
        if part_of is not None:
            if not self.folder.is_dir():
                raise HGNError(f"{self.folder} does not exist (a worker must see the folder at the same path)")
        elif self.folder.exists():
            if not self.folder.is_dir():
                raise HGNError(f"{self.folder} exists and is not a folder; a chunked dataset is written into a "
                               "new (or empty) folder")
            if any(self.folder.iterdir()):
                raise HGNError(f"{self.folder} is not empty; a chunked dataset is written into a new (or empty) "
                               "folder: remove it or choose another name")
        else:
            try:
                self.folder.mkdir(parents=False)
            except FileNotFoundError:
                raise HGNError(f"cannot create {self.folder}: the folder {self.folder.parent} does not exist") \
                    from None
            except OSError as exc:
                raise HGNError(f"cannot create {self.folder}: {exc.strerror or exc}") from None
        self.system, self.split, self.seed = system, split, int(seed)
        self.meta = jsonable(dict(meta or {}), "chunked dataset meta")
        self.N, self.d = system.n, system.dim
        self.chunks: list[dict] = []
        self._buf: list[tuple] = []
        self._held = 0
        self.closed = False
        if part_of is None:
            save_system(self.folder / SYSTEM_FILE, system)
            self._system_entry = self._entry(SYSTEM_FILE)
            self._write_manifest(complete=False)

    def _entry(self, name: str) -> dict:
        path = self.folder / name
        return {"file": name, "bytes": path.stat().st_size, "sha256": sha256_of(path)}

    def add(self, q, p, dqdt, dpdt, energy, trajectory: int = 0, frames=None, test=False) -> None:
        """Snapshots (n, N, d) (and energy (n,)) of trajectory ``trajectory``
        (frame numbers ``frames``, default 0..n-1); ``test``: whether they are
        held out (split "trajectory" only: a bool or a bool array (n,))."""
        if self.closed:
            raise HGNError("this chunked dataset is closed")
        arrs = [np.asarray(x, dtype=np.float64) for x in (q, p, dqdt, dpdt)]
        n = arrs[0].shape[0] if arrs[0].ndim == 3 else -1
        for name, a in zip(("q", "p", "dqdt", "dpdt"), arrs):
            if a.shape != (n, self.N, self.d):
                raise HGNError(f"chunked dataset: {name} has shape {a.shape}, expected (snapshots, {self.N}, "
                               f"{self.d})")
        e = np.asarray(energy, dtype=np.float64).reshape(-1)
        if e.shape != (n,):
            raise HGNError(f"chunked dataset: energy has shape {e.shape}, expected ({n},)")
        fr = np.arange(n, dtype=np.int64) if frames is None else np.asarray(frames, dtype=np.int64).reshape(-1)
        tst = np.broadcast_to(np.asarray(test, dtype=bool), (n,))
        if self.split != "trajectory" and tst.any():
            raise HGNError(f"split {self.split!r} chooses the test snapshots itself; pass test only with "
                           "split 'trajectory'")
        a = 0
        while a < n:
            b = min(n, a + self.chunk_size - self._held)
            self._buf.append(tuple(x[a:b] for x in arrs) + (e[a:b], np.full(b - a, trajectory, np.int64),
                                                            fr[a:b], tst[a:b].copy()))
            self._held += b - a
            a = b
            if self._held == self.chunk_size:
                self._flush()

    def _flush(self) -> None:
        if not self._held:
            return
        q, p, dqdt, dpdt, e, traj, fr, tst = (np.concatenate([b[i] for b in self._buf]) for i in range(8))
        self._buf, self._held = [], 0
        k = len(self.chunks) + (self.part_of or 0)
        n = len(q)
        if self.split == "snapshot":
            from core.physics.datagen import split_indices

            train, test = split_indices(n, self.test_fraction,
                                        np.random.default_rng(np.random.SeedSequence([self.seed, k])))
        elif self.split == "trajectory":
            train, test = np.flatnonzero(~tst).astype(np.int64), np.flatnonzero(tst).astype(np.int64)
        else:
            train, test = np.arange(n, dtype=np.int64), np.zeros(0, np.int64)
        ds = Dataset(self.system, q, p, dqdt, dpdt, e, train, test, [],
                     {"chunk": k, "trajectory_of_snapshot": traj, "frame_of_snapshot": fr})
        name = chunk_name(k)
        save_dataset(self.folder / name, ds)
        entry = self._entry(name)
        entry.update(n_snapshots=n, n_train=int(len(train)), n_test=int(len(test)))
        self.chunks.append(entry)
        if self.part_of is None:
            self._write_manifest(complete=False)

    def _write_manifest(self, complete: bool) -> None:
        doc = {"format": FORMAT, "version": VERSION, "kind": KIND, "system": system_header(self.system),
               "system_file": self._system_entry, "N": self.N, "d": self.d, "chunk_size": self.chunk_size,
               "n_snapshots": sum(c["n_snapshots"] for c in self.chunks),
               "n_train": sum(c["n_train"] for c in self.chunks),
               "n_test": sum(c["n_test"] for c in self.chunks),
               "split": self.split, "complete": bool(complete), "meta": self.meta, "chunks": self.chunks}
        with atomic_write(self.folder / MANIFEST, "w") as fh:
            json.dump(doc, fh, indent=1, allow_nan=False)

    def close(self) -> Path:
        """Write the last (partial) chunk and mark the folder complete; returns the folder."""
        if not self.closed:
            self._flush()
            if not self.chunks:
                raise HGNError(f"{self.folder}: no snapshots were written")
            if self.part_of is None:
                self._write_manifest(complete=True)
            self.closed = True
        return self.folder

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        return False


# ----------------------------------------------------------------------
def _bad(path, what: str) -> HGNError:
    return HGNError(f"{path}: {what}")


def _whole(doc, key, path, lo=0):
    v = doc.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise _bad(path, f"field {key!r} must be a whole number >= {lo}, got {v!r} (manifest damaged?)")
    return v


class ChunkedDataset:
    """A chunked dataset opened lazily (:func:`open_chunked`): the manifest
    is read; chunks are read one at a time by :meth:`chunk`."""

    def __init__(self, folder: Path, manifest: dict, system: System):
        self.folder = folder
        self.manifest = manifest
        self.system = system
        self.entries: list[dict] = manifest["chunks"]
        counts = [c["n_snapshots"] for c in self.entries]
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.train_counts = np.array([c["n_train"] for c in self.entries], dtype=np.int64)

    @property
    def n_chunks(self) -> int:
        return len(self.entries)

    @property
    def n_snapshots(self) -> int:
        return int(self.offsets[-1])

    @property
    def n_train(self) -> int:
        return int(self.train_counts.sum())

    @property
    def n_test(self) -> int:
        return int(sum(c["n_test"] for c in self.entries))

    @property
    def meta(self) -> dict:
        return self.manifest.get("meta", {})

    def chunk_path(self, k: int) -> Path:
        return self.folder / self.entries[k]["file"]

    def chunk(self, k: int, verify: bool = True) -> Dataset:
        """Chunk ``k`` as a Dataset (its own train/test indices), checked
        against the manifest (size, SHA-256 when ``verify``, system,
        snapshot and split counts)."""
        if not 0 <= k < self.n_chunks:
            raise HGNError(f"{self.folder} has {self.n_chunks} chunks; there is no chunk {k}")
        e = self.entries[k]
        path = self.chunk_path(k)
        _check_file(path, e, verify, f"chunk {k}")
        ds = load_dataset(path)
        if not same_system(ds.system, self.system):
            raise _bad(path, f"chunk {k} holds another system than {self.folder / SYSTEM_FILE}")
        for key, got in (("n_snapshots", ds.n_snapshots), ("n_train", len(ds.train)), ("n_test", len(ds.test))):
            if got != e[key]:
                raise _bad(path, f"chunk {k} holds {got} for {key}, the manifest says {e[key]}")
        return ds

    def chunks(self, verify: bool = True):
        """Iterate over the chunks (one in memory at a time)."""
        for k in range(self.n_chunks):
            yield self.chunk(k, verify)

    def train_rows(self) -> np.ndarray:
        """Global indices (into the concatenation of the chunks) of every
        training snapshot, in order (reads only each chunk's ``train``)."""
        out = []
        for k in range(self.n_chunks):
            out.append(self.offsets[k] + self.chunk_train(k))
        return np.concatenate(out) if out else np.zeros(0, np.int64)

    def chunk_train(self, k: int) -> np.ndarray:
        """Chunk k's local training indices (only that array is read)."""
        path = self.chunk_path(k)
        _check_file(path, self.entries[k], False, f"chunk {k}")
        try:
            with np.load(path, allow_pickle=False) as z:
                t = np.asarray(z["train"], dtype=np.int64).reshape(-1)
        except Exception as exc:  # noqa: BLE001 - any damage: one message naming the file
            raise _bad(path, f"chunk {k} cannot be read ({type(exc).__name__}: {exc}); the file is damaged") \
                from None
        if len(t) != self.entries[k]["n_train"]:
            raise _bad(path, f"chunk {k} lists {len(t)} training snapshots, the manifest says "
                             f"{self.entries[k]['n_train']}")
        return t

    def rows(self, idx, names=("q", "p")) -> tuple[np.ndarray, ...]:
        """Arrays ``names`` at the global snapshot indices ``idx`` (any order),
        read chunk by chunk (only the chunks that hold them), each chunk
        checked whole (:meth:`chunk`). :meth:`sample_rows` reads only the rows."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_snapshots):
            raise HGNError(f"snapshot indices must lie in 0..{self.n_snapshots - 1}")
        out = [np.empty((len(idx), self.system.n, self.system.dim)) if n != "energy" else np.empty(len(idx))
               for n in names]
        which = np.searchsorted(self.offsets, idx, side="right") - 1
        for k in np.unique(which):
            sel = np.flatnonzero(which == k)
            ds = self.chunk(int(k))
            local = idx[sel] - self.offsets[k]
            for o, n in zip(out, names):
                o[sel] = np.asarray(getattr(ds, n))[local]
            del ds
        return tuple(out)

    def sample_rows(self, idx, names=("q", "p")) -> tuple[np.ndarray, ...]:
        """As :meth:`rows`, but reading only the asked-for rows from the
        chunks' stored (uncompressed) members: O(rows) work whatever the
        chunk size (the fit's sampling of a few hundred snapshots from every
        chunk). The chunk files' sizes are checked, not their checksums: the
        fit's map reads and checks every chunk whole afterwards."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_snapshots):
            raise HGNError(f"snapshot indices must lie in 0..{self.n_snapshots - 1}")
        shape = (self.system.n, self.system.dim)
        out = [np.empty((len(idx),) + shape) if n != "energy" else np.empty(len(idx)) for n in names]
        which = np.searchsorted(self.offsets, idx, side="right") - 1
        for k in np.unique(which):
            sel = np.flatnonzero(which == k)
            path = self.chunk_path(int(k))
            _check_file(path, self.entries[int(k)], False, f"chunk {int(k)}")
            local = idx[sel] - self.offsets[k]
            for o, n in zip(out, names):
                o[sel] = _stored_rows(path, n, local, self.entries[int(k)]["n_snapshots"],
                                      () if n == "energy" else shape)
        return tuple(out)

    def to_dataset(self) -> Dataset:
        """Every chunk concatenated into one in-memory Dataset (for checks
        and small data: the whole folder must fit in memory)."""
        parts = list(self.chunks())
        cat = {n: np.concatenate([np.asarray(getattr(c, n)) for c in parts]) for n in ("q", "p", "dqdt", "dpdt",
                                                                                        "energy")}
        train = np.concatenate([self.offsets[k] + c.train for k, c in enumerate(parts)]).astype(np.int64)
        test = np.concatenate([self.offsets[k] + c.test for k, c in enumerate(parts)]).astype(np.int64)
        return Dataset(self.system, cat["q"], cat["p"], cat["dqdt"], cat["dpdt"], cat["energy"], train, test, [],
                       {"source": f"chunked dataset {self.folder}"})

    def __repr__(self) -> str:
        return (f"ChunkedDataset({str(self.folder)!r}, {self.n_chunks} chunks, {self.n_snapshots} snapshots, "
                f"{self.n_train} train, {self.n_test} test)")


def _stored_rows(path: Path, name: str, rows: np.ndarray, n: int, shape: tuple) -> np.ndarray:
    """Rows ``rows`` of the float64 array ``name`` (n, *shape) stored uncompressed in the npz ``path``."""
    import struct
    import zipfile

    from core.container import _array_header

    try:
        with zipfile.ZipFile(path) as zf, open(path, "rb") as raw:
            info = zf.getinfo(name + ".npy")
            if info.compress_type != zipfile.ZIP_STORED:
                raise HGNError(f"{path}: array {name!r} is compressed; chunks are written uncompressed")
            raw.seek(info.header_offset)
            local = raw.read(30)
            if len(local) != 30 or local[:4] != b"PK\x03\x04":
                raise HGNError(f"{path}: member {name!r} has no local header; the file is damaged")
            n_len, x_len = struct.unpack("<HH", local[26:30])
            start = info.header_offset + 30 + n_len + x_len
            raw.seek(start)
            got_shape, fortran, dtype, _, nbytes = _array_header(raw, str(path), name + ".npy")
            data = raw.tell()
            if tuple(got_shape) != (n,) + tuple(shape) or fortran or dtype != np.float64 or \
                    data - start + nbytes != info.file_size:
                raise HGNError(f"{path}: array {name!r} has shape {tuple(got_shape)} {dtype}, expected "
                               f"{(n,) + tuple(shape)} float64; the file is damaged")
            row = 8 * int(np.prod(shape, dtype=np.int64))
            out = np.empty((len(rows),) + tuple(shape))
            flat = out.reshape(len(rows), -1)
            for i, r in enumerate(rows):
                raw.seek(data + int(r) * row)
                buf = raw.read(row)
                if len(buf) != row:
                    raise HGNError(f"{path}: array {name!r} ends early; the file is damaged")
                flat[i] = np.frombuffer(buf, dtype=np.float64)
            return out
    except (KeyError, zipfile.BadZipFile, OSError) as exc:
        raise HGNError(f"{path}: cannot read array {name!r} ({type(exc).__name__}: {exc}); the file is damaged") \
            from None


def _check_file(path: Path, entry: dict, verify: bool, what: str) -> None:
    if not path.is_file():
        raise _bad(path, f"{what} is missing (listed in the manifest {MANIFEST}); the folder is incomplete")
    size = path.stat().st_size
    if size != entry["bytes"]:
        raise _bad(path, f"{what} is {size} bytes, the manifest says {entry['bytes']}: the file is damaged "
                         "(truncated or replaced)")
    if verify:
        digest = sha256_of(path)
        if digest != entry["sha256"]:
            raise _bad(path, f"{what} does not match its SHA-256 checksum in the manifest: the file is damaged "
                             "or was changed after writing")


def open_chunked(folder, allow_incomplete: bool = False, verify_system: bool = True) -> ChunkedDataset:
    """Open a chunked dataset folder (manifest only; chunks are read when
    asked for). HGNError naming the file for a missing, foreign or damaged
    manifest, and for a folder whose writer did not finish (unless
    ``allow_incomplete``)."""
    folder = as_path(folder, "chunked dataset folder")
    if not folder.is_dir():
        if folder.exists():
            raise HGNError(f"{folder} is a file, not a chunked dataset folder (a folder with {MANIFEST})")
        raise HGNError(f"{folder} does not exist")
    path = folder / MANIFEST
    if not path.is_file():
        raise HGNError(f"{folder} holds no {MANIFEST}: it is not a chunked dataset (written by "
                       "'python -m core simulate --chunked DIR')")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise _bad(path, f"the manifest is larger than {MAX_MANIFEST_BYTES} bytes; not a manifest")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(path, f"the manifest is not valid JSON ({exc}); the file is damaged") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        got = doc.get("format") if isinstance(doc, dict) else None
        raise _bad(path, f"not a chunked dataset manifest (format is {got!r}, expected {FORMAT!r})")
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= VERSION:
        raise _bad(path, f"version {version!r} is not one this program reads (1..{VERSION}); a newer program "
                         "wrote it?")
    if doc.get("kind") != KIND:
        raise _bad(path, f"kind is {doc.get('kind')!r}, expected {KIND!r}")
    N, d = _whole(doc, "N", path, 1), _whole(doc, "d", path, 1)
    _whole(doc, "chunk_size", path, 1)
    if doc.get("split") not in _SPLITS:
        raise _bad(path, f"field 'split' must be one of {', '.join(_SPLITS)}, got {doc.get('split')!r}")
    if not doc.get("complete") and not allow_incomplete:
        raise _bad(path, "the writer did not finish (\"complete\": false): the folder holds only the chunks "
                         "written before it stopped; write it again")
    chunks = doc.get("chunks")
    if not isinstance(chunks, list) or (not chunks and doc.get("complete")):
        raise _bad(path, "field 'chunks' must be a non-empty list")
    seen = set()
    for k, c in enumerate(chunks):
        if not isinstance(c, dict):
            raise _bad(path, f"chunks[{k}] must be an object")
        name = c.get("file")
        if not isinstance(name, str) or not _CHUNK_RE.match(name) or name in seen:
            raise _bad(path, f"chunks[{k}].file must be a unique name like chunk-000000.npz inside the folder, got "
                             f"{name!r}")
        seen.add(name)
        for key in ("n_snapshots", "n_train", "n_test", "bytes"):
            _whole(c, key, f"{path}: chunks[{k}]")
        if c["n_train"] + c["n_test"] > c["n_snapshots"]:
            raise _bad(path, f"chunks[{k}]: n_train + n_test exceeds n_snapshots")
        if not isinstance(c.get("sha256"), str) or not re.fullmatch(r"[0-9a-f]{64}", c["sha256"]):
            raise _bad(path, f"chunks[{k}].sha256 must be a SHA-256 hex digest")
    for key, total in (("n_snapshots", sum(c["n_snapshots"] for c in chunks)),
                       ("n_train", sum(c["n_train"] for c in chunks)), ("n_test", sum(c["n_test"] for c in chunks))):
        if doc.get(key) != total:
            raise _bad(path, f"field {key!r} is {doc.get(key)!r} but the chunks add up to {total}")
    sf = doc.get("system_file")
    if not isinstance(sf, dict) or sf.get("file") != SYSTEM_FILE:
        raise _bad(path, f"field 'system_file' must name {SYSTEM_FILE}")
    _whole(sf, "bytes", f"{path}: system_file")
    spath = folder / SYSTEM_FILE
    if verify_system:
        _check_file(spath, sf, True, "the system file")
    system = load_system(spath)
    if (system.n, system.dim) != (N, d):
        raise _bad(spath, f"the system has {system.n} particles in {system.dim}D, the manifest says {N} in {d}D")
    return ChunkedDataset(folder, doc, system)


# ----------------------------------------------------------------------
def write_simulated(folder, system: System, chunk_size: int, trajectories: int = 1, steps: int = 100,
                    dt: float = 0.01, save_every: int = 1, displacement: float = 0.1, momentum: float = 0.1,
                    temperature: float | None = None, seed: int = 0, test_fraction: float = 0.2,
                    integrator: str = "verlet", meta: dict | None = None, progress=None, cancel=None,
                    client=None) -> Path:
    """Simulate ``trajectories`` runs (run k from
    ``initial_state(system, displacement, momentum, temperature, seed=seed + k)``,
    as ``python -m core simulate``) and write every saved frame as a
    snapshot of a chunked dataset in ``folder``, holding at most one chunk
    of frames in memory: each run is integrated in segments of
    ``chunk_size`` saved frames, each continuing from the last state of the
    one before (the same states as one long run: bit for bit on fixed
    graphs; a cutoff system's neighbour list is rebuilt at each segment,
    which may change the last bits). Split: whole trajectories with several
    runs, a share of each chunk's snapshots with one (module notes).

    ``client`` (a ``distributed.Client``, e.g. from
    :func:`core.cluster.engine.connect`; several trajectories only): one
    task per trajectory, each writing that trajectory's chunks (numbered
    ``k * ceil(frames / chunk_size)`` on; the workers must see ``folder`` at
    the same path); this process writes the manifest. The snapshots, their
    order and the split are the same as without a client; the chunk
    boundaries follow the trajectories instead of running across them."""
    import time

    from core import validate
    from core.jobs import check_cancel, report
    from core.physics.datagen import split_indices

    trajectories = validate.whole("trajectories", trajectories, 1)
    chunk_size = validate.whole("chunk size", chunk_size, 1)
    frames = steps // save_every + 1
    if trajectories >= 2:
        rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
        _, test_traj = split_indices(trajectories, test_fraction, rng)
        split = "trajectory"
    else:
        test_traj = np.zeros(0, np.int64)
        split = "snapshot"
    info = {"source": "python -m core simulate --chunked", "n_trajectories": trajectories, "steps": steps, "dt": dt,
            "save_every": save_every, "displacement": displacement, "momentum": momentum,
            "temperature": temperature, "seed": seed, "test_fraction": test_fraction, "integrator": integrator,
            "test_trajectories": [int(k) for k in test_traj]}
    info.update(meta or {})
    run = dict(steps=steps, dt=dt, save_every=save_every, displacement=displacement, momentum=momentum,
               temperature=temperature, seed=seed, integrator=integrator)
    if trajectories < 2:
        client = None  # one run is one sequence of segments: nothing to share out
    if client is not None:
        info["chunks_per_trajectory"] = -(-frames // chunk_size)
    with ChunkWriter(folder, system, chunk_size, split, test_fraction, seed, info) as w:
        if client is None:
            for k in range(trajectories):
                def sub(f, k=k):
                    report(progress, "simulate", (k + f) / trajectories)

                simulate_into(w, system, k, run, bool(k in test_traj), sub, cancel)
        else:  # one task per trajectory, each writing its own chunks; this writer keeps the manifest
            per = info["chunks_per_trajectory"]
            futures = [client.submit(simulate_part, str(w.folder), system, chunk_size, k, k * per, run,
                                     bool(k in test_traj), pure=False) for k in range(trajectories)]
            try:
                for n, f in enumerate(futures):
                    while not f.done():
                        check_cancel(cancel)
                        time.sleep(0.05)
                    w.chunks.extend(f.result())
                    report(progress, "simulate", (n + 1) / trajectories)
            except BaseException:
                client.cancel(futures)
                raise
    return Path(folder)


def simulate_into(writer: ChunkWriter, system: System, k: int, run: dict, test: bool, progress=None,
                  cancel=None) -> None:
    """Integrate trajectory ``k`` (settings ``run``: steps, dt, save_every, displacement, momentum,
    temperature, seed, integrator) in segments of the writer's chunk size, adding its frames."""
    from core.jobs import check_cancel
    from core.physics.initial import initial_state
    from core.physics.simulate import run_system

    steps, dt, save_every, integrator = run["steps"], run["dt"], run["save_every"], run["integrator"]
    frames = steps // save_every + 1
    q, p = initial_state(system, run["displacement"], run["momentum"], run["temperature"], seed=run["seed"] + k)
    done = 0  # frames written of this run
    t0 = 0.0
    while done < frames:
        check_cancel(cancel)
        first = done == 0
        n_new = min(writer.chunk_size, frames - done)  # frames this segment adds
        seg_steps = (n_new - 1 if first else n_new) * save_every
        if seg_steps == 0:  # a run of one frame
            res, _ = run_system(system, q, p, dt, save_every, save_every, save_forces=True, integrator=integrator,
                                t0=t0)
            sl = slice(0, 1)
        else:
            res, _ = run_system(system, q, p, dt, seg_steps, save_every, save_forces=True, integrator=integrator,
                                t0=t0)
            sl = slice(0, None) if first else slice(1, None)
        rq, rp, rf = res.q[sl], res.p[sl], res.forces[sl]
        e = (res.kinetic + res.potential)[sl]
        writer.add(rq, rp, rp / system.masses[None, :, None], rf, e, trajectory=k,
                   frames=np.arange(done, done + len(rq)), test=test)
        done += len(rq)
        q, p = res.q[-1], res.p[-1]
        t0 += seg_steps * dt
        del res
        if progress is not None:
            progress(done / frames)


def simulate_part(folder: str, system: System, chunk_size: int, k: int, first_chunk: int, run: dict,
                  test: bool) -> list[dict]:
    """A task of the distributed generation: trajectory ``k`` written as its own chunks (numbered from
    ``first_chunk``) into ``folder``; returns their manifest entries."""
    w = ChunkWriter(folder, system, chunk_size, "trajectory", part_of=first_chunk)
    simulate_into(w, system, k, run, test)
    w.close()
    return w.chunks


def _describe(path) -> list[str]:
    c = open_chunked(path)
    m = c.manifest
    return [f"  kind: {KIND} (HGN Studio chunked dataset, version {m['version']})",
            f"  system: {c.system!r}",
            f"  snapshots: {c.n_snapshots} in {c.n_chunks} chunks of up to {m['chunk_size']} "
            f"({c.n_train} train, {c.n_test} test, split by {m['split']})"]


def _summary(path) -> dict:
    c = open_chunked(path)
    from .io import system_summary

    return {"systems": [system_summary(c.system)],
            "dataset": {"snapshots": c.n_snapshots, "train": c.n_train, "test": c.n_test, "chunks": c.n_chunks,
                        "chunk_size": c.manifest["chunk_size"], "split": c.manifest["split"],
                        "meta": c.meta}}


def chunk_count(n_snapshots: int, chunk_size: int) -> int:
    return math.ceil(n_snapshots / chunk_size)


kinds.register(kinds.FileKind(KIND, open_chunked, "a chunked dataset", describe=_describe,
                              system_of=lambda c: c.system, summary=_summary))

__all__ = ["ChunkWriter", "ChunkedDataset", "open_chunked", "is_chunked", "chunk_name", "FORMAT", "VERSION", "KIND",
           "MANIFEST"]
