"""Chunked datasets (core/files/chunked.py): written incrementally, read lazily, damage refused."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from core.cli.app import main
from core.errors import HGNError
from core.files.chunked import ChunkWriter, open_chunked, write_simulated
from core.files.io import load_dataset
from core.files.kinds import describe, load_any
from core.physics import builders


@pytest.fixture
def system():
    return builders.BUILDERS["cubic"](2, 2, 2)


def _random_chunked(folder, system, chunk_size=7, sizes=(4, 4, 4), split="snapshot"):
    rng = np.random.default_rng(0)
    parts = []
    with ChunkWriter(folder, system, chunk_size, split=split, test_fraction=0.25, seed=1) as w:
        for k, n in enumerate(sizes):
            x = [rng.normal(size=(n, system.n, system.dim)) for _ in range(4)]
            e = rng.normal(size=n)
            w.add(*x, e, trajectory=k, test=(split == "trajectory" and k == 1))
            parts.append(x + [e])
    return parts


def test_round_trip_chunks_and_split(tmp_path, system):
    parts = _random_chunked(tmp_path / "c", system)
    c = open_chunked(tmp_path / "c")
    assert (c.n_chunks, c.n_snapshots) == (2, 12)
    assert [e["n_snapshots"] for e in c.entries] == [7, 5]
    ds = c.to_dataset()
    for i, name in enumerate(("q", "p", "dqdt", "dpdt", "energy")):
        assert np.array_equal(getattr(ds, name), np.concatenate([p[i] for p in parts]))
    # each chunk is an ordinary dataset file
    one = load_dataset(tmp_path / "c" / "chunk-000001.npz")
    assert one.n_snapshots == 5 and np.array_equal(one.q, ds.q[7:])
    # split: a seeded share of each chunk, disjoint, covering everything
    assert sorted(np.concatenate([ds.train, ds.test]).tolist()) == list(range(12))
    assert c.n_test == len(ds.test) >= 2
    assert np.array_equal(c.train_rows(), ds.train)
    q, e = c.rows([11, 0, 8], ("q", "energy"))
    assert np.array_equal(q, ds.q[[11, 0, 8]]) and np.array_equal(e, ds.energy[[11, 0, 8]])
    kind, value = load_any(tmp_path / "c")
    assert kind == "chunked_dataset" and value.n_snapshots == 12
    assert "snapshots: 12 in 2 chunks" in describe(tmp_path / "c")


def test_trajectory_split_marks_whole_runs(tmp_path, system):
    _random_chunked(tmp_path / "c", system, split="trajectory")
    ds = open_chunked(tmp_path / "c").to_dataset()
    assert ds.test.tolist() == [4, 5, 6, 7]


def test_simulated_chunks_equal_one_run(tmp_path, system):
    """Segments of chunk-size frames continue the run: the same snapshots as one long run, bit for bit."""
    from core.physics.initial import initial_state
    from core.physics.simulate import run_system

    write_simulated(tmp_path / "c", system, 6, trajectories=1, steps=40, dt=0.01, save_every=2, seed=3)
    ds = open_chunked(tmp_path / "c").to_dataset()
    q0, p0 = initial_state(system, 0.1, 0.1, None, seed=3)
    run, _ = run_system(system, q0, p0, 0.01, 40, 2, save_forces=True)
    assert ds.n_snapshots == 21
    assert np.array_equal(ds.q, run.q) and np.array_equal(ds.p, run.p) and np.array_equal(ds.dpdt, run.forces)
    assert np.array_equal(ds.energy, run.kinetic + run.potential)
    assert np.array_equal(ds.dqdt, run.p / system.masses[None, :, None])


def test_cli_chunked_equals_dataset_out(tmp_path):
    args = ["simulate", "--kind", "cubic", "--n", "2", "--steps", "60", "--save-every", "2", "--trajectories", "3",
            "--seed", "4", "-q"]
    assert main(args + ["--chunked", str(tmp_path / "c"), "--chunk-size", "10"]) == 0
    assert main(args + ["--dataset-out", str(tmp_path / "d.npz")]) == 0
    c = open_chunked(tmp_path / "c")
    assert c.n_chunks == 10  # 3 runs x 31 frames in chunks of 10
    a, b = c.to_dataset(), load_dataset(tmp_path / "d.npz")
    for name in ("q", "p", "dqdt", "dpdt", "energy", "train", "test"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def _error(capsys):
    return capsys.readouterr().err.strip().splitlines()


def test_cli_refusals(tmp_path, capsys):
    base = ["simulate", "--kind", "cubic", "--n", "2", "--steps", "10", "-q"]
    assert main(base + ["--chunk-size", "5", "--out", str(tmp_path / "x.npz")]) == 2
    assert "give --chunked too" in _error(capsys)[-1]
    assert main(base + ["--chunked", str(tmp_path / "c"), "--out", str(tmp_path / "x.npz")]) == 2
    assert "drop --out" in _error(capsys)[-1]
    assert main(base + ["--chunked", str(tmp_path / "c"), "--chunk-size", "0"]) == 2
    assert "--chunk-size" in _error(capsys)[-1]
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert main(base + ["--chunked", str(tmp_path / "full")]) == 2
    assert "not empty" in _error(capsys)[-1]


@pytest.fixture
def chunked(tmp_path, system):
    _random_chunked(tmp_path / "c", system)
    return tmp_path / "c"


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def _write_manifest(folder, doc):
    (folder / "manifest.json").write_text(json.dumps(doc))


def test_missing_chunk_refused(chunked):
    (chunked / "chunk-000001.npz").unlink()
    c = open_chunked(chunked)
    c.chunk(0)
    with pytest.raises(HGNError, match=r"chunk-000001\.npz: chunk 1 is missing"):
        c.chunk(1)


def test_damaged_chunk_refused(chunked):
    path = chunked / "chunk-000000.npz"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(HGNError, match=r"chunk-000000\.npz: chunk 0 does not match its SHA-256"):
        open_chunked(chunked).chunk(0)
    path.write_bytes(bytes(raw[:-10]))
    with pytest.raises(HGNError, match=r"chunk-000000\.npz: chunk 0 is \d+ bytes, the manifest says"):
        open_chunked(chunked).chunk(0)


def test_swapped_chunk_refused(chunked, tmp_path, system):
    """A valid dataset file with the right checksum but other counts (manifest edited to match) is refused."""
    shutil.copy(chunked / "chunk-000000.npz", chunked / "chunk-000001.npz")
    doc = _manifest(chunked)
    doc["chunks"][1].update(bytes=doc["chunks"][0]["bytes"], sha256=doc["chunks"][0]["sha256"])
    _write_manifest(chunked, doc)
    with pytest.raises(HGNError, match="chunk 1 holds 7 for n_snapshots, the manifest says 5"):
        open_chunked(chunked).chunk(1)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(format="other"), "not a chunked dataset manifest"),
    (lambda d: d.update(version=99), "version 99 is not one this program reads"),
    (lambda d: d.update(n_snapshots=13), "field 'n_snapshots' is 13 but the chunks add up to 12"),
    (lambda d: d["chunks"][0].update(file="../x.npz"), r"chunks\[0\]\.file must be a unique name"),
    (lambda d: d["chunks"][1].update(sha256="zz"), r"chunks\[1\]\.sha256 must be a SHA-256"),
    (lambda d: d.update(complete=False), "the writer did not finish"),
    (lambda d: d.update(N=9), "the system has 8 particles in 3D, the manifest says 9"),
])
def test_bad_manifest_refused(chunked, edit, message):
    doc = _manifest(chunked)
    edit(doc)
    _write_manifest(chunked, doc)
    with pytest.raises(HGNError, match=message) as exc:
        open_chunked(chunked)
    assert "\n" not in str(exc.value)


def test_missing_or_broken_manifest(chunked, tmp_path):
    (chunked / "manifest.json").write_text("{not json")
    with pytest.raises(HGNError, match=r"manifest\.json: the manifest is not valid JSON"):
        open_chunked(chunked)
    (chunked / "manifest.json").unlink()
    with pytest.raises(HGNError, match="holds no manifest.json"):
        open_chunked(chunked)
    with pytest.raises(HGNError, match="does not exist"):
        open_chunked(tmp_path / "nothing")


def test_writer_refuses_bad_input(tmp_path, system):
    with pytest.raises(HGNError, match="damped or driven"):
        from core.physics.port import Port

        ChunkWriter(tmp_path / "p", system.copy(port=Port(0.1)), 5)
    with ChunkWriter(tmp_path / "w", system, 5) as w:
        with pytest.raises(HGNError, match=r"q has shape \(3, 8, 2\)"):
            w.add(*(np.zeros((3, 8, 2)),) * 4, np.zeros(3))
        w.add(*(np.ones((3, 8, 3)),) * 4, np.zeros(3))
    assert open_chunked(tmp_path / "w").n_snapshots == 3


def test_sample_rows_read_only_the_rows(chunked):
    c = open_chunked(chunked)
    ds = c.to_dataset()
    idx = [11, 0, 8, 3, 3]
    for names in (("q", "p"), ("dqdt", "energy")):
        fast, whole = c.sample_rows(idx, names), c.rows(idx, names)
        assert all(np.array_equal(a, b) for a, b in zip(fast, whole))
    assert np.array_equal(c.sample_rows(idx)[0], ds.q[idx])
    with pytest.raises(HGNError, match="snapshot indices must lie in 0..11"):
        c.sample_rows([12])
