"""Limit the threads of the BLAS library during a fit.

The fit's matrix products are small (Z^T Z with a few dozen columns): on a
2-core machine shared with other work, a multi-threaded OpenBLAS spends more
time waiting for its threads than computing (measured: the 3x3x3 lattice fit
takes 67 ms with one thread and 140-220 ms with two while other jobs run).
:func:`blas_threads` sets the thread count of every OpenBLAS loaded in the
process for the duration of a ``with`` block and restores it afterwards.

It finds the libraries through ``/proc/self/maps`` and calls their
``*openblas_set_num_threads*`` entry points with ctypes (what threadpoolctl
does, without the dependency). Where that is not possible (another BLAS,
another OS) it does nothing.
"""
from __future__ import annotations

import contextlib
import ctypes
import threading

_LOCK = threading.Lock()
_LIBS: list | None = None
_SET = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads64_",
        "openblas_set_num_threads")
_GET = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads", "openblas_get_num_threads64_",
        "openblas_get_num_threads")


def _find() -> list:
    global _LIBS
    if _LIBS is not None:
        return _LIBS
    libs = []
    paths = set()
    try:
        with open("/proc/self/maps") as fh:
            for line in fh:
                field = line.split()[-1] if line.split() else ""
                name = field.rsplit("/", 1)[-1].lower()
                if field.startswith("/") and "openblas" in name and ".so" in name:
                    paths.add(field)
    except OSError:
        pass
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        setter = next((getattr(lib, n) for n in _SET if hasattr(lib, n)), None)
        getter = next((getattr(lib, n) for n in _GET if hasattr(lib, n)), None)
        if setter is None or getter is None:
            continue
        setter.argtypes = [ctypes.c_int]
        setter.restype = None
        getter.argtypes = []
        getter.restype = ctypes.c_int
        libs.append((setter, getter))
    _LIBS = libs
    return libs


@contextlib.contextmanager
def blas_threads(n: int):
    """Run the block with ``n`` BLAS threads (``n <= 0``: leave them alone)."""
    if n <= 0:
        yield
        return
    with _LOCK:
        libs = _find()
        old = [get() for _, get in libs]
        for (setter, _), o in zip(libs, old):
            if o != n:
                setter(n)
    try:
        yield
    finally:
        with _LOCK:
            for (setter, _), o in zip(libs, old):
                if o != n:
                    setter(o)
