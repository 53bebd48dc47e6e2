"""``python -m core sweep`` and ``train --data DIR [--workers N | --scheduler ADDRESS]`` (docs/cluster.md).

``sweep`` runs a grid (or a random draw from it) of fit settings and
systems (:mod:`core.cluster.sweep`): one task per point on a Dask
LocalCluster (``--workers``) or an existing cluster (``--scheduler``), or
one by one in this process when neither is given; each result is appended
to a journal beside ``--out`` as it finishes, and ``--out`` (JSON) and the
CSV beside it are written when the sweep ends; a rerun skips the points
already there (or in the journal of a killed sweep).

``train --data DIR`` fits a chunked dataset (``simulate --chunked``) with
:func:`core.cluster.fit.distributed_fit`: in this process, one chunk at a
time, unless ``--workers``/``--scheduler`` say where the map runs.

Dask is imported only when these commands run (``core.cluster`` imports it).
"""
from __future__ import annotations

from core.cli.progress import StageBar
from core.errors import HGNError

DEFAULT_OUT = "sweep.json"


def add_engine_options(parser, single: str) -> None:
    """--workers [N] and --scheduler ADDRESS (read back by :func:`client_from_args`)."""
    g = parser.add_argument_group("engine (Dask; docs/cluster.md)")
    g.add_argument("--workers", nargs="?", type=int, const=0, default=None, metavar="N",
                   help="run on a Dask LocalCluster of N worker processes on this machine (one thread each; "
                        f"--workers alone: one per core) (default: {single})")
    g.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run on an existing Dask cluster: the scheduler's address (tcp://host:8786) or its "
                        "scheduler file; its workers need this project installed and, for --data DIR, the "
                        "folder at the same path")


def check_engine_args(args) -> None:
    """HGNError for contradicting or bad --workers/--scheduler (before any work)."""
    if args.workers is not None and args.scheduler is not None:
        raise HGNError("give either --workers N (a cluster on this machine) or --scheduler ADDRESS, not both")
    if args.workers is not None and args.workers < 0:
        raise HGNError(f"--workers must be a whole number >= 1, got {args.workers}")


def client_from_args(args):
    """A Client for --workers/--scheduler, or None (single process)."""
    check_engine_args(args)
    if args.workers is None and args.scheduler is None:
        return None
    from core.cluster.engine import connect

    return connect(workers=args.workers or None, scheduler=args.scheduler)


def close_client(client) -> None:
    if client is not None:
        from core.cluster.engine import close

        close(client)


# ----------------------------------------------------------------------
def register(subparsers) -> None:
    from core.cli.app import HelpFormatter

    p = subparsers.add_parser(
        "sweep", help="fit over a grid of settings and systems (one task per point, Dask), results to JSON + CSV",
        formatter_class=HelpFormatter,
        description="Run a grid (or --random N points drawn from it) of RF-HGN fit settings and systems. Each "
                    "point builds its system, simulates its dataset, fits, and measures the test error, a short "
                    "roll-out against ground truth (position MSE, energy drift), the times and the peak memory. "
                    "Each point is appended to a journal beside --out as it finishes; --out (JSON) and the CSV "
                    "beside it are written when the sweep ends (also on Ctrl+C). Running the same command again "
                    "skips the points already there or in the journal of a killed sweep (restartable). A worker lost "
                    "mid-sweep has its points rerun.\n\n"
                    "List options take comma-separated values; --seeds also takes ranges (0-3). With --random N "
                    "a numeric option (or --set AXIS=...) may instead give a range lo:hi to draw from: "
                    "log-uniform for scale-like settings (regularisation, swim_scale, layer widths, batch and "
                    "sample sizes, dt, displacement, momentum), uniform for the others, whole numbers for "
                    "whole-number settings; lo:hi:log or lo:hi:uniform says which (docs/cluster.md).",
        epilog="examples:\n"
               "  python -m core sweep --kind cubic --n 3 --node-width 16,32,64 --reg 1e-12,1e-8 "
               "--sampler swim,elm --seeds 0-3 --workers 2 --out sweep.json\n"
               "  python -m core sweep --n 2,3,4 --range 0.05,0.1,0.2 --scheduler tcp://10.0.0.5:8786 "
               "--out sizes.json\n"
               "  python -m core sweep --set fit.edge_width=16,32,64 --set data.trajectories=5,20 --random 4\n"
               "  python -m core sweep --reg 1e-12:1e-6 --set fit.swim_scale=0.05:0.5 --node-width 8:64 "
               "--random 20 --random-seed 1")
    g = p.add_argument_group("the grid (each option a list of values; every combination is a point)")
    g.add_argument("--kind", default=None, help="system kinds: chain, square, triangular, cubic, molecular "
                                                "(default: cubic)")
    g.add_argument("--n", default=None, help="system sizes (particles per side of a lattice) (default: 3)")
    g.add_argument("--potential", default=None, help="pair potentials (default: the builder's)")
    g.add_argument("--node-width", default=None, help="node encoder widths (default: RFConfig's)")
    g.add_argument("--edge-width", default=None, help="edge encoder widths (default: RFConfig's)")
    g.add_argument("--message-width", default=None, help="message layer widths (default: RFConfig's)")
    g.add_argument("--reg", default=None, help="regularisations (default: RFConfig's)")
    g.add_argument("--sampler", default=None, help="samplers: swim, elm, adaptive (default: RFConfig's)")
    g.add_argument("--seeds", default=None, help="fit seeds: 0-3 or 0,5,9 (default: 0)")
    g.add_argument("--range", default=None,
                   help="training range: displacement standard deviations of the data (default: 0.1)")
    g.add_argument("--trajectories", default=None, help="trajectories of each point's data (default: 10)")
    g.add_argument("--steps", default=None, help="steps of each trajectory (default: 100)")
    g.add_argument("--rollout-steps", default=None, help="steps of the roll-out check (default: 200)")
    g.add_argument("--set", action="append", default=None, metavar="AXIS=V1,V2", dest="axes",
                   help="any other axis: system.*, data.*, fit.* (an RFConfig setting) or rollout.*, e.g. "
                        "fit.edge_width=16,32; repeat for several")
    g.add_argument("--random", type=int, default=None, metavar="N",
                   help="instead of the whole grid, N points drawn from it (seeded by --random-seed): one of "
                        "each option's values, or from its range lo:hi (lo:hi:log, lo:hi:uniform)")
    g.add_argument("--random-seed", type=int, default=0, help="seed of --random (default: %(default)s)")
    o = p.add_argument_group("output")
    o.add_argument("--out", default=DEFAULT_OUT, metavar="FILE.json",
                   help="results (JSON; the CSV beside it); points already there are not recomputed "
                        "(default: %(default)s)")
    o.add_argument("--rerun-failed", action="store_true", help="recompute the points recorded as failed")
    o.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")
    add_engine_options(p, "one point after another in this process")
    p.set_defaults(func=run_sweep_command)


def _values(option: str, text: str, kind) -> list:
    items = [x.strip() for x in str(text).split(",")]
    if not items or any(not x for x in items):
        raise HGNError(f"{option} expects values separated by commas, got {text!r}")
    out = []
    for x in items:
        if kind is int and "-" in x[1:]:
            a, _, b = x.partition("-") if not x.startswith("-") else ("", "", "")
            try:
                lo, hi = int(a), int(b)
            except ValueError:
                raise HGNError(f"{option}: {x!r} is not a whole number or a range like 0-3") from None
            if hi < lo:
                raise HGNError(f"{option}: the range {x!r} is empty")
            out += list(range(lo, hi + 1))
            continue
        try:
            out.append(kind(x))
        except ValueError:
            what = {int: "a whole number", float: "a number"}.get(kind, "a value")
            raise HGNError(f"{option}: {x!r} is not {what}") from None
    return out


def _json_value(x: str):
    import json

    try:
        return json.loads(x)
    except ValueError:
        return x


def _axis_values(option: str, name: str, text: str, kind):
    """The values of an axis option: a list, or (``lo:hi[:log|uniform]``) a checked Range for --random."""
    from core.cluster.sweep import is_range_text, parse_range

    if not is_range_text(text):
        return _values(option, text, kind)
    if "," in text:
        raise HGNError(f"{option}: give values separated by commas or one range lo:hi, not both (got {text!r})")
    return parse_range(name, text, label=option)


def axes_from_args(args) -> dict:
    """{axis: [values] or Range} from the grid options, in the order of the options (then --set)."""
    axes = {}
    for option, name, kind in (("--kind", "kind", str), ("--n", "n", int), ("--potential", "potential", str),
                               ("--node-width", "node_width", int), ("--edge-width", "edge_width", int),
                               ("--message-width", "message_width", int), ("--reg", "reg", float),
                               ("--sampler", "sampler", str), ("--seeds", "seed", int),
                               ("--range", "range", float), ("--trajectories", "trajectories", int),
                               ("--steps", "steps", int), ("--rollout-steps", "rollout.steps", int)):
        text = getattr(args, option[2:].replace("-", "_"))
        if text is not None:
            axes[name] = _axis_values(option, name, text, kind)
    for item in args.axes or []:
        name, sep, values = item.partition("=")
        if not sep or not name.strip():
            raise HGNError(f"--set expects AXIS=V1,V2, got {item!r}")
        name, label = name.strip(), f"--set {name.strip()}"
        values = _axis_values(label, name, values, str)
        axes[name] = [_json_value(v) for v in values] if isinstance(values, list) else values
    return axes


def run_sweep_command(args) -> int:
    from core.cluster.sweep import Range, grid, random_points, run_sweep

    axes = axes_from_args(args)
    if args.random is not None:
        if args.random < 1:
            raise HGNError(f"--random must be a whole number >= 1, got {args.random}")
        points = random_points({k: v if isinstance(v, Range) else list(v) for k, v in axes.items()},
                               args.random, args.random_seed)
    else:
        ranged = [k for k, v in axes.items() if isinstance(v, Range)]
        if ranged:
            raise HGNError(f"{_option_of(ranged[0])}: a range lo:hi is drawn from by --random N; for a grid list "
                           "the values (comma-separated)")
        points = grid(axes)
    from core.cluster.sweep import SweepFile, point_key

    done = SweepFile(args.out)
    todo = [p for p in points if not done.done(point_key(p), args.rerun_failed)]
    check_engine_args(args)
    client = client_from_args(args) if todo else None  # nothing left to compute: no cluster to start
    bar = StageBar(args.quiet)
    try:
        res = run_sweep(points, args.out, client, progress=bar)
    finally:
        bar.close()
        close_client(client)
    if not args.quiet:
        from core.cluster.sweep import load_results

        where = "this process" if client is None else (f"scheduler {args.scheduler}" if args.scheduler else
                                                       "a LocalCluster")
        if not todo:
            where = "nothing to compute"
        print(f"{res.points} points: {res.computed} computed ({res.failed} failed), {res.skipped} already in "
              f"{args.out}; {res.seconds:.1f} s" + (f" on {where}" if todo else f" ({where})"))
        recs = [r for r in load_results(args.out) if r["key"] in set(res.keys) and r["status"] == "ok"]
        recs.sort(key=lambda r: r["result"]["test_mse"])
        for r in recs[:5]:
            s = r["settings"]
            fitted = ", ".join(f"{k}={v}" for k, v in s["fit"].items()) or "defaults"
            x = r["result"]
            print(f"  {r['key']}  {s['system']['kind']} n={s['system']['n']}  {fitted}: test MSE "
                  f"{x['test_mse']:.3e}, roll-out MSE {_num(x['rollout_final_mse'])}, fit {x['fit_s']:.3f} s")
        print(f"wrote {res.path} and {res.path.with_suffix('.csv')}")
    return 0


def _option_of(name: str) -> str:
    """The command-line option that sets axis ``name``."""
    return {"kind": "--kind", "n": "--n", "potential": "--potential", "node_width": "--node-width",
            "edge_width": "--edge-width", "message_width": "--message-width", "reg": "--reg",
            "sampler": "--sampler", "seed": "--seeds", "range": "--range", "trajectories": "--trajectories",
            "steps": "--steps", "rollout.steps": "--rollout-steps"}.get(name, f"--set {name}")


def _num(x) -> str:
    return "diverged" if x is None else f"{x:.3e}"


# ----------------------------------------------------------------------
def run_train_chunked(args, config) -> int:
    """``train --data DIR``: fit a chunked dataset (in this process, or on --workers / --scheduler)."""
    from core.cluster.fit import distributed_fit
    from core.files.chunked import open_chunked
    from core.jobs import available_cores
    from core.learning.metrics import derivative_mse

    refused = [o for o, given in (("--time-series", args.time_series), ("--port", args.port),
                                  ("--no-correction", args.no_correction),
                                  (f"--method {args.method}", args.method != "rf")) if given]
    if refused:
        raise HGNError(f"a chunked dataset is fitted by the RF fit of its snapshots; drop {refused[0]}")
    src = open_chunked(args.data)
    client = client_from_args(args)
    bar = StageBar(args.quiet)
    try:
        model = distributed_fit(src, config, client, progress=bar)
    finally:
        bar.close()
        close_client(client)
    model.save(args.out)
    # the test error, one chunk at a time: the mean over every test coordinate (chunks weighted by their counts)
    sse, count = 0.0, 0
    for ds in src.chunks():
        if len(ds.test):
            sse += derivative_mse(model, ds, ds.test) * len(ds.test)
            count += len(ds.test)
    info = model.info["distributed"]
    print(f"{src.system!r}")
    where = "in this process" if info["workers"] == 0 else f"on {info['workers']} Dask workers"
    print(f"model: {config.encoding} encoding, {config.sampler.upper()} sampling ({src.n_train} training snapshots "
          f"in {src.n_chunks} chunks, assembled {where})")
    print(f"fit time: {model.info['fit_time']:.4f} s ({available_cores()} cores here)")
    print(f"train derivative MSE: {model.info['train_mse']:.3e}")
    if count:
        print(f"test derivative MSE: {sse / count:.3e} on {count} held-out snapshots")
    else:
        print("test derivative MSE: n/a (the data hold no test snapshots)")
    print(f"wrote {args.out}")
    return 0


def check_engine_without_chunks(args) -> None:
    """--workers/--scheduler with a plain dataset or random snapshots: refused (they fit chunked data)."""
    if getattr(args, "workers", None) is not None or getattr(args, "scheduler", None) is not None:
        raise HGNError("--workers/--scheduler fit a chunked dataset (--data DIR from 'simulate --chunked'); a "
                       "dataset file or random snapshots are fitted in this process")
