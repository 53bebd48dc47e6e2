"""The stepper's tables and the frame path, measured in one run (JSON + Markdown
in benchmarks/results/tables.*).

(a) frame roll-out step, before/after: the 3x3x3 lattice, RF-HGN with the
    frame encoding at its recommended settings (``RFConfig.recommended("frame")``:
    node_width 96, swim_scale 0.02), fitted on 300 snapshots (sd 0.1), rolled
    out with the implicit generalised leapfrog (dt 0.01) from a test start.
    "before": :class:`core.learning.stepper.ModelStepper` (the model's numpy
    methods: a numpy round trip and a Graph build per evaluation, the path
    until this change); "after": :class:`core.learning.stepper.NetworkStepper`
    (graph kept on the device, ``HGN.gradients`` on tensors). Both in this
    process, alternating, best and median of the repeats of
    ``meta["seconds_per_step"]``; positions compared bit for bit.
(b) can ``BaselineConfig.fast_tables`` default to on? Baselines trained with
    the default settings (``time_budget`` shortened) on the 3x3x3 lattice for a
    few optimizers and inits: whether the stepper's pair and kinetic tables
    pass their check (knots, midpoint error), the largest position difference
    between a table and an exact roll-out after 1000 steps against the
    model's own error against ground truth, and the step time with and
    without tables on a 20^3 lattice (zero-shot).

    .venv/bin/python benchmarks/bench_tables.py [--quick]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"

from core.learning import stepper as stepper_module  # noqa: E402
from core.learning.rfhgn import RFConfig, fit  # noqa: E402
from core.learning.rollout import RolloutExtrapolationWarning, rollout  # noqa: E402
from core.physics import builders  # noqa: E402
from core.physics.datagen import random_snapshots  # noqa: E402
from core.physics.initial import initial_state  # noqa: E402
from core.physics.simulate import simulate  # noqa: E402


def _quiet_rollout(*a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RolloutExtrapolationWarning)
        return rollout(*a, **kw)


def frame_section(repeats: int, steps: int) -> dict:
    s = builders.cubic_lattice(3, 3, 3)
    cfg = RFConfig.recommended("frame")
    m = fit(random_snapshots(s, 300, 0.1, 0.1, seed=0), cfg)
    q0, p0 = initial_state(s, 0.1, 0.1, seed=3)
    make = stepper_module.make_stepper

    def old_make(model, system, device="cpu", dtype=torch.float64, **kw):
        return stepper_module.ModelStepper(model, system, stepper_module.resolve_device(device), dtype)

    times = {"before": [], "after": []}
    runs = {}
    for _ in range(repeats):
        for kind in ("before", "after"):
            stepper_module.make_stepper = old_make if kind == "before" else make
            try:
                tr = _quiet_rollout(m, s, q0, p0, 0.01, steps, steps, learned_energy=False)
            finally:
                stepper_module.make_stepper = make
            times[kind].append(tr.meta["seconds_per_step"])
            runs[kind] = tr
    out = {"system": "cubic 3x3x3", "config": {"encoding": cfg.encoding, "node_width": cfg.node_width,
                                               "swim_scale": cfg.swim_scale}, "steps": steps, "repeats": repeats,
           "evaluations_per_step": runs["after"].meta["gradient_evaluations"] / steps,
           "stepper_before": runs["before"].meta["stepper"], "stepper_after": runs["after"].meta["stepper"],
           "identical_positions": bool(np.array_equal(runs["before"].q, runs["after"].q))}
    for kind in times:
        out[f"{kind}_best_s"] = min(times[kind])
        out[f"{kind}_median_s"] = statistics.median(times[kind])
    out["speedup_best"] = out["before_best_s"] / out["after_best_s"]
    out["speedup_median"] = out["before_median_s"] / out["after_median_s"]
    return out


def baseline_section(budget: float, steps: int, big: int, repeats: int) -> list[dict]:
    from core.learning.baselines import BaselineConfig
    from core.learning.baselines import fit as train
    from core.learning.baselines.model import TrainedHGN

    s = builders.cubic_lattice(3, 3, 3)
    ds = random_snapshots(s, 300, 0.1, 0.1, seed=0)
    q0, p0 = initial_state(s, 0.1, 0.1, seed=3)
    truth = simulate(s, q0, p0, 0.01, steps, steps)
    sb = builders.cubic_lattice(big, big, big)
    qb, pb = initial_state(sb, 0.1, 0.1, seed=4)
    rows = []
    for optimizer, init in (("adam", "torch"), ("lbfgs", "torch"), ("adam", "swim"), ("sgd", "torch")):
        cfg = BaselineConfig(optimizer=optimizer, init=init, time_budget=budget, threads=1)
        m = train(ds, cfg)
        on = TrainedHGN(cfg.replace(fast_tables=True), m.network, m.constant, m.n_ref, m.train_system, m.info,
                        m.e_ref)
        off = TrainedHGN(cfg.replace(fast_tables=False), m.network, m.constant, m.n_ref, m.train_system, m.info,
                         m.e_ref)
        t0 = time.perf_counter()
        st = stepper_module.make_stepper(on, s)
        build_s = time.perf_counter() - t0
        row = {"optimizer": optimizer, "init": init, "budget_s": budget,
               "epochs": len(m.info.get("loss_history", [])), "table_build_s": build_s,
               "pair_table": st.pair_table is not None,
               "pair_knots": None if st.pair_table is None else st.pair_table.n,
               "pair_error": None if st.pair_table is None else st.pair_table.error,
               "kinetic_table": st.kin_table is not None,
               "kinetic_knots": None if st.kin_table is None else st.kin_table.n,
               "kinetic_error": None if st.kin_table is None else st.kin_table.error}
        a = _quiet_rollout(on, s, q0, p0, 0.01, steps, steps, learned_energy=False)
        b = _quiet_rollout(off, s, q0, p0, 0.01, steps, steps, learned_energy=False)
        row["tables_vs_exact_max_dq"] = float(np.abs(a.q[-1] - b.q[-1]).max())
        row["exact_vs_truth_max_dq"] = float(np.abs(b.q[-1] - truth.q[-1]).max())
        row["range_fallbacks"] = a.meta["range_fallbacks"]
        t_on, t_off = [], []
        for _ in range(repeats):
            t_on.append(_quiet_rollout(on, sb, qb, pb, 0.01, 20, 20, learned_energy=False).meta["seconds_per_step"])
            t_off.append(_quiet_rollout(off, sb, qb, pb, 0.01, 20, 20, learned_energy=False).meta["seconds_per_step"])
        row.update({"big_lattice": f"{big}^3", "step_tables_best_s": min(t_on), "step_exact_best_s": min(t_off)})
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def markdown(doc: dict) -> str:
    f = doc["frame"]
    lines = ["# Stepper tables and the frame path (benchmarks/bench_tables.py)", "",
             f"Machine: {doc['machine']}; torch threads {doc['threads']}; load average at start "
             f"{doc['load_start']}, at end {doc['load_end']}.", "",
             "## Frame roll-out step (implicit leapfrog), before/after in one run", "",
             f"{f['system']}, frame encoding, node_width {f['config']['node_width']}, swim_scale "
             f"{f['config']['swim_scale']}; {f['steps']} steps x {f['repeats']} repeats, "
             f"{f['evaluations_per_step']:.1f} gradient evaluations per step.", "",
             "| path | best s/step | median s/step |", "|---|---|---|",
             f"| before: {f['stepper_before']} (numpy methods, Graph per call) | {f['before_best_s']:.3e} | "
             f"{f['before_median_s']:.3e} |",
             f"| after: {f['stepper_after']} (graph on the device, HGN.gradients on tensors) | "
             f"{f['after_best_s']:.3e} | {f['after_median_s']:.3e} |", "",
             f"Speed-up {f['speedup_best']:.2f}x (best), {f['speedup_median']:.2f}x (median); positions identical "
             f"bit for bit: {f['identical_positions']}.", "",
             "## Baselines: do the stepper's tables accept trained pair functions?", "",
             "| optimizer | init | epochs | pair table (knots, error) | kinetic table (knots, error) | "
             "tables vs exact after roll-out | exact vs truth | step tables / exact (big lattice) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in doc["baselines"]:
        pt = f"yes ({r['pair_knots']}, {r['pair_error']:.1e})" if r["pair_table"] else "refused"
        kt = f"yes ({r['kinetic_knots']}, {r['kinetic_error']:.1e})" if r["kinetic_table"] else "refused"
        lines.append(f"| {r['optimizer']} | {r['init']} | {r['epochs']} | {pt} | {kt} | "
                     f"{r['tables_vs_exact_max_dq']:.1e} | {r['exact_vs_truth_max_dq']:.1e} | "
                     f"{r['step_tables_best_s']:.2e} / {r['step_exact_best_s']:.2e} s ({r['big_lattice']}) |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sections", default="frame,baselines")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    import os

    doc = {"machine": f"{platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}",
           "threads": torch.get_num_threads(), "load_start": [round(x, 2) for x in os.getloadavg()]}
    sections = args.sections.split(",")
    if "frame" in sections:
        doc["frame"] = frame_section(3 if args.quick else 5, 20 if args.quick else 100)
        print(json.dumps(doc["frame"]), flush=True)
    if "baselines" in sections:
        doc["baselines"] = baseline_section(3.0 if args.quick else 10.0, 200 if args.quick else 1000,
                                            12 if args.quick else 20, 2 if args.quick else 3)
    doc["load_end"] = [round(x, 2) for x in os.getloadavg()]
    if not args.quick and "frame" in doc and "baselines" in doc:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "tables.json").write_text(json.dumps(doc, indent=1))
        (RESULTS / "tables.md").write_text(markdown(doc))
    else:
        print(markdown(doc) if "frame" in doc and "baselines" in doc else "")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
