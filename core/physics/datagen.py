"""Training data from ground truth: snapshots with exact time derivatives.

Two ways to make a :class:`~core.physics.trajectory.Dataset`:

* :func:`generate` integrates ``n_trajectories`` runs from seeded random
  initial conditions (``core.physics.initial.initial_state``) and keeps every
  ``save_every``-th step of each as a snapshot (q, p) with its exact time
  derivatives dq/dt = p/m and dp/dt = F(q) (the integrator's own forces) and
  its energy H(q, p); the runs themselves are kept as the time series
  (``Dataset.trajectories``, for derivative-free fits). The train/test split
  is by trajectory when there are several (test snapshots come from runs the
  fit never saw), by snapshot otherwise.
* :func:`random_snapshots` draws snapshots independently around the system's
  reference configuration, with no integration (the RF-HGN benchmark: "500
  training snapshots with displacements and momenta drawn with standard
  deviation 0.1").

Everything is seeded: the same system, settings and seed give the same data
bit for bit. Every default lives in :class:`DataSpec` (and the module
constants it reads), in one place.

``Dataset.meta`` records the settings (``spec``), how it was split
(``split``: "trajectory", "snapshot" or "none"), and for generated data the
origin of every snapshot (``trajectory_of_snapshot``, ``frame_of_snapshot``:
int arrays of length S) and the trajectories on each side
(``train_trajectories``, ``test_trajectories``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from core import validate
from core.errors import HGNError
from .forces import ForceField, kinetic_energy
from .initial import initial_state
from .integrators import check_run_settings
from .reference import integrator
from core.jobs import CancelLike, ProgressFn, check_cancel, report
from .port import port_of
from .simulate import run_system, to_trajectory
from .system import System
from .trajectory import Dataset

#: standard deviation of the random displacement of every coordinate
DEFAULT_DISPLACEMENT = 0.1
#: standard deviation of every random momentum component
DEFAULT_MOMENTUM = 0.1
#: share of the data held out for testing
DEFAULT_TEST_FRACTION = 0.2
DEFAULT_SEED = 0


@dataclass
class DataSpec:
    """Settings of :func:`generate` (all defaults are here).

    ``temperature`` (k_B T), when given, draws Maxwell-Boltzmann momenta
    instead of ``momentum``. ``save_every`` steps separate two snapshots of a
    run; each run contributes ``steps // save_every + 1`` snapshots (its
    initial state included). ``integrator`` integrates the runs: "verlet"
    (velocity Verlet, the default), "rk4" or "dop853"
    (:mod:`core.physics.reference`); the snapshots' derivatives are exact
    either way (the forces at the saved states).
    """

    n_trajectories: int = 10
    steps: int = 100
    dt: float = 0.01
    save_every: int = 10
    displacement: float = DEFAULT_DISPLACEMENT
    momentum: float = DEFAULT_MOMENTUM
    temperature: float | None = None
    seed: int = DEFAULT_SEED
    test_fraction: float = DEFAULT_TEST_FRACTION
    integrator: str = "verlet"

    def validate(self) -> "DataSpec":
        """Raise HGNError naming the first bad setting; returns self."""
        _whole("number of trajectories", self.n_trajectories, 1)
        check_run_settings(self.dt, self.steps, self.save_every)
        _amplitude("displacement", self.displacement)
        _amplitude("momentum", self.momentum)
        if self.temperature is not None:
            _amplitude("temperature", self.temperature)
        _seed(self.seed)
        _fraction(self.test_fraction)
        integrator(self.integrator)  # HGNError for an unknown name, as run_system gives
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DataSpec":
        if not isinstance(d, dict):
            raise HGNError(f"data settings must be a mapping of names to values, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise HGNError(f"unknown data settings {sorted(unknown)}; known: {sorted(names)}")
        return cls(**d).validate()


# -- validation helpers (core.validate) ----------------------------------------
_whole = validate.whole
_amplitude = validate.amplitude
_seed = validate.seed


def _fraction(v):
    return validate.fraction("test fraction", v)


#: float64 (N, d) arrays held per snapshot while data are made: q, p, dq/dt, dp/dt
_SNAPSHOT_ARRAYS = 4


def check_snapshot_memory(system: System, n: int) -> None:
    """HGNError before drawing ``n`` snapshots of ``system`` that cannot fit in memory."""
    validate.check_memory(f"{n} snapshots of {system.n} particles", float(n) * system.n * system.dim * 8
                          * _SNAPSHOT_ARRAYS, "draw fewer snapshots or use a smaller system")


def _check_system(system) -> System:
    if not isinstance(system, System):
        raise HGNError(f"data generation needs a System, got {type(system).__name__}")
    return system


def _split_count(n: int, fraction: float) -> int:
    """How many of n items go to the test side: round(fraction * n), at least
    one when fraction > 0 and at most n - 1 (training keeps one)."""
    if fraction <= 0 or n < 2:
        return 0
    return min(n - 1, max(1, int(round(fraction * n))))


def split_indices(n: int, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random split of range(n) into sorted (train, test) index arrays."""
    n_test = _split_count(n, fraction)
    perm = rng.permutation(n)
    return np.sort(perm[n_test:]).astype(np.int64), np.sort(perm[:n_test]).astype(np.int64)


def dataset_from_parts(system: System, parts, test_fraction: float, rng: np.random.Generator,
                       trajectories, meta: dict) -> Dataset:
    """The snapshots of several time series of ``system`` as one Dataset.

    ``parts``: one ``(q, p, dpdt, energy, frames[, times])`` per trajectory, the
    arrays of its chosen frames ((F, N, d), (F, N, d), (F, N, d), (F,)) and
    their frame numbers ``frames`` (F,) (and times (F,)); dq/dt is p/m. For
    a damped or driven system (``system.port``) ``dpdt`` holds the forces
    -dV/dq, the times are required, the port's -gamma p/m + F_ext(t) is added
    and ``meta["time_of_snapshot"]`` (S,) keeps the times. With several
    trajectories the test snapshots are whole trajectories (a seeded random
    ``test_fraction`` of them, drawn from ``rng``); with one, a random
    ``test_fraction`` of its snapshots. ``meta`` gets ``split`` ("trajectory",
    "snapshot" or "none"), ``train_trajectories``/``test_trajectories``,
    ``trajectory_of_snapshot`` and
    ``frame_of_snapshot``. Used by :func:`generate`, the command line's
    ``simulate --dataset-out`` and :func:`core.files.project.dataset_from_trajectories`.
    """
    n_traj = len(parts)
    if n_traj == 0:
        raise HGNError("a dataset needs at least one trajectory's snapshots, got none")
    q = np.concatenate([part[0] for part in parts])
    p = np.concatenate([part[1] for part in parts])
    dpdt = np.concatenate([part[2] for part in parts])
    port = port_of(system)
    if port is not None:  # damped or driven: dp/dt = F(q) - gamma p/m + F_ext(t), and the times are kept
        if any(len(part) < 6 for part in parts):
            raise HGNError("the snapshots of a damped or driven system need their times (dp/dt depends on t)")
        times = np.concatenate([np.asarray(part[5], dtype=np.float64) for part in parts])
        dpdt = dpdt + port.terms(system.masses, system.dim).dpdt(times, p)
        meta = dict(meta, time_of_snapshot=times)
    energy = np.concatenate([part[3] for part in parts])
    traj_of = np.concatenate([np.full(len(part[4]), k, dtype=np.int64) for k, part in enumerate(parts)])
    frame_of = np.concatenate([np.asarray(part[4], dtype=np.int64) for part in parts])
    if n_traj >= 2:
        train_t, test_t = split_indices(n_traj, test_fraction, rng)
        train = np.flatnonzero(np.isin(traj_of, train_t)).astype(np.int64)
        test = np.flatnonzero(np.isin(traj_of, test_t)).astype(np.int64)
        split = "trajectory" if len(test_t) else "none"
    else:
        train, test = split_indices(len(q), test_fraction, rng)
        train_t, test_t = np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64)
        split = "snapshot" if len(test) else "none"
    meta = dict(meta, split=split, train_trajectories=train_t.tolist(), test_trajectories=test_t.tolist())
    meta.update(trajectory_of_snapshot=traj_of, frame_of_snapshot=frame_of)
    return Dataset(system=system, q=q, p=p, dqdt=p / system.masses[:, None], dpdt=dpdt, energy=energy,
                   train=train, test=test, trajectories=list(trajectories), meta=meta)


# -- generation --------------------------------------------------------------
def generate(system: System, spec: DataSpec | None = None, progress: ProgressFn | None = None,
             cancel: CancelLike | None = None) -> Dataset:
    """Simulate ``spec.n_trajectories`` runs from seeded random initial
    states and return their saved frames as a Dataset (see module notes).

    Progress is reported as ``("simulate", fraction of all runs)``.
    """
    _check_system(system)
    spec = DataSpec() if spec is None else spec
    if not isinstance(spec, DataSpec):
        raise HGNError(f"spec must be a DataSpec, got {type(spec).__name__}")
    spec = spec.validate()
    n_traj = int(spec.n_trajectories)
    # the runs (q, p, forces) are all held, then copied into the dataset (q, p, dq/dt, dp/dt)
    per_run = float(spec.steps // spec.save_every + 1) * system.n * system.dim * 8
    validate.check_memory(f"{n_traj} runs of {spec.steps // spec.save_every + 1} saved frames of {system.n} "
                          "particles", n_traj * per_run * (3 + _SNAPSHOT_ARRAYS),
                          "save fewer frames (a larger save_every), fewer runs or a smaller system")
    seeds = np.random.SeedSequence(int(spec.seed)).spawn(n_traj + 1)
    runs, trajs = [], []
    for k in range(n_traj):
        check_cancel(cancel)
        q0, p0 = initial_state(system, spec.displacement, spec.momentum, spec.temperature,
                               rng=np.random.default_rng(seeds[k]))
        sub = None
        if progress is not None:
            def sub(stage, f, k=k):
                progress(stage, (k + f) / n_traj)
        run, ff = run_system(system, q0, p0, spec.dt, spec.steps, spec.save_every,
                             progress=sub, cancel=cancel, save_forces=True, integrator=spec.integrator)
        runs.append(run)
        trajs.append(to_trajectory(system, run, ff))
    report(progress, "simulate", 1.0)

    parts = [(r.q, r.p, r.forces, r.total, np.arange(r.q.shape[0]), r.t) for r in runs]
    return dataset_from_parts(system, parts, spec.test_fraction, np.random.default_rng(seeds[n_traj]), trajs,
                              {"source": "generate", "spec": spec.to_dict()})


def random_snapshots(system: System, n: int, displacement: float = DEFAULT_DISPLACEMENT,
                     momentum: float = DEFAULT_MOMENTUM, seed: int = DEFAULT_SEED,
                     test_fraction: float = 0.0, temperature: float | None = None,
                     progress: ProgressFn | None = None, cancel: CancelLike | None = None) -> Dataset:
    """``n`` independent snapshots: positions = reference + N(0, displacement^2)
    per coordinate, momenta N(0, momentum^2) (or Maxwell-Boltzmann at
    ``temperature``), total momentum removed, each with exact derivatives and
    energy (a damped system's dp/dt includes -gamma p/m; a driven system is
    refused: its dp/dt needs a time). No time series. By default every snapshot is for training
    (``test_fraction=0``); draw a test set with another seed, or pass a
    fraction for a seeded split by snapshot. Progress stage: "sample".
    """
    _check_system(system)
    port = port_of(system)
    if port is not None and port.forced:
        raise HGNError(f"{system.name or 'the system'} is driven ({port.describe()}): its dp/dt depends on the "
                       "time, which independent random snapshots do not have; make the data from time series "
                       "(generate, or simulate --dataset-out)")
    n = _whole("number of snapshots", n, 1)
    check_snapshot_memory(system, n)
    displacement = _amplitude("displacement", displacement)
    momentum = _amplitude("momentum", momentum)
    if temperature is not None:
        temperature = _amplitude("temperature", temperature)
    seed = _seed(seed)
    test_fraction = _fraction(test_fraction)
    ss_states, ss_split = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(ss_states)
    ff = ForceField(system)  # one force field: its neighbour list rebuilds as needed
    shape = (n, system.n, system.dim)
    q, p, dpdt, pot = np.empty(shape), np.empty(shape), np.empty(shape), np.empty(n)
    report(progress, "sample", 0.0)
    for s in range(n):
        if s % 16 == 0:
            check_cancel(cancel)
            report(progress, "sample", s / n)
        q[s], p[s] = initial_state(system, displacement, momentum, temperature, rng=rng)
        pot[s], dpdt[s] = ff.energy_forces(q[s])
    if not (np.all(np.isfinite(pot)) and np.all(np.isfinite(dpdt))):
        raise HGNError("some snapshots have infinite energy or forces (particles on top of each other): "
                       "use a smaller displacement")
    report(progress, "sample", 1.0)
    port = port_of(system)
    if port is not None:  # damping only (refused above when driven): dp/dt = F(q) - gamma p/m
        dpdt += port.terms(system.masses, system.dim).dpdt(0.0, p)
    dqdt = p / system.masses[:, None]
    energy = kinetic_energy(p, system.masses) + pot
    train, test = split_indices(n, test_fraction, np.random.default_rng(ss_split))
    meta = {"source": "random_snapshots", "split": "snapshot" if len(test) else "none",
            "spec": {"n": n, "displacement": displacement, "momentum": momentum, "seed": seed,
                     "test_fraction": test_fraction, "temperature": temperature}}
    return Dataset(system=system, q=q, p=p, dqdt=dqdt, dpdt=dpdt, energy=energy,
                   train=train, test=test, trajectories=[], meta=meta)
