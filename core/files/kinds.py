"""The one registry of file kinds: what core can open, how, and how it is described.

Every HGN Studio container names its kind in its header (``{"kind": ...}``,
see :mod:`core.container`); extended XYZ files are recognised by their
suffix. Each kind is registered once, by the module that defines its layout:

* ``system``, ``trajectory``, ``dataset`` (:mod:`core.files.io`): a System,
  a list of Trajectory, a Dataset;
* ``xyz``, recognised by the suffix ``.xyz`` or ``.extxyz``
  (:mod:`core.files.xyz`): a list of one Trajectory, reported as ``trajectory``;
* ``model``, ``baseline_model``, ``rf_hnn_model`` (:mod:`core.files.models`):
  a fitted RF-HGN, gradient-trained HGN or RF-HNN; projects embed these;
* ``project`` (:mod:`core.files.project`): a Project.

The package ``core.files`` imports all of these modules, so the registry is
complete whichever module of the package is imported first. This module
imports none of them: they import it and call :func:`register`.

Everything that opens a file by its kind looks it up here: :func:`load_any`,
:func:`describe` (``python -m core info``), :func:`system_in` (the CLI's
``--system``, the xyz reader's ``system=``) and the models embedded in a
project (:func:`model_kinds`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from core.errors import HGNError
from core.container import as_path, jsonable, list_npz, load_npz


@dataclass(frozen=True)
class FileKind:
    """One kind of file core can open."""

    #: the kind's name: the ``kind`` of its container header
    name: str
    #: ``load(path) -> value``
    load: Callable[[Path], Any]
    #: how a message names a file of this kind ("a system", "a fitted model")
    label: str
    #: ``describe(path) -> lines`` (indented) for ``python -m core info``; None: the header is shown
    describe: Callable[[Path], list[str]] | None = None
    #: ``system_of(value) -> System`` for kinds that carry a system (:func:`system_in`)
    system_of: Callable[[Any], Any] | None = None
    #: file name suffixes that mark this kind (files that are not containers); empty for containers
    suffixes: tuple[str, ...] = ()
    #: the kind :func:`load_any` reports for this kind's value (default: ``name``)
    opens_as: str | None = None
    #: a fitted model: a project embeds it through its own file and reads it back with ``load``
    model: bool = False
    #: ``summary(path) -> dict`` (JSON values) for ``python -m core info --json``; None: the header is given
    summary: Callable[[Path], dict] | None = None


#: kind name -> FileKind (filled by the modules listed in the module docstring)
KINDS: dict[str, FileKind] = {}


def register(kind: FileKind) -> FileKind:
    """Add ``kind`` to the registry (replacing one of the same name); returns it."""
    KINDS[kind.name] = kind
    return kind


def get(name) -> FileKind | None:
    """The registered kind called ``name``, or None."""
    return KINDS.get(name)


def model_kinds() -> list[str]:
    """Names of the registered kinds of fitted-model files, sorted."""
    return sorted(k.name for k in KINDS.values() if k.model)


def label_of(name) -> str:
    """How messages name a file of kind ``name`` ("a system"; "a 'widget'" for unknown kinds)."""
    kind = KINDS.get(name)
    return kind.label if kind is not None else f"a {name!r}"


def by_suffix(path) -> FileKind | None:
    """The kind recognised by the suffix of ``path`` (extended XYZ) or, for a
    folder, the folder kind (``chunked_dataset``, :mod:`core.files.chunked`); None for containers."""
    if Path(path).is_dir() and FOLDER_KIND in KINDS:
        return KINDS[FOLDER_KIND]
    suffix = Path(path).suffix.lower()
    return next((k for k in KINDS.values() if suffix in k.suffixes), None)


#: the kind a folder opens as (a chunked dataset: a manifest and chunk files)
FOLDER_KIND = "chunked_dataset"


def file_name(path) -> str:
    """The name of ``path`` for messages; HGNError unless it is text or a path."""
    return as_path(path).name


def load_any(path) -> tuple[str, object]:
    """Open any file core can read; returns ``(kind, value)``.

    ``value`` is a System (``system``), a list of Trajectory (``trajectory``,
    also for ``.xyz``/``.extxyz`` files), a Dataset (``dataset``), a fitted
    model (``model``, ``baseline_model``, ``rf_hnn_model``), a Project
    (``project``), or whatever the loader of another registered kind returns.
    HGNError (naming the file) for anything it cannot open, including a
    ``path`` that is not a file name (None, a number...).
    """
    path = as_path(path)
    kind = by_suffix(path)
    if kind is None:
        header, _ = load_npz(path)
        name = header.get("kind")
        kind = KINDS.get(name)
        if kind is None or kind.suffixes:
            opens = sorted(k.name for k in KINDS.values() if not k.suffixes)
            raise HGNError(f"{path.name} holds a {name!r}, which this program cannot open here "
                           f"(it opens: {', '.join(opens)})")
    return kind.opens_as or kind.name, kind.load(path)


def system_in(path):
    """The System a file holds: a system file's, the first trajectory's of a
    trajectory or xyz file, a dataset's; HGNError for files of other kinds."""
    name, value = load_any(path)
    kind = KINDS.get(name)
    if kind is None or kind.system_of is None:
        raise HGNError(f"{file_name(path)} holds a {name}, not a system")
    return kind.system_of(value)


def describe(path) -> str:
    """A few human-readable lines saying what a file holds (for ``python -m core info``)."""
    path = as_path(path)
    lines = [f"{path}"]
    kind = by_suffix(path)
    if kind is not None:
        return "\n".join(lines + list(kind.describe(path)))
    header, arrays = list_npz(path)  # names, shapes and dtypes only: the kind's describe reads what it needs
    name = header.get("kind")
    lines.append(f"  kind: {name} (HGN Studio file, version {header.get('version')})")
    kind = KINDS.get(name)
    if kind is not None and kind.describe is not None:
        lines += kind.describe(path)
    else:
        extra = {k: v for k, v in header.items() if k not in ("format", "version", "kind")}
        if extra:
            lines.append(f"  header: {short_json(extra)}")
    listed = [f"{k} {shape} {dtype}" for k, (shape, dtype) in arrays.items()]
    more = f", ... ({len(listed) - 12} more)" if len(listed) > 12 else ""
    lines.append("  arrays: " + ", ".join(listed[:12]) + more)
    return "\n".join(lines)


def describe_json(path) -> dict:
    """What :func:`describe` says, as one JSON document (``python -m core info --json``): ``file``,
    ``kind``, ``version`` (None for extended XYZ), ``lines`` (the lines :func:`describe` prints after the
    file name), ``arrays`` ({name: {shape, dtype}} of a container), the kind's own summary (``systems``,
    ``trajectories``, ``dataset``, ...; or ``header``: the header's fields for kinds without one) and, where
    a system is damped or driven, its ``damping`` and ``forcing`` at the top level (of the first system that
    has them). A model fitted with damping and forcing (``core.learning.rfhgn.port``) reports its identified
    ``damping``, ``forcing`` and ``field`` there instead, with ``identified: true``."""
    path = as_path(path)
    lines = describe(path).splitlines()[1:]
    doc: dict = {"file": str(path)}
    kind = by_suffix(path)
    if kind is not None:
        doc.update(kind=kind.opens_as or kind.name, version=None, lines=lines)
    else:
        header, arrays = list_npz(path)
        name = header.get("kind")
        kind = KINDS.get(name)
        doc.update(kind=name, version=header.get("version"), lines=lines,
                   arrays={k: {"shape": list(shape), "dtype": str(dtype)} for k, (shape, dtype) in arrays.items()})
        if kind is None or kind.summary is None:
            doc["header"] = jsonable({k: v for k, v in header.items() if k not in ("format", "version", "kind")},
                                     "header")
    if kind is not None and kind.summary is not None:
        doc.update(kind.summary(path))
    ident = (doc.get("header") or {}).get("info", {})
    ident = ident.get("port") if isinstance(ident, dict) else None
    if isinstance(ident, dict) and "damping" not in doc:  # a model that identified them (rfhgn.port.fit_port)
        doc["damping"], doc["forcing"] = ident.get("damping"), ident.get("forcing")
        doc["field"], doc["identified"] = ident.get("field"), True
    if "damping" not in doc:
        port = _first_port(doc)
        if port is not None:
            doc["damping"], doc["forcing"] = port.get("damping"), port.get("forcing")
    return jsonable(doc, "info")


def _first_port(doc: dict) -> dict | None:
    """The damping and forcing of the first system in ``doc`` that has them (summaries' ``systems``, or a
    header's ``system``/``systems``/``train_system``)."""
    from core.physics.port import Port, port_summary

    systems = list(doc.get("systems") or [])
    header = doc.get("header") or {}
    for key in ("system", "train_system"):
        if isinstance(header.get(key), dict):
            systems.append(header[key])
    systems += [s for s in header.get("systems") or [] if isinstance(s, dict)]
    for s in systems:
        if s.get("damping") is not None or s.get("forcing") is not None:
            return {"damping": s.get("damping"), "forcing": s.get("forcing")}
        if isinstance(s.get("port"), dict):
            try:
                return port_summary(Port.from_dict(s["port"]))
            except HGNError:
                continue
    return None


def short_json(d: dict, limit: int = 300) -> str:
    """``d`` (without numpy arrays) as JSON, cut to ``limit`` characters."""
    text = json.dumps(jsonable({k: v for k, v in d.items() if not isinstance(v, np.ndarray)}, "meta"))
    return text if len(text) <= limit else text[: limit - 3] + "..."


__all__ = ["FileKind", "KINDS", "register", "get", "model_kinds", "label_of", "by_suffix", "file_name", "load_any",
           "system_in", "describe", "describe_json", "short_json"]
