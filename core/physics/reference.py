"""Reference integrators for the ground truth: classical RK4 and SciPy's DOP853.

Both have the call signature and return value of
:func:`core.physics.integrators.velocity_verlet` (``force_fn(q) -> (V, F)``,
frames at every ``save_every``-th multiple of ``dt``, a
:class:`~core.physics.integrators.VerletRun`), so every caller of the
ground truth can swap them in and compare frame by frame:

* :func:`rk4` -- the classical fourth-order Runge-Kutta method with the fixed
  step ``dt`` on y = (q, p), dq/dt = p/m, dp/dt = F(q). Four force
  evaluations per step (the force at the end of a step is the first stage of
  the next). Not symplectic: its energy drifts (slowly, O(dt^4)).
* :func:`dop853` -- ``scipy.integrate.DOP853`` (Dormand-Prince 8(5,3),
  adaptive) at ``rtol`` = :data:`DOP853_RTOL` (1e-12) and ``atol`` =
  :data:`DOP853_ATOL` (1e-12, absolute, in the units of q and p), stepping
  freely and writing the frames at exactly the times t0 + k save_every dt
  from its 7th-order dense output (as ``solve_ivp(t_eval=...)`` does). ``dt``
  sets only where frames are written (and ``steps`` how long). ``max_step``
  bounds its steps (``first_step`` and huge tolerances make it a fixed-step
  8th-order method: how the tests measure its order).

The blow-up checks (non-finite values, energy error beyond ``energy_limit``
times K(0) + |V(0)|), progress reports, cancel and ``on_frame`` follow
``velocity_verlet``; :data:`INTEGRATORS` names the three for settings and the
command line.

The ground truth's own error: :func:`reference_check` takes a ground-truth
:class:`~core.physics.trajectory.Trajectory` (any integrator, or imported),
runs :func:`dop853` from its first frame on the system's force field with
frames at the same times (:func:`reference_trajectory`), and returns a
:class:`ReferenceCheck`: per frame the largest and the root-mean-square
distance of a particle from where the reference has it (minimum image in a
periodic box) and the energy difference H(t) - H_ref(t). Velocity Verlet's
position error grows like dt^2, RK4's like dt^4 (tested on a harmonic dimer
against its closed-form solution). The check is JSON-serialisable
(:meth:`ReferenceCheck.to_dict` / :meth:`ReferenceCheck.from_dict`), so a
project can keep it.
"""
from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass

import numpy as np

from core import validate
from core.errors import HGNError
from core.jobs import CancelLike, ProgressFn, check_cancel, report
from .integrators import (ENERGY_CHECK_EVERY, ENERGY_ERROR_LIMIT, PROGRESS_INTERVAL, ForceFn, Frame, FrameFn,
                          VerletRun, check_energy_reference, check_run_memory, check_run_settings, check_run_time,
                          check_start,
                          energy_blowup, energy_scale, n_saved_frames, velocity_verlet)
from .neighbours import wrap

#: DOP853 tolerances of the reference (rtol relative, atol absolute in units of q and p)
DOP853_RTOL = 1e-12
DOP853_ATOL = 1e-12


class _Recorder:
    """The saved frames, energy checks, progress and ``on_frame`` of one run."""

    def __init__(self, name, q, p, masses, dt, steps, save_every, box, progress, cancel, on_frame,
                 save_forces, wrap_saved, t0, energy_limit, energy_floor, energy_reference):
        self.name = name
        self.dt, self.steps, self.save_every = check_run_settings(dt, steps, save_every)
        m = check_start(q, p, masses, box, wrap_saved)[2]
        self.limit = None if energy_limit is None else validate.positive("energy_limit", energy_limit)
        self.floor = validate.number("energy_floor", energy_floor, 0.0)
        self.given_reference = check_energy_reference(energy_reference)
        self.n_frames = n_saved_frames(self.steps, self.save_every)
        n, d = q.shape
        check_run_memory("the run", n, d, self.steps, self.save_every, 3 if save_forces else 2)
        check_run_time("the run", n, self.steps)
        self.m = m
        self.half_inv_m = 0.5 / m
        self.box, self.wrap_saved, self.t0 = box, wrap_saved, float(t0)
        self.progress, self.cancel, self.on_frame = progress, cancel, on_frame
        self.qs = np.empty((self.n_frames, n, d))
        self.ps = np.empty((self.n_frames, n, d))
        self.fs = np.empty((self.n_frames, n, d)) if save_forces else None
        self.pot = np.empty(self.n_frames)
        self.kin = np.empty(self.n_frames)
        self.mom = np.empty((self.n_frames, d))
        self.ref = (0.0, 0.0)
        self.last_report = time.perf_counter()

    def kinetic(self, p) -> float:
        return float(np.einsum("ij,ij,i->", p, p, self.half_inv_m))

    def checked(self, step: int, v, f) -> tuple[float, np.ndarray]:
        v = float(v)
        if not math.isfinite(v + float(np.sum(f))):
            raise HGNError(f"the {self.name} run blew up at step {step} (t = {self.t0 + step * self.dt:.6g}): "
                           f"energies or forces became NaN or infinite. Reduce the time step dt (now "
                           f"{self.dt:g}), or check the initial state for overlapping particles")
        return v, f

    def start(self, v: float, p) -> None:
        k0 = self.kinetic(p)
        self.ref = self.given_reference or (v + k0, energy_scale(k0, v, self.floor))
        report(self.progress, "simulate", 0.0)

    def check_energy(self, step: int, v: float, p) -> None:
        if self.limit is None or self.ref[1] <= 0.0:
            return
        err = abs(v + self.kinetic(p) - self.ref[0])
        if not err <= self.limit * self.ref[1]:
            raise energy_blowup(step, self.t0 + step * self.dt, self.dt, err, self.ref[1], self.limit)

    def save(self, k: int, step: int, q, p, v: float, f) -> None:
        self.check_energy(step, v, p)
        self.qs[k] = wrap(q, self.box) if self.wrap_saved else q
        self.ps[k] = p
        if self.fs is not None:
            self.fs[k] = f
        self.pot[k] = v
        self.kin[k] = self.kinetic(p)
        self.mom[k] = p.sum(axis=0)
        if self.on_frame is not None:
            qv, pv = self.qs[k].view(), self.ps[k].view()
            qv.flags.writeable = False
            pv.flags.writeable = False
            self.on_frame(Frame(k, step, self.t0 + step * self.dt, qv, pv, float(self.kin[k]), v,
                                self.mom[k].copy(), self.n_frames))

    def tick(self, fraction: float) -> None:
        if self.cancel is not None and self.cancel.is_set():
            check_cancel(self.cancel)
        if self.progress is not None:
            now = time.perf_counter()
            if now - self.last_report >= PROGRESS_INTERVAL:
                report(self.progress, "simulate", fraction)
                self.last_report = now

    def result(self) -> VerletRun:
        report(self.progress, "simulate", 1.0)
        t = self.t0 + self.dt * self.save_every * np.arange(self.n_frames)
        return VerletRun(t=t, q=self.qs, p=self.ps, potential=self.pot, kinetic=self.kin, momentum=self.mom,
                         forces=self.fs, dt=self.dt, save_every=self.save_every, steps=self.steps,
                         energy_reference=(float(self.ref[0]), float(self.ref[1])))


def rk4(force_fn: ForceFn, q0: np.ndarray, p0: np.ndarray, masses: np.ndarray, dt: float, steps: int,
        save_every: int = 1, box: np.ndarray | None = None, progress: ProgressFn | None = None,
        cancel: CancelLike | None = None, on_frame: FrameFn | None = None, save_forces: bool = False,
        wrap_saved: bool = False, t0: float = 0.0, energy_limit: float | None = ENERGY_ERROR_LIMIT,
        energy_floor: float = 0.0, energy_reference: tuple[float, float] | None = None) -> VerletRun:
    """Classical RK4 with the fixed step ``dt``; arguments and result as
    :func:`~core.physics.integrators.velocity_verlet`."""
    q = np.array(q0, dtype=np.float64)
    p = np.array(p0, dtype=np.float64)
    rec = _Recorder("RK4", q, p, masses, dt, steps, save_every, box, progress, cancel, on_frame, save_forces,
                    wrap_saved, t0, energy_limit, energy_floor, energy_reference)
    h = rec.dt
    inv_m = 1.0 / rec.m[:, None]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        check_cancel(cancel)
        v, f = rec.checked(0, *force_fn(q))
        rec.start(v, p)
        rec.save(0, 0, q, p, v, f)
        k = 1
        for step in range(1, rec.steps + 1):
            rec.tick(step / rec.steps)
            # stage 1: (p/m, f) at (q, p)
            p2 = p + 0.5 * h * f
            q2 = q + 0.5 * h * inv_m * p
            _, f2 = force_fn(q2)
            p3 = p + 0.5 * h * f2
            q3 = q + 0.5 * h * inv_m * p2
            _, f3 = force_fn(q3)
            p4 = p + h * f3
            q4 = q + h * inv_m * p3
            _, f4 = force_fn(q4)
            q = q + (h / 6.0) * inv_m * (p + 2.0 * p2 + 2.0 * p3 + p4)
            p = p + (h / 6.0) * (f + 2.0 * f2 + 2.0 * f3 + f4)
            v, f = rec.checked(step, *force_fn(q))
            if step % rec.save_every == 0:
                rec.save(k, step, q, p, v, f)
                k += 1
            elif step % ENERGY_CHECK_EVERY == 0 or step == rec.steps:
                rec.check_energy(step, v, p)
    return rec.result()


def dop853(force_fn: ForceFn, q0: np.ndarray, p0: np.ndarray, masses: np.ndarray, dt: float, steps: int,
           save_every: int = 1, box: np.ndarray | None = None, progress: ProgressFn | None = None,
           cancel: CancelLike | None = None, on_frame: FrameFn | None = None, save_forces: bool = False,
           wrap_saved: bool = False, t0: float = 0.0,
           energy_limit: float | None = ENERGY_ERROR_LIMIT, energy_floor: float = 0.0,
           energy_reference: tuple[float, float] | None = None, rtol: float = DOP853_RTOL,
           atol: float = DOP853_ATOL, max_step: float = math.inf,
           first_step: float | None = None) -> VerletRun:
    """SciPy's adaptive DOP853 at ``rtol``/``atol``, frames written at the
    times of the ``dt``/``save_every`` grid (module notes); other arguments and
    the result as :func:`~core.physics.integrators.velocity_verlet`
    (``steps`` and ``dt`` define the frame times; the solver's own steps are
    its choice)."""
    from scipy.integrate import DOP853

    q = np.array(q0, dtype=np.float64)
    p = np.array(p0, dtype=np.float64)
    rec = _Recorder("DOP853", q, p, masses, dt, steps, save_every, box, progress, cancel, on_frame, save_forces,
                    wrap_saved, t0, energy_limit, energy_floor, energy_reference)
    rtol = validate.positive("rtol", rtol)
    atol = validate.positive("atol", atol)
    shape = q.shape
    size = q.size
    inv_m = np.repeat(1.0 / rec.m, shape[1])
    n_calls = [0]

    def fun(_t, y):
        n_calls[0] += 1
        if cancel is not None and n_calls[0] % 64 == 0 and cancel.is_set():
            check_cancel(cancel)
        _, f = force_fn(y[:size].reshape(shape))
        out = np.empty_like(y)
        out[:size] = y[size:] * inv_m
        out[size:] = np.asarray(f, dtype=np.float64).ravel()
        return out

    span = rec.dt * rec.steps
    t_end = rec.t0 + span
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        check_cancel(cancel)
        v, f = rec.checked(0, *force_fn(q))
        rec.start(v, p)
        rec.save(0, 0, q, p, v, f)
        if rec.n_frames == 1:
            return rec.result()
        y0 = np.concatenate([q.ravel(), p.ravel()])
        kw = {} if first_step is None else {"first_step": validate.positive("first_step", first_step)}
        solver = DOP853(fun, rec.t0, y0, t_end, rtol=rtol, atol=atol, max_step=max_step, **kw)
        k = 1
        frame_step = rec.save_every
        while k < rec.n_frames:
            t_k = rec.t0 + k * frame_step * rec.dt
            while solver.status == "running" and solver.t < t_k:
                msg = solver.step()
                if solver.status == "failed":
                    raise HGNError(f"the DOP853 reference failed at t = {solver.t:.6g}: {msg}. Reduce the time "
                                   "step, loosen rtol/atol, or check the initial state")
                if not np.all(np.isfinite(solver.y)):
                    raise HGNError(f"the DOP853 run blew up at t = {solver.t:.6g}: the state became NaN or "
                                   "infinite; check the initial state for overlapping particles")
                rec.tick((solver.t - rec.t0) / span)
            y = solver.y if solver.t == t_k else solver.dense_output()(t_k)
            while True:  # every frame inside the last step
                qk = y[:size].reshape(shape).copy()
                pk = y[size:].reshape(shape).copy()
                v, f = rec.checked(k * frame_step, *force_fn(qk))
                rec.save(k, k * frame_step, qk, pk, v, f)
                k += 1
                if k >= rec.n_frames:
                    break
                t_k = rec.t0 + k * frame_step * rec.dt
                if t_k > solver.t:
                    break
                y = solver.y if solver.t == t_k else solver.dense_output()(t_k)
    return rec.result()


#: the ground-truth integrators by the names of settings and the command line
INTEGRATORS = {"verlet": velocity_verlet, "rk4": rk4, "dop853": dop853}


def integrator(name: str):
    """The integrator function called ``name`` (verlet, rk4, dop853), else HGNError."""
    key = str(name).strip().lower() if isinstance(name, str) else name
    key = {"velocity-verlet": "verlet", "velocity_verlet": "verlet"}.get(key, key)
    if key not in INTEGRATORS:
        raise HGNError(f"unknown integrator {name!r}; choose one of {', '.join(INTEGRATORS)}")
    return INTEGRATORS[key]


# ----------------------------------------------------------------------
# the ground truth's own error against the DOP853 reference
# ----------------------------------------------------------------------
#: stage name the reference run reports its progress under
REFERENCE_STAGE = "reference"
#: most frames a stored check may hold (a project keeps it as JSON lists)
MAX_CHECK_FRAMES = 200_000
#: relative tolerance on a trajectory's frame spacing (t[k+1] - t[k] = save_every dt)
FRAME_SPACING_RTOL = 1e-6


@dataclass(frozen=True)
class ReferenceCheck:
    """A ground truth compared with the DOP853 reference from its first frame.

    Per frame (times ``t``): ``position_max`` -- the largest distance of a
    particle from its reference position; ``position_rms`` -- the root mean
    square of those distances over the particles; ``energy`` -- H(t) - H_ref(t)
    (the run's recorded total energy minus the reference's). ``integrator``
    names the checked run (e.g. "velocity-verlet"), ``reference`` the
    reference and its tolerances, ``seconds`` how long the reference took.
    """

    t: np.ndarray
    position_max: np.ndarray
    position_rms: np.ndarray
    energy: np.ndarray
    integrator: str = ""
    reference: str = ""
    dt: float = 0.0
    seconds: float = 0.0

    SERIES = ("t", "position_max", "position_rms", "energy")

    @property
    def n_frames(self) -> int:
        return int(len(self.t))

    def summary(self) -> str:
        """One line: the largest errors and when."""
        if not self.n_frames:
            return "no frames checked"
        k = int(np.argmax(self.position_max))
        e = float(np.max(np.abs(self.energy)))
        who = self.integrator or "ground truth"
        return (f"{who} (dt {self.dt:g}) vs {self.reference or 'reference'}: largest position error "
                f"{self.position_max[k]:.3g} at t = {self.t[k]:.4g}, largest |energy error| {e:.3g} "
                f"over {self.n_frames} frames")

    def to_dict(self) -> dict:
        """Plain JSON data (lists of floats: Python's repr round-trips float64)."""
        d = {k: [float(x) for x in getattr(self, k)] for k in self.SERIES}
        d.update(integrator=self.integrator, reference=self.reference, dt=float(self.dt),
                 seconds=float(self.seconds))
        return d

    @classmethod
    def from_dict(cls, d, where: str = "reference check") -> "ReferenceCheck":
        """Back from :meth:`to_dict`'s data; HGNError naming the bad field."""
        if not isinstance(d, dict):
            raise HGNError(f"{where}: expected an object with fields {list(cls.SERIES)}, got "
                           f"{type(d).__name__}")
        arrays = {}
        for k in cls.SERIES:
            v = d.get(k)
            if not isinstance(v, (list, tuple)):
                raise HGNError(f"{where}: field {k!r} must be a list of numbers, got {type(v).__name__}")
            if len(v) > MAX_CHECK_FRAMES:
                raise HGNError(f"{where}: field {k!r} has {len(v)} values; at most {MAX_CHECK_FRAMES}")
            if not all(isinstance(x, numbers.Real) and not isinstance(x, bool) for x in v):
                raise HGNError(f"{where}: field {k!r} must hold numbers only")
            a = np.array(v, dtype=np.float64)
            if not np.all(np.isfinite(a)):
                raise HGNError(f"{where}: field {k!r} holds NaN or infinite values")
            arrays[k] = a
        n = len(arrays["t"])
        for k in cls.SERIES[1:]:
            if len(arrays[k]) != n:
                raise HGNError(f"{where}: field {k!r} has {len(arrays[k])} values but 't' has {n}")
        if np.any(np.diff(arrays["t"]) <= 0):
            raise HGNError(f"{where}: field 't' must increase")
        if np.any(arrays["position_max"] < 0) or np.any(arrays["position_rms"] < 0):
            raise HGNError(f"{where}: position errors must be >= 0")
        text = {}
        for k in ("integrator", "reference"):
            v = d.get(k, "")
            if not isinstance(v, str) or len(v) > 200:
                raise HGNError(f"{where}: field {k!r} must be text of at most 200 characters")
            text[k] = v
        num = {}
        for k in ("dt", "seconds"):
            v = d.get(k, 0.0)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0:
                raise HGNError(f"{where}: field {k!r} must be a number >= 0, got {v!r:.40}")
            num[k] = float(v)
        return cls(**arrays, **text, **num)


def _check_frames(traj) -> tuple[float, int, int]:
    """(dt, save_every, steps) of a trajectory whose frames are evenly spaced."""
    from .trajectory import Trajectory

    if not isinstance(traj, Trajectory):
        raise HGNError(f"the reference check needs a ground-truth Trajectory, got {type(traj).__name__}")
    if traj.n_frames < 1:
        raise HGNError("the trajectory has no frames to check")
    dt = validate.positive("the trajectory's dt", traj.dt)
    every = int(traj.save_every)
    if every < 1:
        raise HGNError(f"the trajectory's save_every must be >= 1, got {traj.save_every}")
    t = np.asarray(traj.t, dtype=np.float64)
    if t.shape != (traj.n_frames,) or not np.all(np.isfinite(t)):
        raise HGNError("the trajectory's times must be one finite number per frame")
    gaps = np.diff(t)
    h = dt * every
    if len(gaps) and not np.allclose(gaps, h, rtol=FRAME_SPACING_RTOL, atol=0.0):
        k = int(np.argmax(np.abs(gaps - h)))
        raise HGNError(f"the trajectory's frames are not evenly spaced by save_every x dt = {h:g} (frames {k} "
                       f"and {k + 1} are {gaps[k]:g} apart); the reference writes its frames on that grid, "
                       "so it cannot be compared frame by frame")
    return dt, every, (traj.n_frames - 1) * every


def reference_trajectory(traj, rtol: float = DOP853_RTOL, atol: float = DOP853_ATOL,
                         progress: ProgressFn | None = None, cancel: CancelLike | None = None):
    """The DOP853 reference of ``traj``: the same system from ``traj``'s first
    frame, frames at ``traj``'s times (a Trajectory labelled "dop853 reference";
    its progress reported under :data:`REFERENCE_STAGE`)."""
    from .forces import ForceField
    from .trajectory import Trajectory

    from .port import port_of

    dt, every, steps = _check_frames(traj)
    system = traj.system
    port = port_of(system)
    if port is not None:
        raise HGNError(f"{system.name or 'this system'} is damped or driven ({port.describe()}); the DOP853 "
                       "reference integrates conservative systems only, so this ground truth cannot be checked "
                       "against it")

    def forward(_stage, fraction):
        report(progress, REFERENCE_STAGE, fraction)

    # blow-up scale: the checked run's own energies (the reference should keep them)
    floor = float(np.max(np.abs(traj.kinetic)) + np.max(np.abs(traj.potential)))
    ff = ForceField(system)
    run = dop853(ff.energy_forces, traj.q[0], traj.p[0], system.masses, dt, steps, every, box=system.box,
                 progress=None if progress is None else forward, cancel=cancel, t0=float(traj.t[0]),
                 energy_floor=floor if math.isfinite(floor) else 0.0, rtol=rtol, atol=atol)
    return Trajectory(system=system, t=run.t, q=run.q, p=run.p, kinetic=run.kinetic, potential=run.potential,
                      momentum=run.momentum, dt=run.dt, save_every=run.save_every, label="dop853 reference",
                      meta={"integrator": "dop853", "steps": run.steps, "unwrapped": True,
                            "energy_reference": [float(x) for x in run.energy_reference]})


def compare_to_reference(traj, ref, integrator: str = "", reference: str = "", seconds: float = 0.0
                         ) -> ReferenceCheck:
    """Per-frame errors of ``traj`` against ``ref`` (same system and frames)."""
    if ref.n_frames != traj.n_frames or ref.q.shape != traj.q.shape:
        raise HGNError(f"the reference ({ref.n_frames} frames of {ref.q.shape[1:]}) does not match the "
                       f"trajectory ({traj.n_frames} frames of {traj.q.shape[1:]})")
    dq = np.asarray(traj.q, dtype=np.float64) - np.asarray(ref.q, dtype=np.float64)
    box = traj.system.box
    if box is not None:                      # the nearest image: wrapped and unwrapped frames compare alike
        dq = dq - box * np.round(dq / box)
    dist = np.sqrt(np.einsum("tnd,tnd->tn", dq, dq))
    energy = (np.asarray(traj.kinetic) + np.asarray(traj.potential)) - (ref.kinetic + ref.potential)
    if not integrator and isinstance(traj.meta, dict):
        integrator = str(traj.meta.get("integrator", ""))
    return ReferenceCheck(t=np.array(traj.t, dtype=np.float64), position_max=dist.max(axis=1),
                          position_rms=np.sqrt(np.mean(dist * dist, axis=1)), energy=energy,
                          integrator=integrator, reference=reference, dt=float(traj.dt),
                          seconds=float(seconds))


def reference_check(traj, integrator: str = "", rtol: float = DOP853_RTOL, atol: float = DOP853_ATOL,
                    progress: ProgressFn | None = None, cancel: CancelLike | None = None) -> ReferenceCheck:
    """The ground truth ``traj``'s own error against the DOP853 reference
    (module notes). ``integrator`` names the run checked (default: the one
    its meta records)."""
    t0 = time.perf_counter()
    ref = reference_trajectory(traj, rtol=rtol, atol=atol, progress=progress, cancel=cancel)
    return compare_to_reference(traj, ref, integrator=integrator,
                                reference=f"DOP853 (rtol {rtol:g}, atol {atol:g})",
                                seconds=time.perf_counter() - t0)
