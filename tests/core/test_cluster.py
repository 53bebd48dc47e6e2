"""The distributed fit (core/cluster): a real LocalCluster of 2 worker processes.

The normal equations of a chunked dataset summed over the workers equal those
of ``fit`` on the concatenated data to round-off, the sampled network is the
same, and the fitted theta and test error agree as far as the solve's
conditioning lets round-off through (at the default regularisation 1e-12 the
condition number is ~1e12, and ``fit`` itself moves theta by ~1e-3 when only
its batch size changes: measured in test_same_as_fit). On the workers or in
this process the fit gives the same bits (same sums in the same order)."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from core.errors import Cancelled, HGNError
from core.files.chunked import open_chunked, write_simulated
from core.learning.metrics import derivative_mse
from core.learning.rfhgn.config import RFConfig
from core.learning.rfhgn.fitting import Group, assemble, fit
from core.physics import builders

pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    from core.cluster.engine import close, connect

    c = connect(2)
    yield c
    close(c)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("cl") / "data"
    write_simulated(path, builders.BUILDERS["cubic"](3, 3, 3), 150, trajectories=4, steps=400, save_every=4, seed=2)
    return path


def _theta(model):
    return model.network.theta.detach().numpy().copy()


def test_cluster_has_two_worker_processes(client):
    import os

    from core.cluster.engine import worker_pids

    pids = worker_pids(client)
    assert len(pids) == 2 and len(set(pids.values())) == 2 and os.getpid() not in pids.values()
    # one thread each and single-threaded BLAS in the workers
    assert sorted(client.nthreads().values()) == [1, 1]
    assert set(client.run(lambda: os.environ.get("OMP_NUM_THREADS")).values()) == {"1"}


def test_same_as_fit(client, folder):
    from core.cluster.fit import chunk_equations, distributed_fit, tree_sum, add_equations

    src = open_chunked(folder)
    assert src.n_chunks == 3
    ds = src.to_dataset()
    cfg = RFConfig(sample_points=2000, regularisation=1e-6)
    m_fit = fit(ds, cfg)
    m_dist = distributed_fit(folder, cfg, client)
    m_local = distributed_fit(folder, cfg)
    # the same sampled network (the same snapshots drawn across the chunks)
    a, b = m_fit.network.to_arrays(), m_dist.network.to_arrays()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    # workers and this process: the same sums in the same order
    assert np.array_equal(_theta(m_dist), _theta(m_local))
    assert m_dist.info["distributed"]["workers"] == 2 and m_local.info["distributed"]["workers"] == 0
    # the normal equations: tree-summed chunk blocks == fit's one running sum, to round-off
    ne = assemble(m_fit.network, [Group(ds.system, ds.q, ds.p, ds.dqdt, ds.dpdt, ds.train)], cfg)
    parts = tree_sum([chunk_equations(str(folder), k, m_fit.network, cfg.to_dict()) for k in range(3)],
                     add_equations)
    for name, (G, bb, uu, rows) in ne.blocks.items():
        G2, b2, uu2, rows2 = parts["blocks"][name]
        assert rows == rows2 == {"p": 1, "q": 1}[name] * len(ds.train) * ds.system.n * 3
        assert np.abs(G2 - G).max() <= 1e-13 * np.abs(G).max()
        assert np.abs(b2 - bb).max() <= 1e-13 * np.abs(bb).max()
        assert abs(uu2 - uu) <= 1e-13 * uu
    # theta and the test error: round-off through a condition number of ~1e6 at regularisation 1e-6
    t0, t1 = _theta(m_fit), _theta(m_dist)
    assert np.abs(t1 - t0).max() <= 1e-8 * np.abs(t0).max()
    e0, e1 = derivative_mse(m_fit, ds, ds.test), derivative_mse(m_dist, ds, ds.test)
    assert abs(e1 - e0) <= 1e-9 * e0
    assert m_dist.info["n_snapshots"] == len(ds.train)
    assert m_dist.constant == pytest.approx(m_fit.constant, rel=1e-8, abs=1e-12)


def test_progress_and_cancel(client, folder):
    from core.cluster.fit import distributed_fit

    seen = []
    distributed_fit(folder, RFConfig(sample_points=500), client, progress=lambda s, f: seen.append((s, f)))
    stages = [s for s, _ in seen]
    assert stages[0] == "sample" and stages[-1] == "solve" and "assemble" in stages
    assert [f for s, f in seen if s == "assemble"][-1] == 1.0
    flag = threading.Event()

    def stop(stage, f):
        if stage == "assemble" or (stage == "sample" and f >= 1.0):
            flag.set()

    with pytest.raises(Cancelled):
        distributed_fit(folder, RFConfig(sample_points=500), client, progress=stop, cancel=flag)
    # the cluster still works after a cancel
    assert distributed_fit(folder, RFConfig(sample_points=500), client).info["distributed"]["chunks"] == 3


def test_damaged_chunk_error_reaches_the_caller(client, folder, tmp_path):
    import shutil

    from core.cluster.fit import distributed_fit

    bad = tmp_path / "bad"
    shutil.copytree(folder, bad)
    raw = bytearray((bad / "chunk-000002.npz").read_bytes())
    raw[len(raw) // 2] ^= 1
    (bad / "chunk-000002.npz").write_bytes(bytes(raw))
    with pytest.raises(HGNError, match=r"chunk-000002\.npz: chunk 2 does not match its SHA-256"):
        distributed_fit(bad, RFConfig(sample_points=500), client)


def test_distributed_generation_equals_one_process(client, tmp_path):
    """One task per trajectory, each writing its own chunks: the same snapshots, order and split as the
    single-process writer (chunk boundaries follow the trajectories)."""
    system = builders.BUILDERS["cubic"](2, 2, 2)
    kw = dict(trajectories=3, steps=90, save_every=2, seed=5, test_fraction=0.34)
    write_simulated(tmp_path / "one", system, 20, **kw)
    write_simulated(tmp_path / "dist", system, 20, client=client, **kw)
    a, b = open_chunked(tmp_path / "one"), open_chunked(tmp_path / "dist")
    assert b.n_chunks == 9 and a.n_chunks == 7  # 3 x ceil(46 / 20) against ceil(138 / 20)
    da, db = a.to_dataset(), b.to_dataset()
    for name in ("q", "p", "dqdt", "dpdt", "energy", "train", "test"):
        assert np.array_equal(getattr(da, name), getattr(db, name)), name
    assert len(db.test) == 46  # one whole trajectory held out
    # chunk files numbered per trajectory (3 per run)
    assert {e["file"] for e in b.entries} == {f"chunk-{k:06d}.npz" for k in (0, 1, 2, 3, 4, 5, 6, 7, 8)}


def test_single_process_paths_import_no_dask(folder, tmp_path):
    """The default stays single-process: the chunked fit and a sweep without a client never import Dask."""
    import subprocess
    import sys

    code = ("import sys; from core.cluster.fit import distributed_fit; from core.cluster.sweep import run_sweep, "
            "make_point; from core.learning.rfhgn.config import RFConfig; "
            f"distributed_fit({str(folder)!r}, RFConfig(sample_points=300)); "
            "run_sweep([make_point({'n': 2, 'trajectories': 2, 'rollout.steps': 20})], "
            f"{str(tmp_path / 's.json')!r}); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_connect_refusals():
    from core.cluster.engine import connect

    with pytest.raises(HGNError, match="whole number >= 1, got 0"):
        connect(0)
    with pytest.raises(HGNError, match="not both"):
        connect(2, "tcp://127.0.0.1:1")
    with pytest.raises(HGNError, match="scheduler address must be text"):
        connect(scheduler="  ")


@pytest.mark.parametrize("case", ["cutoff", "frame", "adaptive"])
def test_other_paths_same_as_fit(tmp_path, case):
    """A cutoff system (graphs built per snapshot), the frame encoding and the adaptive sampler (two rounds of
    map and tree-sum): the chunked fit samples the same network and recovers fit()'s theta and training range."""
    from core.cluster.fit import distributed_fit

    system, cfg = {"cutoff": (builders.BUILDERS["molecular"](64, dim=2), RFConfig(regularisation=1e-6)),
                   "frame": (builders.BUILDERS["chain"](4), RFConfig(encoding="frame", regularisation=1e-6)),
                   "adaptive": (builders.BUILDERS["cubic"](2, 2, 2),
                                RFConfig(sampler="adaptive", regularisation=1e-6))}[case]
    write_simulated(tmp_path / "c", system, 40, trajectories=3, steps=300, save_every=5, seed=1, displacement=0.02)
    ds = open_chunked(tmp_path / "c").to_dataset()
    m0, m1 = fit(ds, cfg), distributed_fit(tmp_path / "c", cfg)
    t0, t1 = _theta(m0), _theta(m1)
    assert np.abs(t1 - t0).max() <= 1e-7 * np.abs(t0).max()
    for key in ("train_r_max", "train_r_min", "train_k_max", "n_rows"):
        assert m1.info[key] == pytest.approx(m0.info[key], rel=1e-12), key


def test_worker_killed_mid_fit(tmp_path):
    """SIGKILL a worker while it assembles a chunk: Dask reruns its tasks elsewhere (the network was sent to
    every worker) and the fit gives the same bits as in this process."""
    import os
    import signal

    from core.cluster.engine import engine
    from core.cluster.fit import distributed_fit

    write_simulated(tmp_path / "c", builders.BUILDERS["cubic"](3, 3, 3), 3000, trajectories=24, steps=999,
                    save_every=1, seed=4, test_fraction=0.0)
    cfg = RFConfig(sample_points=1000)
    ref = distributed_fit(tmp_path / "c", cfg)
    with engine(2) as client:
        killed = {}

        def progress(stage, fraction):
            if stage != "assemble" or killed or fraction >= 1.0:
                return
            busy = [w for w, keys in client.processing().items() if keys]
            if busy:
                pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
                killed["pid"] = pid
                os.kill(pid, signal.SIGKILL)

        model = distributed_fit(tmp_path / "c", cfg, client, progress=progress)
    assert killed, "no worker was busy after the first chunk finished"
    assert np.array_equal(_theta(model), _theta(ref))
    assert model.info["n_snapshots"] == ref.info["n_snapshots"] == 24_000


# ----------------------------------------------------------------------
def test_local_cluster_takes_no_dashboard_port(capfd):
    """No dashboard unless asked for: the scheduler's small HTTP endpoint (health checks) listens on a free
    port of this machine only, so a taken 8787 (another Dask cluster, RStudio) gives no "Port 8787 is already
    in use" warning and nothing is opened to the network."""
    import socket
    import warnings

    from core.cluster.engine import close, connect

    taken = socket.socket()
    try:
        taken.bind(("127.0.0.1", 8787))
        taken.listen()
    except OSError:
        pass  # something holds 8787 already: the same situation
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            client = connect(1)
            try:
                http = client._hgn_owned_cluster.scheduler.http_server
                where = (http.address, http.port)
            finally:
                close(client)
    finally:
        taken.close()
    said = [str(w.message) for w in caught] + capfd.readouterr().err.splitlines()
    assert not [m for m in said if "already in use" in m], said
    assert where[0] == "127.0.0.1" and where[1] != 8787


def test_cancel_mid_point_stops_the_tasks_and_close_leaves_no_process(tmp_path, capfd):
    """A sweep cancelled while points run: their tasks stop on the workers at once (they would run for
    minutes); closing while a point runs (no cancel first) is clean too: no nanny "still alive after 4.0
    seconds, killing", no cancelled-instruction warnings, and no worker process left behind."""
    import os
    import time

    import psutil

    from core.cluster.engine import close, connect, worker_pids
    from core.cluster.sweep import _task, make_point, run_sweep

    def running(client):
        return {w: list(keys) for w, keys in client.run(lambda dask_worker: dask_worker.active_threads.values()
                                                           ).items()}

    fast = make_point({"n": 2, "trajectories": 2, "rollout.steps": 20})
    slow = [make_point({"n": 2, "trajectories": 2, "rollout.steps": 400_000, "seed": s}) for s in (1, 2, 3)]
    before = {p.pid for p in psutil.Process(os.getpid()).children(recursive=True)}  # e.g. pytest-xvfb's Xvfb
    client = connect(2)
    closed = False
    try:
        pids = set(worker_pids(client).values())
        flag = threading.Event()
        with pytest.raises(Cancelled):
            run_sweep([fast] + slow[:2], tmp_path / "s.json", client, cancel=flag, on_result=lambda r: flag.set())
        busy = running(client)
        assert not any(busy.values()), f"cancelled points still run on the workers: {busy}"
        # closing while a point runs (nobody cancelled it)
        f = client.submit(_task, slow[2], pure=False)
        t0 = time.monotonic()
        while not any(running(client).values()) and time.monotonic() - t0 < 30:
            time.sleep(0.05)
        assert any(running(client).values()) and not f.done()
        close(client)
        closed = True
    finally:
        if not closed:
            close(client)
    err = capfd.readouterr().err
    assert "still alive" not in err and "killing" not in err and "CancelledError" not in err, err
    left = [p for p in pids if psutil.pid_exists(p)]
    assert not left, f"worker processes left: {left}"
    children = [p for p in psutil.Process(os.getpid()).children(recursive=True)
                if p.pid not in before and "resource_tracker" not in " ".join(p.cmdline())]
    assert not children, children
