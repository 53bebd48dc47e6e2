"""Forms of typed fields that show their own errors.

:class:`FieldForm` lays out fields described by :class:`FieldSpec` (int, float,
bool, choice, list of ints, free text) with an error line under each field.
Numbers are typed into line edits (so 1e-8 and 1e6 both fit) and parsed on
read; a value that does not parse, or a core HGNError that names the field,
is shown in red at the field instead of raising.

A form bound to a section of the document (:meth:`FieldForm.bind`) holds no
state of its own: an edit becomes an undoable command
(:func:`studio.commands.set_setting`) and the form shows what the document
says (it listens to ``settingsChanged``). :meth:`FieldForm.set_value` only
*shows* a value; text typed but not yet confirmed (no Enter, focus still in
the field) reaches the document with :meth:`FieldForm.commit`, which actions
such as Train and Build call first.

:func:`specs_from_dataclass` builds the specs of a core config dataclass
from its fields and defaults (the model settings form), so core keeps the one
default of every number.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QLabel, QLineEdit, QSpinBox, QToolButton,
                               QVBoxLayout, QWidget)

from core.errors import HGNError

from ..scene.palette import ERROR, hex_of


@dataclass
class FieldSpec:
    name: str
    label: str
    kind: str                  # "int" | "float" | "bool" | "choice" | "ints" | "text" | "optfloat"
    default: Any
    choices: tuple = ()
    tip: str = ""
    minimum: int = -2**31 + 1
    maximum: int = 2**31 - 1


def _kind_of(value, name: str, choices: dict) -> str:
    if name in choices:
        return "choice"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, (tuple, list)):
        return "ints" if all(isinstance(v, int) and not isinstance(v, bool) for v in value) else "text"
    if value is None:
        return "optfloat"
    return "text"


def specs_from_dataclass(cls, defaults: dict | None = None, choices: dict | None = None,
                         hidden: tuple = (), tips: dict | None = None) -> list[FieldSpec]:
    """Field specs of a config dataclass: kinds from the default values."""
    from ..defaults import CHOICES

    choices = {**CHOICES, **(choices or {})}
    defaults = defaults if defaults is not None else dataclasses.asdict(cls())
    out = []
    for f in dataclasses.fields(cls):
        if f.name.startswith("_") or f.name in hidden or f.name not in defaults:
            continue
        v = defaults[f.name]
        kind = _kind_of(v, f.name, choices)
        label = f.name.replace("_", " ").capitalize()
        tip = (tips or {}).get(f.name) or ((f.metadata or {}).get("help", "") if hasattr(f, "metadata") else "")
        out.append(FieldSpec(f.name, label, kind, v, tuple(choices.get(f.name, ())), tip))
    return out


def same_value(a, b) -> bool:
    """Equal settings; a tuple and a list of the same items are the same
    (settings come back from JSON as lists)."""
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return list(a) == list(b)
    return a == b


def _choice_index(spec: FieldSpec, value) -> int:
    """Index of ``value`` among the choices (compared as text: "3" finds 3)."""
    for i, c in enumerate(spec.choices):
        if c == value or str(c) == str(value):
            return i
    return -1


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (tuple, list)):
        return ", ".join(str(x) for x in v)
    return "" if v is None else str(v)


class FieldForm(QWidget):
    """A form of typed fields. ``values()`` raises HGNError (and marks the
    field) when something does not parse; ``show_error`` marks a field."""

    edited = Signal(str)
    #: (name, old value, new value) after a user edit -- for undo commands
    valueEdited = Signal(str, object, object)

    def __init__(self, specs: list[FieldSpec], parent: QWidget | None = None, prefix: str = "",
                 advanced: tuple = ()):
        super().__init__(parent)
        self.specs = {s.name: s for s in specs}
        #: the document section this form shows (None: a free-standing form)
        self.section: str | None = None
        self._doc = None
        self._push = None
        self.editors: dict[str, QWidget] = {}
        self.errors: dict[str, QLabel] = {}
        self._layout = QFormLayout()
        self._layout.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setVerticalSpacing(3)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addLayout(self._layout)
        self.advancedButton = None
        adv_layout = None
        if any(s.name in advanced for s in specs):
            self.advancedButton = QToolButton()
            self.advancedButton.setObjectName(f"{prefix}advancedButton")
            self.advancedButton.setText("Advanced settings")
            self.advancedButton.setCheckable(True)
            self.advancedButton.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
            self.advancedButton.setArrowType(Qt.RightArrow)
            self.advancedButton.setAutoRaise(True)
            self.advancedBox = QWidget()
            adv_layout = QFormLayout(self.advancedBox)
            adv_layout.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
            adv_layout.setContentsMargins(0, 0, 0, 0)
            adv_layout.setVerticalSpacing(3)
            self.advancedBox.hide()
            self.advancedButton.toggled.connect(self._toggle_advanced)
            outer.addWidget(self.advancedButton)
            outer.addWidget(self.advancedBox)
        for s in specs:
            ed = self._make_editor(s)
            ed.setObjectName(f"{prefix}{s.name}")
            if s.tip:
                ed.setToolTip(s.tip)
            err = QLabel("")
            err.setObjectName(f"{prefix}{s.name}Error")
            err.setStyleSheet(f"color: {hex_of(ERROR)}; font-size: 8pt;")
            err.setWordWrap(True)
            err.hide()
            box = QWidget()
            bl = QVBoxLayout(box)
            bl.setContentsMargins(0, 0, 0, 0)
            bl.setSpacing(0)
            bl.addWidget(ed)
            bl.addWidget(err)
            lab = QLabel(s.label)
            if s.tip:
                lab.setToolTip(s.tip)
            (adv_layout if s.name in advanced and adv_layout is not None else self._layout).addRow(lab, box)
            self.editors[s.name] = ed
            self.errors[s.name] = err
        self._last = {n: self._safe(n) for n in self.specs}

    def _make_editor(self, s: FieldSpec) -> QWidget:
        if s.kind == "int":
            w = QSpinBox()
            w.setRange(max(s.minimum, -2**31 + 1), min(s.maximum, 2**31 - 1))
            w.setValue(int(s.default))
            w.setKeyboardTracking(False)
            w.valueChanged.connect(lambda _=None, n=s.name: self._on_edit(n))
        elif s.kind == "bool":
            w = QCheckBox()
            w.setChecked(bool(s.default))
            w.toggled.connect(lambda _=None, n=s.name: self._on_edit(n))
        elif s.kind == "choice":
            w = QComboBox()
            w.addItems([str(c) for c in s.choices])
            w.setCurrentIndex(max(0, _choice_index(s, s.default)))
            w.currentIndexChanged.connect(lambda _=None, n=s.name: self._on_edit(n))
        else:
            w = QLineEdit(_fmt(s.default))
            if s.kind == "optfloat":
                w.setPlaceholderText("none")
            w.editingFinished.connect(lambda n=s.name: self._on_edit(n))
        return w

    def _toggle_advanced(self, on: bool) -> None:
        self.advancedBox.setVisible(on)
        self.advancedButton.setArrowType(Qt.DownArrow if on else Qt.RightArrow)

    def _on_edit(self, name: str) -> bool:
        """A user edit of one field: into the document (bound) or out as
        ``valueEdited``; False when the text does not parse (marked)."""
        self.clear_error(name)
        try:
            new = self.value(name)
        except HGNError:
            return False
        if self._doc is not None:
            if not same_value(new, self._doc.get(self.section, name)):
                from ..commands import set_setting

                self._push(set_setting(self._doc, self.section, name, new, f"Edit {self.specs[name].label}"))
            self._last[name] = new
        else:
            old = self._last.get(name)
            if new != old:
                self._last[name] = new
                self.valueEdited.emit(name, old, new)
        self.edited.emit(name)
        return True

    # -- the document --------------------------------------------------------
    def bind(self, document, section: str, push) -> None:
        """Show ``section`` of ``document`` and write edits into it through
        ``push(command)`` (the undo stack's push)."""
        self._doc, self.section, self._push = document, section, push
        document.settingsChanged.connect(self._on_document)
        self._show_all()

    def _on_document(self, section: str, key: str) -> None:
        if section == "" or (section == self.section and key == ""):
            self._show_all()
        elif section == self.section and key in self.specs:
            self._show(key)

    def _show_all(self) -> None:
        for name in self.specs:
            self._show(name)

    def _show(self, name: str) -> None:
        v = self._doc.get(self.section, name)
        if v is not None and not same_value(self._safe(name), v):
            self.set_value(name, v)

    def commit(self) -> bool:
        """Send what is typed into every field to the document (text not yet
        confirmed with Enter included); False when a field does not parse
        (it is marked)."""
        ok = True
        for name, w in self.editors.items():
            if isinstance(w, QSpinBox):
                w.interpretText()
            ok = self._on_edit(name) and ok
        return ok

    def _safe(self, name: str):
        try:
            return self.value(name)
        except HGNError:
            return None

    # ------------------------------------------------------------------
    def value(self, name: str):
        s, w = self.specs[name], self.editors[name]
        if s.kind == "int":
            return int(w.value())
        if s.kind == "bool":
            return bool(w.isChecked())
        if s.kind == "choice":
            i = w.currentIndex()
            return s.choices[i] if 0 <= i < len(s.choices) else w.currentText()
        text = w.text().strip()
        try:
            if s.kind == "float":
                v = float(text)
                if not math.isfinite(v):
                    raise ValueError
                return v
            if s.kind == "optfloat":
                return None if text.lower() in ("", "none") else float(text)
            if s.kind == "ints":
                parts = [p for p in re.split(r"[,\s]+", text) if p]
                return tuple(int(p) for p in parts)
        except ValueError:
            what = {"float": "a number", "optfloat": "a number or empty",
                    "ints": "whole numbers separated by commas"}[s.kind]
            msg = f"{s.label}: {text!r} is not {what}"
            self.show_error(name, msg)
            raise HGNError(msg) from None
        return text

    def values(self) -> dict:
        """All values; raises HGNError for the first field that does not parse
        (every bad field is marked)."""
        out, first = {}, None
        for name in self.specs:
            try:
                out[name] = self.value(name)
            except HGNError as exc:
                first = first or exc
        if first is not None:
            raise first
        return out

    def set_value(self, name: str, v) -> None:
        if name not in self.editors:
            return
        s, w = self.specs[name], self.editors[name]
        w.blockSignals(True)
        try:
            if s.kind == "int":
                w.setValue(int(v))
            elif s.kind == "bool":
                w.setChecked(bool(v) if not isinstance(v, str) else v.lower() == "true")
            elif s.kind == "choice":
                i = _choice_index(s, v)
                if i >= 0:
                    w.setCurrentIndex(i)
            else:
                w.setText(_fmt(v))
        except (TypeError, ValueError):
            pass
        finally:
            w.blockSignals(False)
        self._last[name] = self._safe(name)
        self.clear_error(name)

    def set_values(self, d: dict) -> None:
        for k, v in d.items():
            self.set_value(k, v)

    def reset(self) -> None:
        for s in self.specs.values():
            self.set_value(s.name, s.default)
        self.clear_errors()

    # -- errors ----------------------------------------------------------
    def show_error(self, name: str, message: str) -> None:
        lab = self.errors.get(name)
        if lab is not None:
            if self.advancedButton is not None and not self.advancedButton.isChecked() \
                    and self.advancedBox.isAncestorOf(lab):
                self.advancedButton.setChecked(True)
            lab.setText(message)
            lab.show()
            self.editors[name].setStyleSheet(f"border: 1px solid {hex_of(ERROR)};")

    def clear_error(self, name: str) -> None:
        lab = self.errors.get(name)
        if lab is not None and lab.isVisible():
            lab.hide()
            self.editors[name].setStyleSheet("")

    def clear_errors(self) -> None:
        for n in self.errors:
            self.clear_error(n)

    def error_text(self, name: str) -> str:
        lab = self.errors[name]
        return lab.text() if not lab.isHidden() else ""

    def field_for_message(self, message: str) -> str | None:
        """The field an error message is about (its name or label appears in
        it as a word), preferring the earliest mention."""
        best, pos = None, None
        low = message.lower()
        for name, s in self.specs.items():
            for key in {name.lower(), s.label.lower(), name.replace("_", " ").lower()}:
                m = re.search(rf"(?<![\w]){re.escape(key)}(?![\w])", low)
                if m and (pos is None or m.start() < pos):
                    best, pos = name, m.start()
        return best

    def show_message(self, message: str) -> bool:
        """Put an error message at the field it names; True when one matched."""
        name = self.field_for_message(message)
        if name is not None:
            self.show_error(name, message)
            return True
        return False
