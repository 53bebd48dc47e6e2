"""Adapt vs fit from scratch (issue 14): test derivative error against the
number of snapshots k, log-log, for the selected model adapted to the
current system (its hidden layers kept, the output layer solved on the
first k training snapshots, regularisation by core's rule) and for fits from scratch with the same
settings on the same k snapshots.

:class:`AdaptPanel` is a page of the plots dock. The comparison runs only
when asked (its button), in a worker (:meth:`studio.jobs.Jobs.compare_adapt`,
studio.pipeline.adapt_curve_job); the button cancels it while it runs. The
result lives in the document (:attr:`studio.document.Document.adapt_curve`,
saved with the project); a new system drops it.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Slot
from PySide6.QtWidgets import QWidget

from ..jobs import describe_curve
from ..scene import palette
from .plot_page import PlotPage
from .plots import TimePlot, pen

#: the curves: (name, pen, symbol)
CURVES = (("adapt", pen(palette.PREDICTION), "o"), ("fit from scratch", pen(palette.TRUTH, 2.0, dashed=True), "s"))
EMPTY_TEXT = ("Test error against the number of snapshots k, adapting<br>the selected model to this system "
              "versus fitting from scratch,<br>appears here: press “Compare adapt vs scratch”")
BUTTON_TEXT = "Compare adapt vs scratch"
CANCEL_TEXT = "Cancel the comparison"
BUTTON_TIP = ("On the current system's training data (the Train tab's data settings): for k = 1, 2, 5, 10, 20, "
              "50, ... up to every training snapshot, adapt the selected model (its sampled hidden layers kept, "
              "the output layer solved on the first k snapshots) and fit a model from scratch with its "
              "settings on the same k snapshots; plot both test derivative errors. Runs in the background.")


def adapt_curve_plot() -> TimePlot:
    p = TimePlot("Adapt vs fit from scratch", "test MSE", log_y=True, cursor=False, xlabel="snapshots k",
                 empty_text=EMPTY_TEXT)
    p.setObjectName("adaptCurvePlot")
    p.getPlotItem().setLogMode(x=True, y=True)
    for name, curve_pen, symbol in CURVES:
        p.add_curve(name, curve_pen)
        item = p.curves[name]
        item.setSymbol(symbol)
        item.setSymbolSize(6)
        item.setSymbolPen(curve_pen)
        item.setSymbolBrush(pg.mkBrush(curve_pen.color()))
    p.setToolTip("test derivative MSE on the held-out snapshots of the current system's data; "
                 "both axes logarithmic")
    return p


class AdaptPanel(PlotPage):
    """The adapt-vs-scratch plot, its button and a one-line summary."""

    def __init__(self, document, jobs, parent: QWidget | None = None):
        super().__init__(document, jobs, adapt_curve_plot(), BUTTON_TEXT, BUTTON_TIP, "compareAdaptButton",
                         "adaptSummary", document.adaptCurveChanged, jobs.comparingChanged, document.adapt_curve,
                         parent, name="adaptPanel")
        self.compareButton = self.button

    def on_button(self) -> None:
        if self.jobs.is_comparing():
            self.jobs.cancel_compare()
        else:
            self.request()

    def request(self) -> bool:
        """Compare for the current model (False, with a message, when it cannot)."""
        return self.jobs.compare_adapt()

    @Slot(bool)
    def on_running(self, running: bool) -> None:
        self.compareButton.setText(CANCEL_TEXT if running else BUTTON_TEXT)

    @Slot(object)
    def show_curve(self, curve) -> None:
        """Plot a comparison (studio.document.check_adapt_curve's dict; None: the empty state)."""
        if curve is None:
            self.plot.getPlotItem().getAxis("bottom").setTicks(None)
            self.clear()
            return
        k = np.asarray(curve["k"], dtype=float)
        # the k of the comparison as the bottom axis's labels (pyqtgraph's minor log labels crowd each other)
        self.plot.getPlotItem().getAxis("bottom").setTicks([[(float(np.log10(x)), f"{x:g}") for x in k], []])
        for (name, _, _), key in zip(CURVES, ("adapt", "scratch")):
            y = np.array([np.nan if v is None else v for v in curve[key]], dtype=float)
            self.plot.set_curve(name, k, y)
        self.summary.setText(describe_curve(curve).split(": ", 1)[-1])
        times = [t for t in curve.get("adapt_time", []) if t is not None]
        tip = (f"{curve.get('model', '')} adapted to {curve.get('system', '')}: {curve.get('n_train')} training "
               f"snapshots, error on {curve.get('n_test')} {curve.get('test_on', 'held-out snapshots')}")
        if times:
            tip += f"; adapt took {1e3 * min(times):.3g}-{1e3 * max(times):.3g} ms"
        if curve.get("notes"):
            tip += "\n" + "\n".join(curve["notes"])
        self.summary.setToolTip(tip)

    show_result = show_curve
