"""The system panel: generators with their parameters, the pair potential with
its curve V(r), the start state, and the Build button.

Every system comes from ``core.physics.builders.build(kind, ...)``; every potential
from ``core.physics.potentials.make_potential``. Errors that core raises (HGNError)
are shown at the field they name and sent to the status bar through
``error``; nothing here raises into Qt.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton,
                               QStackedWidget, QVBoxLayout, QWidget)

from core.errors import HGNError
from core.physics.potentials import POTENTIALS, make_potential

from ..defaults import (BUILDER_DEFAULTS, DEFAULT_KIND, DEFAULT_POTENTIAL, PARAM_LABELS, PARAM_TIPS,
                        SIMULATION, SYSTEM_KINDS)
from .forms import FieldForm, FieldSpec

POTENTIAL_LABELS = {"harmonic": "Harmonic spring", "anharmonic": "Anharmonic (FPU-β)",
                    "morse": "Morse", "lennard-jones": "Lennard-Jones"}
POTENTIAL_TIPS = {"k": "spring constant", "r0": "rest length", "beta": "quartic coefficient",
                  "D": "well depth", "a": "well width parameter", "epsilon": "well depth",
                  "sigma": "length scale (zero crossing)"}

#: the start-state fields (part of the simulation settings)
START_FIELDS = ("displacement", "momentum", "temperature", "seed")


def builder_specs(kind: str) -> list[FieldSpec]:
    specs = []
    for name, v in BUILDER_DEFAULTS[kind].items():
        label = PARAM_LABELS.get(name, name)
        tip = PARAM_TIPS.get(name, "")
        if name == "dim":
            specs.append(FieldSpec(name, label, "choice", str(v), ("2", "3"), tip))
        elif isinstance(v, bool):
            specs.append(FieldSpec(name, label, "bool", v, tip=tip))
        elif isinstance(v, int):
            specs.append(FieldSpec(name, label, "int", v, tip=tip, minimum=0 if name == "seed" else 1,
                                   maximum=10**6))
        else:
            specs.append(FieldSpec(name, label, "float", v, tip=tip))
    return specs


def potential_specs(kind: str) -> list[FieldSpec]:
    cls = POTENTIALS[kind]
    return [FieldSpec(f.name, f.name, "float", f.default, tip=POTENTIAL_TIPS.get(f.name, ""))
            for f in dataclasses.fields(cls)]


def start_specs() -> list[FieldSpec]:
    return [
        FieldSpec("displacement", "Displacement", "float", SIMULATION.displacement,
                  tip="standard deviation of the random start displacement (length units)"),
        FieldSpec("momentum", "Momentum", "float", SIMULATION.momentum,
                  tip="standard deviation of the random start momenta (ignored when a temperature is set)"),
        FieldSpec("temperature", "Temperature", "float", SIMULATION.temperature,
                  tip="k_B T of Maxwell-Boltzmann start momenta; 0 uses the momentum amplitude instead"),
        FieldSpec("seed", "Seed", "int", SIMULATION.seed, tip="random seed of the start states", minimum=0,
                  maximum=2**31 - 2),
    ]


class SystemPanel(QWidget):
    """Generate a system. Emits ``built(system, source)`` after Build."""

    built = Signal(object, dict)
    error = Signal(str)
    changed = Signal()
    #: (previous kind, new kind) when the generator changes, before the
    #: potential combo follows it (listeners may adjust dependent fields)
    kindChanged = Signal(str, str)
    #: (old kind, new kind, old potential, new potential) once a generator
    #: change is complete, potential included -- for one undo command
    kindEdited = Signal(str, str, str, str)
    #: (old potential, new potential) when the potential combo changes on its
    #: own (not as the consequence of a generator change) -- for undo
    potentialEdited = Signal(str, str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.kindCombo = QComboBox()
        self.kindCombo.setObjectName("systemKind")
        for k, label in SYSTEM_KINDS.items():
            if k != "custom":
                self.kindCombo.addItem(label, k)
        self.kindCombo.setToolTip("Which generator builds the system")
        self.builderStack = QStackedWidget()
        self.builderForms: dict[str, FieldForm] = {}
        for i in range(self.kindCombo.count()):
            k = self.kindCombo.itemData(i)
            f = FieldForm(builder_specs(k), prefix=f"{k}_")
            f.edited.connect(lambda _n: self.changed.emit())
            self.builderForms[k] = f
            self.builderStack.addWidget(f)

        self.potentialCombo = QComboBox()
        self.potentialCombo.setObjectName("potentialKind")
        for k in POTENTIALS:
            self.potentialCombo.addItem(POTENTIAL_LABELS.get(k, k), k)
        self.potentialStack = QStackedWidget()
        self.potentialForms: dict[str, FieldForm] = {}
        for k in POTENTIALS:
            f = FieldForm(potential_specs(k), prefix=f"pot_{k}_")
            f.edited.connect(self._on_potential_edit)
            self.potentialForms[k] = f
            self.potentialStack.addWidget(f)
        self.potentialPlot = pg.PlotWidget(background=None)
        self.potentialPlot.setObjectName("potentialPlot")
        self.potentialPlot.setTitle("V(r)", size="9pt")
        self.potentialPlot.setLabel("bottom", "r")
        self.potentialPlot.setLabel("left", "V")
        self.potentialPlot.showGrid(x=True, y=True, alpha=0.25)
        for ax in ("left", "bottom"):
            self.potentialPlot.getPlotItem().getAxis(ax).enableAutoSIPrefix(False)
        self.potentialPlot.setMinimumHeight(150)
        self.potentialPlot.setMaximumHeight(220)
        self.vCurve = self.potentialPlot.plot([], [], pen=pg.mkPen((120, 200, 120), width=2))
        self.cutoffLine = pg.InfiniteLine(angle=90, pen=pg.mkPen((200, 120, 120), style=pg.QtCore.Qt.DashLine))
        self.potentialPlot.addItem(self.cutoffLine)
        self.potentialPlot.addItem(pg.InfiniteLine(angle=0, pen=pg.mkPen((128, 128, 128, 120))))

        self.startForm = FieldForm(start_specs(), prefix="start_")
        self.buildButton = QPushButton("Build system")
        self.buildButton.setObjectName("buildButton")
        self.buildButton.setToolTip("Build the system with these settings (Ctrl+B)")
        self.buildButton.clicked.connect(self.build)
        self.summary = QLabel("")
        self.summary.setObjectName("systemSummary")
        self.summary.setWordWrap(True)

        gen = QGroupBox("Generator")
        gl = QVBoxLayout(gen)
        row = QFormLayout()
        row.addRow("Kind", self.kindCombo)
        gl.addLayout(row)
        gl.addWidget(self.builderStack)
        pot = QGroupBox("Pair potential")
        pl = QVBoxLayout(pot)
        row2 = QFormLayout()
        row2.addRow("Potential", self.potentialCombo)
        pl.addLayout(row2)
        pl.addWidget(self.potentialStack)
        pl.addWidget(self.potentialPlot)
        start = QGroupBox("Start state")
        sl = QVBoxLayout(start)
        sl.addWidget(self.startForm)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(gen)
        lay.addWidget(pot)
        lay.addWidget(start)
        hb = QHBoxLayout()
        hb.addWidget(self.buildButton)
        lay.addLayout(hb)
        lay.addWidget(self.summary)
        lay.addStretch(1)

        self._switching_kind = False
        self.kindCombo.currentIndexChanged.connect(self._on_kind)
        self.potentialCombo.currentIndexChanged.connect(self._on_potential_kind)
        self.set_kind(DEFAULT_KIND)
        self._on_potential_kind()

    # -- state ---------------------------------------------------------------
    @property
    def kind(self) -> str:
        return self.kindCombo.currentData()

    @property
    def potential_kind(self) -> str:
        return self.potentialCombo.currentData()

    def set_kind(self, kind: str) -> None:
        i = self.kindCombo.findData(kind)
        if i >= 0:
            self.kindCombo.setCurrentIndex(i)
            self._on_kind()

    def set_potential_kind(self, kind: str) -> None:
        i = self.potentialCombo.findData(kind)
        if i >= 0:
            self.potentialCombo.setCurrentIndex(i)

    @Slot()
    def _on_kind(self) -> None:
        k = self.kind
        prev = getattr(self, "_kind", k)
        self._kind = k
        old_pot = self.potential_kind
        if prev != k:
            self.kindChanged.emit(prev, k)
        self.builderStack.setCurrentWidget(self.builderForms[k])
        self._switching_kind = True
        try:
            self.set_potential_kind(DEFAULT_POTENTIAL.get(k, "harmonic"))
        finally:
            self._switching_kind = False
        self._update_curve()
        if prev != k:
            self.kindEdited.emit(prev, k, old_pot or "", self.potential_kind or "")
        self.changed.emit()

    @Slot()
    def _on_potential_kind(self) -> None:
        k = self.potential_kind
        prev = getattr(self, "_potential", k)
        self._potential = k
        if prev != k and not self._switching_kind:
            self.potentialEdited.emit(prev, k)
        self.potentialStack.setCurrentWidget(self.potentialForms[self.potential_kind])
        self._update_curve()
        self.changed.emit()

    @Slot(str)
    def _on_potential_edit(self, _name: str) -> None:
        self._update_curve()
        self.changed.emit()

    def potential(self):
        """The potential as edited (HGNError marks the field)."""
        form = self.potentialForms[self.potential_kind]
        params = form.values()
        try:
            return make_potential(self.potential_kind, **params)
        except HGNError as exc:
            if not form.show_message(str(exc)):
                self.error.emit(str(exc))
            raise

    def _update_curve(self) -> None:
        try:
            pot = self.potential()
        except HGNError as exc:
            self.vCurve.setData([], [])
            self.error.emit(str(exc))
            return
        r, v = potential_curve(pot)
        self.vCurve.setData(r, v)
        cutoff = None
        if self.kind == "molecular":
            try:
                cutoff = self.builderForms["molecular"].value("cutoff")
            except HGNError:
                cutoff = None
        self.cutoffLine.setVisible(cutoff is not None)
        if cutoff is not None:
            self.cutoffLine.setValue(cutoff)
        lo, hi = np.nanmin(v), np.nanmax(v)
        self.potentialPlot.setYRange(lo - 0.05 * (hi - lo + 1e-12), hi + 0.05 * (hi - lo + 1e-12))
        self.potentialPlot.setXRange(r[0], r[-1], padding=0.02)

    def curve_data(self):
        return self.vCurve.getData()

    # -- values ----------------------------------------------------------------
    def builder_params(self) -> dict:
        p = self.builderForms[self.kind].values()
        if "dim" in p:
            p["dim"] = int(p["dim"])
        return p

    def start_settings(self) -> dict:
        return self.startForm.values()

    def source(self) -> dict:
        """What Build would build (for settings and the session)."""
        return {"kind": self.kind, "params": self.builder_params(),
                "potential": self.potential_kind,
                "potential_params": self.potentialForms[self.potential_kind].values()}

    def state(self) -> dict:
        """Everything typed in, per kind and potential (for QSettings). Fields
        that do not parse are left out."""
        out = {"kind": self.kind, "potential": self.potential_kind, "builders": {}, "potentials": {},
               "start": {}}
        for k, f in self.builderForms.items():
            out["builders"][k] = _safe_values(f)
        for k, f in self.potentialForms.items():
            out["potentials"][k] = _safe_values(f)
        out["start"] = _safe_values(self.startForm)
        return out

    def restore(self, state: dict) -> None:
        try:
            for k, vals in (state.get("builders") or {}).items():
                if k in self.builderForms:
                    self.builderForms[k].set_values(vals)
            for k, vals in (state.get("potentials") or {}).items():
                if k in self.potentialForms:
                    self.potentialForms[k].set_values(vals)
            self.startForm.set_values(state.get("start") or {})
            if state.get("kind") in self.builderForms:
                self.set_kind(state["kind"])
            if state.get("potential") in self.potentialForms:
                self.set_potential_kind(state["potential"])
        except (TypeError, AttributeError):
            pass
        self._update_curve()

    def reset(self) -> None:
        for f in (*self.builderForms.values(), *self.potentialForms.values(), self.startForm):
            f.reset()
        self.set_kind(DEFAULT_KIND)

    # -- build -----------------------------------------------------------------
    @Slot()
    def build(self):
        """Build the system; returns it, or None after showing the error."""
        from core.physics.builders import build

        form = self.builderForms[self.kind]
        form.clear_errors()
        self.potentialForms[self.potential_kind].clear_errors()
        try:
            params = self.builder_params()
            pot = self.potential()
            system = build(self.kind, potential=pot, **params)
        except HGNError as exc:
            msg = str(exc)
            if not form.show_message(msg):
                self.potentialForms[self.potential_kind].show_message(msg)
            self.summary.setText("")
            self.error.emit(msg)
            return None
        self.summary.setText(describe(system))
        self.built.emit(system, self.source())
        return system


def _safe_values(form: FieldForm) -> dict:
    out = {}
    for n in form.specs:
        try:
            out[n] = form.value(n)
        except HGNError:
            form.clear_error(n)
    return out


def potential_curve(pot, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Distances and V(r) around the potential's minimum, clipped for display."""
    r0 = max(float(pot.r_min), 1e-3)
    if pot.kind == "lennard-jones":
        r = np.linspace(0.88 * getattr(pot, "sigma", r0), 3.0 * r0, n)
    else:
        r = np.linspace(max(0.3 * r0, 1e-3), 2.2 * r0 if r0 > 0 else 2.0, n)
    v = np.asarray(pot.energy(r), float)
    vmin = float(np.min(v))
    cap = vmin + max(4.0 * (float(np.max(v[r >= r0])) - vmin if np.any(r >= r0) else 1.0), 1e-9)
    v = np.where(v > cap, np.nan, v)
    return r, v


def describe(system) -> str:
    graph = f"{len(system.edges)} springs" if system.edges is not None else f"cutoff {system.cutoff:g}"
    box = " in a periodic box" if system.box is not None else ""
    return f"{system.name}: {system.n} particles in {system.dim}D, {system.potential.kind}, {graph}{box}"
