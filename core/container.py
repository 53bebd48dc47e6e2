"""The project's one container format, used for every file core writes.

A file is a NumPy ``.npz`` archive (uncompressed by default, so arrays read
back bit for bit) holding named arrays plus one array ``__header__``: a UTF-8
JSON document with at least

    {"format": "hgn-studio", "version": 1, "kind": "<system|trajectory|dataset|model|project|...>", ...}

Everything that is not an array (names, parameters, settings) lives in the
header; every array is stored under its own name. Readers check the format
marker, the kind and the version and raise :class:`~core.errors.HGNError`
with a clear message for corrupt, truncated or foreign files.

Writes are atomic: the data go to a temporary file in the same folder, which
is fsync'ed and then renamed over the target, so a failed save (disk full, no
permission, a crash) leaves any previous file intact. The file gets the
permissions of any new file of the user (0666 less the umask), not the
owner-only 0600 of a temporary file (:func:`new_file_mode`).

This module sits in core's base layer (beside ``errors``, ``jobs`` and
``settings``): the learned models in :mod:`core.learning` save and load
themselves through it, and :mod:`core.files` (the layer above learning)
builds every file layout on it.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from core.errors import HGNError

FORMAT = "hgn-studio"
VERSION = 1
HEADER_KEY = "__header__"


def save_npz(path, kind: str, header: dict, arrays: dict[str, np.ndarray], compress: bool = False) -> Path:
    """Write ``arrays`` and ``header`` to ``path`` atomically; returns the path."""
    path = Path(path)
    head = {"format": FORMAT, "version": VERSION, "kind": kind, **header}
    try:
        text = json.dumps(head, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise HGNError(f"cannot store header of {kind} file: {exc}") from None
    for name in arrays:
        if name == HEADER_KEY or "/" in name:
            raise HGNError(f"array name {name!r} is reserved or invalid")
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    if any(a.dtype == object for a in payload.values()):
        raise HGNError("object arrays cannot be stored (they would need pickle)")
    payload[HEADER_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    with atomic_write(path) as fh:
        (np.savez_compressed if compress else np.savez)(fh, **payload)
    return path


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb"):
    """Open a temporary file next to ``path`` for writing (``mode`` "wb" or
    "w"); when the ``with`` block ends normally it is fsync'ed and renamed over
    ``path``, so readers see the old file or the whole new one, never a part.

    A missing folder raises HGNError before anything is written; an OSError
    (disk full, no permission) becomes HGNError and leaves any previous file
    unchanged; any other exception (e.g. Cancelled) removes the temporary file
    and propagates as it is.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise HGNError(f"cannot save {path}: folder {folder} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise HGNError(f"could not save {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, mode) as fh:
            os.fchmod(fh.fileno(), new_file_mode())
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        remove_quietly(tmp)
        raise HGNError(f"could not save {path}: {exc.strerror or exc}; "
                       "the previous file (if any) is unchanged") from None
    except BaseException:
        remove_quietly(tmp)
        raise


def existing_file(path) -> Path:
    """``path`` as a Path; HGNError when it does not exist or is a folder."""
    path = Path(path)
    if not path.exists():
        raise HGNError(f"file not found: {path}")
    if path.is_dir():
        raise HGNError(f"{path} is a folder, not a file")
    return path


def load_npz(path, kind: str | tuple[str, ...] | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """Read a file written by :func:`save_npz`; returns (header, arrays).

    ``kind`` restricts the accepted file kinds (one name or a tuple).
    """
    path = existing_file(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)
            if HEADER_KEY not in names:
                raise HGNError(f"{path.name} is not an HGN Studio file (no header); was it written by another program?")
            header = json.loads(bytes(z[HEADER_KEY]).decode("utf-8"))
            arrays = {k: z[k] for k in names if k != HEADER_KEY}
    except HGNError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, UnicodeDecodeError,
            zipfile.LargeZipFile) as exc:
        raise HGNError(f"{path.name} is corrupt, truncated or not an HGN Studio file "
                       f"({type(exc).__name__}: {exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise HGNError(f"{path.name} is not an HGN Studio file (format marker missing)")
    if int(header.get("version", 0)) > VERSION:
        raise HGNError(f"{path.name} was written by a newer HGN Studio (file version {header.get('version')}, this "
                       f"one reads {VERSION})")
    if kind is not None:
        kinds = (kind,) if isinstance(kind, str) else tuple(kind)
        if header.get("kind") not in kinds:
            raise HGNError(f"{path.name} holds a {header.get('kind')!r}, expected {' or '.join(kinds)}")
    return header, arrays


def jsonable(value, where: str):
    """A copy of ``value`` made of plain JSON types, or HGNError naming where."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise HGNError(f"{where}: keys must be strings, got {k!r}")
            out[k] = jsonable(v, f"{where}.{k}")
        return out
    if isinstance(value, (list, tuple)):
        return [jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.ndarray) and value.dtype != object:
        return value.tolist()
    raise HGNError(f"{where} holds a {type(value).__name__}, which cannot be saved (use numbers, strings, lists or "
                   "dicts)")


def umask() -> int:
    """The process's umask, read without changing it where the system shows
    it (Linux: /proc/self/status); elsewhere set and restored at once."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """Permissions of a new file as the user's programs create it: 0666 less the umask."""
    return 0o666 & ~umask()


def remove_quietly(p) -> None:
    """Remove file ``p`` if it is there; errors are ignored."""
    try:
        os.remove(p)
    except OSError:
        pass
