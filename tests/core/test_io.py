"""Files: systems, trajectories and datasets in the npz container (core.files.io),
and extended XYZ through ASE (core.files.xyz): round trips, damaged and foreign
files, atomic saves, and the import policy for files from other programs."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from core.physics import builders

from core.files import io, kinds, xyz
from core.errors import HGNError
from core.container import load_npz, save_npz
from core.physics.forces import ForceField, kinetic_energy
from core.physics.system import System
from core.physics.trajectory import Dataset, Trajectory


# ----------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------
def make_traj(system: System, frames: int = 5, seed: int = 0, label: str = "ground truth", meta=None) -> Trajectory:
    """A trajectory-shaped record with true energies of random states (the
    files do not care whether the states follow the dynamics)."""
    rng = np.random.default_rng(seed)
    n, d = system.n, system.dim
    q = system.positions + 0.05 * rng.standard_normal((frames, n, d))
    p = rng.standard_normal((frames, n, d))
    ff = ForceField(system)
    pot = np.array([ff.energy(x) for x in q])
    return Trajectory(system, 0.05 * np.arange(frames), q, p, kinetic_energy(p, system.masses), pot,
                      p.sum(axis=1), dt=0.01, save_every=5, label=label, meta=dict(meta or {}))


def make_dataset(system: System, snaps: int = 6, with_series: bool = True) -> Dataset:
    rng = np.random.default_rng(1)
    n, d = system.n, system.dim
    q = system.positions + 0.05 * rng.standard_normal((snaps, n, d))
    p = rng.standard_normal((snaps, n, d))
    ff = ForceField(system)
    f = np.stack([ff.forces(x) for x in q])
    e = kinetic_energy(p, system.masses) + np.array([ff.energy(x) for x in q])
    series = [make_traj(system, 4, seed=3)] if with_series else []
    return Dataset(system, q, p, p / system.masses[:, None], f, e, np.arange(4), np.array([4, 5]),
                   series, meta={"spec": {"snapshots": snaps, "sampler": "random"}, "seed": np.int64(7)})


def assert_same_system(a: System, b: System):
    assert a.to_header() == b.to_header()
    aa, bb = a.to_arrays(), b.to_arrays()
    assert aa.keys() == bb.keys()
    for k in aa:
        assert aa[k].dtype == bb[k].dtype and np.array_equal(aa[k], bb[k]), k


def assert_same_traj(a: Trajectory, b: Trajectory):
    assert_same_system(a.system, b.system)
    for name in ("t", "q", "p", "kinetic", "potential", "momentum"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert (a.dt, a.save_every, a.label) == (b.dt, b.save_every, b.label)
    assert a.meta.keys() == b.meta.keys()
    for k in a.meta:
        if isinstance(a.meta[k], np.ndarray):
            assert np.array_equal(a.meta[k], b.meta[k])
        else:
            assert json.loads(json.dumps(a.meta[k])) == b.meta[k]


SYSTEMS = {
    "chain": lambda: builders.chain(5, spacing=1.1, potential="morse", potential_params={"D": 2.0, "a": 1.3}),
    "edge_scale": lambda: builders.custom(2, [[0, 0], [1, 0], [0, 1.2], [1.1, 1]], edges=[[0, 1], [0, 2], [1, 3]],
                                          masses=[1.0, 2.5, 0.3, 1.0 / 3.0], edge_scale=[1.0, 0.5, 2.0 / 3.0]),
    "no_edges": lambda: builders.custom(3, [[0, 0, 0], [1, 0, 0]]),
    "cubic": lambda: builders.cubic_lattice(2, 2, 3, potential="anharmonic", potential_params={"beta": 0.7}),
    "periodic": lambda: builders.molecular(27, density=0.6, dim=3, cutoff=1.4, jitter=0.1, seed=4),
    "periodic2d": lambda: builders.molecular(25, density=0.5, dim=2, cutoff=1.6),
}


# ----------------------------------------------------------------------
# round trips
# ----------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_system_round_trip_is_bit_exact(tmp_path, name):
    s = SYSTEMS[name]()
    f = tmp_path / "s.npz"
    io.save_system(f, s)
    back = io.load_system(f)
    assert_same_system(s, back)
    assert (back.edges is None) == (s.edges is None) and (back.box is None) == (s.box is None)
    # saving what was read gives the same header and arrays again
    io.save_system(tmp_path / "again.npz", back)
    h1, a1 = load_npz(f)
    h2, a2 = load_npz(tmp_path / "again.npz")
    assert h1 == h2 and a1.keys() == a2.keys()
    assert all(np.array_equal(a1[k], a2[k]) for k in a1)


def test_several_trajectories_round_trip_sharing_their_system(tmp_path):
    s1, s2 = SYSTEMS["chain"](), SYSTEMS["periodic"]()
    forces = np.random.default_rng(2).standard_normal((5, s1.n, 2))
    trs = [make_traj(s1, meta={"seed": 3, "note": (1, 2), "forces": forces}),
           make_traj(s1.copy(), seed=1, label="RF-HGN rollout"),  # an equal copy: stored once
           make_traj(s2, frames=3, seed=2)]
    f = io.save_trajectories(tmp_path / "t.npz", trs)
    back = io.load_trajectories(f)
    assert len(back) == 3
    for a, b in zip(trs, back):
        assert_same_traj(a, b)
    assert back[0].system is back[1].system and back[2].system is not back[0].system
    header, arrays = load_npz(f)
    assert len(header["systems"]) == 2
    assert header["trajectories"][0]["meta_arrays"] == ["forces"]
    assert io.load_trajectory(f, 2).n_frames == 3
    with pytest.raises(HGNError, match="holds 3 trajectories"):
        io.load_trajectory(f, 3)


def test_system_in_reads_the_system_of_system_trajectory_and_dataset_files(tmp_path, monkeypatch):
    s1, s2, s3 = SYSTEMS["chain"](), SYSTEMS["periodic"](), SYSTEMS["edge_scale"]()
    fs = io.save_system(tmp_path / "s.npz", s1)
    ft = io.save_trajectories(tmp_path / "t.npz", [make_traj(s2), make_traj(s1, seed=1)])
    fd = io.save_dataset(tmp_path / "d.npz", make_dataset(s3, with_series=False))
    assert_same_system(io.system_in(fs), s1)
    assert_same_system(io.system_in(ft), s2)  # the first trajectory's
    assert_same_system(io.system_in(fd), s3)
    monkeypatch.setitem(kinds.KINDS, "note", kinds.FileKind("note", lambda path: "a note", "a note"))
    save_npz(tmp_path / "x.npz", "note", {}, {})
    with pytest.raises(HGNError, match="x.npz holds a note, not a system"):
        io.system_in(tmp_path / "x.npz")


@pytest.mark.parametrize("series", [True, False])
def test_dataset_round_trip(tmp_path, series):
    ds = make_dataset(SYSTEMS["edge_scale"](), with_series=series)
    f = io.save_dataset(tmp_path / "d.npz", ds)
    back = io.load_dataset(f)
    assert_same_system(ds.system, back.system)
    for name in ("q", "p", "dqdt", "dpdt", "energy", "train", "test"):
        assert np.array_equal(getattr(ds, name), getattr(back, name)), name
        assert np.asarray(getattr(ds, name)).dtype == getattr(back, name).dtype
    assert back.meta == {"spec": {"snapshots": 6, "sampler": "random"}, "seed": 7}
    assert len(back.trajectories) == len(ds.trajectories)
    for a, b in zip(ds.trajectories, back.trajectories):
        assert_same_traj(a, b)
        assert b.system is back.system


def test_dataset_with_empty_test_split(tmp_path):
    ds = make_dataset(SYSTEMS["chain"](), with_series=False)
    ds.test = np.zeros(0, dtype=np.int64)
    back = io.load_dataset(io.save_dataset(tmp_path / "d.npz", ds))
    assert back.test.shape == (0,) and np.array_equal(back.train, ds.train)


def test_load_any_dispatches_on_the_kind(tmp_path):
    s = SYSTEMS["chain"]()
    io.save_system(tmp_path / "s.npz", s)
    io.save_trajectories(tmp_path / "t.npz", make_traj(s))
    io.save_dataset(tmp_path / "d.npz", make_dataset(s))
    xyz.write_trajectory(tmp_path / "t.xyz", make_traj(s))
    kinds = {p: io.load_any(tmp_path / p) for p in ("s.npz", "t.npz", "d.npz", "t.xyz")}
    assert kinds["s.npz"][0] == "system" and isinstance(kinds["s.npz"][1], System)
    assert kinds["t.npz"][0] == "trajectory" and isinstance(kinds["t.npz"][1][0], Trajectory)
    assert kinds["d.npz"][0] == "dataset" and isinstance(kinds["d.npz"][1], Dataset)
    assert kinds["t.xyz"][0] == "trajectory" and isinstance(kinds["t.xyz"][1][0], Trajectory)


def test_load_any_names_kinds_it_cannot_open_and_accepts_new_loaders(tmp_path, monkeypatch):
    save_npz(tmp_path / "m.npz", "widget", {"width": 10}, {"theta": np.ones(10)})
    with pytest.raises(HGNError, match="holds a 'widget'"):
        io.load_any(tmp_path / "m.npz")
    monkeypatch.setitem(kinds.KINDS, "widget", kinds.FileKind("widget", lambda p: load_npz(p, "widget")[1]["theta"],
                                                              "a widget"))
    kind, value = io.load_any(tmp_path / "m.npz")
    assert kind == "widget" and np.array_equal(value, np.ones(10))


def test_one_registry_lists_every_kind_of_file():
    """Importing any module of core.files fills the registry completely; load_any, describe,
    system_in and projects look kinds up there (io re-exports the registry's entry points)."""
    assert set(kinds.KINDS) == {"system", "trajectory", "dataset", "xyz", "model", "baseline_model",
                                "rf_hnn_model", "project", "chunked_dataset"}
    assert kinds.model_kinds() == ["baseline_model", "model", "rf_hnn_model"]
    assert kinds.by_suffix("a/run.EXTXYZ") is kinds.KINDS["xyz"] and kinds.by_suffix("run.npz") is None
    assert io.load_any is kinds.load_any and io.describe is kinds.describe and io.system_in is kinds.system_in


def test_describe_reports_what_a_file_holds(tmp_path):
    s = SYSTEMS["periodic"]()
    io.save_trajectories(tmp_path / "t.npz", [make_traj(s, 4), make_traj(s, 3, label="rollout")])
    text = io.describe(tmp_path / "t.npz")
    assert "kind: trajectory" in text and "27 particles in 3D" in text and "lennard-jones" in text
    assert "4 frames" in text and "'rollout': 3 frames" in text and "periodic box" in text
    io.save_dataset(tmp_path / "d.npz", make_dataset(SYSTEMS["chain"]()))
    text = io.describe(tmp_path / "d.npz")
    assert "kind: dataset" in text and "6 (4 train, 2 test)" in text


# ----------------------------------------------------------------------
# damaged, foreign and wrong-kind files
# ----------------------------------------------------------------------
def test_truncated_file_is_reported(tmp_path):
    f = io.save_trajectories(tmp_path / "t.npz", make_traj(SYSTEMS["chain"](), 20))
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(HGNError, match="corrupt, truncated"):
        io.load_trajectories(f)


def test_corrupted_bytes_are_reported(tmp_path):
    f = io.save_system(tmp_path / "s.npz", SYSTEMS["chain"]())
    data = bytearray(f.read_bytes())
    data[:4] = b"XXXX"  # wreck the zip signature
    f.write_bytes(bytes(data))
    with pytest.raises(HGNError, match="corrupt, truncated or not an HGN Studio file"):
        io.load_system(f)


def test_empty_file_is_reported(tmp_path):
    f = tmp_path / "empty.npz"
    f.write_bytes(b"")
    with pytest.raises(HGNError, match="empty.npz"):
        io.load_any(f)


def test_plain_npz_without_header_is_foreign(tmp_path):
    f = tmp_path / "plain.npz"
    np.savez(f, q=np.zeros((3, 2)))
    with pytest.raises(HGNError, match="not an HGN Studio file \\(no header\\)"):
        io.load_system(f)


def test_text_file_renamed_npz_is_foreign(tmp_path):
    f = tmp_path / "notes.npz"
    f.write_text("positions: 1 2 3\n")
    with pytest.raises(HGNError, match="notes.npz is corrupt, truncated or not an HGN Studio file"):
        io.load_any(f)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(HGNError, match="file not found"):
        io.load_system(tmp_path / "nope.npz")
    with pytest.raises(HGNError, match="is a folder"):
        io.load_dataset(tmp_path)


def test_wrong_kind_is_reported(tmp_path):
    s = SYSTEMS["chain"]()
    io.save_trajectories(tmp_path / "t.npz", make_traj(s))
    with pytest.raises(HGNError, match="holds a 'trajectory', expected system"):
        io.load_system(tmp_path / "t.npz")
    io.save_system(tmp_path / "s.npz", s)
    with pytest.raises(HGNError, match="holds a 'system', expected dataset"):
        io.load_dataset(tmp_path / "s.npz")


def _resave(path, mutate_header=None, mutate_arrays=None):
    """Rewrite a valid file with its header or arrays changed (as a damaged or
    hand-edited file would be)."""
    header, arrays = load_npz(path)
    kind = header.pop("kind")
    for k in ("format", "version"):
        header.pop(k)
    if mutate_header:
        mutate_header(header)
    if mutate_arrays:
        mutate_arrays(arrays)
    save_npz(path, kind, header, arrays)


def test_trajectory_with_q_of_the_wrong_shape_is_rejected(tmp_path):
    f = io.save_trajectories(tmp_path / "t.npz", make_traj(SYSTEMS["chain"]()))
    _resave(f, mutate_arrays=lambda a: a.__setitem__("traj0.q", a["traj0.q"][:, :3]))
    with pytest.raises(HGNError, match=r"t.npz: array 'traj0.q' has shape \(5, 3, 2\), expected \(5, 5, 2\)"):
        io.load_trajectories(f)


def test_trajectory_with_too_few_energies_is_rejected(tmp_path):
    f = io.save_trajectories(tmp_path / "t.npz", make_traj(SYSTEMS["chain"]()))
    _resave(f, mutate_arrays=lambda a: a.__setitem__("traj0.kinetic", a["traj0.kinetic"][:4]))
    with pytest.raises(HGNError, match=r"t.npz: array 'traj0.kinetic' has shape \(4,\), expected \(5,\)"):
        io.load_trajectories(f)


def test_trajectory_missing_an_array_is_rejected(tmp_path):
    f = io.save_trajectories(tmp_path / "t.npz", make_traj(SYSTEMS["chain"]()))
    _resave(f, mutate_arrays=lambda a: a.pop("traj0.p"))
    with pytest.raises(HGNError, match="missing array\\(s\\) traj0.p"):
        io.load_trajectories(f)


def test_trajectory_pointing_at_a_missing_system_is_rejected(tmp_path):
    f = io.save_trajectories(tmp_path / "t.npz", make_traj(SYSTEMS["chain"]()))
    _resave(f, mutate_header=lambda h: h["trajectories"][0].__setitem__("system", 3))
    with pytest.raises(HGNError, match="refers to system 3, but the file holds 1"):
        io.load_trajectories(f)


def test_invalid_system_in_file_is_rejected(tmp_path):
    f = io.save_system(tmp_path / "s.npz", SYSTEMS["chain"]())
    _resave(f, mutate_arrays=lambda a: a.__setitem__("masses", -a["masses"]))
    with pytest.raises(HGNError, match="invalid system: masses must be > 0"):
        io.load_system(f)
    f = io.save_system(tmp_path / "s2.npz", SYSTEMS["chain"]())
    _resave(f, mutate_arrays=lambda a: a.__setitem__("edges", a["edges"] + 10))
    with pytest.raises(HGNError, match="refers to a particle that does not exist"):
        io.load_system(f)
    f = io.save_system(tmp_path / "s3.npz", SYSTEMS["chain"]())
    _resave(f, mutate_header=lambda h: h["system"].pop("potential"))
    with pytest.raises(HGNError, match="system field 'potential' is missing"):
        io.load_system(f)


def test_dataset_with_inconsistent_arrays_is_rejected(tmp_path):
    ds = make_dataset(SYSTEMS["chain"](), with_series=False)
    f = io.save_dataset(tmp_path / "d.npz", ds)
    _resave(f, mutate_arrays=lambda a: a.__setitem__("dpdt", a["dpdt"][:-1]))
    with pytest.raises(HGNError, match=r"d.npz: array 'dpdt' has shape \(5, 5, 2\), expected \(6, 5, 2\)"):
        io.load_dataset(f)
    f = io.save_dataset(tmp_path / "d2.npz", ds)
    _resave(f, mutate_arrays=lambda a: a.__setitem__("test", np.array([4, 9])))
    with pytest.raises(HGNError, match=r"test indices must lie in 0..5"):
        io.load_dataset(f)


def test_saving_bad_objects_is_refused(tmp_path):
    s = SYSTEMS["chain"]()
    tr = make_traj(s)
    tr.p = tr.p[:, :2]
    with pytest.raises(HGNError, match="p has shape"):
        io.save_trajectories(tmp_path / "t.npz", tr)
    with pytest.raises(HGNError, match="empty"):
        io.save_trajectories(tmp_path / "t.npz", [])
    with pytest.raises(HGNError, match="holds a object"):
        io.save_trajectories(tmp_path / "t.npz", make_traj(s, meta={"x": object()}))
    with pytest.raises(HGNError, match="does not exist"):
        io.save_system(tmp_path / "no" / "s.npz", s)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------
# atomic saves
# ----------------------------------------------------------------------
def test_failed_save_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    s_old, s_new = SYSTEMS["chain"](), SYSTEMS["cubic"]()
    f = io.save_system(tmp_path / "s.npz", s_old)
    before = f.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(HGNError, match="No space left on device; the previous file"):
        io.save_system(f, s_new)
    assert f.read_bytes() == before
    assert_same_system(io.load_system(f), s_old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npz"]  # no temporary left behind


def test_crash_during_save_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    s = SYSTEMS["chain"]()
    f = io.save_trajectories(tmp_path / "t.npz", make_traj(s))
    before = f.read_bytes()
    real = np.savez

    def half_then_crash(fh, **arrays):
        real(fh, **arrays)
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", half_then_crash)
    with pytest.raises(KeyboardInterrupt):
        io.save_trajectories(f, make_traj(s, frames=50))
    assert f.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.npz"]


def test_failed_xyz_save_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    import ase.io

    s = SYSTEMS["chain"]()
    f = xyz.write_trajectory(tmp_path / "t.xyz", make_traj(s))
    before = f.read_bytes()

    def fail(*a, **k):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(ase.io, "write", fail)
    with pytest.raises(HGNError, match="Input/output error"):
        xyz.write_trajectory(f, make_traj(s, frames=9))
    assert f.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.xyz"]


# ----------------------------------------------------------------------
# extended XYZ
# ----------------------------------------------------------------------
XYZ_TOL = 5.1e-9  # ASE writes columns with 8 decimals


@pytest.mark.parametrize("name", ["chain", "edge_scale", "periodic", "periodic2d", "cubic"])
def test_xyz_round_trip(tmp_path, name):
    s = SYSTEMS[name]()
    tr = make_traj(s, meta={"seed": 5, "integrator": "velocity-verlet"})
    f = xyz.write_trajectory(tmp_path / "t.extxyz", tr)
    back = xyz.read_trajectory(f)
    assert_same_system(s, back.system)  # the graph travels in the hgn record, exactly
    assert back.q.shape == tr.q.shape and back.p.shape == tr.p.shape
    assert np.max(np.abs(back.q - tr.q)) <= XYZ_TOL
    assert np.max(np.abs(back.p - tr.p)) <= XYZ_TOL
    for name_ in ("t", "kinetic", "potential", "momentum"):  # comment-line values are exact
        assert np.array_equal(getattr(back, name_), getattr(tr, name_)), name_
    assert (back.dt, back.save_every, back.label) == (tr.dt, tr.save_every, tr.label)
    assert back.meta == {"seed": 5, "integrator": "velocity-verlet"}


def test_xyz_file_is_what_other_programs_expect(tmp_path):
    """Columns, cell and pbc as ASE (and OVITO) read them."""
    import ase.io

    s = SYSTEMS["periodic2d"]()
    tr = make_traj(s, 3)
    f = xyz.write_trajectory(tmp_path / "t.xyz", tr)
    frames = ase.io.read(f, index=":")
    assert len(frames) == 3 and len(frames[0]) == s.n
    a = frames[1]
    assert a.pbc.tolist() == [True, True, False]
    assert np.allclose(a.cell.array, np.diag([s.box[0], s.box[1], 0.0]))
    assert np.allclose(a.get_positions()[:, :2], tr.q[1], atol=XYZ_TOL) and np.all(a.get_positions()[:, 2] == 0)
    assert np.allclose(a.get_momenta()[:, :2], tr.p[1], atol=XYZ_TOL)
    assert np.allclose(a.get_masses(), s.masses)
    assert a.get_potential_energy() == tr.potential[1]
    assert a.info["time"] == tr.t[1] and a.info["kinetic_energy"] == tr.kinetic[1]
    header = f.read_text().splitlines()[1]
    assert "Properties=species:S:1:pos:R:3:masses:R:1:momenta:R:3" in header


def test_xyz_forces_are_written_on_request_and_kept_on_import(tmp_path):
    s = SYSTEMS["chain"]()
    tr = make_traj(s, 3)
    back = xyz.read_trajectory(xyz.write_trajectory(tmp_path / "f.xyz", tr, forces=True))
    ff = ForceField(s)
    truth = np.stack([ff.forces(q) for q in tr.q])
    assert back.meta["forces"].shape == truth.shape
    assert np.max(np.abs(back.meta["forces"] - truth)) <= XYZ_TOL
    assert not np.allclose(truth, 0)


def test_plain_ase_file_without_system_says_what_is_missing(tmp_path):
    from ase import Atoms
    import ase.io

    f = tmp_path / "plain.xyz"
    ase.io.write(f, [Atoms("Ar2", positions=[[0, 0, 0], [1.1, 0, 0]]) for _ in range(3)], format="extxyz")
    with pytest.raises(HGNError, match="give a system file, or a potential with a cutoff or edges"):
        xyz.read_trajectory(f)
    with pytest.raises(HGNError, match="has no momenta and no frame times: give dt"):
        xyz.read_trajectory(f, potential="lj", cutoff=2.5)
    with pytest.raises(HGNError, match="has no momenta and only one frame"):
        ase.io.write(tmp_path / "one.xyz", Atoms("Ar2", positions=[[0, 0, 0], [1.1, 0, 0]]), format="extxyz")
        xyz.read_trajectory(tmp_path / "one.xyz", potential="lj", cutoff=2.5, dt=0.1)


def test_plain_ase_file_gets_momenta_from_finite_differences(tmp_path):
    """Positions x(t) = x0 + v t + a t^2 / 2: second-order differences are
    exact for a quadratic, so p = m (v + a t) must come back to round-off."""
    from ase import Atoms
    import ase.io

    t = 0.1 * np.arange(6)
    x0 = np.array([[0.0, 0.0, 0.0], [1.2, 0.3, 0.0], [0.1, 1.4, 0.0]])
    v = np.array([[0.5, -0.2, 0.0], [0.0, 0.3, 0.0], [-0.4, 0.1, 0.0]])
    acc = np.array([[0.2, 0.0, 0.0], [-0.1, 0.4, 0.0], [0.0, -0.3, 0.0]])
    frames = [Atoms("Ar3", positions=x0 + v * tk + 0.5 * acc * tk**2) for tk in t]
    f = tmp_path / "moving.xyz"
    ase.io.write(f, frames, format="extxyz")
    tr = xyz.read_trajectory(f, potential="morse", cutoff=3.0, dt=0.1, masses=2.0)
    assert tr.system.dim == 2 and tr.system.cutoff == 3.0 and tr.system.box is None  # z == 0 everywhere
    assert np.allclose(tr.system.masses, 2.0)
    expected = 2.0 * (v[:, :2] + acc[:, :2] * t[:, None, None])
    assert np.max(np.abs(tr.p - expected)) < 1e-6  # 8-decimal positions / dt
    assert np.allclose(tr.t, t) and tr.dt == pytest.approx(0.1) and tr.save_every == 1
    assert "finite differences" in tr.meta["import"]["momenta"]
    # energies are computed with the given potential
    ff = ForceField(tr.system)
    assert np.allclose(tr.potential, [ff.energy(q) for q in tr.q])
    assert np.allclose(tr.kinetic, kinetic_energy(tr.p, tr.system.masses))


def test_finite_differences_follow_particles_across_periodic_boundaries(tmp_path):
    from ase import Atoms
    import ase.io

    box = 5.0
    t = 0.5 * np.arange(5)
    x = np.array([4.0, 2.0])[:, None] + np.array([0.8, -0.3])[:, None] * t  # (2 particles, T)
    frames = []
    for k, tk in enumerate(t):
        pos = np.zeros((2, 3))
        pos[:, 0] = np.mod(x[:, k], box)  # wrapped into the box: particle 0 jumps from 4.8 to 0.2
        pos[:, 1] = [1.0, 3.0]
        a = Atoms("Ar2", positions=pos, cell=[box, box, box], pbc=True)
        a.info["time"] = tk
        frames.append(a)
    ase.io.write(tmp_path / "pbc.xyz", frames, format="extxyz")
    tr = xyz.read_trajectory(tmp_path / "pbc.xyz", potential="lj", cutoff=2.0, dim=3)
    assert np.allclose(tr.system.box, box)
    assert np.allclose(tr.p[:, :, 0], [0.8, -0.3], atol=1e-7)
    assert np.allclose(tr.p[:, :, 1:], 0, atol=1e-7)


def test_file_forces_and_energies_from_another_program_are_kept(tmp_path):
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator
    import ase.io

    rng = np.random.default_rng(0)
    frames, forces = [], []
    for k in range(3):
        a = Atoms("Ar2", positions=[[0, 0, 0.1 * k], [1.2, 0.1, 0]])
        a.set_momenta(rng.standard_normal((2, 3)))
        fk = rng.standard_normal((2, 3))
        forces.append(fk)
        a.calc = SinglePointCalculator(a, energy=-1.5 + k, forces=fk)
        frames.append(a)
    ase.io.write(tmp_path / "dft.xyz", frames, format="extxyz")
    tr = xyz.read_trajectory(tmp_path / "dft.xyz", potential="lj", cutoff=3.0)
    assert tr.system.dim == 3
    assert np.allclose(tr.meta["forces"], forces, atol=XYZ_TOL)
    assert np.array_equal(tr.meta["file_energy"], [-1.5, -0.5, 0.5])
    assert "frame index" in tr.meta["import"]["times"] and "1.0 each" in tr.meta["import"]["masses"]
    assert np.allclose(tr.p, [a.get_momenta() for a in frames], atol=XYZ_TOL)


def test_xyz_import_with_a_system_file(tmp_path):
    s = SYSTEMS["chain"]()
    io.save_system(tmp_path / "s.npz", s)
    tr = make_traj(s)
    f = xyz.write_trajectory(tmp_path / "t.xyz", tr)
    back = xyz.read_trajectory(f, system=tmp_path / "s.npz", label="from file")
    assert_same_system(back.system, s) and back.label == "from file"
    # energies recomputed from the (8-decimal) states with the given system
    assert np.allclose(back.potential, tr.potential, atol=1e-6)
    other = builders.chain(7)
    with pytest.raises(HGNError, match="has 5 atoms per frame but the system has 7 particles"):
        xyz.read_trajectory(f, system=other)
    with pytest.raises(HGNError, match="not both"):
        xyz.read_trajectory(f, system=s, potential="lj", cutoff=1.0)


def test_bad_xyz_files_are_reported(tmp_path):
    cases = {
        "text.xyz": "hello world\nthis is not a structure\n",
        "counts.xyz": "2\n\nH 0 0 0\nH 1 0 0\n3\n\nH 0 0 0\nH 1 0 0\nH 2 0 0\n",
        "short.xyz": "3\n\nH 0 0 0\nH 1 0 0\n",
        "empty.xyz": "",
    }
    messages = {"text.xyz": "not a readable extended XYZ file", "counts.xyz": "frame 1 has 3 atoms but frame 0 has 2",
                "short.xyz": "not a readable extended XYZ file .*frame 0 has 2 atoms, expected 3",
                "empty.xyz": "holds no frames"}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(HGNError, match=messages[name]):
            xyz.read_trajectory(tmp_path / name, potential="lj", cutoff=2.0, dt=0.1)
    (tmp_path / "binary.xyz").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(HGNError, match="binary.xyz is not a readable extended XYZ file"):
        io.load_any(tmp_path / "binary.xyz")
    zipfile.ZipFile(tmp_path / "z.xyz", "w").close()
    with pytest.raises(HGNError, match="z.xyz is not a readable extended XYZ file"):
        xyz.read_trajectory(tmp_path / "z.xyz")


def test_damaged_hgn_record_is_reported(tmp_path):
    f = xyz.write_trajectory(tmp_path / "t.xyz", make_traj(SYSTEMS["chain"]()))
    lines = f.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace("hgn=", "hgn=AAAA")
    f.write_text("".join(lines))
    with pytest.raises(HGNError, match="'hgn' record .* is damaged"):
        xyz.read_trajectory(f)


def test_2d_system_with_z_motion_is_refused(tmp_path):
    from ase import Atoms
    import ase.io

    s = builders.chain(2)
    frames = [Atoms("X2", positions=[[0, 0, 0], [1, 0, 0.1 * k]]) for k in range(3)]
    ase.io.write(tmp_path / "z.xyz", frames, format="extxyz")
    with pytest.raises(HGNError, match="2D but some z coordinates are not 0"):
        xyz.read_trajectory(tmp_path / "z.xyz", system=s, dt=0.1)


def test_xyz_describe(tmp_path):
    f = xyz.write_trajectory(tmp_path / "t.xyz", make_traj(SYSTEMS["periodic"](), 4))
    text = io.describe(f)
    assert "extended XYZ, 4 frames of 27 atoms" in text and "momenta" in text and "lennard-jones" in text


def test_generated_dataset_round_trips(tmp_path):
    """A dataset from core.physics.datagen (meta with int arrays and settings) reads back bit for bit."""
    from core.physics.datagen import DataSpec, generate

    ds = generate(builders.chain(4), DataSpec(n_trajectories=3, steps=20, save_every=5, seed=2))
    back = io.load_dataset(io.save_dataset(tmp_path / "gen.npz", ds))
    for name in ("q", "p", "dqdt", "dpdt", "energy", "train", "test"):
        assert np.array_equal(getattr(ds, name), getattr(back, name)), name
    assert np.array_equal(back.meta["trajectory_of_snapshot"], ds.meta["trajectory_of_snapshot"])
    assert back.meta["spec"] == ds.meta["spec"] and back.meta["split"] == ds.meta["split"]
    for a, b in zip(ds.trajectories, back.trajectories):
        assert_same_traj(a, b)


def test_xyz_wrap_folds_positions_into_the_box(tmp_path):
    s = SYSTEMS["periodic"]()
    tr = make_traj(s, 3)
    tr.q = tr.q + np.array([2.5, -1.0, 0.3]) * s.box  # unwrapped positions outside the box
    tr.meta["unwrapped"] = True
    back = xyz.read_trajectory(xyz.write_trajectory(tmp_path / "w.xyz", tr, wrap=True))
    assert np.all(back.q >= 0) and np.all(back.q < s.box)
    d = back.q - tr.q  # whole box lengths apart, up to the 8 decimals
    assert np.allclose(d / s.box, np.round(d / s.box), atol=1e-8)
    assert back.meta["wrapped"] is True and back.meta["unwrapped"] is False
    plain = xyz.read_trajectory(xyz.write_trajectory(tmp_path / "u.xyz", tr))
    assert np.max(np.abs(plain.q - tr.q)) <= XYZ_TOL and plain.meta["unwrapped"] is True


def test_xyz_export_reports_progress_and_can_be_cancelled(tmp_path):
    from core.errors import Cancelled
    from core.jobs import CancelToken

    s = SYSTEMS["chain"]()
    seen = []
    f = xyz.write_trajectory(tmp_path / "t.xyz", make_traj(s, 8), progress=lambda st, fr: seen.append((st, fr)))
    assert seen[0] == ("export", 0.0) and seen[-1] == ("export", 1.0) and len(seen) == 9
    before = f.read_bytes()
    token = CancelToken()

    def cancel_halfway(stage, fraction):
        if fraction >= 0.5:
            token.cancel()

    with pytest.raises(Cancelled):
        xyz.write_trajectory(f, make_traj(s, 20, seed=4), progress=cancel_halfway, cancel=token)
    assert f.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.xyz"]


def test_load_any_opens_a_fitted_model_with_identical_predictions(tmp_path):
    from core.physics import builders
    from core.physics.datagen import random_snapshots
    from core.files.io import load_any
    from core.learning.rfhgn import RFConfig, fit

    s = builders.square_lattice(2, 2)
    ds = random_snapshots(s, 40, 0.1, 0.1, seed=3)
    model = fit(ds, RFConfig(node_width=4, edge_width=8, message_width=4))
    path = model.save(tmp_path / "m.npz")
    kind, loaded = load_any(path)
    assert kind == "model"
    assert type(loaded).__name__ == "FittedModel"
    assert np.array_equal(loaded.energy(s, ds.q, ds.p), model.energy(s, ds.q, ds.p))
