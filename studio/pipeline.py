"""What the Train and roll-out buttons do, as plain functions over ``core``.

These are the jobs the GUI runs in worker processes (``studio.workers``);
they take core's ``progress`` / ``cancel`` protocol and an ``emit`` callable
for partial results, and hold no Qt. Their arguments and results are pickled
between the processes (a gradient-trained model travels as its saved file,
``studio.worker_process.PackedModel``). Tests and benchmarks call them
directly.

* :func:`train_job` -- simulate training data (core.physics.datagen), fit the chosen
  method (core.learning.rfhgn or another entry of ``studio.methods``), measure the
  test derivative MSE (core.learning.metrics).
* :func:`rollout_job` -- ground truth (core.physics.simulate) and the learned
  prediction (core.learning.rollout) from the same start, computed in chunks that grow
  geometrically; each chunk is emitted as ``("truth"|"prediction", Trajectory)``
  so the timeline fills while the roll-out runs, and the first frames reach
  the screen within a fraction of a second.
* :func:`reference_job` -- the ground truth's own error against the DOP853
  reference from its first frame (core.physics.reference.reference_check).
* :func:`sweep_job` -- a sweep (core.cluster.sweep.run_sweep) in the worker, on no Dask, a LocalCluster
  or a scheduler; each finished point is emitted; :func:`sweep_model_job` fits a picked point's settings.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from core.errors import HGNError
from core.jobs import check_cancel, report
from core.physics.system import System

from .defaults import ROLLOUT_CHUNK_FRAMES
from .methods import Method, identified_port_of, loss_curve


# ---------------------------------------------------------------------------
# settings
# ---------------------------------------------------------------------------
def data_spec(sim: dict):
    """core.physics.datagen.DataSpec from the simulation settings of the Train panel."""
    from core.physics.datagen import DataSpec

    import dataclasses

    names = {f.name for f in dataclasses.fields(DataSpec)}
    kw = {k: v for k, v in sim.items() if k in names}
    if "temperature" in kw and not kw["temperature"]:
        kw["temperature"] = None
    try:
        return DataSpec(**kw)
    except TypeError as exc:
        raise HGNError(f"simulation settings: {exc}") from None


def check_simulation(sim: dict) -> None:
    """Raise HGNError naming the first bad simulation setting (for the form)."""
    def pos(name, integer=False):
        v = sim.get(name)
        if v is None:
            return
        if integer and (isinstance(v, bool) or int(v) != v):
            raise HGNError(f"{name}: must be a whole number, got {v!r}")
        if not np.isfinite(v) or v <= 0:
            raise HGNError(f"{name}: must be > 0, got {v}")

    pos("dt")
    for k in ("steps", "n_trajectories", "save_every", "rollout_steps", "rollout_save_every"):
        pos(k, integer=True)
    for k in ("displacement", "momentum", "temperature"):
        v = sim.get(k, 0.0)
        if v is not None and (not np.isfinite(v) or v < 0):
            raise HGNError(f"{k}: must be >= 0, got {v}")
    tf = sim.get("test_fraction")
    if tf is not None and not 0.0 <= tf < 1.0:
        raise HGNError(f"test_fraction: must be in [0, 1), got {tf}")
    from core.physics.reference import integrator

    try:
        integrator(sim.get("integrator", "verlet"))
    except HGNError as exc:
        raise HGNError(f"integrator: {exc}") from None
    if sim.get("save_every", 1) > sim.get("steps", 1):
        raise HGNError("save_every: must not exceed the steps per trajectory")


# ---------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------
@dataclass
class TrainResult:
    model: Any
    dataset: Any
    method: str
    settings: dict
    fit_time: float
    test_mse: float
    data_time: float
    loss: list | None = None
    info: dict = field(default_factory=dict)


def train_job(system: System, sim: dict, method: Method, settings: dict, *,
              progress=None, cancel=None, emit=None) -> TrainResult:
    """Simulate training data, fit, and measure on held-out snapshots."""
    from core.physics.datagen import generate
    from core.learning.metrics import derivative_mse

    check_simulation(sim)
    config = method.make_config(settings)
    t0 = time.perf_counter()
    dataset = generate(system, data_spec(sim), progress=progress, cancel=cancel)
    data_time = time.perf_counter() - t0
    check_cancel(cancel)
    t1 = time.perf_counter()
    model = method.fit(dataset, config, progress=progress, cancel=cancel)
    wall = time.perf_counter() - t1
    info = dict(getattr(model, "info", {}) or {})
    fit_time = float(info.get("fit_time", wall))
    check_cancel(cancel)
    report(progress, "evaluate", 0.0)
    if identified_port_of(model) is not None:        # dH/dp, -dH/dq - gamma dq/dt + F(t) against the data
        from core.learning.rfhgn.port import port_derivative_mse as derivative_mse
    test = getattr(dataset, "test", None)
    if test is not None and len(test):
        test_mse = float(derivative_mse(model, dataset, indices=test))
    else:  # everything was used for training: say so rather than fail
        test_mse = float(derivative_mse(model, dataset, indices=dataset.train))
        info["mse_on"] = "training snapshots (no test split)"
    report(progress, "evaluate", 1.0)
    return TrainResult(model=model, dataset=dataset, method=method.key, settings=dict(settings),
                       fit_time=fit_time, test_mse=test_mse, data_time=data_time,
                       loss=loss_curve(model), info=info)


def warm_up() -> float:
    """A tiny fit and roll-out (2x2x2 lattice, a few steps): a fresh worker
    process runs it once while idle, so that the first Train does not pay
    for the first calls of numpy, scipy and core. Returns its seconds."""
    import dataclasses

    from core.physics.builders import build

    from .defaults import SIMULATION
    from .methods import method_by_key

    t0 = time.perf_counter()
    system = build("cubic", n=2, m=2, l=2)
    sim = dict(dataclasses.asdict(SIMULATION), steps=20, n_trajectories=2, save_every=4)
    method = method_by_key("rfhgn")
    res = train_job(system, sim, method, method.default_settings())
    q0, p0 = rollout_start(system, sim)
    rollout_job(res.model, system, q0, p0, sim["dt"], 20, 5)
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------
# roll-outs
# ---------------------------------------------------------------------------
def rollout_start(system: System, sim: dict, seed_offset: int = 1_000_003):
    """A start (q0, p0) for the comparison roll-out: the training
    distribution's perturbation, with a seed no training trajectory used."""
    from core.physics.initial import initial_state

    temp = sim.get("temperature") or None
    return initial_state(system, displacement=sim.get("displacement", 0.1),
                         momentum=sim.get("momentum", 0.1), temperature=temp,
                         seed=int(sim.get("seed", 0)) + seed_offset)


def _strip_start(traj, expected_frames: int):
    """Chunks after the first repeat their start frame; drop it."""
    from core.physics.trajectory import Trajectory

    if traj.n_frames == expected_frames + 1:
        sl = slice(1, None)
        return Trajectory(traj.system, traj.t[sl], traj.q[sl], traj.p[sl], traj.kinetic[sl],
                          traj.potential[sl], traj.momentum[sl], traj.dt, traj.save_every,
                          traj.label, traj.meta)
    return traj


def rollout_job(model, system: System, q0: np.ndarray, p0: np.ndarray, dt: float, steps: int,
                save_every: int, *, progress=None, cancel=None, emit: Callable | None = None,
                with_truth: bool = True, first_chunk: int = 2,
                max_chunk: int = ROLLOUT_CHUNK_FRAMES * 8, device: str = "cpu", precision: str = "float64",
                threads: int = 1, integrator: str = "verlet") -> dict:
    """Ground truth and learned roll-out from (q0, p0), chunk by chunk.

    Every chunk continues from the last saved state of its run, so the result
    equals one uninterrupted Verlet run (the integrator's state is (q, p)).
    ``emit(("truth" | "prediction", Trajectory))`` receives each chunk;
    the first chunk of each run includes frame 0. Warnings of the learned
    roll-out (e.g. core.learning.rollout's extrapolation warning, which every chunk
    would repeat) are collected and emitted once per kind as
    ``("warning", message)``. Both runs are checked for blow-ups against
    their first chunk's energy (``energy_reference``), so the chunks decide
    as one run would: a learned roll-out that diverges (core.learning.rollout,
    ``Trajectory.diverged``) ends the job after that chunk, with a
    ``("warning", ...)`` naming the step and the reason, and the result's
    ``"diverged"``. Returns timing figures, the warnings and ``diverged``.
    ``integrator`` names the ground truth's integrator (verlet, rk4, dop853;
    core.physics.simulate).
    """
    import warnings

    from core.learning.rollout import rollout
    from core.physics.simulate import simulate

    from .worker_process import unpack

    model = unpack(model)          # a baseline sent as its file: the real model, loaded once per worker
    if steps < 0 or save_every < 1 or dt <= 0:
        raise HGNError("roll-out needs dt > 0, steps >= 0 and save_every >= 1")
    port = model_rollout_port(model, system) if model is not None else None
    total_frames = steps // save_every
    done = 0
    chunk = max(1, int(first_chunk))
    q_t, p_t = np.array(q0, float), np.array(p0, float)
    q_p, p_p = q_t.copy(), p_t.copy()
    t0 = time.perf_counter()
    first_chunk_time = None
    first = True
    seen_warnings: dict[str, str] = {}
    ref_t = ref_p = diverged = None
    while done < total_frames or first:
        check_cancel(cancel)
        k = min(chunk, total_frames - done)
        n_steps = k * save_every
        if with_truth:
            tr = simulate(system, q_t, p_t, dt, n_steps, save_every=save_every, cancel=cancel,
                          energy_reference=ref_t, integrator=integrator, t0=done * save_every * dt)
            ref_t = tr.meta.get("energy_reference", ref_t)
            q_t, p_t = tr.q[-1].copy(), tr.p[-1].copy()
            if not first:
                tr = _strip_start(tr, k)
            if emit:
                emit(("truth", tr))
        if model is not None:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                # a port model rolls out with its identified damping and forcing (port: carried to this
                # system), on the roll-out's device and precision like any other
                pr = rollout(model, system, q_p, p_p, dt, n_steps, save_every=save_every, cancel=cancel,
                             t0=done * save_every * dt, device=device, precision=precision, threads=threads,
                             energy_reference=ref_p, port=port)
            ref_p = pr.meta.get("energy_reference", ref_p)
            diverged = pr.diverged
            for wmsg in caught:
                kind = type(wmsg.message).__name__
                if kind not in seen_warnings:
                    seen_warnings[kind] = str(wmsg.message)
                    if emit:
                        emit(("warning", seen_warnings[kind]))
            q_p, p_p = pr.q[-1].copy(), pr.p[-1].copy()
            if not first:
                pr = _strip_start(pr, k)
            if emit:
                emit(("prediction", pr))
            if diverged is not None:
                message = f"Learned roll-out stopped: {diverged['reason']}"
                seen_warnings["diverged"] = message
                if emit:
                    emit(("warning", message))
                break
        if first_chunk_time is None:
            first_chunk_time = time.perf_counter() - t0
        done += k
        first = False
        chunk = min(max_chunk, chunk * 2)
        report(progress, "rollout", done / max(total_frames, 1))
        if total_frames == 0:
            break
    return {"frames": total_frames + 1, "time": time.perf_counter() - t0,
            "first_chunk_time": first_chunk_time, "warnings": list(seen_warnings.values()),
            "diverged": diverged}


def model_rollout_port(model, system: System):
    """The damping and forcing a port model rolls out with on ``system`` (core.learning.rfhgn.port.
    carried_port: its identified ones, carried to a larger lattice for zero-shot); None for Hamiltonian
    models (tested here without importing the port module, which imports torch, for them)."""
    if identified_port_of(model) is None:
        return None
    from core.learning.rfhgn.port import carried_port

    return carried_port(model, system)


# ---------------------------------------------------------------------------
# the ground truth against the reference
# ---------------------------------------------------------------------------
def reference_job(truth, integrator: str = "", *, progress=None, cancel=None, emit=None):
    """The ground truth ``truth`` (a Trajectory) against SciPy's DOP853 at
    rtol 1e-12 from its first frame, frames at its times: a
    core.physics.reference.ReferenceCheck (position and energy error per
    frame). ``integrator`` names the run checked."""
    from core.physics.reference import reference_check

    return reference_check(truth, integrator=integrator, progress=progress, cancel=cancel)


# ---------------------------------------------------------------------------
# few-shot adaptation (issue 14; docs/adapt.md)
# ---------------------------------------------------------------------------
#: the k grid of the adapt-vs-scratch comparison (cut at the training snapshots available, which are added)
CURVE_KS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


def _adapt_source(source, basis_path):
    """What adapt starts from: the model (unpacked in this worker) or the basis file's layers."""
    if basis_path:
        from core.learning.rfhgn.basis import load_basis

        return load_basis(basis_path)
    from .worker_process import unpack

    model = unpack(source)
    from core.learning.rfhgn.model import FittedModel

    if not isinstance(model, FittedModel):
        raise HGNError(f"adaptation solves the output layer of a random-feature model (RF-HGN); "
                       f"{type(model).__name__} is trained by gradients and has no sampled basis")
    return model


def _lineage(source_name: str, basis_path, info: dict, system: System) -> dict:
    """Where an adapted model comes from, in plain values (kept in the record's info, saved with the project)."""
    from pathlib import Path

    a = info.get("adapt") or {}
    return {"from": str(source_name) if not basis_path else "", "basis_file": str(basis_path or ""),
            "basis_name": Path(basis_path).name if basis_path else "", "k": int(a.get("k", 0)),
            "seed": a.get("seed"), "rule": str(a.get("rule", "")), "prior": str(a.get("prior", "none")),
            "regularisation": {str(b): float(v) for b, v in (a.get("regularisation") or {}).items()},
            "effective_rank": {str(b): int(v) for b, v in (a.get("effective_rank") or {}).items()},
            "adapt_time": float(a.get("adapt_time", info.get("fit_time", 0.0))),
            "basis": {str(k): v for k, v in (a.get("basis") or {}).items() if isinstance(v, (str, int, float))
                      or v is None},
            "system": system.name}


#: how the lineage names core's regularisation rules (info["adapt"]["rule"])
RULE_NAMES = {"gcv": "GCV", "cv": "cross-validated", "given": "fixed"}


def describe_lineage(lineage: dict) -> str:
    """The lineage in words: "adapted from rfhgn-1, k = 10, λ = p 1e-14 / q 3.2e-14 (GCV), 9.8 ms"."""
    if not isinstance(lineage, dict):
        return ""
    if lineage.get("sweep_point"):
        fit = lineage.get("fit") or {}
        what = ", ".join(f"{k} {v}" for k, v in fit.items()) if isinstance(fit, dict) else ""
        return f"from sweep point {lineage['sweep_point']}" + (f" ({what})" if what else "")
    src = f"basis {lineage.get('basis_name') or lineage.get('basis_file')}" if lineage.get("basis_file") \
        else str(lineage.get("from") or "?")
    reg = lineage.get("regularisation") or {}
    lam = " / ".join(f"{b} {v:.2g}" for b, v in reg.items()) if isinstance(reg, dict) else ""
    rule = RULE_NAMES.get(str(lineage.get("rule", "")), str(lineage.get("rule", "")))
    seed = lineage.get("seed")
    pick = f", drawn with seed {seed}" if seed is not None else ""
    t = lineage.get("adapt_time")
    when = f", {1e3 * t:.3g} ms" if isinstance(t, (int, float)) else ""
    prior = {"source": ", toward the source's output layer",
             "mixed": ", toward the source's output layer in some blocks"}.get(str(lineage.get("prior")), "")
    return f"adapted from {src}, k = {lineage.get('k')}{pick}, λ = {lam} ({rule}{prior}){when}"


def _test_mse(model, dataset, indices) -> float:
    """The derivative MSE of ``model`` on ``indices`` (a port model's: with its identified damping and
    forcing, core.learning.rfhgn.port.port_derivative_mse)."""
    if identified_port_of(model) is not None:
        from core.learning.rfhgn.port import port_derivative_mse

        return float(port_derivative_mse(model, dataset, indices=indices))
    from core.learning.metrics import derivative_mse

    return float(derivative_mse(model, dataset, indices=indices))


def adapt_job(source, system: System, sim: dict, k: int = 10, seed: int | None = None,
              regularisation: float | None = None, *, source_name: str = "", basis_path: str | None = None,
              prior: str = "auto", rule: str = "gcv", progress=None, cancel=None, emit=None) -> TrainResult:
    """Few-shot adaptation (core.learning.rfhgn.adapt.adapt): training data of ``system`` simulated with the
    simulation settings ``sim`` (as Train makes them), the output layer of ``source`` (a fitted RF-HGN, sent
    packed) -- or of the basis file ``basis_path`` -- solved on ``k`` of their training snapshots (the first k,
    or k drawn with ``seed``), the regularisation by core's rule (None) or fixed; the test derivative MSE on the
    held-out snapshots. ``prior`` and ``rule``: core's (what the ridge pulls toward: "none", "source" or
    "auto"; the rule that chooses the regularisation: "gcv" or "cv"). On damped or driven data core
    identifies the damping and forcing in the same solve (a port model, measured with them). The result's
    ``info["lineage"]`` says where the model comes from."""
    import warnings

    from core.learning.rfhgn.adapt import adapt
    from core.physics.datagen import generate

    check_simulation(sim)
    base = _adapt_source(source, basis_path)
    check_cancel(cancel)
    t0 = time.perf_counter()
    dataset = generate(system, data_spec(sim), progress=progress, cancel=cancel)
    data_time = time.perf_counter() - t0
    check_cancel(cancel)
    report(progress, "adapt", 0.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = adapt(base, dataset, k=k, seed=seed, regularisation=regularisation, prior=prior, rule=rule)
    check_cancel(cancel)
    report(progress, "evaluate", 0.0)
    test = getattr(dataset, "test", None)
    info = dict(getattr(model, "info", {}) or {})
    if test is not None and len(test):
        test_mse = _test_mse(model, dataset, test)
    else:
        test_mse = _test_mse(model, dataset, dataset.train)
        info["mse_on"] = "training snapshots (no test split)"
    report(progress, "evaluate", 1.0)
    info["lineage"] = _lineage(source_name, basis_path, info, system)
    info["lineage"]["warnings"] = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    return TrainResult(model=model, dataset=dataset, method="rfhgn", settings=model.config.to_dict(),
                       fit_time=float(info["lineage"]["adapt_time"]), test_mse=test_mse, data_time=data_time,
                       loss=None, info=info)


def curve_ks(n_train: int, grid=CURVE_KS) -> list[int]:
    """The k of the comparison: the grid's values up to ``n_train``, and ``n_train`` itself."""
    ks = [k for k in grid if k <= n_train]
    if n_train >= 1 and (not ks or ks[-1] != n_train):
        ks.append(int(n_train))
    return ks


def adapt_curve_job(source, system: System, sim: dict, *, source_name: str = "", ks=None,
                    progress=None, cancel=None, emit=None) -> dict:
    """Test derivative error against k for adaptation (the output layer of ``source`` on the first k training
    snapshots, core's regularisation rule) and for a fit from scratch with the same settings on the same k
    snapshots, on the training data of ``system`` (simulated with ``sim``, as Train makes them) and their
    held-out snapshots.
    Returns plain values (kept in the project): ``k``, ``adapt``, ``scratch`` (MSE; None where a fit failed,
    reason in ``notes``), ``adapt_time``, ``scratch_time`` (s), ``model``, ``system``, ``n_train``,
    ``n_test``, ``seconds``. On damped or driven data both identify the damping and forcing (adapt's port
    terms, :func:`studio.methods.fit_rfhgn`'s fit_port) and are measured with them."""
    import dataclasses
    import warnings

    from core.learning.rfhgn.adapt import adapt
    from core.physics.datagen import generate

    from .methods import fit_rfhgn

    check_simulation(sim)
    t_start = time.perf_counter()
    base = _adapt_source(source, None)
    dataset = generate(system, data_spec(sim), progress=progress, cancel=cancel)
    n_train = len(dataset.train)
    test = dataset.test if len(dataset.test) else dataset.train
    ks = curve_ks(n_train) if ks is None else [int(k) for k in ks if 1 <= int(k) <= n_train]
    out = {"k": [], "adapt": [], "scratch": [], "adapt_time": [], "scratch_time": [], "notes": [],
           "model": str(source_name), "system": system.name, "n_train": int(n_train), "n_test": int(len(test)),
           "test_on": "held-out snapshots" if len(dataset.test) else "training snapshots (no test split)"}
    report(progress, "compare", 0.0)
    for i, k in enumerate(ks):
        check_cancel(cancel)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)       # small k: underdetermined (said in the notes)
            m = adapt(base, dataset, k=k)
        a_mse = _test_mse(m, dataset, test)
        check_cancel(cancel)
        try:
            s = fit_rfhgn(dataclasses.replace(dataset, train=np.asarray(dataset.train[:k])), base.config,
                          cancel=cancel)
            s_mse, s_time = _test_mse(s, dataset, test), float(s.info.get("fit_time", 0.0))
        except HGNError as exc:
            s_mse = s_time = None
            out["notes"].append(f"k = {k}: the fit from scratch failed: {exc}")
        out["k"].append(int(k))
        out["adapt"].append(a_mse if np.isfinite(a_mse) else None)
        out["adapt_time"].append(float(m.info.get("fit_time", 0.0)))
        out["scratch"].append(s_mse if s_mse is None or np.isfinite(s_mse) else None)
        out["scratch_time"].append(s_time)
        report(progress, "compare", (i + 1) / len(ks))
    out["seconds"] = time.perf_counter() - t_start
    return out


def save_basis_job(source, path: str, *, progress=None, cancel=None, emit=None) -> str:
    """Write the hidden layers of ``source`` (a fitted RF-HGN, sent packed) as a basis file
    (core.learning.rfhgn.basis.save_basis); returns the path."""
    from core.learning.rfhgn.basis import save_basis

    return str(save_basis(_adapt_source(source, None), path))


# ---------------------------------------------------------------------------
# sweeps (issue 15): core.cluster.sweep in a worker
# ---------------------------------------------------------------------------
#: the engines a sweep can run on: this job's own worker process (no Dask), a LocalCluster of worker
#: processes started for the sweep, or an existing Dask scheduler
SWEEP_ENGINES = ("process", "local", "scheduler")


def sweep_job(points: list, out: str, engine: str = "process", workers: int = 2, scheduler: str = "", *,
              progress=None, cancel=None, emit=None) -> dict:
    """Run the sweep ``points`` (core.cluster.sweep.grid's) with core.cluster.sweep.run_sweep: every finished
    point is kept at once (the journal beside ``out``), ``out`` (JSON) and its .csv are written when the sweep
    ends or stops (:func:`sweep_files_job` when its process was ended); points already in ``out`` or its journal
    are not recomputed.
    ``engine``: "process" runs the points one by one in this process (no Dask), "local" on a LocalCluster of
    ``workers`` processes, "scheduler" on the Dask scheduler at ``scheduler`` (core.cluster.engine.connect;
    the cluster this job started is closed when it ends, also when cancelled). Each finished point is
    emitted as its record (a table row); returns {"path", "points", "skipped", "computed", "failed",
    "seconds", "engine", "records"} (records: this sweep's points in ``out``, in the grid's order)."""
    from core.cluster.sweep import load_results, run_sweep

    if engine not in SWEEP_ENGINES:
        raise HGNError(f"sweep engine {engine!r}: choose one of {', '.join(SWEEP_ENGINES)}")
    client = None
    if engine != "process":
        from core.cluster.engine import connect

        report(progress, "engine", -1.0)
        client = connect(workers=int(workers)) if engine == "local" else connect(scheduler=str(scheduler))
    try:
        check_cancel(cancel)
        run = run_sweep(points, out, client, progress=progress, cancel=cancel, on_result=emit)
    finally:
        if client is not None:
            from core.cluster.engine import close

            close(client)
    by_key = {r["key"]: r for r in load_results(run.path)}
    return {"path": str(run.path), "points": run.points, "skipped": run.skipped, "computed": run.computed,
            "failed": run.failed, "seconds": run.seconds, "engine": engine,
            "records": [by_key[k] for k in run.keys if k in by_key]}


def sweep_files_job(out: str, keys: list, *, progress=None, cancel=None, emit=None) -> dict:
    """Write the JSON and CSV of the sweep ``out`` from its journal (a sweep whose process was ended before it
    could: core.cluster.sweep.SweepFile.write; nothing to write without a journal). Returns {"path",
    "records"}: the records of the points ``keys`` the file holds, in that order."""
    from core.cluster.sweep import SweepFile

    sf = SweepFile(out)
    if sf.journal.exists():
        sf.write()
    return {"path": str(sf.path), "records": [sf.records[k] for k in keys if k in sf.records]}


def sweep_model_job(system: System, sim: dict, point: dict, key: str, *, progress=None, cancel=None,
                    emit=None) -> TrainResult:
    """Make a model of sweep point ``point`` (key ``key``): its fit settings (core.cluster.sweep.config_of)
    fitted by the Train job (train_job, RF-HGN) on the current system's data, made with the simulation
    settings ``sim``. ``info["lineage"]`` says which point it comes from."""
    from core.cluster.sweep import config_of

    from .methods import method_by_key

    settings = config_of(point).to_dict()
    result = train_job(system, sim, method_by_key("rfhgn"), settings, progress=progress, cancel=cancel)
    result.info["lineage"] = {"sweep_point": str(key), "from": "", "fit": dict(point.get("fit") or {}),
                              "point_system": dict(point.get("system") or {}), "system": system.name}
    return result
