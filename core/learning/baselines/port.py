"""The gradient-trained baseline of issue 13: the same HGN with learnable damping and forcing, trained by a
torch optimizer (Adam by default) on the derivative loss (docs/port_hamiltonian.md section 8).

For snapshots (q, p, dq/dt, dp/dt, t) of a port-Hamiltonian system the loss is the mean squared error of

    dq/dt = dH/dp
    dp/dt = -dH/dq - gamma (dq/dt)_obs + F(t)

over both halves, every particle and coordinate (the rows of :func:`core.learning.rfhgn.port.fit_port`,
with the same terms: the damping acts on the **observed** velocity). The terms are those of a
:class:`core.learning.rfhgn.port.PortSpec` (default: the data's own, ``PortSpec.from_system``):

* damping: one gamma ("uniform") or one per particle ("per-particle"), kept >= 0 as
  gamma = softplus(g) (starting at :data:`GAMMA_START`);
* forcing: for every candidate node i, axis j and given angular frequency w, the amplitudes c_ij, s_ij of
  cos(w t) e_ij and sin(w t) e_ij (starting at 0);
* field: a constant acceleration g (F = m g, starting at 0).

They are trained together with every layer of the network (``BaselineConfig.port_learning_rate``: their
own learning rate, by default 10x the network's; one group for optimizers that take one). The trained
model is a :class:`~core.learning.baselines.model.TrainedHGN` whose ``info["port"]`` holds the learned
coefficients in the layout of ``fit_port``'s (:func:`core.learning.rfhgn.port.identified`), so
``python -m core info MODEL --json``, :func:`~core.learning.rfhgn.port.identified_port`,
:func:`~core.learning.rfhgn.port.rollout_port` and :func:`~core.learning.rfhgn.port.port_derivative_mse`
treat both kinds of model alike; ``info["port_history"]`` holds [epoch, training clock, mean damping] rows.

Not built: a multi-step (K-step roll-out) loss; the loss is the one-step derivative loss only.
"""
from __future__ import annotations

from core.errors import HGNError
from .port_terms import GAMMA_START

__all__ = ["GAMMA_START", "fit_port_baseline"]


def fit_port_baseline(dataset, config=None, spec=None, progress=None, cancel=None):
    """Train the baseline port model (module notes) on the training snapshots of ``dataset`` with
    ``config`` (a :class:`~core.learning.baselines.config.BaselineConfig`; default Adam) and the port
    terms ``spec`` (default: the data's own; a uniform damping when the data carry none). Returns a
    TrainedHGN with ``info["port"]``."""
    from core.learning.rfhgn.port import PortSpec
    from .training import fit

    if spec is None:
        spec = PortSpec.from_system(dataset.system)
        if spec.damping == "none" and not spec.frequencies and not spec.field:
            spec = PortSpec("uniform")
    if not isinstance(spec, PortSpec):
        raise HGNError(f"spec must be a PortSpec, got {type(spec).__name__}")
    return fit(dataset, config, progress, cancel, port=spec)
