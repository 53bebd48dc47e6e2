"""Every speed target of issue 10 in one run, each figure beside the previous
code's, measured in the same run (JSON + Markdown in benchmarks/results/).

(a) the 3x3x3 fit against its own normal-equation products
    (benchmarks/fit_speed.py ``measure``; target fit <= 3x products, test MSE
    unchanged);
(b) learned roll-out step against the ground-truth step of the same lattice
    at 47^3 = 103,823 and 100^3 = 1,000,000 particles, with 1 and 2 threads
    (target <= 1.5x). The model: RF-HGN, SWIM invariant defaults, fitted on
    2x2x2 (500 snapshots, sd 0.1), rolled out zero-shot from displacements and
    momenta of sd 0.1; learned: ``rollout(...)`` meta ``seconds_per_step``
    (energies off); truth: ``simulate`` wall time / steps, both best of the
    repeats, alternating;
(c) building the 100x100x100 cubic lattice (target < 1 s): first call in a
    fresh process and best of 3;
(d) with a CUDA GPU only (else recorded as skipped with the reason): the
    1,000,000-particle learned step on the GPU (target <= 20 ms), a
    10,077,696-particle (216^3) roll-out of a few steps with its peak GPU
    memory, and the fit on 100,000 snapshots CPU vs GPU (fit_speed.measure_gpu,
    target >= 10x); ``gpu_section(device="cpu", sizes=...)`` runs the same code
    on the CPU with small sizes (tests/benchmarks/test_gpu_dry_run.py), so a GPU
    session's minutes do not go into finding its bugs;
(e) float32 against float64: largest position difference after N steps on
    the 3x3x3 lattice and on 47^3 (new code only).

``--before-ref b00e48d`` checks the previous commit out in a temporary
``git worktree`` and runs the same measurement script there (a copy of
``MEASURE`` below, in a subprocess with the same venv and thread settings;
it only uses APIs both versions have: builders, random_snapshots, fit,
RFConfig, rollout, simulate, fit_speed.measure copied into the worktree).
Each measurement (code version x thread count) runs in its own process with
OMP/MKL/OpenBLAS threads and torch's intra-op threads set to the count.

    .venv/bin/python benchmarks/bench_torch_core.py [--quick] [--before-ref b00e48d] [--threads 1,2]
        [--sections fit,steps,lattice,gpu,float32] [--fit-repeat 30] [--merge]

``--merge`` keeps the sections of the existing results file that this run
does not measure (their date and commits are listed in the Markdown), so one
section can be re-measured without re-running the others.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TARGETS = {"fit_ratio": 3.0, "step_ratio": 1.5, "lattice_s": 1.0, "gpu_step_s": 0.020, "gpu_fit_speedup": 10.0}
SECTIONS = ("fit", "steps", "lattice", "gpu", "float32")

#: the measurement script: run in this tree and in the old one (only APIs both have)
MEASURE = r'''
import json, os, sys, time, warnings, statistics
args = json.loads(sys.argv[1])
threads = args["threads"]
import numpy as np
try:
    import torch
    torch.set_num_threads(threads)
except ImportError:
    torch = None
out = {"threads": threads}
if "lattice" in args["sections"]:
    from core.physics.builders import cubic_lattice
    times = []
    for _ in range(3):
        t0 = time.perf_counter(); s = cubic_lattice(100, 100, 100); times.append(time.perf_counter() - t0)
    out["lattice"] = {"first_s": times[0], "best_s": min(times), "particles": s.n, "edges": int(len(s.edges))}
    del s
if "fit" in args["sections"]:
    sys.path.insert(0, os.path.join(os.getcwd(), "benchmarks"))
    import fit_speed
    r = fit_speed.measure(args["fit_repeat"], "cpu", threads)
    out["fit"] = {k: r[k] for k in ("fit_best_s", "fit_median_s", "products_s", "products_numpy_s", "ratio",
                                     "ratio_median", "test_mse", "L") if k in r}
if "steps" in args["sections"]:
    from core.physics.builders import cubic_lattice
    from core.physics.datagen import random_snapshots
    from core.physics.initial import initial_state
    from core.physics.simulate import simulate
    from core.learning.rfhgn import RFConfig, fit
    from core.learning.rollout import rollout
    warnings.simplefilter("ignore")
    model = fit(random_snapshots(cubic_lattice(2, 2, 2), 500, 0.1, 0.1, seed=0), RFConfig())
    rows = []
    for n, steps, repeat in args["sizes"]:
        s = cubic_lattice(n, n, n)
        q0, p0 = initial_state(s, 0.1, 0.1, seed=2)
        rollout(model, s, q0, p0, 0.01, 2, 2, learned_energy=False)  # warm-up (tables, caches)
        simulate(s, q0, p0, 0.01, 1, 1)
        learned, truth = [], []
        for _ in range(repeat):
            pr = rollout(model, s, q0, p0, 0.01, steps, steps, learned_energy=False)
            learned.append(pr.meta["seconds_per_step"])
            t0 = time.perf_counter(); simulate(s, q0, p0, 0.01, steps, steps)
            truth.append((time.perf_counter() - t0) / steps)
        rows.append({"n": n, "particles": s.n, "edges": int(len(s.edges)), "steps": steps, "repeat": repeat,
                     "learned_s": min(learned), "truth_s": min(truth), "ratio": min(learned) / min(truth),
                     "learned_all_s": learned, "truth_all_s": truth})
        print(f"  [{args['label']}, {threads} thread(s)] {n}^3: learned {min(learned) * 1e3:.1f} ms, truth "
              f"{min(truth) * 1e3:.1f} ms, ratio {min(learned) / min(truth):.2f}", file=sys.stderr, flush=True)
        del s
    out["steps"] = rows
print("RESULT " + json.dumps(out))
'''


def run_measure(tree: Path, label: str, threads: int, sections, quick: bool, timeout: float = 3600,
                fit_repeat: int | None = None) -> dict:
    """The measurement script in ``tree`` with ``threads`` threads, in a fresh process."""
    sizes = [[47, 3, 1], [100, 2, 1]] if quick else [[47, 10, 3], [100, 3, 2]]
    if fit_repeat is None:
        fit_repeat = 2 if quick else 30
    args = {"threads": threads, "sections": list(sections), "sizes": sizes, "fit_repeat": fit_repeat,
            "label": label}
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads))
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(MEASURE)
    try:
        res = subprocess.run([sys.executable, f.name, json.dumps(args)], cwd=tree, env=env, capture_output=True,
                             text=True, timeout=timeout)
    finally:
        os.unlink(f.name)
    sys.stderr.write(res.stderr[-4000:] if res.returncode else res.stderr)
    for line in res.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": f"exit {res.returncode}: {res.stderr.strip().splitlines()[-1] if res.stderr.strip() else ''}"}


def old_tree(ref: str) -> Path:
    """A temporary git worktree of ``ref`` with this tree's benchmarks/fit_speed.py copied in."""
    path = Path(tempfile.mkdtemp(prefix="bench_torch_core_"))
    subprocess.run(["git", "worktree", "add", "--detach", str(path), ref], cwd=ROOT, check=True,
                   capture_output=True)
    shutil.copy(ROOT / "benchmarks" / "fit_speed.py", path / "benchmarks" / "fit_speed.py")
    return path


def drop_tree(path: Path) -> None:
    subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


# ----------------------------------------------------------------------
#: the GPU section's sizes: the lattice of the timed step (100^3 = 1,000,000 particles), of the large roll-out
#: (216^3 = 10,077,696) and the snapshots of the CPU-vs-GPU fit (10,000 with --quick)
GPU_SIZES = {"step_lattice": 100, "big_lattice": 216, "fit_snapshots": 100_000}


def gpu_section(quick: bool, device: str = "cuda", sizes: dict | None = None) -> dict:
    """Section (d) on ``device`` (CUDA; tests run the same code on "cpu" with small ``sizes``, so that a
    GPU session's few minutes do not go into finding its bugs)."""
    import torch

    sizes = {**GPU_SIZES, **(sizes or {})}
    cuda = torch.device(device).type == "cuda"
    if cuda and not torch.cuda.is_available():
        return {"skipped": f"no CUDA GPU: torch {torch.__version__} reports torch.cuda.is_available() False"}
    import warnings

    def sync():
        if cuda:
            torch.cuda.synchronize()

    from core.learning.rfhgn import RFConfig, fit
    from core.learning.rollout import RolloutExtrapolationWarning, rollout
    from core.learning.stepper import make_stepper
    from core.physics.builders import cubic_lattice
    from core.physics.datagen import random_snapshots
    from core.physics.initial import initial_state

    warnings.simplefilter("ignore", RolloutExtrapolationWarning)
    out = {"gpu": torch.cuda.get_device_name(0) if cuda else f"({device}: a dry run of the GPU section)",
           "sizes": sizes}
    model = fit(random_snapshots(cubic_lattice(2, 2, 2), 500, 0.1, 0.1, seed=0), RFConfig())
    n1 = int(sizes["step_lattice"])
    s = cubic_lattice(n1, n1, n1)
    q0, p0 = initial_state(s, 0.1, 0.1, seed=2)
    from core.learning.rollout import explicit_step
    for prec, dtype in (("float64", torch.float64), ("float32", torch.float32)):
        for scatter in ("index_add", "csr"):
            st = make_stepper(model, s, device, dtype, scatter=scatter)
            q, p = st.tensor(q0), st.tensor(p0)
            g = st.potential(q)
            for k in range(3):
                q, p, g = explicit_step(st, q, p, g, 0.01, k)
            sync()
            n = 20 if quick else 100
            t0 = time.perf_counter()
            for k in range(n):
                q, p, g = explicit_step(st, q, p, g, 0.01, k)
            sync()
            key = "step_1M" if n1 == GPU_SIZES["step_lattice"] else f"step_{s.n}"
            out[f"{key}_{prec}_{scatter}_s"] = (time.perf_counter() - t0) / n
            out[f"{key}_{prec}_{scatter}_finite"] = bool(torch.isfinite(q).all())
            print(f"  {device} {s.n:,}-particle step {prec} {scatter}: "
                  f"{out[f'{key}_{prec}_{scatter}_s'] * 1e3:.2f} ms", flush=True)
    del s
    n10 = int(sizes["big_lattice"])
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    big = cubic_lattice(n10, n10, n10)
    build = time.perf_counter() - t0
    q0, p0 = initial_state(big, 0.1, 0.1, seed=2)
    steps = 5 if quick else 20
    t0 = time.perf_counter()
    tr = rollout(model, big, q0, p0, 0.01, steps, steps, learned_energy=False, device=device)
    out["rollout_10M"] = {"particles": big.n, "edges": int(len(big.edges)), "steps": steps, "build_s": build,
                          "wall_s": time.perf_counter() - t0, "seconds_per_step": tr.meta["seconds_per_step"],
                          "peak_gpu_memory_gb": torch.cuda.max_memory_allocated() / 2 ** 30 if cuda else None,
                          "finite": bool(__import__("numpy").isfinite(tr.q[-1]).all())}
    print(f"  {device} roll-out {big.n:,} particles: {out['rollout_10M']}", flush=True)
    del big, tr
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import fit_speed

    measure_gpu = getattr(fit_speed, "measure_gpu", None)
    n_fit = min(int(sizes["fit_snapshots"]), 10_000) if quick else int(sizes["fit_snapshots"])
    out["fit_gpu"] = measure_gpu(n_fit, device=device) if measure_gpu else {"skipped": "no measure_gpu"}
    return out


def float32_section(quick: bool) -> dict:
    import warnings

    import numpy as np

    from core.learning.rfhgn import RFConfig, fit
    from core.learning.rollout import RolloutExtrapolationWarning, rollout
    from core.physics.builders import cubic_lattice
    from core.physics.datagen import random_snapshots
    from core.physics.initial import initial_state
    from core.physics.simulate import simulate

    warnings.simplefilter("ignore", RolloutExtrapolationWarning)
    model = fit(random_snapshots(cubic_lattice(2, 2, 2), 500, 0.1, 0.1, seed=0), RFConfig())
    rows = []
    for n, steps in ((3, 1000), (47, 200 if quick else 1000)):
        s = cubic_lattice(n, n, n)
        q0, p0 = initial_state(s, 0.1, 0.1, seed=3)
        a = rollout(model, s, q0, p0, 0.01, steps, steps, learned_energy=False)
        b = rollout(model, s, q0, p0, 0.01, steps, steps, learned_energy=False, precision="float32")
        t = simulate(s, q0, p0, 0.01, steps, steps)
        rows.append({"n": n, "particles": s.n, "steps": steps, "dt": 0.01,
                     "float32_vs_float64_max_abs": float(np.abs(a.q[-1] - b.q[-1]).max()),
                     "float64_vs_truth_max_abs": float(np.abs(a.q[-1] - t.q[-1]).max()),
                     "float32_step_s": b.meta["seconds_per_step"], "float64_step_s": a.meta["seconds_per_step"]})
        print(f"  float32 {n}^3, {steps} steps: |q32 - q64| max {rows[-1]['float32_vs_float64_max_abs']:.2e}, "
              f"|q64 - truth| max {rows[-1]['float64_vs_truth_max_abs']:.2e}", flush=True)
    return {"rows": rows}


# ----------------------------------------------------------------------
def _ms(x):
    return "-" if x is None else f"{x * 1e3:.1f} ms"


def markdown(doc: dict) -> str:
    refs = doc["refs"]
    head = "| measure | " + " | ".join(f"{r} ({doc['commits'][r]})" for r in refs) + " | target |"
    out = [f"# Torch core benchmark (issue 10){' (quick)' if doc['quick'] else ''}", "",
           f"Machine: {doc['machine']['cpu_count']} cores, Python {doc['machine']['python']}, torch "
           f"{doc['machine']['torch']}; {doc['date']}. Command: `{doc['command']}`", "",
           head, "|" + "---|" * (len(refs) + 2)]
    kept = doc.get("kept_sections") or {}
    if kept:  # --merge: sections of an earlier run kept beside this run's
        out[4:4] = [f"Sections kept from an earlier run ({', '.join(sorted(kept))}): " + "; ".join(
            f"{sec}: {v['date']}, commits {v['commits']}" for sec, v in sorted(kept.items())), ""]

    def get(ref, *path):
        x = doc["runs"].get(ref, {})
        for p in path:
            if isinstance(x, dict):
                x = x.get(p)
            elif isinstance(x, list) and isinstance(p, int) and p < len(x):
                x = x[p]
            else:
                return None
        return x

    for th in doc["threads"]:
        k = f"t{th}"
        if "fit" in doc["sections"]:
            cells = []
            for r in refs:
                f = get(r, k, "fit")
                if not f:
                    cells.append("-")
                    continue
                # the ratio is to the faster of torch's and NumPy's products: show that one
                prod = min(f["products_s"], f.get("products_numpy_s") or f["products_s"])
                med = f" (median {f['fit_median_s'] * 1e3:.1f} ms, {f['ratio_median']:.2f}x)" \
                    if "ratio_median" in f else ""
                cells.append(f"{f['fit_best_s'] * 1e3:.1f} ms / {prod * 1e3:.2f} ms = {f['ratio']:.2f}x{med}, "
                             f"MSE {f['test_mse']:.3e}")
            out.append(f"| 3x3x3 fit / its products alone, {th} thread(s) | " + " | ".join(cells)
                       + f" | <= {TARGETS['fit_ratio']}x |")
        if "steps" in doc["sections"]:
            for i, n in enumerate((47, 100)):
                cells = []
                for r in refs:
                    row = get(r, k, "steps", i)
                    cells.append("-" if not row else f"{_ms(row['learned_s'])} vs {_ms(row['truth_s'])} = "
                                 f"{row['ratio']:.2f}x")
                out.append(f"| learned vs ground-truth step, {n}^3 = {n ** 3:,}, {th} thread(s) | "
                           + " | ".join(cells) + f" | <= {TARGETS['step_ratio']}x |")
    if "lattice" in doc["sections"]:
        cells = []
        for r in refs:
            lat = get(r, f"t{doc['threads'][0]}", "lattice")
            cells.append("-" if not lat else f"{lat['first_s']:.2f} s first, {lat['best_s']:.2f} s best")
        out.append("| 100x100x100 lattice built | " + " | ".join(cells) + f" | < {TARGETS['lattice_s']:g} s |")
    out.append("")
    g = doc.get("gpu")
    if g is not None:
        out += ["## GPU", ""]
        if "skipped" in g:
            out.append(f"Skipped: {g['skipped']}.")
        else:
            out.append("| measure | value | target |")
            out.append("|---|---|---|")
            for key, v in g.items():
                if key.startswith("step_") and key.endswith("_s"):
                    size, what = key[5:-2].split("_", 1)
                    n = "1,000,000" if size == "1M" else f"{int(size):,}"
                    out.append(f"| learned step, {n} particles ({what}) | {_ms(v)} | <= 20 ms |")
            r10 = g.get("rollout_10M", {})
            if r10:
                peak = r10.get("peak_gpu_memory_gb")
                out.append(f"| roll-out of {r10['particles']:,} particles | {r10['steps']} steps, "
                           f"{_ms(r10['seconds_per_step'])}/step"
                           + (f", peak {peak:.1f} GiB" if peak is not None else "") + " | runs |")
            fg = g.get("fit_gpu") or {}
            if "speedup" in fg:
                out.append(f"| fit on {fg['n_snapshots']:,} snapshots, CPU / GPU | {fg['cpu_fit_s']:.1f} s / "
                           f"{fg['cuda_fit_s']:.2f} s = {fg['speedup']:.1f}x | >= 10x |")
        out.append("")
    f32 = doc.get("float32")
    if f32:
        out += ["## float32 roll-outs against float64 (after torch core only)", "",
                "| lattice | steps of dt 0.01 | max abs position difference float32 - float64 | "
                "float64 roll-out - ground truth |", "|---|---|---|---|"]
        for r in f32["rows"]:
            out.append(f"| {r['n']}^3 | {r['steps']} | {r['float32_vs_float64_max_abs']:.2e} | "
                       f"{r['float64_vs_truth_max_abs']:.2e} |")
        out.append("")
    return "\n".join(out)


def _merge(doc: dict, path: Path) -> None:
    """Put the sections of the earlier results file ``path`` that this run did not measure into
    ``doc`` (runs per ref and thread count, float32, gpu), recording their date and commits in
    ``doc["kept_sections"]``."""
    if not path.exists():
        return
    old = json.loads(path.read_text())
    kept = dict(old.get("kept_sections") or {})
    for sec in old.get("sections", []):
        if sec in doc["sections"]:
            kept.pop(sec, None)
            continue
        kept.setdefault(sec, {"date": old.get("date"), "commits": old.get("commits")})
        if sec in ("float32", "gpu"):
            if sec in old:
                doc[sec] = old[sec]
        else:
            for ref, runs in old.get("runs", {}).items():
                for tk, run in runs.items():
                    if sec in run:
                        doc["runs"].setdefault(ref, {}).setdefault(tk, {})[sec] = run[sec]
                        if tk not in {f"t{t}" for t in doc["threads"]}:
                            doc["threads"] = sorted(set(doc["threads"]) | {int(tk[1:])})
        doc["sections"] = [s for s in SECTIONS if s in doc["sections"] or s == sec]
    # the code versions of the kept CPU sections: a run that measured none (--sections gpu) shows the
    # earlier run's before/after columns under their own commits; one that did keeps its own labels (the
    # kept sections' commits are listed in the Markdown)
    for ref in old.get("refs", []):
        if ref not in doc["refs"] and ref in doc["runs"]:
            doc["refs"].append(ref)
            doc["commits"].setdefault(ref, (old.get("commits") or {}).get(ref))
    order = {r: i for i, r in enumerate(old.get("refs", []))}
    doc["refs"].sort(key=lambda r: order.get(r, len(order)))
    doc["kept_sections"] = kept


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and steps")
    ap.add_argument("--before-ref", default=None, help="commit of the previous code to measure beside (b00e48d)")
    ap.add_argument("--sections", default=",".join(SECTIONS))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--fit-repeat", type=int, default=None, help="fits timed per run (default 30; 2 with --quick)")
    ap.add_argument("--merge", action="store_true",
                    help="keep the other sections' results of the existing results/torch_core.json (with their "
                         "date and commits) and replace only the measured sections")
    args = ap.parse_args(argv)
    sections = [s for s in args.sections.split(",") if s]
    bad = [s for s in sections if s not in SECTIONS]
    if bad:
        ap.error(f"unknown sections {bad}; known: {', '.join(SECTIONS)}")
    threads = [int(t) for t in args.threads.split(",")]
    import torch

    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()
    doc = {"quick": args.quick, "sections": sections, "threads": threads, "targets": TARGETS,
           "date": time.strftime("%Y-%m-%d %H:%M"),
           "command": " ".join(["benchmarks/bench_torch_core.py"] + (argv or sys.argv[1:])),
           "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                       "platform": platform.platform()},
           "refs": [], "commits": {}, "runs": {}}
    cpu_sections = [s for s in sections if s in ("fit", "steps", "lattice")]
    # both versions run from worktrees of their commits: the shared working tree may hold other
    # people's unfinished edits (commit first; fit_speed.py comes from this tree, as for the old code)
    trees = []
    if args.before_ref and cpu_sections:
        trees.append(("before", args.before_ref, None))
    if cpu_sections:                      # (only the GPU or float32 sections: no code versions to check out)
        trees.append(("after", head, None))
    try:
        for label, ref, tree in trees:
            if tree is None:
                tree = old_tree(ref)
                cleanup = tree
            else:
                cleanup = None
            doc["refs"].append(label)
            doc["commits"][label] = ref
            doc["runs"][label] = {}
            try:
                for th in threads:
                    secs = [s for s in cpu_sections if s != "lattice" or th == threads[0]]
                    if not secs:
                        continue
                    print(f"{label} ({ref}), {th} thread(s): {', '.join(secs)}", flush=True)
                    doc["runs"][label][f"t{th}"] = run_measure(tree, label, th, secs, args.quick,
                                                               fit_repeat=args.fit_repeat)
            finally:
                if cleanup is not None:
                    drop_tree(cleanup)
        if "float32" in sections:
            print("float32 against float64", flush=True)
            doc["float32"] = float32_section(args.quick)
        if "gpu" in sections:
            print("GPU sections", flush=True)
            doc["gpu"] = gpu_section(args.quick)
    finally:
        RESULTS.mkdir(parents=True, exist_ok=True)
        if args.merge:
            _merge(doc, RESULTS / "torch_core.json")
        (RESULTS / "torch_core.json").write_text(json.dumps(doc, indent=1))
        md = markdown(doc)
        (RESULTS / "torch_core.md").write_text(md + "\n")
        print()
        print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
