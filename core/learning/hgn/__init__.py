"""The Hamiltonian graph network, defined once, in torch (issue 10; docs/method.md section 2).

One network module serves every use: the RF-HGN fit samples its hidden
layers and solves for the output layer (core.learning.rfhgn), the baselines
train every layer (core.learning.baselines), and learned models evaluate and
roll out through it (core.learning.learned, core.learning.stepper).

Modules:

* ``device`` -- :func:`device.resolve_device` ("cpu", "cuda", "cuda:N"; a
  clear :class:`core.errors.HGNError` when CUDA is asked for and absent) and
  :func:`device.torch_threads` (torch's intra-op threads for a block).
* ``graph`` -- :class:`graph.Graph`, the edges of a batch of snapshots on a
  device (fixed graphs, cutoff pairs, periodic images).
* ``frame`` -- the paper's centre-of-mass frame in torch and its exact adjoint.
* ``network`` -- :class:`network.HGN` (torch.nn.Module): features, analytic
  Jacobians (the fit's hot path), analytic reverse-mode gradients, and the
  per-pair and kinetic functions of the separable encoding.

This ``__init__`` imports no torch (the studio's window reads the constants
below through RFConfig without importing torch); import the modules.
"""
from __future__ import annotations

#: |x_a| must exceed this times max(1, max_i |x_i|) to define e_1 (frame encoding)
CENTRE_TOLERANCE = 1e-12
#: the orthogonal part of x_b must exceed this times |x_b| to define e_2 (3D frame)
COLLINEAR_TOLERANCE = 1e-6
#: orderings of the particles that pick the frame (see ``frame``)
FRAME_RULES = ("farthest", "nearest")
#: the rule a frame network uses unless told otherwise; "nearest" is the paper's
DEFAULT_FRAME_RULE = "farthest"
#: the encodings of the network
ENCODINGS = ("invariant", "frame")
#: hidden layers of each encoding, in sampling order
LAYERS = {"invariant": ("kin", "static", "edge", "msg"), "frame": ("node", "edge", "msg")}
