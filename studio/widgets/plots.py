"""pyqtgraph plots that follow the timeline with a cursor.

:class:`TimePlot` is a PlotWidget with named curves and a vertical cursor at
the current time. Until a curve has data it shows what will appear there
instead of bare axes; its legend sits in the band of the title, right of
it, so it never covers a curve. The studio uses four of them:

* ``energyPlot`` -- relative energy drift (H(t) - H(0)) / |H(0)| of the ground
  truth and of the prediction (true H along the predicted path);
* ``errorPlot`` -- roll-out position MSE against the ground truth (log scale);
* ``energyPartsPlot`` -- kinetic and potential energy of both runs;
* ``lossPlot`` -- the training loss per epoch of gradient-trained baselines
  (not on the time axis, so no cursor);
* ``balancePlot`` -- the energy balance of a damped or driven system (issue
  13): H(t) - H(0) of both runs against the injected minus dissipated energy
  (:func:`energy_balance_curves`); empty for undamped, undriven systems (their
  balance is the drift).

Pens are the runs' colours of :mod:`studio.scene.palette` (the 3D views' and
the video export's).
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QPainter, QPicture, QTextOption
from PySide6.QtWidgets import QGraphicsItem, QWidget

from ..pacing import pacer
from ..scene import palette


def pen(colour, width: float = 2.0, dashed: bool = False):
    """A pyqtgraph pen of a palette colour."""
    kw = {"style": pg.QtCore.Qt.DashLine} if dashed else {}
    return pg.mkPen(palette.rgb255(colour, alpha=True), width=width, **kw)


TRUTH_PEN = pen(palette.TRUTH)
PRED_PEN = pen(palette.PREDICTION)
TRUTH_PEN2 = pen(palette.TRUTH, 1.5, dashed=True)
PRED_PEN2 = pen(palette.PREDICTION, 1.5, dashed=True)
LOSS_PEN = pen(palette.LOSS)
#: least height of the title band (the legend, two entries a row, may need more)
TITLE_ROW = 24


class GridAxis(pg.AxisItem):
    """A pyqtgraph axis whose grid lines are drawn by the plot's :class:`PlotGrid`.

    pyqtgraph's axis draws its grid by extending its tick lines across the
    whole plot: the axis's bounding box (and its cached picture) covers the
    plot area, so a range change re-caches a plot-sized picture per axis
    (two per plot), drawing its ~50 semi-transparent lines with a pen. Here
    the axis keeps its own small box (line, ticks, labels) and hands the same
    grid lines -- where its ticks are, with pyqtgraph's pen and alpha per tick
    level, from the same computation -- to the plot's one :class:`PlotGrid`
    (``gridItem``), which draws both axes' lines into one cached picture.
    """

    #: a left/right axis's text space grows by at least this many pixels
    #: beyond a label that does not fit (see :meth:`reserve_text`)
    TEXT_STEP = 12

    def __init__(self, orientation: str, **kw):
        self.gridItem = None
        self._grid_alpha = False
        self._lines = None                   # the grid lines of the current picture
        self._least_text = 0                 # the reserved text width (px)
        self._old = None                     # (picture, grid lines) last made
        super().__init__(orientation, **kw)

    # -- a stable width (left/right axes) ------------------------------------------
    def label_width(self, text: str) -> float:
        """The width of a tick label as the axis lays it out (the font and
        painter of :meth:`_build`)."""
        picture = QPicture()
        painter = QPainter(picture)
        try:
            if self.style["tickFont"]:
                painter.setFont(self.style["tickFont"])
            return painter.boundingRect(QRectF(0, 0, 100, 100), Qt.AlignCenter, text).width()
        finally:
            painter.end()

    def reserve_text(self, labels) -> None:
        """Reserve the text space of the widest of ``labels`` (the widest the
        plot's format can produce), so that the axis's width -- and with it
        the plot's layout -- does not change with the range: pyqtgraph fits
        the width to the current labels, and a new width re-lays out the
        plot, resizes the view and drops the pictures just made (labels laid
        out twice per range change). A wider label than reserved widens the
        axis by a step (:attr:`TEXT_STEP`), which it keeps."""
        self._least_text = max(self.label_width(s) for s in labels)
        self.textWidth = self._least_text
        self._updateWidth()

    def _updateMaxTextSize(self, x: int) -> None:  # noqa: N802 (pyqtgraph's name)
        if self.orientation not in ("left", "right") or not self._least_text:
            return super()._updateMaxTextSize(x)
        # only on a change of the width: pyqtgraph's own re-sets it (and drops
        # the picture) with every build
        if x > self.textWidth:
            self.textWidth = x + self.TEXT_STEP
        elif self.style["autoReduceTextSpace"] and self.textWidth > self._least_text and x < self.textWidth - 10:
            self.textWidth = max(self._least_text, x + self.TEXT_STEP)
        else:
            return None
        if self.style["autoExpandTextSpace"]:
            self._updateWidth()
        return None

    # the axis's picture (its line, ticks and labels) and the grid lines are
    # made together and dropped together (pyqtgraph sets picture = None
    # whenever the range, size, pens or fonts change). Once the axis has a
    # picture, a new one is made in a pacer turn of the axis's own
    # (studio.pacing): the turn that changes the range (new data, the
    # view's matrix, the curves drawn again) shows the previous labels and
    # grid, and the next turn lays out the labels and draws the grid -- two
    # batches of about half the work each instead of one
    @property
    def picture(self):
        return self._picture

    @picture.setter
    def picture(self, value) -> None:
        self._picture = value
        if value is None:
            self._lines = None
            if self._old is not None:
                pacer().later(self, self._rebuild)
            elif self.gridItem is not None:
                self.gridItem.update()

    def _rebuild(self) -> None:
        """The pacer turn: the axis's new picture and grid lines, drawn."""
        if self._picture is None or self._lines is None:
            self._build()
        self.update()
        if self.gridItem is not None:
            self.gridItem.update()

    def setGrid(self, grid) -> None:  # noqa: N802 (pyqtgraph's name)
        super().setGrid(grid)
        self._grid_alpha, self.grid = self.grid, False     # the box stays the axis's own
        if self.gridItem is not None:
            self.gridItem.update()

    def grid_alpha(self):
        """The grid's alpha (0-255), or False: no grid."""
        return self._grid_alpha

    def linkToView(self, view) -> None:  # noqa: N802
        super().linkToView(view)
        view.sigResized.connect(self._view_resized)

    def _view_resized(self, *_):
        if self.gridItem is not None:
            self.gridItem.prepareGeometryChange()
        self.picture = None

    def show(self) -> None:
        super().show()
        if self.gridItem is not None:
            self.gridItem.sync()

    def hide(self) -> None:
        super().hide()
        if self.gridItem is not None:
            self.gridItem.sync()

    def generateDrawSpecs(self, p):  # noqa: N802
        """pyqtgraph's specs computed with the grid on (tick lines across the
        plot, grid alpha), the tick lines kept as the grid's lines and left
        out of the axis's picture."""
        self.grid = self._grid_alpha
        try:
            specs = super().generateDrawSpecs(p)
        finally:
            self.grid = False
        if specs is None or self._grid_alpha is False:
            self._lines = []
            return specs
        axis_spec, tick_specs, text_specs = specs
        self._lines = tick_specs
        return axis_spec, [], text_specs

    def _build(self) -> None:
        """The axis's picture and the grid lines (as pyqtgraph's paint)."""
        picture = QPicture()
        painter = QPainter(picture)
        try:
            if self.style["tickFont"]:
                painter.setFont(self.style["tickFont"])
            specs = self.generateDrawSpecs(painter)
            if specs is not None:
                self.drawPicture(painter, *specs)
        finally:
            painter.end()
        self._picture = picture
        self._old = (picture, self._lines)

    def grid_lines(self) -> list:
        """The grid lines [(pen, p1, p2)] in the axis's coordinates (made
        with the axis's picture if it is out of date)."""
        if self._lines is None:
            self._build()
        return self._lines or []

    def drawn_lines(self) -> list:
        """The grid lines to draw now: the current ones, or those of the
        previous picture while the new one waits for its turn."""
        if self._lines is None and self._old is not None and pacer().pending(self):
            return self._old[1] or []
        return self.grid_lines()

    def paint(self, p, opt, widget) -> None:
        if self._picture is None or self._lines is None:
            if self._old is not None and pacer().pending(self):
                self._old[0].play(p)          # the previous picture until the axis's turn
                return
            self._build()
        self._picture.play(p)


class PlotGrid(pg.GraphicsObject):
    """The grid lines of a plot's :class:`GridAxis` es over its plot area.

    Kept as a cached picture (``DeviceCoordinateCache``): drawn once after a
    range change of either axis or a new size, copied by every other repaint
    (a curve's new data, the moving cursor). The lines are axis-aligned and
    one pixel wide, so they are filled as one-pixel rectangles: the pixels of
    pyqtgraph's non-antialiased cosmetic pen, in about half the time.
    """

    def __init__(self, axes: list[GridAxis], view):
        super().__init__()
        self.axes = list(axes)
        self.view = view
        self.paints = 0                      # tests: pictures drawn
        self.setParentItem(view.parentItem())
        self.setZValue(min(axis.zValue() for axis in self.axes))
        self.setCacheMode(QGraphicsItem.DeviceCoordinateCache)
        for axis in self.axes:
            axis.gridItem = self
        self.sync()

    def sync(self) -> None:
        """Shown while any of its axes is."""
        self.setVisible(any(axis.isVisible() for axis in self.axes))
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802
        return self.view.mapRectToItem(self, self.view.boundingRect())

    def paint(self, p, opt, widget) -> None:
        self.paints += 1
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        for axis in self.axes:
            if axis.grid_alpha() is False or not axis.isVisible():
                continue
            lines = axis.drawn_lines()
            if not lines:
                continue
            p.save()
            tr, _ok = axis.itemTransform(self)
            p.setTransform(tr, True)
            for line_pen, a, b in lines:
                if a.x() == b.x():
                    rect = QRectF(a.x() - 0.5, min(a.y(), b.y()) - 0.5, 1.0, abs(b.y() - a.y()) + 1.0)
                else:
                    rect = QRectF(min(a.x(), b.x()) - 0.5, a.y() - 0.5, abs(b.x() - a.x()) + 1.0, 1.0)
                p.fillRect(rect, line_pen.color())
            p.restore()


def empty_label(plot_item, text: str) -> pg.LabelItem:
    """The muted message centred in ``plot_item``'s view box that says what will appear there while there is
    nothing to plot (each line centred within it); shown and hidden by its plot."""
    label = pg.LabelItem(text, size="9pt", color=palette.hex_of(palette.MUTED))
    item = label.item
    item.setTextWidth(item.boundingRect().width())
    item.document().setDefaultTextOption(QTextOption(Qt.AlignCenter))
    label.setParentItem(plot_item.vb)
    label.anchor(itemPos=(0.5, 0.5), parentPos=(0.5, 0.5))
    return label


def grid_plot(**kw) -> pg.PlotWidget:
    """A PlotWidget whose left and bottom axes are :class:`GridAxis` es:
    call :func:`cache_grid` after ``showGrid``."""
    return pg.PlotWidget(axisItems={ax: GridAxis(ax) for ax in ("left", "bottom")}, **kw)


def cache_grid(plot: pg.PlotWidget) -> PlotGrid:
    """The plot's grid as one cached :class:`PlotGrid` and its axes as cached
    pictures: a repaint that changes no range (the plot moved by a layout, a
    new cursor position) copies them instead of laying out the tick labels
    and drawing the grid again."""
    pi = plot.getPlotItem()
    plot.plotGrid = PlotGrid([pi.getAxis("left"), pi.getAxis("bottom")], pi.vb)
    for ax in ("left", "bottom"):
        pi.getAxis(ax).setCacheMode(QGraphicsItem.DeviceCoordinateCache)
    return plot.plotGrid


class TimePlot(pg.PlotWidget):
    def __init__(self, title: str, ylabel: str, parent: QWidget | None = None, log_y: bool = False,
                 cursor: bool = True, xlabel: str = "time", empty_text: str = ""):
        super().__init__(parent=parent, background=None,
                         axisItems={ax: GridAxis(ax) for ax in ("left", "bottom")})
        pi = self.getPlotItem()
        self.setTitle(title, size="9pt", justify="left")
        pi.setLabel("left", ylabel)
        pi.setLabel("bottom", xlabel)
        for ax in ("left", "bottom"):
            pi.getAxis(ax).enableAutoSIPrefix(False)
        pi.showGrid(x=True, y=True, alpha=0.25)
        # both axes' grid lines: one cached picture over the plot area (see
        # GridAxis); a changed curve or a moved cursor would replay the axes'
        # label pictures (~4 ms each): each axis a cached picture too,
        # redrawn only when its range or size changes
        cache_grid(self)
        pi.setMenuEnabled(True)
        # the legend: in the title's band, at its right end, outside the plot area
        self.legend = pg.LegendItem(offset=None, labelTextSize="8pt", horSpacing=8, verSpacing=-6)
        self.legend.setParentItem(pi)
        self.legend.anchor(itemPos=(1, 0), parentPos=(1, 0), offset=(-4, 0))
        self.log_y = log_y
        if log_y:
            pi.setLogMode(y=True)
        self.curves: dict[str, pg.PlotDataItem] = {}
        self._data: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.cursor = None
        if cursor:
            self.cursor = pg.InfiniteLine(pos=0.0, angle=90, movable=False,
                                          pen=pg.mkPen(palette.rgb255(palette.CURSOR, alpha=True), width=1))
            pi.addItem(self.cursor, ignoreBounds=True)
        # what appears here, said in the middle while there is nothing to plot
        self.empty_text = empty_text
        self.emptyLabel = empty_label(pi, empty_text)
        self.setMinimumHeight(90)
        self._empty = None
        self._set_empty(True)
        #: while a roll-out streams in: the y range is held and grown with
        #: headroom instead of following every chunk (see begin_stream)
        self.streaming = False
        self._ending = False          # streaming ended, the last data not drawn yet
        self._pending: set[str] = set()
        self._held = None
        self._span = None
        self._auto_reduce = pi.getAxis("left").style["autoReduceTextSpace"]
        # a left axis as wide as the widest label of its format: a range
        # change lays the labels out once and does not re-lay out the plot
        pi.getAxis("left").reserve_text(self.LOG_LABELS if log_y else self.LINEAR_LABELS)

    #: the widest tick labels of each format (pyqtgraph's: "%g" below 0.001
    #: and from 10^4, else fixed places; a log axis: powers of ten with a
    #: mantissa at minor ticks)
    LINEAR_LABELS = ("-0.00025", "-2.5e-05", "-8.5e-05", "-0.0025", "-8888.5", "-88888", "-2.5e+05")
    LOG_LABELS = ("10⁻¹²", "5·10⁻¹²", "2·10⁻¹⁸", "10¹⁸")

    # -- curves ------------------------------------------------------------------
    def add_curve(self, name: str, pen, legend: bool = True) -> None:
        """A named curve; ``legend=False``: no legend entry of its own (see
        :meth:`add_legend_entry`)."""
        item = self.plot([], [], pen=pen)
        # the cursor moves many times a second during playback: keep each
        # curve as a cached picture so that moving it does not redraw them
        item.setCacheMode(QGraphicsItem.DeviceCoordinateCache)
        self.curves[name] = item
        self._data[name] = (np.zeros(0), np.zeros(0))
        if legend:
            self.add_legend_entry(name, pen, item)

    def add_legend_entry(self, label: str, pen, item=None) -> None:
        """A legend line (a sample of ``pen``); two entries a row, the title
        band grown to hold them."""
        self.legend.addItem(item if item is not None else pg.PlotDataItem(pen=pen), label)
        self.legend.setColumnCount(2)
        self.legend.updateSize()
        height = int(np.ceil(self.legend.boundingRect().height())) + 2
        self.getPlotItem().layout.setRowFixedHeight(0, max(TITLE_ROW, height))

    def set_curve(self, name: str, x: np.ndarray, y: np.ndarray) -> None:
        """New data for a curve (:meth:`curve_data` has them at once), drawn
        in a turn of the window's pacer of the plot's own
        (:mod:`studio.pacing`): the plot's paint -- a new range re-lays out
        its tick labels and grid -- does not share an event-loop batch with
        another plot's, a view's render or the handler that gave the data
        (a new model, a roll-out's end). Several calls before that turn are
        drawn once."""
        self._data[name] = (np.asarray(x, float), np.asarray(y, float))
        self._pending.add(name)
        pacer().later(self, self._apply_pending)

    def _apply(self, name: str) -> None:
        x, y = self._data[name]
        if self.log_y:
            y = np.where(y > 0, y, np.nan)
        self.curves[name].setData(x, y, connect="finite")

    def clear_curves(self) -> None:
        """No data: the plot says what will appear there, at once (a plot
        that is already empty is left alone)."""
        pacer().cancel(self)
        self._pending.clear()
        self._span = None
        if self.streaming or self._ending:
            self.streaming = self._ending = False
            self._narrowing(True)
        drawn = any(len(item.xData if item.xData is not None else ()) for item in self.curves.values())
        for name in self.curves:
            self._data[name] = (np.zeros(0), np.zeros(0))
            if drawn:
                self._apply(name)
        self._set_empty(True)
        pi = self.getPlotItem()
        if drawn or any(a is False for a in pi.vb.state["autoRange"]):
            pi.enableAutoRange()

    def set_time_span(self, t0: float, t1: float) -> None:
        """Fix the x range to [t0, t1] (a roll-out's whole planned span), so
        that the bottom axis keeps its ticks while the curves grow; the y
        range still follows the data."""
        pi = self.getPlotItem()
        pi.enableAutoRange(x=False)
        pi.setXRange(t0, t1, padding=0.02)

    # -- streaming ------------------------------------------------------------------
    #: headroom added beyond the data when the held y range must grow (a
    #: fraction of the data's span; decades on a log axis)
    HEADROOM = 0.5

    def begin_stream(self, span: tuple[float, float] | None = None) -> None:
        """A roll-out streams in (its planned time ``span``, if known). Until
        :meth:`end_stream`, new data are drawn one plot per turn of the
        window's pacer (:mod:`studio.pacing`: a plot's paint does not share a
        batch with a view's render or another plot's), the x range is the
        whole span, the y range is held and grown with headroom only when the
        data leave it, and the left axis widens but does not narrow: a chunk
        of new data redraws the curves, not the axes (an axis redraws its tick
        labels with every range change, and a new width re-lays out the
        plot; the grid is a light item of its own, see GridAxis)."""
        self.streaming, self._ending = True, False
        self._held = None
        self._span = span
        self._pending.update(self.curves)
        pacer().later(self, self._apply_pending)

    def end_stream(self) -> None:
        """The roll-out is complete: in the plot's next pacer turn, its last
        data and the y range back on auto-range (the final picture is the
        auto-ranged plot's, as without streaming)."""
        if not self.streaming:
            return
        self.streaming, self._ending = False, True
        pacer().later(self, self._apply_pending)

    @property
    def drawing_pending(self) -> bool:
        """Whether data given to the plot wait for its pacer turn."""
        return pacer().pending(self)

    def _apply_pending(self) -> None:
        """The plot's pacer turn: draw the waiting data (see set_curve and
        begin_stream)."""
        pi = self.getPlotItem()
        if self._span is not None:
            t0, t1 = self._span
            self._span = None
            if t1 > t0:
                self.set_time_span(t0, t1)
        if self.streaming and self._held is None:
            pi.enableAutoRange(y=False)
            self._narrowing(False)
        for name in [n for n in self.curves if n in self._pending]:
            self._apply(name)
        self._pending.clear()
        self._set_empty(self.is_empty())
        if self.streaming:
            self._hold_y_range()
        elif self._ending:
            self._ending = False
            self._narrowing(True)
            pi.enableAutoRange(y=True)

    def _narrowing(self, on: bool) -> None:
        """Whether the left axis may narrow to shorter tick labels (pyqtgraph's
        own choice, restored) or only widen (while streaming). Read when
        the axis next lays out its labels; set without redrawing it."""
        self.getPlotItem().getAxis("left").style["autoReduceTextSpace"] = self._auto_reduce if on else False

    def _y_bounds(self) -> tuple[float, float] | None:
        """The data's y extent in view units (log10 on a log axis)."""
        lo, hi = np.inf, -np.inf
        for _x, y in self._data.values():
            if self.log_y:
                y = y[y > 0]
                y = np.log10(y) if len(y) else y
            y = y[np.isfinite(y)]
            if len(y):
                lo, hi = min(lo, float(y.min())), max(hi, float(y.max()))
        return (lo, hi) if lo < hi else None

    def _hold_y_range(self) -> None:
        """Keep the y range while it holds the data; else grow it with headroom."""
        b = self._y_bounds()
        if b is None:                 # no data, or a single value: nothing to range yet
            return
        lo, hi = b
        held = self._held
        if held is not None and held[0] <= lo and hi <= held[1]:
            return
        pad = self.HEADROOM * (hi - lo)
        if self.log_y:
            pad = max(pad, 1.0)                  # at least a decade
        if held is not None:                     # only grow, on the side the data left
            lo = held[0] if held[0] <= lo else lo - pad
            hi = held[1] if hi <= held[1] else hi + pad
        else:
            lo, hi = lo - pad, hi + pad
        self._held = (lo, hi)
        self.getPlotItem().setYRange(lo, hi, padding=0)

    def curve_data(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The data last given to a curve (unchanged by the log scale)."""
        return self._data[name]

    def set_cursor(self, t: float) -> None:
        if self.cursor is not None:
            self.cursor.setValue(float(t))

    # -- empty state ----------------------------------------------------------------
    def is_empty(self) -> bool:
        """Whether no curve has anything to draw."""
        return not any(len(x) for x, _ in self._data.values())

    @property
    def showing_empty_text(self) -> bool:
        return self.emptyLabel.isVisible()

    def _set_empty(self, empty: bool) -> None:
        """Empty: the message instead of axes, grid, legend and cursor (only
        on a change: showing or hiding an axis re-lays out the plot)."""
        if empty == self._empty:
            return
        self._empty = empty
        pi = self.getPlotItem()
        self.emptyLabel.setVisible(empty and bool(self.empty_text))
        for ax in ("left", "bottom"):
            pi.showAxis(ax, not empty)
        self.legend.setVisible(not empty)
        if self.cursor is not None:
            self.cursor.setVisible(not empty)


def energy_plot() -> TimePlot:
    p = TimePlot("Relative energy drift", "(H - H₀)/|H₀|",
                 empty_text="Energy drift of ground truth and prediction<br>appears here after a roll-out")
    p.setObjectName("energyPlot")
    p.add_curve("ground truth", TRUTH_PEN)
    p.add_curve("prediction", PRED_PEN)
    return p


def error_plot() -> TimePlot:
    p = TimePlot("Roll-out position error", "MSE", log_y=True,
                 empty_text="Position error of the prediction against<br>the ground truth appears here "
                            "after training")
    p.setObjectName("errorPlot")
    p.add_curve("position MSE", PRED_PEN)
    return p


def energy_parts_plot() -> TimePlot:
    p = TimePlot("Kinetic and potential energy", "energy",
                 empty_text="Kinetic and potential energy of both runs<br>appear here after a roll-out")
    p.setObjectName("energyPartsPlot")
    p.add_curve("kinetic (truth)", TRUTH_PEN, legend=False)
    p.add_curve("potential (truth)", TRUTH_PEN2, legend=False)
    p.add_curve("kinetic (prediction)", PRED_PEN, legend=False)
    p.add_curve("potential (prediction)", PRED_PEN2, legend=False)
    # colour tells the run, the line style the kind of energy: four short entries
    p.add_legend_entry("truth", TRUTH_PEN)
    p.add_legend_entry("prediction", PRED_PEN)
    p.add_legend_entry("kinetic", pen(palette.AXIS, 1.5))
    p.add_legend_entry("potential", pen(palette.AXIS, 1.5, dashed=True))
    return p


def loss_plot() -> TimePlot:
    p = TimePlot("Training loss (gradient-trained)", "loss", log_y=True, cursor=False, xlabel="epoch",
                 empty_text="The training loss per epoch of a gradient-trained<br>"
                            "model appears here (RF-HGN has none: one linear solve)")
    p.setObjectName("lossPlot")
    p.add_curve("loss", LOSS_PEN)
    return p


def balance_plot() -> TimePlot:
    p = TimePlot("Energy balance (damped / driven)", "energy",
                 empty_text="Energy balance of a damped or driven system:<br>H(t) − H(0) against the injected "
                            "minus dissipated<br>energy appears here after a roll-out (set damping or<br>"
                            "driving in the System tab, then Build and Train)")
    p.setObjectName("balancePlot")
    # the dashed net inflow drawn over the solid H - H0 (where the balance closes they coincide)
    p.add_curve("H - H0 (truth)", TRUTH_PEN, legend=False)
    p.add_curve("H - H0 (prediction)", PRED_PEN, legend=False)
    p.add_curve("injected - dissipated (truth)", TRUTH_PEN2, legend=False)
    p.add_curve("injected - dissipated (prediction)", PRED_PEN2, legend=False)
    p.add_legend_entry("truth", TRUTH_PEN)
    p.add_legend_entry("prediction", PRED_PEN)
    p.add_legend_entry("H − H₀", pen(palette.AXIS, 1.5))
    p.add_legend_entry("in − out", pen(palette.AXIS, 1.5, dashed=True))
    return p


def energy_balance_curves(system, t: np.ndarray, p: np.ndarray, kinetic: np.ndarray, potential: np.ndarray):
    """(H(t) - H(0), injected - dissipated energy) per saved frame of a run of ``system`` (momenta ``p``
    (T, N, d) at times ``t`` (T,)), the energies from the start by the trapezoid rule on the saved frames'
    powers F(t).v and gamma |v|^2 (core.physics.port; the integrator's per-step figures are finer: the
    difference is the quadrature's error, O(save interval^2)). None when ``system`` is neither damped nor
    driven. Vectorised over frames (it runs on the GUI thread while a roll-out streams in)."""
    from core.physics.port import port_of

    port = port_of(system)
    t = np.asarray(t, dtype=np.float64)
    if port is None or len(t) == 0:
        return None
    p = np.asarray(p, dtype=np.float64)
    m = np.asarray(system.masses, dtype=np.float64)
    v = p / m[None, :, None]
    gamma = port.gamma(system.n)
    power = -np.einsum("tij,tij,i->t", v, v, gamma)
    if port.field is not None and any(port.field):
        power += np.einsum("tij,j,i->t", v, np.asarray(port.field, dtype=np.float64), m)
    for d in port.drives:
        nodes = np.asarray(d.nodes, dtype=np.int64)
        au = d.amplitude * d.unit
        power += np.cos(d.frequency * t + d.phase) * np.einsum("tij,j->t", v[:, nodes], au)
    net = np.zeros(len(t))
    if len(t) > 1:
        net[1:] = np.cumsum(0.5 * (power[1:] + power[:-1]) * np.diff(t))
    h = np.asarray(kinetic, dtype=np.float64) + np.asarray(potential, dtype=np.float64)
    return h - h[0], net
