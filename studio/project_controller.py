"""Projects in the studio: save and open, recent files, drag and drop,
autosave and recovery, imports and exports of files for other programs.

:class:`ProjectController` attaches to the main window: it adds its actions
to the File menu (:meth:`install_menu`), accepts dropped files through an
event filter on the window, and keeps an autosave of the open project.

Saving writes the window's :class:`~studio.document.Document` (its core
Project, after the views have put their state into it); opening a project
replaces the document, and every panel, view and table refreshes from its
signals.

Unsaved work. Quitting (Ctrl+Q, closing the window) or opening another
project while models exist that no file holds asks to save, discard or
cancel (:meth:`confirm_close`; the question is the injectable ``choose``).

Autosave and recovery. While something changed (system, models, roll-out),
the project is written every :data:`AUTOSAVE_SECONDS` (without training
data, so it stays small and quick) in the background to
``autosave/autosave-<run>.hgnproj`` next to the studio's settings file,
named by an identity of the studio run and guarded by a lock the run holds
while it lives (:mod:`studio.autosave`). A clean exit deletes it unless it
still holds models nobody saved or discarded. At the next start, every
autosave whose run is over (its lock is free: a crash, a kill, a power cut)
is offered, newest first: restore, discard, or keep for the next start;
nothing is deleted but by that choice. Several studios running at once each
keep their own.

Opening anything (File > Open, drag and drop, recent files) goes through
:meth:`open_path`, which reads the whole file first and changes nothing when
it is corrupt, truncated or foreign; the message says what was wrong.
System and trajectory files (``.npz``, ``.xyz``, ``.extxyz``) are shown as
well; trajectories become imported ground truth in the document that a
model can be fitted on (*Fit on imported trajectories*) and compared with.
The training itself is the jobs object's (:mod:`studio.jobs`).

Exports suggest the project's folder, or the user's videos (pictures,
documents) folder for a project not saved yet -- never the program's own
folder.
"""
from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QStandardPaths, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox

from core.errors import HGNError
from core.files.project import PROJECT_SUFFIX

from .autosave import RunLock, orphaned_autosaves, remove
from .pacing import pacer
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


def _autosave_copy(project):
    """A shallow copy without training data (what the autosave writes; small
    to hand to the background job)."""
    import dataclasses

    return dataclasses.replace(project, models=[dataclasses.replace(m, dataset=None) for m in project.models],
                               view=dict(project.view), ui=dict(project.ui))


class ProjectController(QObject):
    """Project files of one main window (see the module notes)."""

    projectOpened = Signal(str)
    projectSaved = Signal(str)
    autosaved = Signal(str)

    def __init__(self, window, autosave_seconds: float = AUTOSAVE_SECONDS, ask=None, choose=None,
                 recover=None):
        super().__init__(window)
        self.window = window
        self.document = window.document
        self.path: Path | None = None
        self.last_export: dict = {}
        #: the user chose to discard the unsaved models (the autosave may go)
        self._discarded = False
        #: ask(title, text) -> bool; a QMessageBox by default (tests replace it)
        self.ask = ask or self._ask
        #: recover(path, when, can_restore) -> "restore" | "discard" | "keep": what to do with
        #: an autosave of a run that is over; a QMessageBox by default (tests replace it)
        self.recover = recover or self._recover
        #: this run's identity, its autosave and the lock that says it is alive (studio.autosave)
        self.run = RunLock(self.autosave_folder())
        #: choose(title, text) -> "save" | "discard" | "cancel"; a QMessageBox by default
        self.choose = choose or self._choose
        self.saveJobs = JobRunner(self)
        self.saveJobs.finished.connect(lambda p: self.autosaved.emit(str(p)))
        self.saveJobs.failed.connect(lambda msg, _d: self.window.show_error(f"autosave failed: {msg}"))
        self._timer = QTimer(self)
        self._timer.setInterval(int(autosave_seconds * 1000))
        self._timer.timeout.connect(self.autosave)
        self._timer.start()
        d = self.document
        d.dirtyChanged.connect(lambda _d: self._update_title())
        for sig in (d.systemChanged, d.groundTruthChanged):
            sig.connect(self._update_enabled)
        # a roll-out's start and end, a new model: in a pacer turn of its own
        # (studio.pacing; enabling an action updates the menus and the tool
        # bar showing it, which should not share the batch of a roll-out's start)
        for sig in (d.modelsChanged, d.rolloutStarted, d.rolloutFinished, d.currentModelChanged):
            sig.connect(lambda *_a: pacer().later(self.exportVideoAction, self._update_enabled))
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

    def _update_enabled(self, *_args) -> None:
        s = self.document
        has_gt = bool(s.ground_truth)
        self.fitImportedAction.setEnabled(has_gt)
        self.compareImportedAction.setEnabled(has_gt and s.current_model() is not None)
        has_roll = s.rollout is not None and s.rollout.n_filled > 0
        self.exportRolloutXyzAction.setEnabled(has_roll)
        self.exportVideoAction.setEnabled(has_roll)
        self.exportSystemXyzAction.setEnabled(s.system is not None)

    # ------------------------------------------------------------------
    # state
    # ------------------------------------------------------------------
    @property
    def dirty(self) -> bool:
        """Something changed since the project was saved or opened."""
        return self.document.dirty

    @property
    def ground_truth(self) -> list:
        """The document's imported trajectories."""
        return self.document.ground_truth

    def _update_title(self) -> None:
        name = self.path.name if self.path is not None else "untitled"
        self.window.setWindowTitle(f"HGN Studio – {name}[*]")
        self.window.setWindowModified(self.dirty)

    def project(self, name: str = ""):
        """The document's project, ready to write (the views' state in it)."""
        return self.document.about_to_save(name or (self.path.stem if self.path is not None else ""))

    # ------------------------------------------------------------------
    # unsaved work
    # ------------------------------------------------------------------
    def confirm_close(self, what: str = "quitting") -> bool:
        """True when the open project may go: nothing unsaved, or the user
        saved it or chose to discard it; False (nothing happens) on Cancel."""
        doc = self.document
        if not doc.has_unsaved_models():
            return True
        n = sum(1 for m in doc.models)
        answer = self.choose("Unsaved models",
                             f"The project has {n} fitted model{'s' if n != 1 else ''} that no file holds.\n\n"
                             f"Save the project before {what}?")
        if answer == "save":
            return self.save()
        if answer == "discard":
            self._discarded = True
            return True
        return False

    def _choose(self, title: str, text: str) -> str:
        box = QMessageBox(QMessageBox.Warning, title, text, QMessageBox.Save | QMessageBox.Discard
                          | QMessageBox.Cancel, self.window)
        box.setDefaultButton(QMessageBox.Save)
        answer = box.exec()
        return {QMessageBox.Save: "save", QMessageBox.Discard: "discard"}.get(answer, "cancel")

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
        self.path = path
        self.document.mark_saved()
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
        from core.container import load_npz
        from core.files import io
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
            if not self.confirm_close("opening another project"):
                return False
            self.path = path
            self._apply(project)
            self._update_title()
            self.add_recent(path)
            from core.files.project import describe_project

            self.window.show_status(f"opened project {path.name}: {describe_project(project)}")
            self.projectOpened.emit(str(path))
            return True
        if kind == "trajectory":
            return self.import_trajectory(path)
        try:
            kind, obj = io.load_any(path)      # read completely before anything changes
        except HGNError as exc:
            self.window.show_error(str(exc))
            return False
        return self._show_loaded(path, kind, obj)

    def _show_loaded(self, path: Path, kind: str, obj) -> bool:
        from core.physics.system import System
        from core.physics.trajectory import Trajectory

        from .commands import set_system

        trajs = obj if isinstance(obj, (list, tuple)) else [obj]
        if isinstance(obj, System):
            set_system(self.document, self.window.undo, obj, {"kind": "file", "path": str(path)},
                       f"Open {path.name}", describe=True)
            self.window.show_status(f"opened {path.name}: {obj.name or 'system'} ({obj.n} particles)")
        elif trajs and all(isinstance(t, Trajectory) for t in trajs):
            return self.import_trajectory(path, trajs[0])
        else:
            self.window.show_status(f"opened {path}: {kind}")
        return True

    def _apply(self, project, saved: bool = True) -> None:
        """Show ``project``: running jobs stop, the document is replaced."""
        self.window.jobs.shutdown()
        self._discarded = False
        self.document.replace(project, saved=saved)
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
        return super().eventFilter(obj, ev)

    # ------------------------------------------------------------------
    # autosave and recovery
    # ------------------------------------------------------------------
    def autosave_folder(self) -> Path:
        return Path(self.window.settings.fileName()).resolve().parent / "autosave"

    def autosave_path(self) -> Path:
        """This run's autosave (named by the run's identity, see studio.autosave)."""
        return self.run.path

    @Slot()
    def autosave(self, force: bool = False, wait: bool = False) -> bool:
        """Write the autosave (when something changed): in a background
        thread, or on this thread with ``wait=True``."""
        if not (self.dirty or force) or self.saveJobs.is_running() or self.document.system is None:
            return False
        try:
            self.run.acquire()                 # the lock first: a live run's autosave is never offered
            project = _autosave_copy(self.project())
            if wait:
                path = _write_project(self.autosave_path(), project, False)
                self.autosaved.emit(str(path))
                return True
        except (OSError, HGNError) as exc:
            self.window.show_error(f"autosave failed: {exc}")
            return False
        # the copy holds references to arrays that are never written again (a
        # roll-out only fills frames after the saved ones), so the job may read them
        return self.saveJobs.start("autosave", _write_project, self.autosave_path(), project, False)

    def recovery_candidates(self) -> list[Path]:
        """Autosaves of studio runs that are over (their lock is free), newest first."""
        return orphaned_autosaves(self.autosave_folder(), self.run.run_id)

    def offer_recovery(self) -> bool:
        """Offer every autosave of a run that is over (a crash, a kill), newest
        first: restore it, discard it, or keep it for the next start. Only the
        user's choice deletes one; after a restore the others can be kept or
        discarded. True when one was restored."""
        restored = False
        for path in self.recovery_candidates():
            try:
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
            except OSError:
                continue                       # gone meanwhile (another studio took it)
            choice = self.recover(path, when, not restored)
            if choice == "discard":
                remove(path)
            elif choice == "restore" and not restored:
                restored = self._restore(path, when)
        return restored

    def _restore(self, path: Path, when: str) -> bool:
        from core.files.project import load_project

        try:
            project = load_project(path)
        except HGNError as exc:
            self.window.show_error(f"the autosave cannot be restored (kept: {path}): {exc}")
            return False
        self.path = None
        self._apply(project, saved=False)      # its models are in no file the user named
        self._update_title()
        # this run's own autosave holds it now; then the old one may go
        if self.autosave(force=True, wait=True):
            remove(path)
        self.window.show_status(f"restored the autosave from {when}")
        return True

    def _recover(self, path: Path, when: str, can_restore: bool) -> str:
        box = QMessageBox(self.window)
        box.setWindowTitle("Restore autosaved project?")
        box.setIcon(QMessageBox.Question)
        if can_restore:
            box.setText(f"HGN Studio did not close properly. An autosave from {when} was found.\n\n"
                        "Restore it, discard it, or keep it to decide at the next start?")
        else:
            box.setText(f"Another autosave, from {when}, was found (a project was restored already).\n\n"
                        "Discard it, or keep it to decide at the next start?")
        box.setInformativeText(str(path))
        restore = box.addButton("Restore", QMessageBox.AcceptRole) if can_restore else None
        discard = box.addButton("Discard", QMessageBox.DestructiveRole)
        keep = box.addButton("Keep for later", QMessageBox.RejectRole)
        box.setDefaultButton(restore or keep)
        box.exec()
        clicked = box.clickedButton()
        return "restore" if clicked is restore and restore is not None else \
            "discard" if clicked is discard else "keep"

    def _ask(self, title: str, text: str) -> bool:
        return QMessageBox.question(self.window, title, text, QMessageBox.Yes | QMessageBox.No,
                                    QMessageBox.Yes) == QMessageBox.Yes

    def shutdown(self) -> None:
        """Clean exit: stop autosaving and remove this session's autosave --
        unless it holds models that nobody saved or chose to discard: then
        it is brought up to date and kept for the next start to offer."""
        self._timer.stop()
        self.saveJobs.shutdown(10000)
        if self.document.has_unsaved_models() and not self._discarded:
            try:
                self.run.acquire()
                _write_project(self.autosave_path(), _autosave_copy(self.project()), False)
            except (OSError, HGNError):
                pass
            self.run.release()                 # over: the next start offers what it kept
            return
        try:
            self.autosave_path().unlink()
        except OSError:
            pass
        self.run.release()

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
                sys_ = self.document.system
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

    def import_trajectory(self, path, trajectory=None) -> bool:
        """Show an imported trajectory as ground truth and keep it in the
        document to fit on."""
        from .commands import set_system

        if trajectory is None:
            try:
                trajectory = self.read_trajectory(path)
            except HGNError as exc:
                self.window.show_error(str(exc))
                return False
        tr, doc = trajectory, self.document
        if doc.system is None or tr.system is not doc.system:
            set_system(doc, self.window.undo, tr.system, {"kind": "file", "path": str(path)},
                       f"Import {Path(path).name}", describe=True)
        doc.add_ground_truth(tr)
        doc.show_trajectory(tr)
        self.window.show_status(f"imported {Path(path).name}: {tr.n_frames} frames of {tr.system.n} particles "
                                f"(ground truth to fit on: File > Fit on imported trajectories)")
        return True

    @Slot()
    def fit_imported(self) -> bool:
        """Train the chosen method on the imported trajectories (a background job)."""
        if not self.window.commit_forms():
            return False
        return self.window.jobs.fit_imported()

    @Slot()
    def compare_imported(self) -> bool:
        """The current model rolled out from the imported trajectory's start,
        next to the imported trajectory itself (a background job)."""
        return self.window.jobs.compare_imported()

    # ------------------------------------------------------------------
    # exports
    # ------------------------------------------------------------------
    def _folder(self, kind: str = "documents") -> str:
        """Where dialogs start: the project's folder, else the user's folder
        for ``kind`` ("videos", "pictures", "documents"), else home -- never
        the program's own working folder."""
        if self.path is not None:
            return str(self.path.parent)
        where = {"videos": QStandardPaths.MoviesLocation, "pictures": QStandardPaths.PicturesLocation}.get(
            kind, QStandardPaths.DocumentsLocation)
        for loc in (where, QStandardPaths.DocumentsLocation, QStandardPaths.HomeLocation):
            folder = QStandardPaths.writableLocation(loc)
            if folder and Path(folder).is_dir():
                return folder
        return str(Path.home())

    def _ask_path(self, title: str, default_name: str, filt: str, kind: str = "documents") -> str:
        path, _ = QFileDialog.getSaveFileName(self.window, title, str(Path(self._folder(kind)) / default_name),
                                              filt)
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

        self.window.views.settle_camera()
        return camera_state(self.window.views.truthView.view.camera)

    @Slot()
    def export_video(self):
        """Open the export dialog (non-modal); returns it."""
        from .export.gui import ExportVideoDialog

        w = self.window
        buf = self.document.rollout
        if buf is None or buf.n_filled < 1:
            w.show_error("nothing to export yet: train a model or open a trajectory first")
            return None
        settings = self.export_settings()
        if not buf.with_prediction:
            settings.layout = "truth"
            if settings.colour == "error":
                settings.colour = "uniform"
        dlg = ExportVideoDialog(buf, settings, camera=self._camera(), folder=self._folder("videos"), parent=w)
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
            path = self._ask_path("Export frame", "frame.png", "PNG images (*.png)", "pictures")
            if not path:
                return False
        s = self.export_settings()
        if size is not None:
            s.width, s.height = size
        buf = self.document.rollout
        frame = w.time.frame
        if buf is None or buf.n_filled < 1:
            if self.document.system is None:
                w.show_error("nothing to draw yet")
                return False
            buf, frame = static_buffer(self.document.system), 0
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
            folder = QFileDialog.getExistingDirectory(w, "Export plots to folder", self._folder("pictures"))
            if not folder:
                return []
        written = []
        pacer().flush()                 # the plots drawn with the data they hold
        plots = list(w.plots) + ([] if w.lossPlot.is_empty() else [w.lossPlot])
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
        import numpy as np

        from core.files import xyz
        from core.physics.forces import ForceField
        from core.physics.trajectory import Trajectory

        w = self.window
        s = self.document.system
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

        w = self.window
        rec = self.document.rollout
        if rec is None or rec.n_filled < 1:
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
