"""Peak memory of the RF-HGN fit against the number of snapshots (issue 11,
"the fit keeps memory bounded in the number of snapshots").

The task: the 3x3x3 harmonic lattice of benchmarks/fit_speed.py, S random
snapshots (sd 0.1, seed 0, all for training), RF-HGN with the default
settings (SWIM invariant, batches of 256 snapshots, 1 thread), at
S = 2,000, 20,000 and 200,000.

What is measured, and how: each (code version, S) runs in a fresh Python
process, which fits a small dataset first (imports, BLAS buffers, torch's
first allocations: the fixed costs of any fit), builds the S-snapshot
dataset, then resets the kernel's peak resident set size of the process
(``echo 5 > /proc/self/clear_refs``, Linux) and fits. ``extra_mb`` =
peak resident set during the fit (``VmHWM``) minus the resident set just
before it: every allocation the fit touches, NumPy, torch's CPU allocator and
the BLAS alike (no Python-level tracing). ``data_mb`` is the size of the
dataset's q, p, dq/dt and dp/dt. Work buffers that the fit keeps between
fits (``core.learning.hgn.fixed.workspace``) are released after the warm-up,
so the measured fit allocates them again; ``kept_buffers_mb`` is what they
hold after it. Where clear_refs cannot be written the
process's ``ru_maxrss`` is used instead (it then includes the dataset's
construction; the JSON says which was used).

``--before-ref 9e2be3b`` measures the code of that commit beside this
tree's HEAD, each from a temporary ``git worktree`` (the venv has the
project installed from /work/main, so the worker runs with PYTHONPATH set to
the worktree), this script copied into it.

    .venv/bin/python benchmarks/bench_fit_memory.py [--sizes 2000,20000,200000] [--before-ref 9e2be3b]
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
SIZES = (2000, 20000, 200000)
SD = 0.1


def _status(key: str) -> float:
    """A /proc/self/status field in MiB (VmRSS, VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    raise KeyError(key)


def reset_peak() -> bool:
    """Reset the process's peak resident set (Linux); False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_extra(run) -> tuple[float, str]:
    """(MiB, method): the peak resident memory of ``run()`` above the resident
    set before it."""
    import gc
    import resource

    gc.collect()
    if reset_peak():
        before = _status("VmRSS")
        run()
        return _status("VmHWM") - before, "VmHWM after clear_refs"
    before = _status("VmRSS")
    run()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0 - before, "ru_maxrss (no clear_refs)"


def worker(n: int) -> dict:
    """Fit the S = ``n`` task in this process; the measurement as a dict."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import fit_speed  # noqa: E402  (this tree's copy: the dataset and config helpers)
    from core.learning.rfhgn import fit
    from core.physics import builders
    from core.physics.datagen import random_snapshots
    from core.physics.trajectory import Dataset

    system = builders.cubic_lattice(3, 3, 3)
    cfg = fit_speed.config("cpu", 1)

    def data(s):
        a = random_snapshots(system, s, SD, SD, seed=0)
        return Dataset(system, a.q, a.p, a.dqdt, a.dpdt, a.energy, np.arange(s), np.zeros(0, dtype=np.int64))

    fit(data(300), cfg)  # warm-up: the fixed costs of a first fit
    try:  # the fit's kept work buffers (this tree's code): the measured fit allocates its own again
        from core.learning.hgn.fixed import release_workspace
    except ImportError:
        def release_workspace():
            return 0
    release_workspace()
    ds = data(n)
    t0 = time.perf_counter()
    out = {}

    def run():
        out["model"] = fit(ds, cfg)

    extra, method = peak_extra(run)
    fit_s = time.perf_counter() - t0
    kept = release_workspace() / 2 ** 20
    return {"snapshots": n, "extra_mb": extra, "method": method, "fit_s": fit_s, "kept_buffers_mb": kept,
            "data_mb": sum(x.nbytes for x in (ds.q, ds.p, ds.dqdt, ds.dpdt)) / 2 ** 20,
            "train_mse": float(out["model"].info.get("train_mse", float("nan")))}


def run_worker(tree: Path, n: int, timeout: float = 1800) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1")
    script = tree / "benchmarks" / "bench_fit_memory.py"
    res = subprocess.run([sys.executable, str(script), "--worker", str(n)], cwd=tree, env=env, capture_output=True,
                         text=True, timeout=timeout)
    for line in res.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else ""
    return {"snapshots": n, "error": f"exit {res.returncode}: {tail}"}


def make_tree(ref: str) -> Path:
    """A temporary git worktree of ``ref`` with this script and fit_speed.py copied in."""
    path = Path(tempfile.mkdtemp(prefix="bench_fit_memory_"))
    subprocess.run(["git", "worktree", "add", "--detach", str(path), ref], cwd=ROOT, check=True,
                   capture_output=True)
    for name in ("bench_fit_memory.py", "fit_speed.py"):
        shutil.copy(ROOT / "benchmarks" / name, path / "benchmarks" / name)
    return path


def drop_tree(path: Path) -> None:
    subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


def markdown(doc: dict) -> str:
    refs = doc["refs"]
    lines = ["# RF-HGN fit: peak memory against the number of snapshots", "",
             f"{doc['date']}; `{doc['command']}`; 3x3x3 harmonic lattice, default RFConfig, 1 thread. "
             "extra = peak resident memory during the fit above the resident set before it (the dataset "
             "already in memory; fresh process per row, after a warm-up fit; method per row below).", "",
             "| snapshots | data (q, p, dq/dt, dp/dt) | "
             + " | ".join(f"extra, {r} ({doc['commits'][r]})" for r in refs)
             + " | " + " | ".join(f"fit time, {r}" for r in refs) + " |",
             "|---:|---:|" + "---:|" * (2 * len(refs))]
    for i, n in enumerate(doc["sizes"]):
        rows = [doc["runs"][r][i] for r in refs]
        data = next((x["data_mb"] for x in rows if "data_mb" in x), float("nan"))
        ext = [f"{x['extra_mb']:.1f} MiB" if "extra_mb" in x else x.get("error", "-") for x in rows]
        tim = [f"{x['fit_s']:.2f} s" if "fit_s" in x else "-" for x in rows]
        lines.append(f"| {n:,} | {data:.1f} MiB | " + " | ".join(ext) + " | " + " | ".join(tim) + " |")
    methods = sorted({x.get("method", "") for r in refs for x in doc["runs"][r] if x.get("method")})
    lines += ["", "Method: " + "; ".join(methods) + ". Fit time: wall time of that one fit on the shared "
              "machine (other jobs running), for orientation only; benchmarks/fit_speed.py measures speed."]
    for r in refs:
        kept = [x.get("kept_buffers_mb") for x in doc["runs"][r]]
        if any(k for k in kept if k):
            lines.append(f"Work buffers the fit keeps for the next one ({r}; released before each measured fit, "
                         "so counted in its peak): " + ", ".join(f"{k:.1f}" for k in kept if k is not None)
                         + " MiB.")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    ap.add_argument("--before-ref", default=None, help="commit of the previous code to measure beside (9e2be3b)")
    ap.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker is not None:
        print("RESULT " + json.dumps(worker(args.worker)), flush=True)
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s]
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()
    doc = {"date": time.strftime("%Y-%m-%d %H:%M"), "sizes": sizes,
           "command": " ".join(["benchmarks/bench_fit_memory.py"] + (argv if argv is not None else sys.argv[1:])),
           "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                       "platform": platform.platform()},
           "refs": [], "commits": {}, "runs": {}}
    trees = ([("before", args.before_ref)] if args.before_ref else []) + [("after", head)]
    for label, ref in trees:
        tree = make_tree(ref)
        doc["refs"].append(label)
        doc["commits"][label] = ref
        doc["runs"][label] = []
        try:
            for n in sizes:
                r = run_worker(tree, n)
                doc["runs"][label].append(r)
                if "extra_mb" in r:
                    print(f"{label} ({ref}) {n} snapshots: extra {r['extra_mb']:.1f} MiB (data {r['data_mb']:.1f} "
                          f"MiB), fit {r['fit_s']:.2f} s [{r['method']}]", flush=True)
                else:
                    print(f"{label} ({ref}) {n} snapshots: {r['error']}", flush=True)
        finally:
            drop_tree(tree)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fit_memory.json").write_text(json.dumps(doc, indent=1))
    md = markdown(doc)
    (RESULTS / "fit_memory.md").write_text(md + "\n")
    print()
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
