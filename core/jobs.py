"""The protocol every long job in ``core`` follows (simulate, fit, roll out,
train, export), so that the studio, the command line and the tests drive them
the same way.

* ``progress(stage, fraction)``: an optional callable; ``stage`` is a short
  human name ("simulate", "sample", "assemble", "solve", "epochs", ...) and
  ``fraction`` in [0, 1] is the share of that stage done.
* ``cancel``: an optional object with ``is_set()`` (a ``threading.Event`` or
  :class:`CancelToken`). Jobs call :func:`check_cancel` often (at least every
  ~0.1 s of work) and raise :class:`~core.errors.Cancelled` when it is set.
"""
from __future__ import annotations

import threading
from typing import Callable, Optional, Protocol

from .errors import Cancelled

ProgressFn = Callable[[str, float], None]


class CancelLike(Protocol):
    def is_set(self) -> bool: ...


class CancelToken(threading.Event):
    """A thread-safe cancel flag: ``cancel()`` from any thread."""

    def cancel(self) -> None:
        self.set()


def check_cancel(cancel: Optional[CancelLike]) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled()


def report(progress: Optional[ProgressFn], stage: str, fraction: float) -> None:
    if progress is not None:
        progress(stage, min(1.0, max(0.0, float(fraction))))


def available_cores() -> int:
    """CPU cores this process may run on (its affinity set where the OS tells)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
