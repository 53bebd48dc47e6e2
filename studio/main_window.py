"""The studio's main window: panels around the 3D views, the timeline and the
plots -- views of one :class:`~studio.document.Document`, changed through
one undo stack (:mod:`studio.commands`), with the background work of one
:class:`~studio.jobs.Jobs` object and the files of one
:class:`~studio.project_controller.ProjectController`.

Layout: left dock with tabs *System* (generators), *Draw* (drawing canvas)
and *Train*; centre: views (truth | prediction) above the timeline; bottom
dock: plots (studio.widgets.plots_panel: energy drift, roll-out error and pages of
energies, balance, loss, ground-truth error, adapt) tabbed with the sweep; right
dock: the models table with zero-shot roll-outs; status bar: messages, and
while a job runs its stage, progress and a Cancel button (visible from every
tab). Window geometry, dock layout and the document's settings (the last
used values) persist through QSettings.

How a change flows: a form edit is a command on the undo stack; the command
changes the document; the document's signals reach the forms, views, plots,
table and timeline that show it. Train asks the jobs object, which reads
the settings from the document and hands its results back to it.
"""
from __future__ import annotations

import sys

import numpy as np
from PySide6.QtCore import QByteArray, Qt, QTimer, Slot
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence, QShortcut, QUndoStack
from PySide6.QtWidgets import (QDockWidget, QFileDialog, QHBoxLayout, QLabel, QMainWindow, QMessageBox,
                               QProgressBar, QScrollArea, QStyle, QTabWidget, QToolBar,
                               QToolButton, QVBoxLayout, QWidget)

from core.errors import HGNError

from .defaults import GIL_SWITCH_INTERVAL, VIEW
from .document import Document, default_settings
from .jobs import Jobs
from .pacing import pacer
from .scene import palette
from .scene.palette import hex_of
from .settings import load_json, open_settings, save_json
from .timeline import TimeModel
from .widgets.adapt_dialog import AdaptDialog
from .widgets.sweep_panel import SweepPanel
from .widgets.drawing_panel import DrawingPanel
from .widgets.models_panel import ModelsPanel
from .widgets.plots_panel import PlotsPanel
from .widgets.system_panel import SystemPanel, describe
from .widgets.timeline_bar import TimelineBar
from .widgets.train_panel import TrainPanel, set_bar
from .widgets.views_panel import ViewsPanel

SETTINGS_VERSION = 1

QUICK_START = """<h3>Quick start</h3>
<ol>
<li><b>System</b> tab: pick a generator (chain, lattice, molecular), its size and a pair
potential, then <b>Build</b> (Ctrl+B). Or <b>Draw</b> one: click to place particles, drag
from particle to particle for springs, then <i>Use drawn system</i>.</li>
<li><b>Train</b> tab: training data settings and a method, then <b>Train</b> (Ctrl+T).
Progress and <b>Cancel</b> (Esc) are in the status bar at the bottom.</li>
<li><b>Watch</b>: ground truth and prediction side by side; the timeline plays and scrubs;
the plots show energy drift and roll-out error. Pick a model in the <b>Models</b> table to
see its roll-out; <b>Zero-shot</b> applies it to a larger lattice without refitting.</li>
<li><b>Save</b> the project (Ctrl+S): system, settings, models and roll-out in one file.
File &gt; Export makes videos, pictures and files for other programs.</li>
</ol>
<p>Every edit can be undone (Ctrl+Z) and redone (Ctrl+Shift+Z).</p>"""

SHORTCUTS = [("Ctrl+B", "Build the system"), ("Ctrl+T", "Train"), ("Esc", "Cancel the running job"),
             ("Space", "Play / pause"), ("Left / Right", "Step one frame"), ("Home / End", "First / last frame"),
             ("Ctrl+Z", "Undo"), ("Ctrl+Shift+Z, Ctrl+Y", "Redo"), ("Ctrl+O", "Open a project or file"),
             ("Ctrl+S", "Save the project"), ("Ctrl+Shift+S", "Save the project as"),
             ("Ctrl+Q", "Quit (asks about unsaved models)"), ("F1", "Quick start")]


def _scroll(w: QWidget) -> QScrollArea:
    s = QScrollArea()
    s.setWidget(w)
    s.setWidgetResizable(True)
    s.setFrameShape(QScrollArea.NoFrame)
    s.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    return s


class JobStatus(QWidget):
    """The status bar's job line: what runs (stage named), how far, Cancel."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("jobStatus")
        self.label = QLabel("")
        self.label.setObjectName("jobStage")
        self.bar = QProgressBar()
        self.bar.setObjectName("statusProgress")
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(True)
        self.bar.setFixedWidth(160)
        self.bar.setMaximumHeight(16)
        self.cancelButton = QToolButton()
        self.cancelButton.setObjectName("statusCancelButton")
        self.cancelButton.setText("Cancel")
        self.cancelButton.setToolTip("Stop the running job (Esc)")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 4, 0)
        lay.addWidget(self.label)
        lay.addWidget(self.bar)
        lay.addWidget(self.cancelButton)
        self.hide()

    def set_progress(self, text: str, fraction: float) -> None:
        if self.label.text() != text:
            self.label.setText(text)
        if fraction < 0:
            self.bar.setRange(0, 0)
        else:
            set_bar(self.bar, int(round(1000 * fraction)), f"{100 * fraction:.0f}%")


class MainWindow(QMainWindow):
    def __init__(self, settings=None, restore: bool = True):
        super().__init__()
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)   # see studio.defaults
        self.setObjectName("mainWindow")
        self.setWindowTitle("HGN Studio")
        self.settings = settings if settings is not None else open_settings()
        self.document = Document(parent=self)
        self.undo = QUndoStack(self)
        self.time = TimeModel(self)
        self.jobs = Jobs(self.document, self.undo, self)

        # -- panels ---------------------------------------------------------
        doc = self.document
        self.systemPanel = SystemPanel(doc, self.undo)
        self.drawingPanel = DrawingPanel(doc, self.undo)
        self.trainPanel = TrainPanel(doc, self.undo)
        self.views = ViewsPanel()
        self.timelineBar = TimelineBar(self.time)
        self.modelsPanel = ModelsPanel(doc, self.undo)
        #: the plots dock's contents, a view of the roll-out and the timeline (studio.widgets.plots_panel)
        self.plotsPanel = pp = PlotsPanel(doc, self.jobs, self.time)
        # its plots and pages by the names the window's users (tests, benchmarks, screenshots) know
        self.energyPlot, self.errorPlot, self.partsPlot = pp.energyPlot, pp.errorPlot, pp.partsPlot
        self.lossPlot, self.balancePlot, self.plots = pp.lossPlot, pp.balancePlot, pp.plots
        self.referencePanel, self.adaptPanel, self.plotTabs = pp.referencePanel, pp.adaptPanel, pp.plotTabs
        #: the last choices of the Adapt dialog (k, seed, regularisation)
        self._adapt_last: dict = {}
        #: sweeps over fit settings and sizes (issue 15): a dock tabbed with the plots
        self.sweepPanel = SweepPanel(doc, self.jobs)
        self.sweepPanel.default_folder = self._project_folder

        central = QWidget()
        cl = QVBoxLayout(central)
        cl.setContentsMargins(4, 4, 4, 0)
        cl.addWidget(self.views, 1)
        cl.addWidget(self.timelineBar)
        self.setCentralWidget(central)

        self.leftTabs = QTabWidget()
        self.leftTabs.setObjectName("leftTabs")
        self.leftTabs.addTab(_scroll(self.systemPanel), "System")
        self.leftTabs.addTab(_scroll(self.drawingPanel), "Draw")
        self.leftTabs.addTab(_scroll(self.trainPanel), "Train")
        self.leftDock = self._dock("System and training", "leftDock", self.leftTabs, Qt.LeftDockWidgetArea)
        self.plotsDock = self._dock("Plots", "plotsDock", self.plotsPanel, Qt.BottomDockWidgetArea)
        self.sweepDock = self._dock("Sweep", "sweepDock", self.sweepPanel, Qt.BottomDockWidgetArea)
        self.tabifyDockWidget(self.plotsDock, self.sweepDock)
        self.plotsDock.raise_()
        #: docks added after the first studio, each with the dock it shares a tab group with in a new window
        #: (placed there again when a window state saved by an older studio does not name them)
        self._later_docks = ((self.sweepDock, self.plotsDock),)
        self.modelsDock = self._dock("Models", "modelsDock", _scroll(self.modelsPanel), Qt.RightDockWidgetArea)

        self.statusLabel = QLabel("")
        self.statusLabel.setObjectName("statusMessage")
        self.statusBar().addWidget(self.statusLabel, 1)
        self.jobStatus = JobStatus()
        self.statusBar().addPermanentWidget(self.jobStatus)
        self._build_actions()
        self._connect()
        from .project_controller import ProjectController

        self.projects = ProjectController(self)
        self.projects.install_menu(self.fileMenu, before=self.saveSystemAction)
        self.enable_export(self.projects.export_video, "Export the roll-out as a video (MP4, WebM or GIF)")
        self._last_error = ""

        self._fit_to_screen()
        if restore:
            self.restore_settings()
        QTimer.singleShot(0, self._initial_system)

    # -- names other code used before the document ------------------------
    @property
    def session(self) -> Document:
        """The document (its former name)."""
        return self.document

    @property
    def trainJobs(self):
        return self.jobs.trainer

    @property
    def rolloutJobs(self):
        return self.jobs.roller

    @property
    def timing(self) -> dict:
        """perf_counter stamps of the last Train (train_pressed, trained, first_frame)."""
        return self.jobs.timing

    def _place_unsaved_docks(self, state: bytes) -> None:
        """Put a dock that the restored window ``state`` does not name (saved by a studio that did not have
        it) where a new window has it: restoreState leaves such a dock beside the others in its area (the
        Sweep dock took half the Plots dock's width and both were squeezed). A state names its docks by
        their object names, as QDataStream strings (UTF-16, big-endian)."""
        for dock, partner in self._later_docks:
            if dock.objectName().encode("utf-16-be") not in state:
                self.tabifyDockWidget(partner, dock)
                partner.raise_()

    # ------------------------------------------------------------------
    def _dock(self, title, name, widget, area) -> QDockWidget:
        d = QDockWidget(title, self)
        d.setObjectName(name)
        d.setWidget(widget)
        d.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable
                      | QDockWidget.DockWidgetClosable)
        self.addDockWidget(area, d)
        return d

    def _project_folder(self):
        """The open project's folder (None when it was never saved): a sweep's results go there by default."""
        path = getattr(getattr(self, "projects", None), "path", None)
        return None if path is None else path.parent

    def show_sweep(self) -> None:
        """Bring the Sweep dock to the front."""
        self.sweepDock.show()
        self.sweepDock.raise_()

    def _fit_to_screen(self) -> None:
        """The first-run size: the default, shrunk to the screen the window
        opens on (its available geometry); docks in proportion. The left dock
        is wide enough for its forms (no sideways scrolling)."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        avail = screen.availableGeometry() if screen is not None else None
        w, h = VIEW.window_size
        if avail is not None:
            # leave room for the window frame and title bar
            w, h = min(w, avail.width() - 16), min(h, avail.height() - 48)
        left_need = max(self.systemPanel.minimumSizeHint().width(), self.trainPanel.minimumSizeHint().width(),
                        self.drawingPanel.minimumSizeHint().width()) + self.style().pixelMetric(
                            QStyle.PM_ScrollBarExtent) + 12
        self.resize(w, h)
        scale = min(1.0, w / VIEW.window_size[0])
        left, right = VIEW.side_dock_widths
        self.resizeDocks([self.leftDock, self.modelsDock], [max(left_need, int(left * scale)), int(right * scale)],
                         Qt.Horizontal)
        self.resizeDocks([self.plotsDock], [int(VIEW.plots_height * min(1.0, h / VIEW.window_size[1]))],
                         Qt.Vertical)

    def _build_actions(self) -> None:
        mb = self.menuBar()
        fm = self.fileMenu = mb.addMenu("&File")
        self.saveSystemAction = QAction("Save &system…", self, triggered=self.save_system)
        self.saveSystemAction.setObjectName("saveSystemAction")
        fm.addAction(self.saveSystemAction)
        fm.addSeparator()
        self.quitAction = QAction("&Quit", self, shortcut=QKeySequence("Ctrl+Q"), triggered=self.close)
        self.quitAction.setObjectName("quitAction")
        self.quitAction.setToolTip("Quit (asks first when models are not saved)")
        fm.addAction(self.quitAction)

        em = mb.addMenu("&Edit")
        self.undoAction = self.undo.createUndoAction(self, "&Undo")
        self.undoAction.setShortcuts([QKeySequence("Ctrl+Z")])
        self.undoAction.setObjectName("undoAction")
        self.redoAction = self.undo.createRedoAction(self, "&Redo")
        self.redoAction.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.redoAction.setObjectName("redoAction")
        em.addAction(self.undoAction)
        em.addAction(self.redoAction)
        em.addSeparator()
        em.addAction(QAction("Reset settings to defaults", self, triggered=self.reset_defaults))

        vm = mb.addMenu("&View")
        for d in (self.leftDock, self.plotsDock, self.modelsDock):
            vm.addAction(d.toggleViewAction())
        self.sweepAction = QAction("&Sweep…", self, triggered=self.show_sweep)
        self.sweepAction.setObjectName("sweepAction")
        self.sweepAction.setToolTip("A grid over fit settings and sizes, run in the background: results table "
                                    "and Pareto plot")
        vm.addAction(self.sweepAction)

        hm = mb.addMenu("&Help")
        self.quickStartAction = QAction("&Quick start", self, shortcut=QKeySequence.HelpContents,
                                        triggered=self.quick_start)
        self.quickStartAction.setObjectName("quickStartAction")
        self.shortcutsAction = QAction("&Keyboard shortcuts", self, triggered=self.keyboard_shortcuts)
        self.shortcutsAction.setObjectName("shortcutsAction")
        hm.addAction(self.quickStartAction)
        hm.addAction(self.shortcutsAction)
        hm.addSeparator()
        hm.addAction(QAction("&About", self, triggered=self.about))

        tb = QToolBar("Main")
        tb.setObjectName("mainToolBar")
        tb.setMovable(False)
        self.addToolBar(Qt.TopToolBarArea, tb)
        self.buildAction = QAction("Build", self, shortcut=QKeySequence("Ctrl+B"), triggered=self.systemPanel.build)
        self.buildAction.setToolTip("Build the system with the System tab's settings (Ctrl+B)")
        self.trainAction = QAction("Train", self, shortcut=QKeySequence("Ctrl+T"), triggered=self.train)
        self.trainAction.setToolTip("Simulate training data, fit, roll out (Ctrl+T)")
        tb.addAction(self.buildAction)
        tb.addAction(self.trainAction)
        tb.addSeparator()
        tb.addAction(self.undoAction)
        tb.addAction(self.redoAction)
        tb.addSeparator()
        self.exportVideoButton = _tool_button(tb, "Export video…", "exportVideoButton")
        self.exportVideoButton.setEnabled(False)
        self.exportVideoAction = QAction("Export &video…", self)      # wired by enable_export
        self.exportVideoAction.setEnabled(False)

        for key, slot in ((Qt.Key_Space, self.time.toggle), (Qt.Key_Right, lambda: self.time.step(1)),
                          (Qt.Key_Left, lambda: self.time.step(-1)), (Qt.Key_Home, self.time.first),
                          (Qt.Key_End, self.time.last), (Qt.Key_Escape, self.cancel)):
            sc = QShortcut(QKeySequence(key), self)
            sc.setContext(Qt.WindowShortcut)
            sc.activated.connect(slot)

    def _connect(self) -> None:
        doc, jobs = self.document, self.jobs
        sp, tp = self.systemPanel, self.trainPanel
        sp.error.connect(self.show_error)
        sp.message.connect(self.show_status)
        self.views.particleClicked.connect(sp.toggle_driven)
        self.drawingPanel.error.connect(self.show_error)
        tp.trainRequested.connect(self.train)
        tp.cancelRequested.connect(self.cancel)
        tp.error.connect(self.show_error)
        tp.referenceRequested.connect(self.referencePanel.request)
        tp.adaptRequested.connect(lambda: self.adapt_model(self.document.current))

        doc.systemChanged.connect(self._on_system)
        doc.rolloutStarted.connect(self._on_rollout_started)
        doc.rolloutExtended.connect(self._on_rollout_extended)
        doc.rolloutFinished.connect(self._on_rollout_finished)
        doc.currentModelChanged.connect(self._on_current_model)
        doc.replaced.connect(self._on_replaced)
        doc.aboutToSave.connect(self._store_view)
        doc.message.connect(self.show_status)
        doc.settingsChanged.connect(self._on_port_settings)
        for sig in (doc.modelsChanged, doc.currentModelChanged, doc.systemChanged):
            sig.connect(self._update_adapt_button)
        self.time.frameChanged.connect(self.views.show_frame)

        jobs.progress.connect(tp.set_progress)
        jobs.progress.connect(self.jobStatus.set_progress)
        jobs.status.connect(self.show_status)
        jobs.warning.connect(self.show_warning)
        jobs.failed.connect(self._on_failed)
        jobs.invalid.connect(self._on_invalid)
        jobs.cancelled.connect(self._on_cancelled)
        jobs.runningChanged.connect(self._update_running)
        jobs.trained.connect(self._on_trained)
        jobs.basisSaved.connect(lambda p: self.show_status(f"saved the basis (hidden layers) to {p}"))
        self.jobStatus.cancelButton.clicked.connect(self.cancel)

        self.modelsPanel.rolloutRequested.connect(self.rollout_model)
        self.modelsPanel.zeroShotRequested.connect(self.zero_shot)
        self.modelsPanel.saveRequested.connect(self.save_model)
        self.modelsPanel.adaptRequested.connect(self.adapt_model)
        self.modelsPanel.saveBasisRequested.connect(self.save_basis)
        self.modelsPanel.compareRequested.connect(self.compare_adapt)
        self.plotsPanel.listen()          # after the window's handlers: the views take a new roll-out first

    def enable_export(self, handler, tooltip: str = "Export the roll-out as a video") -> None:
        """Wire the Export video button and menu entry to ``handler()`` (called
        with no arguments)."""
        self._export_handler = handler
        for w in (self.exportVideoButton, self.exportVideoAction):
            w.setEnabled(True)
            w.setToolTip(tooltip)
        if not getattr(self, "_export_wired", False):
            self.exportVideoButton.clicked.connect(lambda: self._export_handler())
            self.exportVideoAction.triggered.connect(lambda: self._export_handler())
            self._export_wired = True

    # -- messages ----------------------------------------------------------
    @Slot(str)
    def show_error(self, message: str) -> None:
        self._last_error = message
        self.statusLabel.setStyleSheet(f"color: {hex_of(palette.ERROR)};")
        self.statusLabel.setText(message)
        self.statusLabel.setToolTip(message)

    def show_warning(self, message: str) -> None:
        """A note the user should see but that stopped nothing (amber)."""
        self.statusLabel.setStyleSheet(f"color: {hex_of(palette.WARNING)};")
        self.statusLabel.setText(f"warning: {message}")
        self.statusLabel.setToolTip(message)

    def show_status(self, message: str) -> None:
        self.statusLabel.setStyleSheet("")
        self.statusLabel.setText(message)
        self.statusLabel.setToolTip(message)

    def show_bug(self, summary: str, details: str) -> None:
        self.show_error(f"internal error: {summary}")
        box = QMessageBox(QMessageBox.Critical, "HGN Studio: internal error",
                          f"Something went wrong inside the studio (a bug, not your input):\n\n{summary}\n\n"
                          "The studio keeps running.", QMessageBox.Ok, self)
        box.setDetailedText(details)
        box.setModal(False)
        box.show()

    # -- system ------------------------------------------------------------
    def _initial_system(self) -> None:
        if self.document.system is None:
            if self.systemPanel.build() is None and self.document.values("port") != default_settings()["port"]:
                # last time's damping and driving do not fit (e.g. a drive node out of range): start without
                self.document.restore_settings({"port": default_settings()["port"]})
                self.systemPanel.build()
            self.document.mark_saved()           # the start-up system is not an unsaved change

    @Slot(str, str)
    def _on_port_settings(self, section: str, key: str) -> None:
        if section == "" or (section == "port" and key in ("", "drive_nodes")):
            self._update_marked()

    def _update_marked(self) -> None:
        """The views draw the driven particles in the highlight colour: those listed in the System tab
        while the views show the current system, else (a zero-shot roll-out's larger system) its own."""
        doc = self.document
        shown = doc.displayed_system
        if shown is None:
            return
        if shown is doc.system or (doc.rollout is not None and not doc.rollout.zero_shot):
            nodes = [int(i) for i in (doc.get("port", "drive_nodes") or ())]
        else:
            port = getattr(shown, "port", None)
            nodes = sorted({i for d in port.drives for i in d.nodes}) if port is not None else []
        self.views.set_marked(nodes)

    @Slot(object)
    def _on_system(self, system) -> None:
        self.jobs.cancel_rollout()
        self.time.pause()
        self.time.set_times(np.zeros(1), 1)
        self.views.set_system(system)
        self._update_marked()
        self.show_status(describe(system))

    # -- training ----------------------------------------------------------
    def commit_forms(self) -> bool:
        """What is typed in the forms into the document (before a job reads it)."""
        ok = self.systemPanel.commit()
        ok = self.trainPanel.commit() and ok
        if not ok:
            self.show_error("a setting does not parse (marked in red)")
        return ok

    @Slot()
    def train(self) -> bool:
        """Start training in the background; False (and a message) if not possible."""
        if self.jobs.is_training():
            self.show_error("a model is already being trained; cancel it first (Esc)")
            return False
        if not self.commit_forms():
            return False
        if self.document.system is None and self.systemPanel.build() is None:
            return False
        return self.jobs.train()

    @Slot()
    def cancel(self) -> None:
        self.jobs.cancel()

    @Slot(object)
    def _on_trained(self, rec) -> None:
        self.trainPanel.resultLabel.setText(
            f"{rec.name}: fit {rec.fit_time:.3g} s, test MSE {rec.test_mse:.3g} (data {rec.data_time:.2g} s)")

    @Slot(str)
    def _on_cancelled(self, what: str) -> None:
        self.show_status(f"{what} cancelled")
        self.trainPanel.progress.setRange(0, 1000)
        self.trainPanel.progress.setFormat("cancelled")

    @Slot(str, str)
    def _on_failed(self, message: str, details: str) -> None:
        if details:
            self.show_bug(message, details)
        else:
            self.show_error(message)
        if not self.jobs.is_running():
            self.trainPanel.progress.setRange(0, 1000)
            self.trainPanel.progress.setFormat("failed")

    @Slot(str, str)
    def _on_invalid(self, section: str, message: str) -> None:
        """A setting a job refused: shown at its field, wherever it is."""
        if not self.trainPanel.show_message(section, message):
            self.systemPanel.show_message(section, message)

    @Slot(bool)
    def _update_running(self, running: bool | None = None) -> None:
        running = self.jobs.is_running() if running is None else running
        tp = self.trainPanel
        if running:
            tp.cancelButton.setEnabled(True)
        else:
            tp.set_running(False, tp.progress.format() if tp.progress.maximum() > 0 else "done")
        tp.trainButton.setEnabled(not self.jobs.is_training() and bool(tp.methods))
        self._update_adapt_button()
        self.jobStatus.setVisible(running)
        self.jobStatus.cancelButton.setEnabled(running)

    # -- roll-outs ---------------------------------------------------------
    @Slot(int)
    def rollout_model(self, index: int) -> None:
        """The comparison roll-out of a model on the system it was fitted on."""
        doc = self.document
        if not 0 <= index < len(doc.models):
            return
        doc.set_current(index)            # may start it (a model whose roll-out is not shown)
        if self.jobs.rollout_target != doc.models[index].name:
            self.jobs.rollout(index)

    @Slot(int, int, int, int)
    def zero_shot(self, index: int, factor: int, steps: int, save_every: int) -> bool:
        """Apply a model without refitting to its lattice scaled up ``factor`` times."""
        return self.jobs.zero_shot(index, factor, steps, save_every)

    @Slot(object)
    def _on_rollout_started(self, buf) -> None:
        self.time.pause()
        self.views.set_rollout(buf)
        self._update_marked()
        self.time.set_times(buf.t, buf.n_filled)

    @Slot(int)
    def _on_rollout_extended(self, n: int) -> None:
        self.time.set_filled(n)
        if "first_frame" not in self.jobs.timing and "train_pressed" in self.jobs.timing and n > 1:
            # the first frame after Train: the truth view renders first, in the
            # next pacer turn (not in this chunk's batch)
            self.views.show_frame(self.time.frame)
            surface = self.views.truthView.surface_widget

            def first_frame():
                surface.render()
                surface.update()
                self.jobs.mark("first_frame")

            pacer().later(self.views.truthView.surface, first_frame, first=True)

    @Slot(object)
    def _on_rollout_finished(self, buf) -> None:
        self.time.set_filled(buf.n_filled)
        if buf.with_prediction and buf.n_filled > 1 and not buf.warnings:
            m = buf.measures()
            self.show_status(f"roll-out of {buf.model_name}{' (zero-shot)' if buf.zero_shot else ''}: "
                             f"{buf.system.n} particles, final position MSE {m['final_position_mse']:.3g}, "
                             f"max |energy drift| {m['max_abs_drift_prediction']:.3g}")

    @Slot(int)
    def _on_current_model(self, index: int) -> None:
        """Show the current model's roll-out (computed when the one shown belongs to another model; its
        plot page: the plots panel)."""
        rec = self.document.current_model()
        shown = self.document.rollout
        if rec is not None and rec.model is not None and (shown is None or shown.model_name != rec.name) \
                and self.jobs.rollout_target != rec.name:
            self.jobs.rollout(index)

    # -- few-shot adaptation (issue 14) ----------------------------------------
    def _update_adapt_button(self, *_args) -> None:
        """The Train panel's Adapt button: for the selected model, with the reason when it cannot."""
        from .jobs import adapt_reason

        reason = adapt_reason(self.document.current_model(), self.document.system)
        if not reason and self.jobs.is_training():
            reason = "a model is being trained or adapted"
        b = self.trainPanel.adaptButton
        b.setEnabled(not reason)
        b.setToolTip("Keep the selected model's sampled hidden layers and solve only its output layer on k "
                     "snapshots of this system (the models table's Adapt to this system…)" if not reason
                     else f"Adapt is not available: {reason}")

    @Slot(int)
    def adapt_model(self, index: int) -> AdaptDialog | None:
        """The Adapt dialog for model ``index`` (window-modal, not blocking): its Adapt button starts
        Jobs.adapt with the choices. None, with a message, when the model cannot be adapted (a basis file
        can still be adapted from the dialog of any RF-HGN)."""
        from .jobs import adapt_reason

        doc = self.document
        if not self.commit_forms():
            return None
        rec = doc.models[index] if 0 <= index < len(doc.models) else None
        reason = adapt_reason(rec, doc.system)
        if reason:
            self.show_error(f"adapt: {reason}")
            return None
        dlg = AdaptDialog(rec.name, doc.system, self, self._adapt_last)

        def start():
            req = dlg.request()
            self._adapt_last = {k: req[k] for k in ("k", "seed", "regularisation", "prior", "rule")}
            self.jobs.adapt(index, **req)

        dlg.accepted.connect(start)
        dlg.finished.connect(lambda _r: dlg.deleteLater())
        dlg.open()
        return dlg

    @Slot(int)
    def save_basis(self, index: int, path: str | None = None) -> bool:
        """Write model ``index``'s sampled hidden layers as a basis file (a file dialog without ``path``)."""
        from .jobs import basis_reason

        doc = self.document
        rec = doc.models[index] if 0 <= index < len(doc.models) else None
        reason = basis_reason(rec)
        if reason:
            self.show_error(f"save basis: {reason}")
            return False
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save basis", f"{rec.name}-basis.npz",
                                                  "HGN basis files (*.npz)")
            if not path:
                return False
        return self.jobs.save_basis(index, path)

    @Slot(int)
    def compare_adapt(self, index: int) -> bool:
        """Adapt vs fit from scratch over k for model ``index`` on the current system's data."""
        if not self.commit_forms():
            return False
        self.document.set_current(index)
        return self.jobs.compare_adapt(index)

    # -- the view state in the document ---------------------------------------
    @Slot()
    def _store_view(self) -> None:
        """Put what the views show into the document (before it is saved)."""
        from .export.gui import camera_state

        d, v = self.document, self.views
        v.settle_camera()
        for key, value in (("frame", int(self.time.frame)), ("layout", v.layout_mode), ("colour", v.colour_mode),
                           ("camera", camera_state(v.truthView.view.camera)), ("speed", float(self.time.speed)),
                           ("loop", self.time.loop)):
            d.set_view(key, value)

    @Slot()
    def _on_replaced(self) -> None:
        """Another project is shown: its view state, and nothing to undo."""
        self.time.pause()
        view = self.document.view or {}
        if view.get("layout"):
            self.views.set_layout(view["layout"])
        if view.get("colour"):
            self.views.set_colour_mode(view["colour"])
        cam = view.get("camera") or {}
        self.views.settle_camera()               # the new system's framing first, then the saved one
        camera = self.views.truthView.view.camera
        for key in ("fov", "elevation", "azimuth", "scale_factor"):
            if isinstance(cam.get(key), (int, float)):
                setattr(camera, key, float(cam[key]))
        if isinstance(cam.get("center"), list) and len(cam["center"]) == 3:
            camera.center = tuple(float(x) for x in cam["center"])
        if view.get("loop") in ("once", "loop", "bounce"):
            self.time.set_loop(view["loop"])
        if isinstance(view.get("speed"), (int, float)) and view["speed"] > 0:
            self.time.set_speed(float(view["speed"]))
        if isinstance(view.get("frame"), int):
            self.time.set_frame(view["frame"])
        self.undo.clear()

    # -- files ---------------------------------------------------------------
    def open_file(self, path: str | None = None) -> bool:
        """Open a project, system or trajectory file (a dialog without ``path``)."""
        if not path:
            return self.projects.open_dialog()
        return self.projects.open_path(path)

    def show_trajectory(self, traj) -> None:
        """Show a ground-truth trajectory alone (no prediction) on the timeline."""
        self.document.show_trajectory(traj)

    def save_system(self) -> None:
        from core.files import io
        if self.document.system is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save system", "system.npz", "HGN files (*.npz)")
        if path:
            try:
                io.save_system(path, self.document.system)
                self.show_status(f"saved {path}")
            except HGNError as exc:
                self.show_error(str(exc))

    @Slot(int)
    def save_model(self, index: int) -> None:
        if not 0 <= index < len(self.document.models):
            return
        rec = self.document.models[index]
        if not hasattr(rec.model, "save"):
            self.show_error("this model cannot be saved")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save model", f"{rec.name}.npz", "HGN files (*.npz)")
        if path:
            try:
                rec.model.save(path)
                self.show_status(f"saved {path}")
            except HGNError as exc:
                self.show_error(str(exc))

    # -- help ------------------------------------------------------------------
    def quick_start(self) -> QMessageBox:
        box = QMessageBox(QMessageBox.Information, "HGN Studio: quick start", QUICK_START, QMessageBox.Ok, self)
        box.setObjectName("quickStartBox")
        box.setTextFormat(Qt.RichText)
        box.setModal(False)
        box.show()
        return box

    def keyboard_shortcuts(self) -> QMessageBox:
        rows = "".join(f"<tr><td><b>{k}</b></td><td>&nbsp;&nbsp;{v}</td></tr>" for k, v in SHORTCUTS)
        box = QMessageBox(QMessageBox.Information, "HGN Studio: keyboard shortcuts",
                          f"<table>{rows}</table>", QMessageBox.Ok, self)
        box.setObjectName("shortcutsBox")
        box.setTextFormat(Qt.RichText)
        box.setModal(False)
        box.show()
        return box

    def about(self) -> None:
        QMessageBox.about(self, "HGN Studio",
                          "HGN Studio: learn particle dynamics with random-feature Hamiltonian graph "
                          "networks (RF-HGN) and compare them against ground truth.")

    # -- settings ------------------------------------------------------------
    def save_settings(self) -> None:
        st = self.settings
        st.setValue("version", SETTINGS_VERSION)
        st.setValue("window/geometry", self.saveGeometry())
        st.setValue("window/state", self.saveState(SETTINGS_VERSION))
        save_json(st, "document", self.document.settings_state())
        save_json(st, "view", {"layout": self.views.layout_mode, "colour": self.views.colour_mode,
                               "speed": self.time.speed, "loop": self.time.loop,
                               "tab": self.leftTabs.currentIndex()})
        st.sync()

    def restore_settings(self) -> None:
        st = self.settings
        try:
            if int(st.value("version", 0) or 0) != SETTINGS_VERSION:
                return
        except (TypeError, ValueError):
            return
        g = st.value("window/geometry")
        if isinstance(g, QByteArray):
            self.restoreGeometry(g)
        s = st.value("window/state")
        if isinstance(s, QByteArray):
            self.restoreState(s, SETTINGS_VERSION)
            self._place_unsaved_docks(bytes(s.data()))
        v = load_json(st, "view", {}) or {}
        state = load_json(st, "document", None)
        if state is None:                         # written by an older studio
            state = _legacy_settings(load_json(st, "system", {}) or {}, load_json(st, "train", {}) or {},
                                     v.get("zero_shot") or {})
        self.document.restore_settings(state)
        if v.get("layout"):
            self.views.set_layout(v["layout"])
        if v.get("colour"):
            self.views.set_colour_mode(v["colour"])
        if v.get("loop") in ("once", "loop", "bounce"):
            self.time.set_loop(v["loop"])
        if isinstance(v.get("speed"), (int, float)):
            self.time.set_speed(float(v["speed"]))
        if isinstance(v.get("tab"), int):
            self.leftTabs.setCurrentIndex(v["tab"])
        self.undo.clear()

    def reset_defaults(self) -> None:
        self.document.reset_settings()
        self.undo.clear()
        self.show_status("settings reset to defaults")

    def closeEvent(self, ev):  # noqa: N802
        if not self.projects.confirm_close():
            ev.ignore()
            return
        self.time.pause()
        self.save_settings()
        self.jobs.shutdown()
        self.projects.shutdown()
        super().closeEvent(ev)


def _legacy_settings(system: dict, train: dict, zero_shot: dict) -> dict:
    """Settings sections from the panel states older studios saved."""
    out: dict = {"system": {k: system[k] for k in ("kind", "potential") if isinstance(system.get(k), str)},
                 "simulation": {**(train.get("simulation") or {}), **(system.get("start") or {})},
                 "zero_shot": dict(zero_shot)}
    for k, vals in (system.get("builders") or {}).items():
        out[f"generator/{k}"] = vals
    for k, vals in (system.get("potentials") or {}).items():
        out[f"potential/{k}"] = vals
    if isinstance(train.get("method"), str):
        out["train"] = {"method": train["method"]}
    for k, vals in (train.get("models") or {}).items():
        out[f"model/{k}"] = vals
    return out


def _tool_button(tb: QToolBar, text: str, name: str):
    b = QToolButton(tb)
    b.setText(text)
    b.setObjectName(name)
    tb.addWidget(b)
    return b
