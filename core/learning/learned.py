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

Fast path (separable models with ``config.fast_tables``): ``potential_gradient``,
``potential_energy``, ``kinetic_gradient``, ``kinetic_energy`` (and so
``gradients``, ``energy``, ``time_derivatives``) read the pair and kinetic
functions from the checked cubic Hermite tables of
:class:`core.learning.stepper.TableStepper` (the roll-out's tables: one
implementation), on a stepper cached per system (a few systems; rebuilt when
the network's weights or the training ranges in ``info`` change), numpy in and out. The tables match the exact
network to ``core.learning.stepper.TABLE_TOLERANCE`` (1e-10) of max |f'| at
their cell midpoints and are never used outside their range (the exact
network is evaluated there); a function too sharp to tabulate is evaluated
exactly. ``exact=True`` bypasses the tables.
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

    def _check_state(self, system, q, p):
        """(q, p) checked for ``system`` and of the same shape."""
        q = self._check(system, q)
        p = self._check(system, p, "p")
        if p.shape != q.shape:
            raise HGNError(f"q and p differ in shape: {q.shape} and {p.shape}")
        return q, p

    def _batch(self, system, q, p=None):
        """Checked batches (S, N, d) as tensors on the network's device, and
        whether the input was one state."""
        if p is None:
            q = self._check(system, q)
        else:
            q, p = self._check_state(system, q, p)
        single = q.ndim == 2
        qb = self._tensor(q[None] if single else q)
        if p is None:
            return qb, None, single
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

    # -- the fast path (tables) ---------------------------------------------
    def _table_stepper(self, system: System, exact: bool, part: str):
        """The cached :class:`core.learning.stepper.TableStepper` of ``system``
        when the fast path applies to ``part`` ("pair" or "kinetic"), else None."""
        if exact or not self.separable or not bool(getattr(getattr(self, "config", None), "fast_tables", False)):
            return None
        import threading

        import torch

        from .stepper import TableStepper, make_stepper

        net = self.network
        # what the tables depend on: the weights (their version counters) and the ranges in info
        stamp = ((id(net), self.info.get("train_r_max"), self.info.get("train_k_max"))
                 + tuple((t.data_ptr(), t._version) for t in (*net.parameters(), *net.buffers())))
        cache = self.__dict__.setdefault("_steppers", {})
        hit = cache.get(id(system))
        if hit is None or hit[0] is not system or hit[1] != stamp:
            st = make_stepper(self, system, net.device, torch.float64, exact=False)
            if len(cache) >= 4:
                cache.pop(next(iter(cache)))
            hit = cache[id(system)] = (system, stamp, st, threading.Lock())
        st = hit[2]
        if not isinstance(st, TableStepper) or (st.pair_table if part == "pair" else st.kin_table) is None:
            return None
        return hit

    def _fast(self, system: System, x, what: str, exact: bool):
        """``what`` (see core.learning.stepper.EVALUATIONS) at x through the
        tables, or None where they do not apply."""
        hit = self._table_stepper(system, exact, "pair" if what.startswith("potential") else "kinetic")
        if hit is None:
            return None
        from .stepper import evaluate

        with hit[3]:  # the stepper's workspaces are shared: one evaluation at a time
            out = evaluate(hit[2], what, x)
        # not finite (two particles on top of each other, overflow): the exact path says what is wrong
        return out if np.isfinite(out).all() else None

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_steppers", None)  # tables and locks are rebuilt where the copy is used
        return state

    # -- whole H ---------------------------------------------------------
    def energy(self, system: System, q, p, pairs=None, exact: bool = False) -> np.ndarray:
        """H_hat: 0-d array for one state (N, d), (S,) for a batch. ``pairs``:
        optional candidate pairs of a cutoff system (see potential_gradient);
        ``exact``: bypass the fast tables."""
        import torch

        if self._table_stepper(system, exact, "pair") is not None:
            q, p = self._check_state(system, q, p)
            return (self.kinetic_energy(system, p) + self.potential_energy(system, q, pairs)
                    + self._const(system))
        qb, pb, single = self._batch(system, q, p)
        with torch.no_grad():
            e = self.network(self._graph(system, qb, pairs), qb, pb)
        return self._out(e, single) + self._const(system)

    def gradients(self, system: System, q, p, pairs=None, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(dH/dq, dH/dp), each the shape of q; ``exact``: bypass the fast tables."""
        if self._table_stepper(system, exact, "pair") is not None:
            q, p = self._check_state(system, q, p)
            return self.potential_gradient(system, q, pairs), self.kinetic_gradient(system, p)
        qb, pb, single = self._batch(system, q, p)
        _, gq, gp = self.network.gradients(self._graph(system, qb, pairs), qb, pb, energy=False)
        return self._out(gq, single), self._out(gp, single)

    # -- separable parts ---------------------------------------------------
    def kinetic_energy(self, system: System, p, exact: bool = False) -> np.ndarray:
        """T_hat(p) (without the constant): 0-d for one state, (S,) for a batch."""
        self._need_separable("kinetic_energy")
        fast = self._fast(system, self._check(system, p, "p"), "kinetic_energy", exact)
        if fast is not None:
            return fast
        return self._kinetic(system, p, True)

    def kinetic_gradient(self, system: System, p, exact: bool = False) -> np.ndarray:
        """dT_hat/dp, the shape of p."""
        self._need_separable("kinetic_gradient")
        fast = self._fast(system, self._check(system, p, "p"), "kinetic_gradient", exact)
        if fast is not None:
            return fast
        return self._kinetic(system, p, False)

    def potential_energy(self, system: System, q, pairs=None, exact: bool = False) -> np.ndarray:
        """V_hat(q) (without the constant): 0-d for one state, (S,) for a batch."""
        self._need_separable("potential_energy")
        fast = self._fast(system, self._check(system, q), "potential_energy", exact)
        if fast is not None:
            return fast
        return self._potential(system, q, pairs, True)[0]

    def potential_gradient(self, system: System, q, pairs=None, exact: bool = False) -> np.ndarray:
        """dV_hat/dq, the shape of q. ``pairs`` (cutoff systems, optional):
        candidate pairs (P, 2) shared by the snapshots, e.g. from a
        :class:`core.physics.neighbours.NeighbourList`; without them the pairs are
        searched afresh (the fast path keeps its own neighbour list and does
        not need them). ``exact``: bypass the fast tables."""
        self._need_separable("potential_gradient")
        fast = self._fast(system, self._check(system, q), "potential_gradient", exact)
        if fast is not None:
            return fast
        return self._potential(system, q, pairs, False)[1]

    def _kinetic(self, system, p, energy):
        """T_hat (``energy``) or dT_hat/dp from the exact network."""
        pb, _, single = self._batch(system, p)
        net = self.network
        T, g = net.kinetic_part(self._tensor(system.masses), pb, net.theta.detach()[net.p_cols], energy=energy)
        return self._out(T if energy else g, single)

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


def stored_settings(config_cls, stored, name: str):
    """``config_cls.from_dict(stored)``: the settings stored in a model file,
    or HGNError naming the file (``name``) and what was wrong with them."""
    try:
        return config_cls.from_dict(stored)
    except HGNError as exc:
        raise HGNError(f"{name}: the stored settings are invalid: {exc}") from None
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
        raise HGNError(f"{name}: the stored settings are invalid ({type(exc).__name__}: {exc})") from None


def train_system_of(header: dict, arrays: dict, name: str):
    """The training system stored in a model file's ``header`` and arrays
    (prefixed ``train_system.``), checked (:func:`core.schema.check_system_part`,
    its dimension against the header's ``dim``); None when the file has none.
    Torch-free: the studio's window checks model files with it too."""
    from core.schema import check_system_part

    if "train_system" not in header:
        return None
    sys_arrays = check_system_part(header["train_system"], arrays, "train_system.", name, "train_system")
    if header["train_system"]["dim"] != header["dim"]:
        raise HGNError(f"{name}: header field 'dim' is {header['dim']} but the training system is "
                       f"{header['train_system']['dim']}D")
    try:
        return System.from_header_and_arrays(header["train_system"], sys_arrays)
    except HGNError as exc:
        raise HGNError(f"{name}: invalid training system: {exc}") from None
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
        raise HGNError(f"{name}: invalid training system ({type(exc).__name__}: {exc})") from None


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
    train, *arrays = training_source(dataset)
    return (train,) + tuple(np.asarray(x[train], dtype=np.float64) for x in arrays)


def training_source(dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """As :func:`training_arrays` but without copies: ``(train, q, p, dqdt,
    dpdt)`` with the dataset's own (S, N, d) arrays (every snapshot, any
    real dtype; the training snapshots are ``x[train]``), checked chunk by
    chunk so that the check's temporaries stay small (the fit streams the
    training snapshots batch by batch from them)."""
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
    return (train,) + tuple(_checked(getattr(dataset, name), shape, name) for name in ("q", "p", "dqdt", "dpdt"))


#: elements per chunk of the finiteness check of :func:`training_source`
CHECK_CHUNK = 1 << 18


def _checked(x, shape, name):
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        x = np.asarray(x, dtype=np.float64)
    if x.shape != shape:
        raise HGNError(f"dataset {name} has shape {x.shape}, expected {shape}")
    if x.dtype.kind == "f":
        step = max(1, CHECK_CHUNK // max(1, x[:1].size))
        for a in range(0, len(x), step):
            if not np.isfinite(x[a:a + step]).all():
                raise HGNError(f"dataset {name} contains NaN or inf")
    return x
