"""A page of the plots dock that shows one result computed on request: a
plot over a row of one action button and a one-line muted summary.

:class:`PlotPage` redraws itself when the document's result changes (a
signal carrying the new result, None for none) and follows a runner's
"running changed" signal (bool) to update its button; subclasses say what
the button does (:meth:`PlotPage.on_button`), how the button shows a
running job (:meth:`PlotPage.on_running`) and how a result is drawn
(:meth:`PlotPage.show_result`). The reference check
(:mod:`studio.widgets.reference_plot`) and the adapt-vs-scratch comparison
(:mod:`studio.widgets.adapt_plot`) are such pages.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from ..scene import palette


class PlotPage(QWidget):
    """``plot`` above a row of ``button`` (text ``button_text``, tool tip ``button_tip``, object name
    ``button_name``) and ``summary`` (a muted, selectable one-line label named ``summary_name``).
    ``changed`` (a signal of ``document`` with the new result) calls :meth:`show_result`;
    ``running_changed`` (a signal of ``jobs`` with a bool) calls :meth:`on_running`; ``current`` is
    drawn at once. ``document`` and ``jobs`` are kept as attributes for the subclasses; ``name``: the
    page's object name."""

    def __init__(self, document, jobs, plot: QWidget, button_text: str, button_tip: str, button_name: str,
                 summary_name: str, changed, running_changed, current=None, parent: QWidget | None = None,
                 name: str | None = None):
        super().__init__(parent)
        if name:
            self.setObjectName(name)
        self.document = document
        self.jobs = jobs
        self.plot = plot
        self.button = QPushButton(button_text)
        self.button.setObjectName(button_name)
        self.button.setToolTip(button_tip)
        self.button.clicked.connect(self._on_clicked)
        self.summary = QLabel("")
        self.summary.setObjectName(summary_name)
        self.summary.setStyleSheet(f"color: {palette.hex_of(palette.MUTED)};")
        self.summary.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.summary.setTextInteractionFlags(Qt.TextSelectableByMouse)
        row = QHBoxLayout()
        row.setContentsMargins(4, 0, 4, 2)
        row.addWidget(self.button)
        row.addWidget(self.summary, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.plot, 1)
        lay.addLayout(row)
        changed.connect(self.show_result)
        running_changed.connect(self.on_running)
        self.show_result(current)

    @Slot()
    def _on_clicked(self) -> None:
        self.on_button()

    def on_button(self) -> None:
        """The button was pressed (subclasses: start or cancel the job)."""
        raise NotImplementedError

    @Slot(bool)
    def on_running(self, running: bool) -> None:
        """The job started (True) or ended (False): by default the button is disabled while it runs."""
        self.button.setEnabled(not running)

    @Slot(object)
    def show_result(self, result) -> None:
        """Draw ``result`` (None: the empty state, :meth:`clear`)."""
        raise NotImplementedError

    def clear(self) -> None:
        """The empty state: no curves, no summary."""
        self.plot.clear_curves()
        self.summary.setText("")
        self.summary.setToolTip("")
