"""``python -m core simulate``: build (or load) a system, draw initial
conditions, integrate ground truth and write the trajectories and, on request,
a dataset for fitting.

Reproducibility: trajectory ``k`` (from 0) starts from
``core.physics.initial.initial_state(system, displacement, momentum, temperature,
seed=seed + k)`` and is integrated by ``core.physics.simulate`` (velocity Verlet), so
``--seed S --trajectories 1`` gives bit for bit what ``core.physics.simulate.simulate``
gives for that start. With ``--dataset-out`` every saved frame of every run
becomes a snapshot with exact derivatives (dq/dt = p/m, dp/dt = the
integrator's forces) and energy, split by trajectory when there are several
(by snapshot otherwise) with ``core.physics.datagen.split_indices``.

Defaults come from where they live in core: run and data settings from
:class:`core.physics.datagen.DataSpec`, builder settings from the builders'
signatures; only the system sizes (:data:`DEFAULT_SIZES`) are the command
line's own.
"""
from __future__ import annotations

import argparse
import inspect
from pathlib import Path

import numpy as np

from core.physics import builders
from core.errors import HGNError
from core.physics.potentials import POTENTIALS

#: system size per kind when --n/--m/--l are not given (m and l default to n)
DEFAULT_SIZES = {"chain": 8, "square": 4, "triangular": 4, "cubic": 3, "molecular": 125}
DEFAULT_KIND = "chain"
DEFAULT_TRAJECTORIES = 1
DEFAULT_XYZ_SYMBOL = "X"

#: which build options each kind takes (the rest are refused, not ignored)
_KIND_OPTIONS = {
    "chain": {"n", "spacing", "dim", "mass", "potential", "param"},
    "square": {"n", "m", "spacing", "mass", "potential", "param"},
    "triangular": {"n", "m", "spacing", "mass", "potential", "param"},
    "cubic": {"n", "m", "l", "spacing", "mass", "potential", "param"},
    "molecular": {"n", "density", "dim", "mass", "potential", "param", "cutoff", "periodic", "jitter"},
}
for _options in _KIND_OPTIONS.values():  # a potential from a file or a random draw: for every kind
    _options.update(("potential_file", "potential_seed"))
_BUILD_OPTIONS = ("kind", "n", "m", "l", "spacing", "mass", "potential", "param", "cutoff", "density",
                  "periodic", "dim", "jitter", "potential_file", "potential_seed")
#: --potential names that draw a random potential (core.physics.splines.grf_potential)
GRF_NAMES = ("grf", "random")


def _builder_default(kind: str, name: str):
    return inspect.signature(builders.BUILDERS[kind]).parameters[name].default


#: default --displacement of systems with a cutoff (molecular): 0.1 at density 0.8 brings Lennard-Jones pairs to
#: r ~ 0.78, whose forces (~1000) blow the default dt 0.01 up at step 9; 0.02 runs (measured: relative drift 3.4e-4
#: over the default 100 steps of the 125-particle liquid)
MOLECULAR_DISPLACEMENT = 0.02


def _spec_defaults():
    from core.physics.datagen import DataSpec

    return DataSpec()


def _potential_help() -> str:
    parts = []
    for name, cls in sorted(POTENTIALS.items()):
        inst = cls()
        params = ", ".join(f"{k}={v:g}" for k, v in inst.params().items())
        parts.append(f"{name} ({params})")
    return "; ".join(parts)


def register(subparsers) -> None:
    """Add the ``simulate`` subcommand."""
    from core.cli.app import HelpFormatter

    spec = _spec_defaults()
    p = subparsers.add_parser(
        "simulate", help="simulate a particle system and write its trajectory (and a dataset)",
        formatter_class=HelpFormatter,
        description="Build a system (or load one with --system), draw random initial conditions, integrate "
                    "Hamilton's equations with velocity Verlet in float64, and write the trajectories "
                    "(.npz: HGN Studio format, lossless; .xyz/.extxyz: extended XYZ for OVITO, ASE, ...) "
                    "and optionally a dataset of snapshots with exact derivatives for fitting.\n\n"
                    "All quantities are in reduced units: lengths in units of the spacing or sigma, "
                    "masses in mass units, energies in units of the potential's k, D or epsilon, "
                    "time in units of sqrt(mass length^2 / energy).",
        epilog="examples:\n"
               "  python -m core simulate --kind chain --n 16 --steps 2000 --out chain.npz\n"
               "  python -m core simulate --kind square --n 5 --m 5 --potential morse -P D=2 -P a=1.5 --out sq.xyz\n"
               "  python -m core simulate --kind molecular --n 125 --density 0.8 --temperature 0.5 "
               "--dt 0.005 --out lj.npz --dataset-out lj-data.npz\n"
               "  python -m core simulate --system my-system.npz --trajectories 10 --dataset-out data.npz")
    add_system_options(p)

    ini = p.add_argument_group("initial conditions (random, seeded)")
    ini.add_argument("--displacement", type=float, default=None,
                     help="standard deviation of the random displacement of every coordinate from the "
                          f"reference positions, length units (default: {spec.displacement:g}; "
                          f"{MOLECULAR_DISPLACEMENT:g} for systems with a cutoff, whose close pairs "
                          "of a 0.1 displacement make Lennard-Jones blow up at dt 0.01)")
    ini.add_argument("--momentum", type=float, default=spec.momentum,
                     help="standard deviation of every random momentum component, momentum units "
                          "(default: %(default)s)")
    ini.add_argument("--temperature", type=float, default=spec.temperature,
                     help="draw Maxwell-Boltzmann momenta at this k_B T (energy units) instead of --momentum "
                          "(default: not used)")
    ini.add_argument("--seed", type=int, default=spec.seed,
                     help="random seed; trajectory k starts from seed + k (default: %(default)s)")

    run = p.add_argument_group("integration (velocity Verlet, or a reference integrator)")
    run.add_argument("--integrator", choices=("verlet", "rk4", "dop853"), default="verlet",
                     help="verlet: velocity Verlet (symplectic, 2nd order); rk4: classical Runge-Kutta with the "
                          "fixed step --dt (4th order); dop853: SciPy's adaptive DOP853 at rtol 1e-12, atol 1e-12, "
                          "frames written at the same times as verlet's (--dt x --save-every) "
                          "(default: %(default)s)")
    run.add_argument("--dt", type=float, default=spec.dt, help="time step, time units (default: %(default)s)")
    run.add_argument("--steps", type=int, default=spec.steps, help="number of time steps (default: %(default)s)")
    run.add_argument("--save-every", type=int, default=spec.save_every,
                     help="keep every this many steps as a frame (frame 0 is the start) (default: %(default)s)")
    run.add_argument("--trajectories", type=int, default=DEFAULT_TRAJECTORIES,
                     help="number of independent runs from different random starts (default: %(default)s)")

    add_port_options(p)

    out = p.add_argument_group("output")
    out.add_argument("--out", metavar="FILE",
                     help="write the trajectories here: .xyz or .extxyz for extended XYZ (one file per trajectory, "
                          "numbered when there are several), anything else the HGN Studio .npz format")
    out.add_argument("--dataset-out", metavar="FILE",
                     help="also write a dataset for fitting: every saved frame as a snapshot with exact "
                          "derivatives and energy, and the runs as time series (.npz)")
    out.add_argument("--chunked", metavar="DIR",
                     help="write the snapshots (with exact derivatives and energies) as a chunked dataset into the "
                          "new folder DIR, holding at most one chunk in memory (for data larger than memory; "
                          "core/files/FORMATS.md); instead of --out/--dataset-out")
    out.add_argument("--chunk-size", type=int, default=None, metavar="N",
                     help="snapshots per chunk of --chunked (default: 100000)")
    out.add_argument("--test-fraction", type=float, default=spec.test_fraction,
                     help="share of the dataset held out for testing: whole trajectories when there are "
                          "several, snapshots otherwise (default: %(default)s)")
    out.add_argument("--symbol", default=DEFAULT_XYZ_SYMBOL,
                     help="chemical symbol written for every particle in extended XYZ files (default: %(default)s)")
    out.add_argument("--forces", action="store_true",
                     help="also write the force on every particle in extended XYZ files")
    out.add_argument("--wrap", action="store_true",
                     help="fold positions into the periodic box in extended XYZ files (for viewers such as "
                          "OVITO); the .npz files always keep the unwrapped, continuous positions")
    out.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")
    from core.cli.sweep import add_engine_options

    add_engine_options(p, "this process; with --chunked and several --trajectories, --workers/--scheduler "
                          "simulate one trajectory per task")
    p.set_defaults(func=run_simulate)


# ----------------------------------------------------------------------

def add_system_options(parser, title: str = "system (build one, or load one with --system)") -> None:
    """The options that describe a system (built, or loaded with --system);
    shared by every command that takes one, read back by :func:`system_from_args`."""
    sysg = parser.add_argument_group(title)
    sysg.add_argument("--system", metavar="FILE",
                      help="take the system from FILE (a system, trajectory or dataset .npz, or an .xyz written "
                           "by HGN Studio) instead of building one; the build options below are then not allowed")
    sysg.add_argument("--kind", choices=sorted(builders.BUILDERS), default=None,
                      help=f"what to build: a chain (2D or 3D), a square or triangular lattice (2D), a cubic "
                           f"lattice (3D), or a molecular system whose pairs interact within a cutoff "
                           f"(default: {DEFAULT_KIND})")
    sysg.add_argument("--n", type=int, default=None,
                      help="particles in a chain or a molecular system; rows of a lattice (default: "
                           + ", ".join(f"{k} {v}" for k, v in DEFAULT_SIZES.items()) + ")")
    sysg.add_argument("--m", type=int, default=None, help="columns of a square, triangular or cubic lattice (default: "
                                                          "= n)")
    sysg.add_argument("--l", type=int, default=None, help="layers of a cubic lattice (default: = n)")
    sysg.add_argument("--spacing", type=float, default=None,
                      help=f"lattice spacing, length units (default: {_builder_default('chain', 'spacing')})")
    sysg.add_argument("--mass", type=float, default=None,
                      help=f"mass of every particle, mass units (default: {_builder_default('chain', 'mass')})")
    sysg.add_argument("--dim", type=int, choices=(2, 3), default=None,
                      help=f"dimension of a chain or molecular system (default: chain "
                           f"{_builder_default('chain', 'dim')}, molecular {_builder_default('molecular', 'dim')}; "
                           f"square and triangular lattices are 2D, cubic 3D)")
    sysg.add_argument("--potential", default=None,
                      help=f"pair potential V(r), one of {', '.join(sorted(POTENTIALS))}, or grf: a smooth "
                           f"bounded random potential drawn from a Gaussian random field with --potential-seed "
                           f"(-P length_scale=0.3 -P amplitude=1 -P r_lo=0.5 -P r_hi=2.5 -P knots=33) "
                           f"(default: lattices "
                           f"{_builder_default('chain', 'potential')}, molecular "
                           f"{_builder_default('molecular', 'potential')})")
    sysg.add_argument("-P", "--param", action="append", default=None, metavar="NAME=VALUE",
                      help="a parameter of the potential, repeat for several; parameters and their defaults: "
                           + _potential_help())
    sysg.add_argument("--potential-file", metavar="V.json", default=None,
                      help='a pair potential defined by data: a JSON file {"kind": "spline", "r": [...], '
                           '"V": [...], "slopes": [left, right]} (slopes optional, default [0, 0]): the clamped '
                           'cubic spline through (r_i, V_i), a repulsive wall below r_0, levelling off above the '
                           'last knot (see core/physics/splines.py); instead of --potential/-P')
    sysg.add_argument("--potential-seed", type=int, default=None, metavar="S",
                      help="seed of --potential grf (default: 0); the drawn knots are stored with the system")
    sysg.add_argument("--cutoff", type=float, default=None,
                      help=f"molecular only: pairs closer than this interact (V truncated and shifted), length "
                           f"units (default: {_builder_default('molecular', 'cutoff')})")
    sysg.add_argument("--density", type=float, default=None,
                      help=f"molecular only: particles per unit volume (area in 2D) "
                           f"(default: {_builder_default('molecular', 'density')})")
    sysg.add_argument("--periodic", action=argparse.BooleanOptionalAction, default=None,
                      help=f"molecular only: periodic box (minimum image) or a free block of particles "
                           f"(default: {'periodic' if _builder_default('molecular', 'periodic') else 'free'})")
    sysg.add_argument("--jitter", type=float, default=None,
                      help=f"molecular only: random displacement of the starting lattice sites, in lattice "
                           f"spacings, < 0.3, drawn with --seed (default: {_builder_default('molecular', 'jitter')})")


#: the damping and forcing options (dest names) of :func:`add_port_options`
PORT_OPTIONS = ("damping", "damping_nodes", "drive_nodes", "drive_amplitude", "drive_frequency", "drive_phase",
                "drive_direction", "field")


def add_port_options(parser) -> None:
    """Damping and forcing of the system (``core.physics.port``), read back by :func:`port_from_args`."""
    g = parser.add_argument_group(
        "damping and forcing (port-Hamiltonian: dp/dt = -dV/dq - gamma p/m + F(t); see docs/port_hamiltonian.md)")
    g.add_argument("--damping", type=float, default=None, metavar="G",
                   help="friction coefficient gamma >= 0 (force per velocity, mass/time) of every particle, or of "
                        "the --damping-nodes only (default: none)")
    g.add_argument("--damping-nodes", default=None, metavar="I,J,...",
                   help="damp only these particles (indices from 0, e.g. a boundary layer); needs --damping")
    g.add_argument("--drive-nodes", default=None, metavar="I,J,...",
                   help="drive these particles with the force A cos(W t + PHASE) along --drive-direction")
    g.add_argument("--drive-amplitude", type=float, default=None, metavar="A",
                   help="drive amplitude A >= 0, force units (needed with --drive-nodes)")
    g.add_argument("--drive-frequency", type=float, default=None, metavar="W",
                   help="drive angular frequency W > 0, radians per time unit (needed with --drive-nodes)")
    g.add_argument("--drive-phase", type=float, default=None, metavar="PHASE",
                   help="drive phase, radians (default: 0)")
    g.add_argument("--drive-direction", default=None, metavar="X,Y[,Z]",
                   help="drive direction, one component per axis, not all zero; only its direction counts "
                        "(default: the x axis)")
    g.add_argument("--field", default=None, metavar="GX,GY[,GZ]",
                   help="a constant field g (an acceleration, like gravity): every particle feels m g")


def _index_list(option: str, text: str) -> tuple[int, ...]:
    items = [x.strip() for x in str(text).split(",")]
    if not items or any(not x for x in items):
        raise HGNError(f"{option} expects particle indices separated by commas (e.g. 0,1,2), got {text!r}")
    out = []
    for x in items:
        try:
            out.append(int(x))
        except ValueError:
            raise HGNError(f"{option}: {x!r} is not a particle index (a whole number >= 0)") from None
    return tuple(out)


def _vector_arg(option: str, text: str, dim: int) -> tuple[float, ...]:
    import math

    items = [x.strip() for x in str(text).split(",")]
    try:
        v = tuple(float(x) for x in items)
    except ValueError:
        raise HGNError(f"{option} expects {dim} numbers separated by commas (one per axis), got {text!r}") from None
    if len(v) != dim:
        raise HGNError(f"{option} needs {dim} components (one per axis of this {dim}D system), got {len(v)}: "
                       f"{text!r}")
    if not all(math.isfinite(x) for x in v):
        raise HGNError(f"{option} must hold finite numbers, got {text!r}")
    return v


def given_port_options(args) -> list[str]:
    return [o for o in PORT_OPTIONS if getattr(args, o, None) is not None]


def port_from_args(args, system):
    """``system`` with the damping and forcing the options describe (they replace any the system carries,
    e.g. from --system FILE); ``system`` itself when none is given. HGNError naming the option for bad
    values (negative damping, a node that does not exist, a zero direction, ...)."""
    from core.physics.port import Drive, Port

    given = given_port_options(args)
    if not given:
        return system
    n, dim = system.n, system.dim

    def nodes(option, text):
        idx = _index_list(option, text)
        bad = [i for i in idx if not 0 <= i < n]
        if bad:
            raise HGNError(f"{option}: particle {bad[0]} does not exist (the system has {n} particles, numbered "
                           f"0..{n - 1})")
        if len(set(idx)) != len(idx):
            raise HGNError(f"{option}: particle {next(i for i in idx if idx.count(i) > 1)} is listed twice")
        return idx

    damping = 0.0
    if args.damping_nodes is not None and args.damping is None:
        raise HGNError("--damping-nodes says which particles --damping damps; give --damping G too")
    if args.damping is not None:
        try:
            g = Port(args.damping).damping
        except HGNError as exc:
            raise HGNError(f"--damping: {exc}") from None
        if args.damping_nodes is not None:
            per = np.zeros(n)
            per[list(nodes("--damping-nodes", args.damping_nodes))] = g
            damping = per
        else:
            damping = g
    drives = ()
    drive_opts = [o for o in given if o.startswith("drive_")]
    if drive_opts:
        if args.drive_nodes is None:
            raise HGNError(f"--{drive_opts[0].replace('_', '-')} describes a drive; say which particles it drives "
                           "with --drive-nodes I,J,...")
        missing = [f"--drive-{o}" for o in ("amplitude", "frequency") if getattr(args, f"drive_{o}") is None]
        if missing:
            raise HGNError(f"--drive-nodes needs {' and '.join(missing)}")
        direction = _vector_arg("--drive-direction", args.drive_direction, dim) \
            if args.drive_direction is not None else (1.0,) + (0.0,) * (dim - 1)
        driven = nodes("--drive-nodes", args.drive_nodes)
        try:
            drives = (Drive(driven, args.drive_amplitude, args.drive_frequency, direction,
                            0.0 if args.drive_phase is None else args.drive_phase),)
        except HGNError as exc:
            text = str(exc)
            word = next((w for w in ("amplitude", "frequency", "phase", "direction") if f"drive {w}" in text), None)
            raise HGNError(f"--drive-{word}: {text}" if word else text) from None
    field = _vector_arg("--field", args.field, dim) if args.field is not None else None
    return system.copy(port=Port(damping, drives, field))


def given_system_options(args) -> list[str]:
    """Names of the build options the user gave on the command line."""
    return [o for o in _BUILD_OPTIONS if getattr(args, o, None) is not None]


def _parse_params(items) -> dict[str, float]:
    params = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise HGNError(f"--param expects NAME=VALUE, got {item!r}")
        try:
            params[name] = float(value)
        except ValueError:
            raise HGNError(f"--param {name}: {value!r} is not a number") from None
    return params


def system_from_args(args):
    """The System the arguments describe (built, or loaded with --system)."""
    given = given_system_options(args)
    if args.system is not None:
        if given:
            raise HGNError(f"--system takes the whole system from the file; drop "
                           f"{', '.join('--' + o for o in given)}")
        from core.files.kinds import system_in

        return system_in(args.system)
    kind = args.kind or DEFAULT_KIND
    wrong = [o for o in given if o != "kind" and o not in _KIND_OPTIONS[kind]]
    if wrong:
        takes = ", ".join(k for k, opts in _KIND_OPTIONS.items() if wrong[0] in opts)
        raise HGNError(f"--{wrong[0]} does not apply to --kind {kind} (only to {takes})")
    n = args.n if args.n is not None else DEFAULT_SIZES[kind]
    m = args.m if args.m is not None else n
    l_ = args.l if args.l is not None else n
    kw = {}
    for name in ("spacing", "mass", "dim", "potential", "cutoff", "density", "periodic", "jitter"):
        v = getattr(args, name)
        if v is not None:
            kw[name] = v
    params = _parse_params(args.param)
    data_potential = potential_from_args(args, params)
    if data_potential is not None:
        kw["potential"] = data_potential
    elif params:
        kw["potential_params"] = params
    if kind == "molecular":
        kw["seed"] = args.seed
    sizes = {"chain": (n,), "square": (n, m), "triangular": (n, m), "cubic": (n, m, l_), "molecular": (n,)}[kind]
    try:
        return builders.BUILDERS[kind](*sizes, **kw)
    except TypeError as exc:  # an unexpected keyword: a bug in _KIND_OPTIONS, said plainly
        raise HGNError(f"{kind}: {exc}") from None


def potential_from_args(args, params: dict):
    """The potential of --potential-file or --potential grf (with --potential-seed and -P settings), or
    None when the potential is a built-in one named by --potential (with -P parameters)."""
    from core.physics import splines

    name = getattr(args, "potential", None)
    path = getattr(args, "potential_file", None)
    seed = getattr(args, "potential_seed", None)
    grf = isinstance(name, str) and name.strip().lower() in GRF_NAMES
    if seed is not None and not grf:
        raise HGNError("--potential-seed applies to --potential grf only")
    if path is not None:
        if name is not None or params:
            raise HGNError("--potential-file defines the whole potential; drop --potential and -P")
        return splines.read_potential_file(path)
    if grf:
        from core import validate

        seed = 0 if seed is None else validate.whole("--potential-seed", seed, 0, at_least=">=")
        return splines.grf_from_settings(seed, params)
    return None


class TqdmProgress:
    """A ``progress(stage, fraction)`` callback drawing one tqdm bar on stderr
    over ``runs`` consecutive runs of ``steps`` steps each."""

    def __init__(self, runs: int, steps: int, disable: bool | None = None, desc: str = "simulate",
                 unit: str = "step"):
        from tqdm import tqdm

        self.runs, self.steps = runs, max(steps, 1)
        self.run = 0
        self.bar = tqdm(total=runs * self.steps, unit=unit, desc=desc, disable=disable,
                        dynamic_ncols=True, leave=False)

    def for_run(self, k: int):
        self.run = k
        return self

    def __call__(self, stage: str, fraction: float) -> None:
        pos = int(round((self.run + fraction) * self.steps))
        if pos > self.bar.n:
            self.bar.update(pos - self.bar.n)

    def close(self) -> None:
        self.bar.close()


#: file name endings accepted for trajectories and datasets
TRAJECTORY_SUFFIXES = (".npz", ".xyz", ".extxyz")
DATASET_SUFFIXES = (".npz",)


def _check_folder(path, what: str = "output", suffixes=None) -> None:
    """HGNError before any work when ``path`` cannot be written (core.validate.check_writable)."""
    if path is None:
        return
    from core.validate import check_writable

    check_writable(path, what, suffixes)


def xyz_names(out: Path, count: int) -> list[Path]:
    """File names for ``count`` trajectories written as extended XYZ."""
    out = Path(out)
    if count == 1:
        return [out]
    width = len(str(count - 1))
    return [out.with_name(f"{out.stem}_{k:0{width}d}{out.suffix}") for k in range(count)]


def dataset_from_runs(system, runs, trajs, test_fraction: float, seed: int, spec: dict):
    """Every saved frame of every run as a snapshot (exact derivatives from the
    runs' saved forces), split by trajectory when there are several."""
    from core.physics.datagen import dataset_from_parts

    parts = [(r.q, r.p, r.forces, r.kinetic + r.potential, np.arange(r.q.shape[0]), r.t) for r in runs]
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    return dataset_from_parts(system, parts, test_fraction, rng, trajs,
                              {"source": "python -m core simulate", "spec": spec})


def _check_run_options(args) -> None:
    """The runs' settings of ``simulate`` and ``simulate --chunked``, before any work (HGNError naming the option)."""
    from core import validate
    from core.physics.integrators import check_run_settings

    validate.whole("--trajectories", args.trajectories, 1)
    validate.fraction("--test-fraction", args.test_fraction)
    validate.whole("--seed", args.seed, 0, at_least=">=")
    if args.displacement is not None:
        validate.amplitude("--displacement", args.displacement)
    validate.amplitude("--momentum", args.momentum)
    if args.temperature is not None:
        validate.amplitude("--temperature", args.temperature)
    check_run_settings(args.dt, args.steps, args.save_every)


def _default_displacement(args, system) -> None:
    """--displacement left out: the molecular default for a cutoff system, else the studio's default."""
    if args.displacement is None:
        args.displacement = MOLECULAR_DISPLACEMENT if system.cutoff is not None else _spec_defaults().displacement


def run_simulate(args) -> int:
    from core.physics.initial import initial_state
    from core.physics.port import port_of
    from core.files.io import is_xyz, save_dataset, save_trajectories
    from core.physics.simulate import run_system, to_trajectory

    if getattr(args, "chunked", None) is not None:
        return run_chunked(args)
    if getattr(args, "chunk_size", None) is not None:
        raise HGNError("--chunk-size sets the chunks of --chunked DIR; give --chunked too")
    if getattr(args, "workers", None) is not None or getattr(args, "scheduler", None) is not None:
        raise HGNError("--workers/--scheduler share out the trajectories of --chunked DIR; give --chunked too")
    if args.out is None and args.dataset_out is None:
        raise HGNError("say where to write the result: --out FILE and/or --dataset-out FILE (or --chunked DIR)")
    if args.dataset_out is not None and is_xyz(args.dataset_out):
        raise HGNError("--dataset-out writes the HGN Studio .npz format; give a .npz name")
    from core.physics.integrators import check_run_memory, check_run_time, run_bytes

    _check_run_options(args)
    _check_folder(args.out, "--out", TRAJECTORY_SUFFIXES)
    if args.out is not None and is_xyz(args.out):
        for name in xyz_names(args.out, args.trajectories):
            _check_folder(name)
    _check_folder(args.dataset_out, "--dataset-out", DATASET_SUFFIXES)
    system = port_from_args(args, system_from_args(args))
    _default_displacement(args, system)
    # every run is held until the end, with its forces when a dataset is written, and the dataset copies them
    # (q, p, dq/dt, dp/dt): all of it must fit before the first step (check_run_memory)
    with_data = args.dataset_out is not None
    dataset = 4 * run_bytes(system.n, system.dim, args.steps, args.save_every, 1) * args.trajectories \
        if with_data else 0.0
    check_run_memory("simulate", system.n, system.dim, args.steps, args.save_every, 3 if with_data else 2,
                     runs=args.trajectories, extra=dataset)
    check_run_time("simulate", system.n, args.steps, args.trajectories)
    bar = TqdmProgress(args.trajectories, args.steps, disable=True if args.quiet else None)
    runs, trajs = [], []
    try:
        for k in range(args.trajectories):
            q0, p0 = initial_state(system, args.displacement, args.momentum, args.temperature, seed=args.seed + k)
            run, ff = run_system(system, q0, p0, args.dt, args.steps, args.save_every,
                                 progress=bar.for_run(k), save_forces=args.dataset_out is not None,
                                 integrator=args.integrator)
            runs.append(run)
            trajs.append(to_trajectory(system, run, ff, integrator=args.integrator))
    finally:
        bar.close()

    written = []
    if args.out is not None:
        if is_xyz(args.out):
            from core.files.xyz import write_trajectory

            bar = TqdmProgress(len(trajs), trajs[0].n_frames, disable=True if args.quiet else None,
                               desc="export", unit="frame")
            try:
                for k, (name, tr) in enumerate(zip(xyz_names(args.out, len(trajs)), trajs)):
                    written.append(write_trajectory(name, tr, symbol=args.symbol, forces=args.forces,
                                                    wrap=args.wrap, progress=bar.for_run(k)))
            finally:
                bar.close()
        else:
            written.append(save_trajectories(args.out, trajs))
    if args.dataset_out is not None:
        spec = {"n_trajectories": args.trajectories, "steps": args.steps, "dt": args.dt,
                "save_every": args.save_every, "displacement": args.displacement, "momentum": args.momentum,
                "temperature": args.temperature, "seed": args.seed, "test_fraction": args.test_fraction,
                "integrator": args.integrator}
        ds = dataset_from_runs(system, runs, trajs, args.test_fraction, args.seed, spec)
        written.append(save_dataset(args.dataset_out, ds))
    if not args.quiet:
        drift = max(float(np.max(np.abs(tr.energy_drift()))) for tr in trajs)
        tr = trajs[0]
        print(f"{system!r}")
        what = "1 trajectory" if len(trajs) == 1 else f"{len(trajs)} trajectories"
        if port_of(system) is None:
            print(f"{what} of {tr.n_frames} frames, t = {tr.t[0]:g}..{tr.t[-1]:g} "
                  f"(dt {tr.dt:g}, every {tr.save_every} steps); max |relative energy drift| {drift:.3g}")
        else:  # the energy changes on purpose: the balance's error is the measure
            from core.physics.port import energy_balance

            res = max(float(np.max(np.abs(energy_balance(t)["residual"]))) for t in trajs)
            b = energy_balance(tr)
            print(f"{what} of {tr.n_frames} frames, t = {tr.t[0]:g}..{tr.t[-1]:g} "
                  f"(dt {tr.dt:g}, every {tr.save_every} steps); energy balance of the first: H - H(0) = "
                  f"{b['change'][-1]:.6g}, injected {b['injected'][-1]:.6g}, dissipated {b['dissipated'][-1]:.6g}; "
                  f"max |H - H(0) - (injected - dissipated)| {res:.3g}")
        for w in written:
            print(f"wrote {w}")
    return 0


#: snapshots per chunk of ``simulate --chunked`` when --chunk-size is not given
DEFAULT_CHUNK_SIZE = 100_000


def run_chunked(args) -> int:
    """``simulate --chunked DIR``: every saved frame of every run as a snapshot of a chunked dataset
    (core.files.chunked.write_simulated), at most one chunk in memory."""
    from core import validate
    from core.files.chunked import write_simulated
    from core.physics.integrators import check_run_memory, check_run_time

    if args.out is not None or args.dataset_out is not None:
        raise HGNError("--chunked writes the snapshots chunk by chunk; drop --out/--dataset-out (they hold every "
                       "frame in memory)")
    chunk = validate.whole("--chunk-size", DEFAULT_CHUNK_SIZE if args.chunk_size is None else args.chunk_size, 1)
    _check_run_options(args)
    system = port_from_args(args, system_from_args(args))
    _default_displacement(args, system)
    # one segment of chunk-size frames (q, p, forces) plus the chunk buffer (q, p, dq/dt, dp/dt) at a time
    check_run_memory("simulate --chunked", system.n, system.dim, chunk * args.save_every, args.save_every, 7)
    check_run_time("simulate", system.n, args.steps, args.trajectories)
    from core.cli.sweep import client_from_args, close_client

    client = client_from_args(args)
    bar = TqdmProgress(1, 1000, disable=True if args.quiet else None)
    try:
        folder = write_simulated(args.chunked, system, chunk, args.trajectories, args.steps, args.dt,
                                 args.save_every, args.displacement, args.momentum, args.temperature, args.seed,
                                 args.test_fraction, args.integrator, progress=bar, client=client)
    finally:
        bar.close()
        close_client(client)
    if not args.quiet:
        from core.files.chunked import open_chunked

        c = open_chunked(folder)
        print(f"{system!r}")
        print(f"{c.n_snapshots} snapshots in {c.n_chunks} chunks of up to {chunk} ({c.n_train} train, "
              f"{c.n_test} test, split by {c.manifest['split']})")
        print(f"wrote {folder}")
    return 0
