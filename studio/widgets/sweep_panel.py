"""The Sweep panel (issue 15): a grid over fit settings and system sizes from
the current system and settings, run in the background, its results filling
a table and a Pareto plot as points finish; a picked point becomes a model.

The grid fields are prefilled from the current settings (studio.sweeps.form_texts:
each field its current value; "From current settings" fills them again); every
combination is a point of core.cluster.sweep (each simulates its own data on a
system core can build from the generator kind and n, fits, measures the test
error, a roll-out against ground truth and its energy drift). The engine: this
job's worker process (no Dask, the default), a LocalCluster of N worker
processes, or a Dask scheduler's address (docs/cluster.md). Results go to the
sweep's JSON (and CSV) at the path shown -- running the same grid again skips
finished points -- and into the document (saved with the project; marked stale
when the system changes). The Pareto plot: fit time against test error, both
logarithmic, coloured by a chosen setting (legend), the front drawn.
Selecting a point (row or marker) and "Make model" fits its settings on the
current system's data (Jobs.make_sweep_model: an undoable model with lineage
"from sweep point <key>").
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.errors import HGNError

from .. import sweeps
from ..pacing import pacer
from ..scene import palette
from .plots import empty_label, pen

#: the Pareto plot's message while no point has finished
EMPTY_TEXT = "Each finished sweep point appears here:<br>its fit time against its test error"

#: the engines offered: (pipeline.SWEEP_ENGINES key, label)
ENGINES = (("process", "This computer, one worker (no Dask)"), ("local", "Local Dask cluster"),
           ("scheduler", "Dask scheduler (address)"))
#: result columns of the table: (record result key, header, format)
RESULTS = (("fit_s", "fit s", "{:.3g}"), ("test_mse", "test MSE", "{:.3g}"),
           ("rollout_final_mse", "roll-out MSE", "{:.3g}"), ("rollout_max_drift", "drift", "{:.3g}"))
#: colours of the setting values (a few distinct ones; more values: viridis)
COLOURS = ("#4d9efa", "#fa8c33", "#78c878", "#e05a7a", "#b478f0", "#f0d35a", "#5ad2d2", "#c8a078")
RUN_TEXT = "Run sweep"
CANCEL_TEXT = "Cancel sweep"


def _fmt(v, form="{:.3g}") -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return form.format(v)
    return str(v)


class SweepPanel(QWidget):
    """Grid fields, engine, Run/Cancel, the results table and the Pareto plot (module notes)."""

    #: the picked point changed (its key, "" for none)
    pointPicked = Signal(str)

    def __init__(self, document, jobs, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("sweepPanel")
        self.document = document
        self.jobs = jobs
        #: the folder a new sweep's JSON goes to by default (set by the window: the project's folder)
        self.default_folder = lambda: None
        self._records: list[dict] = []
        self._picked = ""
        self._colour_axis = "node_width"

        # -- the grid -----------------------------------------------------------
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        self.fields: dict[str, QLineEdit] = {}
        for name, label, kind in sweeps.AXES:
            e = QLineEdit()
            e.setObjectName(f"sweep_{name}")
            e.setToolTip({int: "whole numbers separated by commas" + (", or a range 0-3" if name == "seed" else "")
                          + "; for a random search also a range lo:hi (lo:hi:log, lo:hi:uniform) to draw from",
                          float: "numbers separated by commas, e.g. 1e-12, 1e-8; for a random search also a "
                                 "range lo:hi (log-uniform unless :uniform), e.g. 1e-14:1e-6",
                          str: "swim, elm (separated by commas)"}[kind])
            e.editingFinished.connect(self._update_count)
            self.fields[name] = e
            form.addRow(label, e)
        #: random search: this many points drawn from the fields' values and ranges (0: the whole grid)
        self.randomSpin = QSpinBox()
        self.randomSpin.setObjectName("sweepRandomPoints")
        self.randomSpin.setRange(0, sweeps.MAX_POINTS)
        self.randomSpin.setSpecialValueText("off (every combination)")
        self.randomSpin.setToolTip("Random search: draw this many points, each field one of its values or a "
                                   "value of its range lo:hi; off: every combination of the listed values")
        self.randomSeedSpin = QSpinBox()
        self.randomSeedSpin.setObjectName("sweepRandomSeed")
        self.randomSeedSpin.setRange(0, 2 ** 31 - 1)
        self.randomSeedSpin.setToolTip("the random search's draws (the same seed draws the same points)")
        self.randomSpin.valueChanged.connect(self._update_count)
        self.randomSeedSpin.valueChanged.connect(self._update_count)
        rrow = QHBoxLayout()
        rrow.addWidget(self.randomSpin, 1)
        rrow.addWidget(QLabel("seed"))
        rrow.addWidget(self.randomSeedSpin)
        form.addRow("Random points", rrow)
        self.fillButton = QPushButton("From current settings")
        self.fillButton.setObjectName("sweepFillButton")
        self.fillButton.setToolTip("Fill the grid with the current system's n and the Train tab's RF-HGN settings")
        self.fillButton.clicked.connect(self.fill_from_document)
        self.engineCombo = QComboBox()
        self.engineCombo.setObjectName("sweepEngine")
        for key, label in ENGINES:
            self.engineCombo.addItem(label, key)
        self.workersSpin = QSpinBox()
        self.workersSpin.setObjectName("sweepWorkers")
        self.workersSpin.setRange(1, 256)
        self.workersSpin.setValue(2)
        self.workersSpin.setToolTip("worker processes of the local Dask cluster (one thread each)")
        self.schedulerEdit = QLineEdit()
        self.schedulerEdit.setObjectName("sweepScheduler")
        self.schedulerEdit.setPlaceholderText("tcp://host:8786")
        self.engineCombo.currentIndexChanged.connect(self._update_engine)
        form.addRow("Engine", self.engineCombo)
        form.addRow("Workers", self.workersSpin)
        form.addRow("Scheduler", self.schedulerEdit)
        self.outEdit = QLineEdit()
        self.outEdit.setObjectName("sweepOut")
        self.outEdit.setToolTip("the sweep's results (JSON; the CSV is written beside it). Running a grid again "
                                "with the same file skips the points it holds.")
        browse = QToolButton()
        browse.setText("…")
        browse.clicked.connect(self._browse)
        out_row = QHBoxLayout()
        out_row.addWidget(self.outEdit, 1)
        out_row.addWidget(browse)
        form.addRow("Results file", out_row)
        self.runButton = QPushButton(RUN_TEXT)
        self.runButton.setObjectName("sweepRunButton")
        self.runButton.clicked.connect(self._on_run_button)
        self.countLabel = QLabel("")
        self.countLabel.setObjectName("sweepCount")
        self.countLabel.setWordWrap(True)
        self.notesLabel = QLabel("")
        self.notesLabel.setObjectName("sweepNotes")
        self.notesLabel.setWordWrap(True)
        self.notesLabel.setStyleSheet(f"color: {palette.hex_of(palette.MUTED)};")
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(4, 2, 4, 2)
        ll.addLayout(form)
        row = QHBoxLayout()
        row.addWidget(self.fillButton)
        row.addWidget(self.runButton)
        ll.addLayout(row)
        ll.addWidget(self.countLabel)
        ll.addWidget(self.notesLabel)
        ll.addStretch(1)
        left.setMinimumWidth(280)
        # the grid's form scrolls, so the Sweep dock (tabbed with the plots) does not raise the
        # window's minimum height above what a 1366x768 screen holds
        leftScroll = QScrollArea()
        leftScroll.setObjectName("sweepGridScroll")
        leftScroll.setWidget(left)
        leftScroll.setWidgetResizable(True)
        leftScroll.setFrameShape(QFrame.NoFrame)
        leftScroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        leftScroll.setMinimumWidth(300)

        # -- the table --------------------------------------------------------------
        self.table = QTableWidget(0, 0)
        self.table.setObjectName("sweepTable")
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.itemSelectionChanged.connect(self._on_table_selection)
        self.makeButton = QPushButton("Make model")
        self.makeButton.setObjectName("sweepMakeButton")
        self.makeButton.setToolTip("Fit the picked point's settings on the current system's data (Train tab's "
                                   "data settings) and add the model to the table")
        self.makeButton.setEnabled(False)
        self.makeButton.clicked.connect(self.make_model)
        self.statusLabel = QLabel("")
        self.statusLabel.setObjectName("sweepStatus")
        self.statusLabel.setStyleSheet(f"color: {palette.hex_of(palette.MUTED)};")
        mid = QWidget()
        ml = QVBoxLayout(mid)
        ml.setContentsMargins(0, 0, 0, 0)
        ml.addWidget(self.table, 1)
        brow = QHBoxLayout()
        brow.addWidget(self.makeButton)
        brow.addWidget(self.statusLabel, 1)
        ml.addLayout(brow)

        # -- the Pareto plot ----------------------------------------------------------
        self.plot = pg.PlotWidget(background=palette.hex_of(palette.BACKGROUND))
        self.plot.setObjectName("sweepPlot")
        pi = self.plot.getPlotItem()
        pi.setLogMode(x=True, y=True)
        pi.setLabel("bottom", "fit time (s)")
        pi.setLabel("left", "test MSE")
        pi.setTitle("Fit time against test error", size="9pt", justify="left")  # as the other plots
        pi.showGrid(x=True, y=True, alpha=0.2)
        for side in ("bottom", "left"):            # log axes: no "(x0.001)" rescaling of the decades
            pi.getAxis(side).enableAutoSIPrefix(False)
        self.frontItem = pg.PlotDataItem(pen=pen(palette.MUTED, 1.5, dashed=True))
        pi.addItem(self.frontItem)
        self.pickItem = pg.PlotDataItem(pen=None, symbol="o", symbolSize=16, symbolBrush=None,
                                        symbolPen=pg.mkPen(palette.hex_of(palette.SELECTION), width=2))
        pi.addItem(self.pickItem)
        #: what appears here, shown instead of bare axes until a point has finished
        self.emptyLabel = empty_label(pi, EMPTY_TEXT)
        self._empty = None
        self._set_empty(True)
        self._scatter: list[pg.PlotDataItem] = []
        self._items: dict[str, pg.PlotDataItem] = {}       # legend name -> its markers (reused)
        self._shown: tuple = ((), ())                       # the table's (heads, keys)
        self.colourCombo = QComboBox()
        self.colourCombo.setObjectName("sweepColourBy")
        for name, label, _kind in sweeps.AXES:
            self.colourCombo.addItem(label.rstrip("s").replace("Regularisation", "regularisation"), name)
        self.colourCombo.currentIndexChanged.connect(self._on_colour)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        crow = QHBoxLayout()
        crow.addWidget(QLabel("Colour by"))
        crow.addWidget(self.colourCombo, 1)
        rl.addLayout(crow)
        #: the colours' legend, above the plot (inside it, it would hide points)
        self.legendLabel = QLabel("")
        self.legendLabel.setObjectName("sweepLegend")
        self.legendLabel.setWordWrap(True)
        rl.addWidget(self.legendLabel)
        rl.addWidget(self.plot, 1)

        split = QSplitter(Qt.Horizontal)
        split.setObjectName("sweepSplitter")
        split.addWidget(leftScroll)
        split.addWidget(mid)
        split.addWidget(right)
        split.setStretchFactor(1, 3)
        split.setStretchFactor(2, 2)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(split)

        document.sweepChanged.connect(self.show_sweep)
        document.sweepRecordAdded.connect(self._on_record)
        document.systemChanged.connect(lambda *_a: self._update_count())
        jobs.sweepingChanged.connect(self._on_sweeping)
        jobs.runningChanged.connect(lambda *_a: self._update_make())
        self._update_engine()
        self.fill_from_document()
        self.show_sweep(document.sweep)

    # ------------------------------------------------------------------
    # the grid
    # ------------------------------------------------------------------
    @Slot()
    def fill_from_document(self) -> None:
        """Each grid field its current value (the current n, the Train tab's RF-HGN settings)."""
        try:
            texts = sweeps.form_texts(self.document)
        except HGNError:
            return
        for name, text in texts.items():
            self.fields[name].setText(text)
        if not self.outEdit.text():
            self.outEdit.setText(str(self.default_path()))
        self._update_count()

    def default_path(self) -> Path:
        folder = self.default_folder()
        if folder is None:
            folder = Path.home() / "hgn-sweeps"
        return Path(folder) / "sweep.json"

    def texts(self) -> dict[str, str]:
        return {name: e.text() for name, e in self.fields.items()}

    def set_texts(self, **texts) -> None:
        """Type into the grid fields (tests, scripts): {axis: text}."""
        for name, text in texts.items():
            self.fields[name].setText(str(text))
        self._update_count()

    def set_random(self, points: int, seed: int = 0) -> None:
        """Random search of ``points`` points (0: the grid) drawn with ``seed`` (tests, scripts)."""
        self.randomSeedSpin.setValue(int(seed))
        self.randomSpin.setValue(int(points))

    def points(self) -> list[dict]:
        """The sweep's points on the current system and settings: the grid (core.cluster.sweep.grid) or,
        with Random points above 0, a random search (core.cluster.sweep.random_points); HGNError names a
        bad field."""
        base, _notes = sweeps.base_point(self.document)
        return sweeps.grid_points(self.texts(), base, self.randomSpin.value(), self.randomSeedSpin.value())

    @Slot()
    def _update_count(self) -> None:
        try:
            # counted, not made (making thousands of points takes a second of the GUI thread per edit)
            n = sweeps.count_points(self.texts(), self.randomSpin.value())
            _base, notes = sweeps.base_point(self.document)
            drawn = " drawn at random (repeats dropped)" if self.randomSpin.value() else ""
            self.countLabel.setText(f"{n} point{'s' if n != 1 else ''}{drawn}")
            self.countLabel.setStyleSheet("")
        except HGNError as exc:
            notes = []
            self.countLabel.setText(str(exc))
            self.countLabel.setStyleSheet(f"color: {palette.hex_of(palette.ERROR)};")
        self.notesLabel.setText("\n".join(notes))

    @Slot()
    def _update_engine(self) -> None:
        key = self.engineCombo.currentData()
        self.workersSpin.setEnabled(key == "local")
        self.schedulerEdit.setEnabled(key == "scheduler")

    def set_engine(self, key: str, workers: int | None = None, scheduler: str | None = None) -> None:
        self.engineCombo.setCurrentIndex(self.engineCombo.findData(key))
        if workers is not None:
            self.workersSpin.setValue(int(workers))
        if scheduler is not None:
            self.schedulerEdit.setText(scheduler)

    @Slot()
    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Sweep results", self.outEdit.text() or str(self.default_path()),
                                              "Sweep results (*.json)", options=QFileDialog.DontConfirmOverwrite)
        if path:
            self.outEdit.setText(path if path.lower().endswith(".json") else path + ".json")

    # ------------------------------------------------------------------
    # running
    # ------------------------------------------------------------------
    @Slot()
    def _on_run_button(self) -> None:
        if self.jobs.is_sweeping():
            self.jobs.cancel_sweep()
        else:
            self.run()

    def run(self) -> bool:
        """Start the sweep of the grid (False, with a message, when it cannot)."""
        try:
            pts = self.points()
        except HGNError as exc:
            self.jobs.failed.emit(str(exc), "")
            return False
        out = self.outEdit.text().strip() or str(self.default_path())
        self.outEdit.setText(out)
        return self.jobs.run_sweep(pts, out, self.engineCombo.currentData(), self.workersSpin.value(),
                                   self.schedulerEdit.text().strip())

    @Slot(bool)
    def _on_sweeping(self, running: bool) -> None:
        self.runButton.setText(CANCEL_TEXT if running else RUN_TEXT)
        self._update_make()

    # ------------------------------------------------------------------
    # results
    # ------------------------------------------------------------------
    def _varying(self) -> list[str]:
        """The grid axes whose values differ between the records (all, when fewer than two records)."""
        names = [n for n, _l, _k in sweeps.AXES]
        if len(self._records) < 2:
            return names
        return [n for n in names if len({repr(sweeps.setting_of(r, n)) for r in self._records}) > 1] or names

    @Slot(object)
    def show_sweep(self, sweep) -> None:
        """Show a stored sweep (the document's; None: empty)."""
        self._records = list((sweep or {}).get("records") or [])
        if self._picked and self._picked not in {r["key"] for r in self._records}:
            self._picked = ""
        self._refresh()
        if sweep and sweep.get("path") and not self.jobs.is_sweeping():
            self.outEdit.setText(sweep["path"])
        stale = bool((sweep or {}).get("stale"))
        self.statusLabel.setText(f"results of {sweep.get('system')} (another system: stale)" if stale else
                                 (f"{len(self._records)} points in {Path(sweep['path']).name}"
                                  if sweep and sweep.get("path") else ""))

    @Slot(object)
    def _on_record(self, record) -> None:
        self._records = list((self.document.sweep or {}).get("records") or [])
        self._refresh()
        self.statusLabel.setText(f"{len(self._records)} points finished")

    def _refresh(self) -> None:
        """Table and plot follow the records, each in a pacer turn of its own (studio.pacing: a sweep's
        records arrive while the window draws other things)."""
        pacer().later((id(self), "table"), self._fill_table)
        pacer().later((id(self), "plot"), self._draw)
        self._update_make()

    def _fill_table(self) -> None:
        """The rows of the records; only rows from the first that changed are written (a finished point
        adds one row), unless the varying settings (the columns) changed."""
        axes = self._varying()
        heads = tuple(["key"] + [sweeps.SHORT[a] for a in axes] + [h for _k, h, _f in RESULTS] + ["status"])
        keys = tuple(r["key"] for r in self._records)
        old_heads, old_keys = self._shown
        t = self.table
        t.blockSignals(True)
        start = 0
        if heads != old_heads:
            t.clear()
            t.setColumnCount(len(heads))
            t.setHorizontalHeaderLabels(list(heads))
        else:
            while start < min(len(keys), len(old_keys)) and keys[start] == old_keys[start]:
                start += 1
        t.setRowCount(len(self._records))
        for i in range(start, len(self._records)):
            r = self._records[i]
            res = r.get("result") or {}
            vals = [r["key"][:8]] + [_fmt(sweeps.setting_of(r, a)) for a in axes] + \
                [_fmt(res.get(k), f) for k, _h, f in RESULTS]
            status = r["status"] if r["status"] != "ok" else ("diverged" if res.get("diverged") else "ok")
            vals.append(status)
            for j, v in enumerate(vals):
                item = QTableWidgetItem(v)
                if j:
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                if r["status"] == "error":
                    item.setToolTip(str(r.get("error", "")))
                elif not j:
                    item.setToolTip(f"point {r['key']}")
                t.setItem(i, j, item)
        self._shown = (heads, keys)
        t.clearSelection()
        if self._picked in keys:
            t.selectRow(keys.index(self._picked))
        if heads != old_heads or not old_keys:
            t.resizeColumnsToContents()
        else:
            self._widen_columns(start)
        t.blockSignals(False)

    def _widen_columns(self, start: int) -> None:
        """Widen the columns that the rows from ``start`` on do not fit (a later point's "0.00986" in a
        column sized for "0.0159" was elided to "0.00..."); only the new rows are measured, so a finished
        point costs the same in a sweep of thousands."""
        t = self.table
        fm = t.fontMetrics()
        pad = 2 * t.style().pixelMetric(t.style().PixelMetric.PM_FocusFrameHMargin) + 12
        for j in range(t.columnCount()):
            need = max((fm.horizontalAdvance(t.item(i, j).text()) + pad for i in range(start, t.rowCount())
                        if t.item(i, j) is not None), default=0)
            if need > t.columnWidth(j):
                t.setColumnWidth(j, need)

    def _xy(self):
        x = np.array([(r.get("result") or {}).get("fit_s") or np.nan for r in self._records], dtype=float)
        y = np.array([(r.get("result") or {}).get("test_mse") or np.nan for r in self._records], dtype=float)
        ok = (x > 0) & (y > 0)
        return np.where(ok, x, np.nan), np.where(ok, y, np.nan)

    def _draw(self) -> None:
        """Markers per value of the colour setting (their items reused), the legend, the front, the ticks."""
        pi = self.plot.getPlotItem()
        x, y = self._xy()
        axis = self._colour_axis
        values = [sweeps.setting_of(r, axis) for r in self._records]
        distinct = []
        for v in values:
            if v not in distinct:
                distinct.append(v)
        try:
            distinct.sort()
        except TypeError:
            pass
        if len(distinct) <= len(COLOURS):
            colours = [COLOURS[i] for i in range(len(distinct))]
        else:
            cmap = pg.colormap.get(palette.COLORMAP)
            colours = [cmap.map(f, mode="qcolor").name() for f in np.linspace(0, 1, len(distinct))]
        legend, used = [], {}
        for v, c in zip(distinct, colours):
            idx = [i for i, w in enumerate(values) if w == v and np.isfinite(x[i])]
            if not idx:
                continue
            name = f"{sweeps.SHORT[axis]} {_fmt(v)}"
            item = self._items.pop(name, None)
            if item is None:
                item = pg.PlotDataItem(pen=None, symbol="o", symbolSize=9, symbolPen=pg.mkPen("#10141c"), name=name)
                item.sigPointsClicked.connect(self._on_points_clicked)
                pi.addItem(item)
            item.setData(x[idx], y[idx], data=[self._records[i]["key"] for i in idx], symbolBrush=pg.mkBrush(c))
            used[name] = item
            legend.append(f'<span style="color:{c}">●</span>&nbsp;{name}')
        for item in self._items.values():        # values no record has any more
            pi.removeItem(item)
        self._items = used
        self._scatter = list(used.values())
        self.legendLabel.setText("&nbsp;&nbsp; ".join(legend) + (
            "&nbsp;&nbsp; <span style='color:#8893a6'>- - Pareto front</span>" if legend else ""))
        front = sweeps.pareto_front(x, y)
        self.frontItem.setData(x[front], y[front]) if front else self.frontItem.setData([], [])
        for side, v in (("bottom", x), ("left", y)):
            pi.getAxis(side).setTicks(log_ticks(v))
        self._set_empty(not np.isfinite(x).any())
        self._draw_pick()

    def _set_empty(self, empty: bool) -> None:
        """No point to show: the message instead of the axes and grid (only on a change: showing
        or hiding an axis re-lays out the plot)."""
        if empty == self._empty:
            return
        self._empty = empty
        pi = self.plot.getPlotItem()
        self.emptyLabel.setVisible(empty)
        for side in ("bottom", "left"):
            pi.showAxis(side, not empty)

    def showing_empty_text(self) -> bool:
        """True while the plot says what will appear there instead of showing points (tests)."""
        return self.emptyLabel.isVisible()

    def _draw_pick(self) -> None:
        x, y = self._xy()
        i = next((k for k, r in enumerate(self._records) if r["key"] == self._picked), None)
        if i is None or not np.isfinite(x[i]):
            self.pickItem.setData([], [])
        else:
            self.pickItem.setData([x[i]], [y[i]])

    @Slot()
    def _on_colour(self) -> None:
        self._colour_axis = self.colourCombo.currentData()
        self._draw()

    def set_colour_by(self, axis: str) -> None:
        self.colourCombo.setCurrentIndex(self.colourCombo.findData(axis))

    def front_keys(self) -> list[str]:
        """Keys of the Pareto front's points (fit time against test error), by increasing fit time."""
        x, y = self._xy()
        return [self._records[i]["key"] for i in sweeps.pareto_front(x, y)]

    def scatter_points(self) -> dict:
        """What the plot shows: {legend name: [(fit time, test MSE, key), ...]} (tests)."""
        out = {}
        for item in self._scatter:
            xs, ys = item.getData()          # log10 of both (log axes)
            out[item.name()] = [(float(10.0 ** a), float(10.0 ** b), k)
                                for a, b, k in zip(xs, ys, item.opts["data"])]
        return out

    # ------------------------------------------------------------------
    # picking a point
    # ------------------------------------------------------------------
    def _on_points_clicked(self, _item, points, *_ev) -> None:
        if len(points):
            self.pick(str(points[0].data()))

    @Slot()
    def _on_table_selection(self) -> None:
        rows = {i.row() for i in self.table.selectedItems()}
        if rows:
            row = min(rows)
            if 0 <= row < len(self._records):
                self.pick(self._records[row]["key"])

    def pick(self, key: str) -> None:
        """Pick the point ``key`` (table row and plot marker follow)."""
        if key == self._picked:
            return
        self._picked = key
        for i, r in enumerate(self._records):
            if r["key"] == key:
                self.table.blockSignals(True)
                self.table.selectRow(i)
                self.table.blockSignals(False)
        self._draw_pick()
        self._update_make()
        self.pointPicked.emit(key)

    def picked(self) -> dict | None:
        return next((r for r in self._records if r["key"] == self._picked), None)

    def _update_make(self) -> None:
        rec = self.picked()
        self.makeButton.setEnabled(rec is not None and rec["status"] == "ok" and not self.jobs.is_training())

    @Slot()
    def make_model(self) -> bool:
        """Fit the picked point's settings on the current data (Jobs.make_sweep_model)."""
        rec = self.picked()
        if rec is None:
            self.jobs.failed.emit("pick a sweep point first (a row of the table or a point of the plot)", "")
            return False
        return self.jobs.make_sweep_model(rec)


def log_ticks(values) -> list | None:
    """Major ticks of a log axis over ``values`` (> 0): the decades, and 2 and 5 times them when the values
    span more than one decade but at most two (pyqtgraph's own minor labels crowd each other); values
    within one decade get about four evenly spaced ticks of a round step (1, 2 or 5 times a power of ten:
    fit times 0.0076-0.0111 get 0.008, 0.009, 0.01, 0.011, where the decades they touch gave the single
    tick 0.01); None: pyqtgraph's."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if not v.size:
        return None
    vmin, vmax = float(v.min()), float(v.max())
    span = np.log10(vmax) - np.log10(vmin)
    if 0 < span <= 1:
        raw = (vmax - vmin) / 4
        mag = 10.0 ** np.floor(np.log10(raw))
        step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
        k0, k1 = int(np.floor(vmin / step)) - 1, int(np.ceil(vmax / step)) + 1
        vals = [float(f"{k * step:.12g}") for k in range(max(k0, 1), k1 + 1)]
        return [[(float(np.log10(x)), f"{x:g}") for x in vals], []]
    lo, hi = np.floor(np.log10(vmin)), np.ceil(np.log10(vmax))
    steps = (1, 2, 5) if span <= 2 else (1,)
    ticks = [(float(np.log10(m * 10.0 ** k)), f"{m * 10.0 ** k:g}") for k in range(int(lo) - 1, int(hi) + 1)
             for m in steps]
    return [ticks, []]
