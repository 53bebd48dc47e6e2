"""Projects in the studio: save and open, recent files, drag and drop,
autosave and recovery, imports and exports of files for other programs.

:class:`ProjectController` attaches to the main window: it adds its actions
to the File menu (:meth:`install_menu`), accepts dropped files through an
event filter on the window, and keeps an autosave of the open project.

Autosave and recovery. While something changed (system, models, roll-out),
the project is written every :data:`AUTOSAVE_SECONDS` (without training
data, so it stays small and quick) in a background thread to
``autosave/autosave-<pid>.hgnproj`` next to the studio's settings file. A
clean exit deletes it. At the next start, autosaves whose process is no
longer running (a crash, a kill, a power cut) are found and the newest is
offered for restoring; several studios running at once each keep their own.

Opening anything (File > Open, drag and drop, recent files) goes through
:meth:`open_path`, which reads the whole file first and changes nothing when
it is corrupt, truncated or foreign; the message says what was wrong.
Projects restore what the user saw (:func:`studio.project_io.apply_project`);
system and trajectory files (``.npz``, ``.xyz``, ``.extxyz``) are shown as
before, and trajectories are kept as imported ground truth that the model
can be fitted on (*Fit on imported trajectories*) and compared with.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox

from core.errors import HGNError
from core.files.project import PROJECT_SUFFIX

from .workers import JobRunner

#: seconds between autosaves while the project has unsaved changes
AUTOSAVE_SECONDS = 120
#: entries in File > Recent projects
RECENT_MAX = 8
RECENT_KEY = "recent/projects"
#: files that may be dropped on the window or opened
OPEN_SUFFIXES = (PROJECT_SUFFIX, ".npz", ".xyz", ".extxyz")
PROJECT_FILTER = f"HGN Studio projects (*{PROJECT_SUFFIX})"
OPEN_FILTER = (f"HGN Studio files (*{PROJECT_SUFFIX} *.npz *.xyz *.extxyz);;{PROJECT_FILTER};;"
               "Systems and trajectories (*.npz);;Extended XYZ (*.xyz *.extxyz);;All files (*)")


def _write_project(path, project, datasets, *, progress=None, cancel=None, emit=None):
    from core.files.project import save_project

    return save_project(path, project, datasets=datasets)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


class ProjectController(QObject):
    """Project files of one main window (see the module notes)."""

    projectOpened = Signal(str)
    projectSaved = Signal(str)
    autosaved = Signal(str)

    def __init__(self, window, autosave_seconds: float = AUTOSAVE_SECONDS, ask=None):
        super().__init__(window)
        self.window = window
        self.path: Path | None = None
        self.dirty = False
        self.ground_truth: list = []
        self.last_export: dict = {}
        self._loading = False
        #: ask(title, text) -> bool; a QMessageBox by default (tests replace it)
        self.ask = ask or self._ask
        self.saveJobs = JobRunner(self)
        self.saveJobs.finished.connect(lambda p: self.autosaved.emit(str(p)))
        self.saveJobs.failed.connect(lambda msg, _d: self.window.show_error(f"autosave failed: {msg}"))
        self._timer = QTimer(self)
        self._timer.setInterval(int(autosave_seconds * 1000))
        self._timer.timeout.connect(self.autosave)
        self._timer.start()
        s = window.session
        for sig in (s.systemChanged, s.modelsChanged, s.rolloutFinished, s.currentModelChanged):
            sig.connect(self._changed)
        window.setAcceptDrops(True)
        window.installEventFilter(self)
        self._make_actions()
        self._update_title()

    # ------------------------------------------------------------------
    # actions and menus
    # ------------------------------------------------------------------
    def _action(self, text, name, slot, shortcut=None, tip="") -> QAction:
        a = QAction(text, self.window)
        a.setObjectName(name)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
        if tip:
            a.setToolTip(tip)
            a.setStatusTip(tip)
        a.triggered.connect(lambda _checked=False: slot())
        return a

    def _make_actions(self) -> None:
        a = self._action
        self.openProjectAction = a("&Open…", "openProjectAction", self.open_dialog, QKeySequence.Open,
                                   tip="Open a project, system or trajectory file (.hgnproj, .npz, .xyz)")
        self.saveProjectAction = a("&Save project", "saveProjectAction", self.save, QKeySequence.Save,
                                   "Save the system, settings, models, roll-out and view in one file")
        self.saveProjectAsAction = a("Save project &as…", "saveProjectAsAction", self.save_as,
                                     QKeySequence.SaveAs)
        self.recentMenu = QMenu("Recent projects", self.window)
        self.recentMenu.setObjectName("recentMenu")
        self.recentMenu.aboutToShow.connect(self._fill_recent)
        self.importAction = a("&Import trajectory…", "importTrajectoryAction", self.import_dialog,
                              tip="Extended XYZ or HGN Studio trajectory, as ground truth to fit on")
        self.fitImportedAction = a("&Fit on imported trajectories", "fitImportedAction", self.fit_imported,
                                   tip="Train the selected method on the imported ground truth")
        self.compareImportedAction = a("&Compare with imported trajectory", "compareImportedAction",
                                       self.compare_imported,
                                       tip="Roll the current model out from the imported trajectory's start")
        self.exportSystemXyzAction = a("Export system as &XYZ…", "exportSystemXyzAction", self.export_system_xyz,
                                       tip="Extended XYZ for OVITO or ASE")
        self.exportRolloutXyzAction = a("Export roll-out as XY&Z…", "exportRolloutXyzAction",
                                        self.export_rollout_xyz,
                                        tip="Ground truth and prediction as two extended XYZ files")
        self.exportFrameAction = a("Export &frame as PNG…", "exportFramePngAction", self.export_frame_png)
        self.exportPlotsAction = a("Export &plots (PNG and CSV)…", "exportPlotsAction", self.export_plots)
        self.exportVideoAction = a("Export &video…", "exportVideoDialogAction", self.export_video,
                                   tip="MP4, WebM or GIF of the roll-out")
        self._update_enabled()

    def install_menu(self, menu: QMenu, before: QAction | None = None) -> None:
        """Put the project actions into ``menu`` (before ``before``)."""
        def add(x):
            if isinstance(x, QMenu):
                menu.insertMenu(before, x) if before is not None else menu.addMenu(x)
            elif x is None:
                menu.insertSeparator(before) if before is not None else menu.addSeparator()
            else:
                menu.insertAction(before, x) if before is not None else menu.addAction(x)

        for x in (self.openProjectAction, self.saveProjectAction, self.saveProjectAsAction, self.recentMenu,
                  None, self.importAction, self.fitImportedAction, self.compareImportedAction, None,
                  self.exportVideoAction, self.exportFrameAction, self.exportPlotsAction,
                  self.exportSystemXyzAction, self.exportRolloutXyzAction, None):
            add(x)

    def _update_enabled(self) -> None:
        s = self.window.session
        has_gt = bool(self.ground_truth)
        self.fitImportedAction.setEnabled(has_gt)
        self.compareImportedAction.setEnabled(has_gt and s.current_model() is not None)
        has_roll = s.rollout is not None and s.rollout.n_filled > 0
        self.exportRolloutXyzAction.setEnabled(has_roll)
        self.exportVideoAction.setEnabled(has_roll)
        self.exportSystemXyzAction.setEnabled(s.system is not None)

    # ------------------------------------------------------------------
    # state
    # ------------------------------------------------------------------
    def _changed(self, *args) -> None:
        if not self._loading:
            self.dirty = True
            self._update_title()
        self._update_enabled()

    def _update_title(self) -> None:
        name = self.path.name if self.path is not None else "untitled"
        self.window.setWindowTitle(f"HGN Studio – {name}[*]")
        self.window.setWindowModified(self.dirty)

    def project(self, name: str = ""):
        from .project_io import window_to_project

        return window_to_project(self.window, self.ground_truth,
                                 name or (self.path.stem if self.path is not None else ""))

    # ------------------------------------------------------------------
    # save and open
    # ------------------------------------------------------------------
    @Slot()
    def save(self) -> bool:
        if self.path is None:
            return self.save_as()
        return self.save_to(self.path)

    @Slot()
    def save_as(self, path=None) -> bool:
        if not path:
            start = str(self.path or Path(self._folder()) / f"project{PROJECT_SUFFIX}")
            path, _ = QFileDialog.getSaveFileName(self.window, "Save project", start, PROJECT_FILTER)
            if not path:
                return False
        path = Path(path)
        if not path.suffix:
            path = path.with_suffix(PROJECT_SUFFIX)
        return self.save_to(path)

    def save_to(self, path) -> bool:
        from core.files.project import save_project

        path = Path(path)
        try:
            save_project(path, self.project(path.stem))
        except HGNError as exc:
            self.window.show_error(str(exc))
            return False
        self.path, self.dirty = path, False
        self._update_title()
        self.add_recent(path)
        self.window.show_status(f"saved project {path}")
        self.projectSaved.emit(str(path))
        return True

    @Slot()
    def open_dialog(self) -> bool:
        path, _ = QFileDialog.getOpenFileName(self.window, "Open", self._folder(), OPEN_FILTER)
        return self.open_path(path) if path else False

    def open_path(self, path) -> bool:
        """Open a project, system or trajectory file; False (and a message,
        nothing changed) when it cannot be read."""
        from core.files import io
        from core.container import load_npz
        from core.files.project import PROJECT_KIND, load_project

        path = Path(path)
        try:
            if io.is_xyz(path):
                return self.import_trajectory(path)
            kind = load_npz(path)[0].get("kind")
        except HGNError as exc:
            self.window.show_error(str(exc))
            return False
        if kind == PROJECT_KIND:
            try:
                project = load_project(path)
            except HGNError as exc:
                self.window.show_error(str(exc))
                return False
            self._apply(project)
            self.path, self.dirty = path, False
            self._update_title()
            self.add_recent(path)
            from core.files.project import describe_project

            self.window.show_status(f"opened project {path.name}: {describe_project(project)}")
            self.projectOpened.emit(str(path))
            return True
        if kind == "trajectory":
            return self.import_trajectory(path)
        try:
            io.load_any(path)      # read completely before anything changes
        except HGNError as exc:
            self.window.show_error(str(exc))
            return False
        self.window.open_file(str(path))
        return True

    def _apply(self, project) -> None:
        from .project_io import apply_project

        self._loading = True
        try:
            self.ground_truth = list(project.ground_truth)
            apply_project(self.window, project)
        finally:
            self._loading = False
        self._update_enabled()

    # ------------------------------------------------------------------
    # recent projects
    # ------------------------------------------------------------------
    def recent(self) -> list[str]:
        from .settings import load_json

        items = load_json(self.window.settings, RECENT_KEY, []) or []
        return [str(p) for p in items if isinstance(p, str)]

    def add_recent(self, path) -> None:
        from .settings import save_json

        p = str(Path(path).resolve())
        items = [p] + [x for x in self.recent() if x != p]
        save_json(self.window.settings, RECENT_KEY, items[:RECENT_MAX])
        self.window.settings.sync()

    def clear_recent(self) -> None:
        from .settings import save_json

        save_json(self.window.settings, RECENT_KEY, [])

    @Slot()
    def _fill_recent(self) -> None:
        m = self.recentMenu
        m.clear()
        items = self.recent()
        for p in items:
            act = m.addAction(Path(p).name)
            act.setToolTip(p)
            act.setStatusTip(p)
            act.setEnabled(Path(p).exists())
            act.triggered.connect(lambda _c=False, p=p: self.open_path(p))
        if not items:
            m.addAction("(none)").setEnabled(False)
        else:
            m.addSeparator()
            m.addAction("Clear list").triggered.connect(self.clear_recent)

    # ------------------------------------------------------------------
    # drag and drop
    # ------------------------------------------------------------------
    @staticmethod
    def dropped_paths(mime) -> list[Path]:
        if not mime.hasUrls():
            return []
        out = []
        for url in mime.urls():
            if url.isLocalFile():
                p = Path(url.toLocalFile())
                if p.suffix.lower() in OPEN_SUFFIXES:
                    out.append(p)
        return out

    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 (Qt name)
        if obj is self.window:
            t = ev.type()
            if t in (QEvent.DragEnter, QEvent.DragMove):
                if self.dropped_paths(ev.mimeData()):
                    ev.acceptProposedAction()
                    return True
            elif t == QEvent.Drop:
                paths = self.dropped_paths(ev.mimeData())
                if paths:
                    ev.acceptProposedAction()
                    # projects first; then systems and trajectories in the order given
                    for p in sorted(paths, key=lambda p: p.suffix.lower() != PROJECT_SUFFIX):
                        self.open_path(p)
                    return True
            elif t == QEvent.Close:
                self.shutdown()
        return super().eventFilter(obj, ev)

    # ------------------------------------------------------------------
    # autosave and recovery
    # ------------------------------------------------------------------
    def autosave_folder(self) -> Path:
        return Path(self.window.settings.fileName()).resolve().parent / "autosave"

    def autosave_path(self) -> Path:
        return self.autosave_folder() / f"autosave-{os.getpid()}{PROJECT_SUFFIX}"

    @Slot()
    def autosave(self, force: bool = False, wait: bool = False) -> bool:
        """Write the autosave (when something changed): in a background
        thread, or on this thread with ``wait=True``."""
        if not (self.dirty or force) or self.saveJobs.is_running() or self.window.session.system is None:
            return False
        folder = self.autosave_folder()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            project = self.project()
            if wait:
                path = _write_project(self.autosave_path(), project, False)
                self.autosaved.emit(str(path))
                return True
        except (OSError, HGNError) as exc:
            self.window.show_error(f"autosave failed: {exc}")
            return False
        # the project holds references to arrays that are never written again
        # (a new roll-out or system makes new ones), so the thread may read them
        return self.saveJobs.start("autosave", _write_project, self.autosave_path(), project, False)

    def recovery_candidates(self) -> list[Path]:
        """Autosaves of studios that are no longer running, newest first."""
        folder = self.autosave_folder()
        if not folder.is_dir():
            return []
        out = []
        for p in folder.glob(f"autosave-*{PROJECT_SUFFIX}"):
            try:
                pid = int(p.name[len("autosave-"):-len(PROJECT_SUFFIX)])
            except ValueError:
                continue
            if pid != os.getpid() and not _pid_alive(pid):
                out.append(p)
        return sorted(out, key=lambda p: p.stat().st_mtime, reverse=True)

    def offer_recovery(self) -> bool:
        """Ask whether to restore the newest crashed session's autosave;
        True when it was restored. Stale autosaves are removed either way."""
        cands = self.recovery_candidates()
        if not cands:
            return False
        newest = cands[0]
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(newest.stat().st_mtime))
        restored = False
        if self.ask("Restore autosaved project?",
                    f"HGN Studio did not close properly last time. An autosave from {when} was found.\n\n"
                    "Restore it?"):
            from core.files.project import load_project

            try:
                project = load_project(newest)
            except HGNError as exc:
                self.window.show_error(f"the autosave cannot be restored: {exc}")
            else:
                self._apply(project)
                self.path, self.dirty = None, True
                self._update_title()
                self.window.show_status(f"restored the autosave from {when}")
                restored = True
        for p in cands:
            try:
                p.unlink()
            except OSError:
                pass
        return restored

    def _ask(self, title: str, text: str) -> bool:
        return QMessageBox.question(self.window, title, text, QMessageBox.Yes | QMessageBox.No,
                                    QMessageBox.Yes) == QMessageBox.Yes

    def shutdown(self) -> None:
        """Clean exit: stop autosaving and remove this session's autosave."""
        self._timer.stop()
        self.saveJobs.shutdown(10000)
        try:
            self.autosave_path().unlink()
        except OSError:
            pass

    # ------------------------------------------------------------------
    # imported ground truth
    # ------------------------------------------------------------------
    @Slot()
    def import_dialog(self) -> bool:
        path, _ = QFileDialog.getOpenFileName(self.window, "Import trajectory", self._folder(),
                                              "Trajectories (*.xyz *.extxyz *.npz);;All files (*)")
        return self.import_trajectory(path) if path else False

    def read_trajectory(self, path):
        """A trajectory from extended XYZ or an HGN Studio file. A foreign XYZ
        file without a graph is read with the current system's graph and
        potential when its particle counts match."""
        from core.files import io, xyz
        path = Path(path)
        if io.is_xyz(path):
            try:
                return xyz.read_trajectory(path)
            except HGNError as first:
                sys_ = self.window.session.system
                if sys_ is None:
                    raise
                try:
                    frames = xyz.read_frames(path)
                except HGNError:
                    raise first from None
                if len(frames[0]) != sys_.n:
                    raise HGNError(f"{first} (the current system has {sys_.n} particles, the file "
                                   f"{len(frames[0])}, so its graph cannot be used)") from None
                tr = xyz.read_trajectory(path, system=sys_)
                tr.meta.setdefault("import", {})
                return tr
        kind, value = io.load_any(path)
        if kind != "trajectory":
            raise HGNError(f"{path.name} holds a {kind}, not a trajectory")
        return value[0]

    def import_trajectory(self, path) -> bool:
        """Show an imported trajectory as ground truth and keep it to fit on."""
        try:
            tr = self.read_trajectory(path)
        except HGNError as exc:
            self.window.show_error(str(exc))
            return False
        w = self.window
        if w.session.system is None or tr.system is not w.session.system:
            w._on_built(tr.system, {"kind": "file", "path": str(path)})
        self.ground_truth.append(tr)
        w.show_trajectory(tr)
        self._changed()
        w.show_status(f"imported {Path(path).name}: {tr.n_frames} frames of {tr.system.n} particles "
                      f"(ground truth to fit on: File > Fit on imported trajectories)")
        return True

    @Slot()
    def fit_imported(self) -> bool:
        """Train the chosen method on the imported trajectories (background job)."""
        w = self.window
        if not self.ground_truth:
            w.show_error("import a trajectory first (File > Import trajectory)")
            return False
        if w.trainJobs.is_running():
            w.show_error("a model is already being trained; cancel it first (Esc)")
            return False
        try:
            sim, method, settings = w.trainPanel.request()
        except HGNError as exc:
            w.show_error(str(exc))
            return False
        system = self.ground_truth[-1].system
        trajs = [t for t in self.ground_truth if t.system is system]
        if w.session.system is not system:
            w._on_built(system, {"kind": "file", "path": "imported"})
        sim = dict(sim)
        last = trajs[-1]
        sim.update(dt=float(last.dt), rollout_save_every=int(last.save_every),
                   rollout_steps=int((last.n_frames - 1) * last.save_every))
        w._current_sim = sim
        w.timing = {"train_pressed": time.perf_counter()}
        w.trainJobs.start("train", fit_imported_job, trajs, sim, method, settings)
        w.trainPanel.set_running(True, "fitting imported data…")
        n = len(trajs)
        w.show_status(f"training {method.label} on {n} imported trajector{'ies' if n > 1 else 'y'}…")
        return True

    @Slot()
    def compare_imported(self) -> bool:
        """The current model rolled out from the imported trajectory's start,
        next to the imported trajectory itself."""
        from core.learning.rollout import rollout

        from .export.run import buffer_from_rollout

        w = self.window
        entry = w.session.current_model()
        if entry is None or not self.ground_truth or entry.model is None:
            w.show_error("import a trajectory and fit a model first")
            return False
        truth = self.ground_truth[-1]
        try:
            pred = rollout(entry.model, truth.system, truth.q[0], truth.p[0], truth.dt,
                           (truth.n_frames - 1) * truth.save_every, save_every=truth.save_every)
        except HGNError as exc:
            w.show_error(str(exc))
            return False
        pred.label = entry.name
        if len(pred.t) == len(truth.t):
            pred.t = truth.t.copy()
        buf = buffer_from_rollout(truth, pred, model_name=entry.name, label=entry.name)
        buf.finished = False
        if w.rolloutJobs.is_running():
            w._pending_rollout = None
            w.rolloutJobs.shutdown()
        w.session.start_rollout(buf)
        w.session.finish_rollout()
        return True

    # ------------------------------------------------------------------
    # exports
    # ------------------------------------------------------------------
    def _folder(self) -> str:
        if self.path is not None:
            return str(self.path.parent)
        return os.getcwd()

    def _ask_path(self, title: str, default_name: str, filt: str) -> str:
        path, _ = QFileDialog.getSaveFileName(self.window, title, str(Path(self._folder()) / default_name), filt)
        return path

    def export_settings(self):
        """Export choices: the last used, with the views' layout and colouring."""
        from .export.settings import ExportSettings

        s = ExportSettings.from_dict(self.last_export)
        v = self.window.views
        s.layout = "side" if v.layout_mode == "side" else "overlay"
        s.colour = v.colour_mode
        return s

    def _camera(self) -> dict:
        from .export.gui import camera_state

        return camera_state(self.window.views.truthView.view.camera)

    @Slot()
    def export_video(self):
        """Open the export dialog (non-modal); returns it."""
        from .export.gui import ExportVideoDialog

        w = self.window
        buf = w.session.rollout
        if buf is None or buf.n_filled < 1:
            w.show_error("nothing to export yet: train a model or open a trajectory first")
            return None
        settings = self.export_settings()
        if not buf.with_prediction:
            settings.layout = "truth"
            if settings.colour == "error":
                settings.colour = "uniform"
        dlg = ExportVideoDialog(buf, settings, camera=self._camera(), folder=self._folder(), parent=w)
        dlg.exported.connect(lambda p: w.show_status(f"exported video {p}"))
        dlg.exported.connect(lambda _p: self.last_export.update(dlg.settings().to_dict()))
        dlg.setModal(False)
        dlg.show()
        self.dialog = dlg
        return dlg

    @Slot()
    def export_frame_png(self, path=None, size=None) -> bool:
        from .export.images import frame_png, static_buffer

        w = self.window
        if not path:
            path = self._ask_path("Export frame", "frame.png", "PNG images (*.png)")
            if not path:
                return False
        s = self.export_settings()
        if size is not None:
            s.width, s.height = size
        buf = w.session.rollout
        frame = w.time.frame
        if buf is None or buf.n_filled < 1:
            if w.session.system is None:
                w.show_error("nothing to draw yet")
                return False
            buf, frame = static_buffer(w.session.system), 0
        if not buf.with_prediction:
            s.layout = "truth"
            if s.colour == "error":
                s.colour = "uniform"
        try:
            frame_png(buf, s, min(frame, buf.n_filled - 1), path, camera=self._camera())
        except HGNError as exc:
            w.show_error(str(exc))
            return False
        w.show_status(f"saved frame {frame} as {path}")
        return True

    @Slot()
    def export_plots(self, folder=None) -> list:
        """Every visible plot as ``<name>.png`` and ``<name>.csv`` in a folder."""
        from .export.images import plot_csv, plot_png

        w = self.window
        if not folder:
            folder = QFileDialog.getExistingDirectory(w, "Export plots to folder", self._folder())
            if not folder:
                return []
        written = []
        plots = list(w.plots) + ([w.lossPlot] if w.lossPlot.isVisible() else [])
        try:
            for p in plots:
                name = p.objectName() or "plot"
                try:
                    written.append(plot_csv(p, Path(folder) / f"{name}.csv"))
                except HGNError as exc:
                    if "empty" in str(exc):
                        continue
                    raise
                written.append(plot_png(p, Path(folder) / f"{name}.png"))
        except HGNError as exc:
            w.show_error(str(exc))
            return written
        w.show_status(f"exported {len(written)} plot files to {folder}" if written else "the plots are empty")
        return written

    @Slot()
    def export_system_xyz(self, path=None) -> bool:
        from core.files import xyz
        from core.physics.forces import ForceField
        from core.physics.trajectory import Trajectory
        import numpy as np

        w = self.window
        s = w.session.system
        if s is None:
            return False
        if not path:
            path = self._ask_path("Export system", f"{s.name or 'system'}.xyz", "Extended XYZ (*.xyz *.extxyz)")
            if not path:
                return False
        q = s.positions[None]
        tr = Trajectory(s, np.zeros(1), q, np.zeros_like(q), np.zeros(1),
                        np.array([ForceField(s).energy(s.positions)]), np.zeros((1, s.dim)), 1.0, 1,
                        label=s.name or "system")
        try:
            xyz.write_trajectory(path, tr)
        except HGNError as exc:
            w.show_error(str(exc))
            return False
        w.show_status(f"saved {path}")
        return True

    @Slot()
    def export_rollout_xyz(self, path=None) -> list:
        """``NAME_truth.xyz`` and ``NAME_prediction.xyz`` from the roll-out."""
        from core.files import xyz
        from .project_io import buffer_to_record

        w = self.window
        rec = buffer_to_record(w.session.rollout)
        if rec is None:
            w.show_error("no roll-out to export")
            return []
        if not path:
            path = self._ask_path("Export roll-out", "rollout.xyz", "Extended XYZ (*.xyz *.extxyz)")
            if not path:
                return []
        path = Path(path)
        stem, suffix = path.stem, path.suffix or ".xyz"
        out = []
        try:
            for which, tr in (("truth", rec.truth), ("prediction", rec.prediction)):
                if tr is None:
                    continue
                target = path.with_name(f"{stem}_{which}{suffix}")
                out.append(xyz.write_trajectory(target, tr))
        except HGNError as exc:
            w.show_error(str(exc))
            return out
        w.show_status("saved " + ", ".join(str(p) for p in out))
        return out


def fit_imported_job(trajectories, sim: dict, method, settings: dict, *, progress=None, cancel=None,
                     emit=None):
    """Fit ``method`` on imported trajectories (the Train job's counterpart
    for data from another MD code); returns a pipeline.TrainResult."""
    from core.jobs import check_cancel, report
    from core.learning.metrics import derivative_mse
    from core.files.project import dataset_from_trajectories

    from .pipeline import TrainResult

    config = method.make_config(settings)
    t0 = time.perf_counter()
    report(progress, "import", 0.0)
    ds = dataset_from_trajectories(trajectories, test_fraction=sim.get("test_fraction", 0.25),
                                   seed=int(sim.get("seed", 0)))
    data_time = time.perf_counter() - t0
    check_cancel(cancel)
    t1 = time.perf_counter()
    model = method.fit(ds, config, progress=progress, cancel=cancel)
    wall = time.perf_counter() - t1
    info = dict(getattr(model, "info", {}) or {})
    info["data"] = f"imported: {', '.join(ds.meta['labels'])} (forces {ds.meta['forces']})"
    idx = ds.test if len(ds.test) else ds.train
    test_mse = float(derivative_mse(model, ds, indices=idx))
    from .methods import loss_curve

    return TrainResult(model=model, dataset=ds, method=method.key, settings=dict(settings),
                       fit_time=float(info.get("fit_time", wall)), test_mse=test_mse, data_time=data_time,
                       loss=loss_curve(model), info=info)

