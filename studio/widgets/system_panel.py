"""The system panel: generators with their parameters, the pair potential with
its curve V(r), the start state, and the Build button -- a view of the
document's generator settings (sections ``system``, ``generator/<kind>``,
``potential/<kind>`` and the start state in ``simulation``).

Every system comes from ``core.physics.builders.build(kind, ...)``; every potential
from ``core.physics.potentials.make_potential``. Errors that core raises (HGNError)
are shown at the field they name and sent to the status bar through
``error``; nothing here raises into Qt.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QPushButton, QSizePolicy, QSpinBox, QStackedWidget, QVBoxLayout, QWidget)

from core.errors import HGNError
from core.physics.potentials import POTENTIALS

from ..commands import SetSettingsCommand, choose_kind, set_setting, set_system
from ..defaults import BUILDER_DEFAULTS, PARAM_LABELS, PARAM_TIPS, SIMULATION, SYSTEM_KINDS
from ..document import (DAMPING_WHERE, PORT_DEFAULTS, builder_params, port_from_settings, potential_from_settings,
                        system_source, with_port)
from ..scene import palette
from ..scene.palette import rgb255
from .forms import FieldForm, FieldSpec
from .plots import cache_grid, grid_plot
from .spline_editor import SplineEditor, fit_to, spline_changes

POTENTIAL_LABELS = {"harmonic": "Harmonic spring", "anharmonic": "Anharmonic (FPU-β)",
                    "morse": "Morse", "lennard-jones": "Lennard-Jones", "quartic": "Quartic spring",
                    "spline": "Spline (drawn)"}
#: the drawn potential's kind (core.physics.splines.SplinePotential; not in POTENTIALS)
SPLINE = "spline"
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
            specs.append(FieldSpec(name, label, "choice", int(v), (2, 3), tip))
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


def port_specs() -> list[FieldSpec]:
    """Damping and driving (section ``port``; core.physics.port, docs/port_hamiltonian.md)."""
    d = PORT_DEFAULTS
    return [
        FieldSpec("damping", "Damping", "float", d["damping"],
                  tip="friction coefficient gamma >= 0 (force per velocity): the force -gamma v; 0: undamped"),
        FieldSpec("damping_where", "Damped", "choice", d["damping_where"], DAMPING_WHERE,
                  tip="every particle, or only the boundary layer (the particles on the system's outer "
                      "edges or faces)"),
        FieldSpec("drive_nodes", "Driven particles", "ints", d["drive_nodes"],
                  tip="indices of the particles the periodic force acts on, e.g. 0, 10, 20 "
                      "(Ctrl+click particles in the view to add or remove them); empty: no drive"),
        FieldSpec("drive_amplitude", "Drive amplitude", "float", d["drive_amplitude"],
                  tip="A >= 0: the force A cos(w t + phase) along the direction on each driven particle"),
        FieldSpec("drive_frequency", "Drive frequency", "float", d["drive_frequency"],
                  tip="angular frequency w > 0 (radians per time unit)"),
        FieldSpec("drive_phase", "Drive phase", "float", d["drive_phase"], tip="phase (radians)"),
        FieldSpec("drive_direction", "Drive direction", "text", d["drive_direction"],
                  tip="direction of the force, e.g. 1, 0 (only its direction counts)"),
        FieldSpec("field", "Constant field", "text", d["field"],
                  tip="a constant acceleration g (like gravity), e.g. 0, -0.01; every particle feels m g; "
                      "empty: none"),
    ]


class SystemPanel(QWidget):
    """The generator settings of the document and the Build button. Every
    combo and field writes into the document through an undoable command
    and shows what the document holds; Build makes the system the current
    one (undoable too). The summary line describes what the views show."""

    error = Signal(str)
    #: a note for the status bar
    message = Signal(str)

    def __init__(self, document, undo, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self.undo = undo
        push = undo.push
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
            f.bind(document, f"generator/{k}", push)
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
            f.bind(document, f"potential/{k}", push)
            self.potentialForms[k] = f
            self.potentialStack.addWidget(f)
        self.potentialCombo.addItem(POTENTIAL_LABELS[SPLINE], SPLINE)
        self.splineControls = self._spline_controls()
        self.potentialStack.addWidget(self.splineControls)
        self.potentialPlot = grid_plot(background=None)
        self.potentialPlot.setObjectName("potentialPlot")
        self.potentialPlot.setTitle("V(r)", size="9pt")
        self.potentialPlot.setLabel("bottom", "r")
        self.potentialPlot.setLabel("left", "V")
        self.potentialPlot.showGrid(x=True, y=True, alpha=0.25)
        # cached axes and grid: the panel's layout moving the plot (a longer
        # summary line) repaints it by copying them (see plots.cache_grid)
        cache_grid(self.potentialPlot)
        for ax in ("left", "bottom"):
            self.potentialPlot.getPlotItem().getAxis(ax).enableAutoSIPrefix(False)
        self.potentialPlot.setMinimumHeight(150)
        self.potentialPlot.setMaximumHeight(220)
        self.vCurve = self.potentialPlot.plot([], [], pen=pg.mkPen(rgb255(palette.POTENTIAL_CURVE), width=2))
        self.cutoffLine = pg.InfiniteLine(angle=90, pen=pg.mkPen(rgb255(palette.CUTOFF),
                                                                       style=pg.QtCore.Qt.DashLine))
        self.potentialPlot.addItem(self.cutoffLine)
        self.potentialPlot.addItem(pg.InfiniteLine(angle=0, pen=pg.mkPen(rgb255(palette.ZERO_ENERGY, alpha=True))))
        self.splineEditor = SplineEditor(document, undo, self.potentialPlot, self.vCurve)
        self.splineEditor.error.connect(self.error)

        self.portForm = FieldForm(port_specs(), prefix="port_")
        self.portForm.bind(document, "port", push)
        self.startForm = FieldForm(start_specs(), prefix="start_")
        self.startForm.bind(document, "simulation", push)
        self.buildButton = QPushButton("Build system")
        self.buildButton.setObjectName("buildButton")
        self.buildButton.setToolTip("Build the system with these settings (Ctrl+B)")
        self.buildButton.clicked.connect(self.build)
        self.summary = QLabel("")
        self.summary.setObjectName("systemSummary")
        self.summary.setWordWrap(True)
        # three lines reserved (the longest summary, a zero-shot roll-out's,
        # at the panel's usual width): a new summary does not re-lay out the
        # panel and resize the V(r) plot below it
        self.summary.setAlignment(Qt.AlignLeft | Qt.AlignTop)
        self.summary.setMinimumHeight(3 * self.summary.fontMetrics().lineSpacing())

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
        portBox = QGroupBox("Damping and driving")
        portBox.setObjectName("portBox")
        QVBoxLayout(portBox).addWidget(self.portForm)
        start = QGroupBox("Start state")
        sl = QVBoxLayout(start)
        sl.addWidget(self.startForm)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.summary)
        lay.addWidget(gen)
        lay.addWidget(pot)
        lay.addWidget(portBox)
        lay.addWidget(start)
        hb = QHBoxLayout()
        hb.addWidget(self.buildButton)
        lay.addLayout(hb)
        lay.addStretch(1)

        self._showing = False
        self.kindCombo.currentIndexChanged.connect(self._on_kind_combo)
        self.potentialCombo.currentIndexChanged.connect(self._on_potential_combo)
        document.settingsChanged.connect(self._on_settings)
        document.systemChanged.connect(self.describe_displayed)
        document.rolloutStarted.connect(self.describe_displayed)
        self._show_choices()
        self._update_curve()

    # -- what the document holds ------------------------------------------------
    @property
    def kind(self) -> str:
        return self.document.get("system", "kind")

    @property
    def potential_kind(self) -> str:
        return self.document.get("system", "potential")

    def set_kind(self, kind: str) -> None:
        """Choose a generator, as the user does with the combo (undoable)."""
        i = self.kindCombo.findData(kind)
        if i >= 0:
            self.kindCombo.setCurrentIndex(i)

    def set_potential_kind(self, kind: str) -> None:
        """Choose a pair potential, as the user does with the combo (undoable)."""
        i = self.potentialCombo.findData(kind)
        if i >= 0:
            self.potentialCombo.setCurrentIndex(i)

    @Slot()
    def _on_kind_combo(self) -> None:
        k = self.kindCombo.currentData()
        if not self._showing and k and k != self.kind:
            self.undo.push(choose_kind(self.document, k))

    def _spline_controls(self) -> QWidget:
        w = QWidget()
        w.setObjectName("splineControls")
        lay = QFormLayout(w)
        lay.setContentsMargins(0, 0, 0, 0)
        hint = QLabel("Drag a point to change it; double-click the plot to add one; right-click a point "
                      "(or click it and press Delete) to remove it. Ctrl+Z undoes; Build uses it.")
        hint.setWordWrap(True)
        lay.addRow(hint)
        self.grfSeed = QSpinBox()
        self.grfSeed.setObjectName("grfSeed")
        self.grfSeed.setRange(0, 2**31 - 2)
        self.grfSeed.setToolTip("random seed of the Gaussian random field")
        self.grfLength = QDoubleSpinBox()
        self.grfLength.setObjectName("grfLength")
        self.grfLength.setRange(0.02, 5.0)
        self.grfLength.setSingleStep(0.05)
        self.grfLength.setValue(0.3)
        self.grfLength.setToolTip("length scale of the Gaussian random field (distance units)")
        self.grfAmplitude = QDoubleSpinBox()
        self.grfAmplitude.setObjectName("grfAmplitude")
        self.grfAmplitude.setRange(0.01, 1000.0)
        self.grfAmplitude.setDecimals(3)
        self.grfAmplitude.setSingleStep(0.1)
        self.grfAmplitude.setValue(1.0)
        self.grfAmplitude.setToolTip("height of the random potential: its values lie between 0 and this "
                                     "(energy units); the end points sit on that rim")
        self.randomButton = QPushButton("Random potential")
        self.randomButton.setObjectName("randomPotential")
        self.randomButton.setToolTip("Draw a smooth bounded random potential (Gaussian random field)")
        self.randomButton.clicked.connect(self.random_potential)
        self.slopeLeft, self.slopeRight = QDoubleSpinBox(), QDoubleSpinBox()
        for box, side, tip in ((self.slopeLeft, "Left", "V'(r) at the first point; the repulsive wall below it "
                                "continues this slope"),
                               (self.slopeRight, "Right", "V'(r) at the last point; beyond it V levels off "
                                "(0: exactly constant)")):
            box.setObjectName(f"splineSlope{side}")
            box.setPrefix(f"{side.lower()} ")
            box.setRange(-1e3, 1e3)
            box.setDecimals(4)
            box.setSingleStep(0.1)
            box.setKeyboardTracking(False)          # one edit per Enter / arrow step, not per keystroke
            box.setToolTip(tip)
            box.valueChanged.connect(lambda v, side=side: self._on_slope(side, v))
        slopes = QHBoxLayout()
        slopes.addWidget(self.slopeLeft)
        slopes.addWidget(self.slopeRight)
        lay.addRow("End slopes", slopes)
        lay.addRow("Seed", self.grfSeed)
        lay.addRow("Length scale", self.grfLength)
        lay.addRow("Amplitude", self.grfAmplitude)
        lay.addRow(self.randomButton)
        return w

    def _on_slope(self, side: str, value: float) -> None:
        """One end slope edited (the other stays what the document holds: the
        box shows it rounded)."""
        ed = self.splineEditor
        if self._showing or not ed.active() or not ed.has_points():
            return
        try:
            left, right = ed.potential().slopes
        except HGNError:
            return
        left, right = (value, right) if side == "Left" else (left, value)
        if not ed.set_slopes(left, right):
            self._show_slopes()

    def _show_slopes(self) -> None:
        """The spin boxes show the document's end slopes (no command)."""
        try:
            left, right = self.splineEditor.potential().slopes
        except HGNError:
            return
        self._showing = True
        try:
            for box, v in ((self.slopeLeft, left), (self.slopeRight, right)):
                if box.value() != v:
                    box.setValue(v)
        finally:
            self._showing = False

    @Slot()
    def random_potential(self) -> bool:
        """A random spline from the seed, length scale and amplitude fields (one undoable command)."""
        return self.splineEditor.randomize(self.grfSeed.value(), self.grfLength.value(), self.grfAmplitude.value())

    @Slot()
    def _on_potential_combo(self) -> None:
        k = self.potentialCombo.currentData()
        if not self._showing and k == SPLINE and k != self.potential_kind and not self.splineEditor.has_points():
            # the first drawn spline starts from the potential shown now
            changes = []
            try:
                r, v = self.curve_data()
                changes += spline_changes(fit_to(self.potential(), r, v))
            except (HGNError, IndexError, TypeError):
                pass
            changes.append(("system", "potential", SPLINE))     # last: the points are there when it shows
            self.undo.push(SetSettingsCommand(self.document, changes, "Potential Spline (drawn)"))
        elif not self._showing and k and k != self.potential_kind:
            self.undo.push(set_setting(self.document, "system", "potential", k,
                                       f"Potential {self.potentialCombo.currentText()}"))

    @Slot(str, str)
    def _on_settings(self, section: str, key: str) -> None:
        if section in ("", "system"):
            self._show_choices()
        if section in ("", "system", "generator/molecular") or section.startswith("potential/"):
            self._update_curve()

    def _show_choices(self) -> None:
        self._showing = True
        try:
            for combo, value in ((self.kindCombo, self.kind), (self.potentialCombo, self.potential_kind)):
                i = combo.findData(value)
                if i >= 0 and combo.currentIndex() != i:
                    combo.setCurrentIndex(i)
        finally:
            self._showing = False
        if self.kind in self.builderForms:
            self.builderStack.setCurrentWidget(self.builderForms[self.kind])
        if self.potential_kind in self.potentialForms:
            self.potentialStack.setCurrentWidget(self.potentialForms[self.potential_kind])
        elif self.potential_kind == SPLINE:
            self.potentialStack.setCurrentWidget(self.splineControls)
        for stack in (self.builderStack, self.potentialStack):
            fit_stack(stack)

    def potential(self):
        """The potential the settings describe (HGNError marks the field)."""
        try:
            return potential_from_settings(self.document)
        except HGNError as exc:
            form = self.potentialForms.get(self.potential_kind)
            if form is None or not form.show_message(str(exc)):
                self.error.emit(str(exc))
            raise

    def _update_curve(self) -> None:
        if self.potential_kind == SPLINE and self._spline_in_between():
            return          # a command is halfway through setting the points (r set, V not yet)
        try:
            pot = self.potential()
        except HGNError as exc:
            self.vCurve.setData([], [])
            self.splineEditor.show()
            self.error.emit(str(exc))
            return
        r, v = potential_curve(pot)
        self.splineEditor.show()
        if pot.kind == SPLINE:
            self._show_slopes()
        self.vCurve.setData(r, v)
        cutoff = self.document.get("generator/molecular", "cutoff") if self.kind == "molecular" else None
        self.cutoffLine.setVisible(isinstance(cutoff, (int, float)))
        if isinstance(cutoff, (int, float)):
            self.cutoffLine.setValue(cutoff)
        lo, hi = np.nanmin(v), np.nanmax(v)
        if pot.kind == SPLINE:
            lo, hi = min(lo, min(pot.V)), max(hi, max(pot.V))
        self.potentialPlot.setYRange(lo - 0.05 * (hi - lo + 1e-12), hi + 0.05 * (hi - lo + 1e-12))
        self.potentialPlot.setXRange(r[0], r[-1], padding=0.02)

    def _spline_in_between(self) -> bool:
        r, v = self.document.get("potential/spline", "r"), self.document.get("potential/spline", "V")
        if r is None or v is None:
            return (r is None) != (v is None)
        return isinstance(r, list) and isinstance(v, list) and len(r) != len(v)

    def curve_data(self):
        return self.vCurve.getData()

    # -- values ----------------------------------------------------------------
    def builder_params(self) -> dict:
        return builder_params(self.document)

    def start_settings(self) -> dict:
        return {k: self.document.get("simulation", k) for k in START_FIELDS}

    def source(self) -> dict:
        """What Build would build (kept with the system)."""
        return system_source(self.document)

    def forms(self) -> list[FieldForm]:
        return [*self.builderForms.values(), *self.potentialForms.values(), self.portForm, self.startForm]

    def commit(self) -> bool:
        """Typed text of the shown forms into the document; False if a field
        does not parse."""
        ok = True
        for f in (self.builderForms.get(self.kind), self.potentialForms.get(self.potential_kind), self.portForm,
                  self.startForm):
            if f is not None:
                ok = f.commit() and ok
        return ok

    def show_message(self, section: str, message: str) -> bool:
        """Show an error at the field of ``section`` it names."""
        return any(f.section == section and f.show_message(message) for f in self.forms())

    def describe_displayed(self, *_args) -> None:
        """The summary says what the views show (a zero-shot roll-out's
        system is larger than the current one)."""
        doc = self.document
        r = doc.rollout
        if r is not None and r.zero_shot and doc.system is not None:
            text = (f"Shown: zero-shot roll-out of {r.model_name} on {describe(r.system)}. "
                    f"Fitted on {doc.system.name} ({doc.system.n} particles); Build makes the system "
                    "set below.")
        elif doc.system is not None:
            how = {"custom": " (drawn)", "file": " (from a file)"}.get((doc.system_source or {}).get("kind"), "")
            text = f"Shown: {describe(doc.system)}{how}"
        else:
            text = ""
        self.summary.setText(text)

    # -- driven particles picked in the view ----------------------------------------
    @Slot(int)
    def toggle_driven(self, index: int) -> bool:
        """Add particle ``index`` of the shown system to the driven particles, or take it out (one undoable
        edit; Build applies it). False when the views show another system (a zero-shot roll-out's)."""
        doc = self.document
        r = doc.rollout
        if doc.system is None or (r is not None and r.zero_shot) or not 0 <= index < doc.system.n:
            self.error.emit("pick driven particles on the current system (the views show a zero-shot "
                            "roll-out's larger one)" if doc.system is not None else "build a system first")
            return False
        nodes = [int(i) for i in (doc.get("port", "drive_nodes") or ())]
        on = index not in nodes
        nodes = sorted(nodes + [index]) if on else [i for i in nodes if i != index]
        self.undo.push(set_setting(doc, "port", "drive_nodes", tuple(nodes),
                                   f"{'Drive' if on else 'Stop driving'} particle {index}"))
        hint = "" if doc.get("port", "drive_amplitude") else "; set a drive amplitude"
        self.message.emit(f"particle {index} {'added to' if on else 'taken from'} the driven particles "
                          f"({len(nodes)}){hint}; Build applies it")
        return True

    # -- build -----------------------------------------------------------------
    @Slot()
    def build(self):
        """Build the system and make it current; returns it, or None after
        showing the error."""
        form = self.builderForms[self.kind]
        form.clear_errors()
        pform = self.potentialForms.get(self.potential_kind)
        if pform is not None:
            pform.clear_errors()
        self.portForm.clear_errors()
        from core.physics.builders import build

        if not self.commit():
            self.error.emit("a setting does not parse (marked in red)")
            return None
        try:
            pot = self.potential()
            system = build(self.kind, potential=pot, **self.builder_params())
        except HGNError as exc:
            msg = str(exc)
            if not form.show_message(msg) and pform is not None:
                pform.show_message(msg)
            self.error.emit(msg)
            return None
        try:
            system = with_port(system, port_from_settings(self.document.values("port"), system))
        except HGNError as exc:
            msg = str(exc)
            if not self.portForm.show_message(msg):
                self.portForm.show_error("damping", msg)
            self.error.emit(msg)
            return None
        set_system(self.document, self.undo, system, self.source(), f"Build {system.name}")
        return system


def fit_stack(stack: QStackedWidget) -> None:
    """A stack as tall as the page it shows, not as its tallest page (the
    molecular generator's, the spline's controls): the V(r) plot stays close
    below a short form."""
    current = stack.currentWidget()
    for i in range(stack.count()):
        page = stack.widget(i)
        page.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Preferred if page is current else QSizePolicy.Ignored)
    stack.updateGeometry()


def potential_curve(pot, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Distances and V(r) around the potential's minimum, clipped for display."""
    if pot.kind == SPLINE:
        lo, hi = float(pot.r[0]), float(pot.r[-1])
        pad = 0.12 * (hi - lo)
        r = np.linspace(max(lo - pad, 0.5 * lo), hi + pad, n)
        v = np.asarray(pot.energy(r), float)
        vs = np.asarray(pot.V, float)
        top = float(vs.max()) + 0.5 * max(float(vs.max() - vs.min()), 1e-9)
        return r, np.where(v > top, np.nan, v)
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
    return f"{system.name}: {system.n} particles in {system.dim}D, {system.potential.kind}, {graph}{box}" \
        + describe_port(getattr(system, "port", None))


def describe_port(port) -> str:
    """A short tail for the summary line: damping, drives, field (empty without a port)."""
    if port is None or not port.active:
        return ""
    parts = []
    if port.damped:
        g = np.asarray(port.damping, dtype=float)
        parts.append(f"damping {g.max():g}" + (f" on {int(np.count_nonzero(g))} particles" if port.per_particle
                                               else ""))
    for d in port.drives:
        parts.append(f"drive {d.amplitude:g} cos({d.frequency:g} t) on {len(d.nodes)} particle"
                     + ("s" if len(d.nodes) > 1 else ""))
    if port.field is not None and any(port.field):
        parts.append("field " + ", ".join(f"{x:g}" for x in port.field))
    return "; " + ", ".join(parts)
