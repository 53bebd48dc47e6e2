"""GUI work spread over event-loop turns: one piece per turn, latest wins.

On a busy machine every event-loop batch of the GUI thread that holds it for
more than a few milliseconds of CPU is likely to be pre-empted, and the
window stalls for the whole batch. Qt handles all posted events in one go
(queued signals, ``QTimer.singleShot(0)``, layout requests and the window's
repaint), so two pieces of work queued that way -- a 3D view's render and a
plot's new data, say -- end up in one batch together with the paint they
cause. The :class:`Pacer` runs queued pieces one at a time, each from a timer
a few milliseconds after the previous one, so that each piece and the paint
it causes form a batch of their own and the event loop breathes in between.

A piece is queued under a key: queuing a key that is already waiting
replaces its function but keeps its place (the latest data win, and a view
or plot that changes often is not starved nor done twice). ``flush()`` runs
everything now (tests, or before a picture of the window is taken).

One pacer serves the whole window (:func:`pacer`): the views' renders
(:mod:`studio.widgets.surfaces`), the plots' updates and the views' scene
rebuilds all wait in the same queue, so they never share a batch.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Hashable

import shiboken6
from PySide6.QtCore import QObject, QTimer

#: the event loop's breathing space between two pieces (ms): long enough for
#: the posted events of the previous piece (its paint) and any due timer
GAP_MS = 8


class Pacer(QObject):
    """A queue of GUI work run one piece per event-loop turn (see module notes)."""

    def __init__(self, parent: QObject | None = None, gap_ms: int = GAP_MS):
        super().__init__(parent)
        self._order: list[Hashable] = []
        self._work: dict[Hashable, Callable[[], object]] = {}
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._run_next)
        self.gap_ms = int(gap_ms)
        #: pieces run so far (tests)
        self.runs = 0
        self._last = 0.0               # perf_counter when the last piece ended

    def later(self, key: Hashable, fn: Callable[[], object], first: bool = False) -> None:
        """Run ``fn()`` in a later turn; a piece already waiting under ``key``
        is replaced (keeping its place, or moved to the front with ``first``)."""
        if key in self._work:
            if first:
                self._order.remove(key)
                self._order.insert(0, key)
        else:
            self._order.insert(0, key) if first else self._order.append(key)
        self._work[key] = fn
        if not self._timer.isActive():
            # in the next turn, but never sooner than GAP_MS after the last piece
            since = 1e3 * (time.perf_counter() - self._last)
            self._timer.start(max(0, int(self.gap_ms - since)))

    def pending(self, key: Hashable) -> bool:
        return key in self._work

    def cancel(self, key: Hashable) -> None:
        if self._work.pop(key, None) is not None:
            self._order.remove(key)

    def __len__(self) -> int:
        return len(self._order)

    def take(self, key: Hashable) -> bool:
        """Run the piece waiting under ``key`` now (False: none waits)."""
        fn = self._work.pop(key, None)
        if fn is None:
            return False
        self._order.remove(key)
        if isinstance(key, QObject) and not shiboken6.isValid(key):
            return False                  # its widget was deleted meanwhile (a closed window)
        self.runs += 1
        try:
            fn()
        except RuntimeError as exc:
            # a Qt object it uses was deleted meanwhile (a closing window)
            if "deleted" not in str(exc):
                raise
        finally:
            self._last = time.perf_counter()
        return True

    def flush(self) -> None:
        """Run every waiting piece now (and those they queue)."""
        for _ in range(1000):
            if not self._order:
                break
            self.take(self._order[0])
        self._timer.stop()

    def _run_next(self) -> None:
        if self._order:
            self.take(self._order[0])
        if self._order:
            self._timer.start(self.gap_ms)


_PACER: Pacer | None = None


def pacer() -> Pacer:
    """The window's one pacer (made on first use, in the GUI thread)."""
    global _PACER
    if _PACER is None:
        _PACER = Pacer()
    return _PACER
