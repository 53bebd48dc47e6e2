"""The two 3D views (ground truth and prediction) with linked cameras, or one
view with the prediction overlaid translucent; colour by per-particle error,
speed or energy, with a colour bar.

It follows the time model: on ``frameChanged`` it shows that frame of the
session's roll-out. Without a roll-out it shows the current system at rest.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ..colouring import (COLOUR_MODES, UNITS, ParticleEnergy, colormap_rgba, particle_error,
                         particle_speed)
from ..defaults import VIEW
from ..rollout_buffer import RolloutBuffer
from .particle_view import ColourBar, ParticleView

LAYOUTS = {"side": "Side by side", "overlay": "Overlay"}
LAYOUT_TIPS = {"side": "ground truth and prediction side by side, cameras linked",
               "overlay": "one view: ground truth solid, prediction translucent on top"}


class ViewsPanel(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.truthView = ParticleView("Ground truth", colour=VIEW.truth_colour)
        self.truthView.setObjectName("truthView")
        self.predictionView = ParticleView("Prediction", colour=VIEW.prediction_colour)
        self.predictionView.setObjectName("predictionView")
        self.truthView.link_camera(self.predictionView)
        self.colourBar = ColourBar()
        self.colourBar.hide()
        self.layoutCombo = QComboBox()
        self.layoutCombo.setObjectName("layoutCombo")
        for k, v in LAYOUTS.items():
            self.layoutCombo.addItem(v, k)
            self.layoutCombo.setItemData(self.layoutCombo.count() - 1, LAYOUT_TIPS[k], Qt.ToolTipRole)
        self.colourCombo = QComboBox()
        self.colourCombo.setObjectName("colourCombo")
        for k, v in COLOUR_MODES.items():
            self.colourCombo.addItem(v, k)
        for combo in (self.layoutCombo, self.colourCombo):
            combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(8)
        self.bondsCheck = QCheckBox("Bonds")
        self.bondsCheck.setObjectName("bondsCheck")
        self.bondsCheck.setChecked(True)
        self.bondsCheck.setToolTip("Draw springs and bonds as lines (off by default above "
                                   f"{VIEW.auto_bond_limit} bonds: they cost more than the spheres)")
        self.bondsCheck.toggled.connect(self._on_bonds)
        self.resetCamera = QPushButton("Reset camera")
        self.resetCamera.setObjectName("resetCameraButton")
        self.resetCamera.clicked.connect(self.truthView.reset_camera)
        self.info = QLabel("")
        self.info.setObjectName("viewsInfo")

        bar = QHBoxLayout()
        bar.addWidget(QLabel("View"))
        bar.addWidget(self.layoutCombo)
        bar.addWidget(QLabel("Colour by"))
        bar.addWidget(self.colourCombo)
        bar.addWidget(self.bondsCheck)
        bar.addWidget(self.resetCamera)
        bar.addStretch(1)
        bar.addWidget(self.info)
        row = QHBoxLayout()
        row.setSpacing(4)
        row.addWidget(self.truthView, 1)
        row.addWidget(self.predictionView, 1)
        row.addWidget(self.colourBar)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(bar)
        lay.addLayout(row, 1)

        self.buffer: RolloutBuffer | None = None
        self.system = None
        self.frame = 0
        self._energy = None
        self._range = None
        self.layoutCombo.currentIndexChanged.connect(self._on_layout)
        self.colourCombo.currentIndexChanged.connect(self._on_colour_mode)
        self.set_layout(VIEW.layout)
        self.set_colour_mode(VIEW.colour_by)

    # -- options ---------------------------------------------------------------
    @property
    def layout_mode(self) -> str:
        return self.layoutCombo.currentData()

    @property
    def colour_mode(self) -> str:
        return self.colourCombo.currentData()

    def set_layout(self, mode: str) -> None:
        i = self.layoutCombo.findData(mode)
        if i >= 0:
            self.layoutCombo.setCurrentIndex(i)
            self._on_layout()

    def set_colour_mode(self, mode: str) -> None:
        i = self.colourCombo.findData(mode)
        if i >= 0:
            self.colourCombo.setCurrentIndex(i)
            self._on_colour_mode()

    @Slot()
    def _on_layout(self) -> None:
        overlay = self.layout_mode == "overlay"
        self.predictionView.setVisible(not overlay)
        self.truthView.set_title("Ground truth (solid) + prediction (translucent)" if overlay else "Ground truth")
        self.show_frame(self.frame)

    @Slot(bool)
    def _on_bonds(self, show: bool) -> None:
        for v in (self.truthView, self.predictionView):
            v.set_show_bonds(show)
        self.show_frame(self.frame)

    def _auto_bonds(self, system) -> None:
        """Bonds on for small graphs, off for big ones (the user may override)."""
        n_edges = len(system.edges) if system.edges is not None else 0
        self.bondsCheck.setChecked(n_edges <= VIEW.auto_bond_limit)

    @Slot()
    def _on_colour_mode(self) -> None:
        self._range = None
        self._update_colour_bar()
        self.show_frame(self.frame)

    def _update_colour_bar(self) -> None:
        """The bar shows only when particles are coloured by a quantity."""
        self.colourBar.setVisible(self.colour_mode != "uniform" and self.buffer is not None)

    # -- data -------------------------------------------------------------------
    def set_system(self, system) -> None:
        """A new system at rest (no roll-out yet)."""
        self.system = system
        self.buffer = None
        self._energy = None
        self._range = None
        self.frame = 0
        for v in (self.truthView, self.predictionView):
            v.set_system(system)
        self._auto_bonds(system)
        self.predictionView.set_title("Prediction (train a model)")
        self.info.setText(f"{system.n} particles")
        self._update_colour_bar()
        self.show_frame(0)

    def set_rollout(self, buffer: RolloutBuffer) -> None:
        same = self.system is buffer.system
        self.buffer = buffer
        self.system = buffer.system
        self._energy = None
        self._range = None
        self.frame = 0
        if not same:
            for v in (self.truthView, self.predictionView):
                v.set_system(buffer.system)
            self._auto_bonds(buffer.system)
        title = f"Prediction: {buffer.model_name}" + (" (zero-shot)" if buffer.zero_shot else "")
        self.predictionView.set_title(title if buffer.with_prediction else "Prediction (none)")
        self.info.setText(f"{buffer.system.n} particles")
        self._update_colour_bar()
        self.show_frame(0)

    # -- per frame -----------------------------------------------------------------
    def _values(self, which: str, f: int) -> np.ndarray | None:
        b = self.buffer
        mode = self.colour_mode
        if b is None or mode == "uniform":
            return None
        q, p = b.q[which][f], b.p[which][f]
        if mode == "error":
            return particle_error(b.system, b.q["truth"][f], b.q["prediction"][f]) if b.with_prediction else None
        if mode == "speed":
            return particle_speed(b.system, p)
        if mode == "energy":
            if self._energy is None or self._energy.system is not b.system:
                self._energy = ParticleEnergy(b.system)
            return self._energy(q, p)
        return None

    def _colours(self, values, alpha=1.0):
        if values is None:
            return None
        lo, hi = float(np.min(values)), float(np.max(values))
        if self._range is None:
            self._range = [lo, hi]
        else:
            self._range = [min(self._range[0], lo), max(self._range[1], hi)]
        if self.colour_mode == "error":
            self._range[0] = 0.0
        return colormap_rgba(values, self._range[0], self._range[1], VIEW.colormap, alpha)

    @Slot(int)
    def show_frame(self, f: int) -> None:
        self.frame = f
        b = self.buffer
        if b is None:
            if self.system is not None:
                self.truthView.show_frame(self.system.positions)
                self.predictionView.show_frame(self.system.positions)
            return
        f = min(f, max(b.n_filled - 1, 0))
        overlay = self.layout_mode == "overlay"
        vt = self._values("truth", f)
        ct = self._colours(vt)
        if b.with_prediction:
            vp = vt if self.colour_mode == "error" else self._values("prediction", f)
            cp = self._colours(vp, VIEW.overlay_alpha if overlay else 1.0)
            if overlay:
                self.truthView.show_frame(b.q["truth"][f], ct, ghost_q=b.q["prediction"][f], ghost_colours=cp)
            else:
                self.truthView.show_frame(b.q["truth"][f], ct)
                self.predictionView.show_frame(b.q["prediction"][f], cp)
        else:
            self.truthView.show_frame(b.q["truth"][f], ct)
        if self._range is not None and self.colour_mode != "uniform":
            self.colourBar.set_range(self._range[0], self._range[1], UNITS.get(self.colour_mode, ""))
