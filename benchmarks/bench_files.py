"""Reading files: bounded cost of crafted files, and the speed of a large valid one (issue 11, files).

What is measured, each in a fresh process (``python -m core info FILE`` for the
crafted files, a small loader script for the valid one), for this tree and
optionally an older commit (``--before-ref 9e2be3b``: a temporary ``git
worktree``, run with PYTHONPATH set to it, since the venv has the project
installed from /work/main):

* crafted files (made once, by this script): a 1 GiB float64 member deflated
  into ~1 MB (``bomb.npz``), an array header claiming 10^11 x 2 elements in a
  few bytes (``lie.npz``), a 100,000-deep JSON header (``deep.npz``), an XYZ
  file whose atom count says 99999999999 (``count.xyz``) and one whose ``hgn``
  record inflates ~0.4 MB into 400 MB (``inflate.xyz``): exit code, wall time
  (killed after ``--timeout`` s), peak resident memory of the child
  (``ru_maxrss`` from wait4), the first line of its error output;
* a valid 128 MiB dataset-sized container (4 float64 arrays of 4e6), saved by
  each version: best of 5 loads of ``core.container.load_npz`` in one process.

    .venv/bin/python benchmarks/bench_files.py [--before-ref 9e2be3b] [--timeout 60]

Prints a table and writes benchmarks/results/files.json and files.md.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "tests" / "core"))

from file_cases import deflate_bomb, header_member, npy_bytes, write_raw, zip_members  # noqa: E402

LOAD_SCRIPT = """
import sys, time, tempfile, numpy as np
from pathlib import Path
from core.container import save_npz, load_npz
d = Path(tempfile.mkdtemp())
p = save_npz(d / "big.npz", "x", {}, {f"a{i}": np.random.default_rng(i).standard_normal(4_000_000) for i in range(4)})
times = []
for _ in range(5):
    t = time.perf_counter(); load_npz(p); times.append(time.perf_counter() - t)
print(min(times))
"""


def crafted(folder: Path) -> dict[str, Path]:
    head = {"format": "hgn-studio", "version": 1, "kind": "dataset"}
    out = {"bomb.npz": deflate_bomb(folder / "bomb.npz", head, nbytes=2**30)}
    out["lie.npz"] = zip_members(folder / "lie.npz", {
        "__header__.npy": header_member({**head, "kind": "system"}),
        "positions.npy": npy_bytes({"descr": "<f8", "fortran_order": False, "shape": (10**11, 2)}, bytes(64))})
    out["deep.npz"] = write_raw(folder / "deep.npz", '{"format": "hgn-studio", "version": 1, "kind": "system", "x": '
                                + "[" * 100_000 + "]" * 100_000 + "}", {})
    (folder / "count.xyz").write_text("99999999999\ncomment\nX 0 0 0\nX 1 0 0\n")
    out["count.xyz"] = folder / "count.xyz"
    doc = b'{"format": "hgn-studio", "version": 1, "pad": "' + b"a" * (400 * 2**20) + b'"}'
    record = base64.urlsafe_b64encode(zlib.compress(doc, 9)).decode().rstrip("=")
    (folder / "inflate.xyz").write_text(f"1\nhgn={record} time=0.0\nX 0 0 0\n")
    out["inflate.xyz"] = folder / "inflate.xyz"
    return out


def run(tree: Path, args: list[str], timeout: float) -> dict:
    """Run ``python ARGS`` with PYTHONPATH=tree; its own peak RSS from wait4 (killed after ``timeout`` s)."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, *args], stdout=out, stderr=err, env=env, cwd=str(tree))
        timed_out = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - t0 > timeout:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                timed_out = True
                break
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    lines = stderr.strip().splitlines()
    return {"code": None if timed_out else proc.returncode, "timed_out": timed_out, "wall_s": round(wall, 2),
            "max_rss_mb": round(usage.ru_maxrss / 1024, 1), "stderr_lines": len(lines),
            "first_line": lines[0][:160] if lines else "", "last_line": lines[-1][:160] if lines else "",
            "stdout": stdout.strip()[:80]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before-ref", default=None)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--make-files", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.make_files:  # in a child: the crafting needs ~1 GB, which forked children would report as theirs
        crafted(Path(a.make_files))
        return 0
    trees = {"now": ROOT}
    tmp = Path(tempfile.mkdtemp(prefix="bench-files-"))
    if a.before_ref:
        wt = tmp / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(wt), a.before_ref], check=True,
                       capture_output=True)
        trees = {a.before_ref: wt, "now": ROOT}
    subprocess.run([sys.executable, __file__, "--make-files", str(tmp)], check=True)
    files = {n: tmp / n for n in ("bomb.npz", "lie.npz", "deep.npz", "count.xyz", "inflate.xyz")}
    results: dict = {"machine": platform.platform(), "python": platform.python_version(),
                     "load_avg_before": os.getloadavg()[0], "crafted": {}, "load_128mb_s": {}}
    try:
        for name, path in files.items():
            results["crafted"][name] = {"size_bytes": path.stat().st_size}
            for label, tree in trees.items():
                r = run(tree, ["-m", "core", "info", str(path)], a.timeout)
                results["crafted"][name][label] = r
                print(f"{name:12s} {label:8s} exit {r['code']!s:5s} {r['wall_s']:7.2f} s  max RSS "
                      f"{r['max_rss_mb']:8.1f} MB  {r['stderr_lines']} lines, last: {r['last_line'][:80]}",
                      flush=True)
        for _ in range(2):  # interleaved
            for label, tree in trees.items():
                r = run(tree, ["-c", LOAD_SCRIPT], 600)
                best = float(r["stdout"]) if r["code"] == 0 else None
                results["load_128mb_s"].setdefault(label, []).append(best)
                print(f"load 128 MiB {label:8s} best of 5: {best}", flush=True)
    finally:
        if a.before_ref:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tmp / "before")],
                           capture_output=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "files.json").write_text(json.dumps(results, indent=1))
    md = ["# Reading crafted and large files (benchmarks/bench_files.py)", "",
          f"Machine: {results['machine']}, Python {results['python']}, load average before "
          f"{results['load_avg_before']:.1f}. `python -m core info FILE` per row, in a fresh process; max RSS: "
          "the child's peak resident set (wait4; Linux counts the parent's ~65 MB at fork in it); killed after "
          "the timeout (exit None); lines: of its error "
          "output.", "",
          "| file | size | version | exit | wall s | max RSS MB | lines | last line of the error output |",
          "|---|---|---|---|---|---|---|---|"]
    for name, entry in results["crafted"].items():
        for label in trees:
            r = entry[label]
            msg = r["last_line"].replace("|", "/")[:100]
            md.append(f"| {name} | {entry['size_bytes']} | {label} | {r['code']} | {r['wall_s']} | "
                      f"{r['max_rss_mb']} | {r['stderr_lines']} | {msg} |")
    md += ["", "Loading a valid 128 MiB container (best of 5, two interleaved runs): "
           + ", ".join(f"{k}: {', '.join(f'{v * 1e3:.0f} ms' for v in vs if v is not None)}"
                       for k, vs in results["load_128mb_s"].items())]
    (RESULTS / "files.md").write_text("\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
