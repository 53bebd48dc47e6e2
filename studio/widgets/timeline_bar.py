"""The timeline bar: the scrub slider across the whole width, and below it
play/pause, step, the time, loop mode and speed.

A thin view of :class:`studio.timeline.TimeModel`: the slider's range is the
filled part of the roll-out (it grows while a background roll-out runs), the
label shows the time of the current frame. Space and the arrow keys are
window-wide shortcuts installed by the main window.
"""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Slot
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QSizePolicy, QSlider, QStyle, QToolButton,
                               QVBoxLayout, QWidget)

from ..defaults import PLAYBACK
from ..timeline import LOOP_MODES, TimeModel


class TextLine(QWidget):
    """One line of text that changes many times a second (the time, the
    frame, the roll-out's progress): painted directly, with a size that does
    not follow the text, so that a new text repaints this line alone. (A
    QLabel asks its parent to lay out again with every new text: 10-25 ms of
    the GUI thread on a busy machine, with each chunk of a roll-out and each
    frame of playback.) Too long a text is elided at the right."""

    #: the text the width asks for
    SAMPLE = "t = 10.000 / 10   frame 1000/1000   (computing 99%)"

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._text = ""
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)

    def text(self) -> str:
        return self._text

    def setText(self, text: str) -> None:  # noqa: N802 (QLabel's name)
        if text != self._text:
            self._text = text
            self.update()

    def sizeHint(self) -> QSize:  # noqa: N802
        fm = self.fontMetrics()
        return QSize(fm.horizontalAdvance(self.SAMPLE) + 8, fm.height() + 4)

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(150, self.fontMetrics().height() + 4)

    def paintEvent(self, ev):  # noqa: N802
        p = QPainter(self)
        p.setPen(self.palette().windowText().color())
        r = self.rect().adjusted(2, 0, -2, 0)
        p.drawText(r, Qt.AlignLeft | Qt.AlignVCenter, self.fontMetrics().elidedText(self._text, Qt.ElideRight,
                                                                                    r.width()))
        p.end()


class TimelineBar(QWidget):
    def __init__(self, model: TimeModel, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        st = self.style()

        def button(name, icon, tip, slot):
            b = QToolButton(self)
            b.setObjectName(name)
            b.setIcon(st.standardIcon(icon))
            b.setToolTip(tip)
            b.setAutoRaise(True)
            b.clicked.connect(slot)
            return b

        self.firstButton = button("firstButton", QStyle.SP_MediaSkipBackward, "First frame (Home)", model.first)
        self.backButton = button("stepBackButton", QStyle.SP_MediaSeekBackward, "Step back (Left)",
                                 lambda: model.step(-1))
        self.playButton = button("playButton", QStyle.SP_MediaPlay, "Play / pause (Space)", model.toggle)
        self.fwdButton = button("stepButton", QStyle.SP_MediaSeekForward, "Step forward (Right)",
                                lambda: model.step(1))
        self.lastButton = button("lastButton", QStyle.SP_MediaSkipForward, "Last frame (End)", model.last)
        self.slider = QSlider(Qt.Horizontal, self)
        self.slider.setObjectName("timelineSlider")
        self.slider.setToolTip("Scrub through time")
        self.slider.setRange(0, 0)
        self.slider.valueChanged.connect(model.set_frame)
        self.timeLabel = TextLine(self)
        self.timeLabel.setObjectName("timeLabel")
        self.loopCombo = QComboBox(self)
        self.loopCombo.setObjectName("loopCombo")
        self.loopCombo.addItems(list(LOOP_MODES))
        self.loopCombo.setCurrentText(model.loop)
        self.loopCombo.setToolTip("At the end: stop (once), start again (loop) or play backwards (bounce)")
        self.loopCombo.currentTextChanged.connect(model.set_loop)
        self.speedCombo = QComboBox(self)
        self.speedCombo.setObjectName("speedCombo")
        for s in PLAYBACK.speeds:
            self.speedCombo.addItem(f"{s:g}×", s)
        self.speedCombo.setCurrentIndex(list(PLAYBACK.speeds).index(model.speed)
                                        if model.speed in PLAYBACK.speeds else 2)
        self.speedCombo.setToolTip("Playback speed (saved frames per tick)")
        self.speedCombo.currentIndexChanged.connect(lambda i: model.set_speed(self.speedCombo.itemData(i)))

        # the slider has a row of its own, as wide as the views; the controls below it
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 2, 4, 2)
        outer.setSpacing(0)
        outer.addWidget(self.slider)
        lay = QHBoxLayout()
        lay.setContentsMargins(0, 0, 0, 0)
        for w in (self.firstButton, self.backButton, self.playButton, self.fwdButton, self.lastButton):
            lay.addWidget(w)
        lay.addWidget(self.timeLabel, 1)
        lay.addWidget(QLabel("Loop"))
        lay.addWidget(self.loopCombo)
        lay.addWidget(QLabel("Speed"))
        lay.addWidget(self.speedCombo)
        outer.addLayout(lay)

        model.frameChanged.connect(self._on_frame)
        model.rangeChanged.connect(self._on_range)
        model.playingChanged.connect(self._on_playing)
        model.settingsChanged.connect(self._on_settings)
        self._on_range(model.filled, model.total)

    @Slot(int)
    def _on_frame(self, f: int) -> None:
        if self.slider.value() != f:
            self.slider.blockSignals(True)
            self.slider.setValue(f)
            self.slider.blockSignals(False)
        self._update_label()

    @Slot(int, int)
    def _on_range(self, filled: int, total: int) -> None:
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(filled - 1, 0))
        self.slider.setValue(self.model.frame)
        self.slider.blockSignals(False)
        self._update_label()

    def _update_label(self) -> None:
        m = self.model
        t_end = m.time(m.total - 1)
        text = f"t = {m.time():.3f} / {t_end:.3g}   frame {m.frame + 1}/{m.total}"
        if m.filled < m.total:
            text += f"   (computing {100 * m.filled // max(m.total, 1)}%)"
        self.timeLabel.setText(text)

    @Slot(bool)
    def _on_playing(self, playing: bool) -> None:
        self.playButton.setIcon(self.style().standardIcon(QStyle.SP_MediaPause if playing else QStyle.SP_MediaPlay))

    @Slot()
    def _on_settings(self) -> None:
        self.loopCombo.blockSignals(True)
        self.loopCombo.setCurrentText(self.model.loop)
        self.loopCombo.blockSignals(False)
        idx = self.speedCombo.findData(self.model.speed)
        if idx >= 0:
            self.speedCombo.blockSignals(True)
            self.speedCombo.setCurrentIndex(idx)
            self.speedCombo.blockSignals(False)
