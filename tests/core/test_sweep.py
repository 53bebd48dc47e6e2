"""Sweeps (core/cluster/sweep.py) and the CLI of issue 15, on a real LocalCluster of 2 worker processes:
a small sweep, a worker killed mid-sweep (its points rerun, nothing finished lost, every point once),
a restart that skips finished points, the sweep and train --data DIR commands."""
from __future__ import annotations

import csv
import json
import os
import signal
import threading

import numpy as np
import pytest

from core.cli.app import main
from core.errors import Cancelled, HGNError

pytest.importorskip("distributed")

from core.cluster.sweep import (grid, load_results, make_point, point_key, random_points,  # noqa: E402
                                run_point, run_sweep)

#: small points: a 2x2x2 lattice, 4 trajectories; the long roll-out keeps a task busy ~0.5-1 s (to kill it)
BASE = {"system": {"n": 2}, "data": {"trajectories": 4, "steps": 100}, "rollout": {"steps": 100}}
SLOW = {"system": {"n": 2}, "data": {"trajectories": 4, "steps": 100}, "rollout": {"steps": 3000}}


@pytest.fixture(scope="module")
def client():
    from core.cluster.engine import close, connect

    c = connect(2)
    yield c
    close(c)


def test_points_and_keys():
    a = make_point({"node_width": 32, "reg": 1e-8}, BASE)
    b = make_point({"fit.regularisation": 1e-8, "fit.node_width": 32}, BASE)
    assert point_key(a) == point_key(b) and a["fit"] == {"node_width": 32, "regularisation": 1e-8}
    # a default value is not a setting of its own: same key as leaving it out
    assert point_key(make_point({"node_width": 16}, BASE)) == point_key(make_point({}, BASE))
    pts = grid({"node_width": [8, 16, 8], "seed": [0, 1]}, BASE)
    assert len(pts) == 4 and len({point_key(p) for p in pts}) == 4
    r = random_points({"node_width": [8, 16], "reg": ("log", 1e-12, 1e-6)}, 5, seed=3, base=BASE)
    assert len(r) == 5 and all(1e-12 <= p["fit"]["regularisation"] <= 1e-6 for p in r)
    assert [point_key(p) for p in r] == [point_key(p) for p in random_points(
        {"node_width": [8, 16], "reg": ("log", 1e-12, 1e-6)}, 5, seed=3, base=BASE)]
    with pytest.raises(HGNError, match="fit.bogus is not an RF-HGN setting"):
        make_point({"fit.bogus": 1})
    with pytest.raises(HGNError, match="sweep axis 'wdth' is not a setting"):
        make_point({"wdth": 1})


def test_random_ranges_draw_inside_the_range():
    """A range lo:hi is drawn from, not just its ends: log-uniform for the scale-like settings (regularisation,
    swim_scale: as many draws per decade), uniform for the others or when the range says so, whole numbers
    for whole-number settings; the same seed gives the same points, and lists are still drawn from."""
    from core.cluster.sweep import Range, range_scale

    assert (range_scale("reg"), range_scale("fit.swim_scale"), range_scale("node_width")) == ("log",) * 3
    assert (range_scale("elm_bias"), range_scale("seed"), range_scale("data.test_fraction")) == ("uniform",) * 3
    space = {"reg": "1e-10:1e-4", "swim_scale": Range(0.05, 0.5, "uniform"), "node_width": "8:64",
             "fit.elm_bias": "0.5:2", "sampler": ["swim", "elm"]}
    pts = random_points(space, 40, seed=5, base=BASE)
    assert len(pts) == 40
    reg = np.array([p["fit"]["regularisation"] for p in pts])
    swim = np.array([p["fit"].get("swim_scale", 0.2) for p in pts])
    width = [p["fit"].get("node_width", 16) for p in pts]
    bias = np.array([p["fit"].get("elm_bias", 1.0) for p in pts])
    assert ((reg >= 1e-10) & (reg <= 1e-4)).all() and len(set(reg)) == 40
    assert 10 <= (reg < 1e-7).sum() <= 30  # log-uniform: half below the geometric middle (uniform: ~0.1 %)
    assert ((swim >= 0.05) & (swim <= 0.5)).all() and len(set(swim)) == 40
    assert 10 <= (swim < 0.275).sum() <= 30  # uniform as asked (log-uniform: ~70 % below the middle)
    assert all(isinstance(w, int) and 8 <= w <= 64 for w in width) and len(set(width)) >= 10
    assert ((bias >= 0.5) & (bias <= 2)).all() and 10 <= (bias < 1.25).sum() <= 30
    assert {p["fit"].get("sampler", "swim") for p in pts} == {"swim", "elm"}
    again = random_points(dict(space), 40, seed=5, base=BASE)
    assert [point_key(p) for p in again] == [point_key(p) for p in pts]
    other = random_points(dict(space), 40, seed=6, base=BASE)
    assert not {point_key(p) for p in other} & {point_key(p) for p in pts}
    # the scale can be named: uniform over 1e-10..1e-4 puts almost every draw above 1e-7
    flat = random_points({"reg": "1e-10:1e-4:uniform"}, 20, seed=5, base=BASE)
    assert sum(p["fit"]["regularisation"] > 1e-7 for p in flat) >= 18


@pytest.mark.parametrize("axis, text, message", [
    ("reg", "1e-4:1e-10", "'reg'.*1e-4:1e-10.*lo must be below hi"),
    ("reg", "1e-6:1e-6", "'reg'.*lo must be below hi"),
    ("reg", "abc:1e-6", "'reg'.*'abc' is not a number"),
    ("reg", "1e-8:nan", "'reg'.*'nan' is not a number"),
    ("reg", "0:1e-6", "'reg'.*log-uniform.*lo > 0.*:uniform"),
    ("reg", "1e-8:1e-6:cubic", "'reg'.*scale 'cubic'.*log or uniform"),
    ("reg", "1:2:3:4", "'reg'.*lo:hi"),
    ("sampler", "1:2", "'sampler'.*fit.sampler is a choice \\(swim, elm, adaptive\\)"),
    ("kind", "1:3", "'kind'.*system.kind is a choice"),
    ("pool_edges", "0:1", "'pool_edges'.*fit.pool_edges is on/off"),
    ("node_width", "8.5:64", "'node_width'.*whole numbers"),
])
def test_malformed_ranges_refused(axis, text, message):
    with pytest.raises(HGNError, match=message):
        random_points({axis: text}, 3, base=BASE)
    with pytest.raises(HGNError, match=f"sweep axis '{axis}'.*random"):
        grid({axis: text}, BASE)  # a grid takes values, not a range


def test_run_point_measures():
    res = run_point(make_point({}, BASE))
    assert 0 < res["test_mse"] < 1e-6 and res["n_train"] > 0 and not res["diverged"]
    assert 0 <= res["rollout_final_mse"] <= res["rollout_max_mse"] < 1e-3
    assert res["rollout_max_drift"] < 1e-2 and res["peak_rss_mb"] > 10
    assert res["total_s"] >= res["fit_s"] > 0


def test_sweep_on_cluster_and_restart(client, tmp_path):
    out = tmp_path / "s.json"
    pts = grid({"node_width": [8, 16], "seed": [0, 1]}, BASE)
    seen = []
    r = run_sweep(pts[:3], out, client, on_result=seen.append)
    assert (r.computed, r.skipped, r.failed) == (3, 0, 0) and len(seen) == 3
    recs = load_results(out)
    assert sorted(x["key"] for x in recs) == sorted(point_key(p) for p in pts[:3])
    workers = {x["result"]["worker"] for x in recs}
    assert all(str(os.getpid()) not in w for w in workers)  # computed on the workers, not here
    # the same result as the point run here (deterministic data and fit)
    one = run_point(pts[0])
    rec0 = next(x for x in recs if x["key"] == point_key(pts[0]))
    assert rec0["result"]["test_mse"] == pytest.approx(one["test_mse"], rel=1e-9)
    before = {x["key"]: x["finished"] for x in recs}
    # restart with one more point: the finished three are not recomputed
    r2 = run_sweep(pts, out, client)
    assert (r2.computed, r2.skipped) == (1, 3)
    recs2 = load_results(out)
    assert len(recs2) == 4
    assert all(x["finished"] == before[x["key"]] for x in recs2 if x["key"] in before)
    # the CSV beside it: one row per point
    rows = list(csv.DictReader(open(out.with_suffix(".csv"))))
    assert sorted(r["key"] for r in rows) == sorted(point_key(p) for p in pts)
    assert len(rows) == 4 and all(r["status"] == "ok" and float(r["test_mse"]) > 0 for r in rows)
    # in this process, nothing left to do
    assert run_sweep(pts, out).computed == 0


def test_failed_point_recorded(client, tmp_path):
    out = tmp_path / "f.json"
    bad = make_point({"kind": "chain", "n": 1}, BASE)  # a chain needs 2 particles: the point fails, the sweep not
    good = make_point({}, BASE)
    r = run_sweep([bad, good], out, client)
    assert (r.computed, r.failed) == (2, 1)
    rec = {x["key"]: x for x in load_results(out)}
    assert rec[point_key(bad)]["status"] == "error" and "chain" in rec[point_key(bad)]["error"]
    assert rec[point_key(good)]["status"] == "ok"
    assert run_sweep([bad, good], out, client).computed == 0
    assert run_sweep([bad, good], out, client, rerun_failed=True).computed == 1


def test_worker_killed_mid_sweep(tmp_path):
    """SIGKILL a worker while it runs a point: that point and its queue are rerun elsewhere, every point
    appears exactly once with status ok, and the points finished before the kill are kept as they were."""
    from core.cluster.engine import engine

    out = tmp_path / "k.json"
    pts = grid({"node_width": [8, 16], "seed": [0, 1, 2]}, SLOW)
    with engine(2) as client:
        killed = {}

        def on_result(rec):
            if killed:
                return
            proc = client.processing()
            busy = [w for w, keys in proc.items() if keys]
            if not busy:
                return
            w = busy[0]
            pid = client.run(os.getpid, workers=[w])[w]
            killed.update(pid=pid, keys=[k.split("-")[2] for k in proc[w]],
                          before={x["key"]: x for x in load_results(out)})
            os.kill(pid, signal.SIGKILL)

        r = run_sweep(pts, out, client, on_result=on_result)
    assert killed, "no worker was busy when the first point finished"
    recs = load_results(out)
    keys = [x["key"] for x in recs]
    assert sorted(keys) == sorted(point_key(p) for p in pts) and len(keys) == len(set(keys)) == 6
    assert all(x["status"] == "ok" for x in recs) and r.computed == 6
    # the points the dead worker held were finished by another process
    for k in killed["keys"]:
        rec = next(x for x in recs if x["key"] == k)
        assert not rec["result"]["worker"].endswith(f":{killed['pid']}")
    # nothing finished before the kill was lost or changed
    final = {x["key"]: x for x in recs}
    assert killed["before"] and all(final[k] == v for k, v in killed["before"].items())


def test_cancel_keeps_finished_points(client, tmp_path):
    out = tmp_path / "c.json"
    pts = grid({"node_width": [8, 16], "seed": [0, 1, 2]}, SLOW)
    flag = threading.Event()
    with pytest.raises(Cancelled):
        run_sweep(pts, out, client, cancel=flag, on_result=lambda rec: flag.set())
    done = load_results(out)
    assert 1 <= len(done) < 6 and all(x["status"] == "ok" for x in done)
    # the cluster is free again: a following sweep runs (and skips what was finished)
    r = run_sweep(pts[:2], out, client)
    assert r.computed + r.skipped == 2


def test_damaged_output_refused(tmp_path):
    out = tmp_path / "d.json"
    out.write_text("[1, 2")
    with pytest.raises(HGNError, match="not a sweep result file"):
        run_sweep([make_point({}, BASE)], out)
    out.write_text(json.dumps({"format": "hgn-sweep", "version": 1, "points": [{"key": 3}]}))
    with pytest.raises(HGNError, match=r"points\[0\] is not a sweep record"):
        run_sweep([make_point({}, BASE)], out)


def test_journal_with_a_torn_last_line(tmp_path, monkeypatch):
    """The process dies while appending a point to the journal (no summary written): a restart keeps the
    points whose lines are complete, as they were, and reruns the torn one; the summary then holds each
    point once and the journal is gone. A damaged complete line is refused."""
    from core.cluster.sweep import SweepFile

    out = tmp_path / "t.json"
    journal = out.with_suffix(".journal.jsonl")
    pts = grid({"node_width": [8, 16, 24]}, BASE)
    lines_seen = []

    def crash_after_two(rec):
        lines_seen.append(journal.read_text().count("\n"))  # each point is on disk when it is reported
        if len(lines_seen) == 2:
            raise KeyboardInterrupt  # stands for a SIGKILL: ...

    with monkeypatch.context() as m:
        m.setattr(SweepFile, "write", lambda self: None)  # ... so no summary is written
        with pytest.raises(KeyboardInterrupt):
            run_sweep(pts, out, on_result=crash_after_two)
    assert lines_seen == [1, 2] and not out.exists() and not out.with_suffix(".csv").exists()
    kept = {x["key"]: x for x in load_results(out)}
    assert len(kept) == 2
    third = make_point(base=pts[2])
    torn = json.dumps({"key": point_key(third), "settings": third, "status": "ok"})[:-7]
    with open(journal, "a") as fh:  # the crash left part of the third point's line
        fh.write(torn)
    assert {x["key"]: x for x in load_results(out)} == kept  # the torn line is not a point
    r = run_sweep(pts, out)
    assert (r.computed, r.skipped) == (1, 2)
    recs = load_results(out)
    assert [x["key"] for x in recs] == [point_key(p) for p in pts] and all(x["status"] == "ok" for x in recs)
    assert all(x == kept[x["key"]] for x in recs if x["key"] in kept)
    assert not journal.exists()
    rows = list(csv.DictReader(open(out.with_suffix(".csv"))))
    assert [r["key"] for r in rows] == [point_key(p) for p in pts]
    # a restart after a complete run has nothing to do; a complete line that is not a record is refused
    assert run_sweep(pts, out).computed == 0
    journal.write_text(json.dumps(recs[0]) + "\n" + "{not json}\n")
    with pytest.raises(HGNError, match=r"line 2 is not a sweep record.*journal is damaged"):
        run_sweep(pts, out)


# ----------------------------------------------------------------------
def test_cli_sweep(tmp_path, capsys):
    out = tmp_path / "cli.json"
    args = ["sweep", "--kind", "cubic", "--n", "2", "--node-width", "8,16", "--reg", "1e-12,1e-8",
            "--sampler", "swim,elm", "--seeds", "0-1", "--trajectories", "4", "--rollout-steps", "50",
            "--out", str(out), "--random", "3", "-q"]
    assert main(args) == 0
    recs = load_results(out)
    assert len(recs) == 3 and all(x["status"] == "ok" for x in recs)
    assert {x["settings"]["system"]["n"] for x in recs} == {2}
    assert out.with_suffix(".csv").is_file()
    assert main(args[:-1] + ["--workers", "2"]) == 0  # the same 3 points: all skipped, no cluster started
    text = capsys.readouterr().out
    assert "3 points: 0 computed (0 failed), 3 already in" in text and "(nothing to compute)" in text
    more = args[:args.index("--random")] + ["--random", "5", "--workers", "2"]  # the same 3 draws, then 2 more
    assert main(more) == 0
    text = capsys.readouterr().out
    import re

    total, computed = (int(x) for x in re.search(r"(\d+) points: (\d+) computed \(0 failed\), 3 already in",
                                                 text).groups())
    assert total >= 4 and computed == total - 3 and "on a LocalCluster" in text  # (duplicate draws are dropped)
    assert len(load_results(out)) == total


@pytest.mark.parametrize("extra, message", [
    (["--seeds", "3-1"], "--seeds: the range '3-1' is empty"),
    (["--node-width", "8,x"], "--node-width: 'x' is not a whole number"),
    (["--set", "fit.bogus=1"], "fit.bogus is not an RF-HGN setting"),
    (["--sampler", "swam"], "sampler='swam' is not one of"),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "not both"),
    (["--out", "x.csv"], "give the JSON name"),
    (["--reg", "1e-10:1e-4"], "--reg: a range lo:hi is drawn from by --random N"),
    (["--reg", "1e-4:1e-10", "--random", "2"], "--reg: the range '1e-4:1e-10' is empty: lo must be below hi"),
    (["--reg", "1e-8,1e-10:1e-4", "--random", "2"], "--reg: give values separated by commas or one range"),
    (["--sampler", "swim:elm", "--random", "2"], "--sampler: fit.sampler is a choice"),
    (["--set", "fit.swim_scale=x:1", "--random", "2"], "--set fit.swim_scale: in the range 'x:1', 'x' is not a number"),
])
def test_cli_sweep_refusals(tmp_path, capsys, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "--n", "2"] + extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_cli_random_ranges(tmp_path):
    out = tmp_path / "r.json"
    assert main(["sweep", "--n", "2", "--trajectories", "2", "--rollout-steps", "20", "--reg", "1e-10:1e-4",
                 "--set", "fit.swim_scale=0.05:0.5", "--seeds", "0-1", "--random", "2", "--random-seed", "7",
                 "--out", str(out), "-q"]) == 0
    recs = load_results(out)
    assert len(recs) == 2 and all(x["status"] == "ok" for x in recs)
    for x in recs:
        fit = x["settings"]["fit"]
        assert 1e-10 <= fit["regularisation"] <= 1e-4 and 0.05 <= fit.get("swim_scale", 0.2) <= 0.5
        assert fit["regularisation"] not in (1e-10, 1e-4) and fit.get("seed", 0) in (0, 1)


def test_cli_scheduler_unreachable(tmp_path, capsys, monkeypatch):
    import core.cluster.engine

    monkeypatch.setattr(core.cluster.engine, "CONNECT_TIMEOUT", 2)
    assert main(["sweep", "--n", "2", "--scheduler", "tcp://127.0.0.1:9", "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "could not connect to the Dask scheduler at tcp://127.0.0.1:9" in err[0]


def test_cli_train_chunked(tmp_path, capsys):
    from core.files.chunked import open_chunked
    from core.learning.rfhgn.fitting import fit
    from core.learning.rfhgn.config import RFConfig
    from core.learning.rfhgn.model import FittedModel

    data = tmp_path / "data"
    assert main(["simulate", "--kind", "cubic", "--n", "2", "--steps", "200", "--save-every", "2",
                 "--trajectories", "3", "--chunked", str(data), "--chunk-size", "70", "-q"]) == 0
    # the same data simulated one trajectory per task on 2 workers
    assert main(["simulate", "--kind", "cubic", "--n", "2", "--steps", "200", "--save-every", "2",
                 "--trajectories", "3", "--chunked", str(tmp_path / "d2"), "--chunk-size", "70", "-q",
                 "--workers", "2"]) == 0
    d1, d2 = open_chunked(data).to_dataset(), open_chunked(tmp_path / "d2").to_dataset()
    assert all(np.array_equal(getattr(d1, n), getattr(d2, n)) for n in ("q", "p", "dpdt", "energy", "test"))
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "one.npz"), "-q"]) == 0
    assert "assembled in this process" in capsys.readouterr().out
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "two.npz"), "--workers", "2", "-q"]) == 0
    assert "assembled on 2 Dask workers" in capsys.readouterr().out
    a, b = FittedModel.load(tmp_path / "one.npz"), FittedModel.load(tmp_path / "two.npz")
    ta, tb = (m.network.theta.detach().numpy() for m in (a, b))
    assert np.array_equal(ta, tb)  # same sums in the same order, wherever they run
    ref = fit(open_chunked(data).to_dataset(), RFConfig())
    assert a.network.to_arrays().keys() == ref.network.to_arrays().keys()
    assert all(np.array_equal(v, ref.network.to_arrays()[k]) for k, v in a.network.to_arrays().items())
    for bad, message in ((["--time-series"], "drop --time-series"), (["--kind", "cubic"], "drop --kind"),
                         (["--method", "adam"], "drop --method adam")):
        assert main(["train", "--data", str(data), "--out", str(tmp_path / "x.npz")] + bad) == 2
        assert message in capsys.readouterr().err
    assert main(["train", "--kind", "cubic", "--n", "2", "--workers", "2", "--out", str(tmp_path / "x.npz")]) == 2
    assert "fit a chunked dataset" in capsys.readouterr().err
