"""The benchmark suite's short (CI) mode runs end to end and writes
well-formed JSON, Markdown and PNG files with sane numbers."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TABLES = ("optimizers", "potentials", "zero_shot", "scaling", "molecular")


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("suite")
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, "-m", "benchmarks.suite", "--short", "--out", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    docs = {n: json.loads((out / f"suite_{n}.json").read_text()) for n in TABLES}
    return out, docs, proc.stdout


def _finite(x):
    return x is not None and math.isfinite(x)


def test_every_output_exists_and_is_well_formed(short_run):
    out, docs, stdout = short_run
    for name in TABLES:
        doc = docs[name]
        assert doc["table"] == name
        assert doc["mode"]["short"] is True
        assert doc["machine"]["cores"] >= 1 and doc["machine"]["torch"]
        assert 0 < doc["seconds"] < 120
    for name in ("optimizers", "potentials", "zero_shot", "scaling"):
        png = (out / f"suite_{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    md = (out / "suite.md").read_text()
    for title in ("1. Optimizers", "2. Potentials", "3. Zero-shot", "4. Scaling", "5. Molecular dynamics"):
        assert f"## {title}" in md
    assert md.count("| method |") >= 2 and "suite_optimizers.png" in md
    assert "all done" in stdout


def test_optimizer_table_has_rf_rows_and_all_fifteen_optimizers(short_run):
    from core.learning.baselines import OPTIMIZERS

    doc = short_run[1]["optimizers"]
    rows = doc["rows"]
    rf = [r for r in rows if r["kind"] == "rf"]
    bl = [r for r in rows if r["kind"] == "baseline"]
    assert [r["key"] for r in bl] == list(OPTIMIZERS)
    assert [r["key"] for r in rf] == ["rf_swim", "rf_elm", "rf_swim_frame", "rf_hnn"]
    ref = doc["reference"]
    assert ref["method"] == rf[0]["method"]
    # RF-HGN fits the harmonic lattice well and fast
    assert _finite(ref["test_mse"]) and 0 <= ref["test_mse"] < 1e-4
    assert 0 < ref["time"] < 10
    for r in bl:
        assert r["time"] > 0 and r["epochs"] >= 1
        assert r["stop_reason"] in ("time budget", "early stopping", "max epochs") or r["stop_reason"].startswith("diverged")
        assert r["speedup"] == pytest.approx(r["time"] / ref["time"])
        assert r["test_mse"] is None or r["test_mse"] >= 0
        if r["time_to_reach_rf"] is None:
            assert r["speedup_equal_accuracy_lower_bound"] == pytest.approx(r["speedup"])
        assert len(doc["curves"][r["key"]]["monitor"]) >= 2
    # the claim: RF-HGN is no less accurate than Adam and LBFGS
    for key in ("adam", "lbfgs"):
        row = next(r for r in bl if r["key"] == key)
        assert _finite(row["test_mse"]) and row["test_mse"] >= ref["test_mse"]
        assert doc["targets"][key]["rf_error_no_worse"]
    ro = rf[0]["rollout"]
    assert 0 <= ro["final_zerr"] < 1e-3 and ro["max_abs_drift"] < 1e-2


def test_potential_table(short_run):
    rows = short_run[1]["potentials"]["rows"]
    assert [r["potential"] for r in rows] == ["harmonic", "anharmonic", "morse"]
    for r in rows:
        for k in ("adam", "elm", "swim"):
            assert _finite(r[k]["test_mse"]) and r[k]["test_mse"] >= 0 and r[k]["time"] > 0
        assert r["swim"]["test_mse"] < r["adam"]["test_mse"]


def test_zero_shot_table(short_run):
    series = short_run[1]["zero_shot"]["series"]
    names = [s["name"] for s in series]
    assert any("2x2x2" in n for n in names) and any("2x2" in n and "frame" in n for n in names)
    three_d = series[0]
    assert [r["particles"] for r in three_d["rows"]] == [8, 64]
    for s in series:
        for r in s["rows"]:
            if "failed" in r:
                continue
            assert 0 <= r["final_zerr"] <= 1 and r["seconds_per_step"] > 0
    # the invariant model carries over to the larger lattice
    assert three_d["rows"][-1]["final_zerr"] < 1e-3
    # the RF-HNN (no graph) runs on its own size and cannot be applied to another
    hnn = next(s for s in series if "RF-HNN" in s["name"])
    assert "failed" not in hnn["rows"][0] and "cannot be applied" in hnn["rows"][1]["failed"]


def test_scaling_table(short_run):
    doc = short_run[1]["scaling"]
    for r in doc["snapshots"]:
        assert r["rows"] == 2 * r["snapshots"] * 27 * 3 and r["time"] > 0 and r["peak_mib"] > 0
    assert [r["particles"] for r in doc["particles"]] == [8, 27]
    assert doc["width"][1]["features"] > doc["width"][0]["features"]
    for r in doc["rollout"]:
        assert r["seconds_per_step"] > 0 and r["truth_seconds_per_step"] > 0
    assert doc["max_rss_mib"] > 0


def test_molecular_table(short_run):
    doc = short_run[1]["molecular"]
    rows = doc["rows"]
    assert rows[0]["method"].startswith("RF-HGN")
    assert len(rows) >= 2
    for r in rows:
        assert 0 <= r["relative_error"] < 10 and r["time"] > 0
    assert doc["task"]["particles"] == 125 and doc["task"]["cutoff"] == 2.5
    assert rows[0]["relative_error"] < 0.5
