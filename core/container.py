"""The project's one container format, used for every file core writes.

A file is a NumPy ``.npz`` archive (uncompressed by default, so arrays read
back bit for bit) holding named arrays plus one array ``__header__``: a UTF-8
JSON document with at least

    {"format": "hgn-studio", "version": 1, "kind": "<system|trajectory|dataset|model|project|...>", ...}

Everything that is not an array (names, parameters, settings) lives in the
header; every array is stored under its own name. Readers check the format
marker, the kind and the version and raise :class:`~core.errors.HGNError`
with a clear message for corrupt, truncated or foreign files.

Reading is bounded (:func:`load_npz`): the archive's table of contents is
checked against the file before anything is decompressed (stored members
must be as long as they say, compressed ones may not claim more than
:data:`MAX_EXPANSION` times their compressed size, the header at most
:data:`MAX_HEADER_BYTES`), every array's ``.npy`` header (dtype, shape) must
match the bytes the member holds, and arrays are read in chunks into one
buffer of that size, so a file cannot make the program allocate far more than
its size justifies. The JSON header may nest at most :data:`MAX_HEADER_DEPTH`
levels. Only plain real numbers, booleans and strings are read: object,
complex, structured and date arrays are refused.

Headers are validated against one declarative schema per kind and arrays
against the header before use (:mod:`core.schema`: ``Field``,
``check_fields``, ``Arr``, ``check_arrays``); the schemas live beside the
loader of each kind (:mod:`core.files.io`, :mod:`core.files.project` and the
model modules of :mod:`core.learning`). Every message names the file and the
field.

Writes are atomic (:func:`atomic_write`): the data go to a temporary file
``.<name>.<token>.hgn-partial`` in the target's folder, which is fsync'ed and
then renamed over the target, so a failed save (disk full, no permission, a
crash) leaves any previous file intact; the temporary file is removed when the
save fails, is interrupted (KeyboardInterrupt) or is terminated (SIGTERM, when
the save runs in the main thread). A save holds an advisory lock on its
temporary file; temporary files of killed saves (no lock held, older than
:data:`STALE_AFTER_S`) are removed by the next save to the same folder. A
symbolic link at the target is written through (the link stays, the file it
points to gets the new content); a read-only target is refused, not replaced.
A new file gets the permissions of any new file of the user (0666 less the
umask, :func:`new_file_mode`); a replaced file keeps its permissions.

This module sits in core's base layer (beside ``errors``, ``jobs`` and
``settings``): the learned models in :mod:`core.learning` save and load
themselves through it, and :mod:`core.files` (the layer above learning)
builds every file layout on it.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import signal
import stat
import struct
import threading
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np

from core.errors import HGNError
from core.schema import show as _show

FORMAT = "hgn-studio"
VERSION = 1
HEADER_KEY = "__header__"

#: the JSON header may take at most this many bytes
MAX_HEADER_BYTES = 64 * 2**20
#: and nest at most this many levels of lists and objects
MAX_HEADER_DEPTH = 64
#: a compressed member may declare at most this many bytes per compressed byte
#: (HGN Studio writes uncompressed files; real data compresses far less)
MAX_EXPANSION = 64
#: ... plus this allowance per file (small members compress better)
EXPANSION_ALLOWANCE = 1 * 2**20
#: an archive may hold at most this many members
MAX_MEMBERS = 100_000
#: bytes read from a member at a time
_CHUNK = 2**20
#: dtype kinds an array may have: bool, signed/unsigned integers, real floats, strings
_READABLE_KINDS = "biufSU"

#: the temporary files of saves: ``.<target name>.<token>.hgn-partial``
TEMP_SUFFIX = ".hgn-partial"
_TEMP_RE = re.compile(r"^\..+\.[0-9a-f]{16}" + re.escape(TEMP_SUFFIX) + "$")
#: a temporary file no save holds and older than this (seconds) is left from a killed save
STALE_AFTER_S = 300.0


# ======================================================================
# paths
# ======================================================================
def as_path(path, what: str = "file name") -> Path:
    """``path`` (str or os.PathLike) as a Path; HGNError for anything else."""
    if isinstance(path, Path):
        return path
    if isinstance(path, str) or (isinstance(path, os.PathLike) and not isinstance(path, bytes)):
        try:
            p = Path(path)
        except TypeError:
            p = None
        if p is not None and str(p) not in ("", ".") and "\0" not in str(p):
            return p
        if p is not None and "\0" in str(p):
            raise HGNError(f"a {what} may not contain a NUL character, got {str(path)[:60]!r}")
    if isinstance(path, str):
        raise HGNError(f"a {what} is needed, got an empty string")
    raise HGNError(f"a {what} (text or path) is needed, got {type(path).__name__}"
                   + (f" {path!r}" if path is None or isinstance(path, (int, float, bytes)) else ""))


def existing_file(path) -> Path:
    """``path`` as a Path; HGNError when it does not exist, is a folder or
    is not a regular file (a pipe or a device would block or never end)."""
    path = as_path(path)
    try:
        if not path.exists():
            raise HGNError(f"file not found: {path}")
        if path.is_dir():
            raise HGNError(f"{path} is a folder, not a file")
        if not stat.S_ISREG(path.stat().st_mode):
            raise HGNError(f"{path} is not a regular file (a pipe, socket or device); give a file")
    except (OSError, ValueError) as exc:  # e.g. a name too long for the file system
        if isinstance(exc, HGNError):
            raise
        raise HGNError(f"cannot open {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return path


# ======================================================================
# writing
# ======================================================================
def save_npz(path, kind: str, header: dict, arrays: dict[str, np.ndarray], compress: bool = False) -> Path:
    """Write ``arrays`` and ``header`` to ``path`` atomically; returns the path."""
    path = as_path(path)
    if not isinstance(kind, str) or not kind:
        raise HGNError(f"a file kind must be a non-empty string, got {kind!r}")
    if not isinstance(header, dict) or not isinstance(arrays, dict):
        raise HGNError("save_npz needs a header dict and a dict of arrays")
    head = {"format": FORMAT, "version": VERSION, "kind": kind, **header}
    try:
        text = json.dumps(head, allow_nan=True)
    except (TypeError, ValueError, RecursionError) as exc:
        raise HGNError(f"cannot store header of {kind} file: {exc}") from None
    for name in arrays:
        if not isinstance(name, str) or name == HEADER_KEY or "/" in name or not name:
            raise HGNError(f"array name {name!r} is reserved or invalid")
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    for k, a in payload.items():
        if a.dtype.hasobject:
            raise HGNError(f"array {k!r}: object arrays cannot be stored (they would need pickle)")
        if a.dtype.kind not in _READABLE_KINDS:
            raise HGNError(f"array {k!r} has dtype {a.dtype}, which HGN Studio files do not hold "
                           "(use real numbers, booleans or strings)")
    payload[HEADER_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    with atomic_write(path) as fh:
        (np.savez_compressed if compress else np.savez)(fh, **payload)
    return path


# -- temporary files ----------------------------------------------------
_LIVE: set[str] = set()           # temporary files of saves in progress in this process
_LIVE_LOCK = threading.Lock()
_SIGNAL_STATE = {"depth": 0, "previous": None}


def _on_sigterm(signum, frame):  # pragma: no cover - exercised in a subprocess by the tests
    """Remove this process's temporary files, then let SIGTERM do what it did before."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for tmp in live:
        remove_quietly(tmp)
    previous = _SIGNAL_STATE["previous"]
    if callable(previous):
        previous(signum, frame)
        return
    if previous == signal.SIG_IGN:
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


@contextlib.contextmanager
def _temp_removed_on_sigterm():
    """While the block runs in the main thread, SIGTERM removes the temporary
    files of this process's saves before ending it as before."""
    main = threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGTERM")
    installed = False
    # a handler installed outside Python (getsignal gives None) could not be restored: leave it alone
    if main and (_SIGNAL_STATE["depth"] > 0 or signal.getsignal(signal.SIGTERM) is not None):
        try:
            if _SIGNAL_STATE["depth"] == 0:
                _SIGNAL_STATE["previous"] = signal.signal(signal.SIGTERM, _on_sigterm)
            _SIGNAL_STATE["depth"] += 1
            installed = True
        except (ValueError, OSError):  # not allowed here (embedded interpreter)
            installed = False
    try:
        yield
    finally:
        if installed:
            _SIGNAL_STATE["depth"] -= 1
            if _SIGNAL_STATE["depth"] == 0:
                previous = _SIGNAL_STATE["previous"]
                _SIGNAL_STATE["previous"] = None
                with contextlib.suppress(ValueError, OSError, TypeError):
                    signal.signal(signal.SIGTERM, previous)


def _try_lock(fd) -> bool | None:
    """An exclusive advisory lock on ``fd`` without waiting: True (got it),
    False (another process holds it), None (no advisory locks here)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError:
        return None


def clean_stale_temporaries(folder, now: float | None = None, legacy_of: str | None = None) -> list[str]:
    """Remove the temporary files of killed saves in ``folder``: names of the
    pattern ``.<name>.<token>.hgn-partial``, not held by a live save (no
    advisory lock on them, not a save of this process) and not modified for
    :data:`STALE_AFTER_S` seconds. ``legacy_of``: a target name whose
    temporary files of older versions (``.<name>.<8 characters>.tmp``) are
    removed on the same terms. Returns the names removed; errors are ignored."""
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    with _LIVE_LOCK:
        live = set(_LIVE)
    legacy = None if legacy_of is None else re.compile("^" + re.escape(f".{legacy_of}.") + r"[a-z0-9_]{8}\.tmp$")
    for entry in entries:
        ours = _TEMP_RE.match(entry.name) or (legacy is not None and legacy.match(entry.name))
        if not ours or entry.path in live:
            continue
        try:
            if (not entry.is_file(follow_symlinks=False)
                    or now - entry.stat(follow_symlinks=False).st_mtime < STALE_AFTER_S):
                continue
            fd = os.open(entry.path, os.O_RDONLY)
        except OSError:
            continue
        try:
            if _try_lock(fd) is not False:  # nobody holds it (or no locks here: its age decides)
                remove_quietly(entry.path)
                removed.append(entry.name)
        finally:
            os.close(fd)
    return removed


def _target(path: Path) -> Path:
    """Where a save to ``path`` writes: the file a symbolic link points to (so
    the link stays), else ``path``. HGNError for a folder or a read-only file."""
    target = path
    if path.is_symlink():
        target = Path(os.path.realpath(path))
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise HGNError(f"cannot save {path}: folder {folder} does not exist")
    if target.is_dir():
        raise HGNError(f"cannot save {path}: it is a folder")
    if target.exists():
        st = target.stat()
        if not stat.S_ISREG(st.st_mode):
            raise HGNError(f"cannot save {path}: it is not a regular file")
        if not st.st_mode & 0o222 or not os.access(target, os.W_OK):
            raise HGNError(f"cannot save {path}: the file is read-only; it was not replaced (make it writable "
                           "or save under another name)")
    return target


class Temporary:
    """The temporary file of one save to ``path``, as :func:`atomic_write` and
    the video writer (:mod:`core.files.video`) use it: created next to the
    target (a symbolic link followed; a read-only target refused, HGNError),
    named ``.<name>.<16 hex>.hgn-partial``, with the target's permissions (or
    those of a new file), locked while it lives so that
    :func:`clean_stale_temporaries` of other saves leaves it alone; then
    :meth:`publish` renames it over the target or :meth:`discard` removes it.
    Creating one removes the stale temporary files of killed saves in the folder."""

    def __init__(self, path):
        self.path = as_path(path)
        self.target = _target(self.path)
        self.folder = self.target.parent if str(self.target.parent) else Path(".")
        clean_stale_temporaries(self.folder, legacy_of=self.target.name)
        self.name = str(self.folder / f".{self.target.name}.{secrets.token_hex(8)}{TEMP_SUFFIX}")
        try:
            mode = stat.S_IMODE(self.target.stat().st_mode) if self.target.exists() else new_file_mode()
        except OSError:
            mode = new_file_mode()
        try:
            self.fd = os.open(self.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
        except OSError as exc:
            raise HGNError(f"could not save {self.path}: {exc.strerror or exc}") from None
        with _LIVE_LOCK:
            _LIVE.add(self.name)
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(self.fd, mode)
            else:  # pragma: no cover - Windows before Python 3.13
                os.chmod(self.name, mode)
        except OSError:
            pass
        _try_lock(self.fd)

    def publish(self) -> Path:
        """fsync the temporary file, rename it over the target; OSError as raised."""
        try:
            os.fsync(self.fd)
            os.replace(self.name, self.target)
        finally:
            self._close()
        _fsync_folder(self.folder)
        return self.path

    def discard(self) -> None:
        """Remove the temporary file (again: nothing happens)."""
        remove_quietly(self.name)
        self._close()

    def _close(self) -> None:
        fd, self.fd = getattr(self, "fd", None), None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        with _LIVE_LOCK:
            _LIVE.discard(self.name)


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb"):
    """Open a temporary file next to ``path`` for writing (``mode`` "wb" or
    "w"); when the ``with`` block ends normally it is fsync'ed and renamed over
    ``path``, so readers see the old file or the whole new one, never a part.

    A missing folder or a read-only target raises HGNError before anything is
    written; an OSError (disk full, no permission) becomes HGNError and leaves
    any previous file unchanged; any other exception (e.g. Cancelled,
    KeyboardInterrupt) removes the temporary file and propagates as it is, and
    so does SIGTERM in the main thread. A symbolic link at ``path`` is written
    through. Stale temporary files of killed saves in the folder are removed
    first (:class:`Temporary`).
    """
    if mode not in ("wb", "w"):
        raise HGNError(f"atomic_write opens files for writing ('wb' or 'w'), not {mode!r}")
    path = as_path(path)
    with _temp_removed_on_sigterm():
        tmp = Temporary(path)
        try:
            with os.fdopen(os.dup(tmp.fd), mode, **({"encoding": "utf-8"} if mode == "w" else {})) as fh:
                yield fh
                fh.flush()
            tmp.publish()
        except OSError as exc:
            tmp.discard()
            raise HGNError(f"could not save {path}: {exc.strerror or exc}; "
                           "the previous file (if any) is unchanged") from None
        except BaseException:
            tmp.discard()
            raise


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable where the system allows it (errors ignored)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ======================================================================
# reading (bounded)
# ======================================================================
def _damaged(fname: str, what: str) -> HGNError:
    return HGNError(f"{fname} is corrupt, truncated or not an HGN Studio file ({what})")


def _check_table(zf: zipfile.ZipFile, fname: str, size: int) -> list[zipfile.ZipInfo]:
    """The archive's members, after checking their declared sizes against the file."""
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise _damaged(fname, f"{len(infos)} members, more than {MAX_MEMBERS}")
    total = 0
    for info in infos:
        name = info.filename
        if info.flag_bits & 0x1:
            raise _damaged(fname, f"member {name!r} is encrypted")
        if info.compress_type == zipfile.ZIP_STORED:
            if info.file_size != info.compress_size:
                raise _damaged(fname, f"member {name!r} is stored uncompressed but declares {info.file_size} bytes "
                                      f"in {info.compress_size}")
        elif info.compress_type == zipfile.ZIP_DEFLATED:
            if info.file_size > MAX_EXPANSION * info.compress_size + EXPANSION_ALLOWANCE:
                raise HGNError(f"{fname}: member {name!r} declares {info.file_size} bytes from "
                               f"{info.compress_size} compressed bytes, more than {MAX_EXPANSION} times its size; "
                               "refused (a damaged or crafted archive)")
        else:
            raise _damaged(fname, f"member {name!r} uses compression method {info.compress_type}, which HGN "
                                  "Studio files never use")
        if info.compress_size > size or info.header_offset > size:
            raise _damaged(fname, f"member {name!r} declares {info.compress_size} bytes at offset "
                                  f"{info.header_offset} in a file of {size} bytes")
        total += info.file_size
    if total > MAX_EXPANSION * size + EXPANSION_ALLOWANCE:
        raise HGNError(f"{fname}: the archive declares {total} bytes of data in a file of {size} bytes; refused "
                       "(a damaged or crafted archive)")
    return infos


def _array_header(fp, fname: str, name: str):
    """(shape, fortran_order, dtype, count, nbytes) from the ``.npy`` header at ``fp``'s position, checked."""
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            raise ValueError(f"npy format version {version}")
    except Exception as exc:  # noqa: BLE001 - numpy's header parser raises ValueError, SyntaxError, TokenError...
        raise _damaged(fname, f"member {name!r} has no valid array header: {type(exc).__name__}: "
                              f"{str(exc)[:120]}") from None
    dtype = np.dtype(dtype)
    if dtype.hasobject or dtype.names is not None or dtype.subdtype is not None:
        raise HGNError(f"{fname}: array {name[:-4]!r} holds Python objects or records ({dtype}), which HGN "
                       "Studio files never hold")
    if dtype.kind not in _READABLE_KINDS:
        what = "complex numbers" if dtype.kind == "c" else f"dtype {dtype}"
        raise HGNError(f"{fname}: array {name[:-4]!r} holds {what}; HGN Studio files hold real numbers")
    count = math.prod(int(n) for n in shape)
    return shape, fortran, dtype, count, count * dtype.itemsize


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, fname: str, raw=None) -> np.ndarray:
    """One ``.npy`` member: header checked against the member's declared size,
    data read in chunks into the array (a stored member straight from the
    file ``raw``, its CRC checked as zipfile would)."""
    name = info.filename
    if raw is not None and info.compress_type == zipfile.ZIP_STORED:
        return _read_stored(raw, info, fname)
    with zf.open(info) as fp:
        shape, fortran, dtype, count, nbytes = _array_header(fp, fname, name)
        offset = fp.tell()
        if offset + nbytes != info.file_size:
            raise _damaged(fname, f"array {name[:-4]!r} declares shape {tuple(shape)} of {dtype} ({nbytes} bytes) "
                                  f"but its member holds {info.file_size - offset}")
        arr = np.empty(count, dtype=dtype)
        view = memoryview(arr.reshape(-1).view(np.uint8)) if nbytes else memoryview(b"")
        pos = 0
        while pos < nbytes:
            chunk = fp.read(min(_CHUNK, nbytes - pos))
            if not chunk:
                raise _damaged(fname, f"member {name!r} ends after {pos} of {nbytes} bytes")
            view[pos:pos + len(chunk)] = chunk
            pos += len(chunk)
        if fp.read(1):
            raise _damaged(fname, f"member {name!r} is longer than it declares")
    return arr.reshape(shape, order="F" if fortran else "C")


def _read_stored(raw, info: zipfile.ZipInfo, fname: str) -> np.ndarray:
    """A stored (uncompressed) member read from the archive file ``raw`` into its array in one pass."""
    name = info.filename
    raw.seek(info.header_offset)
    local = raw.read(30)
    if len(local) != 30 or local[:4] != b"PK\x03\x04":
        raise _damaged(fname, f"member {name!r} has no local header")
    n_len, x_len = struct.unpack("<HH", local[26:30])
    start = info.header_offset + 30 + n_len + x_len
    raw.seek(start)
    shape, fortran, dtype, count, nbytes = _array_header(raw, fname, name)
    offset = raw.tell() - start
    if offset + nbytes != info.file_size:
        raise _damaged(fname, f"array {name[:-4]!r} declares shape {tuple(shape)} of {dtype} ({nbytes} bytes) "
                              f"but its member holds {info.file_size - offset}")
    raw.seek(start)
    crc = zlib.crc32(raw.read(offset))
    arr = np.empty(count, dtype=dtype)
    view = memoryview(arr.reshape(-1).view(np.uint8)) if nbytes else memoryview(bytearray())
    pos = 0
    while pos < nbytes:
        got = raw.readinto(view[pos:pos + min(_CHUNK, nbytes - pos)])
        if not got:
            raise _damaged(fname, f"member {name!r} ends after {pos} of {nbytes} bytes")
        crc = zlib.crc32(view[pos:pos + got], crc)
        pos += got
    if crc != info.CRC:
        raise _damaged(fname, f"member {name!r} fails its checksum (CRC)")
    return arr.reshape(shape, order="F" if fortran else "C")


def json_depth_ok(doc, limit: int) -> bool:
    """True when ``doc`` nests at most ``limit`` levels of lists and dicts (iterative)."""
    stack = [(doc, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict):
            v = v.values()
        elif not isinstance(v, list):
            continue
        if depth > limit:
            return False
        stack.extend((x, depth + 1) for x in v if isinstance(x, (dict, list)))
    return True


def _parse_header(raw: np.ndarray, fname: str) -> dict:
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise _damaged(fname, f"the header is a {raw.dtype} array of shape {raw.shape}, not bytes")
    if raw.size > MAX_HEADER_BYTES:
        raise HGNError(f"{fname}: the header takes {raw.size} bytes, more than {MAX_HEADER_BYTES}; refused")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except RecursionError:
        raise HGNError(f"{fname}: the header nests deeper than {MAX_HEADER_DEPTH} levels; refused "
                       "(a damaged or crafted file)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise _damaged(fname, f"the header is not valid JSON: {str(exc)[:120]}") from None
    if not json_depth_ok(header, MAX_HEADER_DEPTH):
        raise HGNError(f"{fname}: the header nests deeper than {MAX_HEADER_DEPTH} levels; refused "
                       "(a damaged or crafted file)")
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise HGNError(f"{fname} is not an HGN Studio file (format marker missing)")
    version = header.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise HGNError(f"{fname}: header field 'version' must be a whole number, got {_show(version)}")
    if version > VERSION:
        raise HGNError(f"{fname} was written by a newer HGN Studio (file version {version}, this "
                       f"one reads {VERSION})")
    if version < 1:
        raise HGNError(f"{fname}: header field 'version' must be 1..{VERSION}, got {version}")
    if not isinstance(header.get("kind"), str):
        raise HGNError(f"{fname}: header field 'kind' must be a string, got {_show(header.get('kind'))}")
    return header


def load_npz(path, kind: str | tuple[str, ...] | None = None) -> tuple[dict, dict[str, np.ndarray]]:
    """Read a file written by :func:`save_npz`; returns (header, arrays).

    ``kind`` restricts the accepted file kinds (one name or a tuple). The
    reading is bounded (see the module notes)."""
    return _open_npz(path, kind, True)


def list_npz(path, kind: str | tuple[str, ...] | None = None) -> tuple[dict, dict[str, tuple[tuple, np.dtype]]]:
    """(header, {array name: (shape, dtype)}) of a container, reading only the
    arrays' headers (e.g. to describe a large file); checked as :func:`load_npz` checks."""
    return _open_npz(path, kind, False)


def _open_npz(path, kind, read_arrays: bool):
    path = existing_file(path)
    fname = path.name
    try:
        size = path.stat().st_size
        with open(path, "rb") as raw, zipfile.ZipFile(path) as zf:
            infos = _check_table(zf, fname, size)
            members = {}
            for info in infos:
                if not info.filename.endswith(".npy"):
                    raise HGNError(f"{fname}: member {info.filename!r} is not an array; not an HGN Studio file")
                members[info.filename[:-4]] = info
            if HEADER_KEY not in members:
                raise HGNError(f"{fname} is not an HGN Studio file (no header); was it written by another program?")
            hinfo = members.pop(HEADER_KEY)
            if hinfo.file_size > MAX_HEADER_BYTES + 1024:
                raise HGNError(f"{fname}: the header takes {hinfo.file_size} bytes, more than {MAX_HEADER_BYTES}; "
                               "refused")
            header = _parse_header(_read_member(zf, hinfo, fname, raw), fname)
            if kind is not None:
                kinds = (kind,) if isinstance(kind, str) else tuple(kind)
                if header.get("kind") not in kinds:
                    raise HGNError(f"{fname} holds a {header.get('kind')!r}, expected {' or '.join(kinds)}")
            if read_arrays:
                arrays = {k: _read_member(zf, info, fname, raw) for k, info in members.items()}
            else:
                arrays = {k: _member_layout(zf, info, fname) for k, info in members.items()}
    except HGNError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, KeyError, UnicodeDecodeError,
            zlib.error, NotImplementedError, RuntimeError, OverflowError, MemoryError, TypeError,
            IndexError, struct.error) as exc:
        raise _damaged(fname, f"{type(exc).__name__}: {str(exc)[:160]}") from None
    except Exception as exc:  # noqa: BLE001 - whatever a damaged archive makes zipfile or numpy raise
        raise _damaged(fname, f"{type(exc).__name__}: {str(exc)[:160]}") from None
    return header, arrays


def _member_layout(zf: zipfile.ZipFile, info: zipfile.ZipInfo, fname: str) -> tuple[tuple, np.dtype]:
    """(shape, dtype) of a member from its ``.npy`` header, checked against its size; no data read."""
    with zf.open(info) as fp:
        shape, _, dtype, _, nbytes = _array_header(fp, fname, info.filename)
        if fp.tell() + nbytes != info.file_size:
            raise _damaged(fname, f"array {info.filename[:-4]!r} declares shape {tuple(shape)} of {dtype} "
                                  f"({nbytes} bytes) but its member holds {info.file_size - fp.tell()}")
    return tuple(shape), dtype


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
