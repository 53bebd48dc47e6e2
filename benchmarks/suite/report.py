"""The Markdown report of the suite, built from the per-table JSON files of
one output folder (so a table run on its own updates its section and keeps
the others)."""
from __future__ import annotations

import json
from pathlib import Path

from .common import TABLES


def _e(x, digits=2):
    return "n/a" if x is None else f"{x:.{digits}e}"


def _t(x):
    if x is None:
        return "n/a"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 1:
        return f"{x:.1f}"
    if x >= 0.01:
        return f"{x:.3f}"
    return f"{x:.2e}"


def _x(x):
    return "n/a" if x is None else (f"{x:,.0f}x" if x >= 10 else f"{x:.1f}x")


def _roll(r):
    ro = r.get("rollout") or {}
    if "failed" in ro:
        return "failed", "failed", "failed"
    return _e(ro.get("final_zerr")), _e(ro.get("final_herr")), _e(ro.get("max_abs_drift"))


def machine_line(m: dict) -> str:
    load = m.get("load_average")
    load_s = f", load average {load[0]:.1f}" if load else ""
    env = m.get("thread_env") or {}
    if env:
        load_s += ", " + " ".join(f"{k}={v}" for k, v in env.items())
    return (f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores usable, {m.get('memory_gib', '?')} GiB; "
            f"Python {m.get('python')}, NumPy {m.get('numpy')}, SciPy {m.get('scipy')}, torch {m.get('torch')}"
            f"{load_s}")


def optimizers_md(doc) -> list[str]:
    ref = doc["reference"]
    task = doc["task"]
    out = [f"Task: {task['system']}; {task['train']} training and {task['test']} test snapshots "
           f"(displacements and momenta sd 0.1). Baselines: {task['baseline_network']}. "
           f"Reference for the speed-ups: {ref['method']} ({_t(ref['time'])} s, test MSE {_e(ref['test_mse'])}). "
           f"Rollouts: {task['rollouts']}.", "",
           "| method | test MSE | time s | time ratio | reaches RF-HGN's error after | speed-up at equal accuracy "
           "| epochs (stop) | rollout Zerr | Herr | max abs drift |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in doc["rows"]:
        z, h, d = _roll(r)
        if r["kind"] == "rf":
            out.append(f"| **{r['method']}** | {_e(r['test_mse'])} | {_t(r['time'])} | | | | | {z} | {h} | {d} |")
            continue
        reach = r.get("time_to_reach_rf")
        reach_s = f"{_t(reach)} s" if reach is not None else f"not reached in {_t(r['time'])} s"
        eq = (_x(r["speedup_equal_accuracy"]) if reach is not None
              else f"> {_x(r['speedup_equal_accuracy_lower_bound'])}")
        if reach is None and r["stop_reason"] == "early stopping":
            eq += " (plateaued)"
        out.append(f"| {r['method']} (lr {r['learning_rate']:g}) | {_e(r['test_mse'])} | {_t(r['time'])} | "
                   f"{_x(r['speedup'])} | {reach_s} | {eq} | {r['epochs']} ({r['stop_reason']}) | {z} | {h} | {d} |")
    out.append("")
    for key, t in doc.get("targets", {}).items():
        out.append(f"- Target ({key}): RF-HGN at least 1,000x faster at equal accuracy and no less accurate: "
                   f"{'met' if t['met'] else 'NOT met'} (speed-up at equal accuracy "
                   f"{'' if t['reached'] else '> '}{_x(t['speedup_at_equal_accuracy'])}, "
                   f"RF-HGN error no worse: {'yes' if t['rf_error_no_worse'] else 'no'}).")
    return out


def potentials_md(doc) -> list[str]:
    out = [f"3x3x3 cubic lattice, {doc['task']['train']} training / {doc['task']['test']} test snapshots; "
           f"Adam trains for {_t(doc['task']['adam_budget'])} s.", "",
           "| potential | Adam test MSE | Adam s | ELM test MSE | ELM s | SWIM test MSE | SWIM s |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in doc["rows"]:
        out.append(f"| {r['label']} | {_e(r['adam']['test_mse'])} | {_t(r['adam']['time'])} | "
                   f"{_e(r['elm']['test_mse'])} | {_t(r['elm']['time'])} | {_e(r['swim']['test_mse'])} | "
                   f"{_t(r['swim']['time'])} |")
    return out


def zero_shot_md(doc) -> list[str]:
    t = doc["task"]
    out = [f"Rollouts of {t['steps']} steps of dt {t['dt']} ({t['frame_steps']} for the frame encoding) from a "
           f"random start ({t['start']}); each model fitted once on {t['train']} snapshots of the small lattice.", "",
           "| model | rolled out on | particles | final Zerr | max Zerr | final Herr | max abs drift (truth) "
           "| ms/step |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for s in doc["series"]:
        for r in s["rows"]:
            shape = f"{r['size']}^{3 if s['name'].startswith('3D') else 2}"
            if "failed" in r:
                out.append(f"| {s['name']} | {shape} | {r['particles']} | failed: {r['failed'][:80]} | | | | |")
                continue
            out.append(f"| {s['name']} | {shape} | {r['particles']:,} | {_e(r['final_zerr'])} | {_e(r['max_zerr'])} | "
                       f"{_e(r['final_herr'])} | {_e(r['max_abs_drift'])} ({_e(r['max_abs_drift_truth'])}) | "
                       f"{r['seconds_per_step'] * 1e3:.2f} |")
    return out


def scaling_md(doc) -> list[str]:
    out = ["Fit time (best of the repeats) and tracemalloc peak of one fit:", "",
           "| sweep | value | particles | snapshots | features | fit s | peak MiB |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in doc["snapshots"]:
        out.append(f"| snapshots | {r['snapshots']} | {r['particles']} | {r['snapshots']} | | {_t(r['time'])} | "
                   f"{r['peak_mib']:.1f} |")
    for r in doc["particles"]:
        out.append(f"| particles | {r['lattice']} | {r['particles']} | {r['snapshots']} | | {_t(r['time'])} | "
                   f"{r['peak_mib']:.1f} |")
    for r in doc["width"]:
        out.append(f"| width | x{r['factor']:g} ({r['node_width']}/{r['edge_width']}/{r['message_width']}) | 27 | | "
                   f"{r['features']} | {_t(r['time'])} | {r['peak_mib']:.1f} |")
    out += ["", "Rollout step time (model fitted on 2x2x2; explicit Stoermer-Verlet) against the ground truth:", "",
            "| lattice | particles | springs | model ms/step | ground truth ms/step | peak MiB |",
            "| --- | --- | --- | --- | --- | --- |"]
    for r in doc["rollout"]:
        out.append(f"| {r['lattice']} | {r['particles']:,} | {r['edges']:,} | {r['seconds_per_step'] * 1e3:.2f} | "
                   f"{r['truth_seconds_per_step'] * 1e3:.2f} | {r['peak_mib']:.1f} |")
    out += ["", f"Maximum resident set size of the process: {doc['max_rss_mib']:.0f} MiB."]
    return out


def molecular_md(doc) -> list[str]:
    t = doc["task"]
    out = [f"{t['system']} ({t['particles']} particles, cutoff {t['cutoff']}, periodic box); "
           f"{t['train']} training / {t['test']} test snapshots from {t['data']['n_trajectories']} runs at "
           f"k_B T = {t['data']['temperature']}; rollout {t['rollout_steps']} steps of dt {t['rollout_dt']}.", "",
           "| method | relative error | test MSE | time s | rollout Zerr | max abs drift |",
           "| --- | --- | --- | --- | --- | --- |"]
    for r in doc["rows"]:
        z, _, d = _roll(r)
        note = f" ({r['chosen_as']})" if r.get("chosen_as") else ""
        out.append(f"| {r['method']}{note} | {r['relative_error']:.3f} | {_e(r['test_mse'])} | {_t(r['time'])} | {z} "
                   f"| {d} |")
    return out


TITLES = {"optimizers": "1. Optimizers (3x3x3 lattice)", "potentials": "2. Potentials",
          "zero_shot": "3. Zero-shot to larger systems", "scaling": "4. Scaling",
          "molecular": "5. Molecular dynamics with cutoff edges"}
WRITERS = {"optimizers": optimizers_md, "potentials": potentials_md, "zero_shot": zero_shot_md,
           "scaling": scaling_md, "molecular": molecular_md}


def build(out_dir: Path) -> str:
    """The report of every table whose JSON is in ``out_dir``."""
    lines = ["# HGN Studio benchmark suite", ""]
    for name in TABLES:
        path = out_dir / f"suite_{name}.json"
        if not path.exists():
            continue
        doc = json.loads(path.read_text())
        lines += [f"## {TITLES[name]}", "",
                  f"Measured {doc['machine'].get('date', '')} in {doc['seconds']:.0f} s "
                  f"({'short' if doc['mode']['short'] else 'full'} mode) on: {machine_line(doc['machine'])}.", ""]
        lines += WRITERS[name](doc)
        png = out_dir / f"suite_{name}.png"
        if png.exists():
            lines += ["", f"![{TITLES[name]}]({png.name})"]
        lines.append("")
    return "\n".join(lines)
