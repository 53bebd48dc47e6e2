"""A whole studio project in one file: the system, every setting, the fitted
models with their results, the roll-out, imported ground truth and what the
user was looking at.

:class:`Project` is a plain (Qt-free) dataclass; the studio's document
(``studio/document.py``) wraps one and saves it as it is, and the command line
(``python main.py export-video PROJECT``) reads it without a window.
:func:`save_project` / :func:`load_project` store it as one
:mod:`core.container` container of kind ``"project"`` (suffix
``.hgnproj``; any name works). The layout is documented in
``core/files/PROJECT_FORMAT.md``; in short:

header
    ``project``: ``{version, name, saved, program}`` (``version`` is
    :data:`PROJECT_VERSION`; newer files are refused with a clear message);
    ``systems`` and ``trajectories``: shared tables exactly as in a trajectory
    file (:mod:`core.files.io`), referenced by index from everything below;
    ``system`` (index or null), ``system_source`` (how it was built),
    ``simulation``, ``method``, ``model_settings``, ``models`` (one entry per
    fitted model: name, method, settings, system index, results, info, the
    embedded model file and the optional dataset), ``current_model``,
    ``rollout`` (truth and prediction trajectory indices, model name, label,
    zero-shot flag, planned steps), ``ground_truth`` (indices of imported
    trajectories), ``view`` and ``ui`` (JSON objects the studio fills: current
    frame, layout, colouring, camera, panel values).
arrays
    ``systemJ.*`` and ``trajK.*`` as in :mod:`core.files.io`; ``modelI.<name>``:
    the arrays of model I's own file (e.g. ``modelI.theta``), whose header is
    kept in ``models[I].model.header``; ``modelI.loss``: its training loss
    curve; ``datasetI.<name>``: its training data (q, p, dqdt, dpdt, energy,
    train, test, ``meta.<name>``).

Models are embedded through their own file format: any model object with a
``save(path)`` method that writes a :mod:`core.container` container is
stored with that container's header and arrays, and read back by the loader
of its kind in the registry of file kinds (:mod:`core.files.kinds`, model
kinds: RF-HGN's ``model`` and the baselines' ``baseline_model`` and
``rf_hnn_model``, registered by :mod:`core.files.models`). A
model without ``save`` keeps its row in the results table and is read back
as ``model=None`` (``ModelRecord.note`` says why).

Loading validates everything and raises :class:`~core.errors.HGNError` with
a message naming the file and the problem; it changes nothing else, so a
caller can keep its current state when a file is corrupt, truncated or
foreign. Saving is atomic (temporary file, then rename): a failed save leaves
the previous file intact.

The section *Imported ground truth* turns trajectories read from other MD
codes (extended XYZ, ``core.files.io`` files) into a :class:`~core.physics.trajectory.Dataset`
to fit on (:func:`dataset_from_trajectories`).
"""
from __future__ import annotations

import datetime as _dt
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import HGNError
from . import kinds
from core.container import FORMAT, as_path, jsonable, load_npz, save_npz
from core.schema import Arr, Field, check_arrays, check_fields
from .io import (DATASET_ARRAYS, DATASET_ARRAY_SPECS, DATASET_FIELDS, check_dataset, meta_of, pack_trajectories,
                 same_system, split_meta, system_arrays, system_header, trajectory_list, unpack_systems,
                 unpack_trajectories)
from core.learning.rollout_buffer import RolloutBuffer
from core.physics.system import System
from core.physics.trajectory import Dataset, Trajectory

PROJECT_KIND = "project"
#: version of the project layout (inside the container's own version 1)
PROJECT_VERSION = 1
#: the suffix the studio proposes for project files
PROJECT_SUFFIX = ".hgnproj"

# ----------------------------------------------------------------------
# the schema of a project header (core.schema.Field), checked before use
# ----------------------------------------------------------------------
_TEXT = Field("str", required=False, null=True)
_RESULT = Field("number", required=False, null=True, finite=False)
#: the embedded file of a model (its own header and the names of its arrays)
EMBEDDED_MODEL_FIELDS = {
    "kind": Field("str"),
    "version": Field("int", required=False, lo=1),
    "header": Field("dict"),
    "arrays": Field("list", items=Field("str", lo=1, hi=300)),
}
#: a dataset inside a project (as a dataset file's, on any of the project's systems)
PROJECT_DATASET_FIELDS = {**DATASET_FIELDS, "system": Field("int", lo=0)}
#: one entry of ``models``
MODEL_RECORD_FIELDS = {
    "name": Field("str"),
    "method": Field("str"),
    "settings": Field("dict", required=False, null=True),
    "system": Field("int", lo=0),
    "fit_time": _RESULT, "test_mse": _RESULT, "data_time": _RESULT,
    "final_position_mse": _RESULT, "max_abs_drift": _RESULT,
    "info": Field("dict", required=False, null=True),
    "model": Field("dict", required=False, null=True, fields=EMBEDDED_MODEL_FIELDS),
    "note": _TEXT,
    "loss": Field("bool", required=False, null=True),
    "dataset": Field("dict", required=False, null=True, fields=PROJECT_DATASET_FIELDS),
}
#: ``rollout``
ROLLOUT_FIELDS = {
    "truth": Field("int", lo=0),
    "prediction": Field("int", required=False, null=True, lo=0),
    "model_name": _TEXT, "label": _TEXT,
    "zero_shot": Field("bool", required=False, null=True),
    "steps": Field("int", required=False, null=True, lo=0),
}
#: ``view.camera`` (the studio's 3D camera)
CAMERA_FIELDS = {
    "center": Field("list", required=False, lo=2, hi=3, items=Field("number")),
    "scale_factor": Field("number", required=False, above=0),
    "elevation": Field("number", required=False),
    "azimuth": Field("number", required=False),
    "fov": Field("number", required=False, lo=0, hi=179),
}
#: ``view`` (what the studio's views showed)
VIEW_FIELDS = {
    "frame": Field("int", required=False, lo=0),
    "layout": _TEXT, "colour": _TEXT, "loop": _TEXT,
    "camera": Field("dict", required=False, null=True, fields=CAMERA_FIELDS),
    "speed": Field("number", required=False, above=0),
}
#: ``project``
PROJECT_INFO_FIELDS = {
    "version": Field("int", lo=1),
    "name": _TEXT, "saved": _TEXT, "program": _TEXT,
}
#: the whole header
PROJECT_FIELDS = {
    "project": Field("dict", fields=PROJECT_INFO_FIELDS),
    "systems": Field("list", required=False, items=Field("dict")),
    "trajectories": Field("list", required=False, items=Field("dict")),
    "system": Field("int", required=False, null=True, lo=0),
    "system_source": Field("dict", required=False),
    "simulation": Field("dict", required=False),
    "method": Field("str", required=False),
    "model_settings": Field("dict", required=False),
    "models": Field("list", required=False, items=Field("dict", fields=MODEL_RECORD_FIELDS)),
    "current_model": Field("int", required=False, lo=-1),
    "rollout": Field("dict", required=False, null=True, fields=ROLLOUT_FIELDS),
    "ground_truth": Field("list", required=False, items=Field("int", lo=0)),
    "view": Field("dict", required=False, fields=VIEW_FIELDS),
    "ui": Field("dict", required=False),
}


# ----------------------------------------------------------------------
# the data
# ----------------------------------------------------------------------
@dataclass(eq=False)
class ModelRecord:
    """One fitted model and its row of the results table."""

    name: str
    method: str
    settings: dict
    system: System                      # the system it was fitted on
    model: Any = None                   # the fitted model (None when it could not be stored)
    dataset: Dataset | None = None      # its training data (optional)
    fit_time: float = 0.0
    test_mse: float = float("nan")
    data_time: float = 0.0
    loss: np.ndarray | None = None      # training loss per epoch (gradient-trained methods)
    final_position_mse: float | None = None
    max_abs_drift: float | None = None
    info: dict = field(default_factory=dict)
    note: str = ""                      # why ``model`` is None, when it is


@dataclass(eq=False)
class RolloutRecord:
    """A comparison roll-out: ground truth and (optionally) the prediction
    from the same start, on one time axis."""

    truth: Trajectory
    prediction: Trajectory | None = None
    model_name: str = ""
    label: str = ""
    zero_shot: bool = False
    steps: int | None = None            # planned steps (None: as many as stored)

    @property
    def system(self) -> System:
        return self.truth.system

    @property
    def n_frames(self) -> int:
        return self.truth.n_frames


@dataclass(eq=False)
class Project:
    """Everything a studio session holds that is worth keeping."""

    system: System | None = None
    system_source: dict = field(default_factory=dict)
    simulation: dict = field(default_factory=dict)
    method: str = "rfhgn"
    model_settings: dict = field(default_factory=dict)
    models: list[ModelRecord] = field(default_factory=list)
    current_model: int = -1
    #: the roll-out: the studio's live RolloutBuffer (its filled frames are
    #: saved), or a RolloutRecord of two trajectories; loading gives a RolloutBuffer
    rollout: RolloutBuffer | RolloutRecord | None = None
    ground_truth: list[Trajectory] = field(default_factory=list)
    view: dict = field(default_factory=dict)
    ui: dict = field(default_factory=dict)
    name: str = ""
    #: filled by load_project: version, saved time, program
    meta: dict = field(default_factory=dict)


# ----------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------
def _plain(value):
    """A JSON-able copy for informational dicts: numpy values become plain
    numbers and lists; anything else that JSON cannot hold becomes its repr."""
    if value is None or isinstance(value, (bool, str, int, float)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.dtype != object:
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return repr(value)


def _optional_float(x, where: str):
    if x is None:
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        raise HGNError(f"{where} must be a number, got {x!r}") from None


def _system_index(system: System, systems: list[System]) -> int:
    for j, s in enumerate(systems):
        if same_system(s, system):
            return j
    system_header(system)  # type check with a clear message
    systems.append(system)
    return len(systems) - 1


def _embed_model(model, prefix: str) -> tuple[dict | None, dict, str]:
    """(description, arrays, note) of a model through its own file format."""
    if model is None:
        return None, {}, "no model"
    save = getattr(model, "save", None)
    if not callable(save):
        return None, {}, f"a {type(model).__name__} cannot be saved (it has no save method)"
    with tempfile.TemporaryDirectory(prefix="hgn-model-") as d:
        path = Path(d) / "model.npz"
        save(path)
        header, arrays = load_npz(path)
    kind = header.get("kind")
    rest = {k: v for k, v in header.items() if k not in ("format", "version", "kind")}
    desc = {"kind": kind, "version": header.get("version", 1), "header": rest, "arrays": sorted(arrays)}
    return desc, {prefix + k: v for k, v in arrays.items()}, ""


def _restore_model(desc: dict, arrays: dict, prefix: str, where: str):
    """(model, note) of an embedded model (its description checked by the schema already)."""
    kind = desc.get("kind")
    model_kind = kinds.get(kind)
    if model_kind is None or not model_kind.model:
        return None, (f"models of kind {kind!r} cannot be read by this version "
                      f"(it reads: {', '.join(kinds.model_kinds())})")
    names = desc.get("arrays")
    if not isinstance(names, list):
        raise HGNError(f"{where}: the embedded model lists no arrays")
    missing = [n for n in names if prefix + n not in arrays]
    if missing:
        raise HGNError(f"{where}: the embedded model is missing array(s) {', '.join(missing[:5])} (file damaged?)")
    sub = {n: arrays[prefix + n] for n in names}
    with tempfile.TemporaryDirectory(prefix="hgn-model-") as d:
        path = Path(d) / "model.npz"
        save_npz(path, kind, desc["header"], sub)
        try:
            return model_kind.load(path), ""
        except HGNError as exc:
            raise HGNError(f"{where}: embedded {str(exc).replace('model.npz: ', '')}") from None
        except (KeyError, ValueError, TypeError, IndexError, AttributeError, OverflowError, RuntimeError) as exc:
            raise HGNError(f"{where}: the embedded model is damaged ({type(exc).__name__}: {exc})") from None


# ----------------------------------------------------------------------
# saving
# ----------------------------------------------------------------------
def _pack_dataset(ds: Dataset, prefix: str, systems: list[System], trajs: list[Trajectory],
                  where: str) -> tuple[dict, dict]:
    if not isinstance(ds, Dataset):
        raise HGNError(f"{where}: expected a Dataset, got {type(ds).__name__}")
    check_dataset(ds, where)
    plain, marr = split_meta(ds.meta, f"{where} meta")
    arrays = {}
    for name in DATASET_ARRAYS:
        a = np.asarray(getattr(ds, name))
        if name in ("train", "test") and a.size == 0:
            a = a.astype(np.int64)
        arrays[prefix + name] = a
    for name, a in marr.items():
        arrays[prefix + "meta." + name] = a
    series = []
    for tr in ds.trajectories:
        trajs.append(tr)
        series.append(len(trajs) - 1)
    desc = {"system": _system_index(ds.system, systems), "n_snapshots": ds.n_snapshots, "meta": plain,
            "meta_arrays": sorted(marr), "trajectories": series}
    return desc, arrays


def _check_rollout(r) -> None:
    if not isinstance(r, (RolloutRecord, RolloutBuffer)):
        raise HGNError(f"project rollout must be a RolloutBuffer or RolloutRecord, got {type(r).__name__}")
    if not isinstance(r.truth, Trajectory):
        raise HGNError("the roll-out has no ground-truth trajectory")
    if r.prediction is not None:
        p, t = r.prediction, r.truth
        if not isinstance(p, Trajectory):
            raise HGNError("the roll-out prediction must be a Trajectory")
        if p.n_frames != t.n_frames or not np.allclose(p.t, t.t):
            raise HGNError(f"the roll-out's prediction ({p.n_frames} frames) and ground truth "
                           f"({t.n_frames} frames) must share one time axis")
        if not same_system(p.system, t.system):
            raise HGNError("the roll-out's prediction and ground truth must be on the same system")


def save_project(path, project: Project, datasets: bool = True) -> Path:
    """Write ``project`` to ``path`` atomically (kind ``project``).

    ``datasets=False`` leaves out the models' training data (smaller files;
    the models, roll-out and results are kept)."""
    if not isinstance(project, Project):
        raise HGNError(f"expected a Project, got {type(project).__name__}")
    systems: list[System] = []
    trajs: list[Trajectory] = []
    arrays: dict[str, np.ndarray] = {}
    current = None
    if project.system is not None:
        current = _system_index(project.system, systems)

    models = []
    for i, m in enumerate(project.models):
        where = f"model {i} ({getattr(m, 'name', '?')})"
        if not isinstance(m, ModelRecord):
            raise HGNError(f"{where} is a {type(m).__name__}, not a ModelRecord")
        desc, marr, note = _embed_model(m.model, f"model{i}.")
        arrays.update(marr)
        entry = {
            "name": str(m.name), "method": str(m.method),
            "settings": jsonable(m.settings or {}, f"{where} settings"),
            "system": _system_index(m.system, systems),
            "fit_time": float(m.fit_time), "test_mse": float(m.test_mse), "data_time": float(m.data_time),
            "final_position_mse": _optional_float(m.final_position_mse, f"{where} final_position_mse"),
            "max_abs_drift": _optional_float(m.max_abs_drift, f"{where} max_abs_drift"),
            "info": _plain(m.info or {}),
            "model": desc, "note": m.note or note,
            "loss": m.loss is not None, "dataset": None,
        }
        if m.loss is not None:
            arrays[f"model{i}.loss"] = np.asarray(m.loss, dtype=np.float64).reshape(-1)
        if datasets and m.dataset is not None:
            entry["dataset"], darr = _pack_dataset(m.dataset, f"dataset{i}.", systems, trajs, f"{where} dataset")
            arrays.update(darr)
        models.append(entry)

    rollout = None
    r = project.rollout
    if isinstance(r, RolloutBuffer) and r.n_filled < 1:
        r = None                        # nothing computed yet: nothing to keep
    if r is not None:
        _check_rollout(r)
        trajs.append(r.truth)
        rollout = {"truth": len(trajs) - 1, "prediction": None, "model_name": str(r.model_name),
                   "label": str(r.label), "zero_shot": bool(r.zero_shot),
                   "steps": None if r.steps is None else int(r.steps)}
        if r.prediction is not None:
            trajs.append(r.prediction)
            rollout["prediction"] = len(trajs) - 1

    ground = []
    for tr in project.ground_truth:
        if not isinstance(tr, Trajectory):
            raise HGNError(f"imported ground truth must be Trajectory objects, got {type(tr).__name__}")
        trajs.append(tr)
        ground.append(len(trajs) - 1)

    entries, tarr = pack_trajectories(trajs, systems)
    arrays.update(tarr)
    for j, s in enumerate(systems):
        arrays.update(system_arrays(s, f"system{j}."))
    n_models = len(project.models)
    cur = int(project.current_model)
    header = {
        "project": {"version": PROJECT_VERSION, "name": str(project.name or Path(path).stem),
                    "saved": _dt.datetime.now().isoformat(timespec="seconds"), "program": "HGN Studio"},
        "systems": [system_header(s) for s in systems],
        "trajectories": entries,
        "system": current,
        "system_source": jsonable(project.system_source or {}, "system source"),
        "simulation": jsonable(project.simulation or {}, "simulation settings"),
        "method": str(project.method),
        "model_settings": jsonable(project.model_settings or {}, "model settings"),
        "models": models,
        "current_model": cur if -1 <= cur < n_models else (n_models - 1),
        "rollout": rollout,
        "ground_truth": ground,
        "view": jsonable(project.view or {}, "view state"),
        "ui": jsonable(project.ui or {}, "ui state"),
    }
    return save_npz(path, PROJECT_KIND, header, arrays)


# ----------------------------------------------------------------------
# loading
# ----------------------------------------------------------------------
def _index(v, n: int, what: str, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < n:
        raise HGNError(f"{where} refers to {what} {v!r}, but the file holds {n}")
    return v


def _unpack_dataset(desc: dict, arrays: dict, prefix: str, systems, trajs, where: str) -> Dataset:
    sys_ = systems[_index(desc.get("system"), len(systems), "system", where)]
    missing = [n for n in DATASET_ARRAYS if prefix + n not in arrays]
    if missing:
        raise HGNError(f"{where} is missing array(s) {', '.join(prefix + m for m in missing)} (file damaged?)")
    sizes = {"N": sys_.n, "d": sys_.dim}
    if "n_snapshots" in desc:
        sizes["S"] = desc["n_snapshots"]
    check_arrays(arrays, DATASET_ARRAY_SPECS, where, sizes, prefix)
    meta = meta_of(desc, arrays, prefix, where)
    series = [trajs[_index(k, len(trajs), "trajectory", where)] for k in desc.get("trajectories", [])]
    ds = Dataset(system=sys_, **{n: arrays[prefix + n] for n in DATASET_ARRAYS}, trajectories=series, meta=meta)
    check_dataset(ds, where)
    return ds


def read_header(path) -> dict:
    """The project part of a project file's header (cheap: no arrays are
    validated), e.g. for a recent-files menu. HGNError if not a project."""
    header, _ = load_npz(path, PROJECT_KIND)
    info = header.get("project")
    if not isinstance(info, dict):
        raise HGNError(f"{Path(path).name}: the project description is missing")
    return info


def load_project(path) -> Project:
    """Read a project file; HGNError (naming the file and the problem) if it
    is not one, is damaged, or was written by a newer version. The header is
    checked against :data:`PROJECT_FIELDS` (and the schemas of the systems,
    trajectories, datasets and embedded models it holds) before use."""
    path = as_path(path)
    fname = path.name
    header, arrays = load_npz(path)
    kind = header.get("kind")
    if kind != PROJECT_KIND:
        raise HGNError(f"{fname} holds {kinds.label_of(kind)}, not a project (open it with File > Open to import it)")
    info = header.get("project")
    if not isinstance(info, dict):
        raise HGNError(f"{fname}: the project description is missing (file damaged?)")
    version = info.get("version", 0)
    if isinstance(version, int) and not isinstance(version, bool) and version > PROJECT_VERSION:
        raise HGNError(f"{fname} was written by a newer HGN Studio (project version {version}, "
                       f"this one reads {PROJECT_VERSION})")
    check_fields(header, PROJECT_FIELDS, f"{fname}: header")
    try:
        return _load(header, arrays, fname, info)
    except HGNError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as exc:
        raise HGNError(f"{fname}: the project is damaged ({type(exc).__name__}: {exc})") from None


def _load(header: dict, arrays: dict, fname: str, info: dict) -> Project:
    systems = unpack_systems(header, arrays, fname) if header.get("systems") else []
    if header.get("trajectories") and not systems:
        raise HGNError(f"{fname}: trajectories without systems (file damaged?)")
    trajs = unpack_trajectories(header, arrays, systems, fname) if systems else []
    cur = header.get("system")
    system = None if cur is None else systems[_index(cur, len(systems), "system", f"{fname}: project system")]

    models = []
    for i, e in enumerate(header.get("models", [])):
        name = e["name"]
        w = f"{fname}: model {i} ({name})"
        m_sys = systems[_index(e["system"], len(systems), "system", w)]
        model, note = None, str(e.get("note") or "")
        if e.get("model") is not None:
            model, why = _restore_model(e["model"], arrays, f"model{i}.", w)
            note = why or note
        loss = None
        if e.get("loss"):
            if f"model{i}.loss" not in arrays:
                raise HGNError(f"{w} is missing its loss curve (array model{i}.loss)")
            check_arrays(arrays, {"loss": Arr("float", (None,), finite=False)}, w, prefix=f"model{i}.")
            loss = np.asarray(arrays[f"model{i}.loss"], dtype=np.float64)
        dataset = None
        if e.get("dataset") is not None:
            dataset = _unpack_dataset(e["dataset"], arrays, f"dataset{i}.", systems, trajs, f"{w} dataset")
        models.append(ModelRecord(
            name=name, method=e["method"], settings=e.get("settings") or {}, system=m_sys, model=model,
            dataset=dataset, fit_time=_number(e.get("fit_time"), 0.0), test_mse=_number(e.get("test_mse"), np.nan),
            data_time=_number(e.get("data_time"), 0.0), loss=loss,
            final_position_mse=e.get("final_position_mse"), max_abs_drift=e.get("max_abs_drift"),
            info=e.get("info") or {}, note=note))

    rollout = None
    r = header.get("rollout")
    if r is not None:
        w = f"{fname}: roll-out"
        truth = trajs[_index(r["truth"], len(trajs), "trajectory", w)]
        pred = None
        if r.get("prediction") is not None:
            pred = trajs[_index(r["prediction"], len(trajs), "trajectory", w)]
        try:
            _check_rollout(RolloutRecord(truth=truth, prediction=pred))
        except HGNError as exc:
            raise HGNError(f"{w}: {exc}") from None
        rollout = RolloutBuffer.from_trajectories(truth, pred, model_name=str(r.get("model_name") or ""),
                                                  label=str(r.get("label") or ""),
                                                  zero_shot=bool(r.get("zero_shot", False)))

    ground = [trajs[_index(k, len(trajs), "trajectory", f"{fname}: imported ground truth")]
              for k in header.get("ground_truth", [])]
    cur_model = header.get("current_model", -1)
    if not -1 <= cur_model < len(models):
        cur_model = len(models) - 1
    return Project(system=system, system_source=header.get("system_source", {}),
                   simulation=header.get("simulation", {}), method=header.get("method", "rfhgn"),
                   model_settings=header.get("model_settings", {}),
                   models=models, current_model=cur_model, rollout=rollout, ground_truth=ground,
                   view=header.get("view", {}), ui=header.get("ui", {}),
                   name=str(info.get("name") or ""),
                   meta={"version": info["version"], "saved": info.get("saved"),
                         "program": info.get("program"), "format": FORMAT})


def _number(v, default: float) -> float:
    return default if v is None else float(v)


def is_project_file(path) -> bool:
    """True when ``path`` is an HGN Studio container of kind project (cheap
    check; False for anything unreadable)."""
    try:
        header, _ = load_npz(path)
    except HGNError:
        return False
    return header.get("kind") == PROJECT_KIND


def describe_project(project: Project) -> str:
    """One line saying what a project holds (for status bars and logs)."""
    if not isinstance(project, Project):
        raise HGNError(f"expected a Project, got {type(project).__name__}")
    parts = []
    if project.system is not None:
        s = project.system
        parts.append(f"{s.name or 'system'} ({s.n} particles, {s.dim}D)")
    parts.append(f"{len(project.models)} model{'s' if len(project.models) != 1 else ''}")
    if project.rollout is not None:
        r = project.rollout
        parts.append(f"roll-out of {r.n_frames} frames" + (f" ({r.model_name})" if r.model_name else ""))
    if project.ground_truth:
        parts.append(f"{len(project.ground_truth)} imported trajector{'ies' if len(project.ground_truth) > 1 else 'y'}")
    return ", ".join(parts)


kinds.register(kinds.FileKind(PROJECT_KIND, load_project, "a project"))


# ----------------------------------------------------------------------
# Imported ground truth
# ----------------------------------------------------------------------
def dataset_from_trajectories(trajectories, test_fraction: float = 0.25, seed: int = 0,
                              stride: int = 1) -> Dataset:
    """Training data from trajectories of one system (e.g. imported from
    another MD code): every ``stride``-th frame is a snapshot with dq/dt = p/m
    and dp/dt = the forces.

    Forces come from the file (``meta["forces"]``, as an extxyz import keeps
    them) when every trajectory has them, otherwise from the system's own
    potential. Energies are the trajectories' (kinetic + potential). With
    several trajectories the test snapshots are whole trajectories the fit
    never sees; with one, a seeded random ``test_fraction`` of its frames.
    """
    from core.physics.datagen import dataset_from_parts
    from core.physics.forces import ForceField

    trajs = trajectory_list(trajectories)
    if not trajs:
        raise HGNError("no trajectories to fit on: import one first")
    for k, tr in enumerate(trajs):
        if not isinstance(tr, Trajectory):
            raise HGNError(f"item {k} is a {type(tr).__name__}, not a Trajectory")
    system = trajs[0].system
    if any(not same_system(tr.system, system) for tr in trajs[1:]):
        raise HGNError("the trajectories belong to different systems; fit on one system at a time")
    try:
        stride = int(stride)
        frac = float(test_fraction)
        seed = int(seed)
    except (TypeError, ValueError, OverflowError):
        raise HGNError("stride and seed must be whole numbers and test_fraction a number, got "
                       f"stride={stride!r}, seed={seed!r}, test_fraction={test_fraction!r}") from None
    if seed < 0:
        raise HGNError(f"seed must be >= 0, got {seed}")
    if stride < 1:
        raise HGNError(f"stride must be >= 1, got {stride}")
    if not 0.0 <= frac < 1.0:
        raise HGNError(f"test_fraction must lie in [0, 1), got {test_fraction}")
    use_file = all(isinstance(tr.meta.get("forces"), np.ndarray) and tr.meta["forces"].shape == tr.q.shape
                   for tr in trajs)
    parts = []
    for tr in trajs:
        idx = np.arange(0, tr.n_frames, stride)
        if use_file:
            dpdt = np.asarray(tr.meta["forces"], dtype=np.float64)[idx]
        else:
            ff = ForceField(system)
            dpdt = np.stack([ff.forces(x) for x in tr.q[idx]])
        parts.append((tr.q[idx], tr.p[idx], dpdt, (tr.kinetic + tr.potential)[idx], idx, tr.t[idx]))
    n_snapshots = sum(len(part[4]) for part in parts)
    if n_snapshots < 2:
        raise HGNError(f"only {n_snapshots} snapshot(s): a fit needs at least 2 (import more frames or lower the "
                       "stride)")
    meta = {"source": "imported", "labels": [tr.label for tr in trajs], "stride": stride,
            "forces": "file" if use_file else "computed"}
    # the split lists let a time-series fit keep the test trajectories out
    return dataset_from_parts(system, parts, frac, np.random.default_rng(seed), trajs, meta)


__all__ = ["Project", "ModelRecord", "RolloutRecord", "save_project", "load_project", "read_header",
           "is_project_file", "describe_project", "dataset_from_trajectories",
           "PROJECT_KIND", "PROJECT_VERSION", "PROJECT_SUFFIX"]
