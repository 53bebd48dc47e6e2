"""Time stepping: the Stoermer-Verlet (velocity Verlet) integrator in float64.

Velocity Verlet is symplectic, time-reversible and second order; for a small
enough step its energy error stays bounded (no drift). One step is

    p_{1/2} = p_n + dt/2 F(q_n)
    q_{n+1} = q_n + dt p_{1/2} / m
    p_{n+1} = p_{1/2} + dt/2 F(q_{n+1})

with one force evaluation per step (the force at the end of a step is reused
at the start of the next).

:func:`velocity_verlet` is generic in the force function ``force_fn(q) ->
(V, F)``, so ground truth (``core.physics.forces.ForceField.energy_forces``) and
learned separable models (F = -dH_hat/dq) run through the same loop.

Periodic boxes: positions are integrated and saved **unwrapped** (they are
never folded back into the box). Trajectories stay continuous, so finite
differences (q_{n+1} - q_n)/dt of saved frames are meaningful (time-series
fits, section 5 of the method) and diffusion can be measured; the force
field applies the minimum-image convention itself. Views that want particles
inside the box fold them with ``core.physics.neighbours.wrap`` (or pass
``wrap_saved=True`` here, which folds only the saved copies and never the
state that is integrated).

Long runs follow the job protocol of ``core.jobs``: ``cancel`` is checked
every step (and so far more often than every 0.1 s), ``progress("simulate",
fraction)`` is reported at most every ~0.05 s and at the end, and a blow-up
(a non-finite energy or force) raises :class:`~core.errors.HGNError` that
asks for a smaller time step.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from core.errors import HGNError
from core.jobs import CancelLike, ProgressFn, check_cancel, report
from .neighbours import wrap

#: force_fn(q) -> (potential energy V, forces F = -dV/dq with the shape of q)
ForceFn = Callable[[np.ndarray], "tuple[float, np.ndarray]"]

#: seconds between two progress reports
PROGRESS_INTERVAL = 0.05


@dataclass(frozen=True, eq=False)
class Frame:
    """One saved frame, handed to ``on_frame`` while a run is in progress.

    ``q`` and ``p`` are read-only views into the run's saved arrays (no copy;
    they stay valid and unchanged after the run). ``index`` counts saved
    frames (0 = the initial state), ``step`` integrator steps; ``n_frames`` is
    how many frames the finished run will have, so ``(index + 1) / n_frames``
    is the share done. The callback runs in the integrating thread: a GUI
    must hand the frame over to its own thread (e.g. a queued signal).
    """

    index: int
    step: int
    t: float
    q: np.ndarray
    p: np.ndarray
    kinetic: float
    potential: float
    momentum: np.ndarray  # (d,) total momentum
    n_frames: int

    @property
    def total(self) -> float:
        return self.kinetic + self.potential


FrameFn = Callable[[Frame], None]


@dataclass(eq=False)
class VerletRun:
    """The saved frames of one run: frame k is integrator step k * save_every."""

    t: np.ndarray  # (T,) times
    q: np.ndarray  # (T, N, d)
    p: np.ndarray  # (T, N, d)
    potential: np.ndarray  # (T,)
    kinetic: np.ndarray  # (T,)
    momentum: np.ndarray  # (T, d) total momentum
    forces: Optional[np.ndarray]  # (T, N, d) when save_forces, else None
    dt: float
    save_every: int
    steps: int

    @property
    def total(self) -> np.ndarray:
        return self.kinetic + self.potential


def n_saved_frames(steps: int, save_every: int) -> int:
    """Frames kept by a run: steps 0, save_every, 2 save_every, ... <= steps.
    (When steps is not a multiple of save_every the last steps are integrated
    but not saved, so frames stay evenly spaced.)"""
    return steps // save_every + 1


def check_run_settings(dt, steps, save_every) -> tuple[float, int, int]:
    """Validate and normalise (dt, steps, save_every); HGNError when wrong."""
    try:
        dt = float(dt)
    except (TypeError, ValueError):
        raise HGNError(f"time step dt must be a number, got {dt!r}") from None
    if not math.isfinite(dt) or dt <= 0:
        raise HGNError(f"time step dt must be > 0, got {dt}")
    for name, v, lo in (("steps", steps, 0), ("save_every", save_every, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer, float, np.floating)) \
                or not math.isfinite(float(v)) or not float(v).is_integer():
            raise HGNError(f"{name} must be a whole number, got {v!r}")
        if int(v) < lo:
            raise HGNError(f"{name} must be >= {lo}, got {int(v)}")
    return dt, int(steps), int(save_every)


def velocity_verlet(force_fn: ForceFn, q0: np.ndarray, p0: np.ndarray, masses: np.ndarray,
                    dt: float, steps: int, save_every: int = 1, box: np.ndarray | None = None,
                    progress: ProgressFn | None = None, cancel: CancelLike | None = None,
                    on_frame: FrameFn | None = None, save_forces: bool = False,
                    wrap_saved: bool = False, t0: float = 0.0) -> VerletRun:
    """Integrate ``steps`` velocity-Verlet steps from (q0, p0) and return the
    frames at every ``save_every``-th step (the initial state is frame 0).

    ``force_fn(q)`` returns (V, F). ``masses`` has one value per particle.
    ``box`` and ``wrap_saved``: see the module notes (positions are integrated
    unwrapped; with ``wrap_saved`` the saved copies are folded into ``box``).
    ``save_forces`` also keeps F at every saved frame (the exact dp/dt, used
    by data generation). Raises HGNError on bad settings or a blow-up and
    :class:`~core.errors.Cancelled` when ``cancel`` is set.
    """
    dt, steps, save_every = check_run_settings(dt, steps, save_every)
    q = np.array(q0, dtype=np.float64)  # copies: the caller's arrays are not touched
    p = np.array(p0, dtype=np.float64)
    m = np.asarray(masses, dtype=np.float64)
    if q.ndim != 2 or p.shape != q.shape:
        raise HGNError(f"q0 and p0 must both have shape (N, d); got {q.shape} and {p.shape}")
    if m.shape != (q.shape[0],):
        raise HGNError(f"masses must have one value per particle ({q.shape[0]}), got shape {m.shape}")
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(p))):
        raise HGNError("initial positions and momenta must be finite (found NaN or inf)")
    if not np.all(m > 0):
        raise HGNError("masses must be > 0")
    if wrap_saved and box is None:
        raise HGNError("wrap_saved needs a periodic box")

    n_frames = n_saved_frames(steps, save_every)
    n, d = q.shape
    qs = np.empty((n_frames, n, d))
    ps = np.empty((n_frames, n, d))
    fs = np.empty((n_frames, n, d)) if save_forces else None
    pot = np.empty(n_frames)
    kin = np.empty(n_frames)
    mom = np.empty((n_frames, d))
    half_inv_m = 0.5 / m[:, None]
    dt_inv_m = dt / m[:, None]
    half_dt = 0.5 * dt
    buf = np.empty_like(q)

    def evaluate(step: int):
        v, f = force_fn(q)
        v = float(v)
        if not math.isfinite(v + float(f.sum())):
            raise HGNError(f"the simulation blew up at step {step} (t = {t0 + step * dt:.6g}): energies or "
                           f"forces became NaN or infinite. Reduce the time step dt (now {dt:g}), or "
                           "check the initial state for overlapping particles")
        return v, f

    def save(k: int, step: int, v: float, f: np.ndarray) -> None:
        qs[k] = wrap(q, box) if wrap_saved else q
        ps[k] = p
        if fs is not None:
            fs[k] = f
        pot[k] = v
        if on_frame is not None:
            kin[k] = np.einsum("ij,ij,i->", p, p, half_inv_m[:, 0])
            mom[k] = p.sum(axis=0)
            qv, pv = qs[k].view(), ps[k].view()
            qv.flags.writeable = False
            pv.flags.writeable = False
            on_frame(Frame(k, step, t0 + step * dt, qv, pv, float(kin[k]), v, mom[k].copy(), n_frames))

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # a blow-up raises HGNError below
        check_cancel(cancel)
        v, f = evaluate(0)
        save(0, 0, v, f)
        report(progress, "simulate", 0.0)
        last_report = time.perf_counter()
        k = 1
        for step in range(1, steps + 1):
            if cancel is not None and cancel.is_set():
                check_cancel(cancel)
            np.multiply(f, half_dt, out=buf)
            p += buf
            np.multiply(p, dt_inv_m, out=buf)
            q += buf
            v, f = evaluate(step)
            np.multiply(f, half_dt, out=buf)
            p += buf
            if step % save_every == 0:
                save(k, step, v, f)
                k += 1
            if progress is not None:
                now = time.perf_counter()
                if now - last_report >= PROGRESS_INTERVAL:
                    report(progress, "simulate", step / steps)
                    last_report = now
    if on_frame is None:  # energies and momenta of all frames at once (cheaper than per frame)
        np.einsum("tij,tij,i->t", ps, ps, half_inv_m[:, 0], out=kin)
        ps.sum(axis=1, out=mom)
    report(progress, "simulate", 1.0)
    t = t0 + dt * save_every * np.arange(n_frames)
    return VerletRun(t=t, q=qs, p=ps, potential=pot, kinetic=kin, momentum=mom, forces=fs,
                     dt=dt, save_every=save_every, steps=steps)
