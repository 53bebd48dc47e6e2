"""The plots dock's contents: a view of the document's roll-out and the timeline.

Energy drift and roll-out position error side by side, and a third place
with pages (tabs): kinetic and potential energy, the energy balance of a
damped or driven system, a gradient-trained model's loss, the ground
truth's own error against DOP853 (:class:`~studio.widgets.reference_plot.ReferencePanel`)
and adapt vs fit from scratch (:class:`~studio.widgets.adapt_plot.AdaptPanel`).
The third place holds pages rather than a fourth plot shown and hidden:
switching pages leaves the other plots' geometry alone (showing a fourth
plot re-laid out all of them: 100-290 ms of GUI time under load).

It listens (:meth:`listen`, connected after the window's own handlers, so
that the views take a new roll-out first): a new system clears the curves;
a roll-out that starts sets each plot's x range to its planned span and
streams in (the plots get its data at most every ``PLAYBACK.plot_interval``
seconds, each drawing in a pacer turn of its own, :mod:`studio.pacing`),
and auto-ranges when it ends; the timeline's frame moves the cursors
(throttled while playing); the current model brings its page to the front
(its loss curve, or the balance of a damped system); a ground-truth check
or an adapt comparison brings its page.
"""
from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtWidgets import QSplitter, QTabWidget

from ..defaults import PLAYBACK
from ..pacing import pacer
from .adapt_plot import AdaptPanel
from .plots import balance_plot, energy_balance_curves, energy_parts_plot, energy_plot, error_plot, loss_plot
from .reference_plot import ReferencePanel


class PlotsPanel(QSplitter):
    """The plots (module notes); ``plots`` are the four that show the roll-out."""

    def __init__(self, document, jobs, time_model, parent=None):
        super().__init__(Qt.Horizontal, parent)
        self.setObjectName("plotsSplitter")
        self.document, self.jobs, self.time = document, jobs, time_model
        self.energyPlot = energy_plot()
        self.errorPlot = error_plot()
        self.partsPlot = energy_parts_plot()
        self.lossPlot = loss_plot()
        #: the energy balance of a damped or driven system (issue 13)
        self.balancePlot = balance_plot()
        self.plots = [self.energyPlot, self.errorPlot, self.partsPlot, self.balancePlot]
        #: the ground truth against the DOP853 reference
        self.referencePanel = ReferencePanel(document, jobs)
        #: adapt vs fit from scratch over k (issue 14)
        self.adaptPanel = AdaptPanel(document, jobs)
        for p in (self.energyPlot, self.errorPlot):
            self.addWidget(p)
        self.plotTabs = QTabWidget()
        self.plotTabs.setObjectName("plotTabs")
        self.plotTabs.setDocumentMode(True)
        # short tab names, so that the five fit the third of the width without scroll arrows; each page's
        # own title (and the tab's tooltip) says it in full
        for page, tab, tip in ((self.partsPlot, "Energies", "Kinetic and potential energy of both runs"),
                               (self.balancePlot, "Balance", "Energy balance of a damped or driven system"),
                               (self.lossPlot, "Loss", "Training loss of a gradient-trained model"),
                               (self.referencePanel, "Truth error",
                                "The ground truth's own error against an accurate reference (DOP853)"),
                               (self.adaptPanel, "Adapt", "Adapt vs scratch: test error against the number of "
                                                          "snapshots")):
            self.plotTabs.setTabToolTip(self.plotTabs.addTab(page, tab), tip)
        self.addWidget(self.plotTabs)
        self._cursor_time = 0.0
        self._mse = None                 # (roll-out buffer, its position MSE so far): see _position_mse
        # while a roll-out streams in, the plots get its data at most this
        # often (each then draws in a pacer turn of its own)
        self._plot_timer = QTimer(self)
        self._plot_timer.setSingleShot(True)
        self._plot_timer.setInterval(int(1000 * PLAYBACK.plot_interval))
        self._plot_timer.timeout.connect(self.update_plots)

    def listen(self) -> None:
        """Connect to the document, the jobs and the timeline (after the window's own handlers)."""
        doc, jobs = self.document, self.jobs
        doc.systemChanged.connect(self._on_system)
        doc.rolloutStarted.connect(self._on_rollout_started)
        doc.rolloutExtended.connect(self._on_rollout_extended)
        doc.rolloutFinished.connect(self._on_rollout_finished)
        doc.currentModelChanged.connect(self._on_current_model)
        self.time.frameChanged.connect(self._on_frame)
        self.time.playingChanged.connect(self._on_playing)
        jobs.checkingChanged.connect(self._show_reference_page)
        doc.referenceChanged.connect(self._show_reference_page)
        jobs.comparingChanged.connect(self._show_adapt_page)
        doc.adaptCurveChanged.connect(self._show_adapt_page)

    # -- the roll-out ----------------------------------------------------------------
    @Slot(object)
    def _on_system(self, _system) -> None:
        self._plot_timer.stop()
        for p in self.plots:
            p.clear_curves()

    @Slot(object)
    def _on_rollout_started(self, buf) -> None:
        # the plots start over, each drawn in a pacer turn of its own, with
        # the x range the roll-out's whole planned span (see TimePlot.begin_stream)
        t = np.asarray(buf.t, dtype=float)
        span = (float(t[0]), float(t[-1])) if len(t) > 1 and t[-1] > t[0] else None
        self._plot_timer.stop()
        for p in self.plots:
            p.begin_stream(span)
        self.update_plots()

    @Slot(int)
    def _on_rollout_extended(self, _n: int) -> None:
        # while a roll-out streams in, the plots get its data a few times a
        # second, the latest data when the timer fires
        if not self._plot_timer.isActive():
            self._plot_timer.start()

    @Slot(object)
    def _on_rollout_finished(self, _buf) -> None:
        self._plot_timer.stop()
        self.update_plots()
        for p in self.plots:
            p.end_stream()          # drawn, auto-ranged, in the plot's next pacer turn

    @Slot()
    def update_plots(self) -> None:
        """Give the plots the roll-out's data so far (a run the roll-out does
        not have: an empty curve). While it streams in, each plot draws them
        in a pacer turn of its own."""
        b = self.document.rollout
        if b is None:
            return
        n = b.n_filled
        t = b.t[:n]
        none = np.zeros(0)
        pred = b.with_prediction
        self.energyPlot.set_curve("ground truth", t, b.drift("truth"))
        self.energyPlot.set_curve("prediction", *((t, b.drift("prediction")) if pred else (none, none)))
        self.errorPlot.set_curve("position MSE", *((t, self._position_mse(b)) if pred else (none, none)))
        for which in ("truth", "prediction"):
            on = which == "truth" or pred
            self.partsPlot.set_curve(f"kinetic ({which})", *((t, b.kinetic[which][:n]) if on else (none, none)))
            self.partsPlot.set_curve(f"potential ({which})",
                                     *((t, b.potential[which][:n]) if on else (none, none)))
            bal = energy_balance_curves(b.system, t, b.p[which][:n], b.kinetic[which][:n],
                                        b.potential[which][:n]) if on else None
            self.balancePlot.set_curve(f"H - H0 ({which})", *((t, bal[0]) if bal else (none, none)))
            self.balancePlot.set_curve(f"injected - dissipated ({which})", *((t, bal[1]) if bal else (none, none)))

    def _position_mse(self, b) -> np.ndarray:
        """``b.position_mse()`` of the filled frames, computed for the frames
        new since the last call only (the whole error of a long roll-out,
        recomputed a few times a second while it streams in, took 5-20 ms
        of the GUI thread; filled frames do not change)."""
        from core.learning.metrics import position_mse

        n = b.n_filled
        shown, done = self._mse if self._mse is not None else (None, None)
        if shown is not b or len(done) > n:
            done = np.zeros(0)
        k = len(done)
        if k < n:
            done = np.concatenate([done, position_mse(b.q["truth"][k:n], b.q["prediction"][k:n], b.system.box)])
        self._mse = (b, done)
        return done

    # -- the timeline's cursor ---------------------------------------------------------
    @Slot(int)
    def _on_frame(self, f: int) -> None:
        now = time.perf_counter()
        if self.time.playing and now - self._cursor_time < PLAYBACK.cursor_interval:
            return
        self._cursor_time = now
        t = self.time.time(f)
        for p in self.plots:
            p.set_cursor(t)
        self.referencePanel.plot.set_cursor(t)

    @Slot(bool)
    def _on_playing(self, playing: bool) -> None:
        if not playing:
            self._cursor_time = 0.0
            self._on_frame(self.time.frame)

    # -- pages -------------------------------------------------------------------------
    @Slot(int)
    def _on_current_model(self, _index: int) -> None:
        # the plot page in a pacer turn of its own: showing the other page
        # lays it out and paints it, which should not share a batch with the
        # models table's update or the roll-out's start
        pacer().later(self.plotTabs, self.show_model_plots)

    def show_model_plots(self) -> None:
        """The current model's loss curve (gradient-trained models) on the
        third plot page, else the energies page (the balance for a damped or driven system)."""
        rec = self.document.current_model()
        if rec is not None and rec.loss is not None and len(rec.loss) > 1:
            self.lossPlot.set_curve("loss", np.arange(1, len(rec.loss) + 1), np.asarray(rec.loss))
            self.plotTabs.setCurrentWidget(self.lossPlot)
        else:
            from core.physics.port import port_of

            self.lossPlot.clear_curves()
            damped = rec is not None and port_of(rec.system) is not None
            self.plotTabs.setCurrentWidget(self.balancePlot if damped else self.partsPlot)

    def _show_reference_page(self, what) -> None:
        """A check started (True) or arrived: its page comes to the front."""
        if what is not None and what is not False:
            self.plotTabs.setCurrentWidget(self.referencePanel)

    def _show_adapt_page(self, what) -> None:
        """A comparison started (True) or arrived: its page comes to the front, in a pacer turn of its own
        (showing another page lays it out and paints it; the latest page asked for wins)."""
        if what is not None and what is not False:
            pacer().later(self.plotTabs, lambda: self.plotTabs.setCurrentWidget(self.adaptPanel))
