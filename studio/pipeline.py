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
                if port is not None:      # the identified damping and forcing (rollout_port: a CPU loop)
                    from core.learning.rfhgn.port import rollout_port

                    pr = rollout_port(model, system, q_p, p_p, dt, n_steps, save_every, t0=done * save_every * dt,
                                      port=port)
                else:
                    pr = rollout(model, system, q_p, p_p, dt, n_steps, save_every=save_every, cancel=cancel,
                                 t0=done * save_every * dt, device=device, precision=precision, threads=threads,
                                 energy_reference=ref_p)
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
