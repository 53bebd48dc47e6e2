"""The two 3D views (ground truth and prediction) with linked cameras, or one
view with the ground truth as rings around the opaque prediction; colour by
per-particle error, speed or energy, with a colour bar.

It follows the time model: on ``frameChanged`` it shows that frame of the
session's roll-out, through the scene code the video export uses too
(:func:`studio.scene.frame.show_frame`, :class:`studio.scene.colouring.Colouring`).
Without a roll-out it shows the current system at rest, and the prediction
view says that there is no prediction yet instead of showing particles.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ..defaults import VIEW
from ..pacing import pacer
from ..scene import palette
from ..scene.colouring import COLOUR_MODES, Colouring
from ..scene.frame import show_frame
from .particle_view import ColourBar, ParticleView

if TYPE_CHECKING:  # a type only: the buffer comes from the document
    from core.learning.rollout_buffer import RolloutBuffer

LAYOUTS = {"side": "Side by side", "overlay": "Overlay"}
LAYOUT_TIPS = {"side": "ground truth and prediction side by side, cameras linked",
               "overlay": "one view: the prediction as spheres, the ground truth as rings around where its "
                          "particles are (an accurate prediction sits inside its ring)"}
#: what the prediction view says before there is a prediction to show
NO_PREDICTION = "No prediction yet\n\nTrain a model (Ctrl+T), or roll out one from the Models list"
#: ... and when the roll-out shown has none (a ground-truth trajectory)
TRUTH_ONLY = "This roll-out has no prediction\n\nTrain a model (Ctrl+T) to compare one with it"


def same_particles(a, b) -> bool:
    """Whether systems ``a`` and ``b`` draw alike: the same object, or equal
    particles (dimension, reference positions, masses, bonds, box, cutoff,
    how they were built)."""
    if a is b:
        return True
    if a is None or b is None or a.dim != b.dim or a.n != b.n or a.name != b.name or a.cutoff != b.cutoff:
        return False

    def eq(x, y) -> bool:
        if x is None or y is None:
            return x is y
        return np.array_equal(np.asarray(x), np.asarray(y))

    try:
        same_meta = bool(a.meta == b.meta)
    except ValueError:                    # arrays in the descriptions
        return False
    return (same_meta and eq(a.positions, b.positions) and eq(a.masses, b.masses) and eq(a.edges, b.edges)
            and eq(a.box, b.box) and eq(a.edge_scale, b.edge_scale))


class ViewsPanel(QWidget):
    #: Ctrl+click on a particle in either view: its index (ParticleView.particleClicked)
    particleClicked = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.truthView = ParticleView("Ground truth", colour=palette.TRUTH)
        self.truthView.setObjectName("truthView")
        self.predictionView = ParticleView("Prediction", colour=palette.PREDICTION)
        self.predictionView.setObjectName("predictionView")
        self.truthView.link_camera(self.predictionView)
        self.truthView.particleClicked.connect(self.particleClicked)
        self.predictionView.particleClicked.connect(self.particleClicked)
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
        self.colouring: Colouring | None = None
        self.layoutCombo.currentIndexChanged.connect(self._on_layout)
        self.colourCombo.currentIndexChanged.connect(self._on_colour_mode)
        self.set_layout(VIEW.layout)
        self.set_colour_mode(VIEW.colour_by)
        self._update_placeholder()

    def set_marked(self, indices) -> None:
        """Particles both views draw in the highlight colour while the colouring is uniform (the driven
        particles of the System tab)."""
        for v in (self.truthView, self.predictionView):
            v.set_marked(indices)

    # -- options ---------------------------------------------------------------
    @property
    def layout_mode(self) -> str:
        return self.layoutCombo.currentData()

    @property
    def colour_mode(self) -> str:
        return self.colourCombo.currentData()

    @property
    def has_prediction(self) -> bool:
        """Whether a roll-out with a prediction is shown."""
        return self.buffer is not None and self.buffer.with_prediction

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
        if not overlay:
            self.truthView.scene.set_overlay(False)
        self._update_titles()
        self.show_frame(self.frame)

    def _update_titles(self) -> None:
        b = self.buffer
        if self.layout_mode == "overlay":
            self.truthView.set_title("Ground truth (rings) + prediction (spheres)" if self.has_prediction
                                     else "Ground truth (no prediction yet)")
        else:
            self.truthView.set_title("Ground truth")
        if self.has_prediction:
            self.predictionView.set_title(f"Prediction: {b.model_name}" + (" (zero-shot)" if b.zero_shot else ""))
        else:
            self.predictionView.set_title("Prediction")

    def _update_placeholder(self) -> None:
        """The prediction view shows a message until there is a prediction."""
        if self.has_prediction:
            self.predictionView.set_placeholder(None)
        else:
            self.predictionView.set_placeholder(TRUTH_ONLY if self.buffer is not None else NO_PREDICTION)

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
        self.colouring = Colouring(self.buffer, self.colour_mode) if self.buffer is not None else None
        self.show_frame(self.frame)

    def _update_colour_bar(self) -> None:
        """The bar shows only while particles are coloured by a quantity."""
        c = self.colouring
        shown = c is not None and not c.uniform and c.range is not None
        if shown:
            self.colourBar.set_range(c.range[0], c.range[1], c.unit)
        self.colourBar.setVisible(shown)

    # -- data -------------------------------------------------------------------
    def set_system(self, system) -> None:
        """A new system at rest (no roll-out yet)."""
        self.system = system
        self.buffer = None
        self.colouring = None
        self.frame = 0
        for v in (self.truthView, self.predictionView):
            v.set_system(system, reset_camera=False)
        self.reset_camera_later()
        self._auto_bonds(system)
        self.info.setText(f"{system.n} particles")
        self._update_titles()
        self._update_placeholder()
        self.show_frame(0)
        # the views' shaders compiled now, each in a turn of its own, not in
        # the first frame of the first prediction
        for v in (self.truthView, self.predictionView):
            if not v._warm:
                pacer().later(("warm", v.objectName()), v.warm_up)

    def set_rollout(self, buffer: RolloutBuffer) -> None:
        # a model trained in a worker process brings its own copy of the
        # system: the same particles need no new scene (nor a camera reset)
        same = same_particles(self.system, buffer.system)
        self.buffer = buffer
        self.system = buffer.system
        self.colouring = Colouring(buffer, self.colour_mode)
        self.frame = 0
        if not same:
            for v in (self.truthView, self.predictionView):
                v.set_system(buffer.system, reset_camera=False)
            self.reset_camera_later()
            self._auto_bonds(buffer.system)
        self.info.setText(f"{buffer.system.n} particles")
        self._update_titles()
        # the prediction view's page (message or particles) in a pacer turn
        # of its own: showing the other page lays it out and paints it,
        # which should not share the batch of the roll-out's start
        pacer().later(self.predictionView.placeholder, self._update_placeholder, first=True)
        self.show_frame(0)

    # -- the camera ------------------------------------------------------------------
    def reset_camera_later(self) -> None:
        """Frame the new system in a pacer turn of its own, before the views'
        renders (:mod:`studio.pacing`): a camera change updates the scene
        transforms of both linked views (10-20 ms on a busy machine), which
        should not share a batch with the handler that showed the system."""
        pacer().later(self.resetCamera, self.truthView.reset_camera, first=True)

    def settle_camera(self) -> None:
        """A camera reset still waiting for its turn, done now (before the
        camera is read or set from elsewhere: saving, restoring a project)."""
        pacer().take(self.resetCamera)

    # -- per frame -----------------------------------------------------------------
    @Slot(int)
    def show_frame(self, f: int) -> None:
        self.frame = f
        b = self.buffer
        if b is None:
            if self.system is not None:
                self.truthView.scene.set_overlay(False)
                self.truthView.show_frame(self.system.positions)
            self._update_colour_bar()
            return
        f = min(f, max(b.n_filled - 1, 0))
        scenes = {"truth": self.truthView.scene, "prediction": self.predictionView.scene}
        show_frame(scenes, b, f, self.layout_mode, self.colouring)
        self.truthView.changed()
        self.predictionView.changed()
        self._update_colour_bar()
