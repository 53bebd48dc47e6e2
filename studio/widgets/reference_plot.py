"""The ground truth's own error: the shown roll-out's ground truth against
SciPy's DOP853 at rtol 1e-12 from the same start (issue 12).

:class:`ReferencePanel` is a page of the plots dock: a log-scale
:class:`~studio.widgets.plots.TimePlot` of the largest and the RMS distance
of a particle from its reference position and of |H - H_ref| per frame,
and a "Check against reference (DOP853)" button. The check runs only when
asked (the button, the Train panel's button, or the simulation setting
"Check each roll-out" after every roll-out), in a worker
(:meth:`studio.jobs.Jobs.check_reference`: DOP853 costs far more than the
Verlet run it checks, so it is not part of every roll-out). The result lives
in the document (:attr:`studio.document.Document.reference_check`, saved
with the project); a new roll-out or system drops it.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Slot
from PySide6.QtWidgets import QWidget

from ..scene import palette
from .plot_page import PlotPage
from .plots import TimePlot, pen

#: the curves: (name, pen)
CURVES = (("max |Δq|", pen(palette.TRUTH)), ("RMS |Δq|", pen(palette.TRUTH, 1.5, dashed=True)),
          ("|ΔH|", pen(palette.LOSS)))
EMPTY_TEXT = ("The ground truth's own error against an accurate reference<br>"
              "(SciPy DOP853, rtol 1e-12, from the same start) appears here:<br>"
              "press “Check against reference” after a roll-out")
BUTTON_TEXT = "Check against reference (DOP853)"
BUTTON_TIP = ("Integrate the shown roll-out's ground truth again from its first frame with SciPy's adaptive "
              "DOP853 (rtol 1e-12) and plot how far the ground truth (Verlet or RK4 at step dt) is from it: "
              "position error per particle and energy error, per frame. Runs in the background.")


def reference_plot() -> TimePlot:
    p = TimePlot("Error vs DOP853", "error", log_y=True, empty_text=EMPTY_TEXT)
    p.setObjectName("referencePlot")
    p.setToolTip("Δq: a particle's distance from its position in the DOP853 reference (largest and RMS over "
                 "the particles); ΔH: the ground truth's energy minus the reference's")
    for name, curve_pen in CURVES:
        p.add_curve(name, curve_pen)
    p.legend.setColumnCount(len(CURVES))                 # one short row: the plot keeps its height
    p.legend.updateSize()
    p.getPlotItem().layout.setRowFixedHeight(0, max(24, int(np.ceil(p.legend.boundingRect().height())) + 2))
    return p


class ReferencePanel(PlotPage):
    """The reference-error plot, its button and a one-line summary."""

    def __init__(self, document, jobs, parent: QWidget | None = None):
        super().__init__(document, jobs, reference_plot(), BUTTON_TEXT, BUTTON_TIP, "checkReferenceButton",
                         "referenceSummary", document.referenceChanged, jobs.checkingChanged,
                         document.reference_check, parent)
        self.checkButton = self.button

    def on_button(self) -> None:
        self.request()

    @Slot()
    def request(self) -> bool:
        """Check the shown roll-out's ground truth (False, with a message, when it cannot)."""
        return self.jobs.check_reference()

    @Slot(bool)
    def on_running(self, running: bool) -> None:
        super().on_running(running)
        self.checkButton.setText("Checking against DOP853…" if running else BUTTON_TEXT)

    @Slot(object)
    def show_check(self, check) -> None:
        """Plot a core.physics.reference.ReferenceCheck (None: the empty state)."""
        if check is None:
            self.clear()
            return
        t = np.asarray(check.t, float)
        for (name, _), y in zip(CURVES, (check.position_max, check.position_rms, np.abs(check.energy))):
            self.plot.set_curve(name, t, np.asarray(y, float))
        text = check.summary()
        self.summary.setText(f"max |Δq| {np.max(check.position_max):.3g}, |ΔH| {np.max(np.abs(check.energy)):.3g}"
                             if check.n_frames else text)
        self.summary.setToolTip(f"{text}; the reference took {check.seconds:.2g} s. Position errors are "
                                "distances (length units), the energy error is in energy units; "
                                "frame 0 is the shared start (no error).")

    show_result = show_check
