"""The project's fitted models side by side, and zero-shot roll-outs.

A table of every model in the session (method, settings, fit time, test
derivative MSE, roll-out error) -- select a row to make it current; *Roll
out* shows its comparison roll-out again; *Zero-shot* applies it without
refitting to the same lattice scaled up ``factor`` times along every axis
(core.physics.builders.rebuild_scaled).
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (QAbstractItemView, QFormLayout, QGroupBox, QHBoxLayout, QHeaderView,
                               QPushButton, QSpinBox, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from ..defaults import ZERO_SHOT
from ..session import Session

COLUMNS = ["Model", "Method", "Encoding", "Widths", "Particles", "Fit time [s]", "Test MSE",
           "Roll-out MSE (end)", "Max |drift|"]


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


class ModelsPanel(QWidget):
    rolloutRequested = Signal(int)
    zeroShotRequested = Signal(int, int, int, int)     # model index, factor, steps, save_every
    saveRequested = Signal(int)

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("modelsTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.setSortingEnabled(False)
        self.rolloutButton = QPushButton("Roll out")
        self.rolloutButton.setObjectName("rolloutButton")
        self.rolloutButton.setToolTip("Show the comparison roll-out of the selected model")
        self.removeButton = QPushButton("Remove")
        self.removeButton.setObjectName("removeModelButton")
        self.saveButton = QPushButton("Save…")
        self.saveButton.setObjectName("saveModelButton")
        self.factorSpin = QSpinBox()
        self.factorSpin.setObjectName("zeroShotFactor")
        self.factorSpin.setRange(1, 100)
        self.factorSpin.setValue(ZERO_SHOT.factor)
        self.factorSpin.setToolTip("Scale every lattice axis by this factor (particles grow by factor^dim)")
        self.stepsSpin = QSpinBox()
        self.stepsSpin.setObjectName("zeroShotSteps")
        self.stepsSpin.setRange(1, 10**7)
        self.stepsSpin.setValue(ZERO_SHOT.steps)
        self.saveEverySpin = QSpinBox()
        self.saveEverySpin.setObjectName("zeroShotSaveEvery")
        self.saveEverySpin.setRange(1, 10**6)
        self.saveEverySpin.setValue(ZERO_SHOT.save_every)
        self.zeroShotButton = QPushButton("Zero-shot roll-out")
        self.zeroShotButton.setObjectName("zeroShotButton")
        self.zeroShotButton.setToolTip("Apply the selected model, unchanged, to the larger system")

        buttons = QHBoxLayout()
        buttons.addWidget(self.rolloutButton)
        buttons.addWidget(self.saveButton)
        buttons.addWidget(self.removeButton)
        zs = QGroupBox("Zero-shot: same lattice, larger")
        fl = QFormLayout(zs)
        fl.addRow("Scale factor", self.factorSpin)
        fl.addRow("Steps", self.stepsSpin)
        fl.addRow("Save interval", self.saveEverySpin)
        fl.addRow(self.zeroShotButton)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.table, 1)
        lay.addLayout(buttons)
        lay.addWidget(zs)

        session.modelsChanged.connect(self.refresh)
        session.currentModelChanged.connect(self._select)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.rolloutButton.clicked.connect(lambda: self.rolloutRequested.emit(self.session.current))
        self.removeButton.clicked.connect(lambda: self.session.remove_model(self.session.current))
        self.saveButton.clicked.connect(lambda: self.saveRequested.emit(self.session.current))
        self.zeroShotButton.clicked.connect(
            lambda: self.zeroShotRequested.emit(self.session.current, self.factorSpin.value(),
                                                self.stepsSpin.value(), self.saveEverySpin.value()))
        self.refresh()

    @Slot()
    def refresh(self) -> None:
        models = self.session.models
        self.table.blockSignals(True)
        self.table.setRowCount(len(models))
        for r, entry in enumerate(models):
            row = entry.row()
            for c, name in enumerate(COLUMNS):
                item = QTableWidgetItem(_fmt(row.get(name)))
                if isinstance(row.get(name), (int, float)):
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                self.table.setItem(r, c, item)
        self.table.blockSignals(False)
        self._select(self.session.current)
        has = bool(models)
        for b in (self.rolloutButton, self.removeButton, self.saveButton, self.zeroShotButton):
            b.setEnabled(has)

    @Slot(int)
    def _select(self, index: int) -> None:
        if 0 <= index < self.table.rowCount() and self.table.currentRow() != index:
            self.table.blockSignals(True)
            self.table.selectRow(index)
            self.table.blockSignals(False)

    @Slot()
    def _on_selection(self) -> None:
        rows = {i.row() for i in self.table.selectedIndexes()}
        if rows:
            self.session.set_current(min(rows))

    def cell(self, row: int, column: str) -> str:
        return self.table.item(row, COLUMNS.index(column)).text()
