"""The Train panel: simulation settings, the method and its settings, Train,
Cancel and a progress bar with stage names.

The method combo lists what ``studio.methods.available_methods()`` finds in
core; each method's settings form is generated from its config dataclass
(defaults from core). The panel does not run anything: the main window reads
``request()`` and runs the job in the background.
"""
from __future__ import annotations

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QProgressBar,
                               QPushButton, QStackedWidget, QVBoxLayout, QWidget)

from core.errors import HGNError

from ..defaults import SIMULATION
from ..methods import Method, available_methods
from .forms import FieldForm, FieldSpec, specs_from_dataclass

STAGE_NAMES = {"simulate": "simulating ground truth", "sample": "sampling random features",
               "assemble": "assembling normal equations", "solve": "solving", "epochs": "training epochs",
               "evaluate": "measuring test error", "rollout": "rolling out", "datagen": "generating data"}


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
    ]


class TrainPanel(QWidget):
    trainRequested = Signal()
    cancelRequested = Signal()
    error = Signal(str)
    #: (old method key, new method key) when the method combo changes -- for undo
    methodChanged = Signal(str, str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.simForm = FieldForm(simulation_specs(), prefix="sim_")
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
        self.resultLabel = QLabel("")
        self.resultLabel.setObjectName("trainResult")
        self.resultLabel.setWordWrap(True)

        sim = QGroupBox("Simulation (training data)")
        QVBoxLayout(sim).addWidget(self.simForm)
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
        lay.addWidget(self.progress)
        lay.addWidget(self.resultLabel)
        lay.addStretch(1)

        self.trainButton.clicked.connect(self.trainRequested)
        self.cancelButton.clicked.connect(self.cancelRequested)
        self.methodCombo.currentIndexChanged.connect(self._on_method)
        self.refresh_methods()

    # -- methods ---------------------------------------------------------------
    def refresh_methods(self) -> None:
        """List the methods core offers now (a method appears when its module lands)."""
        current = self.method_key
        for m in available_methods():
            if m.key in self.methods:
                continue
            try:
                specs = specs_from_dataclass(m.config_class(), m.default_settings(), hidden=m.hidden,
                                             choices=m.choices(), tips=m.tip_of())
            except Exception as exc:  # a half-written core module must not break the panel
                self.error.emit(f"{m.label}: not available ({exc})")
                continue
            form = FieldForm(specs, prefix=f"{m.key}_", advanced=m.advanced())
            self.methods[m.key] = m
            self.methodForms[m.key] = form
            self.methodStack.addWidget(form)
            self.methodCombo.addItem(m.label, m.key)
            self.methodCombo.setItemData(self.methodCombo.count() - 1, m.tip, 3)  # Qt.ToolTipRole
        if current and current in self.methods:
            self.set_method(current)
        has = bool(self.methods)
        self.trainButton.setEnabled(has)
        if not has:
            self.trainButton.setToolTip("No fitting method in core yet (core.learning.rfhgn is missing)")
        self._on_method()

    @property
    def method_key(self) -> str | None:
        return self.methodCombo.currentData()

    def set_method(self, key: str) -> None:
        i = self.methodCombo.findData(key)
        if i >= 0:
            self.methodCombo.setCurrentIndex(i)

    @Slot()
    def _on_method(self) -> None:
        key = self.method_key
        prev = getattr(self, "_method", None)
        self._method = key
        if key in self.methodForms:
            self.methodStack.setCurrentWidget(self.methodForms[key])
        if prev is not None and key is not None and prev != key:
            self.methodChanged.emit(prev, key)

    # -- values ----------------------------------------------------------------
    def request(self) -> tuple[dict, Method, dict]:
        """(simulation settings, method, model settings); HGNError marks fields."""
        from ..pipeline import check_simulation

        self.simForm.clear_errors()
        sim = self.simForm.values()
        try:
            check_simulation(sim)
        except HGNError as exc:
            self.simForm.show_message(str(exc))
            raise
        key = self.method_key
        if key is None:
            raise HGNError("no fitting method is available yet")
        form = self.methodForms[key]
        form.clear_errors()
        settings = form.values()
        method = self.methods[key]
        try:
            method.make_config(settings)
        except HGNError as exc:
            if not form.show_message(str(exc)):
                self.error.emit(str(exc))
            raise
        return sim, method, settings

    def state(self) -> dict:
        from .system_panel import _safe_values

        return {"simulation": _safe_values(self.simForm), "method": self.method_key,
                "models": {k: _safe_values(f) for k, f in self.methodForms.items()}}

    def restore(self, state: dict) -> None:
        self.simForm.set_values(state.get("simulation") or {})
        for k, vals in (state.get("models") or {}).items():
            if k in self.methodForms:
                self.methodForms[k].set_values(vals)
        if state.get("method"):
            self.set_method(state["method"])

    def reset(self) -> None:
        self.simForm.reset()
        for f in self.methodForms.values():
            f.reset()

    # -- running state -----------------------------------------------------------
    def set_running(self, running: bool, text: str = "") -> None:
        self.trainButton.setEnabled(not running and bool(self.methods))
        self.cancelButton.setEnabled(running)
        if running:
            self.progress.setValue(0)
            self.progress.setFormat(text or "starting…")
        else:
            self.progress.setFormat(text or "idle")

    def set_progress(self, stage: str, fraction: float) -> None:
        self.progress.setValue(int(round(1000 * fraction)))
        self.progress.setFormat(f"{STAGE_NAMES.get(stage, stage)}  {100 * fraction:.0f}%")
