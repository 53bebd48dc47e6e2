"""The GPU section of benchmarks/bench_torch_core.py (and fit_speed.measure_gpu) run on the CPU with small
sizes: the code a GPU session runs in its few minutes of device time is exercised here, where no GPU is, so
that those minutes do not go into finding its bugs. The figures of a dry run mean nothing; the shape of the
results, finite states and a working fit do."""
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_torch_core  # noqa: E402
import fit_speed  # noqa: E402


def test_the_gpu_section_runs_on_the_cpu_with_small_sizes():
    g = bench_torch_core.gpu_section(True, device="cpu",
                                     sizes={"step_lattice": 5, "big_lattice": 6, "fit_snapshots": 300})
    assert "skipped" not in g and "dry run" in g["gpu"]
    steps = {k: v for k, v in g.items() if k.startswith("step_125_") and k.endswith("_s")}
    assert set(steps) == {f"step_125_{p}_{s}_s" for p in ("float64", "float32") for s in ("index_add", "csr")}
    assert all(v > 0 and math.isfinite(v) for v in steps.values())
    assert all(g[k[:-2] + "_finite"] for k in steps)
    r = g["rollout_10M"]
    assert r["particles"] == 216 and r["finite"] and r["seconds_per_step"] > 0 and r["peak_gpu_memory_gb"] is None
    f = g["fit_gpu"]
    assert f["n_snapshots"] == 300 and f["speedup"] > 0
    # the same fit on the same data in other batch sizes (4096 against 256 snapshots): the same test error up
    # to the summation order's effect at regularisation 1e-12 (~1e-3 relative here)
    assert f["cuda_test_mse"] < 1e-8 and math.isclose(f["cuda_test_mse"], f["cpu_test_mse"], rel_tol=1e-2)
    md = bench_torch_core.markdown({"gpu": g, "quick": True, "refs": [], "runs": {}, "commits": {}, "threads": [],
                                    "sections": ["gpu"], "targets": bench_torch_core.TARGETS, "date": "",
                                    "command": "", "machine": {"cpu_count": 2, "python": "", "torch": ""}})
    assert "learned step, 125 particles (float32_csr)" in md and "roll-out of 216 particles" in md


def test_without_cuda_the_gpu_section_says_why_it_skipped():
    import torch

    if torch.cuda.is_available():
        return  # on a GPU machine the section runs: nothing to skip
    g = bench_torch_core.gpu_section(True)
    assert "no CUDA GPU" in g["skipped"]
    assert fit_speed.measure_gpu(300) is None


def test_a_gpu_only_run_merged_into_the_results_keeps_the_before_and_after_columns(tmp_path):
    """--sections gpu --merge (what benchmarks/gpu_session.sh runs) keeps the earlier run's CPU sections with
    their code versions: the before/after columns under their own commits, not relabelled as this run's."""
    import json

    old = {"sections": ["fit", "gpu"], "refs": ["before", "after"],
           "commits": {"before": "b00e48d", "after": "80aa3de"}, "date": "2026-12-03 05:24", "threads": [1],
           "runs": {"before": {"t1": {"fit": {"ratio": 6.25}}}, "after": {"t1": {"fit": {"ratio": 3.05}}}},
           "gpu": {"skipped": "no CUDA GPU"}}
    path = tmp_path / "torch_core.json"
    path.write_text(json.dumps(old))
    doc = {"sections": ["gpu"], "refs": [], "commits": {}, "runs": {}, "threads": [1, 2], "gpu": {"gpu": "H200"}}
    bench_torch_core._merge(doc, path)
    assert doc["refs"] == ["before", "after"] and doc["commits"] == old["commits"]
    assert doc["runs"]["before"]["t1"]["fit"]["ratio"] == 6.25 and doc["runs"]["after"]["t1"]["fit"]["ratio"] == 3.05
    assert doc["gpu"] == {"gpu": "H200"} and doc["sections"] == ["fit", "gpu"]
    assert doc["kept_sections"]["fit"]["commits"] == old["commits"]
