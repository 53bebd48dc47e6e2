"""The studio's work: train, roll out, zero-shot, fit on imported data --
background jobs over the document.

:class:`Jobs` reads what it needs from the :class:`~studio.document.Document`
(system, settings, models), runs plain module-level functions of
:mod:`studio.pipeline` (and :func:`fit_imported_job`) through
:class:`studio.workers.JobRunner` -- one runner for training, one for
roll-outs -- and hands the results back to the document as values: a fitted
model joins the table through an undoable :class:`~studio.commands.AddModelCommand`,
roll-out chunks fill the document's roll-out. Widgets call its public methods
and listen to its signals; files and autosave are elsewhere
(:mod:`studio.project_controller`).

Few-shot adaptation (issue 14): :meth:`Jobs.adapt` runs pipeline.adapt_job
in the trainer's worker (the adapted model arrives like a trained one, with
``info["lineage"]``), :meth:`Jobs.compare_adapt` the adapt-vs-scratch
comparison in a runner of its own (the result goes to
``Document.set_adapt_curve``; a new system stops it quietly), and
:meth:`Jobs.save_basis` writes a model's basis file in another.

Training data come from a *data source*: :class:`GeneratedData` simulates
ground truth on the current system (core.physics.datagen);
:class:`ImportedData` turns trajectories from another MD code into a
dataset (core.files.project.dataset_from_trajectories).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot

from core.errors import HGNError
from core.files.project import ModelRecord
from core.learning.rollout_buffer import RolloutBuffer
from core.physics.simulate import INTEGRATOR_LABELS

from . import pipeline
from .commands import AddModelCommand, set_system
from .defaults import BUILDER_DEFAULTS, SIMULATION
from .pacing import pacer
from .workers import JobRunner

#: what the progress bar says for each stage core reports
STAGE_NAMES = {"simulate": "simulating ground truth", "sample": "sampling random features",
               "assemble": "assembling normal equations", "solve": "solving", "epochs": "training epochs",
               "evaluate": "measuring test error", "rollout": "rolling out", "datagen": "generating data",
               "import": "reading imported data", "reference": "computing the DOP853 reference",
               "adapt": "adapting the output layer", "compare": "adapt vs fit from scratch",
               "sweep": "sweep", "engine": "starting the Dask engine"}
#: stages that make the training data; when one completes the fit starts
DATA_STAGES = ("simulate", "datagen", "import")


class SettingError(HGNError):
    """A setting the job cannot run with; ``section`` says which form shows it."""

    def __init__(self, section: str, message: str):
        super().__init__(message)
        self.section = section


def zero_shot_reason(system) -> str:
    """Why a zero-shot roll-out (core.physics.builders.rebuild_scaled) cannot
    scale ``system`` up; empty when it can."""
    if system is None:
        return "train a model first"
    kind = (system.meta or {}).get("builder")
    if kind == "custom":
        return ("a drawn system has no lattice to repeat: zero-shot scales up systems made by a "
                "generator (chain, lattice, molecular)")
    if kind not in BUILDER_DEFAULTS:
        return ("this system was not made by a generator, so there is no lattice to scale up "
                "(zero-shot needs a chain, lattice or molecular system)")
    missing = [k for k in BUILDER_DEFAULTS[kind] if k not in system.meta]
    if missing:
        return f"the system does not record its {', '.join(missing)}, so it cannot be rebuilt larger"
    return ""


def basis_reason(rec) -> str:
    """Why model ``rec`` (a ModelRecord) has no sampled basis to adapt or save; empty when it has one
    (a fitted RF-HGN: its hidden layers were sampled, only its output layer was solved)."""
    if rec is None:
        return "train a model first"
    if rec.model is None:
        return f"the model of {rec.name} is not available ({rec.note or 'not stored'})"
    kind = getattr(rec.model, "kind", None) if getattr(rec.model, "packed", False) else None
    cls = type(rec.model)
    if kind != "model" and (cls.__module__, cls.__name__) != ("core.learning.rfhgn.model", "FittedModel"):
        return (f"{rec.name} is trained by gradients (every layer learned), so it has no sampled basis; "
                "adaptation reuses the sampled hidden layers of an RF-HGN")
    return ""


def adapt_reason(rec, system) -> str:
    """Why model ``rec`` cannot be adapted to ``system``; empty when it can."""
    reason = basis_reason(rec)
    if reason:
        return reason
    if system is None:
        return "build or draw a system first"
    dim = (getattr(rec.model, "meta", None) or {}).get("dim") if getattr(rec.model, "packed", False) \
        else getattr(rec.model, "dim", None)
    if dim is not None and int(dim) != int(system.dim):
        return (f"{rec.name} is a {int(dim)}D model and the current system is {system.dim}D; "
                f"its basis only fits {int(dim)}D systems")
    return ""


def describe_curve(curve: dict) -> str:
    """One line on an adapt-vs-scratch comparison: the errors at k = 10 (or the nearest k) and the most k."""
    ks = list(curve.get("k") or [])
    if not ks:
        return "adapt vs scratch: no k to compare (no training snapshots)"

    def at(i):
        a, s = curve["adapt"][i], curve["scratch"][i]
        return (f"k = {ks[i]}: adapt {a:.3g}" if a is not None else f"k = {ks[i]}: adapt –") + \
            (f", scratch {s:.3g}" if s is not None else ", scratch –")

    i10 = min(range(len(ks)), key=lambda i: abs(ks[i] - 10))
    parts = [at(i10)] + ([at(len(ks) - 1)] if len(ks) - 1 != i10 else [])
    return f"adapt vs scratch ({curve.get('model', '')} on {curve.get('system', '')}): " + "; ".join(parts)


# ----------------------------------------------------------------------
# data sources
# ----------------------------------------------------------------------
@dataclass
class GeneratedData:
    """Simulate training data on ``system`` with the simulation settings."""

    system: object
    sim: dict

    def job(self, method, settings: dict):
        return pipeline.train_job, (self.system, self.sim, method, settings)

    def describe(self) -> str:
        return f"on {self.system.name}"


@dataclass
class ImportedData:
    """Fit on trajectories imported from another MD code."""

    trajectories: list
    sim: dict = field(default_factory=dict)

    def job(self, method, settings: dict):
        return fit_imported_job, (list(self.trajectories), self.sim, method, settings)

    def describe(self) -> str:
        n = len(self.trajectories)
        return f"on {n} imported trajector{'ies' if n > 1 else 'y'}"


def fit_imported_job(trajectories, sim: dict, method, settings: dict, *, progress=None, cancel=None,
                     emit=None):
    """Fit ``method`` on imported trajectories (the Train job's counterpart
    for data from another MD code); returns a pipeline.TrainResult."""
    from core.files.project import dataset_from_trajectories
    from core.jobs import check_cancel, report
    from core.learning.metrics import derivative_mse

    from .methods import loss_curve

    config = method.make_config(settings)
    t0 = time.perf_counter()
    report(progress, "import", 0.0)
    ds = dataset_from_trajectories(trajectories, test_fraction=sim.get("test_fraction", 0.25),
                                   seed=int(sim.get("seed", 0)))
    report(progress, "import", 1.0)
    data_time = time.perf_counter() - t0
    check_cancel(cancel)
    t1 = time.perf_counter()
    model = method.fit(ds, config, progress=progress, cancel=cancel)
    wall = time.perf_counter() - t1
    info = dict(getattr(model, "info", {}) or {})
    info["data"] = f"imported: {', '.join(ds.meta['labels'])} (forces {ds.meta['forces']})"
    idx = ds.test if len(ds.test) else ds.train
    if pipeline.identified_port_of(model) is not None:       # a port model (damped or driven data)
        from core.learning.rfhgn.port import port_derivative_mse as derivative_mse
    test_mse = float(derivative_mse(model, ds, indices=idx))
    return pipeline.TrainResult(model=model, dataset=ds, method=method.key, settings=dict(settings),
                                fit_time=float(info.get("fit_time", wall)), test_mse=test_mse,
                                data_time=data_time, loss=loss_curve(model), info=info)


# ----------------------------------------------------------------------
# the jobs object
# ----------------------------------------------------------------------
class Jobs(QObject):
    """Background work on one document (see the module notes)."""

    #: (what is happening, fraction done); a fraction < 0: busy, no measure yet
    progress = Signal(str, float)
    #: a line for the status bar
    status = Signal(str)
    #: a warning of the learned roll-out (stopped nothing)
    warning = Signal(str)
    #: (message, details): details is a traceback for bugs, empty for user errors
    failed = Signal(str, str)
    #: (settings section, message): a setting the job could not run with
    invalid = Signal(str, str)
    #: what was cancelled ("Training", "Roll-out")
    cancelled = Signal(str)
    runningChanged = Signal(bool)
    #: a fitted model joined the document (its ModelRecord)
    trained = Signal(object)
    #: the ground truth's check against the reference started (True) or ended (False)
    checkingChanged = Signal(bool)
    #: the adapt-vs-scratch comparison started (True) or ended (False)
    comparingChanged = Signal(bool)
    #: a basis file was written (its path)
    basisSaved = Signal(str)
    #: a sweep started (True) or ended (False)
    sweepingChanged = Signal(bool)

    def __init__(self, document, undo, parent: QObject | None = None):
        super().__init__(parent)
        self.document = document
        self.undo = undo
        #: the runners (public for benchmarks and tests that wait on them)
        self.trainer = JobRunner(self)
        self.roller = JobRunner(self)
        #: the ground truth against the DOP853 reference (check_reference)
        self.checker = JobRunner(self)
        #: adapt vs fit from scratch over k (compare_adapt), and basis files (save_basis)
        self.comparer = JobRunner(self)
        self.basis_saver = JobRunner(self)
        #: sweeps (core.cluster.sweep, issue 15): run_sweep
        self.sweeper = JobRunner(self)
        self._sweep_info: dict = {}                    # what the running sweep was started with
        #: perf_counter stamps of the last Train: train_pressed, trained, first_frame
        self.timing: dict[str, float] = {}
        self._train_sim: dict = {}
        self._method_label = ""
        self._buffer: RolloutBuffer | None = None      # the roll-out the running job fills
        self._pending: tuple | None = None
        self._target = ""                              # model name of the running/pending roll-out
        self._running = False
        self._adding = None                            # pacer key of a trained model not yet added
        self._checking = None                          # the roll-out whose truth is being checked
        self._auto_check = False                       # check the roll-out that just finished
        self._quiet_cancel = False                     # a check stopped because its roll-out went
        self._trainer_what = "Training"                # what the trainer runs: "Training" | "Adaptation"
        self._comparing = None                         # the system whose data the comparison uses
        self._quiet_compare = False                    # a comparison stopped because its system went

        self.trainer.progress.connect(self._on_progress)
        self.roller.progress.connect(self._on_progress)
        for runner in (self.trainer, self.roller):
            runner.failed.connect(self.failed)
            runner.started.connect(self._update_running)
        self.trainer.finished.connect(self._on_trained)
        self.trainer.cancelled.connect(lambda: self.cancelled.emit(self._trainer_what))
        self.trainer.done.connect(self._update_running)
        self.roller.partial.connect(self._on_chunk)
        self.roller.finished.connect(self._on_rollout_finished)
        self.roller.cancelled.connect(lambda: self.cancelled.emit("Roll-out"))
        self.roller.done.connect(self._on_rollout_done)
        self.checker.progress.connect(self._on_progress)
        self.checker.failed.connect(self.failed)
        self.checker.started.connect(self._update_running)
        self.checker.finished.connect(self._on_checked)
        self.checker.cancelled.connect(self._on_check_cancelled)
        self.checker.done.connect(self._on_check_done)
        self.comparer.progress.connect(self._on_progress)
        self.comparer.failed.connect(self.failed)
        self.comparer.started.connect(self._update_running)
        self.comparer.finished.connect(self._on_compared)
        self.comparer.cancelled.connect(self._on_compare_cancelled)
        self.comparer.done.connect(self._on_compare_done)
        self.basis_saver.failed.connect(self.failed)
        self.basis_saver.started.connect(self._update_running)
        self.basis_saver.finished.connect(self._on_basis_saved)
        self.basis_saver.cancelled.connect(lambda: self.cancelled.emit("Saving the basis"))
        self.basis_saver.done.connect(self._update_running)
        self.sweeper.progress.connect(self._on_sweep_progress)
        self.sweeper.failed.connect(self.failed)
        self.sweeper.started.connect(self._update_running)
        self.sweeper.partial.connect(self._on_sweep_point)
        self.sweeper.finished.connect(self._on_swept)
        self.sweeper.cancelled.connect(lambda: self.cancelled.emit("Sweep"))
        self.sweeper.done.connect(self._on_sweep_done)
        document.systemChanged.connect(self._drop_compare)

    # ------------------------------------------------------------------
    # state
    # ------------------------------------------------------------------
    def is_running(self) -> bool:
        return any(r.is_running() for r in self.runners())

    def runners(self) -> tuple:
        """Every runner of this window's jobs."""
        return (self.trainer, self.roller, self.checker, self.comparer, self.basis_saver, self.sweeper)

    def is_training(self) -> bool:
        return self.trainer.is_running()

    @property
    def rollout_target(self) -> str:
        """The model whose roll-out is running or waiting to run ("" if none)."""
        return self._target

    def mark(self, what: str) -> None:
        """Stamp a moment of the last Train (e.g. "first_frame" when the view drew it)."""
        self.timing.setdefault(what, time.perf_counter())

    def _update_running(self, *_args) -> None:
        running = self.is_running()
        if running != self._running:
            self._running = running
            self.runningChanged.emit(running)

    # ------------------------------------------------------------------
    # training
    # ------------------------------------------------------------------
    def request(self):
        """(simulation settings, method, model settings) from the document;
        SettingError names the section of a bad setting."""
        from .methods import available_methods

        doc = self.document
        sim = doc.values("simulation")
        try:
            pipeline.check_simulation(sim)
        except HGNError as exc:
            raise SettingError("simulation", str(exc)) from None
        methods = {m.key: m for m in available_methods()}
        if not methods:
            raise HGNError("no fitting method is available (core.learning.rfhgn is missing)")
        key = doc.method
        if key not in methods:
            raise SettingError("train", f"method {key!r} is not available here")
        method = methods[key]
        settings = doc.values(f"model/{key}")
        try:
            method.make_config(settings)
        except HGNError as exc:
            raise SettingError(f"model/{key}", str(exc)) from None
        return sim, method, settings

    def _refuse(self, exc: HGNError) -> bool:
        if isinstance(exc, SettingError):
            self.invalid.emit(exc.section, str(exc))
        self.failed.emit(str(exc), "")
        return False

    def train(self) -> bool:
        """Simulate training data on the current system, fit the chosen
        method, then (through the document) roll the new model out. False,
        with a message, when it cannot start."""
        if self.trainer.is_running():
            return self._refuse(HGNError("a model is already being trained; cancel it first (Esc)"))
        system = self.document.system
        if system is None:
            return self._refuse(HGNError("build or draw a system first"))
        try:
            sim, method, settings = self.request()
        except HGNError as exc:
            return self._refuse(exc)
        return self._train(GeneratedData(system, sim), method, settings)

    def fit_imported(self) -> bool:
        """Fit the chosen method on the imported trajectories of the latest
        imported system."""
        doc = self.document
        if not doc.ground_truth:
            return self._refuse(HGNError("import a trajectory first (File > Import trajectory)"))
        if self.trainer.is_running():
            return self._refuse(HGNError("a model is already being trained; cancel it first (Esc)"))
        try:
            sim, method, settings = self.request()
        except HGNError as exc:
            return self._refuse(exc)
        system = doc.ground_truth[-1].system
        trajs = [t for t in doc.ground_truth if t.system is system]
        if doc.system is not system:
            set_system(doc, self.undo, system, {"kind": "file", "path": "imported"})
        last = trajs[-1]
        sim = dict(sim, dt=float(last.dt), rollout_save_every=int(last.save_every),
                   rollout_steps=int((last.n_frames - 1) * last.save_every))
        return self._train(ImportedData(trajs, sim), method, settings)

    def _train(self, source, method, settings: dict) -> bool:
        self._trainer_what = "Training"
        self.timing = {"train_pressed": time.perf_counter()}
        self._train_sim = dict(source.sim)
        self._method_label = method.label.split(" (")[0]
        fn, args = source.job(method, settings)
        if not self.trainer.start("train", fn, *args):
            return self._refuse(HGNError("a model is already being trained; cancel it first (Esc)"))
        first = "reading imported data" if isinstance(source, ImportedData) else STAGE_NAMES["simulate"]
        self.progress.emit(first + "…", 0.0)
        self.status.emit(f"training {self._method_label} {source.describe()}…")
        self._update_running()
        return True

    @Slot(object)
    def _on_trained(self, result) -> None:
        self.timing["trained"] = time.perf_counter()
        doc = self.document
        lineage = (result.info or {}).get("lineage")
        name = doc.next_name("adapted" if lineage and not lineage.get("sweep_point") else result.method)
        rec = ModelRecord(name=name, method=result.method, settings=dict(result.settings),
                          system=result.dataset.system, model=result.model, dataset=result.dataset,
                          fit_time=float(result.fit_time), test_mse=float(result.test_mse),
                          data_time=float(result.data_time or 0.0),
                          loss=None if result.loss is None else np.asarray(result.loss, dtype=float),
                          info=dict(result.info or {}))
        rec.info["simulation"] = dict(self._train_sim)
        # its roll-out first: the job goes to the worker before the window
        # does its share (the table, the plots), so the first frame is not
        # held up by them
        self._rollout_record(rec)
        # the table, the current model's plots: in a turn of the window's
        # pacer, first in its queue (studio.pacing: not in the batch of this
        # handler nor of the views' and plots' first drawing of the roll-out)
        self._adding = ("trained", rec.name)
        pacer().later(self._adding, lambda: self._add_trained(rec), first=True)

    def _add_trained(self, rec) -> None:
        self._adding = None
        lineage = rec.info.get("lineage")
        if lineage and lineage.get("sweep_point"):
            self.status.emit(f"{rec.name}: {pipeline.describe_lineage(lineage)}, fit time {rec.fit_time:.3g} s, "
                             f"test MSE {rec.test_mse:.3g}")
            self.undo.push(AddModelCommand(self.document, rec, f"Make model {rec.name}"))
        elif lineage:
            self.status.emit(f"{rec.name}: {pipeline.describe_lineage(lineage)}, test MSE {rec.test_mse:.3g}")
            self.undo.push(AddModelCommand(self.document, rec, f"Adapt {rec.name}"))
            for message in lineage.get("warnings") or ():
                self.warning.emit(message)
        else:
            self.status.emit(f"trained {rec.name}: fit time {rec.fit_time:.3g} s, test MSE {rec.test_mse:.3g}")
            self.undo.push(AddModelCommand(self.document, rec, f"Train {rec.name}"))
        self.trained.emit(rec)

    @Slot(str, float)
    def _on_progress(self, stage: str, fraction: float) -> None:
        if fraction >= 1.0 and stage in DATA_STAGES and self.trainer.is_running():
            # the data are ready; the fit may take a while before it reports
            self.progress.emit("adapting…" if self._trainer_what == "Adaptation" else f"fitting {self._method_label}…",
                               -1.0)
            return
        self.progress.emit(STAGE_NAMES.get(stage, stage), float(fraction))

    # ------------------------------------------------------------------
    # few-shot adaptation (issue 14)
    # ------------------------------------------------------------------
    def adapt(self, index: int, k: int = 10, seed: int | None = None, regularisation: float | None = None,
              basis_path: str | None = None, prior: str = "auto", rule: str = "gcv") -> bool:
        """Adapt model ``index`` (or, with ``basis_path``, that basis file) to the current system: its
        training data simulated with the simulation settings, the output layer solved on ``k`` of their
        training snapshots (pipeline.adapt_job, in the trainer's worker); the new model joins the table
        through an undoable command, with its lineage, and is rolled out. ``prior`` and ``rule``: core's
        adapt's (what the ridge pulls toward; how the regularisation is chosen). False, with a message,
        when it cannot start."""
        doc = self.document
        if self.trainer.is_running():
            return self._refuse(HGNError("a model is being trained or adapted; cancel it first (Esc)"))
        if doc.system is None:
            return self._refuse(HGNError("build or draw a system first"))
        rec = doc.models[index] if 0 <= index < len(doc.models) else None
        if not basis_path:
            reason = adapt_reason(rec, doc.system)
            if reason:
                return self._refuse(HGNError(f"adapt: {reason}"))
        sim = doc.values("simulation")
        try:
            pipeline.check_simulation(sim)
        except HGNError as exc:
            return self._refuse(SettingError("simulation", str(exc)))
        source_name = rec.name if rec is not None and not basis_path else ""
        self._trainer_what = "Adaptation"
        self.timing = {"train_pressed": time.perf_counter()}
        self._train_sim = dict(sim)
        self._method_label = "adapting"
        model = None if basis_path else rec.model
        if not self.trainer.start("adapt", pipeline.adapt_job, model, doc.system, sim, int(k),
                                  None if seed is None else int(seed),
                                  None if regularisation is None else float(regularisation),
                                  source_name=source_name, basis_path=str(basis_path) if basis_path else None,
                                  prior=str(prior), rule=str(rule)):
            return self._refuse(HGNError("a model is being trained or adapted; cancel it first (Esc)"))
        self.progress.emit(STAGE_NAMES["simulate"] + "…", 0.0)
        src = f"basis {basis_path}" if basis_path else source_name
        self.status.emit(f"adapting {src} to {doc.system.name} with {int(k)} snapshots…")
        self._update_running()
        return True

    def is_comparing(self) -> bool:
        return self.comparer.is_running()

    def compare_adapt(self, index: int | None = None) -> bool:
        """Test error against k, adaptation of model ``index`` (default: the current one) against fits from
        scratch with its settings, on the current system's training data (pipeline.adapt_curve_job, in a
        worker); the result goes into the document (Document.set_adapt_curve). False, with a message, when it
        cannot start."""
        doc = self.document
        index = doc.current if index is None else index
        rec = doc.models[index] if 0 <= index < len(doc.models) else None
        reason = adapt_reason(rec, doc.system)
        if reason:
            return self._refuse(HGNError(f"adapt vs scratch: {reason}"))
        if self.comparer.is_running():
            return self._refuse(HGNError("adapt vs scratch is already being computed; cancel it first (Esc)"))
        sim = doc.values("simulation")
        try:
            pipeline.check_simulation(sim)
        except HGNError as exc:
            return self._refuse(SettingError("simulation", str(exc)))
        self._comparing = doc.system
        if not self.comparer.start("compare", pipeline.adapt_curve_job, rec.model, doc.system, sim,
                                   source_name=rec.name):
            self._comparing = None
            return self._refuse(HGNError("adapt vs scratch is already being computed; cancel it first (Esc)"))
        self.progress.emit(STAGE_NAMES["compare"], 0.0)
        self.status.emit(f"adapt vs scratch: {rec.name} on {doc.system.name}…")
        self.comparingChanged.emit(True)
        self._update_running()
        return True

    def cancel_compare(self) -> None:
        self.comparer.cancel()

    @Slot(object)
    def _on_compared(self, curve) -> None:
        if self.document.system is self._comparing:         # still the system it was computed for
            try:
                self.document.set_adapt_curve(curve)
            except HGNError as exc:
                self.failed.emit(str(exc), "")
                return
            self.status.emit(describe_curve(curve))

    def _drop_compare(self, *_args) -> None:
        """Stop a running comparison whose system is no longer the current one (no message)."""
        if self.comparer.is_running():
            self._quiet_compare = True
            self.comparer.cancel()

    @Slot()
    def _on_compare_cancelled(self) -> None:
        if not self._quiet_compare:
            self.cancelled.emit("Adapt vs scratch")

    @Slot()
    def _on_compare_done(self) -> None:
        self._quiet_compare = False
        self._comparing = None
        self.comparingChanged.emit(False)
        self._update_running()

    def save_basis(self, index: int, path) -> bool:
        """Write the hidden layers of model ``index`` as a basis file (pipeline.save_basis_job, in a worker:
        the model's network needs torch); ``basisSaved(path)`` when written."""
        doc = self.document
        rec = doc.models[index] if 0 <= index < len(doc.models) else None
        reason = basis_reason(rec)
        if reason:
            return self._refuse(HGNError(f"save basis: {reason}"))
        if not self.basis_saver.start("basis", pipeline.save_basis_job, rec.model, str(path)):
            return self._refuse(HGNError("a basis is already being saved"))
        self.status.emit(f"saving the basis of {rec.name}…")
        self._update_running()
        return True

    @Slot(object)
    def _on_basis_saved(self, path) -> None:
        self.status.emit(f"saved the basis (hidden layers) to {path}")
        self.basisSaved.emit(str(path))

    # ------------------------------------------------------------------
    # sweeps (issue 15)
    # ------------------------------------------------------------------
    def is_sweeping(self) -> bool:
        return self.sweeper.is_running()

    def run_sweep(self, points: list, out, engine: str = "process", workers: int = 2, scheduler: str = "") -> bool:
        """Run the sweep ``points`` (studio.sweeps.grid_points) in a worker (pipeline.sweep_job) on
        ``engine`` ("process": no Dask; "local": a LocalCluster of ``workers``; "scheduler": the address
        ``scheduler``), writing ``out`` (JSON + CSV; points already there are skipped). Each finished point
        joins the document's sweep as it arrives. False, with a message, when it cannot start."""
        from pathlib import Path

        doc = self.document
        if self.sweeper.is_running():
            return self._refuse(HGNError("a sweep is already running; cancel it first"))
        if not points:
            return self._refuse(HGNError("the sweep has no points: give at least one value per setting"))
        if engine not in pipeline.SWEEP_ENGINES:
            return self._refuse(HGNError(f"sweep engine {engine!r}: choose one of "
                                         f"{', '.join(pipeline.SWEEP_ENGINES)}"))
        if engine == "scheduler" and not str(scheduler).strip():
            return self._refuse(HGNError("give the Dask scheduler's address (tcp://host:8786) or choose "
                                         "another engine"))
        out = Path(out).expanduser()
        if out.suffix.lower() != ".json":
            return self._refuse(HGNError(f"{out}: the sweep's results file must end in .json (the CSV is "
                                         "written beside it)"))
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return self._refuse(HGNError(f"{out.parent}: cannot make the sweep's folder ({exc})"))
        from core.cluster.sweep import point_key

        keys = [point_key(p) for p in points]
        name = doc.system.name if doc.system is not None else ""
        old = doc.sweep
        keep = [r for r in (old["records"] if old and not old["stale"] and old["path"] == str(out) else [])
                if r["key"] in set(keys)]
        doc.set_sweep({"records": keep, "path": str(out), "system": name, "stale": False})
        self._sweep_info = {"n": len(keys), "engine": engine, "out": str(out), "finished": False, "keys": keys}
        # a sweep on a cluster closes it when cancelled: give it time before its process is ended
        self.sweeper.cancel_grace = 0.1 if engine == "process" else 20.0
        if not self.sweeper.start("sweep", pipeline.sweep_job, list(points), str(out), engine, int(workers),
                                  str(scheduler)):
            return self._refuse(HGNError("a sweep is already running; cancel it first"))
        where = {"process": "in a worker process", "local": f"on a local Dask cluster of {int(workers)} workers",
                 "scheduler": f"on the Dask scheduler {scheduler}"}[engine]
        self.status.emit(f"sweep: {len(keys)} points {where}, results in {out}…")
        self.progress.emit(STAGE_NAMES["sweep"], 0.0)
        self.sweepingChanged.emit(True)
        self._update_running()
        return True

    def cancel_sweep(self) -> None:
        """Stop the sweep: finished points stay (in the document and the sweep's JSON)."""
        self.sweeper.cancel()

    @Slot(str, float)
    def _on_sweep_progress(self, stage: str, fraction: float) -> None:
        n = self._sweep_info.get("n", 0)
        done = len((self.document.sweep or {}).get("records") or [])
        text = STAGE_NAMES.get(stage, stage) + (f" ({done} of {n} points)" if stage == "sweep" else "")
        self.progress.emit(text, float(fraction))

    @Slot(object)
    def _on_sweep_point(self, record) -> None:
        try:
            self.document.add_sweep_record(record)
        except HGNError as exc:
            self.failed.emit(str(exc), "")

    @Slot(object)
    def _on_swept(self, result) -> None:
        doc = self.document
        if self._sweep_info.get("files"):       # the files of a stopped sweep were written: what they hold
            sweep = doc.sweep or {}
            doc.set_sweep({**sweep, "records": result["records"], "path": result["path"]})
            return
        self._sweep_info["finished"] = True
        sweep = doc.sweep or {}
        doc.set_sweep({"records": result["records"], "path": result["path"], "system": sweep.get("system", ""),
                       "stale": sweep.get("stale", False)})
        self.status.emit(f"sweep done: {result['computed']} points computed ({result['failed']} failed), "
                         f"{result['skipped']} already in {result['path']}, {result['seconds']:.3g} s")

    @Slot()
    def _on_sweep_done(self) -> None:
        info, self._sweep_info = self._sweep_info, {}
        if info.get("out") and not info.get("finished") and not info.get("files"):
            # a sweep stopped before its end (cancelled, failed, its process ended) left its finished points in
            # the journal beside OUT (core.cluster.sweep): its JSON and CSV are written from it, in a worker
            self._sweep_info = {"files": True}
            if self.sweeper.start("sweep files", pipeline.sweep_files_job, info["out"], list(info["keys"])):
                return
            self._sweep_info = {}
        self.sweepingChanged.emit(False)
        self._update_running()

    def make_sweep_model(self, record: dict) -> bool:
        """Fit the settings of sweep point ``record`` on the current system's data (the simulation
        settings) in the trainer's worker (pipeline.sweep_model_job); the model joins the table through an
        undoable command, with lineage "from sweep point <key>", and is rolled out. False, with a message,
        when it cannot start."""
        doc = self.document
        if self.trainer.is_running():
            return self._refuse(HGNError("a model is being trained; cancel it first (Esc)"))
        if doc.system is None:
            return self._refuse(HGNError("build or draw a system first"))
        if not isinstance(record, dict) or "settings" not in record:
            return self._refuse(HGNError("pick a sweep point first (a row of the table or a point of the plot)"))
        sim = doc.values("simulation")
        try:
            pipeline.check_simulation(sim)
        except HGNError as exc:
            return self._refuse(SettingError("simulation", str(exc)))
        self._trainer_what = "Training"
        self.timing = {"train_pressed": time.perf_counter()}
        self._train_sim = dict(sim)
        self._method_label = "RF-HGN"
        if not self.trainer.start("train", pipeline.sweep_model_job, doc.system, sim, record["settings"],
                                  record["key"]):
            return self._refuse(HGNError("a model is already being trained; cancel it first (Esc)"))
        self.progress.emit(STAGE_NAMES["simulate"] + "…", 0.0)
        self.status.emit(f"making a model of sweep point {record['key']} on {doc.system.name}…")
        self._update_running()
        return True

    # ------------------------------------------------------------------
    # roll-outs
    # ------------------------------------------------------------------
    def rollout(self, index: int) -> bool:
        """The comparison roll-out of model ``index`` on the system it was
        fitted on, from a start the training never used."""
        doc = self.document
        if not 0 <= index < len(doc.models):
            return self._refuse(HGNError("train a model first"))
        return self._rollout_record(doc.models[index])

    def _rollout_record(self, rec) -> bool:
        sim = rec.info.get("simulation") or self.document.values("simulation")
        return self._start_rollout(rec, rec.system, sim, int(sim.get("rollout_steps", SIMULATION.rollout_steps)),
                                   int(sim.get("rollout_save_every", SIMULATION.rollout_save_every)), False)

    def zero_shot(self, index: int, factor: int, steps: int, save_every: int) -> bool:
        """Apply model ``index`` without refitting to its lattice scaled up
        ``factor`` times along every axis."""
        from core.physics.builders import rebuild_scaled

        doc = self.document
        if not 0 <= index < len(doc.models):
            return self._refuse(HGNError("train a model first"))
        rec = doc.models[index]
        reason = zero_shot_reason(rec.system)
        if reason:
            return self._refuse(HGNError(f"zero-shot: {reason}"))
        try:
            big = rebuild_scaled(rec.system, factor)
        except HGNError as exc:
            return self._refuse(exc)
        sim = rec.info.get("simulation") or doc.values("simulation")
        self.status.emit(f"zero-shot: {rec.name} on {big.name} ({big.n} particles)")
        return self._start_rollout(rec, big, sim, int(steps), int(save_every), True)

    def compare_imported(self) -> bool:
        """The current model rolled out from the latest imported trajectory's
        start, next to that trajectory."""
        doc = self.document
        rec = doc.current_model()
        if rec is None or not doc.ground_truth or rec.model is None:
            return self._refuse(HGNError("import a trajectory and fit a model first"))
        return self._start_rollout(rec, None, {}, 0, 1, False, truth=doc.ground_truth[-1])

    def _start_rollout(self, rec, system, sim: dict, steps: int, save_every: int, zero_shot: bool,
                       truth=None) -> bool:
        args = (rec, system, sim, steps, save_every, zero_shot, truth)
        self._target = rec.name
        self._drop_check()                # its ground truth is about to go
        if self.roller.is_running():
            self._pending = args          # after the running one has stopped
            self.roller.cancel()
            return True
        try:
            if truth is not None:         # the imported trajectory is the ground truth
                system, dt, save_every = truth.system, truth.dt, truth.save_every
                steps = (truth.n_frames - 1) * save_every
                buf = RolloutBuffer(system, dt, steps, save_every, label=rec.name, model_name=rec.name)
                buf.t = np.array(truth.t, dtype=float)
                buf.add("truth", truth)
                buf.labels["truth"] = truth.label
                q0, p0 = truth.q[0], truth.p[0]
            else:
                from core.physics.forces import ForceField, kinetic_energy

                q0, p0 = pipeline.rollout_start(system, sim)
                dt = float(sim["dt"])
                buf = RolloutBuffer(system, dt, steps, save_every, label=rec.name, model_name=rec.name,
                                    zero_shot=zero_shot)
                buf.set_initial(q0, p0, float(kinetic_energy(p0, system.masses)),
                                float(ForceField(system).energy(q0)))
        except HGNError as exc:
            self._target = ""
            return self._refuse(exc)
        self._buffer = buf
        # the job first, then the window's share (views, plots: GUI work)
        self.roller.start("rollout", pipeline.rollout_job, rec.model, system, q0, p0, dt, steps, save_every,
                          with_truth=truth is None, device=str(sim.get("rollout_device", "cpu")),
                          precision=str(sim.get("rollout_precision", "float64")),
                          threads=int(sim.get("rollout_threads", SIMULATION.rollout_threads)),
                          integrator=str(sim.get("integrator", SIMULATION.integrator)))
        name = str(sim.get("integrator", SIMULATION.integrator))
        self.document.start_rollout(buf, "imported" if truth is not None else INTEGRATOR_LABELS.get(name, name))
        self.progress.emit(STAGE_NAMES["rollout"], 0.0)
        self._update_running()
        return True

    @Slot(object)
    def _on_chunk(self, item) -> None:
        which, payload = item
        if self.document.rollout is not self._buffer:
            return                       # the document shows something else now
        if which == "warning":
            self.document.add_rollout_warning(payload)
            self.warning.emit(payload)
            return
        self.document.add_rollout_chunk(which, payload)

    @Slot(object)
    def _on_rollout_finished(self, _result) -> None:
        if self.document.rollout is self._buffer:
            self.document.finish_rollout()
            # the setting "Check each roll-out": when the runner is free (_on_rollout_done)
            from core.physics.port import port_of

            doc = self.document            # (a damped or driven truth has no conservative reference)
            self._auto_check = bool(doc.get("simulation", "reference_check")) and port_of(doc.rollout.system) is None \
                and doc.rollout_integrator not in ("dop853", "imported")

    # ------------------------------------------------------------------
    # the ground truth against the reference
    # ------------------------------------------------------------------
    def is_checking(self) -> bool:
        return self.checker.is_running()

    def check_reference(self) -> bool:
        """Compare the shown roll-out's ground truth with the DOP853 reference
        from its first frame, in a worker (pipeline.reference_job); the result
        goes into the document (Document.set_reference_check). False, with a
        message, when it cannot start."""
        doc = self.document
        buf = doc.rollout
        if buf is None or buf.count["truth"] < 2:
            return self._refuse(HGNError("no ground truth to check yet: train a model (or roll one out) first"))
        if not buf.finished or self.roller.is_running():
            return self._refuse(HGNError("the roll-out is still running; check its ground truth when it is done"))
        if self.checker.is_running():
            return self._refuse(HGNError("the ground truth is already being checked against the reference"))
        truth = buf.trajectory("truth", buf.count["truth"])
        self._checking = buf
        if not self.checker.start("reference", pipeline.reference_job, truth, doc.rollout_integrator):
            self._checking = None
            return self._refuse(HGNError("the ground truth is already being checked against the reference"))
        self.progress.emit(STAGE_NAMES["reference"], 0.0)
        self.status.emit(f"checking the ground truth ({truth.n_frames} frames) against DOP853…")
        self.checkingChanged.emit(True)
        self._update_running()
        return True

    @Slot(object)
    def _on_checked(self, check) -> None:
        if self.document.rollout is self._checking:       # still the roll-out it was computed for
            self.document.set_reference_check(check)
            self.status.emit(check.summary())

    def _drop_check(self) -> None:
        """Stop a running check whose roll-out is no longer shown (no message)."""
        if self.checker.is_running():
            self._quiet_cancel = True
            self.checker.cancel()

    @Slot()
    def _on_check_cancelled(self) -> None:
        if not self._quiet_cancel:
            self.cancelled.emit("Reference check")

    @Slot()
    def _on_check_done(self) -> None:
        self._quiet_cancel = False
        self._checking = None
        self.checkingChanged.emit(False)
        self._update_running()

    @Slot()
    def _on_rollout_done(self) -> None:
        self._buffer = None
        auto, self._auto_check = self._auto_check, False
        if self._pending is not None:
            args, self._pending = self._pending, None
            self._start_rollout(*args)
        else:
            self._target = ""
            if auto and not self.checker.is_running():
                self.check_reference()
        self._update_running()

    def cancel_rollout(self) -> None:
        """Stop the running roll-out (a new system makes it pointless)."""
        self._pending = None
        self.roller.cancel()
        self._drop_check()

    # ------------------------------------------------------------------
    def cancel(self) -> bool:
        """Stop whatever runs; True when something was running."""
        ran = self.is_running()
        self._pending = None
        for runner in self.runners():
            runner.cancel()
        if ran:
            self.progress.emit("cancelling…", -1.0)
        return ran

    def shutdown(self) -> None:
        """Stop and join everything (window closing, another project opened)."""
        self._pending = None
        if self._adding is not None:         # a model not in the document yet stays out of the next one
            pacer().cancel(self._adding)
            self._adding = None
        for runner in self.runners():
            runner.shutdown()
        self._update_running()
