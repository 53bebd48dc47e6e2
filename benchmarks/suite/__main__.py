"""Command line of the benchmark suite; see ``benchmarks/suite/__init__.py``."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # ``python benchmarks/suite``
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    __package__ = "benchmarks.suite"

from .common import RESULTS, TABLES, Log, Mode, machine, write_json  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.suite",
                                 description="RF-HGN against gradient-trained baselines: tables, JSON, Markdown, PNG.")
    ap.add_argument("--short", action="store_true", help="the CI mode: small sizes and budgets, under 2 minutes")
    ap.add_argument("--only", default="", help=f"comma-separated tables to run (default all): {', '.join(TABLES)}")
    ap.add_argument("--out", type=Path, default=None,
                    help="output folder (default benchmarks/results, or benchmarks/results/short with --short)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads of the baselines (default 2)")
    ap.add_argument("--budget", type=float, default=None, help="seconds of training per baseline")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats of every RF-HGN fit")
    ap.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    ap.add_argument("--replot", action="store_true",
                    help="only redraw the figures and the report from the JSON files in the output folder")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)

    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(TABLES)
    bad = [n for n in names if n not in TABLES]
    if bad:
        ap.error(f"unknown table(s) {', '.join(bad)}; the tables are {', '.join(TABLES)}")
    mode = Mode.make(args.short, threads=args.threads, budget=args.budget, repeats=args.repeats)
    out = args.out or (RESULTS / "short" if args.short else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    log = Log(args.quiet)
    if args.replot:
        import json

        from . import plots, report

        for name in names:
            path = out / f"suite_{name}.json"
            if path.exists():
                plots.plot(name, json.loads(path.read_text()), out)
        (out / "suite.md").write_text(report.build(out))
        log(f"redrawn from {out}")
        return 0
    log(f"benchmark suite ({'short' if mode.short else 'full'} mode): {', '.join(names)} -> {out}")

    from . import molecular, optimizers, potentials, report, scaling, zero_shot

    runners = {"optimizers": lambda: optimizers.run(mode, log), "potentials": lambda: potentials.run(mode, log),
               "zero_shot": lambda: zero_shot.run(mode, log), "scaling": lambda: scaling.run(mode, log),
               "molecular": lambda: molecular.run(mode, log, out)}
    t_all = time.perf_counter()
    for name in TABLES:
        if name not in names:
            continue
        t0 = time.perf_counter()
        m0 = machine()
        doc = runners[name]()
        doc["seconds"] = time.perf_counter() - t0
        doc["mode"] = mode.to_dict()
        doc["machine"] = m0
        doc["machine"]["load_average_end"] = machine()["load_average"]
        write_json(out / f"suite_{name}.json", doc)
        if not args.no_plots:
            from . import plots

            plots.plot(name, doc, out)
        log(f"{name}: done in {doc['seconds']:.1f} s")
    (out / "suite.md").write_text(report.build(out))
    log(f"all done in {time.perf_counter() - t_all:.1f} s; report: {out / 'suite.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
