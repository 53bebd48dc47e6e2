"""Plumbing shared by the learned Hamiltonians (RF-HGN and the gradient-trained
baselines).

:class:`core.learning.rfhgn.model.FittedModel` and
:class:`core.learning.baselines.model.TrainedHGN` differ in how they evaluate
H_hat = theta . Phi + c * size / size_ref (numpy features or a torch module),
but check their arguments, scale the constant c to other system sizes, turn
gradients into time derivatives and report their info the same way. That common
part lives here, in :class:`LearnedHamiltonian`, a base class holding no state
of its own; a subclass sets ``constant``, ``n_ref``, ``e_ref``,
``train_system`` and ``info`` with :meth:`LearnedHamiltonian._set_reference`
and provides ``separable`` and ``gradients(system, q, p, pairs=None, ...)``.
"""
from __future__ import annotations

import numpy as np

from core.errors import HGNError
from core.physics.system import System


class LearnedHamiltonian:
    """Base of the learned models: argument checks, the size-scaled constant,
    ``time_derivatives`` and the separable-only guard."""

    #: how the subclass was made ("fitted", "trained"), for error messages
    made = "fitted"

    def _set_reference(self, constant: float, n_ref: int, train_system: System | None, info: dict | None,
                       e_ref: int | None) -> None:
        """Store the constant and the sizes of the system it was fixed on."""
        self.constant = float(constant)
        self.n_ref = int(n_ref)
        #: edges of the system the constant was fixed on (None: not a fixed graph)
        if e_ref is None and train_system is not None and train_system.edges is not None:
            e_ref = len(train_system.edges)
        self.e_ref = None if e_ref is None else int(e_ref)
        self.train_system = train_system
        self.info: dict = dict(info or {})

    def _check(self, system: System, x, name: str = "q") -> np.ndarray:
        """``x`` as float64 (N, d) or (S, N, d) for ``system``, or HGNError."""
        if not isinstance(system, System):
            raise HGNError(f"a model needs the System to evaluate on, got {type(system).__name__}")
        if self.train_system is not None and system.dim != self.train_system.dim:
            raise HGNError(f"this model was {self.made} on a {self.train_system.dim}D system and cannot "
                           f"evaluate a {system.dim}D one")
        x = np.asarray(x, dtype=np.float64)
        if x.ndim not in (2, 3) or x.shape[-2:] != (system.n, system.dim):
            raise HGNError(f"{name} must have shape (N, d) = ({system.n}, {system.dim}) or (S, N, d), got {x.shape}")
        return x

    def _const(self, system: System) -> float:
        """The constant c scaled to ``system``: per edge for separable models on
        fixed graphs (E / E_ref), per particle otherwise (N / N_ref)."""
        if self.separable and self.e_ref and system.edges is not None:
            return self.constant * len(system.edges) / self.e_ref
        return self.constant * system.n / max(self.n_ref, 1)

    def time_derivatives(self, system: System, q, p, pairs=None, **options):
        """(dq/dt, dp/dt) = (dH/dp, -dH/dq); ``options`` go to ``gradients``
        (e.g. ``exact=True`` for an RF-HGN)."""
        gq, gp = self.gradients(system, q, p, pairs, **options)
        return gp, -gq

    def _need_separable(self, what: str) -> None:
        if not self.separable:
            raise HGNError(f"{what} exists only for separable models (the invariant encoding); "
                           "this one uses the frame encoding: use gradients()")


def plain_info(x):
    """``x`` with numpy scalars and arrays turned into plain Python numbers and
    lists (dict keys as strings), for the JSON ``info`` of a model file."""
    if isinstance(x, dict):
        return {str(k): plain_info(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain_info(v) for v in x]
    if isinstance(x, np.ndarray):
        return plain_info(x.tolist())
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, (np.floating, float)):
        return float(x)
    return x


def training_arrays(dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(train, q, p, dqdt, dpdt)`` of a Dataset's training snapshots:
    ``train`` the int64 indices, the others float64 (n_train, N, d) copies;
    HGNError when it is not a Dataset, has no (or out-of-range) training
    indices, or its arrays have the wrong shape or hold NaN/inf."""
    from core.physics.trajectory import Dataset

    if not isinstance(dataset, Dataset):
        raise HGNError(f"fit needs a Dataset, got {type(dataset).__name__}")
    train = np.asarray(dataset.train, dtype=np.int64).reshape(-1)
    if train.size == 0:
        raise HGNError("the dataset has no training snapshots")
    S = dataset.n_snapshots
    if train.min() < 0 or train.max() >= S:
        raise HGNError(f"training indices must lie in 0..{S - 1}")
    shape = (S, dataset.system.n, dataset.system.dim)
    return (train,) + tuple(_checked(getattr(dataset, name), shape, name)[train]
                            for name in ("q", "p", "dqdt", "dpdt"))


def _checked(x, shape, name):
    x = np.asarray(x, dtype=np.float64)
    if x.shape != shape:
        raise HGNError(f"dataset {name} has shape {x.shape}, expected {shape}")
    if not np.all(np.isfinite(x)):
        raise HGNError(f"dataset {name} contains NaN or inf")
    return x
