""""Adapt to this system…": the few-shot adaptation of a model (issue 14;
docs/adapt.md) asked for in a small dialog.

The dialog chooses how many training snapshots of the current system the
output layer is solved on (k, default 10), whether they are the first k or
k drawn with a seed, the regularisation rule (chosen per block by GCV
or by cross-validation over snapshots, or a fixed relative value), what it
pulls the output layer toward (zero, the model's own, or per block the
better of the two) and what is adapted: the selected
model's hidden layers or a basis file (*Load basis…*; its header is read
here, without torch, and a basis of another dimension is refused at once).
It holds no state of the document: :meth:`AdaptDialog.request` gives the
arguments of :meth:`studio.jobs.Jobs.adapt`, which runs the job in a
worker.
"""
from __future__ import annotations

import math
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog,
                               QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QRadioButton, QSpinBox,
                               QVBoxLayout, QWidget)

from core.errors import HGNError

from ..scene.palette import ERROR, MUTED, hex_of

#: the dialog's defaults: k, the fixed regularisation offered when that rule is chosen
DEFAULT_K = 10
DEFAULT_FIXED = 1e-12
#: (core's ``rule`` with regularisation None, or "given": a fixed value), label
RULES = (("gcv", "GCV (chosen per block)"), ("cv", "cross-validation over snapshots"), ("given", "fixed value"))
RULE_TIPS = {"gcv": "Generalised cross-validation on the summed normal equations picks the regularisation of each "
                    "block (kinetic, potential) from 10^-14 to 1 at about the cost of one solve (core's default; "
                    "docs/adapt.md)",
             "cv": "Cross-validation over whole snapshots (up to 5 folds) picks each block's regularisation; "
                   "one snapshot falls back to GCV",
             "given": "One relative regularisation for every block (as the fit's 'regularisation' setting)"}
#: core's ``prior``: what the regularisation pulls the new output layer toward
PRIORS = (("auto", "zero or the model's layer, whichever scores better"), ("none", "zero (plain ridge)"),
          ("source", "the model's output layer"))
PRIOR_TIP = ("What the regularisation pulls the new output layer toward: zero, the source model's own output "
             "layer (and its damping and forcing), or per block whichever the rule scores better (core's "
             "default). A basis file has no output layer: zero. With a fixed value there is no score: zero.")


def basis_summary(path, dim: int | None = None) -> str:
    """What a basis file holds, in words, read without torch (core.container: header and arrays checked
    against the file); HGNError for a file that is not a basis or one for another dimension than ``dim``."""
    from core.container import load_npz

    header, arrays = load_npz(Path(path), "basis")
    bdim = header.get("dim")
    if dim is not None and bdim is not None and int(bdim) != int(dim):
        raise HGNError(f"{Path(path).name}: the basis is for {bdim}D systems and the current system is {dim}D; "
                       f"sample a basis on {dim}D data (python -m core basis)")
    src = header.get("source") or {}
    where = src.get("system") or ", ".join(str(x) for x in src.get("datasets", []) or []) or "unknown data"
    widths = "/".join(str(arrays[k].shape[0]) for k in sorted(arrays) if k.endswith("_W"))
    return f"{header.get('encoding', '?')} basis, {bdim}D, layer widths {widths}, sampled on {where}"


class AdaptDialog(QDialog):
    """k, seed, regularisation rule, model or basis file (see the module notes)."""

    def __init__(self, model_name: str, system, parent: QWidget | None = None, last: dict | None = None):
        super().__init__(parent)
        self.setObjectName("adaptDialog")
        self.setWindowTitle("Adapt to this system")
        self.system = system
        self.model_name = model_name
        self.basis_path = ""
        last = dict(last or {})
        intro = QLabel(f"Keep the sampled hidden layers and solve only the output layer on k snapshots of "
                       f"<b>{system.name}</b> ({system.n} particles), simulated with the Train tab's data "
                       "settings. The new model joins the models table.")
        intro.setWordWrap(True)

        self.kSpin = QSpinBox()
        self.kSpin.setObjectName("adaptK")
        self.kSpin.setRange(1, 10**7)
        self.kSpin.setValue(int(last.get("k", DEFAULT_K)))
        self.kSpin.setToolTip("training snapshots of the current system the output layer is solved on")
        self.randomCheck = QCheckBox("draw them at random, seed")
        self.randomCheck.setObjectName("adaptRandom")
        self.randomCheck.setToolTip("unchecked: the first k training snapshots")
        self.seedSpin = QSpinBox()
        self.seedSpin.setObjectName("adaptSeed")
        self.seedSpin.setRange(0, 2**31 - 1)
        seed = last.get("seed")
        self.randomCheck.setChecked(seed is not None)
        self.seedSpin.setValue(int(seed or 0))
        self.seedSpin.setEnabled(seed is not None)
        self.randomCheck.toggled.connect(self.seedSpin.setEnabled)
        seed_row = QHBoxLayout()
        seed_row.addWidget(self.randomCheck)
        seed_row.addWidget(self.seedSpin, 1)

        self.ruleCombo = QComboBox()
        self.ruleCombo.setObjectName("adaptRule")
        for key, label in RULES:
            self.ruleCombo.addItem(label, key)
            self.ruleCombo.setItemData(self.ruleCombo.count() - 1, RULE_TIPS[key], Qt.ToolTipRole)
        self.lambdaEdit = QLineEdit(f"{float(last.get('regularisation') or DEFAULT_FIXED):g}")
        self.lambdaEdit.setObjectName("adaptLambda")
        self.lambdaEdit.setToolTip("relative regularisation λ (the normal matrix is scaled to a unit diagonal)")
        self.ruleCombo.currentIndexChanged.connect(self._on_rule)
        rule = "given" if last.get("regularisation") is not None else last.get("rule", "gcv")
        self.ruleCombo.setCurrentIndex(max(0, self.ruleCombo.findData(rule)))
        self._on_rule()
        self.priorCombo = QComboBox()
        self.priorCombo.setObjectName("adaptPrior")
        for key, label in PRIORS:
            self.priorCombo.addItem(label, key)
        self.priorCombo.setToolTip(PRIOR_TIP)
        self.priorCombo.setCurrentIndex(max(0, self.priorCombo.findData(last.get("prior", "auto"))))
        rule_row = QHBoxLayout()
        rule_row.addWidget(self.ruleCombo)
        rule_row.addWidget(self.lambdaEdit, 1)

        self.modelRadio = QRadioButton(f"the hidden layers of {model_name}" if model_name else "the selected model")
        self.modelRadio.setObjectName("adaptFromModel")
        self.basisRadio = QRadioButton("a basis file")
        self.basisRadio.setObjectName("adaptFromBasis")
        self.sourceGroup = QButtonGroup(self)
        self.sourceGroup.addButton(self.modelRadio)
        self.sourceGroup.addButton(self.basisRadio)
        self.modelRadio.setChecked(True)
        self.modelRadio.setEnabled(bool(model_name))
        self.loadButton = QPushButton("Load basis…")
        self.loadButton.setObjectName("loadBasisButton")
        self.loadButton.setToolTip("a basis file written by Save basis… or python -m core basis")
        self.loadButton.clicked.connect(lambda: self.load_basis())
        self.basisLabel = QLabel("")
        self.basisLabel.setObjectName("basisLabel")
        self.basisLabel.setWordWrap(True)
        self.basisLabel.setStyleSheet(f"color: {hex_of(MUTED)};")
        basis_row = QHBoxLayout()
        basis_row.addWidget(self.basisRadio)
        basis_row.addWidget(self.loadButton)
        basis_row.addStretch(1)

        form = QFormLayout()
        form.addRow("Snapshots k", self.kSpin)
        form.addRow("", seed_row)
        form.addRow("Regularisation", rule_row)
        form.addRow("Pull toward", self.priorCombo)
        source = QVBoxLayout()
        source.addWidget(self.modelRadio)
        source.addLayout(basis_row)
        source.addWidget(self.basisLabel)
        form.addRow("Adapt", source)
        self.errorLabel = QLabel("")
        self.errorLabel.setObjectName("adaptError")
        self.errorLabel.setWordWrap(True)
        self.errorLabel.setStyleSheet(f"color: {hex_of(ERROR)};")
        self.errorLabel.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.okButton = self.buttons.button(QDialogButtonBox.Ok)
        self.okButton.setText("Adapt")
        self.okButton.setObjectName("adaptOkButton")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(intro)
        lay.addLayout(form)
        lay.addWidget(self.errorLabel)
        lay.addWidget(self.buttons)
        self.setMinimumWidth(460)

    def _on_rule(self, *_args) -> None:
        self.lambdaEdit.setEnabled(self.ruleCombo.currentData() == "given")

    def load_basis(self, path: str | None = None) -> bool:
        """Choose a basis file (a file dialog without ``path``); its header is checked and described."""
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Load basis", "", "HGN basis files (*.npz)")
            if not path:
                return False
        try:
            text = basis_summary(path, self.system.dim)
        except HGNError as exc:
            self.show_error(str(exc))
            return False
        self.basis_path = str(path)
        self.basisLabel.setText(f"{Path(path).name}: {text}")
        self.basisLabel.setToolTip(str(path))
        self.basisRadio.setChecked(True)
        self.show_error("")
        return True

    def show_error(self, message: str) -> None:
        self.errorLabel.setText(message)
        self.errorLabel.setVisible(bool(message))

    def request(self) -> dict:
        """The arguments of Jobs.adapt: ``k``, ``seed`` (None: the first k), ``regularisation`` (None: core's rule),
        ``basis_path`` (None: the model), ``rule`` and ``prior`` (core's); HGNError names a bad entry."""
        reg = None
        if self.ruleCombo.currentData() == "given":
            text = self.lambdaEdit.text().strip()
            try:
                reg = float(text)
            except ValueError:
                raise HGNError(f"Regularisation: {text!r} is not a number (e.g. 1e-12)") from None
            if not math.isfinite(reg) or reg < 0:
                raise HGNError(f"Regularisation: must be a number >= 0, got {text}")
        basis = None
        if self.basisRadio.isChecked():
            if not self.basis_path:
                raise HGNError("Adapt: choose a basis file (Load basis…) or the model")
            basis = self.basis_path
        return {"k": int(self.kSpin.value()), "seed": int(self.seedSpin.value()) if self.randomCheck.isChecked()
                else None, "regularisation": reg, "basis_path": basis, "prior": str(self.priorCombo.currentData()),
                "rule": "gcv" if reg is not None else str(self.ruleCombo.currentData())}

    def accept(self) -> None:
        try:
            self.request()
        except HGNError as exc:
            self.show_error(str(exc))
            return
        super().accept()
