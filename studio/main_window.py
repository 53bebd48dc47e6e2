"""The studio's main window: panels around the 3D views, the timeline and the
plots, wired to one Session, one TimeModel, one undo stack and the
background job runners.

Layout: left dock with tabs *System* (generators), *Draw* (drawing canvas)
and *Train*; centre: views (truth | prediction) above the timeline; bottom
dock: plots (energy drift, roll-out error, kinetic/potential, loss); right
dock: the models table with zero-shot roll-outs. Window geometry, dock
layout and the last used values persist through QSettings.
"""
from __future__ import annotations

import dataclasses
import sys
import time

import numpy as np
from PySide6.QtCore import QByteArray, Qt, QTimer, Slot
from PySide6.QtGui import QAction, QKeySequence, QShortcut, QUndoCommand, QUndoStack
from PySide6.QtWidgets import (QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox, QScrollArea,
                               QSplitter, QTabWidget, QToolBar, QVBoxLayout, QWidget)

from core.errors import HGNError

from . import pipeline
from .defaults import GIL_SWITCH_INTERVAL, KIND_SIMULATION, PLAYBACK, SIMULATION, VIEW, simulation_default
from .rollout_buffer import RolloutBuffer
from .session import ModelEntry, Session
from .settings import load_json, open_settings, save_json
from .timeline import TimeModel
from .widgets.drawing_panel import DrawingPanel
from .widgets.models_panel import ModelsPanel
from .widgets.plots import energy_parts_plot, energy_plot, error_plot, loss_plot
from .widgets.system_panel import SystemPanel, describe
from .widgets.timeline_bar import TimelineBar
from .widgets.train_panel import TrainPanel
from .widgets.views_panel import ViewsPanel
from .workers import JobRunner

SETTINGS_VERSION = 1


class SetSystemCommand(QUndoCommand):
    """Undoable change of the current system (Build, Use drawn system)."""

    def __init__(self, window: "MainWindow", old, new, text: str):
        super().__init__(text)
        self.window, self.old, self.new = window, old, new

    def redo(self):
        self.window._apply_system(*self.new)

    def undo(self):
        if self.old[0] is not None:
            self.window._apply_system(*self.old)


class FieldCommand(QUndoCommand):
    """Undoable edit of one form field."""

    def __init__(self, form, name, old, new):
        super().__init__(f"Edit {form.specs[name].label}")
        self.form, self.name, self.old, self.new = form, name, old, new
        self._first = True

    def redo(self):
        if self._first:      # the edit already happened in the widget
            self._first = False
            return
        self.form.set_value(self.name, self.new)
        self.form.edited.emit(self.name)

    def undo(self):
        self.form.set_value(self.name, self.old)
        self.form.edited.emit(self.name)


class ChoiceCommand(QUndoCommand):
    """Undoable change of a combo that swaps what the panels show: the
    generator kind (with the potential it brings and the simulation fields
    it adjusts), the pair potential, or the fitting method.

    ``old`` and ``new`` are states for :meth:`MainWindow._apply_choice`:
    dicts with any of ``kind``, ``potential``, ``method`` and ``fields`` (a
    list of (form, field name, value) the change set alongside).
    """

    def __init__(self, window: "MainWindow", old: dict, new: dict, text: str):
        super().__init__(text)
        self.window, self.old, self.new = window, old, new
        self._first = True

    def redo(self):
        if self._first:      # the change already happened in the widgets
            self._first = False
            return
        self.window._apply_choice(self.new)

    def undo(self):
        self.window._apply_choice(self.old)


def _scroll(w: QWidget) -> QScrollArea:
    s = QScrollArea()
    s.setWidget(w)
    s.setWidgetResizable(True)
    s.setFrameShape(QScrollArea.NoFrame)
    return s


class MainWindow(QMainWindow):
    def __init__(self, settings=None, restore: bool = True):
        super().__init__()
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)   # see studio.defaults
        self.setObjectName("mainWindow")
        self.setWindowTitle("HGN Studio")
        self.settings = settings if settings is not None else open_settings()
        self.session = Session(self)
        self.time = TimeModel(self)
        self.undo = QUndoStack(self)
        self.trainJobs = JobRunner(self)
        self.rolloutJobs = JobRunner(self)
        self._pending_rollout = None
        self._current_sim = dataclasses.asdict(SIMULATION)
        #: set while an undo/redo puts combos back (their changes push nothing)
        self._applying_choice = False
        #: (form, name, old, new) of the fields the running generator change set
        self._kind_fields: list = []
        #: timestamps of the last Train press and of its first roll-out frame on screen
        self.timing: dict[str, float] = {}

        # -- panels ---------------------------------------------------------
        self.systemPanel = SystemPanel()
        self.drawingPanel = DrawingPanel(self.undo, self.systemPanel.potential)
        self.trainPanel = TrainPanel()
        self.views = ViewsPanel()
        self.timelineBar = TimelineBar(self.time)
        self.modelsPanel = ModelsPanel(self.session)
        self.energyPlot = energy_plot()
        self.errorPlot = error_plot()
        self.partsPlot = energy_parts_plot()
        self.lossPlot = loss_plot()
        self.plots = [self.energyPlot, self.errorPlot, self.partsPlot]

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
        plots = QSplitter(Qt.Horizontal)
        plots.setObjectName("plotsSplitter")
        for p in (self.energyPlot, self.errorPlot, self.partsPlot, self.lossPlot):
            plots.addWidget(p)
        self.lossPlot.hide()
        self.plotsDock = self._dock("Plots", "plotsDock", plots, Qt.BottomDockWidgetArea)
        self.modelsDock = self._dock("Models", "modelsDock", _scroll(self.modelsPanel), Qt.RightDockWidgetArea)

        self.statusLabel = QLabel("")
        self.statusLabel.setObjectName("statusMessage")
        self.statusBar().addWidget(self.statusLabel, 1)
        self._build_actions()
        self._connect()
        self._attach_projects()
        self._last_error = ""
        self._cursor_time = 0.0
        self._plot_timer = QTimer(self)
        self._plot_timer.setSingleShot(True)
        self._plot_timer.setInterval(int(1000 * PLAYBACK.plot_interval))
        self._plot_timer.timeout.connect(self._update_plots)

        self.resize(*VIEW.window_size)
        self.resizeDocks([self.leftDock, self.modelsDock], list(VIEW.side_dock_widths), Qt.Horizontal)
        self.resizeDocks([self.plotsDock], [VIEW.plots_height], Qt.Vertical)
        if restore:
            self.restore_settings()
        QTimer.singleShot(0, self._initial_system)

    # ------------------------------------------------------------------
    def _dock(self, title, name, widget, area) -> QDockWidget:
        d = QDockWidget(title, self)
        d.setObjectName(name)
        d.setWidget(widget)
        d.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable
                      | QDockWidget.DockWidgetClosable)
        self.addDockWidget(area, d)
        return d

    def _build_actions(self) -> None:
        mb = self.menuBar()
        fm = self.fileMenu = mb.addMenu("&File")
        self.openAction = QAction("&Open…", self, shortcut=QKeySequence.Open, triggered=self.open_file)
        self.openAction.setObjectName("openAction")
        self.saveSystemAction = QAction("Save &system…", self, triggered=self.save_system)
        self.saveSystemAction.setObjectName("saveSystemAction")
        have_io = _has_module("core.files.io")
        for a in (self.openAction, self.saveSystemAction):
            a.setEnabled(have_io)
            if not have_io:
                a.setToolTip("needs core.files.io (file formats), not available yet")
        fm.addAction(self.openAction)
        fm.addAction(self.saveSystemAction)
        fm.addSeparator()
        self.exportVideoAction = QAction("Export &video…", self)
        self.exportVideoAction.setEnabled(False)
        fm.addAction(self.exportVideoAction)
        fm.addSeparator()
        fm.addAction(QAction("&Quit", self, shortcut=QKeySequence.Quit, triggered=self.close))

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

        hm = mb.addMenu("&Help")
        hm.addAction(QAction("&About", self, triggered=self.about))

        tb = QToolBar("Main")
        tb.setObjectName("mainToolBar")
        tb.setMovable(False)
        self.addToolBar(Qt.TopToolBarArea, tb)
        self.buildAction = QAction("Build", self, shortcut=QKeySequence("Ctrl+B"), triggered=self.systemPanel.build)
        self.trainAction = QAction("Train", self, shortcut=QKeySequence("Ctrl+T"), triggered=self.train)
        tb.addAction(self.buildAction)
        tb.addAction(self.trainAction)
        tb.addSeparator()
        tb.addAction(self.undoAction)
        tb.addAction(self.redoAction)
        tb.addSeparator()
        self.exportVideoButton = _tool_button(tb, "Export video…", "exportVideoButton")
        self.exportVideoButton.setEnabled(False)
        self.exportVideoButton.setToolTip("Video export is not available yet: it arrives with a later "
                                          "version of the studio (python main.py export-video)")
        self.exportVideoAction.setToolTip(self.exportVideoButton.toolTip())

        for key, slot in ((Qt.Key_Space, self.time.toggle), (Qt.Key_Right, lambda: self.time.step(1)),
                          (Qt.Key_Left, lambda: self.time.step(-1)), (Qt.Key_Home, self.time.first),
                          (Qt.Key_End, self.time.last), (Qt.Key_Escape, self.cancel)):
            sc = QShortcut(QKeySequence(key), self)
            sc.setContext(Qt.WindowShortcut)
            sc.activated.connect(slot)

    def _connect(self) -> None:
        sp, tp = self.systemPanel, self.trainPanel
        sp.built.connect(self._on_built)
        sp.error.connect(self.show_error)
        sp.kindChanged.connect(self._on_kind_changed)
        sp.kindEdited.connect(self._on_kind_edited)
        sp.potentialEdited.connect(self._on_potential_edited)
        tp.methodChanged.connect(self._on_method_edited)
        self.drawingPanel.built.connect(self._on_built)
        self.drawingPanel.error.connect(self.show_error)
        tp.trainRequested.connect(self.train)
        tp.cancelRequested.connect(self.cancel)
        tp.error.connect(self.show_error)
        forms = [*sp.builderForms.values(), *sp.potentialForms.values(), sp.startForm, tp.simForm,
                 *tp.methodForms.values()]
        for f in forms:
            f.valueEdited.connect(lambda n, o, v, f=f: self.undo.push(FieldCommand(f, n, o, v)))

        self.session.systemChanged.connect(self._on_system)
        self.session.rolloutStarted.connect(self._on_rollout_started)
        self.session.rolloutExtended.connect(self._on_rollout_extended)
        self.session.rolloutFinished.connect(self._on_rollout_finished)
        self.session.currentModelChanged.connect(self._on_current_model)
        self.time.frameChanged.connect(self.views.show_frame)
        self.time.frameChanged.connect(self._on_frame)
        self.time.playingChanged.connect(self._on_playing)

        for jobs in (self.trainJobs, self.rolloutJobs):
            jobs.progress.connect(tp.set_progress)
            jobs.failed.connect(self._on_failed)
        self.trainJobs.finished.connect(self._on_trained)
        self.trainJobs.cancelled.connect(lambda: self._on_cancelled("Training"))
        self.trainJobs.done.connect(self._update_running)
        self.rolloutJobs.partial.connect(self._on_chunk)
        self.rolloutJobs.finished.connect(lambda _r: self.session.finish_rollout())
        self.rolloutJobs.cancelled.connect(lambda: self._on_cancelled("Roll-out"))
        self.rolloutJobs.done.connect(self._on_rollout_job_done)

        self.modelsPanel.rolloutRequested.connect(self.rollout_model)
        self.modelsPanel.zeroShotRequested.connect(self.zero_shot)
        self.modelsPanel.saveRequested.connect(self.save_model)

    def _attach_projects(self) -> None:
        """Projects, imports and exports (studio.project_controller, written
        apart from this window): its File-menu entries replace the plain Open,
        and its video dialog drives the Export video button."""
        self.projects = None
        if not _has_module("studio.project_controller"):
            return
        from .project_controller import ProjectController

        self.projects = ProjectController(self)
        self.projects.install_menu(self.fileMenu, before=self.openAction)
        self.openAction.setVisible(False)
        self.exportVideoAction.setVisible(False)        # the controller's entry does it
        self.enable_export(self.projects.export_video,
                           "Export the roll-out as a video (MP4, WebM or GIF)")

    def enable_export(self, handler, tooltip: str = "Export the roll-out as a video") -> None:
        """Wire the Export video button and menu entry to ``handler()`` (called
        with no arguments). The export module installs itself through this,
        so the window needs no import of it."""
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
        self.statusLabel.setStyleSheet("color: #ff6b6b;")
        self.statusLabel.setText(message)

    def show_warning(self, message: str) -> None:
        """A note the user should see but that stopped nothing (amber)."""
        self.statusLabel.setStyleSheet("color: #f0b35a;")
        self.statusLabel.setText(f"warning: {message}")
        self.statusLabel.setToolTip(message)
        if self.session.rollout is not None:
            self.session.rollout.warnings.append(message)

    def show_status(self, message: str) -> None:
        self.statusLabel.setStyleSheet("")
        self.statusLabel.setText(message)

    def show_bug(self, summary: str, details: str) -> None:
        self.show_error(f"internal error: {summary}")
        box = QMessageBox(QMessageBox.Critical, "HGN Studio: internal error",
                          f"Something went wrong inside the studio (a bug, not your input):\n\n{summary}\n\n"
                          "The studio keeps running.", QMessageBox.Ok, self)
        box.setDetailedText(details)
        box.setModal(False)
        box.show()

    @Slot(str, str)
    def _on_kind_changed(self, old: str, new: str) -> None:
        """Carry kind-specific simulation defaults (studio.defaults.KIND_SIMULATION)
        into the forms where the user kept the old kind's value."""
        self._kind_fields = []
        if getattr(self, "_restoring", False) or self._applying_choice:
            return
        names = set(KIND_SIMULATION.get(old, {})) | set(KIND_SIMULATION.get(new, {}))
        changed = []
        for name in sorted(names):
            form = self.systemPanel.startForm if name in self.systemPanel.startForm.specs \
                else self.trainPanel.simForm
            if name not in form.specs:
                continue
            try:
                current = form.value(name)
            except HGNError:
                continue
            if current == simulation_default(old, name):
                value = simulation_default(new, name)
                if value != current:
                    form.set_value(name, value)
                    self._kind_fields.append((form, name, current, value))
                    changed.append(f"{name} {value:g}")
        if changed:
            self.show_status(f"settings for a {new} system: " + ", ".join(changed))

    # -- undo of combo changes ------------------------------------------------
    def _recording_choices(self) -> bool:
        return not (getattr(self, "_restoring", False) or self._applying_choice)

    @Slot(str, str, str, str)
    def _on_kind_edited(self, old: str, new: str, old_pot: str, new_pot: str) -> None:
        fields, self._kind_fields = self._kind_fields, []
        if not self._recording_choices():
            return
        label = self.systemPanel.kindCombo.itemText(self.systemPanel.kindCombo.findData(new))
        before = {"kind": old, "potential": old_pot, "fields": [(f, n, o) for f, n, o, _ in fields]}
        after = {"kind": new, "potential": new_pot, "fields": [(f, n, v) for f, n, _, v in fields]}
        self.undo.push(ChoiceCommand(self, before, after, f"Generator {label}"))

    @Slot(str, str)
    def _on_potential_edited(self, old: str, new: str) -> None:
        if self._recording_choices():
            label = self.systemPanel.potentialCombo.currentText()
            self.undo.push(ChoiceCommand(self, {"potential": old}, {"potential": new}, f"Potential {label}"))

    @Slot(str, str)
    def _on_method_edited(self, old: str, new: str) -> None:
        if self._recording_choices():
            label = self.trainPanel.methodCombo.currentText()
            self.undo.push(ChoiceCommand(self, {"method": old}, {"method": new}, f"Method {label}"))

    def _apply_choice(self, state: dict) -> None:
        """Put the combos (and the fields they changed) to ``state`` without
        pushing commands or applying kind-specific defaults again."""
        self._applying_choice = True
        try:
            if state.get("kind"):
                self.systemPanel.set_kind(state["kind"])
            if state.get("potential"):
                self.systemPanel.set_potential_kind(state["potential"])
            if state.get("method"):
                self.trainPanel.set_method(state["method"])
            for form, name, value in state.get("fields", ()):
                form.set_value(name, value)
                form.edited.emit(name)
        finally:
            self._applying_choice = False

    # -- system ------------------------------------------------------------
    def _initial_system(self) -> None:
        if self.session.system is None:
            self.systemPanel.build()
            if self.projects is not None:    # the start-up system is not an unsaved change
                self.projects.dirty = False
                self.projects._update_title()

    @Slot(object, dict)
    def _on_built(self, system, source) -> None:
        old = (self.session.system, self.session.system_source)
        if old[0] is None:
            self._apply_system(system, source)
            return
        self.undo.push(SetSystemCommand(self, old, (system, source), f"Build {system.name}"))

    def _apply_system(self, system, source) -> None:
        self.session.set_system(system, source)

    @Slot(object)
    def _on_system(self, system) -> None:
        if self.rolloutJobs.is_running():
            self.rolloutJobs.cancel()
        self.session.rollout = None
        self.time.pause()
        self.time.set_times(np.zeros(1), 1)
        self.views.set_system(system)
        for p in self.plots:
            p.clear_curves()
        self.show_status(describe(system))

    # -- training ----------------------------------------------------------
    def simulation_settings(self) -> dict:
        sim, _, _ = self.trainPanel.request()
        sim.update(self.systemPanel.start_settings())
        return sim

    @Slot()
    def train(self) -> bool:
        """Start training in the background; False (and a message) if not possible."""
        if self.trainJobs.is_running():
            self.show_error("a model is already being trained; cancel it first (Esc)")
            return False
        try:
            sim, method, settings = self.trainPanel.request()
            sim.update(self.systemPanel.start_settings())
            system = self.session.system
            if system is None:
                system = self.systemPanel.build()
                if system is None:
                    return False
                system = self.session.system
        except HGNError as exc:
            self.show_error(str(exc))
            return False
        self.timing = {"train_pressed": time.perf_counter()}
        self._current_sim = sim
        self.trainJobs.start("train", pipeline.train_job, system, sim, method, settings)
        self.trainPanel.set_running(True, "simulating ground truth…")
        self.show_status(f"training {method.label} on {system.name}…")
        return True

    @Slot()
    def cancel(self) -> None:
        ran = False
        for jobs in (self.trainJobs, self.rolloutJobs):
            if jobs.is_running():
                jobs.cancel()
                ran = True
        self._pending_rollout = None
        if ran:
            self.trainPanel.progress.setFormat("cancelling…")

    @Slot(object)
    def _on_trained(self, result: pipeline.TrainResult) -> None:
        self.timing["trained"] = time.perf_counter()
        s = self.session
        entry = ModelEntry(name=s.next_name(result.method), method=result.method, settings=result.settings,
                           model=result.model, system=result.dataset.system, dataset=result.dataset,
                           fit_time=result.fit_time, test_mse=result.test_mse, data_time=result.data_time,
                           loss=result.loss, info=result.info)
        entry.info["simulation"] = dict(self._current_sim)
        s.add_model(entry)
        self.trainPanel.resultLabel.setText(
            f"{entry.name}: fit {result.fit_time:.3g} s, test MSE {result.test_mse:.3g} "
            f"(data {result.data_time:.2g} s)")
        self.show_status(f"trained {entry.name}: fit time {result.fit_time:.3g} s, test MSE {result.test_mse:.3g}")
        self.rollout_model(len(s.models) - 1)

    def _on_cancelled(self, what: str) -> None:
        self.show_status(f"{what} cancelled")
        self.trainPanel.progress.setFormat("cancelled")

    @Slot(str, str)
    def _on_failed(self, message: str, details: str) -> None:
        if details:
            self.show_bug(message, details)
        else:
            self.show_error(message)
        self.trainPanel.progress.setFormat("failed")

    def _update_running(self) -> None:
        running = self.trainJobs.is_running() or self.rolloutJobs.is_running()
        self.trainPanel.set_running(running, self.trainPanel.progress.format() if not running else "")
        self.trainPanel.trainButton.setEnabled(not self.trainJobs.is_running() and bool(self.trainPanel.methods))
        self.trainPanel.cancelButton.setEnabled(running)

    # -- roll-outs ---------------------------------------------------------
    @Slot(int)
    def rollout_model(self, index: int) -> None:
        """The comparison roll-out of a model on the system it was fitted on."""
        s = self.session
        if not 0 <= index < len(s.models):
            return
        entry = s.models[index]
        s.set_current(index)
        sim = entry.info.get("simulation") or self._current_sim
        self._start_rollout(entry, entry.system, sim, sim.get("rollout_steps", SIMULATION.rollout_steps),
                            sim.get("rollout_save_every", SIMULATION.rollout_save_every), zero_shot=False)

    @Slot(int, int, int, int)
    def zero_shot(self, index: int, factor: int, steps: int, save_every: int) -> None:
        """Apply a model without refitting to its lattice scaled up ``factor`` times."""
        from core.physics.builders import rebuild_scaled

        s = self.session
        if not 0 <= index < len(s.models):
            self.show_error("train a model first")
            return
        entry = s.models[index]
        try:
            big = rebuild_scaled(entry.system, factor)
        except HGNError as exc:
            self.show_error(str(exc))
            return
        sim = entry.info.get("simulation") or self._current_sim
        self.show_status(f"zero-shot: {entry.name} on {big.name} ({big.n} particles)")
        self._start_rollout(entry, big, sim, steps, save_every, zero_shot=True)

    def _start_rollout(self, entry: ModelEntry, system, sim: dict, steps: int, save_every: int,
                       zero_shot: bool) -> None:
        if self.rolloutJobs.is_running():
            self._pending_rollout = (entry, system, sim, steps, save_every, zero_shot)
            self.rolloutJobs.cancel()
            return
        try:
            q0, p0 = pipeline.rollout_start(system, sim)
            from core.physics.forces import ForceField, kinetic_energy

            ke = float(kinetic_energy(p0, system.masses))
            pe = float(ForceField(system).energy(q0))
            buf = RolloutBuffer(system, sim["dt"], int(steps), int(save_every), label=entry.name,
                                model_name=entry.name, zero_shot=zero_shot)
        except HGNError as exc:
            self.show_error(str(exc))
            return
        buf.set_initial(q0, p0, ke, pe)
        self.session.start_rollout(buf)
        self.rolloutJobs.start("rollout", pipeline.rollout_job, entry.model, system, q0, p0, sim["dt"],
                               int(steps), int(save_every))
        self._update_running()

    @Slot(object)
    def _on_rollout_started(self, buf: RolloutBuffer) -> None:
        self.time.pause()
        self.views.set_rollout(buf)
        self.time.set_times(buf.t, buf.n_filled)
        self._update_plots()

    @Slot(object)
    def _on_chunk(self, item) -> None:
        which, payload = item
        if which == "warning":
            self.show_warning(payload)
            return
        self.session.add_rollout_chunk(which, payload)

    @Slot(int)
    def _on_rollout_extended(self, n: int) -> None:
        self.time.set_filled(n)
        # while a roll-out streams in, redraw the plots at most a few times a
        # second (each redraw of the three plots costs the GUI thread ~30 ms)
        if not self._plot_timer.isActive():
            self._plot_timer.start()
        if "first_frame" not in self.timing and "train_pressed" in self.timing and n > 1:
            self.views.show_frame(self.time.frame)
            self.views.truthView.surface_widget.repaint()
            self.timing["first_frame"] = time.perf_counter()

    @Slot(object)
    def _on_rollout_finished(self, buf: RolloutBuffer) -> None:
        self.time.set_filled(buf.n_filled)
        self._plot_timer.stop()
        self._update_plots()
        if buf.with_prediction and buf.n_filled > 1 and not buf.warnings:
            m = buf.measures()
            self.show_status(f"roll-out of {buf.model_name}{' (zero-shot)' if buf.zero_shot else ''}: "
                             f"{buf.system.n} particles, final position MSE {m['final_position_mse']:.3g}, "
                             f"max |energy drift| {m['max_abs_drift_prediction']:.3g}")

    def _on_rollout_job_done(self) -> None:
        self._update_running()
        if self._pending_rollout is not None:
            args, self._pending_rollout = self._pending_rollout, None
            self._start_rollout(*args)

    @Slot(int)
    def _on_current_model(self, index: int) -> None:
        entry = self.session.current_model()
        if entry is not None and entry.loss:
            self.lossPlot.show()
            self.lossPlot.set_curve("loss", np.arange(1, len(entry.loss) + 1), entry.loss)
        else:
            self.lossPlot.hide()

    def _update_plots(self) -> None:
        b = self.session.rollout
        if b is None:
            return
        n = b.n_filled
        t = b.t[:n]
        self.energyPlot.set_curve("ground truth", t, b.drift("truth"))
        if b.with_prediction:
            self.energyPlot.set_curve("prediction", t, b.drift("prediction"))
            self.errorPlot.set_curve("position MSE", t, b.position_mse())
        self.partsPlot.set_curve("kinetic (truth)", t, b.kinetic["truth"][:n])
        self.partsPlot.set_curve("potential (truth)", t, b.potential["truth"][:n])
        if b.with_prediction:
            self.partsPlot.set_curve("kinetic (prediction)", t, b.kinetic["prediction"][:n])
            self.partsPlot.set_curve("potential (prediction)", t, b.potential["prediction"][:n])

    @Slot(int)
    def _on_frame(self, f: int) -> None:
        now = time.perf_counter()
        if self.time.playing and now - self._cursor_time < PLAYBACK.cursor_interval:
            return
        self._cursor_time = now
        t = self.time.time(f)
        for p in self.plots:
            p.set_cursor(t)

    @Slot(bool)
    def _on_playing(self, playing: bool) -> None:
        if not playing:
            self._cursor_time = 0.0
            self._on_frame(self.time.frame)

    # -- files ---------------------------------------------------------------
    def open_file(self, path: str | None = None) -> None:
        from core.files import io
        if not path:
            path, _ = QFileDialog.getOpenFileName(self, "Open", "", "HGN files (*.npz);;All files (*)")
            if not path:
                return
        try:
            kind, obj = io.load_any(path)
        except HGNError as exc:
            self.show_error(str(exc))
            return
        from core.physics.system import System
        from core.physics.trajectory import Trajectory

        trajs = obj if isinstance(obj, (list, tuple)) else [obj]
        if isinstance(obj, System):
            self._on_built(obj, {"kind": "file", "path": str(path)})
        elif trajs and all(isinstance(t, Trajectory) for t in trajs):
            self.show_trajectory(trajs[0])
            more = f" (showing the first of {len(trajs)})" if len(trajs) > 1 else ""
            self.show_status(f"opened {path}: {kind}{more}")
        else:
            self.show_status(f"opened {path}: {kind}")

    def show_trajectory(self, traj) -> None:
        """Show a ground-truth trajectory alone (no prediction) on the timeline."""
        buf = RolloutBuffer(traj.system, traj.dt, (traj.n_frames - 1) * traj.save_every, traj.save_every,
                            label=traj.label, model_name="", with_prediction=False)
        buf.add("truth", traj)
        self.session.start_rollout(buf)
        self.session.finish_rollout()

    def save_system(self) -> None:
        from core.files import io
        if self.session.system is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save system", "system.npz", "HGN files (*.npz)")
        if path:
            try:
                io.save_system(path, self.session.system)
                self.show_status(f"saved {path}")
            except HGNError as exc:
                self.show_error(str(exc))

    @Slot(int)
    def save_model(self, index: int) -> None:
        if not 0 <= index < len(self.session.models):
            return
        entry = self.session.models[index]
        if not hasattr(entry.model, "save"):
            self.show_error("this model cannot be saved")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save model", f"{entry.name}.npz", "HGN files (*.npz)")
        if path:
            try:
                entry.model.save(path)
                self.show_status(f"saved {path}")
            except HGNError as exc:
                self.show_error(str(exc))

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
        save_json(st, "system", self.systemPanel.state())
        save_json(st, "train", self.trainPanel.state())
        save_json(st, "view", {"layout": self.views.layout_mode, "colour": self.views.colour_mode,
                               "speed": self.time.speed, "loop": self.time.loop,
                               "tab": self.leftTabs.currentIndex(),
                               "zero_shot": {"factor": self.modelsPanel.factorSpin.value(),
                                             "steps": self.modelsPanel.stepsSpin.value(),
                                             "save_every": self.modelsPanel.saveEverySpin.value()}})
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
        self._restoring = True
        try:
            self.systemPanel.restore(load_json(st, "system", {}) or {})
            self.trainPanel.restore(load_json(st, "train", {}) or {})
        finally:
            self._restoring = False
        v = load_json(st, "view", {}) or {}
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
        zs = v.get("zero_shot") or {}
        for key, spin in (("factor", self.modelsPanel.factorSpin), ("steps", self.modelsPanel.stepsSpin),
                          ("save_every", self.modelsPanel.saveEverySpin)):
            if isinstance(zs.get(key), int):
                spin.setValue(zs[key])
        self.undo.clear()

    def reset_defaults(self) -> None:
        self.systemPanel.reset()
        self.trainPanel.reset()
        self.undo.clear()
        self.show_status("settings reset to defaults")

    def closeEvent(self, ev):  # noqa: N802
        self.time.pause()
        self.save_settings()
        self.trainJobs.shutdown()
        self.rolloutJobs.shutdown()
        super().closeEvent(ev)


def _tool_button(tb: QToolBar, text: str, name: str):
    from PySide6.QtWidgets import QToolButton

    b = QToolButton(tb)
    b.setText(text)
    b.setObjectName(name)
    tb.addWidget(b)
    return b


def _has_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
