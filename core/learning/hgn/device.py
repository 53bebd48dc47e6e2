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
