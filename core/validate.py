"""Checks of user input, written once: numbers, counts, choices, memory and
output paths. Every check raises :class:`~core.errors.HGNError` with a
message naming the input, the value and what would work; the configs
(``RFConfig``, ``BaselineConfig``), the builders, the simulation, the
roll-out and the command line call these instead of their own ``if``s.

Resources: :func:`check_memory` refuses work whose estimated memory exceeds
this machine's physical memory (``os.sysconf``), before the work starts,
with both figures in the message ("needs about 48 GB; this machine has
23 GB"). The estimates are made where the arrays are made (builders,
integrators, roll-out, data generation) from the sizes alone.

Magnitudes: positions, box lengths, spacings and cutoffs must stay within
:data:`MAX_LENGTH` length units. The units are reduced (a lattice spacing
or sigma is ~1); beyond 1e9 a float64 coordinate resolves a 0.1
displacement only to ~2e-6 of itself, and at ~1e154 squared distances
overflow, so larger values are a mistake, not a system.
"""
from __future__ import annotations

import math
import numbers
import os
import tempfile
from pathlib import Path

from core.errors import HGNError

#: largest length (position, box, spacing, cutoff) accepted, in reduced units
MAX_LENGTH = 1e9
#: most threads accepted for any library (torch refuses counts beyond a C int; no machine has more cores)
MAX_THREADS = 4096


def whole(name: str, v, lo: int | None = None, hi: int | None = None, at_least: str = "at least") -> int:
    """``v`` as an int when it is a whole number (int, or a float/numpy
    number with no fraction) within [lo, hi]; HGNError otherwise
    (``at_least``: the words of the lower bound in the message, e.g. ">=")."""
    ok = not isinstance(v, bool) and isinstance(v, numbers.Real)
    if ok:
        try:
            f = float(v)
            ok = math.isfinite(f) and f.is_integer()
        except (OverflowError, ValueError):
            ok = False
    if not ok:
        raise HGNError(f"{name} must be a whole number, got {v!r}")
    v = int(v)
    if lo is not None and v < lo:
        raise HGNError(f"{name} must be {at_least} {lo}, got {v}")
    if hi is not None and v > hi:
        raise HGNError(f"{name} must be at most {hi}, got {v}")
    return v


def number(name: str, v, lo: float | None = None, hi: float | None = None, *, above: bool = False,
           below: bool = False) -> float:
    """``v`` as a finite float within the bounds (``above``/``below``: the
    bound itself is excluded); HGNError otherwise. Strings are refused (a
    number given as text is a caller's mistake, not a number)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise HGNError(f"{name} must be a number, got {v!r}")
    try:
        f = float(v)
    except (OverflowError, ValueError):
        raise HGNError(f"{name} must be a number, got {v!r}") from None
    if lo is not None and not (f > lo if above else f >= lo):  # NaN fails here too
        raise HGNError(f"{name} must be {'>' if above else '>='} {lo:g}, got {f:g}")
    if not math.isfinite(f):
        raise HGNError(f"{name} must be a finite number, got {f}")
    if lo is not None and (f <= lo if above else f < lo):
        raise HGNError(f"{name} must be {'>' if above else '>='} {lo:g}, got {f:g}")
    if hi is not None and (f >= hi if below else f > hi):
        raise HGNError(f"{name} must be {'<' if below else '<='} {hi:g}, got {f:g}")
    return f


def positive(name: str, v, hi: float | None = None) -> float:
    """A finite number > 0 (and <= hi)."""
    return number(name, v, 0.0, hi, above=True)


def amplitude(name: str, v) -> float:
    """A finite number >= 0 (a standard deviation, a temperature)."""
    return number(name, v, 0.0)


def length(name: str, v) -> float:
    """A length > 0 and at most :data:`MAX_LENGTH` (see the module notes)."""
    f = positive(name, v)
    if f > MAX_LENGTH:
        raise HGNError(f"{name} {f:g} is beyond {MAX_LENGTH:g} length units: lengths are in reduced units (a "
                       "spacing is ~1), and float64 positions that large cannot resolve a displacement")
    return f


def seed(v) -> int:
    """A random seed: a whole number >= 0 (numpy refuses negative seeds)."""
    if v is None:
        raise HGNError("a seed is required so that the result can be reproduced")
    return whole("seed", v, 0)


def fraction(name: str, v) -> float:
    """A share in [0, 1)."""
    f = number(name, v)
    if not 0.0 <= f < 1.0:
        raise HGNError(f"{name} must be in [0, 1), got {f:g}")
    return f


def choice(name: str, v, options) -> str:
    if not isinstance(v, str) or v not in options:
        raise HGNError(f"{name} must be one of {', '.join(map(str, options))}, got {v!r}")
    return v


def flag(name: str, v) -> bool:
    if not isinstance(v, bool):
        raise HGNError(f"{name} must be true or false, got {v!r}")
    return v


# ----------------------------------------------------------------------
# memory
# ----------------------------------------------------------------------
def physical_memory() -> int | None:
    """Bytes of physical memory of this machine, or None when unknown."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return None
    if pages <= 0 or size <= 0:  # pragma: no cover
        return None
    return int(pages) * int(size)


def format_bytes(n: float) -> str:
    """``n`` bytes as "512 MB", "48 GB", "3.2e+04 TB" (decimal units)."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            v = n / scale
            return f"{v:.3g} {unit}" if v < 1e4 else f"{v:.2g} {unit}"
    return f"{int(n)} bytes"


def check_memory(what: str, n_bytes: float, advice: str = "") -> None:
    """HGNError when ``what`` needs more than this machine's physical memory.

    ``n_bytes`` is an estimate from the sizes (arrays that will be held at
    once); ``advice`` says what to make smaller."""
    total = physical_memory()
    if math.isfinite(n_bytes) and (total is None or n_bytes <= total):
        return
    have = f"this machine has {format_bytes(total)}" if total else "more than any machine has"
    msg = f"{what} needs about {format_bytes(n_bytes) if math.isfinite(n_bytes) else 'unbounded memory'}; {have}"
    raise HGNError(msg + (f": {advice}" if advice else ""))


# ----------------------------------------------------------------------
# output paths
# ----------------------------------------------------------------------
def check_writable(path, what: str = "output", suffixes: tuple[str, ...] | None = None) -> Path:
    """HGNError unless ``path`` can be written: its folder exists and is a
    writable folder, and ``path`` is not a folder nor a read-only file;
    with ``suffixes``, its name must end in one of them (a name such as
    "nan" or "-0.5" is a slip in a command line, not a file name). Called
    before the work, so a long computation never ends in "cannot write".
    Returns the path."""
    if path is None or str(path) == "":
        raise HGNError(f"no {what} file given")
    p = Path(path)
    if suffixes and not p.name.lower().endswith(tuple(suffixes)):
        raise HGNError(f"{what} {str(p)[:200]!r}: give a file name ending in {' or '.join(suffixes)}")
    try:
        return _check_writable(p, what)
    except OSError as exc:  # a name too long, a loop of links, ...: what the write itself would meet
        raise HGNError(f"cannot write {what} {str(p)[:200]}: {exc.strerror or exc}") from None


def _check_writable(p: Path, what: str) -> Path:
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.exists():
        raise HGNError(f"cannot write {what} {p}: folder {folder} does not exist")
    if not folder.is_dir():
        raise HGNError(f"cannot write {what} {p}: {folder} is not a folder")
    if p.is_dir():
        raise HGNError(f"cannot write {what} {p}: it is a folder; give a file name")
    if p.exists() and not os.access(p, os.W_OK):
        raise HGNError(f"cannot write {what} {p}: the file is read-only")
    if len(p.name.encode("utf-8", "surrogateescape")) > 255:
        raise HGNError(f"cannot write {what} {str(p)[:200]}...: the file name is longer than 255 bytes")
    try:  # a real write (permissions, read-only mounts, ACLs: whatever the write itself would meet)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".hgn-write-check-")
    except OSError as exc:
        raise HGNError(f"cannot write {what} {p}: folder {folder} is not writable ({exc.strerror})") from None
    os.close(fd)
    os.unlink(probe)
    return p
