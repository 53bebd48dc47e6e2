"""Where the network runs: devices and torch's intra-op threads.

:func:`resolve_device` turns a setting ("cpu", "cuda", "cuda:N") into a
``torch.device``, and raises :class:`core.errors.HGNError` with a message that
says what to do when CUDA is asked for on a machine without it.
:func:`torch_threads` runs a block with a given number of torch intra-op
threads and restores the previous count afterwards.

Torch is imported inside the functions: ``DEVICES`` can be read (by the
settings and the studio's forms) without importing torch.
"""
from __future__ import annotations

import contextlib
import threading

from core.errors import HGNError

#: the device settings the user can pick ("cuda:N" is accepted too)
DEVICES = ("cpu", "cuda")

_LOCK = threading.Lock()


def resolve_device(name=None):
    """``torch.device`` for "cpu" | "cuda" | "cuda:N" (None: "cpu"; a
    ``torch.device`` passes through after the same check)."""
    import torch

    if name is None:
        name = "cpu"
    if isinstance(name, torch.device):
        dev = name
    else:
        text = str(name).strip().lower()
        if text != "cpu" and not (text == "cuda" or (text.startswith("cuda:") and text[5:].isdigit())):
            raise HGNError(f"device {name!r} is not one of {', '.join(DEVICES)} (or cuda:N)")
        dev = torch.device(text)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise HGNError(f"device {str(name)!r}: CUDA was asked for but this machine has none: torch "
                           f"{torch.__version__} reports no CUDA device; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise HGNError(f"device {str(name)!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise HGNError(f"device {str(name)!r} is not one of {', '.join(DEVICES)}")
    return dev


@contextlib.contextmanager
def torch_threads(n: int):
    """Run the block with ``n`` torch intra-op threads (``n <= 0``: leave
    torch's setting alone); the previous count is restored afterwards."""
    import torch

    n = int(n)
    if n <= 0:
        yield
        return
    with _LOCK:
        old = torch.get_num_threads()
        if old != n:
            torch.set_num_threads(n)
    try:
        yield
    finally:
        with _LOCK:
            if torch.get_num_threads() != old:
                torch.set_num_threads(old)


# -- NumPy's BLAS ----------------------------------------------------------
# On the CPU the fit hands its small dense products to NumPy's OpenBLAS (measured faster than torch's MKL
# for these shapes here, core/learning/hgn/fixed.py), so its thread count follows the fit's ``threads``
# too. The libraries are found through /proc/self/maps and their ``*openblas_set_num_threads*`` entry
# points called with ctypes (what threadpoolctl does, without the dependency); elsewhere this does nothing.
_BLAS: list | None = None
_BLAS_SET = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads64_",
             "openblas_set_num_threads")
_BLAS_GET = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads", "openblas_get_num_threads64_",
             "openblas_get_num_threads")


def _blas_libs() -> list:
    global _BLAS
    if _BLAS is not None:
        return _BLAS
    import ctypes

    import numpy  # noqa: F401  (loads NumPy's BLAS)

    paths = set()
    try:
        with open("/proc/self/maps") as fh:
            for line in fh:
                parts = line.split()
                field = parts[-1] if parts else ""
                name = field.rsplit("/", 1)[-1].lower()
                if field.startswith("/") and "openblas" in name and ".so" in name:
                    paths.add(field)
    except OSError:
        pass
    libs = []
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        setter = next((getattr(lib, n) for n in _BLAS_SET if hasattr(lib, n)), None)
        getter = next((getattr(lib, n) for n in _BLAS_GET if hasattr(lib, n)), None)
        if setter is None or getter is None:
            continue
        setter.argtypes = [ctypes.c_int]
        setter.restype = None
        getter.argtypes = []
        getter.restype = ctypes.c_int
        libs.append((setter, getter))
    _BLAS = libs
    return libs


@contextlib.contextmanager
def blas_threads(n: int):
    """Run the block with ``n`` threads in NumPy's OpenBLAS (``n <= 0``:
    leave it alone); the previous counts are restored afterwards."""
    n = int(n)
    if n <= 0:
        yield
        return
    with _LOCK:
        libs = _blas_libs()
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
