"""The project's fitted models side by side, and zero-shot roll-outs.

A table of the document's models (core ModelRecord objects, shown as they
are): name, fit time, test derivative MSE and energy drift of its roll-out at
a glance; method, settings, particles and roll-out error in the row's
tooltip and in the detail line below. Selecting a row makes the model
current (the window then shows its roll-out); *Roll out* computes it again;
*Remove* is undoable; *Zero-shot* applies the model without refitting to the
same lattice scaled up ``factor`` times along every axis
(core.physics.builders.rebuild_scaled) -- disabled, with the reason in its
tooltip, for systems that cannot be scaled (drawn ones).
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (QAbstractItemView, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QMenu, QPushButton,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from ..commands import RemoveModelCommand
from ..defaults import ZERO_SHOT
from ..jobs import adapt_reason, basis_reason, zero_shot_reason
from ..pipeline import describe_lineage
from .forms import FieldForm, FieldSpec

#: (key of :func:`model_row`, column header): what the table shows
COLUMNS = [("Model", "Model"), ("Fit time [s]", "Fit [s]"), ("Test MSE", "Test MSE"),
           ("Max |drift|", "Drift"), ("Damping", "γ")]
#: the rest of a row: tooltip and detail line
DETAILS = ["Method", "Encoding", "Widths", "Particles", "Roll-out MSE (end)", "Identified", "Lineage"]
TIPS = {"Fit [s]": "wall time of the fit (training data generation not included)",
        "Test MSE": "derivative MSE on held-out snapshots (the paper's test error)",
        "Drift": "largest relative energy drift |H(t) - H(0)| / |H(0)| of the model's roll-out",
        "γ": "the damping (friction coefficient) the fit identified, for models of damped or driven systems "
             "(identified in the same solve as the Hamiltonian; docs/port_hamiltonian.md); – for others"}


def identified(rec) -> dict | None:
    """The identified damping and forcing of a model (``info["port"]`` of core.learning.rfhgn.port), or None."""
    for info in (getattr(rec.model, "info", None), rec.info):
        if isinstance(info, dict) and isinstance(info.get("port"), dict):
            return info["port"]
    return None


def identified_damping(ident: dict | None):
    """The identified uniform damping (a float), the range of per-particle values (text), or None."""
    g = None if ident is None else ident.get("damping")
    if g is None:
        return None
    if isinstance(g, list):
        return f"{min(g):.4g}..{max(g):.4g}" if g else None
    return float(g)


def _details(row: dict) -> list[str]:
    """The detail keys worth showing for a row (no "Identified" for models that identified nothing)."""
    return [k for k in DETAILS if not (k in ("Identified", "Lineage") and row.get(k) == "–")]


def _gamma_text(g):
    return f"{g:.5g}" if isinstance(g, float) else g


def describe_identified(ident: dict | None) -> str:
    """The identified coefficients in words: damping, each drive's amplitude (frequency, nodes), field."""
    if ident is None:
        return "–"
    parts = []
    g = identified_damping(ident)
    if g is not None:
        parts.append(f"damping γ = {g:.6g}" if isinstance(g, float) else f"damping γ = {g} (per particle)")
    f = ident.get("forcing")
    if f:
        for wi, w in enumerate(f.get("frequencies", [])):
            amps = f["amplitude"][wi]
            nodes = f["nodes"]
            lo, hi = (min(amps), max(amps)) if amps else (0.0, 0.0)
            amp = f"{np.mean(amps):.4g}" if hi - lo <= 1e-3 * max(abs(hi), 1e-300) else f"{lo:.4g}..{hi:.4g}"
            parts.append(f"drive amplitude {amp} at ω = {w:g} on {len(nodes)} particle{'s' if len(nodes) > 1 else ''}")
    if ident.get("field") is not None:
        parts.append("field " + ", ".join(f"{x:.4g}" for x in ident["field"]))
    return "; ".join(parts) if parts else "–"


def model_row(rec) -> dict:
    """The values a model shows in the table (a core ModelRecord)."""
    s = rec.settings or {}
    widths = [s[k] for k in ("node_width", "edge_width", "message_width") if k in s]
    width = "/".join(str(x) for x in widths) if widths else (s.get("width") or s.get("hidden") or "")
    return {
        "Model": rec.name,
        "Method": rec.method + (f" ({s['sampler']})" if "sampler" in s else "")
                  + (f" ({s['optimizer']})" if "optimizer" in s else ""),
        "Encoding": s.get("encoding", ""),
        "Widths": str(width),
        "Particles": rec.system.n,
        "Fit time [s]": rec.fit_time,
        "Test MSE": rec.test_mse,
        "Roll-out MSE (end)": rec.final_position_mse,
        "Max |drift|": rec.max_abs_drift,
        "Damping": _gamma_text(identified_damping(identified(rec))),
        "Identified": describe_identified(identified(rec)),
        "Lineage": describe_lineage((rec.info or {}).get("lineage")) or "–",
    }


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def zero_shot_specs() -> list[FieldSpec]:
    z = ZERO_SHOT
    return [FieldSpec("factor", "Scale factor", "int", z.factor, minimum=1, maximum=100,
                      tip="Scale every lattice axis by this factor (particles grow by factor^dim)"),
            FieldSpec("steps", "Steps", "int", z.steps, minimum=1, maximum=10**7,
                      tip="steps of the zero-shot roll-out"),
            FieldSpec("save_every", "Save interval", "int", z.save_every, minimum=1, maximum=10**6,
                      tip="show every this many steps")]


class ModelsPanel(QWidget):
    rolloutRequested = Signal(int)
    zeroShotRequested = Signal(int, int, int, int)     # model index, factor, steps, save_every
    saveRequested = Signal(int)
    #: "Adapt to this system…" on a model (its index)
    adaptRequested = Signal(int)
    #: "Save basis…" on a model (its index)
    saveBasisRequested = Signal(int)
    #: "Adapt vs scratch" for a model (its index)
    compareRequested = Signal(int)

    def __init__(self, document, undo, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self.undo = undo
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("modelsTable")
        self.table.setHorizontalHeaderLabels([h for _, h in COLUMNS])
        for c, (_, h) in enumerate(COLUMNS):
            if h in TIPS:
                self.table.horizontalHeaderItem(c).setToolTip(TIPS[h])
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        self.table.setSortingEnabled(False)
        self.detail = QLabel("")
        self.detail.setObjectName("modelDetail")
        self.detail.setWordWrap(True)
        self.rolloutButton = QPushButton("Roll out")
        self.rolloutButton.setObjectName("rolloutButton")
        self.rolloutButton.setToolTip("Compute the comparison roll-out of the selected model again")
        self.removeButton = QPushButton("Remove")
        self.removeButton.setObjectName("removeModelButton")
        self.removeButton.setToolTip("Remove the selected model from the project (Ctrl+Z brings it back)")
        self.saveButton = QPushButton("Save…")
        self.saveButton.setObjectName("saveModelButton")
        self.saveButton.setToolTip("Save the selected model to its own file")
        self.adaptButton = QPushButton("Adapt to this system…")
        self.adaptButton.setObjectName("adaptButton")
        self.saveBasisButton = QPushButton("Save basis…")
        self.saveBasisButton.setObjectName("saveBasisButton")
        self.zeroShotForm = FieldForm(zero_shot_specs(), prefix="zeroShot_")
        self.zeroShotForm.bind(document, "zero_shot", undo.push)
        self.factorSpin = self.zeroShotForm.editors["factor"]
        self.stepsSpin = self.zeroShotForm.editors["steps"]
        self.saveEverySpin = self.zeroShotForm.editors["save_every"]
        for name, spin in (("zeroShotFactor", self.factorSpin), ("zeroShotSteps", self.stepsSpin),
                           ("zeroShotSaveEvery", self.saveEverySpin)):
            spin.setObjectName(name)
        self.zeroShotButton = QPushButton("Zero-shot roll-out")
        self.zeroShotButton.setObjectName("zeroShotButton")

        buttons = QHBoxLayout()
        buttons.addWidget(self.rolloutButton)
        buttons.addWidget(self.saveButton)
        buttons.addWidget(self.removeButton)
        adapt_row = QHBoxLayout()
        adapt_row.addWidget(self.adaptButton, 1)
        adapt_row.addWidget(self.saveBasisButton)
        zs = QGroupBox("Zero-shot: same lattice, larger")
        zl = QVBoxLayout(zs)
        zl.addWidget(self.zeroShotForm)
        zl.addWidget(self.zeroShotButton)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.detail)
        lay.addLayout(buttons)
        lay.addLayout(adapt_row)
        lay.addWidget(zs)

        document.modelsChanged.connect(self.refresh)
        document.currentModelChanged.connect(self._on_current)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.rolloutButton.clicked.connect(lambda: self.rolloutRequested.emit(self.document.current))
        self.removeButton.clicked.connect(self.remove_current)
        self.saveButton.clicked.connect(lambda: self.saveRequested.emit(self.document.current))
        self.zeroShotButton.clicked.connect(self._zero_shot)
        self.adaptButton.clicked.connect(lambda: self.adaptRequested.emit(self.document.current))
        self.saveBasisButton.clicked.connect(lambda: self.saveBasisRequested.emit(self.document.current))
        self.table.setContextMenuPolicy(Qt.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        document.systemChanged.connect(lambda *_a: self._update_adapt(self.document.current_model()))
        self.refresh()

    @Slot()
    def refresh(self) -> None:
        models = self.document.models
        self.table.blockSignals(True)
        self.table.setRowCount(len(models))
        for r, rec in enumerate(models):
            row = model_row(rec)
            tip = "\n".join(f"{k}: {_fmt(row[k])}" for k in _details(row))
            for c, (key, _) in enumerate(COLUMNS):
                item = QTableWidgetItem(_fmt(row.get(key)))
                if isinstance(row.get(key), (int, float)):
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                item.setToolTip(tip)
                self.table.setItem(r, c, item)
        self.table.blockSignals(False)
        has = bool(models)
        for b in (self.rolloutButton, self.removeButton, self.saveButton):
            b.setEnabled(has)
        self._on_current(self.document.current)

    @Slot(int)
    def _on_current(self, index: int) -> None:
        if 0 <= index < self.table.rowCount() and self.table.currentRow() != index:
            self.table.blockSignals(True)
            self.table.selectRow(index)
            self.table.blockSignals(False)
        rec = self.document.current_model()
        if rec is None:
            self.detail.setText("Train a model (Train tab, Ctrl+T): it appears here." if not self.document.models
                                else "")
        else:
            row = model_row(rec)
            self.detail.setText(f"{rec.name}: " + ", ".join(f"{k.lower()} {_fmt(row[k])}" for k in _details(row))
                                + (f". {rec.note}" if rec.note else ""))
        self._update_zero_shot(rec)
        self._update_adapt(rec)

    def _update_adapt(self, rec) -> None:
        reason = adapt_reason(rec, self.document.system)
        self.adaptButton.setEnabled(not reason)
        self.adaptButton.setToolTip(
            "Keep the selected model's sampled hidden layers (or a basis file's) and solve only the output layer "
            "on k snapshots of the current system: a new model in milliseconds" if not reason
            else f"Adapt is not available: {reason}")
        reason = basis_reason(rec)
        self.saveBasisButton.setEnabled(not reason)
        self.saveBasisButton.setToolTip("Save the selected model's sampled hidden layers (no output layer) as a "
                                        "basis file to adapt to other systems" if not reason
                                        else f"Save basis is not available: {reason}")

    def context_menu(self, row: int) -> QMenu:
        """The menu of a model's row (made current): roll out, adapt, adapt vs scratch, save, save basis,
        remove; entries that do not apply are disabled, with the reason in their tooltip."""
        if 0 <= row < len(self.document.models):
            self.document.set_current(row)
        rec = self.document.current_model()
        menu = QMenu(self)
        menu.setObjectName("modelMenu")
        menu.setToolTipsVisible(True)
        i = self.document.current

        def add(text, name, slot, reason=""):
            act = QAction(text, menu)
            act.setObjectName(name)
            act.setEnabled(rec is not None and not reason)
            if reason:
                act.setToolTip(reason)
            act.triggered.connect(slot)
            menu.addAction(act)
            return act

        add("Roll out", "rolloutAction", lambda: self.rolloutRequested.emit(i))
        menu.addSeparator()
        adapt = adapt_reason(rec, self.document.system)
        add("Adapt to this system…", "adaptAction", lambda: self.adaptRequested.emit(i), adapt)
        add("Adapt vs scratch", "compareAction", lambda: self.compareRequested.emit(i), adapt)
        add("Save basis…", "saveBasisAction", lambda: self.saveBasisRequested.emit(i), basis_reason(rec))
        menu.addSeparator()
        add("Save…", "saveModelAction", lambda: self.saveRequested.emit(i))
        add("Remove", "removeModelAction", self.remove_current)
        return menu

    @Slot(object)
    def _context_menu(self, pos) -> None:
        row = self.table.rowAt(pos.y())
        if row < 0:
            return
        menu = self.context_menu(row)
        menu.exec(self.table.viewport().mapToGlobal(pos))
        menu.deleteLater()

    def _update_zero_shot(self, rec) -> None:
        if rec is None:
            reason = "train a model first"
        elif rec.model is None:
            reason = f"the model of {rec.name} is not available ({rec.note or 'not stored'})"
        else:
            reason = zero_shot_reason(rec.system)
        self.zeroShotButton.setEnabled(not reason)
        self.zeroShotButton.setToolTip("Apply the selected model, unchanged, to the larger system" if not reason
                                       else f"Zero-shot is not available: {reason}")

    @Slot()
    def _on_selection(self) -> None:
        rows = {i.row() for i in self.table.selectedIndexes()}
        if rows:
            self.document.set_current(min(rows))

    def remove_current(self) -> None:
        i = self.document.current
        if 0 <= i < len(self.document.models):
            self.undo.push(RemoveModelCommand(self.document, i))

    def _zero_shot(self) -> None:
        if not self.zeroShotForm.commit():
            return
        z = self.document.values("zero_shot")
        self.zeroShotRequested.emit(self.document.current, int(z["factor"]), int(z["steps"]),
                                    int(z["save_every"]))

    def cell(self, row: int, column: str) -> str:
        """The text of a model's value: a table cell for the columns shown
        (by key or header), the detail text otherwise."""
        for c, (key, header) in enumerate(COLUMNS):
            if column in (key, header):
                return self.table.item(row, c).text()
        return _fmt(model_row(self.document.models[row])[column])
