"""``python -m core adapt`` (issue 14, docs/adapt.md): keep the hidden layers
of a fitted RF-HGN model (--model) or a basis file (--basis) and solve only
the output layer on K training snapshots of --data; prints the adapt time
and the test derivative error and writes the adapted model (--out). With
--basis-out it also writes the basis of --model (kind "basis")."""
from __future__ import annotations

import math
import sys
import warnings

from core.errors import HGNError


def register(subparsers) -> None:
    from core.cli.app import HelpFormatter

    p = subparsers.add_parser(
        "adapt", help="adapt a fitted model's (or a basis') features to new data from a few snapshots",
        description="Keep the sampled hidden layers of an RF-HGN model (--model) or of a basis file (--basis) "
                    "and solve only the output layer on the first K training snapshots of --data "
                    "(regularisation chosen by generalised cross-validation, docs/adapt.md). Prints the "
                    "adapt time and the test derivative MSE on the data's held-out snapshots.\n\n"
                    "  python -m core adapt --model M.npz --data D.npz --snapshots 10 --out M2.npz",
        formatter_class=HelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", metavar="M.npz", help="a fitted RF-HGN model file")
    src.add_argument("--basis", metavar="B.npz", help="a basis file (python -m core adapt --basis-out)")
    p.add_argument("--data", required=True, metavar="D.npz", help="the new system's dataset")
    p.add_argument("--snapshots", type=int, default=None, metavar="K",
                   help="training snapshots to use (default: all of the data's training snapshots)")
    p.add_argument("--seed", type=int, default=None,
                   help="draw the K snapshots at random with this seed (default: the first K)")
    p.add_argument("--regularisation", type=float, default=None,
                   help="a fixed relative regularisation instead of the rule's choice")
    p.add_argument("--rule", choices=("gcv", "cv"), default="gcv",
                   help="how the regularisation is chosen: generalised cross-validation (default) or "
                        "cross-validation over whole snapshots (5 folds; docs/adapt.md)")
    p.add_argument("--prior", choices=("auto", "source", "none"), default="auto",
                   help="what the regularisation pulls the output layer toward: the --model's own output layer "
                        "(source), zero (none), or per block whichever the rule scores better (auto, default). "
                        "With --basis: source = the output layer the basis file keeps (the pooled fit's; refused "
                        "for files without one), auto = none (measured no better, docs/adapt.md)")
    p.add_argument("--time-series", action="store_true",
                   help="adapt from time series without derivatives: --data is a trajectory file or a dataset with "
                        "time series; K consecutive snapshots from the start of the first (training) trajectory, "
                        "derivatives by 4th-order central differences (K + 4 frames)")
    p.add_argument("--out", metavar="M2.npz", help="where to write the adapted model")
    p.add_argument("--basis-out", metavar="B.npz", help="also write the basis (hidden layers) used")
    p.set_defaults(func=run_adapt)

    b = subparsers.add_parser(
        "basis", help="sample a feature basis from the pooled snapshots of several datasets",
        description="Sample the hidden layers of an RF-HGN from the training snapshots of one or more datasets "
                    "(other potentials, parameters or sizes; one dimension) pooled as in one fit, and save them "
                    "as a basis file for 'adapt --basis' (docs/adapt.md).\n\n"
                    "  python -m core basis --data harmonic.npz morse.npz --out B.npz",
        formatter_class=HelpFormatter)
    b.add_argument("--data", required=True, nargs="+", metavar="D.npz", help="the datasets to pool")
    b.add_argument("--seed", type=int, default=0, help="the sampling seed (default 0)")
    b.add_argument("--out", required=True, metavar="B.npz", help="where to write the basis")
    b.set_defaults(func=run_basis)


def run_adapt(args) -> int:
    from core.cli.model import _check_out, _fmt, _load_dataset
    from core.learning import metrics
    from core.learning.rfhgn import FittedModel
    from core.learning.rfhgn.adapt import adapt, adapt_series
    from core.learning.rfhgn.basis import load_basis, save_basis

    if args.out is None and args.basis_out is None:
        raise HGNError("nothing to write: give --out for the adapted model (and/or --basis-out)")
    for name, v in (("--out", args.out), ("--basis-out", args.basis_out)):
        if v is not None:
            _check_out(v, name)
    if args.regularisation is not None and not (math.isfinite(args.regularisation) and args.regularisation >= 0):
        raise HGNError(f"--regularisation must be a number >= 0, got {args.regularisation}")
    if args.model is not None:
        src = FittedModel.load(args.model)
        src.info.setdefault("file", str(args.model))
    else:
        src = load_basis(args.basis)
        src.source.setdefault("basis_file", str(args.basis))
    if args.snapshots is not None and args.snapshots < 1:
        raise HGNError(f"--snapshots must be a whole number >= 1, got {args.snapshots}")
    if args.time_series:
        if args.seed is not None:
            raise HGNError("--seed draws snapshots at random; with --time-series the snapshots are consecutive frames")
        ds, trajs = _series(args.data)
    else:
        ds = _load_dataset(args.data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if args.time_series:
            model = adapt_series(src, trajs, k=args.snapshots, regularisation=args.regularisation, rule=args.rule,
                                 prior=args.prior)
        else:
            model = adapt(src, ds, k=args.snapshots, seed=args.seed, regularisation=args.regularisation,
                          rule=args.rule, prior=args.prior)
    for w in caught:
        print("warning: " + " ".join(str(w.message).split()), file=sys.stderr)
    a = model.info["adapt"]
    print(f"{model.train_system!r}")
    series = a.get("series")
    where = f" ({series['frames']} frames, order-{series['order']} differences)" if series else ""
    print(f"adapted {model.network.L} features to {a['k']} snapshots{where} in {a['adapt_time'] * 1e3:.2f} ms "
          f"(regularisation {', '.join(f'{k} {v:.1e}' for k, v in a['regularisation'].items())}, {a['rule']}; "
          f"prior {', '.join(f'{k} {v}' for k, v in a['prior_blocks'].items())})")
    print(f"train derivative MSE: {_fmt(model.info['train_mse'])}")
    mse = metrics.derivative_mse
    if "port" in model.info:
        from core.learning.rfhgn.port import identified_port, port_derivative_mse as mse

        port = identified_port(model.info["port"])
        if len(port.drives) <= 3:
            print(f"identified: {port.describe()}")
        else:  # one drive per node: the range of the amplitudes, phases and frequencies
            amp = [d.amplitude for d in port.drives]
            ph = [d.phase for d in port.drives]
            w = sorted({round(d.frequency, 12) for d in port.drives})
            damping = port.describe().split(";")[0]
            print(f"identified: {damping}; {len(port.drives)} driven nodes, amplitude {min(amp):g}..{max(amp):g}, "
                  f"phase {min(ph):g}..{max(ph):g}, w {', '.join(f'{x:g}' for x in w)}")
    if ds is None:
        print("test derivative MSE: n/a (a trajectory file holds no held-out snapshots)")
    elif len(ds.test):
        print(f"test derivative MSE: {_fmt(mse(model, ds))} on {len(ds.test)} held-out snapshots")
    else:
        print("test derivative MSE: n/a (the data hold no test snapshots)")
    if args.out is not None:
        print(f"wrote {model.save(args.out)}")
    if args.basis_out is not None:
        print(f"wrote {save_basis(src, args.basis_out)}")
    return 0


def _series(path):
    """(dataset or None, training time series) of a --time-series data file: a trajectory file's runs, or a
    dataset's training trajectories."""
    from core.cli.model import _training_series
    from core.files.kinds import load_any

    kind, value = load_any(path)
    if kind == "trajectory":
        return None, value
    if kind == "dataset":
        return value, _training_series(value, path)
    raise HGNError(f"{path} holds a {kind}; --time-series needs a trajectory file or a dataset with time series")


def run_basis(args) -> int:
    from core.cli.model import _check_out, _load_dataset
    from core.learning.rfhgn import RFConfig
    from core.learning.rfhgn.basis import sample_basis, save_basis

    _check_out(args.out)
    datasets = [_load_dataset(d) for d in args.data]
    basis = sample_basis(datasets, RFConfig(seed=args.seed), names=[str(d) for d in args.data])
    print(f"sampled {basis.network.L} features from {sum(basis.source['n_snapshots'])} snapshots of "
          f"{len(datasets)} datasets in {basis.source['sample_time']:.3f} s")
    print(f"wrote {save_basis(basis, args.out)}")
    return 0
