"""pyqtgraph plots that follow the timeline with a cursor.

:class:`TimePlot` is a PlotWidget with named curves and a vertical cursor at
the current time. The studio uses four of them:

* ``energyPlot`` -- relative energy drift (H(t) - H(0)) / |H(0)| of the ground
  truth and of the prediction (true H along the predicted path);
* ``errorPlot`` -- roll-out position MSE against the ground truth (log scale);
* ``energyPartsPlot`` -- kinetic and potential energy of both runs;
* ``lossPlot`` -- the training loss per epoch of gradient-trained baselines
  (not on the time axis, so no cursor).
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QGraphicsItem, QWidget

TRUTH_PEN = pg.mkPen((77, 158, 250), width=2)
PRED_PEN = pg.mkPen((250, 140, 51), width=2)
TRUTH_PEN2 = pg.mkPen((77, 158, 250), width=1.5, style=pg.QtCore.Qt.DashLine)
PRED_PEN2 = pg.mkPen((250, 140, 51), width=1.5, style=pg.QtCore.Qt.DashLine)


class TimePlot(pg.PlotWidget):
    def __init__(self, title: str, ylabel: str, parent: QWidget | None = None, log_y: bool = False,
                 cursor: bool = True, xlabel: str = "time"):
        super().__init__(parent=parent, background=None)
        self.setTitle(title, size="9pt")
        pi = self.getPlotItem()
        pi.setLabel("left", ylabel)
        pi.setLabel("bottom", xlabel)
        for ax in ("left", "bottom"):
            pi.getAxis(ax).enableAutoSIPrefix(False)
        pi.showGrid(x=True, y=True, alpha=0.25)
        pi.setMenuEnabled(True)
        self.legend = pi.addLegend(offset=(-8, 8), labelTextSize="8pt", brush=(27, 32, 41, 200))
        self.log_y = log_y
        if log_y:
            pi.setLogMode(y=True)
        self.curves: dict[str, pg.PlotDataItem] = {}
        self._data: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.cursor = None
        if cursor:
            self.cursor = pg.InfiniteLine(pos=0.0, angle=90, movable=False,
                                          pen=pg.mkPen((220, 220, 220, 160), width=1))
            pi.addItem(self.cursor, ignoreBounds=True)
        self.setMinimumHeight(90)

    def add_curve(self, name: str, pen) -> None:
        item = self.plot([], [], pen=pen, name=name)
        # the cursor moves many times a second during playback: keep each
        # curve as a cached picture so that moving it does not redraw them
        item.setCacheMode(QGraphicsItem.DeviceCoordinateCache)
        self.curves[name] = item
        self._data[name] = (np.zeros(0), np.zeros(0))

    def set_curve(self, name: str, x: np.ndarray, y: np.ndarray) -> None:
        x = np.asarray(x, float)
        y = np.asarray(y, float)
        self._data[name] = (x, y)
        if self.log_y:
            y = np.where(y > 0, y, np.nan)
        self.curves[name].setData(x, y, connect="finite")

    def clear_curves(self) -> None:
        for name in self.curves:
            self.set_curve(name, np.zeros(0), np.zeros(0))
        self.getPlotItem().enableAutoRange()

    def curve_data(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The data last given to a curve (unchanged by the log scale)."""
        return self._data[name]

    def set_cursor(self, t: float) -> None:
        if self.cursor is not None:
            self.cursor.setValue(float(t))


def energy_plot() -> TimePlot:
    p = TimePlot("Relative energy drift", "(H - H₀)/|H₀|")
    p.setObjectName("energyPlot")
    p.add_curve("ground truth", TRUTH_PEN)
    p.add_curve("prediction", PRED_PEN)
    return p


def error_plot() -> TimePlot:
    p = TimePlot("Roll-out position error", "MSE", log_y=True)
    p.setObjectName("errorPlot")
    p.add_curve("position MSE", PRED_PEN)
    return p


def energy_parts_plot() -> TimePlot:
    p = TimePlot("Kinetic and potential energy", "energy")
    p.setObjectName("energyPartsPlot")
    p.add_curve("kinetic (truth)", TRUTH_PEN)
    p.add_curve("potential (truth)", TRUTH_PEN2)
    p.add_curve("kinetic (prediction)", PRED_PEN)
    p.add_curve("potential (prediction)", PRED_PEN2)
    return p


def loss_plot() -> TimePlot:
    p = TimePlot("Training loss (gradient-trained)", "loss", log_y=True, cursor=False, xlabel="epoch")
    p.setObjectName("lossPlot")
    p.add_curve("loss", pg.mkPen((180, 120, 240), width=2))
    return p
