"""``python -m core train | rollout | evaluate``: fit an RF-HGN, roll it out on
a system of any size against ground truth, and measure it.

* ``train``: a dataset file (``--data``, e.g. from ``python -m core simulate
  --dataset-out``) or a system (built from options, or ``--system FILE``)
  from which random snapshots are drawn; RF-HGN settings from options (every
  :class:`core.learning.rfhgn.RFConfig` field via ``--set NAME=VALUE``, the common ones
  as their own options); writes the model (``--out``) and prints the fit time
  and the derivative MSE on the held-out snapshots.
* ``rollout``: a model and a system (``--system FILE`` or build options,
  optionally ``--scale K`` times larger along every axis, for zero-shot
  tests); draws a seeded random start, integrates ground truth
  (``core.physics.simulate``) and the learned rollout (``core.learning.rollout``) from it, and
  writes both to one trajectory file (ground truth first, then the prediction;
  true energies along both, the learned H in the prediction's meta). Prints
  the position MSE, Zerr, Herr and energy drift at the end.
* ``evaluate``: a model and a dataset; prints the derivative MSE on the test
  (and training) snapshots and, when the dataset carries time series, rolls
  the model out from the start of its held-out trajectories and reports the
  rollout measures of ``core.learning.metrics`` (geometric mean of Zerr over rollouts,
  Herr, drift); ``--json FILE`` writes them.

User errors exit with code 2 and one line ``error: ...`` (see ``core.cli.app``).
Defaults come from where they live in core (RFConfig, DataSpec, the rollout
module); the few that are the command line's own are the constants below.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from core.cli.progress import StageBar
from core.errors import HGNError
from core.container import atomic_write
from core.jobs import available_cores

#: training snapshots drawn when train gets a system instead of a dataset
DEFAULT_TRAIN_SNAPSHOTS = 500
#: held-out snapshots drawn beside them
DEFAULT_TEST_SNAPSHOTS = 200
#: rollout defaults (time step, steps, saved frames)
DEFAULT_ROLLOUT_DT = 0.01
DEFAULT_ROLLOUT_STEPS = 1000
DEFAULT_ROLLOUT_SAVE_EVERY = 10
#: evaluate: at most this many held-out trajectories are rolled out
DEFAULT_EVAL_ROLLOUTS = 5

#: RFConfig fields that have their own option (the rest go through --set)
_RF_OPTIONS = ("encoding", "sampler", "node_width", "edge_width", "message_width", "regularisation", "device",
               "threads")


# ----------------------------------------------------------------------
# shared option groups
# ----------------------------------------------------------------------
def _add_system_options(parser, what: str) -> None:
    """The system options of ``python -m core simulate``, under a title saying what the system is for."""
    from core.cli.simulate import add_system_options

    add_system_options(parser, f"system {what} (build one, or load one with --system)")


def _add_state_options(parser, what: str) -> None:
    from core.physics.datagen import DEFAULT_DISPLACEMENT, DEFAULT_MOMENTUM, DEFAULT_SEED

    g = parser.add_argument_group(what)
    g.add_argument("--displacement", type=float, default=DEFAULT_DISPLACEMENT,
                   help="standard deviation of the random displacement of every coordinate, length units "
                        "(default: %(default)s)")
    g.add_argument("--momentum", type=float, default=DEFAULT_MOMENTUM,
                   help="standard deviation of every momentum component (default: %(default)s)")
    g.add_argument("--temperature", type=float, default=None,
                   help="draw Maxwell-Boltzmann momenta at this k_B T instead of --momentum (default: not used)")
    g.add_argument("--seed", type=int, default=DEFAULT_SEED,
                   help="random seed of the drawn states (default: %(default)s)")


def _add_rollout_options(parser) -> None:
    from core.learning.rollout import FIXED_POINT_MAX_ITER, FIXED_POINT_TOL, INTEGRATORS, ROLLOUT_THREADS

    g = parser.add_argument_group("learned rollout (Stoermer-Verlet)")
    g.add_argument("--integrator", choices=INTEGRATORS, default="auto",
                   help="explicit Stoermer-Verlet (separable models), implicit generalised leapfrog (any "
                        "model), or auto: explicit when the model is separable (default: %(default)s)")
    g.add_argument("--tol", type=float, default=FIXED_POINT_TOL,
                   help="implicit integrator: relative tolerance of the fixed-point iterations "
                        "(default: %(default)s)")
    g.add_argument("--max-iter", type=int, default=FIXED_POINT_MAX_ITER,
                   help="implicit integrator: iterations per stage before the step counts as not "
                        "converged (an error) (default: %(default)s)")
    g.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where the roll-out runs: cpu, or cuda (an NVIDIA GPU; an error when this machine has "
                        "none) (default: %(default)s)")
    g.add_argument("--precision", choices=("float64", "float32"), default="float64",
                   help="arithmetic of the roll-out; float32 only for separable (invariant) models, measured "
                        "<= 2.4e-4 in position after 1000 steps against float64 (default: %(default)s)")
    g.add_argument("--threads", type=int, default=ROLLOUT_THREADS,
                   help="torch threads of the roll-out, 0 = every core (one was measured faster on a shared "
                        "2-core machine) (default: %(default)s)")


def _quiet(p) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars, only the results")


def register(subparsers) -> None:
    """Add the ``train``, ``rollout`` and ``evaluate`` subcommands."""
    from core.cli.app import HelpFormatter
    from core.learning.rfhgn import RFConfig
    from core.learning.hgn.device import DEVICES
    from core.learning.rfhgn.config import ENCODINGS, SAMPLERS

    cfg = RFConfig()
    # -- train ---------------------------------------------------------------
    p = subparsers.add_parser(
        "train", help="fit an RF-HGN to a dataset (or to random snapshots of a system) and save it",
        formatter_class=HelpFormatter,
        description="Fit a random-feature Hamiltonian graph network: sample the hidden layers (SWIM or ELM), "
                    "solve the output layer by linear least squares on Hamilton's equations, and save the "
                    "model. Prints the fit time (wall clock, data in memory to usable model) and the mean "
                    "squared error of the predicted time derivatives on the held-out snapshots.\n\n"
                    "Data: either --data FILE (a dataset, e.g. from 'simulate --dataset-out'), or a system "
                    "(build options or --system FILE) from which --snapshots training and --test-snapshots "
                    "held-out snapshots are drawn independently around its reference positions.",
        epilog="examples:\n"
               "  python -m core train --kind cubic --n 3 --out lattice.model.npz\n"
               "  python -m core train --data lj-data.npz --sampler elm --encoding frame --out lj.model.npz\n"
               "  python -m core train --data data.npz --time-series --set seed=3 --out ts.model.npz")
    p.add_argument("--out", metavar="FILE", required=True, help="write the fitted model here (.npz)")
    p.add_argument("--data", metavar="FILE", help="a dataset file to fit (its train split; its test split is "
                                                  "held out); the system options are then not allowed. A chunked "
                                                  "dataset folder ('simulate --chunked DIR') is read one chunk at "
                                                  "a time, on --workers/--scheduler when given (docs/cluster.md)")
    _add_system_options(p, "to draw snapshots from when there is no --data")
    sg = p.add_argument_group("random snapshots (without --data)")
    sg.add_argument("--snapshots", type=int, default=DEFAULT_TRAIN_SNAPSHOTS,
                    help="training snapshots (default: %(default)s)")
    sg.add_argument("--test-snapshots", type=int, default=DEFAULT_TEST_SNAPSHOTS,
                    help="held-out snapshots for the test error (default: %(default)s)")
    _add_state_options(p, "random snapshots: displacements, momenta, seed (without --data)")
    rg = p.add_argument_group("RF-HGN settings (defaults from core.learning.rfhgn.RFConfig)")
    rg.add_argument("--encoding", choices=ENCODINGS, default=None,
                    help="invariant (pair distances and kinetic terms; separable, extrapolates to any size) or "
                         f"frame (the paper's centre-of-mass frame; not separable) (default: {cfg.encoding})")
    rg.add_argument("--sampler", choices=SAMPLERS, default=None,
                    help=f"how hidden weights are drawn: swim (pairs of data points), elm (Gaussian), adaptive "
                         f"(SWIM, fit, resample where the function changes most, refit) (default: {cfg.sampler})")
    rg.add_argument("--node-width", type=int, default=None, help=f"node encoder width (default: {cfg.node_width})")
    rg.add_argument("--edge-width", type=int, default=None, help=f"edge encoder width (default: {cfg.edge_width})")
    rg.add_argument("--message-width", type=int, default=None,
                    help=f"message layer width (default: {cfg.message_width})")
    rg.add_argument("--regularisation", type=float, default=None,
                    help=f"ridge parameter lambda, relative to unit-norm columns (default: {cfg.regularisation:g})")
    rg.add_argument("--device", choices=DEVICES, default=None,
                    help=f"where the fit runs: cpu, or cuda (an NVIDIA GPU; an error when this machine has "
                         f"none) (default: {cfg.device})")
    rg.add_argument("--threads", type=int, default=None,
                    help=f"torch intra-op threads of the fit, 0 = torch's setting (default: {cfg.threads})")
    rg.add_argument("--set", action="append", default=None, metavar="NAME=VALUE", dest="settings",
                    help="any other RFConfig setting, repeat for several (values are read as JSON, else as "
                         "text); settings: " + ", ".join(f"{k}={v!r}" for k, v in cfg.to_dict().items()))
    rg.add_argument("--config", metavar="FILE", help="read RF-HGN settings from a JSON file (options above win)")
    rg.add_argument("--time-series", action="store_true",
                    help="fit from the dataset's time series alone (symplectic-Euler residuals, no "
                         "derivatives; needs --data with trajectories)")
    rg.add_argument("--port", action=argparse.BooleanOptionalAction, default=None,
                    help="identify damping and forcing in the same solve (core.learning.rfhgn.port; "
                         "docs/port_hamiltonian.md): the terms of the data's own damping and drives, or a "
                         "uniform damping when the data carry none; --no-port fits the Hamiltonian alone "
                         "(default: when the data's system is damped or driven)")
    rg.add_argument("--method", default="rf", metavar="METHOD",
                    help="rf (the random-feature fit in one solve), or a gradient-trained baseline of the same "
                         "network by a torch optimizer (core.learning.baselines: adam, lbfgs, sgd, ...; with "
                         "damping and forcing learned beside it on port data, core.learning.baselines.port); "
                         "the network options above apply, --epochs and --time-budget bound the training "
                         "(default: %(default)s)")
    rg.add_argument("--epochs", type=int, default=None,
                    help="gradient-trained baselines: the most epochs (default: BaselineConfig's)")
    rg.add_argument("--time-budget", type=float, default=None,
                    help="gradient-trained baselines: the most seconds of training, 0 = no limit "
                         "(default: BaselineConfig's)")
    rg.add_argument("--no-correction", action="store_true",
                    help="with --time-series: keep the modified Hamiltonian, without the first-order "
                         "correction back to the true one")
    _quiet(p)
    from core.cli.sweep import add_engine_options

    add_engine_options(p, "this process")
    p.set_defaults(func=run_train)

    # -- rollout -------------------------------------------------------------
    p = subparsers.add_parser(
        "rollout", help="roll a fitted model out on a system of any size, beside ground truth",
        formatter_class=HelpFormatter,
        description="Draw a seeded random start on a system (of any size: the model is extensive), integrate "
                    "ground truth and the learned Hamiltonian from it with Stoermer-Verlet, and write both to "
                    "one trajectory file (ground truth first, then the prediction). Energies in the file are "
                    "the true energies along each path; the learned H along the prediction is kept in its "
                    "meta (learned_energy). Prints position MSE, Zerr, Herr and energy drift.",
        epilog="examples:\n"
               "  python -m core rollout --model lattice.model.npz --kind cubic --n 2 --scale 8 --out zero-shot.npz\n"
               "  python -m core rollout --model m.npz --system big.npz --dt 0.005 --steps 2000 --out r.npz")
    p.add_argument("--model", metavar="FILE", required=True, help="a fitted model (.npz from 'train')")
    p.add_argument("--out", metavar="FILE", required=True,
                   help="write ground truth and prediction here (.npz; .xyz/.extxyz writes two extended XYZ "
                        "files, NAME_truth and NAME_prediction)")
    _add_system_options(p, "to roll out on (default: the system the model was fitted on)")
    p.add_argument("--scale", type=int, default=1,
                   help="make the system this many times larger along every axis (lattices and molecular "
                        "systems made by a builder) (default: %(default)s)")
    _add_state_options(p, "initial state (random, seeded)")
    g = p.add_argument_group("integration")
    g.add_argument("--dt", type=float, default=DEFAULT_ROLLOUT_DT, help="time step (default: %(default)s)")
    g.add_argument("--steps", type=int, default=DEFAULT_ROLLOUT_STEPS, help="time steps (default: %(default)s)")
    g.add_argument("--save-every", type=int, default=DEFAULT_ROLLOUT_SAVE_EVERY,
                   help="keep every this many steps as a frame (default: %(default)s)")
    g.add_argument("--no-truth", action="store_true",
                   help="skip the ground-truth run (the file then holds the prediction only, and no errors "
                        "against the truth are printed)")
    _add_rollout_options(p)
    p.add_argument("--json", metavar="FILE", help="also write the measures as JSON")
    _quiet(p)
    p.set_defaults(func=run_rollout)

    # -- evaluate ------------------------------------------------------------
    p = subparsers.add_parser(
        "evaluate", help="measure a fitted model on a dataset (derivative error, rollout errors)",
        formatter_class=HelpFormatter,
        description="Measure a model on a dataset (docs/method.md section 8): the mean squared error of the "
                    "predicted time derivatives on the held-out (and on the training) snapshots, and, when the "
                    "dataset carries time series, rollouts from the start of its held-out trajectories "
                    "compared with those trajectories: position MSE, Zerr(t) = |q_hat - q| / (|q_hat| + |q|) "
                    "as a geometric mean over rollouts, Herr(t) of the true energies, and energy drift.",
        epilog="example:\n  python -m core evaluate --model m.npz --data data.npz --json measures.json")
    p.add_argument("--model", metavar="FILE", required=True, help="a fitted model (.npz from 'train')")
    p.add_argument("--data", metavar="FILE", required=True, help="a dataset (.npz)")
    p.add_argument("--rollouts", type=int, default=DEFAULT_EVAL_ROLLOUTS,
                   help="roll out at most this many held-out trajectories of the dataset (those of the training "
                        "side when none is held out); 0 = none (default: %(default)s)")
    _add_rollout_options(p)
    p.add_argument("--json", metavar="FILE", help="also write the measures as JSON")
    _quiet(p)
    p.set_defaults(func=run_evaluate)


# ----------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------
def _check_out(path, what: str = "--out", suffixes=(".npz",)) -> None:
    """HGNError before any work when ``path`` cannot be written or has no
    fitting name ending (core.validate.check_writable)."""
    from core.validate import check_writable

    check_writable(path, what, suffixes)


def _whole(name: str, v: int, lo: int) -> int:
    from core.validate import whole

    return whole(name, v, lo)


def _check_state_options(args) -> None:
    """The drawn states' settings, before any work."""
    from core import validate

    validate.amplitude("--displacement", args.displacement)
    validate.amplitude("--momentum", args.momentum)
    if args.temperature is not None:
        validate.amplitude("--temperature", args.temperature)
    validate.whole("--seed", args.seed, 0, at_least=">=")


def _given_system_options(args) -> list[str]:
    from core.cli.simulate import given_system_options

    return given_system_options(args)


def _system(args):
    from core.cli.simulate import system_from_args

    return system_from_args(args)


def _parse_settings(items) -> dict:
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise HGNError(f"--set expects NAME=VALUE, got {item!r}")
        try:
            out[name] = json.loads(value)
        except json.JSONDecodeError:
            out[name] = value.strip()
    return out


def config_from_args(args):
    """RFConfig from --config FILE, then --set, then the named options."""
    from core.learning.rfhgn import RFConfig

    d = RFConfig().to_dict()
    if args.config:
        try:
            loaded = json.loads(Path(args.config).read_text())
        except FileNotFoundError:
            raise HGNError(f"settings file not found: {args.config}") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise HGNError(f"cannot read settings from {args.config}: {exc}") from None
        if not isinstance(loaded, dict):
            raise HGNError(f"{args.config} must hold a JSON object of RF-HGN settings")
        d.update(loaded)
    d.update(_parse_settings(args.settings))
    for name in _RF_OPTIONS:
        v = getattr(args, name)
        if v is not None:
            d[name] = v
    config = RFConfig.from_dict(d)
    if config.device != "cpu":
        from core.learning.hgn.device import resolve_device

        resolve_device(config.device)  # the clear error before any work when CUDA is absent
    return config


def load_model(path):
    """A model file of any kind (RF-HGN, gradient-trained baseline, RF-HNN)."""
    from core.learning.baselines import load_model as load_any_model

    return load_any_model(path)


def baseline_config_from_args(args, config):
    """The BaselineConfig of ``--method`` (an optimizer) with the network settings of ``config`` (RFConfig)."""
    from core.learning.baselines import BaselineConfig

    changes = {"optimizer": args.method, "device": config.device}
    if args.epochs is not None:
        changes["max_epochs"] = args.epochs
    if args.time_budget is not None:
        changes["time_budget"] = args.time_budget
    return BaselineConfig.from_rf(config, **changes)


def _load_dataset(path):
    from core.files.io import load_dataset

    return load_dataset(path)


def _write_json(path, doc: dict) -> Path:
    """Write ``doc`` as JSON atomically (temp file, then rename)."""
    path = Path(path)
    _check_out(path, "--json", (".json",))
    with atomic_write(path, "w") as fh:
        fh.write(json.dumps(doc, indent=2, allow_nan=True))
    return path


def _print_warnings(caught) -> None:
    """Warnings recorded during a job, as one ``warning: ...`` line each on stderr."""
    for w in caught:
        print("warning: " + " ".join(str(w.message).split()), file=sys.stderr)


def _fmt(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3e}"


# ----------------------------------------------------------------------
# train
# ----------------------------------------------------------------------
def _training_series(ds, source) -> list:
    """The dataset's training time series (its trajectories, less those it
    holds out for testing); HGNError when it has none."""
    trajs = ds.trajectories
    if not trajs:
        raise HGNError(f"{source} holds no time series (trajectories); fit its snapshots without "
                       "--time-series, or make the dataset with 'simulate --dataset-out'")
    keep = ds.meta.get("train_trajectories")
    if keep is not None and len(keep) and len(trajs) > 1:
        trajs = [trajs[int(k)] for k in keep]
    return trajs


def training_data(args):
    """The dataset the arguments describe: --data FILE, or random snapshots
    (train and test) drawn from the system the options describe."""
    if args.data is not None:
        given = _given_system_options(args)
        if given:
            raise HGNError(f"--data brings its own system; drop {', '.join('--' + o for o in given)}")
        return _load_dataset(args.data)
    from core.physics.datagen import random_snapshots

    n_train = _whole("--snapshots", args.snapshots, 1)
    n_test = _whole("--test-snapshots", args.test_snapshots, 0)
    _check_state_options(args)
    system = _system(args)
    total = n_train + n_test
    from core.physics.datagen import check_snapshot_memory

    check_snapshot_memory(system, total)
    return random_snapshots(system, total, args.displacement, args.momentum, seed=args.seed,
                            test_fraction=n_test / total, temperature=args.temperature)


def run_train(args) -> int:
    from core.learning import metrics
    from core.learning.rfhgn import fit, fit_time_series

    _check_out(args.out)
    config = config_from_args(args)
    config.check_memory()
    if args.no_correction and not args.time_series:
        raise HGNError("--no-correction applies to --time-series fits only")
    if args.time_series and args.data is None:
        raise HGNError("--time-series needs --data with trajectories (time series)")
    from core.cli.sweep import check_engine_without_chunks, run_train_chunked
    from core.files.chunked import is_chunked

    if args.data is not None and is_chunked(args.data):  # a chunked dataset folder (core.cli.sweep)
        given = _given_system_options(args)
        if given:
            raise HGNError(f"--data brings its own system; drop {', '.join('--' + o for o in given)}")
        return run_train_chunked(args, config)
    check_engine_without_chunks(args)
    ds = training_data(args)
    from core.physics.port import port_of

    port = args.port if args.port is not None else port_of(ds.system) is not None
    if port and args.no_correction:
        raise HGNError("--no-correction applies to the Hamiltonian-only time-series fit; a port fit from time "
                       "series uses 4th-order central differences (docs/port_hamiltonian.md)")
    baseline = args.method != "rf"
    if baseline:
        bconfig = baseline_config_from_args(args, config)
        if args.time_series:
            raise HGNError(f"--time-series applies to the RF fit only (--method rf), not to --method {args.method}")
    bar = StageBar(args.quiet)
    try:
        if baseline:
            ds.check_trainable(where=f"the training snapshots of {args.data}" if args.data else
                               "the drawn training snapshots")
            if port:
                from core.learning.baselines.port import fit_port_baseline
                from core.learning.rfhgn.port import PortSpec

                spec = PortSpec.from_system(ds.system)
                model = fit_port_baseline(ds, bconfig, spec if spec.damping != "none" or spec.frequencies or
                                          spec.field else PortSpec("uniform"), progress=bar)
            else:
                from core.learning.baselines import fit as fit_baseline

                model = fit_baseline(ds, bconfig, progress=bar)
        elif port:
            from core.learning.rfhgn.port import PortSpec, fit_port, fit_port_time_series

            spec = PortSpec.from_system(ds.system)
            if spec.damping == "none" and not spec.frequencies and not spec.field:
                spec = PortSpec("uniform")
            if args.time_series:
                model = fit_port_time_series(_training_series(ds, args.data), config, spec, progress=bar)
            else:
                ds.check_trainable(where=f"the training snapshots of {args.data}" if args.data else
                                   "the drawn training snapshots")
                model = fit_port(ds, config, spec, progress=bar)
        elif args.time_series:
            trajs = _training_series(ds, args.data)
            from core.physics.trajectory import static_series

            if static_series(trajs):
                raise HGNError(f"the time series of {args.data} are degenerate: no particle moves in any frame "
                               "(zero momentum, fixed positions), so there is no motion to learn")
            model = fit_time_series(trajs, config, progress=bar, correct=not args.no_correction)
        else:
            ds.check_trainable(where=f"the training snapshots of {args.data}" if args.data else
                               "the drawn training snapshots")
            model = fit(ds, config, progress=bar)
    finally:
        bar.close()
    model.save(args.out)
    fit_time = float(model.info.get("fit_time", float("nan")))
    mse = metrics.derivative_mse
    if port:
        from core.learning.rfhgn.port import port_derivative_mse as mse
    test_mse = mse(model, ds) if len(ds.test) else None
    train_idx = ds.train if len(ds.train) else np.arange(ds.n_snapshots)
    train_mse = mse(model, ds, train_idx)
    print(f"{ds.system!r}")
    if baseline:
        print(f"model: {config.encoding} encoding, trained by {model.name} for {model.info['epochs']} epochs "
              f"({model.info['stop_reason']}; {len(ds.train)} training snapshots)"
              + (", damping and forcing learned beside it" if port else ""))
    else:
        print(f"model: {config.encoding} encoding, {config.sampler.upper()} sampling "
              f"({'time series' if args.time_series else f'{len(ds.train)} training snapshots'})"
              + (", damping and forcing identified in the same solve" if port else ""))
    print(f"fit time: {fit_time:.4f} s ({available_cores()} cores)")
    print(f"train derivative MSE: {_fmt(train_mse)}")
    if test_mse is None:
        print("test derivative MSE: n/a (the data hold no test snapshots)")
    else:
        print(f"test derivative MSE: {_fmt(test_mse)} on {len(ds.test)} held-out snapshots")
    if port:
        from core.learning.rfhgn.port import identified_port

        print(f"{'learned' if baseline else 'identified'}: {identified_port(model.info['port']).describe()}")
    print(f"wrote {args.out}")
    return 0


# ----------------------------------------------------------------------
# rollout
# ----------------------------------------------------------------------
def rollout_system(args, model=None):
    """The system to roll out on, scaled by --scale: from the options or
    --system, or (when neither is given) the system the model was fitted on."""
    from core.physics.builders import rebuild_scaled

    scale = _whole("--scale", args.scale, 1)
    train_system = getattr(model, "train_system", None)
    if args.system is None and not _given_system_options(args) and train_system is not None:
        system = train_system
    else:
        system = _system(args)
    return rebuild_scaled(system, scale) if scale > 1 else system


def _check_model_fits_system(model, system) -> None:
    dim = getattr(model, "dim", None)
    if dim and int(dim) != system.dim:
        raise HGNError(f"the model was fitted on a {int(dim)}D system and cannot roll out a "
                       f"{system.dim}D one")


def _check_device(device: str) -> None:
    """HGNError before any work when the roll-out's device does not exist here."""
    from core.learning.hgn.device import resolve_device

    resolve_device(device)


def _port_rollout_setup(model, system):
    """For a model that identified damping and forcing (``core.learning.rfhgn.port``): (the identified port
    on ``system``, the system the truth runs on). On the training system the identified port is used as it
    is; on another (a larger lattice, --scale) it is carried to the corresponding particles
    (``rfhgn.port.carried_port``), and so is the training system's true port when ``system`` has none
    (core.physics.port.transfer_port). (None, system) for other models."""
    info = getattr(model, "info", None)
    if not isinstance(info, dict) or not isinstance(info.get("port"), dict):
        return None, system
    from core.learning.rfhgn.port import carried_port
    from core.physics.port import transfer_port

    port = carried_port(model, system)
    train = model.train_system
    if system.port is None and train.port is not None and not (
            train.n == system.n and np.array_equal(train.positions, system.positions)):
        system = system.copy(port=transfer_port(train.port, train, system))
    return port, system


def run_rollout(args) -> int:
    from core.learning import metrics
    from core.physics.initial import initial_state
    from core.files.io import is_xyz, save_trajectories
    from core.learning.rollout import RolloutExtrapolationWarning, rollout
    from core.physics.simulate import simulate

    _check_out(args.out, "--out", (".npz", ".xyz", ".extxyz"))
    if args.json:
        _check_out(args.json, "--json", (".json",))
    from core.physics.integrators import check_run_settings
    from core.learning.rollout import check_rollout_settings

    check_run_settings(args.dt, args.steps, args.save_every)  # fail before any work
    check_rollout_settings(args.integrator, args.tol, args.max_iter)
    _check_state_options(args)
    _check_device(args.device)
    model = load_model(args.model)
    system = rollout_system(args, model)
    _check_model_fits_system(model, system)
    from core.physics.integrators import check_run_memory, check_run_time

    check_run_memory("rollout (ground truth and prediction)", system.n, system.dim, args.steps, args.save_every,
                     runs=1 if args.no_truth else 2)
    check_run_time("rollout (ground truth and prediction)", system.n, args.steps, 1 if args.no_truth else 2)
    pred_port, system = _port_rollout_setup(model, system)
    q0, p0 = initial_state(system, args.displacement, args.momentum, args.temperature, seed=args.seed)
    bar = StageBar(args.quiet)
    try:
        truth = None if args.no_truth else simulate(system, q0, p0, args.dt, args.steps, args.save_every,
                                                    progress=bar)
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RolloutExtrapolationWarning)
            # a port model rolls out with its identified damping and forcing (pred_port, carried to system)
            pred = rollout(model, system, q0, p0, args.dt, args.steps, args.save_every, progress=bar,
                           integrator=args.integrator, tol=args.tol, max_iter=args.max_iter,
                           device=args.device, precision=args.precision, threads=args.threads, port=pred_port)
        wall = time.perf_counter() - t0
    finally:
        bar.close()
    _print_warnings(caught)
    diverged = pred.diverged
    trajs = [pred] if truth is None else [truth, pred]
    if is_xyz(args.out):
        from core.files.xyz import write_trajectory

        out = Path(args.out)
        written = [write_trajectory(out.with_name(f"{out.stem}_{tag}{out.suffix}"), tr)
                   for tag, tr in zip(["truth", "prediction"][-len(trajs):], trajs)]
    else:
        written = [save_trajectories(args.out, trajs)]
    doc = {"model": str(args.model), "system": repr(system), "n_particles": system.n, "dt": args.dt,
           "steps": args.steps, "save_every": args.save_every, "integrator": pred.meta["integrator"],
           "rollout_seconds": wall, "seconds_per_step": pred.meta["seconds_per_step"],
           "max_abs_drift_prediction": float(np.max(np.abs(metrics.energy_drift(pred)))),
           **{k: pred.meta[k] for k in ("pair_distance_range", "training_pair_distance_range",
                                         "particle_kinetic_energy_max", "training_particle_kinetic_energy_max",
                                         "outside_training_range", "training_range_left") if k in pred.meta}}
    if diverged is not None:
        doc["diverged"] = diverged
        print(f"{system!r}")
        for w in written:
            print(f"wrote {w} (the prediction is marked diverged: {diverged['frames']} frames before it)")
        if args.json:
            print(f"wrote {_write_json(args.json, doc)}")
        from core.cli.app import EXIT_DIVERGED, error_line

        error_line(diverged["reason"])
        return EXIT_DIVERGED
    if truth is not None:
        m = metrics.rollout_measures(truth, pred)
        doc.update({k: v for k, v in m.items() if not isinstance(v, list)})
        doc["series"] = {k: v for k, v in m.items() if isinstance(v, list)}
    print(f"{system!r}")
    print(f"rollout: {args.steps} steps of dt {args.dt:g} with {pred.meta['integrator']} in {wall:.3f} s "
          f"({1e3 * pred.meta['seconds_per_step']:.3f} ms per step)")
    if truth is not None:
        print(f"final position MSE: {_fmt(doc['final_position_mse'])}   final Zerr: {_fmt(doc['final_zerr'])}   "
              f"final Herr: {_fmt(doc['final_herr'])}")
        print(f"max |energy drift|: prediction {_fmt(doc['max_abs_drift_prediction'])}, "
              f"truth {_fmt(doc['max_abs_drift_truth'])}")
    else:
        print(f"max |energy drift| of the prediction: {_fmt(doc['max_abs_drift_prediction'])}")
    for w in written:
        print(f"wrote {w}")
    if args.json:
        print(f"wrote {_write_json(args.json, doc)}")
    return 0


# ----------------------------------------------------------------------
# evaluate
# ----------------------------------------------------------------------
def evaluate(model, ds, rollouts: int = DEFAULT_EVAL_ROLLOUTS, progress=None, **rollout_kw) -> dict:
    """The measures of a model on a dataset, as a JSON-able dict (what the
    evaluate command prints and writes)."""
    from core.learning import metrics
    from core.learning.rollout import rollout

    out = {"n_snapshots": ds.n_snapshots, "n_train": int(len(ds.train)), "n_test": int(len(ds.test))}
    port_model = _port_rollout_setup(model, ds.system)[0] is not None  # identified damping and forcing
    mse = metrics.derivative_mse
    if port_model:
        from core.learning.rfhgn.port import port_derivative_mse as mse
    out["test_derivative_mse"] = mse(model, ds) if len(ds.test) else None
    out["train_derivative_mse"] = mse(model, ds, ds.train) if len(ds.train) else None
    trajs = ds.trajectories
    chosen = []
    if rollouts > 0 and trajs:
        held = ds.meta.get("test_trajectories")
        idx = [int(k) for k in held] if held is not None and len(held) else list(range(len(trajs)))
        chosen = idx[:rollouts]
        out["rollouts_from"] = "held-out trajectories" if held is not None and len(held) else "all trajectories"
    if chosen:
        per, zs, hs, mses, diverged = [], [], [], [], []
        for k in chosen:
            truth = trajs[k]
            steps = (truth.n_frames - 1) * truth.save_every
            # a port model rolls out with its identified damping and forcing (carried to the system)
            port = _port_rollout_setup(model, truth.system)[0] if port_model else None
            pred = rollout(model, truth.system, truth.q[0], truth.p[0], truth.dt, steps, truth.save_every,
                           progress=progress, learned_energy=False, t0=float(truth.t[0]), port=port, **rollout_kw)
            if pred.diverged is not None:  # no measures of a path that blew up; said in the result
                diverged.append({"trajectory": k, **pred.diverged})
                continue
            m = metrics.rollout_measures(truth, pred)
            per.append({"trajectory": k, **{a: b for a, b in m.items() if not isinstance(b, list)},
                        **({"outside_training_range": pred.meta["outside_training_range"]}
                           if "outside_training_range" in pred.meta else {})})
            zs.append(m["zerr"])
            hs.append(m["herr"])
            mses.append(m["position_mse"])
        if diverged:
            out["diverged"] = diverged
    if chosen and per:
        zg = metrics.geometric_mean(zs)
        hg = metrics.geometric_mean(hs)
        out["rollouts"] = {
            "n": len(per), "t": trajs[per[0]["trajectory"]].t.tolist(),
            "zerr_geometric_mean": zg.tolist(), "herr_geometric_mean": hg.tolist(),
            "position_mse_mean": np.mean(np.asarray(mses), axis=0).tolist(),
            "final_zerr_geometric_mean": float(zg[-1]), "final_herr_geometric_mean": float(hg[-1]),
            "final_position_mse_mean": float(np.mean([m[-1] for m in mses])),
            "max_abs_drift_prediction": float(max(p["max_abs_drift_prediction"] for p in per)),
            "per_rollout": per,
        }
    return out


def run_evaluate(args) -> int:
    from core.learning.rollout import RolloutExtrapolationWarning, model_name

    if args.json:
        _check_out(args.json, "--json", (".json",))
    if args.rollouts < 0:
        raise HGNError(f"--rollouts must be >= 0, got {args.rollouts}")
    from core.learning.rollout import check_rollout_settings

    check_rollout_settings(args.integrator, args.tol, args.max_iter)
    _check_device(args.device)
    model = load_model(args.model)
    ds = _load_dataset(args.data)
    _check_model_fits_system(model, ds.system)
    bar = StageBar(args.quiet)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RolloutExtrapolationWarning)
            res = evaluate(model, ds, args.rollouts, progress=bar, integrator=args.integrator, tol=args.tol,
                           max_iter=args.max_iter, device=args.device, precision=args.precision,
                           threads=args.threads)
    finally:
        bar.close()
    _print_warnings(caught)
    res = {"model": str(args.model), "model_name": model_name(model), "data": str(args.data),
           "system": repr(ds.system), **res}
    print(f"{ds.system!r}")
    print(f"model: {res['model_name']}")
    if res["test_derivative_mse"] is None:
        print("test derivative MSE: n/a (the dataset holds no test snapshots)")
    else:
        print(f"test derivative MSE: {_fmt(res['test_derivative_mse'])} on {res['n_test']} held-out snapshots")
    print(f"train derivative MSE: {_fmt(res['train_derivative_mse'])} on {res['n_train']} snapshots")
    r = res.get("rollouts")
    if r:
        print(f"rollouts ({r['n']}, {res['rollouts_from']}, t = 0..{r['t'][-1]:g}):")
        print(f"  final Zerr (geometric mean): {_fmt(r['final_zerr_geometric_mean'])}")
        print(f"  final Herr (geometric mean): {_fmt(r['final_herr_geometric_mean'])}")
        print(f"  final position MSE (mean):   {_fmt(r['final_position_mse_mean'])}")
        print(f"  max |energy drift| of predictions: {_fmt(r['max_abs_drift_prediction'])}")
    elif args.rollouts and not res.get("diverged"):
        print("rollouts: none (the dataset holds no time series)")
    if args.json:
        print(f"wrote {_write_json(args.json, res)}")
    if res.get("diverged"):
        from core.cli.app import EXIT_DIVERGED, error_line

        d = res["diverged"]
        error_line(f"{len(d)} of the roll-outs diverged (left out of the measures); the first, of held-out "
                   f"trajectory {d[0]['trajectory']}: {d[0]['reason']}")
        return EXIT_DIVERGED
    return 0
