"""Sweeps: a grid (or random search) over fit settings and systems, each point a task.

A *point* is a JSON document of settings in four parts::

    {"system":  {"kind": "cubic", "n": 3, "potential": null, "params": {}},
     "data":    {"trajectories": 10, "steps": 100, "dt": 0.01, "save_every": 10,
                 "displacement": 0.1, "momentum": 0.1, "seed": 0, "test_fraction": 0.2},
     "fit":     {RFConfig settings that differ from the defaults: "node_width": 32, "regularisation": 1e-8, ...},
     "rollout": {"steps": 200, "dt": 0.01, "save_every": 10, "seed": 1000}}

and its *key* is the first 16 hex digits of the SHA-256 of that document
(keys sorted, floats by ``repr``): equal settings, equal key, however the
sweep was spelled. :func:`run_point` (the task) builds the system
(``core.physics.builders``), simulates its dataset
(``core.physics.datagen.generate``: "displacement" and "momentum" are the
training range), fits (``core.learning.rfhgn.fit``, one thread), and
measures the test error (derivative MSE on the test snapshots), a short
roll-out against ground truth from a fresh seeded start (final and largest
position MSE, largest relative energy drift of the learned roll-out), the
times of each stage, the peak memory (resident set of the worker process
sampled every 20 ms during the task, and the process's high-water mark) and
the distinct warnings raised (e.g. a roll-out outside the training range).

:func:`run_sweep` runs the points on a ``distributed.Client`` (or one by one
in this process) and gathers the results as they finish (``as_completed``).
Each finished point is appended as one JSON line to the journal ``OUT`` with
suffix ``.journal.jsonl`` and fsynced (constant cost per point, so a sweep
is linear in its points). When the sweep ends, also when it is cancelled or
fails, the summary is written: ``OUT`` (JSON: ``{"format": "hgn-sweep",
"version": 1, "points": [record, ...]}``, records keyed by the point's key)
and ``OUT`` with suffix ``.csv`` (one row per point, settings flattened as
``fit.node_width`` etc., then the results), both atomically (a crash leaves
the previous version), and then the journal is removed. Reading a sweep
(:class:`SweepFile`, :func:`load_results`) merges ``OUT`` with the
journal's complete lines, so a sweep whose process was killed keeps every
point finished before; a torn last line (a crash while it was written) is
dropped and its point counts as not done. Restart: points whose key is
already in ``OUT`` or its journal are not recomputed (failed points too,
unless ``rerun_failed``). A point whose task raises (an HGNError: a bad setting, a
failed fit) is recorded with ``status: "error"`` and the message. A worker
that dies mid-task (killed, out of memory) loses nothing finished: the
scheduler reruns its tasks on another worker (Dask's
``distributed.scheduler.allowed-failures``, 3 by default); a task that
exhausts those is resubmitted here up to ``resubmit`` more times, and the
output never holds a point twice.
"""
from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
import socket
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.container import as_path, atomic_write
from core.errors import Cancelled, HGNError
from core.jobs import check_cancel, report
from core.learning.rfhgn.config import RFConfig
from .engine import finished_batches, one_thread, stop, task_cancel

FORMAT = "hgn-sweep"
VERSION = 1
#: the parts of a point and their defaults (RFConfig's defaults for "fit")
SYSTEM_DEFAULTS = {"kind": "cubic", "n": 3, "potential": None, "params": {}}
DATA_DEFAULTS = {"trajectories": 10, "steps": 100, "dt": 0.01, "save_every": 10, "displacement": 0.1,
                 "momentum": 0.1, "seed": 0, "test_fraction": 0.2}
ROLLOUT_DEFAULTS = {"steps": 200, "dt": 0.01, "save_every": 10, "seed": 1000}
PARTS = {"system": SYSTEM_DEFAULTS, "data": DATA_DEFAULTS, "rollout": ROLLOUT_DEFAULTS}
#: short axis names -> (part, name); any RFConfig field name is a "fit" axis
ALIASES = {"kind": ("system", "kind"), "n": ("system", "n"), "potential": ("system", "potential"),
           "range": ("data", "displacement"), "displacement": ("data", "displacement"),
           "momentum": ("data", "momentum"), "trajectories": ("data", "trajectories"),
           "steps": ("data", "steps"), "data_seed": ("data", "seed"), "reg": ("fit", "regularisation")}
#: result columns of the CSV, in order
RESULT_COLUMNS = ("test_mse", "train_mse", "rollout_final_mse", "rollout_max_mse", "rollout_max_drift",
                  "diverged", "n_features", "n_train", "data_s", "fit_s", "eval_s", "total_s", "peak_rss_mb",
                  "max_rss_mb", "worker", "attempts")


# ----------------------------------------------------------------------
def _axis(name: str) -> tuple[str, str]:
    if "." in name:
        part, key = name.split(".", 1)
        if part not in PARTS and part != "fit":
            raise HGNError(f"sweep axis {name!r}: the part must be system, data, fit or rollout")
        return part, key
    if name in ALIASES:
        return ALIASES[name]
    if name in RFConfig.__dataclass_fields__:
        return "fit", name
    raise HGNError(f"sweep axis {name!r} is not a setting: use system.*, data.*, fit.* (an RFConfig setting), "
                   f"rollout.* or one of {', '.join(sorted(ALIASES))}")


def _plain(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def make_point(changes: dict | None = None, base: dict | None = None) -> dict:
    """A complete point: the defaults, then ``base`` (a point or part of
    one), then ``changes`` ({axis name: value}); the fit settings are
    checked by RFConfig and only those that differ from its defaults are kept."""
    point = {part: dict(defaults) for part, defaults in PARTS.items()}
    point["fit"] = {}
    for part, values in (base or {}).items():
        if part not in point:
            raise HGNError(f"a sweep point has the parts system, data, fit and rollout, not {part!r}")
        point[part].update(values)
    for name, value in (changes or {}).items():
        part, key = _axis(name)
        point[part][key] = value
    for part, defaults in PARTS.items():
        unknown = sorted(set(point[part]) - set(defaults))
        if unknown:
            raise HGNError(f"sweep: {part}.{unknown[0]} is not a setting (the {part} settings are "
                           f"{', '.join(defaults)})")
    cfg = config_of(point)
    defaults = RFConfig().to_dict()
    point["fit"] = {k: v for k, v in cfg.to_dict().items() if k in point["fit"] and v != defaults.get(k)}
    return _plain(point)


def config_of(point: dict) -> RFConfig:
    """The point's RFConfig (HGNError naming the setting when it is not valid)."""
    fields = RFConfig.__dataclass_fields__
    bad = [k for k in point.get("fit", {}) if k not in fields]
    if bad:
        raise HGNError(f"sweep: fit.{bad[0]} is not an RF-HGN setting")
    cfg = RFConfig().replace(**point.get("fit", {}))
    cfg.validate()
    return cfg


def point_key(point: dict) -> str:
    """16 hex digits of the SHA-256 of the point's canonical JSON."""
    text = json.dumps(_plain(point), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------
# ranges of a random search
RANGE_SCALES = ("log", "uniform")
#: numeric axes that a range lo:hi draws log-uniformly (as many draws per decade) unless it names its scale:
#: settings that must be > 0 and act as scales whose useful values span decades (a ridge parameter, the SWIM
#: constant, layer widths, sizes of batches and samples, time steps, the training range's standard deviations)
LOG_SCALE = frozenset({
    ("fit", "regularisation"), ("fit", "swim_scale"), ("fit", "node_width"), ("fit", "edge_width"),
    ("fit", "message_width"), ("fit", "batch_size"), ("fit", "batch_memory_mb"), ("fit", "sample_points"),
    ("data", "dt"), ("data", "displacement"), ("data", "momentum"), ("rollout", "dt")})


@dataclass(frozen=True)
class Range:
    """A range of a random search axis: values drawn from lo..hi (both included for whole numbers), with
    ``scale`` "log" (log-uniform) or "uniform"; None: the axis's own (:func:`range_scale`)."""
    lo: float
    hi: float
    scale: str | None = None

    def text(self) -> str:
        return f"{self.lo!r}:{self.hi!r}" + (f":{self.scale}" if self.scale else "")


def _axis_type(name: str) -> tuple[str, str, str, tuple]:
    """(part, key, kind, choices) of an axis: kind "int", "float", "choice" (text or a fixed set of values),
    "flag" (on/off) or "other" (e.g. system.params), from RFConfig's field (its default's type and the
    choices in its metadata) or the part's default value."""
    part, key = _axis(name)
    if part == "fit":
        f = RFConfig.__dataclass_fields__.get(key)
        if f is None:
            raise HGNError(f"sweep: fit.{key} is not an RF-HGN setting")
        default, choices = f.default, tuple(f.metadata.get("choices", ()))
    else:
        if key not in PARTS[part]:
            raise HGNError(f"sweep: {part}.{key} is not a setting (the {part} settings are "
                           f"{', '.join(PARTS[part])})")
        default, choices = PARTS[part][key], ()
    if isinstance(default, bool):
        return part, key, "flag", (True, False)
    if choices or isinstance(default, str) or default is None:
        return part, key, "choice", choices
    if isinstance(default, int):
        return part, key, "int", ()
    if isinstance(default, float):
        return part, key, "float", ()
    return part, key, "other", ()


def range_scale(name: str) -> str:
    """How a range lo:hi of axis ``name`` is drawn when it does not say: "log" for :data:`LOG_SCALE`,
    else "uniform"."""
    part, key = _axis(name)
    return "log" if (part, key) in LOG_SCALE else "uniform"


def is_range_text(value) -> bool:
    """Whether ``value`` is written as a range (text with a ':' that is not JSON)."""
    return isinstance(value, str) and ":" in value and not value.lstrip().startswith(("{", "[", '"'))


def _label(name: str) -> str:
    part, key = _axis(name)
    return f"sweep axis {name!r} ({part}.{key})"


def parse_range(name: str, text: str, label: str | None = None) -> Range:
    """The checked :class:`Range` written ``lo:hi`` or ``lo:hi:log`` / ``lo:hi:uniform`` for axis ``name``;
    HGNError naming ``label`` (default: the axis) when it is malformed (see :func:`check_range`)."""
    label = label or _label(name)
    _numeric(name, label)  # a choice is refused as such, before its bounds are read as numbers
    parts = [x.strip() for x in str(text).split(":")]
    if len(parts) not in (2, 3):
        raise HGNError(f"{label}: give a range as lo:hi, lo:hi:log or lo:hi:uniform, got {text!r}")
    bounds = []
    for x in parts[:2]:
        try:
            v = float(x)
        except ValueError:
            v = float("nan")
        if not np.isfinite(v):
            raise HGNError(f"{label}: in the range {text!r}, {x!r} is not a number")
        bounds.append(v)
    scale = parts[2] if len(parts) == 3 else None
    return check_range(name, Range(bounds[0], bounds[1], scale), label, text)


def _numeric(name: str, label: str) -> tuple[str, str, str]:
    """(part, key, "int" | "float") of a numeric axis; HGNError naming ``label`` for any other."""
    part, key, kind, choices = _axis_type(name)
    if kind == "choice":
        listed = f" ({', '.join(map(str, choices))})" if choices else ""
        raise HGNError(f"{label}: {part}.{key} is a choice{listed}, not a number: a range lo:hi is for numeric "
                       "settings; list the values to draw from (comma-separated)")
    if kind == "flag":
        raise HGNError(f"{label}: {part}.{key} is on/off (true, false), not a number: list the values to draw "
                       "from instead of a range")
    if kind == "other":
        raise HGNError(f"{label}: {part}.{key} is not a number: list the values to draw from instead of a range")
    return part, key, kind


def check_range(name: str, spec: Range, label: str | None = None, text: str | None = None) -> Range:
    """``spec`` checked against the axis's metadata and with its scale filled in: HGNError naming ``label``
    (default: the axis) for a range of a choice or on/off setting, bounds that are not finite numbers,
    lo >= hi, an unknown scale, bounds that are not whole numbers for a whole-number setting, or lo <= 0
    for a log-uniform draw."""
    label = label or _label(name)
    part, key, kind = _numeric(name, label)
    text = text if text is not None else spec.text()
    lo, hi = spec.lo, spec.hi
    for v in (lo, hi):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v):
            raise HGNError(f"{label}: in the range {text!r}, {v!r} is not a number")
    if not lo < hi:
        raise HGNError(f"{label}: the range {text!r} is empty: lo must be below hi")
    scale = spec.scale if spec.scale is not None else range_scale(name)
    if scale not in RANGE_SCALES:
        raise HGNError(f"{label}: the range {text!r} has the scale {scale!r}; the scale is log or uniform")
    if kind == "int":
        if float(lo) != int(lo) or float(hi) != int(hi):
            raise HGNError(f"{label}: {part}.{key} takes whole numbers: the range bounds must be whole numbers, "
                           f"got {text!r}")
        lo, hi = int(lo), int(hi)
    else:
        lo, hi = float(lo), float(hi)
    if scale == "log" and lo <= 0:
        raise HGNError(f"{label}: {part}.{key} is drawn log-uniformly, which needs lo > 0, got {text!r}; add "
                       f":uniform ({lo!r}:{hi!r}:uniform) for a uniform draw")
    return Range(lo, hi, scale)


def _draw(rng, spec: Range):
    """One value of the checked range ``spec`` (ints for a whole-number range)."""
    if isinstance(spec.lo, int):
        if spec.scale == "log":  # log-uniform whole numbers: floor of a log-uniform draw from lo..hi+1
            return min(spec.hi, int(np.floor(np.exp(rng.uniform(np.log(spec.lo), np.log(spec.hi + 1))))))
        return int(rng.integers(spec.lo, spec.hi + 1))
    if spec.scale == "log":
        return float(np.exp(rng.uniform(np.log(spec.lo), np.log(spec.hi))))
    return float(rng.uniform(spec.lo, spec.hi))


def _space_axis(name: str, spec):
    """A random-search axis as a list of values or a checked Range (the tuple forms of earlier versions:
    ("log", lo, hi), ("int", lo, hi), (lo, hi))."""
    if isinstance(spec, list):
        if not spec:
            raise HGNError(f"sweep axis {name!r} needs a non-empty list of values")
        return spec
    if isinstance(spec, Range):
        return check_range(name, spec)
    if is_range_text(spec):
        return parse_range(name, spec)
    if isinstance(spec, tuple) and len(spec) == 3 and spec[0] in ("log", "int"):
        return check_range(name, Range(spec[1], spec[2], "log" if spec[0] == "log" else "uniform"))
    if isinstance(spec, tuple) and len(spec) == 2:
        return check_range(name, Range(spec[0], spec[1], "uniform"))
    raise HGNError(f"random search axis {name!r}: give a list of values or a range (Range(lo, hi), 'lo:hi', "
                   "'lo:hi:log', 'lo:hi:uniform')")


def grid(axes: dict, base: dict | None = None) -> list[dict]:
    """Every combination of the axes' values ({axis: [values]}), in order
    (the last axis varies fastest); duplicates (equal keys) dropped."""
    names = list(axes)
    for n in names:
        if isinstance(axes[n], Range) or is_range_text(axes[n]):
            raise HGNError(f"sweep axis {n!r}: a range lo:hi is drawn from by a random search (random_points, "
                           "sweep --random N); a grid needs a list of values")
        if not isinstance(axes[n], (list, tuple)) or not len(axes[n]):
            raise HGNError(f"sweep axis {n!r} needs a non-empty list of values")
    out, seen = [], set()
    for combo in itertools.product(*(axes[n] for n in names)):
        p = make_point(dict(zip(names, combo)), base)
        k = point_key(p)
        if k not in seen:
            seen.add(k)
            out.append(p)
    return out


def random_points(space: dict, n: int, seed: int = 0, base: dict | None = None) -> list[dict]:
    """``n`` points drawn with ``default_rng(seed)``, axis by axis in the
    order given: per axis a list (one of its values, uniformly) or a range
    (:class:`Range`, or text ``"lo:hi"``, ``"lo:hi:log"``, ``"lo:hi:uniform"``):
    log-uniform or uniform as the range says, else as the axis
    (:func:`range_scale`: :data:`LOG_SCALE`), whole numbers lo..hi for a
    whole-number setting. Ranges are checked first (:func:`check_range`:
    HGNError naming the axis). Duplicate points (equal keys) are dropped."""
    axes = {name: _space_axis(name, spec) for name, spec in space.items()}
    rng = np.random.default_rng(seed)
    out, seen = [], set()
    for _ in range(int(n)):
        changes = {}
        for name, spec in axes.items():
            if isinstance(spec, list):
                changes[name] = spec[int(rng.integers(len(spec)))]
            else:
                changes[name] = _draw(rng, spec)
        p = make_point(changes, base)
        k = point_key(p)
        if k not in seen:
            seen.add(k)
            out.append(p)
    return out


# ----------------------------------------------------------------------
class _PeakRSS:
    """The largest resident set size of this process while the block runs (sampled)."""

    def __init__(self, every: float = 0.02):
        self.every, self.peak = every, 0
        self._stop = threading.Event()

    def _rss(self) -> int:
        try:
            import psutil

            return int(psutil.Process().memory_info().rss)
        except Exception:  # noqa: BLE001 - no psutil: the high-water mark only
            return 0

    def _run(self):
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, self._rss())

    def __enter__(self):
        self.peak = self._rss()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._rss())
        return False


def build_system(point: dict):
    from core.physics import builders

    s = point["system"]
    kind = s["kind"]
    if kind not in builders.BUILDERS:
        raise HGNError(f"sweep: system.kind {kind!r} is not one of {', '.join(sorted(builders.BUILDERS))}")
    n = s["n"]
    sizes = {"chain": (n,), "square": (n, n), "triangular": (n, n), "cubic": (n, n, n), "molecular": (n,)}[kind]
    kw = {}
    if s.get("potential") is not None:
        kw["potential"] = s["potential"]
    if s.get("params"):
        kw["potential_params"] = dict(s["params"])
    try:
        return builders.BUILDERS[kind](*sizes, **kw)
    except TypeError as exc:
        raise HGNError(f"sweep: system {kind}: {exc}") from None


def run_point(point: dict, cancel=None) -> dict:
    """One sweep point (a task): data, fit, test error, roll-out, times,
    memory (module notes). Returns the result dict (JSON values).
    ``cancel`` (``is_set()``) is checked all along the work
    (:class:`~core.errors.Cancelled`)."""
    from core.learning.metrics import derivative_mse, rollout_measures
    from core.learning.rfhgn.fitting import fit
    from core.learning.rollout import compare
    from core.physics.datagen import DataSpec, generate
    from core.physics.initial import initial_state

    t_start = time.perf_counter()
    with one_thread(), _PeakRSS() as mem, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        system = build_system(point)
        d = point["data"]
        spec = DataSpec(n_trajectories=d["trajectories"], steps=d["steps"], dt=d["dt"], save_every=d["save_every"],
                        displacement=d["displacement"], momentum=d["momentum"], seed=d["seed"],
                        test_fraction=d["test_fraction"])
        ds = generate(system, spec, cancel=cancel)
        t_data = time.perf_counter()
        model = fit(ds, config_of(point), cancel=cancel)
        t_fit = time.perf_counter()
        test = ds.test if len(ds.test) else ds.train
        test_mse = float(derivative_mse(model, ds, test))
        r = point["rollout"]
        q0, p0 = initial_state(system, d["displacement"], d["momentum"], None, seed=int(r["seed"]))
        truth, pred = compare(model, system, q0, p0, r["dt"], r["steps"], r["save_every"], cancel=cancel)
        diverged = bool(pred.meta.get("diverged")) or pred.n_frames != truth.n_frames
        if diverged:
            final = worst = drift = None
        else:
            m = rollout_measures(truth, pred)
            final, worst, drift = m["final_position_mse"], m["max_position_mse"], m["max_abs_drift_prediction"]
        t_end = time.perf_counter()
    try:
        import resource

        max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    except ImportError:  # pragma: no cover - not POSIX
        max_rss = None
    return {"test_mse": test_mse, "train_mse": float(model.info["train_mse"]), "rollout_final_mse": final,
            "rollout_max_mse": worst, "rollout_max_drift": drift, "diverged": diverged,
            "n_features": int(model.info["n_features"]), "n_train": int(len(ds.train)),
            "data_s": t_data - t_start, "fit_s": t_fit - t_data, "eval_s": t_end - t_fit, "total_s": t_end - t_start,
            "peak_rss_mb": mem.peak / 2 ** 20, "max_rss_mb": max_rss,
            "worker": f"{socket.gethostname()}:{os.getpid()}",
            "warnings": sorted({" ".join(str(w.message).split())[:300] for w in caught})[:5]}


def _task(point: dict, cancel=None) -> dict:
    """The task wrapper: errors a user can cause come back as a result with the message. On a Dask worker
    the point stops (Cancelled) as soon as its task is cancelled or the worker closes (engine.task_cancel)."""
    try:
        return {"status": "ok", "result": run_point(point, cancel if cancel is not None else task_cancel())}
    except HGNError as exc:
        return {"status": "error", "error": str(exc)}


# ----------------------------------------------------------------------
def _finite(v):
    return None if isinstance(v, float) and not np.isfinite(v) else v


def _is_record(rec) -> bool:
    return isinstance(rec, dict) and isinstance(rec.get("key"), str) and isinstance(rec.get("settings"), dict) \
        and rec.get("status") in ("ok", "error")


class SweepFile:
    """The output of a sweep: ``OUT`` (JSON) and ``OUT``.csv, records keyed by point key, and while a
    sweep runs the journal ``OUT`` with suffix ``.journal.jsonl`` (module notes).

    Reading (the constructor) merges the JSON with the journal's complete lines (a later record of a
    key replaces the earlier, in place); a torn last line (a crash while it was written) is left out,
    so its point counts as not done. :meth:`add` appends one line to the journal and fsyncs it (cost
    independent of the number of points); :meth:`write` writes the JSON and the CSV of every record
    atomically and then removes the journal."""

    def __init__(self, out):
        self.path = as_path(out, "sweep output")
        if self.path.suffix.lower() == ".csv":
            raise HGNError(f"{self.path}: give the JSON name (sweep.json); the CSV is written beside it")
        self.csv = self.path.with_suffix(".csv")
        self.journal = self.path.with_suffix(".journal.jsonl")
        self.records: dict[str, dict] = {}
        self._good = 0  # bytes of the journal that hold complete records (what add() appends after)
        self._checked = False  # the journal was cut back to self._good before the first append
        if self.path.exists():
            self._load()
        if self.journal.exists():
            self._load_journal()

    def _load(self):
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HGNError(f"{self.path}: not a sweep result file ({exc}); choose another --out or remove it") \
                from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("points"), list):
            raise HGNError(f"{self.path}: not a sweep result file (format {FORMAT!r} expected); choose another "
                           "--out or remove it")
        v = doc.get("version")
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= VERSION:
            raise HGNError(f"{self.path}: sweep file version {v!r} is not one this program reads (1..{VERSION})")
        for k, rec in enumerate(doc["points"]):
            if not _is_record(rec):
                raise HGNError(f"{self.path}: points[{k}] is not a sweep record (key, settings, status); the file "
                               "is damaged")
            self.records[rec["key"]] = rec

    def _load_journal(self):
        try:
            data = self.journal.read_bytes()
        except OSError as exc:
            raise HGNError(f"{self.journal}: cannot read the sweep journal ({exc.strerror or exc})") from None
        lines = data.split(b"\n")
        # every line but the last ends with a newline: complete. The last one (no newline) is empty or torn.
        for n, line in enumerate(lines[:-1], 1):
            try:
                rec = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                rec = None
            if not _is_record(rec):
                raise HGNError(f"{self.journal}: line {n} is not a sweep record (key, settings, status); the "
                               "journal is damaged: remove it to recompute the points it holds")
            self.records[rec["key"]] = rec
        self._good = len(data) - len(lines[-1])

    def done(self, key: str, rerun_failed: bool = False) -> bool:
        rec = self.records.get(key)
        return rec is not None and (rec["status"] == "ok" or not rerun_failed)

    def add(self, record: dict) -> None:
        """Keep ``record`` and append it to the journal, on disk (fsync) before this returns."""
        line = (json.dumps(record, allow_nan=False) + "\n").encode("utf-8")
        try:
            if not self._checked and self.journal.exists() and self.journal.stat().st_size > self._good:
                os.truncate(self.journal, self._good)  # drop a torn last line before appending after it
            self._checked = True
            with open(self.journal, "ab") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise HGNError(f"could not append to the sweep journal {self.journal}: {exc.strerror or exc}; the "
                           "points finished before are kept there") from None
        self._good += len(line)
        self.records[record["key"]] = record

    def write(self) -> None:
        """The JSON and the CSV of every record, each atomically; then the journal is removed."""
        doc = {"format": FORMAT, "version": VERSION, "points": list(self.records.values())}
        text = json.dumps(doc, indent=1, allow_nan=False)
        with atomic_write(self.path, "w") as fh:
            fh.write(text)
        with atomic_write(self.csv, "w") as fh:
            fh.write(self.csv_text())
        try:
            self.journal.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:  # the JSON holds every record: a journal left behind repeats them (harmless)
            warnings.warn(f"could not remove the sweep journal {self.journal}: {exc.strerror or exc}", stacklevel=2)
        self._good, self._checked = 0, False

    def csv_text(self) -> str:
        setting_cols = sorted({f"{part}.{k}" for rec in self.records.values()
                               for part, vals in rec["settings"].items() for k in vals})
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["key", "status"] + setting_cols + list(RESULT_COLUMNS) + ["error"])
        for rec in self.records.values():
            row = [rec["key"], rec["status"]]
            for col in setting_cols:
                part, k = col.split(".", 1)
                v = rec["settings"].get(part, {}).get(k, "")
                row.append(json.dumps(v) if isinstance(v, (dict, list)) else ("" if v is None else v))
            res = rec.get("result") or {}
            row += ["" if res.get(c) is None else res.get(c) for c in RESULT_COLUMNS]
            row.append(rec.get("error", ""))
            w.writerow(row)
        return buf.getvalue()


@dataclass
class SweepRun:
    """What :func:`run_sweep` did."""
    path: Path
    points: int = 0
    skipped: int = 0
    computed: int = 0
    failed: int = 0
    resubmitted: int = 0
    seconds: float = 0.0
    keys: list = field(default_factory=list)


def _record(point: dict, key: str, out: dict, attempts: int) -> dict:
    rec = {"key": key, "settings": point, "status": out["status"], "finished": time.time()}
    if out["status"] == "ok":
        res = {k: _finite(v) for k, v in out["result"].items()}
        res["attempts"] = attempts
        rec["result"] = res
    else:
        rec["error"] = out["error"]
    return rec


def run_sweep(points: list[dict], out, client=None, progress=None, cancel=None, on_result=None,
              rerun_failed: bool = False, resubmit: int = 2) -> SweepRun:
    """Run the sweep ``points`` (from :func:`grid`, :func:`random_points` or
    :func:`make_point`) on ``client`` (None: one by one in this process),
    appending every finished point to the journal beside ``out`` at once and
    writing ``out`` (JSON) and its .csv when it ends; points already in
    ``out`` or its journal are skipped (module notes). ``progress("sweep",
    fraction of the points to compute)``; ``on_result(record)`` for each
    finished point (e.g. a table that fills); ``cancel.is_set()`` stops it:
    pending tasks are cancelled, finished points stay written, and
    :class:`~core.errors.Cancelled` is raised."""
    t0 = time.perf_counter()
    sf = SweepFile(out)
    run = SweepRun(sf.path)
    todo, seen = [], set()
    for p in points:
        p = make_point(base=p)  # completed and checked (a bad setting fails before any work)
        k = point_key(p)
        if k in seen:
            continue
        seen.add(k)
        run.keys.append(k)
        if sf.done(k, rerun_failed):
            run.skipped += 1
        else:
            todo.append((k, p))
    run.points = len(seen)
    total = max(len(todo), 1)

    def finished(k, p, out_, attempts):
        rec = _record(p, k, out_, attempts)
        sf.add(rec)
        run.computed += 1
        run.failed += rec["status"] == "error"
        if on_result is not None:
            on_result(rec)
        report(progress, "sweep", run.computed / total)

    ended = False
    try:
        if client is None:
            for k, p in todo:
                check_cancel(cancel)
                finished(k, p, _task(p, cancel), 1)
        elif todo:
            _run_on(client, todo, run, finished, cancel, resubmit)
        ended = True
    finally:
        # the summary (JSON + CSV) of every point, also when cancelled or failed: the journal is folded in
        if run.computed or sf.journal.exists() or (ended and not sf.path.exists()):
            sf.write()
    run.seconds = time.perf_counter() - t0
    return run


def _run_on(client, todo: list, run: SweepRun, finished, cancel, resubmit: int) -> None:
    """The points ``todo`` [(key, point)] as tasks on ``client``; ``finished(k, p, out, attempts)`` for each."""
    from distributed import as_completed

    futures = {}
    attempts = {}
    token = uuid.uuid4().hex[:8]

    def submit(k, p):
        attempts[k] = attempts.get(k, 0) + 1
        # a fresh key per run and attempt: the scheduler may still hold an errored or cancelled task of the key
        f = client.submit(_task, p, key=f"sweep-point-{k}-{token}-{attempts[k]}", pure=False)
        futures[f.key] = (f, k, p)
        return f

    ac = as_completed([submit(k, p) for k, p in todo])
    try:
        for batch in finished_batches(ac, cancel, lambda: len(futures)):
            for f in batch:
                _, k, p = futures.pop(f.key)
                if f.status == "error":
                    exc = f.exception()
                    # KilledWorker: the task outlived its allowed worker failures; Cancelled: its worker closed
                    # under it (this sweep did not cancel it: it would not be reading results then)
                    if type(exc).__name__ in ("KilledWorker", "Cancelled") and attempts[k] <= resubmit:
                        run.resubmitted += 1
                        ac.add(submit(k, p))  # once more
                        continue
                    out_ = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
                elif f.status == "cancelled":
                    raise Cancelled()
                else:
                    out_ = f.result()
                f.release()
                finished(k, p, out_, attempts[k])
    except BaseException:
        stop(client, [f for f, _, _ in futures.values()])  # cancelled, and off the workers when this returns
        raise


def load_results(out) -> list[dict]:
    """The records of a sweep output file (JSON, and the journal of a sweep running or killed), in the
    order written."""
    return list(SweepFile(out).records.values())


__all__ = ["make_point", "point_key", "grid", "random_points", "run_point", "run_sweep", "load_results",
           "SweepFile", "SweepRun", "config_of", "build_system", "Range", "parse_range", "check_range",
           "range_scale", "is_range_text", "LOG_SCALE", "RANGE_SCALES"]
