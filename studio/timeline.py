"""One time model that every view and plot follows.

:class:`TimeModel` knows the saved times ``t`` of the current roll-out, how
many frames are filled so far (a background roll-out grows this), the current
frame, and playback: play/pause, step, loop mode ("once", "loop", "bounce")
and speed (saved frames per tick at the base frame rate). A QTimer drives
playback; views connect to ``frameChanged`` and draw what it says. Scrubbing
sets the frame directly; nothing in here draws.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal, Slot

from .defaults import PLAYBACK

LOOP_MODES = ("once", "loop", "bounce")


class TimeModel(QObject):
    frameChanged = Signal(int)
    rangeChanged = Signal(int, int)       # filled frames, total frames
    playingChanged = Signal(bool)
    settingsChanged = Signal()            # speed or loop mode

    def __init__(self, parent: QObject | None = None, fps: float = PLAYBACK.fps):
        super().__init__(parent)
        self.t = np.zeros(1)
        self.frame = 0
        self.filled = 1
        self.speed = PLAYBACK.speed
        self.loop = PLAYBACK.loop
        self._direction = 1
        self._acc = 0.0
        self._timer = QTimer(self)
        self._timer.setInterval(max(1, int(round(1000.0 / fps))))
        self._timer.timeout.connect(self._tick)

    # -- data ---------------------------------------------------------------
    @property
    def total(self) -> int:
        return int(len(self.t))

    @property
    def playing(self) -> bool:
        return self._timer.isActive()

    def set_times(self, t: np.ndarray, filled: int | None = None) -> None:
        """A new roll-out: its saved times; ``filled`` frames are ready."""
        self.t = np.asarray(t, dtype=float) if len(t) else np.zeros(1)
        self.filled = self.total if filled is None else max(1, min(int(filled), self.total))
        self.frame = 0
        self._direction = 1
        self.rangeChanged.emit(self.filled, self.total)
        self.frameChanged.emit(0)

    def set_filled(self, filled: int) -> None:
        filled = max(1, min(int(filled), self.total))
        if filled != self.filled:
            self.filled = filled
            self.rangeChanged.emit(self.filled, self.total)

    def time(self, frame: int | None = None) -> float:
        f = self.frame if frame is None else frame
        return float(self.t[min(max(f, 0), self.total - 1)])

    # -- navigation -----------------------------------------------------------
    def set_frame(self, frame: int) -> None:
        frame = int(min(max(frame, 0), self.filled - 1))
        if frame != self.frame:
            self.frame = frame
            self.frameChanged.emit(frame)

    def step(self, k: int = 1) -> None:
        self.set_frame(self.frame + k)

    def first(self) -> None:
        self.set_frame(0)

    def last(self) -> None:
        self.set_frame(self.filled - 1)

    # -- playback -------------------------------------------------------------
    def play(self) -> None:
        if self.filled <= 1 or self.playing:
            return
        if self.loop == "once" and self.frame >= self.filled - 1 and self.filled == self.total:
            self.set_frame(0)
        self._acc = 0.0
        self._timer.start()
        self.playingChanged.emit(True)

    def pause(self) -> None:
        if self.playing:
            self._timer.stop()
            self.playingChanged.emit(False)

    def toggle(self) -> None:
        self.pause() if self.playing else self.play()

    def set_speed(self, speed: float) -> None:
        if speed > 0 and speed != self.speed:
            self.speed = float(speed)
            self.settingsChanged.emit()

    def set_loop(self, mode: str) -> None:
        if mode not in LOOP_MODES:
            raise ValueError(f"loop mode must be one of {LOOP_MODES}")
        if mode != self.loop:
            self.loop = mode
            if mode != "bounce":
                self._direction = 1      # only bounce plays backwards
            self.settingsChanged.emit()

    @Slot()
    def _tick(self) -> None:
        self._acc += self.speed
        k = int(self._acc)
        if k == 0:
            return
        self._acc -= k
        self.advance(k)

    def advance(self, k: int) -> None:
        """Move k frames in the playing direction, honouring the loop mode.
        While a roll-out is still filling, playback waits at its end."""
        last = self.filled - 1
        still_filling = self.filled < self.total
        f = self.frame + self._direction * k
        if f > last:
            if still_filling:
                f = last
            elif self.loop == "loop":
                f = f % (last + 1) if last > 0 else 0
            elif self.loop == "bounce":
                f = max(0, 2 * last - f)
                self._direction = -1
            else:
                f = last
                self.set_frame(f)
                self.pause()
                return
        elif f < 0:
            if self.loop == "bounce":
                f = min(last, -f)
                self._direction = 1
            else:
                f = 0
        self.set_frame(f)
