"""Learning: the RF-HGN network and fit (``rfhgn``), the gradient-trained
baselines (``baselines``), learned roll-outs and the measures that compare a
learned model with ground truth. Imports ``core.physics`` and the base
modules (models save through :mod:`core.container`), never ``core.files`` or
``core.cli``."""
