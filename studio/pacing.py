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

On a busy machine the pacer also keeps the window's drawing to a share of
the time (:data:`DUTY`): after a piece that took ``d`` seconds of wall time
while the window's process got less than :data:`BUSY_CPU` of a CPU in it
(it waited for one), the next piece waits at least ``d * (1 / DUTY - 1)``
(:func:`rest_after`). The drawing then slows down by itself and, latest data
winning, skips intermediate pictures instead of queuing CPU work the window
then has to wait for (Linux's scheduler makes a thread that has used more
than its fair share of a loaded CPU wait the longest). On an idle machine a
piece gets its CPU and the gap stays :data:`GAP_MS`.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Hashable

import shiboken6
from PySide6.QtCore import QObject, QTimer

#: the event loop's breathing space between two pieces (ms): long enough for
#: the posted events of the previous piece (its paint) and any due timer
GAP_MS = 8
#: the largest share of wall time the pacer's pieces may take on a busy machine (see
#: module notes); environment variable ``HGN_STUDIO_PACER_DUTY`` (0 < x <= 1; 1: no limit)
#: overrides it
DUTY = 0.35
#: a piece during which the window's process got less CPU time than this share of
#: its wall time ran on a busy machine (all the process's threads count: the 3D
#: views' software renderer draws in threads of its own)
BUSY_CPU = 0.75
#: the longest rest after a piece (seconds)
MAX_REST = 0.5


def rest_after(took: float, cpu: float, duty: float) -> float:
    """Seconds the next piece waits after one that took ``took`` seconds of
    wall time and ``cpu`` seconds of the process's CPU time: ``took * (1 /
    duty - 1)`` (at most :data:`MAX_REST`) when the process was short of CPU
    (``cpu < BUSY_CPU * took``), else 0 (:data:`GAP_MS` applies)."""
    if duty >= 1.0 or took <= 0.002 or cpu >= BUSY_CPU * took:
        return 0.0
    return min(MAX_REST, took * (1.0 / duty - 1.0))


def pacer_duty() -> float:
    """:data:`DUTY`, or ``HGN_STUDIO_PACER_DUTY`` when it is a number in (0, 1]."""
    import os

    try:
        value = float(os.environ.get("HGN_STUDIO_PACER_DUTY", "") or DUTY)
    except ValueError:
        return DUTY
    return value if 0.0 < value <= 1.0 else DUTY


class Pacer(QObject):
    """A queue of GUI work run one piece per event-loop turn (see module notes)."""

    def __init__(self, parent: QObject | None = None, gap_ms: int = GAP_MS, duty: float | None = None):
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
        self.duty = pacer_duty() if duty is None else float(duty)
        self._rest = 0.0               # seconds the next piece waits after the last one (duty)

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
            # in the next turn, but never sooner than the gap after the last piece
            self._timer.start(self._wait_ms())

    def _wait_ms(self) -> int:
        """Milliseconds until the next piece may run: GAP_MS after the last
        one, or longer after a long one (:data:`DUTY`)."""
        since = time.perf_counter() - self._last
        return max(0, int(round(1e3 * (max(self.gap_ms / 1e3, self._rest) - since))))

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
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            fn()
        except RuntimeError as exc:
            # a Qt object it uses was deleted meanwhile (a closing window)
            if "deleted" not in str(exc):
                raise
        finally:
            self._last = time.perf_counter()
            self._rest = rest_after(self._last - t0, time.process_time() - c0, self.duty)
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
            self._timer.start(self._wait_ms())


_PACER: Pacer | None = None


def pacer() -> Pacer:
    """The window's one pacer (made on first use, in the GUI thread)."""
    global _PACER
    if _PACER is None:
        _PACER = Pacer()
    return _PACER
