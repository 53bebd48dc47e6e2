"""Issue 11, property-based: damaged files of every kind are refused cleanly.

From one valid file of every kind (system, trajectory, dataset, the three
model kinds, project, extended XYZ; plus a periodic 3D cutoff system and a
frame-encoding RF-HGN) hypothesis makes damaged ones:
truncation, byte flips (plain and inside compressed members), header fields
set to values of the wrong type or range or removed, arrays of the wrong
dtype (complex, strings, narrower), shape, with NaN/inf, missing or added,
array headers and zip tables that lie about sizes, deflate bombs, deeply
nested JSON, foreign zips; and for XYZ: atom-count lines, tokens, lines,
Properties, comment keys and the ``hgn`` record damaged.

For every case ``load_any`` must either raise HGNError (never another
exception) or return a valid value (finite arrays of consistent shapes; a
model that evaluates to finite numbers), within TIME_LIMIT_S seconds and a
traced memory peak below MEMORY_LIMIT_MB. The cases are reproducible
(``derandomize=True``).

Measuring an older checkout: with the environment variable
``HGN_PROPERTY_REPORT=<file>`` every failing case is appended to that file
(one JSON line) instead of failing the test, so all cases run; every case
writes one line ``{"kind", "damage", "ok"}`` there, which gives the count
of cases and of failures.
"""
from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import struct
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import HGNError
from core.files import kinds
from file_cases import deflate_bomb, header_member, make_valid_files, npy_bytes, read_raw, write_raw, zip_members

TIME_LIMIT_S = 2.0
MEMORY_LIMIT_MB = 200.0
#: a case still running after this many seconds is stopped (SIGALRM) and counted as a failure
HARD_STOP_S = 10
EXAMPLES = 45
CONTAINER_KINDS = ["system", "system_periodic", "trajectory", "dataset", "model", "model_frame", "baseline_model",
                   "rf_hnn_model", "project"]
REPORT = os.environ.get("HGN_PROPERTY_REPORT")

WEIRD = [None, "", "abc", "1e999", -1, 0, 2, 10**30, -(10**19), 1e308, 1.5, float("nan"), float("inf"), True,
         [], [1, 2], {}, {"a": 1}, "x" * 300]
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    folder = tmp_path_factory.mktemp("valid")
    paths = make_valid_files(folder)
    for path in paths.values():  # every valid file loads and is valid (also warms the imports up)
        name, value = kinds.load_any(path)
        check_valid(name, value)
    raw = {k: read_raw(p) for k, p in paths.items() if k != "xyz"}
    out = tmp_path_factory.mktemp("damaged")
    tracemalloc.start()
    yield {"paths": paths, "raw": raw, "xyz": paths["xyz"].read_text(), "out": out}
    tracemalloc.stop()


# ----------------------------------------------------------------------
# what a loaded value must be
# ----------------------------------------------------------------------
def _finite(*arrays):
    for a in arrays:
        a = np.asarray(a)
        assert np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer), a.dtype
        assert np.isfinite(a).all()


def _check_model(model):
    system = model.train_system
    rng = np.random.default_rng(0)
    q = system.positions + 0.01 * rng.standard_normal(system.positions.shape)
    p = 0.1 * rng.standard_normal(system.positions.shape)
    _finite(model.energy(system, q, p), *model.time_derivatives(system, q, p))


def check_valid(kind, value):
    """Raise AssertionError unless ``value`` (what load_any returned for ``kind``) is usable."""
    from core.files.io import check_dataset, check_trajectory_shapes
    from core.physics.system import System
    from core.physics.trajectory import Dataset, Trajectory

    if kind == "system":
        assert isinstance(value, System)
        value.validate()
        _finite(value.positions, value.masses)
    elif kind == "trajectory":
        assert isinstance(value, list) and value
        for tr in value:
            assert isinstance(tr, Trajectory)
            check_trajectory_shapes(tr, "trajectory")
            _finite(tr.t, tr.q, tr.p, tr.kinetic, tr.potential, tr.momentum)
    elif kind == "dataset":
        assert isinstance(value, Dataset)
        check_dataset(value, "dataset")
        _finite(value.q, value.p, value.dqdt, value.dpdt, value.energy)
    elif kind in ("model", "baseline_model", "rf_hnn_model"):
        _check_model(value)
    elif kind == "project":
        for rec in value.models:
            if rec.model is not None:
                _check_model(rec.model)
            if rec.dataset is not None:
                check_valid("dataset", rec.dataset)
        if value.rollout is not None:
            check_valid("trajectory", [value.rollout.truth])
        if value.system is not None:
            check_valid("system", value.system)
    else:
        raise AssertionError(f"unexpected kind {kind}")


# ----------------------------------------------------------------------
# running one case
# ----------------------------------------------------------------------
class HardStop(BaseException):
    pass


@contextlib.contextmanager
def hard_stop(seconds: int):
    def ring(signum, frame):
        raise HardStop()

    old = signal.signal(signal.SIGALRM, ring)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def outcome(path: Path) -> str | None:
    """None when loading ``path`` is clean (HGNError, or a valid value) within the bounds, else what went wrong."""
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    problem = None
    try:
        with hard_stop(HARD_STOP_S):
            name, value = kinds.load_any(path)
            check_valid(name, value)
    except HGNError as exc:
        if "\n" in str(exc) or not str(exc):
            problem = f"HGNError message not one line: {str(exc)[:200]!r}"
    except HardStop:
        problem = f"still running after {HARD_STOP_S} s"
    except AssertionError as exc:
        problem = f"loaded an invalid value: {str(exc)[:200]}"
    except BaseException as exc:  # noqa: BLE001 - any other exception is the failure being looked for
        if isinstance(exc, KeyboardInterrupt):
            raise
        problem = f"{type(exc).__name__}: {str(exc)[:200]}"
    elapsed = time.perf_counter() - t0
    peak = (tracemalloc.get_traced_memory()[1] - base) / 2**20
    if problem is None and elapsed > TIME_LIMIT_S:
        problem = f"took {elapsed:.1f} s"
    if problem is None and peak > MEMORY_LIMIT_MB:
        problem = f"traced memory peak {peak:.0f} MB"
    return problem


def verdict(kind: str, damage: str, path: Path) -> None:
    problem = outcome(path)
    if REPORT:
        with open(REPORT, "a") as fh:
            fh.write(json.dumps({"kind": kind, "damage": damage, "ok": problem is None, "problem": problem}) + "\n")
        return
    assert problem is None, f"{kind} file damaged by {damage}: {problem}"


# ----------------------------------------------------------------------
# damage to containers
# ----------------------------------------------------------------------
def _paths(doc, prefix=(), depth=0):
    """Paths (tuples of keys/indices) to every value in a JSON document, a few levels deep."""
    out = []
    if depth > 6:
        return out
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for k, v in items:
        out.append(prefix + (k,))
        out.extend(_paths(v, prefix + (k,), depth + 1))
    return out


def _at(doc, path):
    for k in path[:-1]:
        doc = doc[k]
    return doc


def _flip_bytes(data, raw: bytes, most: int) -> tuple[bytes, list]:
    """``raw`` with 1 to ``most`` bytes XOR-ed by drawn non-zero values, and the (position, value) pairs."""
    b = bytearray(raw)
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(b) - 1), st.integers(1, 255)), min_size=1,
                               max_size=most), label="flips")
    for pos, x in flips:
        b[pos] ^= x
    return bytes(b), flips


def _copy(raw):
    header, arrays = raw
    return json.loads(json.dumps(header)), {k: v.copy() for k, v in arrays.items()}


def damage_container(data, raw, src: Path, dst: Path) -> str:
    """Write a damaged copy of the container ``src`` (header and arrays ``raw``) to ``dst``; returns a label."""
    op = data.draw(st.sampled_from(["truncate", "flip", "field", "field", "drop_field", "dtype", "shape", "value",
                                    "drop_array", "extra_array", "deep_json", "foreign", "huge_shape", "zip_lie",
                                    "compressed_flip", "bomb", "header_bytes"]), label="op")
    header, arrays = _copy(raw)
    names = sorted(arrays)
    if op == "truncate":
        b = src.read_bytes()
        cut = data.draw(st.integers(0, len(b) - 1), label="cut")
        dst.write_bytes(b[:cut])
        return f"truncate at {cut} of {len(b)}"
    if op == "flip":
        b, flips = _flip_bytes(data, src.read_bytes(), 8)
        dst.write_bytes(b)
        return f"flip {flips}"
    if op in ("field", "drop_field"):
        every = _paths(header)
        shallow = [q for q in every if len(q) <= 3]  # the schema's fields more often than deep meta values
        path = data.draw(st.one_of(st.sampled_from(shallow), st.sampled_from(every)), label="path")
        parent = _at(header, path)
        if op == "field":
            value = data.draw(st.sampled_from(WEIRD), label="value")
            parent[path[-1]] = value
            write_raw(dst, header, arrays)
            return f"header {'.'.join(map(str, path))} = {value!r:.40}"
        del parent[path[-1]]
        write_raw(dst, header, arrays)
        return f"header {'.'.join(map(str, path))} removed"
    if op in ("dtype", "shape", "value", "drop_array"):
        name = data.draw(st.sampled_from(names), label="array")
        a = arrays[name]
        if op == "dtype":
            dt = data.draw(st.sampled_from(["complex128", "float32", "float16", "int8", "uint64", "bool", "U3",
                                            "S2", "int64"]), label="dtype")
            arrays[name] = a.astype(dt) if dt[0] not in "US" else a.astype(str).astype(dt)
            label = f"{name} as {dt}"
        elif op == "shape":
            how = data.draw(st.sampled_from(["shorter", "longer", "add_axis", "ravel", "transpose", "empty",
                                             "scalar"]), label="how")
            arrays[name] = {"shorter": lambda x: x[:-1] if x.ndim else x.reshape(1)[:0],
                            "longer": lambda x: np.concatenate([x, x[:1]]) if x.ndim else x.reshape(1),
                            "add_axis": lambda x: x[None],
                            "ravel": lambda x: x.reshape(-1),
                            "transpose": lambda x: x.T,
                            "empty": lambda x: np.zeros((0,) + x.shape[1:], x.dtype),
                            "scalar": lambda x: np.asarray(x.reshape(-1)[0] if x.size else 0)}[how](a)
            label = f"{name} {how}"
        elif op == "value":
            v = data.draw(st.sampled_from([np.nan, np.inf, -np.inf, 1e308, -1.0, 0.0, 1e-300]), label="v")
            x = np.array(a, dtype=np.float64 if a.dtype.kind not in "iu" else a.dtype)
            if x.size:
                i = data.draw(st.integers(0, x.size - 1), label="index")
                x.reshape(-1)[i] = v if x.dtype.kind == "f" else (-1 if v < 0 else 10**9 if v > 1 else 0)
            arrays[name] = x
            label = f"{name}[...] = {v}"
        else:
            del arrays[name]
            label = f"{name} removed"
        write_raw(dst, header, arrays)
        return label
    if op == "extra_array":
        arrays[data.draw(st.sampled_from(["junk", "theta2", "traj9.q", "system7.positions"]), label="n")] = \
            np.ones(data.draw(st.integers(0, 5), label="len"))
        write_raw(dst, header, arrays)
        return "extra array"
    if op == "deep_json":
        depth = data.draw(st.sampled_from([70, 900, 5000, 200_000]), label="depth")
        text = json.dumps(header)[:-1] + ', "deep": ' + "[" * depth + "]" * depth + "}"
        write_raw(dst, text, arrays)
        return f"header nested {depth} deep"
    if op == "header_bytes":
        text = data.draw(st.sampled_from([b"", b"\xff\xfe", b"[]", b"null", b'"x"', b"{", b'{"format": "hgn-studio"}',
                                          json.dumps(header).encode()[:-5]]), label="text")
        write_raw(dst, text, arrays)
        return f"header bytes {text[:30]!r}"
    if op == "foreign":
        which = data.draw(st.sampled_from(["npz", "text", "empty_zip", "other_members"]), label="foreign")
        if which == "npz":
            np.savez(dst, q=np.zeros((3, 2)))
        elif which == "text":
            dst.write_text("positions: 1 2 3\n")
        elif which == "empty_zip":
            zipfile.ZipFile(dst, "w").close()
        else:
            zip_members(dst, {"__header__.npy": header_member(header), "readme.txt": b"hello",
                              "../escape.npy": b"\x93NUMPY"})
        # np.savez adds .npz to names without it
        if which == "npz" and not dst.exists():
            Path(str(dst) + ".npz").rename(dst)
        return f"foreign {which}"
    if op == "huge_shape":
        name = data.draw(st.sampled_from(names), label="array")
        k = data.draw(st.integers(4, 15), label="log10")
        members = {"__header__.npy": header_member(header)}
        for n, a in arrays.items():
            buf = __import__("io").BytesIO()
            np.save(buf, a)
            members[n + ".npy"] = buf.getvalue()
        shape = (10**k,) + tuple(arrays[name].shape[1:])
        members[name + ".npy"] = npy_bytes({"descr": "<f8", "fortran_order": False, "shape": shape}, bytes(64))
        zip_members(dst, members)
        return f"{name} declares shape {shape}"
    if op == "zip_lie":
        write_raw(dst, header, arrays)
        b = bytearray(dst.read_bytes())
        name = data.draw(st.sampled_from(names + ["__header__"]), label="array")
        size = data.draw(st.sampled_from([0, 1, 2**31 - 1, 2**32 - 1]), label="size")
        needle = (name + ".npy").encode()
        at = b.rfind(b"PK\x01\x02", 0, b.rfind(needle))  # its central directory entry
        b[at + 24:at + 28] = struct.pack("<I", size)      # declared uncompressed size
        dst.write_bytes(bytes(b))
        return f"zip table: {name} declares {size} bytes"
    if op == "compressed_flip":
        write_raw(dst, header, arrays, compress=True)
        b = bytearray(dst.read_bytes())
        pos = data.draw(st.integers(40, max(41, len(b) - 200)), label="pos")
        b[pos] ^= 0xA5
        dst.write_bytes(bytes(b))
        return f"compressed, flipped at {pos}"
    if op == "bomb":
        deflate_bomb(dst, json.loads(json.dumps(raw[0])), name=data.draw(st.sampled_from(names), label="array"),
                     nbytes=8 * 2**20)
        return "deflate bomb"
    raise AssertionError(op)


@pytest.mark.parametrize("kind", CONTAINER_KINDS)
@SETTINGS
@given(data=st.data())
def test_damaged_containers_are_refused_cleanly(bases, kind, data):
    dst = bases["out"] / f"damaged-{kind}.npz"
    dst.unlink(missing_ok=True)
    label = damage_container(data, bases["raw"][kind], bases["paths"][kind], dst)
    verdict(kind, label, dst)


# ----------------------------------------------------------------------
# damage to extended XYZ text
# ----------------------------------------------------------------------
def damage_xyz(data, text: str) -> str | tuple[str, str]:
    lines = text.split("\n")
    n_atoms = int(lines[0])
    counts = list(range(0, len(lines) - 1, n_atoms + 2))
    op = data.draw(st.sampled_from(["count", "token", "truncate", "flip", "record", "record_bomb", "properties",
                                    "many_keys", "drop_line", "dup_line", "long_line"]), label="op")
    if op == "count":
        i = data.draw(st.sampled_from(counts), label="frame")
        v = data.draw(st.sampled_from(["99999999999", "-1", "abc", "0", "3", "1e3", "", " 5 ", "4.0", "１"]),
                      label="count")
        lines[i] = v
        return "\n".join(lines), f"count line {i} = {v!r}"
    if op == "token":
        atom_lines = [i for i in range(len(lines)) if i not in counts and i - 1 not in counts and lines[i].strip()]
        i = data.draw(st.sampled_from(atom_lines), label="line")
        toks = lines[i].split()
        j = data.draw(st.integers(0, len(toks) - 1), label="token")
        toks[j] = data.draw(st.sampled_from(["nan", "inf", "1e999", "abc", "", "-0", "1e308", "X"]), label="v")
        lines[i] = " ".join(toks)
        return "\n".join(lines), f"line {i} token {j} = {toks[j]!r}"
    if op == "truncate":
        cut = data.draw(st.integers(0, len(text) - 1), label="cut")
        return text[:cut], f"truncate at {cut}"
    if op == "flip":
        b, flips = _flip_bytes(data, text.encode(), 6)
        return b, f"flip {flips}"
    if op in ("record", "record_bomb"):
        head, _, rest = lines[1].partition("hgn=")
        rec, sep, tail = rest.partition(" ")
        if op == "record":
            pos = data.draw(st.integers(0, len(rec) - 1), label="pos")
            ch = data.draw(st.sampled_from(list("A_-=/+!0")), label="ch")
            rec = rec[:pos] + ch + rec[pos + 1:]
            label = f"hgn record char {pos} = {ch!r}"
        else:
            body = data.draw(st.sampled_from([b'{"format": "hgn-studio", "pad": "' + b"a" * (16 * 2**20) + b'"}',
                                              b"[" * 100_000 + b"]" * 100_000,
                                              b'{"format": "hgn-studio", "system": ' + b"[" * 5000 + b"]" * 5000
                                              + b"}"]), label="body")
            rec = base64.urlsafe_b64encode(zlib.compress(body, 9)).decode().rstrip("=")
            label = f"hgn record inflating to {len(body)} bytes"
        lines[1] = head + "hgn=" + rec + sep + tail
        return "\n".join(lines), label
    if op == "properties":
        v = data.draw(st.sampled_from(["species:S:1:pos:R:99999999", "species:S:1:pos:R:2", "pos:R:3",
                                       "species:S:1:pos:R:3:momenta:Q:3", "species:S:-1:pos:R:3", ":::"]), label="p")
        lines[1] = lines[1].replace(lines[1][lines[1].index("Properties="):].split()[0], f"Properties={v}")
        return "\n".join(lines), f"Properties={v}"
    if op == "many_keys":
        n = data.draw(st.sampled_from([10, 10_000, 300_000]), label="n")
        lines[1] += " " + " ".join(f"k{i}=[1,2]" for i in range(n))
        return "\n".join(lines), f"{n} extra comment keys"
    if op == "long_line":
        i = data.draw(st.integers(0, len(lines) - 1), label="line")
        lines[i] += " 1" * data.draw(st.sampled_from([10, 100_000]), label="n")
        return "\n".join(lines), f"line {i} made long"
    i = data.draw(st.integers(0, len(lines) - 1), label="line")
    if op == "drop_line":
        del lines[i]
    else:
        lines.insert(i, lines[i])
    return "\n".join(lines), f"{op} {i}"


@SETTINGS
@given(data=st.data())
def test_damaged_xyz_files_are_refused_cleanly(bases, data):
    text, label = damage_xyz(data, bases["xyz"])
    dst = bases["out"] / "damaged.xyz"
    if isinstance(text, bytes):
        dst.write_bytes(text)
    else:
        dst.write_text(text)
    verdict("xyz", label, dst)
