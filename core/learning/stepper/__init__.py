"""A learned Hamiltonian prepared for repeated evaluation on one system, on one
device and in one precision: what a roll-out calls every step.

:func:`make_stepper` (``model, system, device="cpu", dtype=torch.float64``)
returns a :class:`Stepper` whose methods take and return torch tensors (N, d)
on that device:

* ``potential(q) -> dV/dq`` and ``kinetic(p) -> dT/dp`` (separable models),
* ``both(q, p) -> (dH/dq, dH/dp)`` (any model),
* ``energy(q, p) -> float`` (H_hat with the model's size-scaled constant, for
  saved frames).

The kind of stepper, chosen by :func:`make_stepper` (``factory.py``):

* separable (invariant) networks -> :class:`TableStepper` (``table_stepper.py``:
  pair and kinetic functions from the cubic Hermite tables of ``tables.py``,
  per-step buffers and sparse scatters of ``workspace.py``);
* non-separable networks (the frame encoding) on fixed graphs ->
  :class:`NetworkStepper` (``network_stepper.py``);
* anything else -> :class:`ModelStepper` (``model_stepper.py``).

The base class :class:`Stepper`, :func:`resolve_device` and
:func:`resolve_precision` are in ``base.py``. Each module's docstring explains
its part.

Precision: ``dtype=torch.float32`` halves memory and traffic; tables are
built in float64 and rounded. Measured: the largest position difference
between a float32 and a float64 roll-out after 1000 steps of dt 0.01 (sd 0.1
displacements and momenta) is 4.6e-6 to 4.9e-5 on 3x3x3, 1.0e-5 on 12^3 and
2.4e-4 on 47^3 (the largest over 103,823 particles; float32 roundings, ~1e-7
relative per step, accumulate along the orbit), against 7.5e-3 and 1.2e-2
for the float64 roll-out against ground truth on the same runs
(tests/core/test_stepper.py, benchmarks/results/torch_core.md). float32 is
allowed only for separable (table) steppers; ``FLOAT32_BOUND`` = 1e-3 is the
tested bound.
"""
from core.learning.stepper.base import FLOAT32_BOUND, PRECISIONS, Stepper, resolve_device, resolve_precision
from core.learning.stepper.factory import make_stepper
from core.learning.stepper.model_stepper import ModelStepper
from core.learning.stepper.network_stepper import NetworkStepper
from core.learning.stepper.table_stepper import BATCH_ELEMENTS, EVALUATIONS, TableStepper, evaluate
from core.learning.stepper.tables import (KINETIC_MIN_RANGE, KINETIC_RANGE_FACTOR, TABLE_MAX_CLASSES, TABLE_MAX_KNOTS,
                                          TABLE_MIN_KNOTS, TABLE_RANGE_FACTOR, TABLE_TOLERANCE, HermiteTable,
                                          InvariantFunctions, hermite_cells)
from core.learning.stepper.workspace import SCATTERS, Workspace

__all__ = [
    "BATCH_ELEMENTS", "EVALUATIONS", "FLOAT32_BOUND", "KINETIC_MIN_RANGE", "KINETIC_RANGE_FACTOR", "PRECISIONS",
    "SCATTERS", "TABLE_MAX_CLASSES", "TABLE_MAX_KNOTS", "TABLE_MIN_KNOTS", "TABLE_RANGE_FACTOR", "TABLE_TOLERANCE",
    "HermiteTable", "InvariantFunctions", "ModelStepper", "NetworkStepper", "Stepper", "TableStepper", "Workspace",
    "evaluate", "hermite_cells", "make_stepper", "resolve_device", "resolve_precision",
]
