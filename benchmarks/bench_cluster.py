"""Dask: a LocalCluster of 2 workers against one process (issue 15).

Sections (all on this machine, one run; docs/cluster.md discusses them):

``equal``   the 3x3x3 harmonic lattice, a chunked dataset (8 trajectories x
            201 frames in chunks of 200 snapshots): ``fit()`` on the data in
            memory, ``distributed_fit`` in this process and on 2 workers.
            Reports the relative differences of theta and the test error, at
            the default regularisation (1e-12) and at 1e-6, beside the
            difference ``fit()`` itself shows when only its batch size
            changes (256 -> 100): the scale of round-off through that solve;
            and whether in-process and 2 workers give the same bits. Times:
            best of 3 (the cluster warm).
``large``   a chunked dataset of S snapshots (quick: 100,000; --full:
            1,000,000) of the 3x3x3 lattice (S/1000 trajectories of 1000
            frames, chunks of 10,000), written by ``write_simulated``; then
            the in-process chunked fit in a fresh Python process at S/4 and
            S, and at S with chunks 4 times larger: its peak resident set during the fit (VmHWM after resetting
            it with /proc/self/clear_refs, minus the resident set before;
            the fixed costs warmed up by a small fit first) against the
            data's size, and the fit time; and the fit on 2 workers (time,
            the workers' peak RSS). The issue's 10,000,000 snapshots are
            extrapolated from these (time linear in S, memory flat).
``sweep``   8 sweep points (2x2x2 lattice, 4 trajectories, roll-out of 1000
            steps) one by one in this process against on 2 workers: points
            per second (the cluster's start-up reported apart).
``overhead`` per-task cost of Dask: 200 trivial tasks, one at a time (submit
            and wait: the round trip) and all at once (submit 200, gather).
``scaling`` seconds per chunk task (10,000 snapshots) here, in one worker
            alone, and in both workers at once: what two workers can gain
            on this machine while other jobs use its cores.

    nice -n 5 .venv/bin/python benchmarks/bench_cluster.py [--quick | --full] [--sections equal,large,sweep,overhead]

Writes benchmarks/results/cluster.json and cluster.md (merged by section
with ``--merge``).
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SECTIONS = ("equal", "large", "sweep", "overhead", "scaling")

_CHILD = r"""
import json, sys, time
from core.cluster.fit import distributed_fit
from core.learning.rfhgn.config import RFConfig
from core.learning.hgn import fixed

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0

warm, folder = sys.argv[1], sys.argv[2]
distributed_fit(warm, RFConfig())          # imports, BLAS buffers, torch's first allocations
fixed.release_workspace()
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    how = "clear_refs"
except OSError:
    how = "ru_maxrss"
before = status("VmRSS")
t = time.perf_counter()
m = distributed_fit(folder, RFConfig())
dt = time.perf_counter() - t
print(json.dumps({"fit_s": dt, "rss_before_mb": before, "peak_mb": status("VmHWM"), "how": how,
                  "n_train": m.info["n_snapshots"], "train_mse": m.info["train_mse"]}))
"""


def _load() -> float:
    return os.getloadavg()[0]


def _theta(m):
    return m.network.theta.detach().numpy().copy()


def _rel(a, b) -> float:
    return float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-300))


def _best(fn, repeat=3):
    out, times = None, []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, min(times), float(np.median(times))


def section_equal(client, tmp: Path) -> dict:
    from core.cluster.fit import distributed_fit
    from core.files.chunked import open_chunked, write_simulated
    from core.learning.metrics import derivative_mse
    from core.learning.rfhgn.config import RFConfig
    from core.learning.rfhgn.fitting import fit
    from core.physics import builders

    folder = tmp / "equal"
    write_simulated(folder, builders.BUILDERS["cubic"](3, 3, 3), 200, trajectories=8, steps=2000, save_every=10,
                    seed=0)
    src = open_chunked(folder)
    ds = src.to_dataset()
    rows = []
    for reg in (1e-12, 1e-6):
        cfg = RFConfig(regularisation=reg)
        m_fit, t_fit, _ = _best(lambda cfg=cfg: fit(ds, cfg))
        m_fit100 = fit(ds, cfg.replace(batch_size=100))
        m_local, t_local, _ = _best(lambda cfg=cfg: distributed_fit(src, cfg))
        distributed_fit(src, cfg, client)  # warm the workers (imports)
        m_dist, t_dist, t_dist_med = _best(lambda cfg=cfg: distributed_fit(src, cfg, client))
        e = {k: derivative_mse(m, ds, ds.test) for k, m in (("fit", m_fit), ("fit100", m_fit100),
                                                              ("dist", m_dist))}
        rows.append({
            "regularisation": reg, "snapshots": ds.n_snapshots, "train": len(ds.train), "chunks": src.n_chunks,
            "features": int(m_fit.network.L),
            "theta_rel_dist_vs_fit": _rel(_theta(m_fit), _theta(m_dist)),
            "theta_rel_fit_batch100_vs_fit": _rel(_theta(m_fit), _theta(m_fit100)),
            "test_mse_fit": e["fit"], "test_rel_dist_vs_fit": abs(e["dist"] - e["fit"]) / e["fit"],
            "test_rel_fit_batch100_vs_fit": abs(e["fit100"] - e["fit"]) / e["fit"],
            "dist_equals_in_process_bitwise": bool(np.array_equal(_theta(m_dist), _theta(m_local))),
            "sampled_network_equal": all(np.array_equal(v, m_dist.network.to_arrays()[k])
                                         for k, v in m_fit.network.to_arrays().items()),
            "fit_memory_s": t_fit, "chunked_in_process_s": t_local, "chunked_2_workers_s": t_dist,
            "chunked_2_workers_median_s": t_dist_med,
            "condition_estimate_q": m_fit.info["solve"].get("q", {}).get("condition_estimate"),
        })
    return {"rows": rows, "load": _load()}


def _child_fit(warm: Path, folder: Path) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", _CHILD, str(warm), str(folder)], capture_output=True, text=True,
                         env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def section_large(client, tmp: Path, size: int, chunk: int) -> dict:
    from core.cluster.fit import distributed_fit
    from core.files.chunked import write_simulated
    from core.learning.rfhgn.config import RFConfig
    from core.physics import builders

    system = builders.BUILDERS["cubic"](3, 3, 3)
    rows_chunk = chunk
    write_simulated(tmp / "warm", system, 500, trajectories=2, steps=499, save_every=1, seed=9)
    if client is not None:
        distributed_fit(tmp / "warm", RFConfig(), client)  # the workers' imports and first allocations
    rows = []
    for n, chunk in ((size // 4, rows_chunk), (size, rows_chunk), (size, 4 * rows_chunk)):  # noqa: B020
        folder = tmp / f"large{n}-{chunk}"
        t = time.perf_counter()
        write_simulated(folder, system, chunk, trajectories=n // 1000, steps=999, save_every=1, seed=1,
                        test_fraction=0.0)
        gen = time.perf_counter() - t
        disk = sum(f.stat().st_size for f in folder.iterdir())
        data_mb = n * system.n * system.dim * 8 * 4 / 2 ** 20
        child = _child_fit(tmp / "warm", folder)
        row = {"snapshots": n, "chunk_size": chunk, "chunks": -(-n // chunk), "generate_s": gen,
               "disk_mb": disk / 2 ** 20, "data_mb": data_mb, "chunk_data_mb": data_mb * chunk / n,
               "in_process_fit_s": child["fit_s"], "in_process_extra_mb": child["peak_mb"] - child["rss_before_mb"],
               "in_process_peak_mb": child["peak_mb"], "memory_method": child["how"],
               "per_snapshot_us": 1e6 * child["fit_s"] / n}
        if client is not None and chunk == rows_chunk:
            import resource

            client.run(lambda: None)
            t = time.perf_counter()
            m = distributed_fit(folder, RFConfig(), client)
            row["two_workers_fit_s"] = time.perf_counter() - t
            row["workers_max_rss_mb"] = sorted(v / 1024.0 for v in client.run(
                lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss).values())
            row["train_mse"] = m.info["train_mse"]
        rows.append(row)
        shutil.rmtree(folder)
    big = rows[1]
    S10 = 10_000_000
    extrap = {"snapshots": S10, "disk_gb": big["disk_mb"] / big["snapshots"] * S10 / 1024,
              "data_gb": big["data_mb"] / big["snapshots"] * S10 / 1024,
              "generate_s_one_process": big["generate_s"] / big["snapshots"] * S10,
              "in_process_fit_s": big["in_process_fit_s"] / big["snapshots"] * S10,
              "two_workers_fit_s": big.get("two_workers_fit_s", float("nan")) / big["snapshots"] * S10,
              "in_process_extra_mb": big["in_process_extra_mb"],
              "machine_memory_gb": _mem_gb()}
    return {"rows": rows, "extrapolated_10M": extrap, "load": _load()}


def _mem_gb() -> float:
    try:
        import psutil

        return psutil.virtual_memory().total / 2 ** 30
    except ImportError:  # pragma: no cover
        return float("nan")


def section_sweep(client, tmp: Path, n_points: int = 8) -> dict:
    from core.cluster.sweep import grid, run_sweep

    base = {"system": {"n": 2}, "data": {"trajectories": 4, "steps": 100}, "rollout": {"steps": 1000}}
    pts = grid({"node_width": [8, 16], "seed": list(range(n_points // 2))}, base)
    t = time.perf_counter()
    one = run_sweep(pts, tmp / "one.json")
    t_one = time.perf_counter() - t
    client.run(lambda: None)
    t = time.perf_counter()
    two = run_sweep(pts, tmp / "two.json", client)
    t_two = time.perf_counter() - t
    return {"points": len(pts), "one_by_one_s": t_one, "two_workers_s": t_two,
            "points_per_s_one": one.computed / t_one, "points_per_s_two": two.computed / t_two,
            "speedup": t_one / t_two, "load": _load()}


def _chunk_times(folder: str, network, n: int) -> list:
    from core.cluster.fit import chunk_equations
    from core.learning.rfhgn.config import RFConfig

    out = []
    for k in range(n):
        t = time.perf_counter()
        chunk_equations(folder, k, network, RFConfig().to_dict())
        out.append(time.perf_counter() - t)
    return out


def section_scaling(client, tmp: Path) -> dict:
    """Seconds per 10,000-snapshot chunk task: here, in one worker while the other idles, and in both at once."""
    from core.cluster.fit import distributed_fit
    from core.files.chunked import write_simulated
    from core.learning.rfhgn.config import RFConfig
    from core.physics import builders

    folder = tmp / "scaling"
    write_simulated(folder, builders.BUILDERS["cubic"](3, 3, 3), 10_000, trajectories=30, steps=999, save_every=1,
                    seed=3, test_fraction=0.0)
    net = distributed_fit(folder, RFConfig(sample_points=500)).network
    here = _chunk_times(str(folder), net, 3)
    workers = list(client.nthreads())
    alone = client.submit(_chunk_times, str(folder), net, 3, workers=workers[:1], pure=False).result()
    both = [f.result() for f in [client.submit(_chunk_times, str(folder), net, 3, workers=[w], pure=False)
                                 for w in workers]]
    return {"chunk_snapshots": 10_000, "here_s": here, "one_worker_alone_s": alone, "both_workers_s": both,
            "load": _load()}


def _noop(x):
    return x


def section_overhead(client, n: int = 200) -> dict:
    client.submit(_noop, -1, pure=False).result()
    t = time.perf_counter()
    for i in range(n):
        client.submit(_noop, i, pure=False).result()
    rt = (time.perf_counter() - t) / n
    t = time.perf_counter()
    fs = [client.submit(_noop, i, pure=False) for i in range(n)]
    client.gather(fs)
    batch = (time.perf_counter() - t) / n
    return {"tasks": n, "round_trip_ms": 1e3 * rt, "batched_ms_per_task": 1e3 * batch, "load": _load()}


def markdown(doc: dict) -> str:
    out = ["# Dask cluster (issue 15)", "",
           f"{doc.get('date')}, commit {doc.get('commit')}, {doc.get('cores')} cores, "
           f"{doc.get('machine')}; LocalCluster of 2 worker processes, 1 thread each. Load average at each section "
           "in its table (this machine is shared: 2 cores, several jobs).", ""]
    runs = doc.get("section_runs") or {}
    if runs:
        out += ["Sections run: " + "; ".join(f"{k} {v}" for k, v in runs.items()) + ".", ""]
    if "equal" in doc:
        out += ["## Same result (3x3x3 lattice, chunked)", "",
                "| reg | snapshots (train) | chunks | theta rel. diff. 2 workers vs fit() | fit() batch 100 vs 256 | "
                "test MSE | test rel. diff. vs fit() | fit() batch 100 vs 256 | 2 workers == in-process (bits) | "
                "fit() s | chunked in-process s | chunked 2 workers s |", "|" + " --- |" * 12]
        for r in doc["equal"]["rows"]:
            out.append(f"| {r['regularisation']:g} | {r['snapshots']} ({r['train']}) | {r['chunks']} | "
                       f"{r['theta_rel_dist_vs_fit']:.2e} | {r['theta_rel_fit_batch100_vs_fit']:.2e} | "
                       f"{r['test_mse_fit']:.3e} | {r['test_rel_dist_vs_fit']:.2e} | "
                       f"{r['test_rel_fit_batch100_vs_fit']:.2e} | {r['dist_equals_in_process_bitwise']} | "
                       f"{r['fit_memory_s']:.3f} | {r['chunked_in_process_s']:.3f} | {r['chunked_2_workers_s']:.3f} |")
        out += ["", f"load {doc['equal']['load']:.1f}. The sampled network is the same in all three "
                    f"({all(r['sampled_network_equal'] for r in doc['equal']['rows'])}); theta differs only by "
                    "the order of the sums, amplified by the solve's conditioning, as much as fit() differs from "
                    "itself with another batch size.", ""]
    if "large" in doc:
        L = doc["large"]
        out += ["## Large chunked dataset (3x3x3 lattice)", "",
                "| snapshots | chunk size | chunks | data MB (q,p,dq/dt,dp/dt) | disk MB | generate s | "
                "in-process fit s | "
                "us/snapshot | fit's extra RSS MB | 2 workers fit s | workers' max RSS MB |", "|" + " --- |" * 11]
        for r in L["rows"]:
            out.append(f"| {r['snapshots']:,} | {r['chunk_size']:,} | {r['chunks']} | {r['data_mb']:.0f} | "
                       f"{r['disk_mb']:.0f} | "
                       f"{r['generate_s']:.1f} | {r['in_process_fit_s']:.1f} | {r['per_snapshot_us']:.1f} | "
                       f"{r['in_process_extra_mb']:.1f} | {r.get('two_workers_fit_s', float('nan')):.1f} | "
                       f"{', '.join(f'{x:.0f}' for x in r.get('workers_max_rss_mb', []))} |")
        e = L["extrapolated_10M"]
        out += ["", f"load {L['load']:.1f}; memory: {L['rows'][0]['memory_method']}. Extrapolated to the issue's "
                    f"10,000,000 snapshots (time linear in S, memory flat): {e['data_gb']:.1f} GB of data "
                    f"({e['disk_gb']:.1f} GB on disk; this machine has {e['machine_memory_gb']:.0f} GB), generation "
                    f"{e['generate_s_one_process'] / 60:.0f} min in one process, the in-process fit "
                    f"{e['in_process_fit_s'] / 60:.0f} min with {e['in_process_extra_mb']:.0f} MB beyond the "
                    f"process's start, on 2 workers {e['two_workers_fit_s'] / 60:.0f} min.", ""]
    if "sweep" in doc:
        s = doc["sweep"]
        out += ["## Sweep throughput", "", "| points | one by one s | 2 workers s | points/s one | points/s two | "
                "speed-up |", "|" + " --- |" * 6,
                f"| {s['points']} | {s['one_by_one_s']:.2f} | {s['two_workers_s']:.2f} | "
                f"{s['points_per_s_one']:.2f} | {s['points_per_s_two']:.2f} | {s['speedup']:.2f} |", "",
                f"load {s['load']:.1f}; cluster start-up {doc.get('cluster_start_s', float('nan')):.1f} s "
                "(not included).", ""]
    if "scaling" in doc:
        c = doc["scaling"]
        med = lambda xs: float(np.median(xs))  # noqa: E731
        out += ["## Two workers on this machine", "",
                f"Seconds per chunk task ({c['chunk_snapshots']:,} snapshots): in this process "
                f"{med(c['here_s']):.2f}, in one worker while the other idles {med(c['one_worker_alone_s']):.2f}, "
                f"in both workers at once {', '.join(f'{med(x):.2f}' for x in c['both_workers_s'])} (load "
                f"{c['load']:.1f}): a worker computes as fast as this process; two at once slow each other down as "
                "far as the machine's 2 cores are taken by other jobs.", ""]
    if "overhead" in doc:
        o = doc["overhead"]
        out += ["## Per-task overhead", "", f"{o['tasks']} trivial tasks: {o['round_trip_ms']:.2f} ms each "
                f"submitted one at a time and waited for (round trip), {o['batched_ms_per_task']:.2f} ms each "
                f"submitted together (load {o['load']:.1f}).", ""]
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (default)")
    ap.add_argument("--full", action="store_true", help="the large section at 1,000,000 snapshots")
    ap.add_argument("--size", type=int, default=None, help="snapshots of the large section")
    ap.add_argument("--chunk", type=int, default=10_000, help="chunk size of the large section")
    ap.add_argument("--sections", default=",".join(SECTIONS))
    ap.add_argument("--merge", action="store_true", help="keep the other sections of an existing cluster.json")
    ap.add_argument("--markdown-only", action="store_true", help="rewrite cluster.md from cluster.json")
    args = ap.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    size = args.size or (1_000_000 if args.full else 100_000)
    from core.cluster.engine import close, connect

    doc = {}
    path = RESULTS / "cluster.json"
    if (args.merge or args.markdown_only) and path.exists():
        doc = json.loads(path.read_text())
    if args.markdown_only:
        (RESULTS / "cluster.md").write_text(markdown(doc))
        print(markdown(doc))
        return 0
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    doc.update(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), commit=commit, cores=os.cpu_count(),
               machine=f"{platform.machine()}, Python {platform.python_version()}")
    stamp = f"{doc['date']}, commit {commit}"
    doc.setdefault("section_runs", {}).update({sec: stamp for sec in sections})
    t = time.perf_counter()
    client = connect(2)
    doc["cluster_start_s"] = time.perf_counter() - t
    print(f"cluster started in {doc['cluster_start_s']:.1f} s", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench_cluster_"))
    try:
        if "overhead" in sections:
            doc["overhead"] = section_overhead(client)
            print(json.dumps(doc["overhead"]), flush=True)
        if "scaling" in sections:
            doc["scaling"] = section_scaling(client, tmp)
            print(json.dumps(doc["scaling"]), flush=True)
        if "equal" in sections:
            doc["equal"] = section_equal(client, tmp)
            print(json.dumps(doc["equal"], indent=1), flush=True)
        if "sweep" in sections:
            doc["sweep"] = section_sweep(client, tmp)
            print(json.dumps(doc["sweep"]), flush=True)
        if "large" in sections:
            doc["large"] = section_large(client, tmp, size, args.chunk)
            print(json.dumps(doc["large"], indent=1), flush=True)
    finally:
        close(client)
        shutil.rmtree(tmp, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, allow_nan=True))
    (RESULTS / "cluster.md").write_text(markdown(doc))
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
