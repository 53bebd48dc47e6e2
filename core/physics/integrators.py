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
raises :class:`~core.errors.HGNError` that names the step and asks for a
smaller time step. A blow-up is a non-finite energy or force, or an energy
error |H(t) - H(0)| beyond :data:`ENERGY_ERROR_LIMIT` times the run's energy
scale E = max(K(0) + |V(0)|, E_floor) (checked every :data:`ENERGY_CHECK_EVERY`
steps and at every saved frame). E_floor is the system's own energy scale
(``core.physics.simulate.energy_floor``: one natural pair energy of its
potential per interacting pair, i.e. every bond stretched by half its length),
so that a state at rest (K(0) + |V(0)| ~ 1e-31) is not stopped by round-off.
A run continued in chunks passes ``energy_reference=(H(0), E)`` of its first
chunk (kept in each run's ``energy_reference``), so that it decides exactly
as one uninterrupted run. Why that bound: for a stable step velocity Verlet keeps
the energy error bounded (for a harmonic mode of frequency w it oscillates
with relative amplitude ~ (w dt)^2 / (4 - (w dt)^2), 1 only at w dt = 1.41,
near the stability limit w dt = 2); beyond the limit the error grows
geometrically without bound (seen: 7.6e287 after 100 steps). An error as
large as the energy itself is therefore never an accurate run, and such a
run must not become data.

Damping and forcing (``port``, :mod:`core.physics.port`; dp/dt = -dH/dq -
gamma p/m + F(t)): one step is the Strang splitting

    D(dt/2) K(dt/2) Q(dt) K(dt/2) D(dt/2)

with D the exact damping flow p <- p exp(-gamma dt / (2 m)), K the kick
p <- p + dt/2 (F(q) + F_ext(t)) (F_ext at the start of the step for the
first kick and at its end for the second) and Q the drift q <- q + dt p/m.
It is symmetric, hence second order, and without damping and forcing it is
velocity Verlet (the plain loop runs then, bit for bit). The injected and
dissipated energies are accumulated every step with the trapezoid rule on
the powers F_ext(t).v and sum gamma |v|^2 at the step ends
(``VerletRun.injected``/``dissipated``); the blow-up check then measures
|H(t) - H(0) - (injected - dissipated)|, the energy balance's error, against
the energy scale plus |injected| + dissipated, not |H(t) - H(0)|, which a
damped or driven run changes legitimately.
With damping or forcing, ``energy_reference`` contributes only its scale:
the balance is measured from this run's own start (H(t0) and the energies
injected and dissipated since), so a chunk given its first chunk's
reference does not count the energy that left or entered before it (a
blow-up is still caught within the chunk). Continued chunks of a driven
run must also pass their start time ``t0``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np

from core import validate
from core.errors import HGNError
from core.jobs import CancelLike, ProgressFn, check_cancel, report
from .neighbours import wrap

if TYPE_CHECKING:
    from .port import PortTerms

#: force_fn(q) -> (potential energy V, forces F = -dV/dq with the shape of q)
ForceFn = Callable[[np.ndarray], "tuple[float, np.ndarray]"]

#: seconds between two progress reports
PROGRESS_INTERVAL = 0.05
#: largest accepted |H(t) - H(0)| / (K(0) + |V(0)|) of a run (see the module notes)
ENERGY_ERROR_LIMIT = 1.0
#: steps between two energy-error checks (besides every saved frame)
ENERGY_CHECK_EVERY = 10
#: bytes of one saved (N, d) float64 array per particle and dimension
_F64 = 8
#: a lower bound of the time of one step: a fixed cost per step (s) and particle-steps per second, each
#: several times faster than measured (80 us a step for 4 particles; 4.4e6 particle-steps/s on a 30^3
#: lattice), so that a run refused by :func:`check_run_time` could not finish even on a much faster machine
STEP_SECONDS_MIN = 1e-5
PARTICLE_STEPS_PER_SECOND_MAX = 1e8
#: the longest run accepted, by that lower bound (30 days)
MAX_RUN_SECONDS = 30 * 86400.0


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
    #: (H(0), energy scale) the energy error was measured against (pass it on to continue the run in chunks)
    energy_reference: Optional[tuple[float, float]] = None
    #: with damping or forcing (``port``): the energy injected by the external forces and dissipated by the
    #: damping from the start of the run to each saved frame, accumulated every step (T,); else None
    injected: Optional[np.ndarray] = None
    dissipated: Optional[np.ndarray] = None

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
    dt = validate.positive("time step dt", dt)
    return dt, validate.whole("steps", steps, 0, at_least=">="), validate.whole("save_every", save_every, 1,
                                                                                 at_least=">=")


def run_bytes(n: int, dim: int, steps: int, save_every: int, arrays: int = 2) -> float:
    """Estimated bytes of the saved frames of one run: ``arrays`` float64
    (T, N, d) arrays (q and p; 3 with the forces) for T saved frames."""
    return float(n_saved_frames(steps, save_every)) * n * dim * _F64 * arrays


def check_run_memory(what: str, n: int, dim: int, steps: int, save_every: int, arrays: int = 2,
                     runs: int = 1, extra: float = 0.0) -> None:
    """HGNError before a run whose saved frames cannot fit in this machine's memory."""
    need = runs * run_bytes(n, dim, steps, save_every, arrays) + extra
    validate.check_memory(f"{what} ({runs} x {n_saved_frames(steps, save_every)} saved frames of {n} particles)"
                          if runs > 1 else f"{what} ({n_saved_frames(steps, save_every)} saved frames of {n} "
                          "particles)", need, "save fewer frames (a larger save_every, fewer steps) or use a "
                          "smaller system")


def check_run_time(what: str, n: int, steps: int, runs: int = 1) -> None:
    """HGNError before a run that cannot finish: even at the fastest rate
    possible (:data:`STEP_SECONDS_MIN`, :data:`PARTICLE_STEPS_PER_SECOND_MAX`)
    it would take longer than :data:`MAX_RUN_SECONDS` (e.g. --steps 1e15)."""
    seconds = float(runs) * steps * (STEP_SECONDS_MIN + n / PARTICLE_STEPS_PER_SECOND_MAX)
    if seconds > MAX_RUN_SECONDS:
        days = seconds / 86400.0
        span = f"{days / 365.25:.3g} years" if days > 730 else f"{days:.3g} days"
        raise HGNError(f"{what}: {runs * steps if runs > 1 else steps} steps of {n} particles would take at least "
                       f"{span}, even at {STEP_SECONDS_MIN * 1e6:g} us per step and "
                       f"{PARTICLE_STEPS_PER_SECOND_MAX:.0e} particle-steps per second (the limit is "
                       f"{MAX_RUN_SECONDS / 86400:g} days); use fewer steps")


def energy_scale(kinetic: float, potential: float, floor: float = 0.0) -> float:
    """The energy scale max(K(0) + |V(0)|, floor) the energy error of a run is measured against."""
    return max(abs(float(kinetic)) + abs(float(potential)), float(floor))


def check_energy_reference(ref) -> tuple[float, float] | None:
    """``(H(0), scale)`` of a run continued in chunks, checked; None passes."""
    if ref is None:
        return None
    try:
        h0, scale = ref
    except (TypeError, ValueError):
        raise HGNError(f"energy_reference must be a pair (H(0), energy scale), got {ref!r:.60}") from None
    return validate.number("energy_reference H(0)", h0), validate.number("energy_reference scale", scale, 0.0)


def energy_blowup(step: int, t: float, dt: float, error: float, scale: float, limit: float,
                  balance: bool = False) -> HGNError:
    """The error of a run whose energy error passed the limit (see the module notes)."""
    if balance:
        return HGNError(f"the simulation blew up at step {step} (t = {t:.6g}): the energy balance error "
                        f"|H - H(0) - (injected - dissipated)| reached {error / scale:.3g} times the energy scale "
                        f"max(K(0) + |V(0)|, the system's own) + |injected| + dissipated = {scale:.3g} (limit "
                        f"{limit:g}), so the integrator is unstable or far from accurate at this step. Reduce the "
                        f"time step dt (now {dt:g}; e.g. {dt / 4:g}); no result was kept")
    return HGNError(f"the simulation blew up at step {step} (t = {t:.6g}): the energy error |H - H(0)| "
                    f"reached {error / scale:.3g} times the energy scale max(K(0) + |V(0)|, the system's own) = "
                    f"{scale:.3g} (limit "
                    f"{limit:g}), so velocity Verlet is unstable or far from accurate at this step. Reduce the "
                    f"time step dt (now {dt:g}; e.g. {dt / 4:g}); no result was kept")


def check_start(q0, p0, masses, box=None, wrap_saved: bool = False):
    """``(q, p, m)``: float64 copies of a run's start state and masses (the
    caller's arrays are not touched), checked (shapes (N, d), one mass per
    particle, finite, masses > 0; ``wrap_saved`` needs a ``box``); HGNError
    otherwise. Every ground-truth integrator starts with it."""
    q = np.array(q0, dtype=np.float64)
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
    return q, p, m


def velocity_verlet(force_fn: ForceFn, q0: np.ndarray, p0: np.ndarray, masses: np.ndarray,
                    dt: float, steps: int, save_every: int = 1, box: np.ndarray | None = None,
                    progress: ProgressFn | None = None, cancel: CancelLike | None = None,
                    on_frame: FrameFn | None = None, save_forces: bool = False,
                    wrap_saved: bool = False, t0: float = 0.0,
                    energy_limit: float | None = ENERGY_ERROR_LIMIT, energy_floor: float = 0.0,
                    energy_reference: tuple[float, float] | None = None,
                    port: "PortTerms | None" = None) -> VerletRun:
    """Integrate ``steps`` velocity-Verlet steps from (q0, p0) and return the
    frames at every ``save_every``-th step (the initial state is frame 0).

    ``force_fn(q)`` returns (V, F). ``masses`` has one value per particle.
    ``box`` and ``wrap_saved``: see the module notes (positions are integrated
    unwrapped; with ``wrap_saved`` the saved copies are folded into ``box``).
    ``save_forces`` also keeps F at every saved frame (the exact dp/dt, used
    by data generation). ``energy_limit``: the largest relative energy
    error accepted (module notes; None: only non-finite values are a
    blow-up), ``energy_floor`` the smallest energy scale (the system's own,
    see the module notes), ``energy_reference`` (H(0), scale) of the first
    chunk of a run continued in chunks. ``port``: damping and forcing
    (:class:`core.physics.port.PortTerms` of the system; see "Damping and
    forcing" in the module notes); None or an inactive port runs plain
    velocity Verlet, bit for bit. Raises HGNError on bad settings, on
    saved frames that would not
    fit in memory, or on a blow-up, and :class:`~core.errors.Cancelled` when
    ``cancel`` is set.
    """
    dt, steps, save_every = check_run_settings(dt, steps, save_every)
    q, p, m = check_start(q0, p0, masses, box, wrap_saved)

    if energy_limit is not None:
        energy_limit = validate.positive("energy_limit", energy_limit)
    energy_floor = validate.number("energy_floor", energy_floor, 0.0)
    energy_reference = check_energy_reference(energy_reference)
    n_frames = n_saved_frames(steps, save_every)
    n, d = q.shape
    check_run_memory("the run", n, d, steps, save_every, 3 if save_forces else 2)
    check_run_time("the run", n, steps)
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
    if port is not None and not (port.damped or port.forced):
        port = None  # nothing to add: plain velocity Verlet, bit for bit
    decay = port.decay(half_dt) if port is not None and port.damped else None
    fext = port.external(t0) if port is not None and port.forced else None
    balance = [0.0, 0.0]  # energy injected, dissipated since the start (accumulated every step, trapezoid)
    power = [0.0, 0.0]  # injected, dissipated power at the current step
    inj = np.empty(n_frames) if port is not None else None
    dis = np.empty(n_frames) if port is not None else None

    def evaluate(step: int):
        v, f = force_fn(q)
        v = float(v)
        if not math.isfinite(v + float(f.sum())):
            raise HGNError(f"the simulation blew up at step {step} (t = {t0 + step * dt:.6g}): energies or "
                           f"forces became NaN or infinite. Reduce the time step dt (now {dt:g}), or "
                           "check the initial state for overlapping particles")
        return v, f

    e_ref = [0.0, 0.0]  # H(0), energy scale

    def check_energy(step: int, v: float) -> None:
        if energy_limit is None or e_ref[1] <= 0.0:
            return
        h = v + float(np.einsum("ij,ij,i->", p, p, half_inv_m[:, 0]))
        if port is None:
            err, scale = abs(h - e_ref[0]), e_ref[1]
        else:  # against the energy balance: H(t) - H(0) = injected - dissipated, up to the integrator's error
            err = abs(h - e_ref[0] - (balance[0] - balance[1]))
            scale = e_ref[1] + abs(balance[0]) + balance[1]
        if not err <= energy_limit * scale:  # also true for NaN
            raise energy_blowup(step, t0 + step * dt, dt, err, scale, energy_limit, port is not None)

    def save(k: int, step: int, v: float, f: np.ndarray) -> None:
        qs[k] = wrap(q, box) if wrap_saved else q
        ps[k] = p
        if inj is not None:
            inj[k], dis[k] = balance
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
        k0 = float(np.einsum("ij,ij,i->", p, p, half_inv_m[:, 0]))
        e_ref[:] = energy_reference or [v + k0, energy_scale(k0, v, energy_floor)]
        if port is not None:  # the balance starts here: H(0) of this run, the first chunk's scale
            e_ref[0] = v + k0
        if port is not None:
            power[:] = (port.injected(t0, p), port.dissipated(p))
        save(0, 0, v, f)
        report(progress, "simulate", 0.0)
        last_report = time.perf_counter()
        k = 1
        for step in range(1, steps + 1):
            if cancel is not None and cancel.is_set():
                check_cancel(cancel)
            if port is None:
                np.multiply(f, half_dt, out=buf)
                p += buf
                np.multiply(p, dt_inv_m, out=buf)
                q += buf
                v, f = evaluate(step)
                np.multiply(f, half_dt, out=buf)
                p += buf
            else:
                if decay is not None:
                    p *= decay
                p += half_dt * (f + fext) if fext is not None else half_dt * f
                np.multiply(p, dt_inv_m, out=buf)
                q += buf
                v, f = evaluate(step)
                t_now = t0 + step * dt
                if port.forced:
                    fext = port.external(t_now, out=fext)
                    p += half_dt * (f + fext)
                else:
                    p += half_dt * f
                if decay is not None:
                    p *= decay
                p_in, p_out = port.injected(t_now, p), port.dissipated(p)
                balance[0] += half_dt * (power[0] + p_in)
                balance[1] += half_dt * (power[1] + p_out)
                power[:] = (p_in, p_out)
            if step % save_every == 0:
                check_energy(step, v)
                save(k, step, v, f)
                k += 1
            elif step % ENERGY_CHECK_EVERY == 0 or step == steps:
                check_energy(step, v)
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
                     dt=dt, save_every=save_every, steps=steps, energy_reference=(e_ref[0], e_ref[1]),
                     injected=inj, dissipated=dis)
