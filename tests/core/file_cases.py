"""Valid files of every kind, and a raw writer for damaged ones (shared by
test_hardening_files and test_property_files; issue 11).

Everything here uses only the public file API that existed before the
hardening (save_*/load_*, np.savez), so the tests that import it can be run
against an older checkout to count what failed there.
"""
from __future__ import annotations

import io as _io
import json
import zipfile
from pathlib import Path

import numpy as np

HEADER = "__header__"


def write_raw(path, header, arrays: dict, compress: bool = False) -> Path:
    """An npz container written without any check: ``header`` a dict (JSON,
    NaN allowed), a str or bytes (written as they are); ``arrays`` any numpy
    arrays (complex, NaN, wrong shapes...)."""
    if isinstance(header, dict):
        header = json.dumps(header, allow_nan=True)
    if isinstance(header, str):
        header = header.encode("utf-8", "surrogatepass")
    payload = {HEADER: np.frombuffer(header, dtype=np.uint8), **arrays}
    with open(path, "wb") as fh:
        (np.savez_compressed if compress else np.savez)(fh, **payload)
    return Path(path)


def read_raw(path) -> tuple[dict, dict]:
    """Header and arrays of a trusted (valid) container, read with NumPy alone."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(bytes(arrays.pop(HEADER)).decode("utf-8"))
    return header, arrays


def npy_bytes(header_dict: dict, data: bytes = b"") -> bytes:
    """A .npy member whose header says ``header_dict`` (descr, fortran_order,
    shape) followed by ``data``: the header may lie about the data."""
    text = repr(header_dict).encode("latin1")
    pad = 64 - (10 + len(text) + 1) % 64
    head = text + b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + len(head).to_bytes(2, "little") + head + data


def zip_members(path, members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> Path:
    """A zip of the given raw members (names as given)."""
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return Path(path)


def header_member(header: dict) -> bytes:
    buf = _io.BytesIO()
    np.save(buf, np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))
    return buf.getvalue()


def deflate_bomb(path, header: dict, name: str = "x", nbytes: int = 256 * 2**20) -> Path:
    """A container whose member ``name`` is ``nbytes`` of zeros (float64),
    deflated (about 1000:1): small on disk, huge when read."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(HEADER + ".npy", header_member(header))
        with zf.open(name + ".npy", "w", force_zip64=True) as fh:
            fh.write(npy_bytes({"descr": "<f8", "fortran_order": False, "shape": (nbytes // 8,)}))
            chunk = bytes(2**22)
            for _ in range(nbytes // len(chunk)):
                fh.write(chunk)
    return Path(path)


# ----------------------------------------------------------------------
# valid files of every kind
# ----------------------------------------------------------------------
def small_parts():
    """A 4-particle chain, a short trajectory on it and a small dataset."""
    from core.physics import builders
    from core.physics.datagen import random_snapshots
    from core.physics.simulate import simulate

    system = builders.chain(4, dim=2)
    rng = np.random.default_rng(0)
    traj = simulate(system, system.positions + 0.05 * rng.standard_normal((4, 2)),
                    0.1 * rng.standard_normal((4, 2)), 0.01, 20, save_every=5)
    ds = random_snapshots(system, 24, seed=0, test_fraction=0.25)
    return system, traj, ds


def make_valid_files(folder) -> dict[str, Path]:
    """One valid file of every kind in ``folder``: kind -> path (``xyz`` for
    extended XYZ; also ``system_periodic``, a 3D cutoff system in a box, and
    ``model_frame``, an RF-HGN with the frame encoding). Models are tiny fits
    on the small dataset."""
    from core.files import io, xyz
    from core.files.project import ModelRecord, Project, RolloutRecord, save_project
    from core.learning.baselines import BaselineConfig
    from core.learning.baselines import fit as fit_baseline
    from core.learning.baselines.rf_hnn import RFHNNConfig, fit_hnn
    from core.learning.rfhgn import RFConfig, fit

    folder = Path(folder)
    system, traj, ds = small_parts()
    rf = fit(ds, RFConfig(node_width=4, edge_width=4, message_width=8, fast_tables=False))
    base = fit_baseline(ds, BaselineConfig(optimizer="adam", node_width=4, edge_width=4, message_width=8,
                                           time_budget=0, threads=1, max_epochs=2, batch_size=8))
    hnn = fit_hnn(ds, RFHNNConfig(width=8))
    out = {
        "system": io.save_system(folder / "system.npz", system),
        "trajectory": io.save_trajectories(folder / "trajectory.npz", [traj]),
        "dataset": io.save_dataset(folder / "dataset.npz", ds),
        "model": rf.save(folder / "model.npz"),
        "baseline_model": base.save(folder / "baseline.npz"),
        "rf_hnn_model": hnn.save(folder / "rf_hnn.npz"),
        "xyz": xyz.write_trajectory(folder / "trajectory.xyz", traj),
    }
    rec = ModelRecord(name="rf", method="rfhgn", settings={"node_width": 4}, system=system, model=rf, dataset=ds,
                      fit_time=0.5, test_mse=1e-3, loss=np.array([1.0, 0.5]))
    from core.physics import builders

    out["system_periodic"] = io.save_system(folder / "periodic.npz",
                                            builders.molecular(8, density=0.3, dim=3, cutoff=1.2, seed=1))
    out["model_frame"] = fit(ds, RFConfig(encoding="frame", node_width=4, edge_width=4, message_width=8,
                                          fast_tables=False)).save(folder / "model_frame.npz")
    out["project"] = save_project(folder / "project.hgnproj", Project(
        system=system, models=[rec], current_model=0, rollout=RolloutRecord(truth=traj),
        view={"frame": 1, "camera": {"center": [0.0, 0.0, 0.0], "fov": 30.0}}, name="p"))
    return out
