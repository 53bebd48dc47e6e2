"""The studio's one document: the open project, and the signals that say what
changed in it.

:class:`Document` wraps ONE :class:`core.files.project.Project` (Qt-free: the
system and how it was built, every setting, the fitted models as core
:class:`~core.files.project.ModelRecord` objects, the roll-out as a core
:class:`~core.learning.rollout_buffer.RolloutBuffer`, imported ground truth
and the view state). Forms, views, plots, the models table and the timeline
listen to its signals; they change it through the undoable commands of
:mod:`studio.commands` (settings, choices, the system, models) or, for
results of background work, through its methods (roll-out chunks, measures).
Saving writes :attr:`Document.project`; opening replaces it
(:meth:`Document.replace`), and every listener refreshes from the signals.

Settings are addressed as ``(section, key)``; a section is a dict inside the
project:

=======================  ================================================
section                  where the project keeps it
=======================  ================================================
``system``               ``ui["system"]``: ``kind`` (generator), ``potential``
``generator/<kind>``     ``ui["system"]["builders"][kind]``: builder parameters
``potential/<kind>``     ``ui["system"]["potentials"][kind]``: its parameters
``simulation``           ``simulation``: training data, start state, roll-out
``train``                ``method`` (key ``method``)
``model/<method>``       ``model_settings[method]``
``zero_shot``            ``ui["zero_shot"]``: factor, steps, save_every
``port``                 ``ui["port"]``: damping and driving Build gives the
                         system (:func:`port_from_settings`; issue 13)
=======================  ================================================

Results of background work kept in ``ui`` besides the settings: the ground
truth's check against the reference (``ui["reference_check"]``) and the
adapt-vs-scratch comparison (``ui["adapt_curve"]``, issue 14); a new system
drops both. A sweep's results (``ui["sweep"]``, issue 15; studio.sweeps) are
kept, marked stale when the system changes.

(``ui["system"]`` has the layout older studios wrote there, so their project
files and saved settings restore the generator forms unchanged.)
"""
from __future__ import annotations

import dataclasses
import re
from functools import lru_cache

import numpy as np
from PySide6.QtCore import QObject, Signal

from core.errors import HGNError
from core.files.project import ModelRecord, Project
from core.learning.rollout_buffer import RolloutBuffer
from core.physics.system import System

from .defaults import (
    BUILDER_DEFAULTS,
    DEFAULT_KIND,
    DEFAULT_POTENTIAL,
    SIMULATION,
    ZERO_SHOT,
)

#: the settings of the drawn potential (core.physics.splines.SplinePotential's fields)
SPLINE_FIELDS = ("r", "V", "slopes", "wall", "source")
SECTION_HEADS = ("system", "generator", "potential", "simulation", "train", "model", "zero_shot", "port")
#: the damping and driving settings (section ``port``): what Build gives the system
#: (core.physics.port.Port; docs/port_hamiltonian.md); no damping, no drive by default
PORT_DEFAULTS = {"damping": 0.0, "damping_where": "every particle", "drive_nodes": (),
                 "drive_amplitude": 0.0, "drive_frequency": 1.0, "drive_phase": 0.0,
                 "drive_direction": "1, 0", "field": ""}
DAMPING_WHERE = ("every particle", "boundary layer")


@lru_cache(maxsize=1)
def _method_defaults() -> dict:
    from .methods import available_methods

    return {m.key: m.default_settings() for m in available_methods()}


@lru_cache(maxsize=1)
def _potential_defaults() -> dict:
    from core.physics.potentials import POTENTIALS

    return {k: {f.name: f.default for f in dataclasses.fields(cls)} for k, cls in POTENTIALS.items()}


def default_settings() -> dict[str, dict]:
    """Every settings section with its defaults (studio.defaults, core's
    potential classes and method configs); a fresh copy."""
    return {k: dict(v) for k, v in _defaults().items()}


@lru_cache(maxsize=1)
def _defaults() -> dict[str, dict]:
    methods = _method_defaults()
    out = {"system": {"kind": DEFAULT_KIND, "potential": DEFAULT_POTENTIAL.get(DEFAULT_KIND, "harmonic")},
           "simulation": dataclasses.asdict(SIMULATION),
           "train": {"method": next(iter(methods), "rfhgn")},
           "zero_shot": dataclasses.asdict(ZERO_SHOT), "port": dict(PORT_DEFAULTS)}
    for k, params in BUILDER_DEFAULTS.items():
        out[f"generator/{k}"] = dict(params)
    for k, params in _potential_defaults().items():
        out[f"potential/{k}"] = dict(params)
    # the drawn spline (studio.widgets.spline_editor): no points until the user
    # chooses it (then a fit of the potential shown); kept between runs like the rest
    out["potential/spline"] = {k: None for k in SPLINE_FIELDS}
    for k, params in methods.items():
        out[f"model/{k}"] = dict(params)
    return out


def _number(name: str) -> int:
    m = re.search(r"-(\d+)$", str(name))
    return int(m.group(1)) if m else 0


class Document(QObject):
    """The open project (see the module notes)."""

    systemChanged = Signal(object)          # System
    #: (section, key); key "" means the whole section, section "" every section
    settingsChanged = Signal(str, str)
    modelsChanged = Signal()
    currentModelChanged = Signal(int)
    rolloutStarted = Signal(object)         # RolloutBuffer
    rolloutExtended = Signal(int)           # frames filled
    rolloutFinished = Signal(object)        # RolloutBuffer
    groundTruthChanged = Signal()
    #: the roll-out's ground truth was checked against the reference (the
    #: core.physics.reference.ReferenceCheck), or the check went (None)
    referenceChanged = Signal(object)
    #: the adapt-vs-scratch comparison (a dict of plain values, studio.pipeline.adapt_curve_job) or None
    adaptCurveChanged = Signal(object)
    #: the sweep's results (studio.sweeps.check_sweep's dict) or None; a record added: sweepRecordAdded(record)
    sweepChanged = Signal(object)
    sweepRecordAdded = Signal(object)
    #: a whole new project is shown (after the signals above): views restore the view state
    replaced = Signal()
    dirtyChanged = Signal(bool)
    #: emitted by :meth:`about_to_save`: views write what they show into :attr:`view`
    aboutToSave = Signal()
    #: a note for the status bar
    message = Signal(str)

    def __init__(self, project: Project | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.project = Project()
        self._counter = 0
        self._dirty = False
        self._saved_models: dict[int, ModelRecord] = {}
        self._reference = None
        self._curve = None
        self._sweep = None
        self._adopt(project if project is not None else Project())

    # ------------------------------------------------------------------
    # the project's parts
    # ------------------------------------------------------------------
    @property
    def system(self) -> System | None:
        return self.project.system

    @property
    def system_source(self) -> dict:
        return self.project.system_source

    @property
    def models(self) -> list[ModelRecord]:
        return self.project.models

    @property
    def current(self) -> int:
        return self.project.current_model

    @property
    def rollout(self) -> RolloutBuffer | None:
        return self.project.rollout

    @property
    def ground_truth(self) -> list:
        return self.project.ground_truth

    @property
    def view(self) -> dict:
        return self.project.view

    @property
    def method(self) -> str:
        return str(self.get("train", "method"))

    @property
    def displayed_system(self) -> System | None:
        """What the views show: the roll-out's system (a zero-shot roll-out's
        is larger) or, without a roll-out, the current system."""
        r = self.project.rollout
        return r.system if r is not None else self.project.system

    # ------------------------------------------------------------------
    # settings
    # ------------------------------------------------------------------
    def _section(self, section: str) -> dict:
        p = self.project
        head, _, sub = section.partition("/")
        if head not in SECTION_HEADS or bool(sub) != (head in ("generator", "potential", "model")):
            raise HGNError(f"unknown settings section {section!r}")
        if head == "simulation":
            return p.simulation
        if head == "model":
            return p.model_settings.setdefault(sub, {})
        if head in ("zero_shot", "port"):
            return p.ui.setdefault(head, {})
        if head == "train":
            return {"method": p.method}
        ui = p.ui.setdefault("system", {})
        if head == "system":
            return ui
        return ui.setdefault("builders" if head == "generator" else "potentials", {}).setdefault(sub, {})

    def get(self, section: str, key: str, default=None):
        d = self._section(section)
        if key in d:
            return d[key]
        return _defaults().get(section, {}).get(key, default)

    def values(self, section: str) -> dict:
        """The section's values over its defaults (a copy)."""
        d = self._section(section)
        keep = ("kind", "potential") if section == "system" else None
        out = dict(_defaults().get(section, {}))
        out.update({k: v for k, v in d.items() if keep is None or k in keep})
        return out

    def set(self, section: str, key: str, value) -> bool:
        """Change one setting; True (and settingsChanged) when it changed.
        Called by the commands in :mod:`studio.commands`."""
        if section != "train" and key not in self._section(section):
            self._section(section)[key] = self.get(section, key)
        if self.get(section, key) == value:
            return False
        if section == "train":
            if key != "method":
                raise HGNError(f"unknown setting train.{key}")
            self.project.method = str(value)
        else:
            self._section(section)[key] = value
        self.settingsChanged.emit(section, key)
        return True

    def settings_state(self) -> dict[str, dict]:
        """Every settings section (for the last used values in QSettings)."""
        return {s: self.values(s) for s in _defaults()}

    def restore_settings(self, state: dict) -> None:
        """Put saved settings sections back (no undo; unknown sections are
        ignored); listeners refresh from ``settingsChanged("", "")``."""
        if not isinstance(state, dict):
            return
        known = _defaults()
        for section, values in state.items():
            if section in known and isinstance(values, dict):
                d = self._section(section)
                if section == "train":
                    if isinstance(values.get("method"), str):
                        self.project.method = values["method"]
                    continue
                d.update({k: v for k, v in values.items() if k in known[section]})
        self.settingsChanged.emit("", "")

    def reset_settings(self) -> None:
        """Every setting back to its default."""
        self.restore_settings(default_settings())

    # ------------------------------------------------------------------
    # system
    # ------------------------------------------------------------------
    def set_system(self, system: System, source: dict | None = None) -> None:
        """A new current system (its roll-out goes: it showed another system)."""
        self.project.system = system
        self.project.system_source = dict(source or {})
        self.project.rollout = None
        self.set_reference_check(None)
        self.set_adapt_curve(None)          # it compared on the previous system's data
        if self._sweep is not None and not self._sweep["stale"] and self._sweep["system"] != system.name:
            self._sweep["stale"] = True     # its points were another system: kept, marked
            self.sweepChanged.emit(self._sweep)
        self.systemChanged.emit(system)
        self._set_dirty(True)

    # ------------------------------------------------------------------
    # models
    # ------------------------------------------------------------------
    def next_name(self, method: str) -> str:
        self._counter += 1
        return f"{method}-{self._counter}"

    def add_model(self, record: ModelRecord, index: int | None = None) -> int:
        """Put a fitted model into the table (at ``index``, default the end)
        and make it current."""
        if not isinstance(record, ModelRecord):
            raise HGNError(f"expected a ModelRecord, got {type(record).__name__}")
        models = self.project.models
        index = len(models) if index is None else max(0, min(int(index), len(models)))
        models.insert(index, record)
        self._counter = max(self._counter, _number(record.name))
        self.project.current_model = -1
        self.modelsChanged.emit()
        self._set_dirty(True)
        self.set_current(index)
        return index

    def remove_model(self, index: int) -> ModelRecord | None:
        models = self.project.models
        if not 0 <= index < len(models):
            return None
        record = models.pop(index)
        cur = self.project.current_model
        if cur >= len(models) or cur == index:
            cur = min(index, len(models) - 1)
        elif cur > index:
            cur -= 1
        self.project.current_model = cur
        self.modelsChanged.emit()
        self.currentModelChanged.emit(cur)
        self._set_dirty(True)
        return record

    def set_current(self, index: int) -> None:
        if index != self.project.current_model and -1 <= index < len(self.project.models):
            self.project.current_model = index
            self.currentModelChanged.emit(index)

    def current_model(self) -> ModelRecord | None:
        i, models = self.project.current_model, self.project.models
        return models[i] if 0 <= i < len(models) else None

    def model_index(self, name: str) -> int:
        for i, m in enumerate(self.project.models):
            if m.name == name:
                return i
        return -1

    # ------------------------------------------------------------------
    # roll-out
    # ------------------------------------------------------------------
    def start_rollout(self, buffer: RolloutBuffer, integrator: str = "") -> None:
        """A new roll-out to show; ``integrator`` names its ground truth's
        integrator (core.physics.simulate's labels, "imported" for another
        code's trajectory). A check of the previous ground truth goes."""
        self.project.rollout = buffer
        self.project.ui["rollout"] = {"integrator": str(integrator)}
        self.set_reference_check(None)
        self.rolloutStarted.emit(buffer)

    @property
    def rollout_integrator(self) -> str:
        """The integrator of the shown roll-out's ground truth ("" when unknown)."""
        d = self.project.ui.get("rollout")
        v = d.get("integrator", "") if isinstance(d, dict) else ""
        return v if isinstance(v, str) else ""

    # ------------------------------------------------------------------
    # the ground truth against the reference
    # ------------------------------------------------------------------
    @property
    def reference_check(self):
        """The shown roll-out's ground truth against the DOP853 reference
        (a core.physics.reference.ReferenceCheck), or None. Kept in the
        project (``ui["reference_check"]``), so saving keeps it."""
        return self._reference

    def set_reference_check(self, check) -> None:
        """Store a check of the shown roll-out's ground truth (None: drop it)."""
        if check is None and self._reference is None:
            self.project.ui.pop("reference_check", None)
            return
        from core.physics.reference import MAX_CHECK_FRAMES

        self._reference = check
        if check is None or check.n_frames > MAX_CHECK_FRAMES:   # (longer: shown, not saved)
            self.project.ui.pop("reference_check", None)
        else:
            self.project.ui["reference_check"] = check.to_dict()
            self._set_dirty(True)
        self.referenceChanged.emit(check)

    # ------------------------------------------------------------------
    # adapt vs fit from scratch (issue 14)
    # ------------------------------------------------------------------
    @property
    def adapt_curve(self) -> dict | None:
        """Test error against k of adaptation and of fits from scratch on the
        current system's data (studio.pipeline.adapt_curve_job's plain dict),
        or None. Kept in the project (``ui["adapt_curve"]``); a new system
        drops it."""
        return self._curve

    def set_adapt_curve(self, curve: dict | None) -> None:
        """Store a comparison (None: drop it); HGNError when it is malformed."""
        if curve is None and self._curve is None:
            self.project.ui.pop("adapt_curve", None)
            return
        if curve is not None:
            curve = check_adapt_curve(curve, "the adapt-vs-scratch comparison")
            self.project.ui["adapt_curve"] = curve
        else:
            self.project.ui.pop("adapt_curve", None)
        self._curve = curve
        self._set_dirty(True)
        self.adaptCurveChanged.emit(curve)

    # ------------------------------------------------------------------
    # the sweep (issue 15)
    # ------------------------------------------------------------------
    @property
    def sweep(self) -> dict | None:
        """The sweep's results (studio.sweeps.check_sweep's dict: records, path of its JSON, the system it
        ran on, stale) or None. Kept in the project (``ui["sweep"]``); a new system marks it stale."""
        return self._sweep

    def set_sweep(self, sweep: dict | None) -> None:
        """Store a sweep's results (None: drop them); HGNError when malformed."""
        from .sweeps import check_sweep

        if sweep is None:
            self.project.ui.pop("sweep", None)
        else:
            sweep = check_sweep(sweep, "the sweep")
            self.project.ui["sweep"] = sweep
        self._sweep = sweep
        self._set_dirty(True)
        self.sweepChanged.emit(sweep)

    def add_sweep_record(self, record: dict) -> None:
        """A finished sweep point (core.cluster.sweep's record) joins the stored sweep (replacing one of
        the same key)."""
        if self._sweep is None:
            self.set_sweep({"records": [], "path": "", "system": self.system.name if self.system else ""})
        from .sweeps import check_sweep

        check_sweep({"records": [record]}, "a sweep record")
        recs = self._sweep["records"]
        for i, r in enumerate(recs):
            if r["key"] == record["key"]:
                recs[i] = record
                break
        else:
            recs.append(record)
        self._set_dirty(True)
        self.sweepRecordAdded.emit(record)

    def add_rollout_chunk(self, which: str, traj) -> None:
        buf = self.project.rollout
        if buf is None:
            return
        before = buf.n_filled
        buf.add(which, traj)
        if buf.n_filled != before:
            self.rolloutExtended.emit(buf.n_filled)

    def add_rollout_warning(self, message: str) -> None:
        if self.project.rollout is not None:
            self.project.rollout.warnings.append(message)

    def finish_rollout(self) -> None:
        """The roll-out is complete: its measures go into its model's row."""
        buf = self.project.rollout
        if buf is None:
            return
        buf.finished = True
        i = self.model_index(buf.model_name) if buf.model_name else -1
        if i >= 0 and buf.with_prediction and buf.n_filled > 1 and not buf.zero_shot:
            rec = self.project.models[i]
            m = buf.measures()
            rec.final_position_mse = m["final_position_mse"]
            rec.max_abs_drift = m["max_abs_drift_prediction"]
            self.modelsChanged.emit()
        self.rolloutFinished.emit(buf)
        self._set_dirty(True)

    def show_trajectory(self, traj) -> None:
        """A ground-truth trajectory alone (no prediction) on the timeline."""
        meta = traj.meta if isinstance(traj.meta, dict) else {}
        self.start_rollout(RolloutBuffer.from_trajectories(traj, label=traj.label),
                           str(meta.get("integrator", "imported")))
        self.finish_rollout()

    # ------------------------------------------------------------------
    # imported ground truth
    # ------------------------------------------------------------------
    def add_ground_truth(self, traj) -> None:
        self.project.ground_truth.append(traj)
        self.groundTruthChanged.emit()
        self._set_dirty(True)

    # ------------------------------------------------------------------
    # view state
    # ------------------------------------------------------------------
    def set_view(self, key: str, value) -> None:
        """What the views show (frame, layout, colouring, camera, playback):
        kept for saving; no signal, the views themselves changed it."""
        self.project.view[key] = value

    # ------------------------------------------------------------------
    # files
    # ------------------------------------------------------------------
    def about_to_save(self, name: str = "") -> Project:
        """The project to write: views put their state into :attr:`view` first."""
        self.aboutToSave.emit()
        if name:
            self.project.name = name
        return self.project

    def mark_saved(self) -> None:
        self._saved_models = {id(m): m for m in self.project.models}
        self._set_dirty(False)

    def has_unsaved_models(self) -> bool:
        """True when a model exists that no saved file holds (fitting it again
        would cost time)."""
        return any(id(m) not in self._saved_models for m in self.project.models)

    @property
    def dirty(self) -> bool:
        return self._dirty

    def _set_dirty(self, dirty: bool) -> None:
        if dirty != self._dirty:
            self._dirty = dirty
            self.dirtyChanged.emit(dirty)

    def replace(self, project: Project, saved: bool = True) -> None:
        """Show another project. ``saved``: it is what a file holds (its
        models need no saving); False for a recovered autosave."""
        self._adopt(project)
        self._saved_models = {id(m): m for m in project.models} if saved else {}
        self._dirty = not saved
        self.settingsChanged.emit("", "")
        self.modelsChanged.emit()
        if project.system is not None:
            self.systemChanged.emit(project.system)
        if project.rollout is not None:
            self.rolloutStarted.emit(project.rollout)
            self.rolloutFinished.emit(project.rollout)
        self.groundTruthChanged.emit()
        self.referenceChanged.emit(self._reference)
        self.adaptCurveChanged.emit(self._curve)
        self.sweepChanged.emit(self._sweep)
        self.currentModelChanged.emit(project.current_model)
        self.replaced.emit()
        self.dirtyChanged.emit(self._dirty)

    def _adopt(self, project: Project) -> None:
        if not isinstance(project, Project):
            raise HGNError(f"expected a Project, got {type(project).__name__}")
        if project.rollout is not None and not isinstance(project.rollout, RolloutBuffer):
            r = project.rollout       # a core RolloutRecord built from two trajectories
            project.rollout = RolloutBuffer.from_trajectories(r.truth, r.prediction, r.model_name, r.label,
                                                              r.zero_shot)
        ui = project.ui if isinstance(project.ui, dict) else {}
        if not isinstance(ui.get("system"), dict):
            ui["system"] = {}
        ui.pop("train", None)          # older studios kept a copy of simulation/method/model_settings here
        start = ui["system"].pop("start", None)
        if isinstance(start, dict):    # ... and the start state next to the generators
            for k, v in start.items():
                project.simulation.setdefault(k, v)
        project.ui = ui
        if project.system is not None:       # the system form describes the system shown
            for section, key, value in settings_of_system(project.system):
                if section == "system":
                    ui["system"][key] = value
                elif section == "port":
                    ui.setdefault("port", {})[key] = value
                else:
                    head, _, sub = section.partition("/")
                    ui["system"].setdefault("builders" if head == "generator" else "potentials", {}) \
                        .setdefault(sub, {})[key] = value
        if not -1 <= project.current_model < len(project.models):
            project.current_model = len(project.models) - 1
        self._reference = None
        if project.rollout is not None and "reference_check" in ui:
            from core.physics.reference import ReferenceCheck

            try:
                self._reference = ReferenceCheck.from_dict(ui["reference_check"], "the project's reference check")
            except HGNError:
                ui.pop("reference_check")       # damaged: the user can check again
        else:
            ui.pop("reference_check", None)
        self._curve = None
        if "adapt_curve" in ui:
            try:
                self._curve = check_adapt_curve(ui["adapt_curve"], "the project's adapt-vs-scratch comparison")
            except HGNError:
                ui.pop("adapt_curve")           # damaged: the user can compare again
        self._sweep = None
        if "sweep" in ui:
            from .sweeps import check_sweep

            try:
                self._sweep = ui["sweep"] = check_sweep(ui["sweep"], "the project's sweep")
            except HGNError:
                ui.pop("sweep")                 # damaged: the sweep's JSON file still holds its points
        self.project = project
        self._counter = max([_number(m.name) for m in project.models] + [0])


#: the series of an adapt-vs-scratch comparison: one value per k (None where a fit failed)
CURVE_SERIES = ("k", "adapt", "scratch", "adapt_time", "scratch_time")


def check_adapt_curve(curve, where: str) -> dict:
    """A plain copy of an adapt-vs-scratch comparison (studio.pipeline.adapt_curve_job), checked: each of
    :data:`CURVE_SERIES` a list as long as ``k``, k whole numbers >= 1, the rest numbers (or None);
    HGNError naming the series otherwise."""
    if not isinstance(curve, dict):
        raise HGNError(f"{where}: expected a dict, got {type(curve).__name__}")
    out = {k: v for k, v in curve.items() if isinstance(v, (str, int, float)) and not isinstance(v, bool)}
    notes = curve.get("notes") or []
    out["notes"] = [str(x) for x in notes] if isinstance(notes, (list, tuple)) else []
    n = None
    for name in CURVE_SERIES:
        v = curve.get(name)
        if not isinstance(v, (list, tuple)) or (n is not None and len(v) != n):
            raise HGNError(f"{where}: '{name}' must be a list with one value per k")
        n = len(v)
        vals = []
        for x in v:
            ok = x is None and name != "k" or (isinstance(x, (int, float)) and not isinstance(x, bool)
                                               and np.isfinite(x) and (name != "k" or (x >= 1 and int(x) == x)))
            if not ok:
                raise HGNError(f"{where}: '{name}' holds {x!r}; expected " +
                               ("whole numbers >= 1" if name == "k" else "finite numbers or null"))
            vals.append(int(x) if name == "k" else (None if x is None else float(x)))
        out[name] = vals
    return out


# ----------------------------------------------------------------------
# what the settings build
# ----------------------------------------------------------------------
def potential_from_settings(doc: Document):
    """The pair potential the ``system`` settings choose (HGNError names a
    bad parameter)."""
    from core.physics.potentials import make_potential

    kind = doc.get("system", "potential")
    values = doc.values(f"potential/{kind}")
    if kind == "spline":                 # unset fields: the class's defaults; no points: core says so
        values = {k: v for k, v in values.items() if v is not None}
    return make_potential(kind, **values)


def builder_params(doc: Document, kind: str | None = None) -> dict:
    kind = kind or doc.get("system", "kind")
    p = doc.values(f"generator/{kind}")
    if "dim" in p:
        try:
            p["dim"] = int(p["dim"])
        except (TypeError, ValueError):
            raise HGNError(f"dim must be 2 or 3, got {p['dim']!r}") from None
    return p


def system_source(doc: Document) -> dict:
    """How :func:`system_from_settings` builds (kept with the system)."""
    kind, pot = doc.get("system", "kind"), doc.get("system", "potential")
    return {"kind": kind, "params": builder_params(doc, kind), "potential": pot,
            "potential_params": doc.values(f"potential/{pot}"), "port": _plain_port_settings(doc.values("port"))}


def _plain_port_settings(values: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def system_from_settings(doc: Document) -> System:
    """Build the system the generator settings describe (core.physics.builders)."""
    from core.physics.builders import build

    kind = doc.get("system", "kind")
    system = build(kind, potential=potential_from_settings(doc), **builder_params(doc, kind))
    return with_port(system, port_from_settings(doc.values("port"), system))


def with_port(system: System, port) -> System:
    """``system`` with ``port`` (a copy; the same system when both have none)."""
    if port is None and system.port is None:
        return system
    return system.copy(port=port)


def _numbers(label: str, text, dim: int, allow_empty: bool = False):
    """A vector of ``dim`` numbers typed as "1, 0" (missing trailing components are 0; extra ones must be 0)."""
    if isinstance(text, (list, tuple)):
        parts = [str(x) for x in text]
    else:
        parts = [x for x in re.split(r"[,\s]+", str(text or "").strip()) if x]
    if not parts:
        if allow_empty:
            return None
        raise HGNError(f"{label}: give {dim} numbers separated by commas, e.g. {', '.join(['1'] + ['0'] * (dim - 1))}")
    try:
        v = [float(x) for x in parts]
    except ValueError:
        raise HGNError(f"{label}: {text!r} is not a list of numbers (e.g. 1, 0)") from None
    if len(v) > dim and any(v[dim:]):
        raise HGNError(f"{label}: {len(v)} components for a {dim}D system")
    return tuple((v + [0.0] * dim)[:dim])


def boundary_layer(system: System) -> np.ndarray:
    """True for the particles on the outer layer of the system (a coordinate at its minimum or maximum
    along some axis, within 1e-6 of the extent): a lattice's edges or faces, a chain's ends."""
    x = np.asarray(system.positions, dtype=np.float64)
    lo, hi = x.min(axis=0), x.max(axis=0)
    tol = 1e-6 * max(float(np.max(hi - lo)), 1.0)
    on = (np.abs(x - lo) <= tol) | (np.abs(x - hi) <= tol)
    on &= (hi - lo > tol)[None, :]          # a flat axis (a chain's y) has no boundary
    return on.any(axis=1)


def port_from_settings(values: dict, system: System):
    """The core.physics.port.Port the ``port`` settings describe on ``system`` (None: undamped and
    undriven). HGNError names the field of a bad value (its label first)."""
    from core.physics.port import Drive, make_port

    def num(key, label):
        v = values.get(key, PORT_DEFAULTS[key])
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise HGNError(f"{label}: must be a number, got {v!r}")
        return float(v)

    gamma = num("damping", "Damping")
    if gamma < 0:
        raise HGNError(f"Damping: must be >= 0 (a friction coefficient), got {gamma:g}")
    where = values.get("damping_where", "every particle")
    damping = gamma
    if gamma > 0 and where == "boundary layer":
        damping = np.where(boundary_layer(system), gamma, 0.0)
    nodes = tuple(int(i) for i in (values.get("drive_nodes") or ()))
    amp = num("drive_amplitude", "Drive amplitude")
    drives = []
    if nodes and amp != 0:
        bad = [i for i in nodes if not 0 <= i < system.n]
        if bad:
            raise HGNError(f"Driven particles: particle {bad[0]} does not exist (there are {system.n}, "
                           f"numbered 0..{system.n - 1})")
        direction = _numbers("Drive direction", values.get("drive_direction", "1, 0"), system.dim)
        try:
            drives.append(Drive(nodes, amp, num("drive_frequency", "Drive frequency"), direction,
                                num("drive_phase", "Drive phase")))
        except HGNError as exc:
            msg = str(exc)
            raise HGNError(msg[0].upper() + msg[1:]) from None
    field = _numbers("Constant field", values.get("field", ""), system.dim, allow_empty=True)
    try:
        port = make_port(damping, drives, field if field is not None and any(field) else None)
    except HGNError as exc:
        raise HGNError(f"Damping: {exc}") from None
    return None if port is None else port.check(system.n, system.dim)


def port_settings(port, system: System | None = None) -> list[tuple[str, str, object]]:
    """The ``port`` settings that describe ``port`` (None: no damping, no drive): the first drive of
    several is shown; per-particle damping shows as its largest value on the boundary layer."""
    out = {k: v for k, v in PORT_DEFAULTS.items()}
    if port is not None:
        g = np.asarray(port.damping, dtype=np.float64)
        out["damping"] = float(g.max()) if g.size else 0.0
        out["damping_where"] = "boundary layer" if port.per_particle else "every particle"
        if port.drives:
            d = port.drives[0]
            out.update(drive_nodes=tuple(d.nodes), drive_amplitude=d.amplitude, drive_frequency=d.frequency,
                       drive_phase=d.phase, drive_direction=", ".join(f"{x:g}" for x in d.direction))
        if port.field is not None:
            out["field"] = ", ".join(f"{x:g}" for x in port.field)
    elif system is not None:
        out["drive_direction"] = ", ".join(["1"] + ["0"] * (system.dim - 1))
    return [("port", k, v) for k, v in out.items()]


def settings_of_system(system: System) -> list[tuple[str, str, object]]:
    """The ``(section, key, value)`` settings that describe ``system`` (made
    by a generator: its kind, parameters and potential), so that the system
    form shows what the views show; empty for drawn or foreign systems."""
    meta = dict(system.meta or {})
    kind = meta.pop("builder", None)
    if kind not in BUILDER_DEFAULTS:
        return port_settings(system.port) if system.port is not None else []
    out = [("system", "kind", kind)]
    out += [(f"generator/{kind}", k, meta[k]) for k in BUILDER_DEFAULTS[kind] if k in meta]
    pot = system.potential
    if getattr(pot, "kind", None) == "spline":         # the drawn potential: its knots as lists
        out.append(("system", "potential", "spline"))
        out += [("potential/spline", k, list(v) if isinstance(v, (list, tuple)) else v)
                for k, v in pot.to_dict().items() if k != "kind"]
    elif dataclasses.is_dataclass(pot) and getattr(pot, "kind", None) in _potential_defaults():
        out.append(("system", "potential", pot.kind))
        out += [(f"potential/{pot.kind}", f.name, getattr(pot, f.name)) for f in dataclasses.fields(pot)]
    return out + port_settings(system.port, system)
