"""Plumbing shared by the learned Hamiltonians (RF-HGN and the gradient-trained
baselines), and their one evaluation path.

:class:`LearnedHamiltonian` (no state of its own) checks arguments, scales the
constant c to other system sizes, turns gradients into time derivatives and
guards the separable-only methods; a subclass sets ``constant``, ``n_ref``,
``e_ref``, ``train_system`` and ``info`` with
:meth:`LearnedHamiltonian._set_reference`.

:class:`NetworkHamiltonian` is the learned model whose H_hat = theta . Phi + c
* size / size_ref comes from a torch network, ``self.network``
(:class:`core.learning.hgn.network.HGN`, theta inside it): energies and
gradients with numpy in and out (float64; (N, d) or (S, N, d)), evaluated on
the network's device and dtype. :class:`core.learning.rfhgn.model.FittedModel`
and :class:`core.learning.baselines.model.TrainedHGN` subclass it, so both
evaluate the same way. Torch is imported when a method runs (this module is
imported by the studio's window, which never imports torch).
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


class NetworkHamiltonian(LearnedHamiltonian):
    """A learned model evaluated through its network ``self.network`` (an HGN
    with theta set); numpy in and out. A subclass sets ``network`` and calls
    :meth:`_set_reference`."""

    network = None

    @property
    def separable(self) -> bool:
        """True when H = T(p) + V(q) (the invariant encoding)."""
        return bool(self.network.separable)

    @property
    def theta(self) -> np.ndarray:
        """The output layer, numpy float64 (a copy)."""
        return self.network.theta.detach().to("cpu", dtype=_float64()).numpy().copy()

    @property
    def device(self):
        return self.network.device

    def _tensor(self, x):
        import torch

        return torch.as_tensor(x, dtype=self.network.dtype, device=self.network.device)

    def _batch(self, system, q, p=None):
        """Checked batches (S, N, d) as tensors on the network's device, and
        whether the input was one state."""
        q = self._check(system, q)
        single = q.ndim == 2
        qb = self._tensor(q[None] if single else q)
        if p is None:
            return qb, None, single
        p = self._check(system, p, "p")
        if p.shape != q.shape:
            raise HGNError(f"q and p differ in shape: {q.shape} and {p.shape}")
        return qb, self._tensor(p[None] if single else p), single

    def _graph(self, system, qb, pairs=None):
        from core.learning.hgn.graph import Graph

        return Graph.build(system, qb, pairs, device=self.network.device, dtype=self.network.dtype)

    @staticmethod
    def _out(x, single):
        if x is None:
            return None
        a = x.detach().to("cpu").numpy().astype(np.float64, copy=False)
        return a[0] if single else a

    # -- whole H ---------------------------------------------------------
    def energy(self, system: System, q, p, pairs=None) -> np.ndarray:
        """H_hat: 0-d array for one state (N, d), (S,) for a batch. ``pairs``:
        optional candidate pairs of a cutoff system (see potential_gradient)."""
        import torch

        qb, pb, single = self._batch(system, q, p)
        with torch.no_grad():
            e = self.network(self._graph(system, qb, pairs), qb, pb)
        return self._out(e, single) + self._const(system)

    def gradients(self, system: System, q, p, pairs=None) -> tuple[np.ndarray, np.ndarray]:
        """(dH/dq, dH/dp), each the shape of q."""
        qb, pb, single = self._batch(system, q, p)
        _, gq, gp = self.network.gradients(self._graph(system, qb, pairs), qb, pb, energy=False)
        return self._out(gq, single), self._out(gp, single)

    # -- separable parts ---------------------------------------------------
    def kinetic_energy(self, system: System, p) -> np.ndarray:
        """T_hat(p) (without the constant): 0-d for one state, (S,) for a batch."""
        self._need_separable("kinetic_energy")
        pb, _, single = self._batch(system, p)
        net = self.network
        T, _ = net.kinetic_part(self._tensor(system.masses), pb, net.theta.detach()[net.p_cols])
        return self._out(T, single)

    def kinetic_gradient(self, system: System, p) -> np.ndarray:
        """dT_hat/dp, the shape of p."""
        self._need_separable("kinetic_gradient")
        pb, _, single = self._batch(system, p)
        net = self.network
        _, g = net.kinetic_part(self._tensor(system.masses), pb, net.theta.detach()[net.p_cols], energy=False)
        return self._out(g, single)

    def potential_energy(self, system: System, q, pairs=None) -> np.ndarray:
        """V_hat(q) (without the constant): 0-d for one state, (S,) for a batch."""
        self._need_separable("potential_energy")
        return self._potential(system, q, pairs, True)[0]

    def potential_gradient(self, system: System, q, pairs=None) -> np.ndarray:
        """dV_hat/dq, the shape of q. ``pairs`` (cutoff systems, optional):
        candidate pairs (P, 2) shared by the snapshots, e.g. from a
        :class:`core.physics.neighbours.NeighbourList`; without them the pairs are
        searched afresh."""
        self._need_separable("potential_gradient")
        return self._potential(system, q, pairs, False)[1]

    def _potential(self, system, q, pairs, energy):
        import torch

        qb, _, single = self._batch(system, q)
        net = self.network
        with torch.no_grad():
            V, g = net.potential_part(self._graph(system, qb, pairs), qb, net.theta.detach()[net.q_cols], energy)
        return self._out(V, single), self._out(g, single)


def _float64():
    import torch

    return torch.float64


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
