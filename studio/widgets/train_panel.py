"""The Train panel: simulation settings, the method and its settings, Train,
Cancel and a progress bar with stage names -- a view of the document's
``simulation``, ``train`` and ``model/<method>`` settings.

The method combo lists what ``studio.methods.available_methods()`` finds in
core; each method's settings form is generated from its config dataclass
(defaults from core). The panel runs nothing: Train asks the window, whose
:class:`studio.jobs.Jobs` reads the settings from the document.
"""
from __future__ import annotations

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QProgressBar,
                               QPushButton, QStackedWidget, QVBoxLayout, QWidget)

from ..commands import set_setting
from ..defaults import SIMULATION
from ..methods import Method, available_methods
from .forms import FieldForm, FieldSpec, specs_from_dataclass


def simulation_specs() -> list[FieldSpec]:
    s = SIMULATION
    return [
        FieldSpec("dt", "Time step", "float", s.dt, tip="integrator step (time units)"),
        FieldSpec("steps", "Steps / trajectory", "int", s.steps, tip="steps of each training trajectory",
                  minimum=1, maximum=10**7),
        FieldSpec("n_trajectories", "Trajectories", "int", s.n_trajectories,
                  tip="training trajectories from random start states", minimum=1, maximum=10**5),
        FieldSpec("save_every", "Save interval", "int", s.save_every,
                  tip="keep a snapshot every this many steps", minimum=1, maximum=10**6),
        FieldSpec("test_fraction", "Test fraction", "float", s.test_fraction,
                  tip="share of trajectories held out for the test MSE"),
        FieldSpec("rollout_steps", "Roll-out steps", "int", s.rollout_steps,
                  tip="steps of the comparison roll-out shown after training", minimum=1, maximum=10**7),
        FieldSpec("rollout_save_every", "Roll-out save interval", "int", s.rollout_save_every,
                  tip="show every this many roll-out steps", minimum=1, maximum=10**6),
        FieldSpec("rollout_device", "Roll-out device", "choice", s.rollout_device, ("cpu", "cuda"),
                  tip="where learned roll-outs run (cuda: an NVIDIA GPU; refused when there is none)"),
        FieldSpec("rollout_precision", "Roll-out precision", "choice", s.rollout_precision, ("float64", "float32"),
                  tip="float32: separable (invariant) models only; <= 2.4e-4 in position after 1000 steps"),
        FieldSpec("rollout_threads", "Roll-out threads", "int", s.rollout_threads,
                  tip="torch threads of learned roll-outs, 0 = every core (one was measured faster on a busy "
                      "2-core machine)", minimum=0, maximum=256),
        FieldSpec("integrator", "Ground-truth integrator", "choice", s.integrator, ("verlet", "rk4", "dop853"),
                  tip="integrator of the ground truth (training data and roll-out): velocity Verlet "
                      "(symplectic, step dt), "
                      "classical RK4 (step dt) or adaptive DOP853 (tolerance 1e-12; dt sets the frames)"),
        FieldSpec("reference_check", "Check each roll-out", "bool", s.reference_check,
                  tip="after every roll-out with a Verlet or RK4 ground truth, integrate it again with DOP853 "
                      "(rtol 1e-12) in the background and plot the ground truth's own error (plots: "
                      "Truth error tab). Off: only when asked (the button below)"),
    ]


class TrainPanel(QWidget):
    """Simulation and model settings of the document, Train and Cancel."""

    trainRequested = Signal()
    cancelRequested = Signal()
    #: "Check against reference": the shown roll-out's ground truth vs DOP853
    referenceRequested = Signal()
    #: "Adapt selected model to this system…" (issue 14; the window opens the Adapt dialog)
    adaptRequested = Signal()
    error = Signal(str)

    def __init__(self, document, undo, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self.undo = undo
        self.simForm = FieldForm(simulation_specs(), prefix="sim_")
        self.simForm.bind(document, "simulation", undo.push)
        self.methodCombo = QComboBox()
        self.methodCombo.setObjectName("methodCombo")
        self.methodStack = QStackedWidget()
        self.methodForms: dict[str, FieldForm] = {}
        self.methods: dict[str, Method] = {}
        self.trainButton = QPushButton("Train")
        self.trainButton.setObjectName("trainButton")
        self.trainButton.setToolTip("Simulate training data, fit the model, roll it out (Ctrl+T)")
        self.cancelButton = QPushButton("Cancel")
        self.cancelButton.setObjectName("cancelButton")
        self.cancelButton.setEnabled(False)
        self.cancelButton.setToolTip("Stop the running job (Esc)")
        self.progress = QProgressBar()
        self.progress.setObjectName("trainProgress")
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("idle")
        self.adaptButton = QPushButton("Adapt selected model to this system…")
        self.adaptButton.setObjectName("trainAdaptButton")
        self.adaptButton.setEnabled(False)
        self.resultLabel = QLabel("")
        self.resultLabel.setObjectName("trainResult")
        self.resultLabel.setWordWrap(True)

        self.referenceButton = QPushButton("Check ground truth against DOP853")
        self.referenceButton.setObjectName("trainCheckReference")
        self.referenceButton.setToolTip("Integrate the shown roll-out's ground truth again with SciPy's DOP853 "
                                        "(rtol 1e-12) and plot its own error (plots: the Truth error tab)")
        self.referenceButton.clicked.connect(self.referenceRequested)
        sim = QGroupBox("Simulation (training data)")
        sl = QVBoxLayout(sim)
        sl.addWidget(self.simForm)
        sl.addWidget(self.referenceButton)
        model = QGroupBox("Model")
        ml = QVBoxLayout(model)
        fl = QFormLayout()
        fl.addRow("Method", self.methodCombo)
        ml.addLayout(fl)
        ml.addWidget(self.methodStack)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(sim)
        lay.addWidget(model)
        row = QHBoxLayout()
        row.addWidget(self.trainButton, 2)
        row.addWidget(self.cancelButton, 1)
        lay.addLayout(row)
        lay.addWidget(self.adaptButton)
        lay.addWidget(self.progress)
        lay.addWidget(self.resultLabel)
        lay.addStretch(1)

        self._showing = False
        self.trainButton.clicked.connect(self.trainRequested)
        self.cancelButton.clicked.connect(self.cancelRequested)
        self.adaptButton.clicked.connect(self.adaptRequested)
        self.methodCombo.currentIndexChanged.connect(self._on_method_combo)
        document.settingsChanged.connect(self._on_settings)
        self.refresh_methods()

    # -- methods ---------------------------------------------------------------
    def refresh_methods(self) -> None:
        """One settings form per method of :data:`studio.methods.METHODS` not shown yet."""
        self._showing = True
        try:
            for m in available_methods():
                if m.key in self.methods:
                    continue
                specs = specs_from_dataclass(m.config_class(), m.default_settings(), hidden=m.hidden,
                                             choices=m.choices(), tips=m.tip_of())
                form = FieldForm(specs, prefix=f"{m.key}_", advanced=m.advanced())
                form.bind(self.document, f"model/{m.key}", self.undo.push)
                self.methods[m.key] = m
                self.methodForms[m.key] = form
                self.methodStack.addWidget(form)
                self.methodCombo.addItem(m.label, m.key)
                self.methodCombo.setItemData(self.methodCombo.count() - 1, m.tip, 3)  # Qt.ToolTipRole
        finally:
            self._showing = False
        has = bool(self.methods)
        self.trainButton.setEnabled(has)
        if not has:
            self.trainButton.setToolTip("No fitting method in core yet (core.learning.rfhgn is missing)")
        self._show_method()

    @property
    def method_key(self) -> str | None:
        key = self.document.method
        return key if key in self.methods else self.methodCombo.currentData()

    def set_method(self, key: str) -> None:
        """Choose a method, as the user does with the combo (undoable)."""
        i = self.methodCombo.findData(key)
        if i >= 0:
            self.methodCombo.setCurrentIndex(i)

    @Slot()
    def _on_method_combo(self) -> None:
        key = self.methodCombo.currentData()
        if not self._showing and key and key != self.document.method:
            self.undo.push(set_setting(self.document, "train", "method", key,
                                       f"Method {self.methodCombo.currentText()}"))

    @Slot(str, str)
    def _on_settings(self, section: str, _key: str) -> None:
        if section in ("", "train"):
            self._show_method()

    def _show_method(self) -> None:
        key = self.method_key
        i = self.methodCombo.findData(key)
        if i >= 0 and self.methodCombo.currentIndex() != i:
            self._showing = True
            try:
                self.methodCombo.setCurrentIndex(i)
            finally:
                self._showing = False
        if key in self.methodForms:
            self.methodStack.setCurrentWidget(self.methodForms[key])

    # -- values ----------------------------------------------------------------
    def forms(self) -> list[FieldForm]:
        return [self.simForm, *self.methodForms.values()]

    def commit(self) -> bool:
        """Typed text of the shown forms into the document; False if a field
        does not parse."""
        ok = self.simForm.commit()
        form = self.methodForms.get(self.method_key)
        return (form.commit() if form is not None else True) and ok

    def show_message(self, section: str, message: str) -> bool:
        """Show an error at the field of ``section`` it names."""
        for f in self.forms():
            if f.section == section:
                f.clear_errors()
        return any(f.section == section and f.show_message(message) for f in self.forms())

    # -- running state -----------------------------------------------------------
    def set_running(self, running: bool, text: str = "") -> None:
        self.trainButton.setEnabled(not running and bool(self.methods))
        self.cancelButton.setEnabled(running)
        if running:
            self.progress.setRange(0, 1000)
            self.progress.setValue(0)
            self.progress.setFormat(text or "starting…")
        else:
            self.progress.setRange(0, 1000)
            self.progress.setFormat(text or "idle")

    def set_progress(self, text: str, fraction: float) -> None:
        """``fraction`` < 0: busy without a measure (a moving bar)."""
        if fraction < 0:
            self.progress.setRange(0, 0)
            self.progress.setFormat(text)
            return
        set_bar(self.progress, int(round(1000 * fraction)), f"{text}  {100 * fraction:.0f}%")


def set_bar(bar, value: int, text: str, maximum: int = 1000) -> None:
    """Set a QProgressBar's range 0..maximum, value and text without the
    immediate repaint QProgressBar.setValue forces (a synchronous repaint
    during a roll-out also rendered the dirty 3D views in the same event-loop
    turn): the bar is redrawn with the next ordinary paint."""
    if bar.minimum() == 0 and bar.maximum() == maximum and bar.value() == value and bar.format() == text:
        return
    bar.setUpdatesEnabled(False)
    try:
        bar.setRange(0, maximum)
        bar.setValue(value)
        bar.setFormat(text)
    finally:
        bar.setUpdatesEnabled(True)     # schedules an update(), not a repaint()
