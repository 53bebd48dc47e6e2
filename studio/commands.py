"""Undoable edits of the document (:class:`studio.document.Document`).

Every change a user makes to the project goes through one of these
``QUndoCommand`` objects on the window's undo stack (Ctrl+Z / Ctrl+Shift+Z):
a form field (:class:`SetSettingsCommand` with one change), a combo that
swaps what the panels show -- the generator kind with the potential and the
kind-specific simulation defaults it brings (:func:`choose_kind`), the pair
potential, the fitting method -- the current system (Build, Use drawn
system, a system file opened) and the models in the table (add, remove).

A command changes the document; the document says what changed; the forms
and views that show it follow. Nothing here touches a widget.
"""
from __future__ import annotations

from PySide6.QtGui import QUndoCommand

from .defaults import (
    DEFAULT_POTENTIAL,
    KIND_SIMULATION,
    SYSTEM_KINDS,
    simulation_default,
)
from .document import Document, settings_of_system

Change = tuple[str, str, object]        # (section, key, value)


class SetSettingsCommand(QUndoCommand):
    """Set one or more settings together; undo puts every old value back."""

    def __init__(self, doc: Document, changes: list[Change], text: str = ""):
        self.doc = doc
        self.new = [(s, k, v) for s, k, v in changes]
        self.old = [(s, k, doc.get(s, k)) for s, k, _ in changes]
        if not text:
            s, k, _ = changes[0]
            text = f"Edit {k.replace('_', ' ')}" if len(changes) == 1 else "Edit settings"
        super().__init__(text)
        #: a note for the status bar when the command first runs (kind changes)
        self.note = ""

    def redo(self):
        for s, k, v in self.new:
            self.doc.set(s, k, v)
        if self.note:
            self.doc.message.emit(self.note)
            self.note = ""

    def undo(self):
        for s, k, v in reversed(self.old):
            self.doc.set(s, k, v)


def set_setting(doc: Document, section: str, key: str, value, text: str = "") -> SetSettingsCommand:
    return SetSettingsCommand(doc, [(section, key, value)], text)


def choose_kind(doc: Document, kind: str) -> SetSettingsCommand:
    """The generator ``kind`` with its default potential, and each
    kind-specific simulation setting (studio.defaults.KIND_SIMULATION) that
    the user left at the old kind's value moved to the new kind's."""
    old = doc.get("system", "kind")
    changes: list[Change] = [("system", "kind", kind),
                             ("system", "potential", DEFAULT_POTENTIAL.get(kind, "harmonic"))]
    moved = []
    for name in sorted(set(KIND_SIMULATION.get(old, {})) | set(KIND_SIMULATION.get(kind, {}))):
        current = doc.get("simulation", name)
        if current == simulation_default(old, name):
            value = simulation_default(kind, name)
            if value != current:
                changes.append(("simulation", name, value))
                moved.append(f"{name} {value:g}")
    cmd = SetSettingsCommand(doc, changes, f"Generator {SYSTEM_KINDS.get(kind, kind)}")
    if moved:
        cmd.note = f"settings for a {kind} system: " + ", ".join(moved)
    return cmd


class SetSystemCommand(QUndoCommand):
    """Make ``system`` current (Build, Use drawn system, a file). With
    ``describe=True`` the generator settings follow the system (a system
    read from a file), in the same undo step."""

    def __init__(self, doc: Document, system, source: dict, text: str = "", describe: bool = False):
        super().__init__(text or f"System {system.name}")
        self.doc = doc
        self.old = (doc.system, dict(doc.system_source or {}))
        self.new = (system, dict(source or {}))
        self.settings = SetSettingsCommand(doc, settings_of_system(system)) \
            if describe and settings_of_system(system) else None

    def redo(self):
        if self.settings is not None:
            self.settings.redo()
        self.doc.set_system(*self.new)

    def undo(self):
        if self.settings is not None:
            self.settings.undo()
        if self.old[0] is not None:
            self.doc.set_system(*self.old)


def set_system(doc: Document, undo, system, source: dict, text: str = "", describe: bool = False) -> None:
    """Make ``system`` current: undoable, except for the very first system
    (there is nothing to go back to)."""
    cmd = SetSystemCommand(doc, system, source, text, describe)
    if doc.system is None:
        cmd.redo()
    else:
        undo.push(cmd)


class AddModelCommand(QUndoCommand):
    """A fitted model joins the table (and becomes current)."""

    def __init__(self, doc: Document, record, text: str = ""):
        super().__init__(text or f"Add model {record.name}")
        self.doc, self.record = doc, record
        self.index: int | None = None

    def redo(self):
        self.index = self.doc.add_model(self.record, self.index)

    def undo(self):
        i = self.doc.models.index(self.record) if self.record in self.doc.models else -1
        if i >= 0:
            self.doc.remove_model(i)


class RemoveModelCommand(QUndoCommand):
    """A model leaves the table; undo puts it back in its row."""

    def __init__(self, doc: Document, index: int):
        self.doc, self.index = doc, int(index)
        self.record = doc.models[self.index]
        super().__init__(f"Remove model {self.record.name}")

    def redo(self):
        i = self._find()
        if i >= 0:
            self.doc.remove_model(i)

    def undo(self):
        self.doc.add_model(self.record, self.index)

    def _find(self) -> int:
        for i, m in enumerate(self.doc.models):
            if m is self.record:
                return i
        return -1
