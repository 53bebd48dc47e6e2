"""Schemas of file headers and arrays, checked before use (issue 11).

A file kind declares its header as ``{name: Field(...)}`` and its arrays as
``{name: Arr(...)}`` beside its loader (:mod:`core.files.io`,
:mod:`core.files.project`, the model files of :mod:`core.learning`);
:func:`check_fields` and :func:`check_arrays` check a header and its arrays
against them (types, ranges, choices; dtype, shape with named sizes such as
``N`` or ``d`` taken from the header, finiteness) and raise
:class:`~core.errors.HGNError` naming the file and the field. The embedded
system's schema is here (:data:`SYSTEM_FIELDS`, :data:`SYSTEM_ARRAYS`,
:func:`check_system_part`) because systems, trajectories, datasets, models
and projects all carry one. The container that reads the files is
:mod:`core.container`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.errors import HGNError


def show(v, limit: int = 60) -> str:
    """``repr(v)``, cut to ``limit`` characters (for messages)."""
    text = repr(v)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_TYPE_WORDS = {"int": "a whole number", "number": "a number", "str": "a string", "bool": "true or false",
               "dict": "a JSON object", "list": "a list", "any": "any value"}


@dataclass(frozen=True)
class Field:
    """One header field: its type, whether it must be there, and its range.

    ``type``: "int" (whole number, not bool), "number" (int or float, not
    bool; finite unless ``finite=False``), "str", "bool", "dict", "list",
    "any". ``lo``/``hi``: inclusive bounds (numbers, or lengths of str and
    list); ``above``: exclusive lower bound of a number; ``choices``: allowed values; ``null``: None is allowed;
    ``fields``: the schema of a dict; ``items``: the Field of every list item.
    """

    type: str
    required: bool = True
    lo: float | None = None
    hi: float | None = None
    above: float | None = None
    choices: tuple | None = None
    null: bool = False
    finite: bool = True
    fields: dict | None = None
    items: "Field | None" = None

    def check(self, value, where: str):
        """``value`` if it fits, else HGNError naming ``where`` (``"<file>: header field 'a.b'"``)."""
        if value is None:
            if self.null:
                return value
            raise HGNError(f"{where} must be {_TYPE_WORDS[self.type]}, got null")
        t = self.type
        ok = {"int": isinstance(value, int) and not isinstance(value, bool),
              "number": isinstance(value, (int, float)) and not isinstance(value, bool),
              "str": isinstance(value, str), "bool": isinstance(value, bool),
              "dict": isinstance(value, dict), "list": isinstance(value, list), "any": True}[t]
        if not ok:
            raise HGNError(f"{where} must be {_TYPE_WORDS[t]}, got {show(value)}")
        if t == "number" and self.finite and not math.isfinite(value):
            raise HGNError(f"{where} must be a finite number, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise HGNError(f"{where} must be one of {', '.join(map(repr, self.choices))}, got {show(value)}")
        if t in ("int", "number", "str", "list"):
            size = value if t in ("int", "number") else len(value)
            noun = "" if t in ("int", "number") else (" characters" if t == "str" else " items")
            if self.lo is not None and size < self.lo:
                raise HGNError(f"{where} must be at least {self.lo:g}{noun}, got {show(value)}")
            if self.hi is not None and size > self.hi:
                raise HGNError(f"{where} must be at most {self.hi:g}{noun}, got {show(value)}")
            if self.above is not None and not size > self.above:
                raise HGNError(f"{where} must be greater than {self.above:g}, got {show(value)}")
        if t == "dict" and self.fields is not None:
            check_fields(value, self.fields, where)
        if t == "list" and self.items is not None:
            for i, item in enumerate(value):
                self.items.check(item, field_label(where, f"[{i}]"))
        return value


def field_label(where: str, name) -> str:
    """The label of field ``name`` (a key, or ``[i]`` for a list item) inside
    ``where``: ``"f.npz: header"`` -> ``"f.npz: header field 'dt'"``,
    ``"f.npz: header field 'system'"`` -> ``"f.npz: header field 'system.dim'"``."""
    if where.endswith("'") and " field '" in where:
        return where[:-1] + (name if name.startswith("[") else "." + name) + "'"
    return f"{where} field '{name}'"


def check_fields(doc, fields: dict[str, Field], where: str) -> dict:
    """Check the dict ``doc`` against ``fields`` (name -> Field); returns ``doc``.
    ``where`` names it in messages: ``"t.npz: header"`` gives ``"t.npz: header
    field 'dt' must be ..."``; nested fields give ``'system.dim'``. Unknown
    fields are allowed (later additions)."""
    if not isinstance(doc, dict):
        raise HGNError(f"{where} must be a JSON object, got {show(doc)}")
    for name, f in fields.items():
        label = field_label(where, name)
        if name not in doc:
            if f.required:
                raise HGNError(f"{label} is missing (file damaged or written by another program)")
            continue
        f.check(doc[name], label)
    return doc


@dataclass(frozen=True)
class Arr:
    """One array of a file: ``dtype`` "float" (real floating point; integers
    allowed with ``ints=True``), "int" (integers) or "any" (bool, numbers);
    ``shape``: one entry per axis, an int, a size name bound on first use
    (``"N"``, ``"d"``...) or None (any); ``finite``: no NaN or inf."""

    dtype: str = "float"
    shape: tuple | None = None
    finite: bool = True
    required: bool = True
    ints: bool = True


def check_array(a: np.ndarray, spec: Arr, sizes: dict, where: str) -> np.ndarray:
    """``a`` if it fits ``spec`` (binding new size names into ``sizes``), else HGNError naming ``where``."""
    a = np.asarray(a)
    k = a.dtype.kind
    if spec.dtype == "int":
        if k not in "iu":
            if not (a.size == 0 and k in "fb"):
                raise HGNError(f"{where} must hold whole numbers, got dtype {a.dtype}")
    elif spec.dtype == "float":
        if k == "c":
            raise HGNError(f"{where} holds complex numbers; it must hold real numbers")
        if k != "f" and not (spec.ints and k in "iu"):
            raise HGNError(f"{where} must hold real numbers, got dtype {a.dtype}")
    elif k not in "biuf":
        raise HGNError(f"{where} must hold numbers, got dtype {a.dtype}")
    if spec.shape is not None:
        if a.ndim != len(spec.shape):
            raise HGNError(f"{where} has shape {a.shape}, expected {_shape_text(spec.shape, sizes)}")
        for n, want in zip(a.shape, spec.shape):
            if want is None:
                continue
            if isinstance(want, str):
                want = sizes.setdefault(want, n)
            if n != want:
                raise HGNError(f"{where} has shape {a.shape}, expected {_shape_text(spec.shape, sizes)}")
    if spec.finite and k in "fc" and a.size and not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        raise HGNError(f"{where} holds a value that is not finite (NaN or inf) at index {tuple(int(i) for i in bad)}")
    return a


def _shape_text(shape: tuple, sizes: dict) -> str:
    parts = [str(sizes.get(s, s)) if isinstance(s, str) else ("any" if s is None else str(s)) for s in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def check_arrays(arrays: dict, specs: dict[str, Arr], fname: str, sizes: dict | None = None,
                 prefix: str = "") -> dict:
    """Check ``arrays[prefix + name]`` against ``specs[name]`` for every spec;
    returns ``sizes`` (the size names bound). HGNError names the file and array."""
    sizes = {} if sizes is None else sizes
    for name, spec in specs.items():
        key = prefix + name
        if key not in arrays:
            if spec.required:
                raise HGNError(f"{fname}: array {key!r} is missing (file damaged or written by another program)")
            continue
        check_array(arrays[key], spec, sizes, f"{fname}: array {key!r}")
    return sizes


def header_int(value, where: str, lo: int | None = None) -> int:
    """``value`` as an int when it is a whole number (``Field("int", lo=lo)``), else HGNError."""
    return Field("int", lo=lo).check(value, where)


#: the header of a system inside a file (a system file's ``system``, an entry of
#: ``systems``, a model's ``train_system``, the xyz record's ``system``)
SYSTEM_FIELDS = {
    "dim": Field("int", choices=(2, 3)),
    "n": Field("int", required=False, lo=1),
    "potential": Field("dict", fields={"kind": Field("str", lo=1, hi=64)}),
    "cutoff": Field("number", required=False, null=True, lo=0),
    "name": Field("str", required=False),
    "meta": Field("dict", required=False, null=True),
    "port": Field("dict", required=False, null=True, fields=None),  # PORT_FIELDS, set below
}
#: one drive of a system's port (core.physics.port.Drive)
DRIVE_FIELDS = {
    "nodes": Field("list", lo=1, items=Field("int", lo=0)),
    "amplitude": Field("number", lo=0),
    "frequency": Field("number", above=0),
    "phase": Field("number", required=False),
    "direction": Field("list", lo=2, hi=3, items=Field("number")),
}
#: a system's damping and forcing (core.physics.port.Port): damping is a number >= 0 or a list of them, one per
#: particle (checked by Port itself: a list can be long)
PORT_FIELDS = {
    "damping": Field("any", required=False),
    "drives": Field("list", required=False, items=Field("dict", fields=DRIVE_FIELDS)),
    "field": Field("list", required=False, null=True, lo=2, hi=3, items=Field("number")),
}
SYSTEM_FIELDS["port"] = Field("dict", required=False, null=True, fields=PORT_FIELDS)
#: its arrays (size names: N particles, d dimensions, E edges)
SYSTEM_ARRAYS = {
    "positions": Arr("float", ("N", "d")),
    "masses": Arr("float", ("N",)),
    "edges": Arr("int", ("E", 2), required=False),
    "edge_scale": Arr("float", ("E",), required=False),
    "box": Arr("float", ("d",), required=False),
}


def check_system_part(header, arrays: dict, prefix: str, fname: str, what: str = "system") -> dict:
    """Check a system's header (:data:`SYSTEM_FIELDS`) and its ``prefix``-named
    arrays (:data:`SYSTEM_ARRAYS`, N and d from the header) before the System
    is built; returns the arrays without the prefix. HGNError names the file."""
    check_fields(header, SYSTEM_FIELDS, f"{fname}: {what}")
    sizes = {"d": header["dim"]}
    if "n" in header:
        sizes["N"] = header["n"]
    check_arrays(arrays, SYSTEM_ARRAYS, f"{fname}: {what}", sizes, prefix)
    return {k: arrays[prefix + k] for k in SYSTEM_ARRAYS if prefix + k in arrays}
