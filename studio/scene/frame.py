"""One frame of a roll-out into the views' particle scenes, by layout.

Layouts (the views offer the first two, the video export all four):

* ``side``: the ground truth in ``scenes["truth"]``, the prediction in
  ``scenes["prediction"]`` (two views, one camera);
* ``overlay``: one view (``scenes["truth"]``), ground truth as rings, the
  prediction as opaque spheres (:meth:`ParticleScene.set_overlay`);
* ``truth`` / ``prediction``: one run alone in its own scene.

The live views and the export both call :func:`show_frame`.
"""
from __future__ import annotations

from .colouring import Colouring

LAYOUTS = ("side", "overlay", "truth", "prediction")


def runs_shown(layout: str, with_prediction: bool) -> tuple[str, ...]:
    """The runs a layout draws (and whose values set a colour range)."""
    if not with_prediction:
        return ("truth",)
    return {"truth": ("truth",), "prediction": ("prediction",)}.get(layout, ("truth", "prediction"))


def show_frame(scenes: dict, buffer, f: int, layout: str, colouring: Colouring) -> None:
    """Put frame ``f`` of ``buffer`` (a RolloutBuffer) into ``scenes``
    (name -> ParticleScene) as ``layout`` draws it, coloured by ``colouring``."""
    b = buffer
    q = b.q
    pred = b.with_prediction
    if layout == "overlay":
        sc = scenes["truth"]
        sc.set_overlay(pred)
        if pred:
            sc.show(q["truth"][f], colouring.colours("truth", f), q["prediction"][f],
                    colouring.colours("prediction", f))
        else:
            sc.show(q["truth"][f], colouring.colours("truth", f))
        return
    for which in runs_shown(layout, pred):
        sc = scenes.get(which)
        if sc is not None:
            sc.set_overlay(False)
            sc.show(q[which][f], colouring.colours(which, f))
