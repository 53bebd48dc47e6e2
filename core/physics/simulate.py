"""Ground-truth simulation of a :class:`~core.physics.system.System`.

:func:`simulate` runs the velocity-Verlet integrator (``core.physics.integrators``)
with the system's force field (``core.physics.forces.ForceField``: fixed edges, or a
cutoff with a Verlet neighbour list) and returns a
:class:`~core.physics.trajectory.Trajectory` with kinetic, potential and total energy
and total momentum at every saved frame.

Positions are integrated and saved unwrapped in periodic boxes (see
``core.physics.integrators``); fold them with ``core.physics.neighbours.wrap`` for display.

Live display: ``on_frame(frame)`` receives a :class:`core.physics.integrators.Frame`
(index, step, t, q, p, kinetic, potential, momentum, n_frames) for every
saved frame as soon as it exists, in the simulating thread, so the studio can
grow its timeline and energy plot while the run goes on.
"""
from __future__ import annotations

import math

import numpy as np

from core import validate
from core.errors import HGNError
from .forces import DEFAULT_SKIN, ForceField
from .integrators import FrameFn, VerletRun, check_run_settings
from .port import port_of
from core.jobs import CancelLike, ProgressFn
from .system import System
from .trajectory import Trajectory


def check_state(system: System, q0, p0) -> tuple[np.ndarray, np.ndarray]:
    """Validate an initial state against a system; float64 copies back."""
    if not isinstance(system, System):
        raise HGNError(f"a simulation needs a System, got {type(system).__name__}")
    shape = (system.n, system.dim)
    try:
        q = np.array(q0, dtype=np.float64)
        p = np.array(p0, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise HGNError("initial positions and momenta must be arrays of numbers") from None
    if q.shape != shape:
        raise HGNError(f"initial positions must have shape {shape} (N, d) for this system, got {q.shape}")
    if p.shape != shape:
        raise HGNError(f"initial momenta must have shape {shape} (N, d) for this system, got {p.shape}")
    if not np.all(np.isfinite(q)):
        raise HGNError("initial positions contain NaN or inf")
    if not np.all(np.isfinite(p)):
        raise HGNError("initial momenta contain NaN or inf")
    return q, p


def energy_floor(system: System) -> float:
    """The system's own energy scale, the floor of the energy scale a run's
    energy error is measured against (``core.physics.integrators``): one
    natural pair energy of its potential, max(|V(r_min)|, |V(1.5 r_min) -
    V(r_min)|) (a bond stretched by half its length), per interacting pair
    (its edges; N for cutoff systems)."""
    pot = system.potential
    try:
        r = float(pot.r_min)
    except Exception:  # noqa: BLE001 - a potential without a natural length: lengths are ~1 in reduced units
        r = 1.0
    if not (math.isfinite(r) and r > 0):
        r = 1.0
    with np.errstate(all="ignore"):
        v0 = float(np.asarray(pot.energy(np.array([r])))[0])
        v1 = float(np.asarray(pot.energy(np.array([1.5 * r])))[0])
    unit = max(abs(v0), abs(v1 - v0))
    if not (math.isfinite(unit) and unit > 0):
        unit = 1.0
    pairs = len(system.edges) if system.edges is not None else system.n
    return unit * max(pairs, 1)


def run_system(system: System, q0, p0, dt: float, steps: int, save_every: int = 1,
               progress: ProgressFn | None = None, cancel: CancelLike | None = None,
               on_frame: FrameFn | None = None, save_forces: bool = False,
               skin: float = DEFAULT_SKIN, energy_reference=None,
               integrator: str = "verlet", t0: float = 0.0) -> tuple[VerletRun, ForceField]:
    """Validated ground-truth run; returns the raw :class:`VerletRun` (which can
    also hold the forces) and the force field used (for its statistics).
    ``integrator``: "verlet" (velocity Verlet), "rk4" or "dop853" (the reference
    integrators of ``core.physics.reference``, same arguments and checks).
    ``t0``: the time of the start (a run continued in chunks; the drives of
    a driven system depend on it)."""
    from .reference import integrator as integrator_named

    step_fn = integrator_named(integrator)
    dt, steps, save_every = check_run_settings(dt, steps, save_every)
    q, p = check_state(system, q0, p0)
    skin = validate.amplitude("neighbour-list skin", skin)
    t0 = validate.number("start time t0", t0)
    port = port_of(system)
    extra = {}
    if port is not None:
        if integrator != "verlet":
            raise HGNError(f"{system.name or 'this system'} is damped or driven ({port.describe()}); the "
                           f"{integrator} integrator integrates Hamiltonian systems only: use the integrator "
                           "verlet (the Strang splitting of velocity Verlet with the exact damping flow)")
        extra["port"] = port.terms(system.masses, system.dim)
    ff = ForceField(system, skin=skin)
    run = step_fn(ff.energy_forces, q, p, system.masses, dt, steps, save_every,
                  box=system.box, progress=progress, cancel=cancel, on_frame=on_frame,
                  save_forces=save_forces, energy_floor=energy_floor(system),
                  energy_reference=energy_reference, t0=t0, **extra)
    return run, ff


#: the names trajectories record for the integrators of :func:`run_system`
INTEGRATOR_LABELS = {"verlet": "velocity-verlet", "rk4": "rk4", "dop853": "dop853"}


def to_trajectory(system: System, run: VerletRun, ff: ForceField | None = None,
                  label: str = "ground truth", integrator: str = "verlet") -> Trajectory:
    meta = {"integrator": INTEGRATOR_LABELS.get(integrator, integrator), "steps": run.steps, "unwrapped": True}
    if run.energy_reference is not None:
        meta["energy_reference"] = [float(x) for x in run.energy_reference]
    if ff is not None:
        meta["neighbour_builds"] = ff.neighbour_builds
    if run.injected is not None:  # damped or driven: the energy balance, accumulated every step
        meta["injected"] = run.injected
        meta["dissipated"] = run.dissipated
    return Trajectory(system=system, t=run.t, q=run.q, p=run.p, kinetic=run.kinetic,
                      potential=run.potential, momentum=run.momentum, dt=run.dt,
                      save_every=run.save_every, label=label, meta=meta)


def simulate(system: System, q0, p0, dt: float, steps: int, save_every: int = 1,
             progress: ProgressFn | None = None, cancel: CancelLike | None = None,
             on_frame: FrameFn | None = None, skin: float = DEFAULT_SKIN,
             energy_reference=None, integrator: str = "verlet", t0: float = 0.0) -> Trajectory:
    """Integrate the system from (q0, p0) for ``steps`` steps of ``dt``, saving
    every ``save_every``-th step (frame 0 is the initial state; frames are
    evenly spaced, so a remainder of steps beyond the last multiple of
    ``save_every`` is integrated but not saved).

    Raises :class:`~core.errors.HGNError` for dt <= 0, steps < 0,
    save_every < 1, a state of the wrong shape or with NaN, and a blow-up
    (see ``core.physics.integrators``; ``energy_reference``: the
    ``meta["energy_reference"]`` of the first chunk when a run is continued
    in chunks, so that it decides as one run; ``integrator``: "verlet",
    "rk4" or "dop853", see :func:`run_system`; ``t0``: the time of the
    start, for a run continued in chunks: a driven system's forces depend
    on it);
    :class:`~core.errors.Cancelled` when ``cancel`` is set.
    """
    run, ff = run_system(system, q0, p0, dt, steps, save_every, progress, cancel, on_frame, skin=skin,
                         energy_reference=energy_reference, integrator=integrator, t0=t0)
    return to_trajectory(system, run, ff, integrator=integrator)
