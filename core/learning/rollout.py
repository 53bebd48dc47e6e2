"""Rollouts of a learned Hamiltonian (docs/method.md section 6).

A fitted model (``core.learning.rfhgn.FittedModel``, or anything with the same
interface such as ``core.learning.rfhgn.TrueHamiltonian``) is integrated with
Stoermer-Verlet on any system of the kind it was fitted for, of any size: the
``system`` passed in supplies the graph (its edges, or its cutoff and box).

Two integrators, both symplectic, time-reversible and second order:

* **explicit** Stoermer-Verlet for a separable H = T(p) + V(q)
  (``model.separable`` true)::

      p_{1/2} = p_n - dt/2 dV/dq(q_n)
      q_{n+1} = q_n + dt dT/dp(p_{1/2})
      p_{n+1} = p_{1/2} - dt/2 dV/dq(q_{n+1})

  one potential gradient and one kinetic gradient per step (the potential
  gradient at the end of a step is reused at the start of the next). With
  the true Hamiltonian (dT/dp = p/m) this is exactly the ground-truth
  velocity Verlet of ``core.physics.integrators``.

* the **generalised leapfrog** (Stoermer-Verlet for non-separable H) for
  everything else::

      p_{1/2} = p_n - dt/2 H_q(q_n, p_{1/2})                       (implicit)
      q_{n+1} = q_n + dt/2 [H_p(q_n, p_{1/2}) + H_p(q_{n+1}, p_{1/2})]  (implicit)
      p_{n+1} = p_{1/2} - dt/2 H_q(q_{n+1}, p_{1/2})

  Each implicit stage is solved by fixed-point iteration until the largest
  change of an iterate is at most ``tol * (1 + max|iterate|)``
  (``FIXED_POINT_TOL``), with at most ``max_iter`` evaluations
  (``FIXED_POINT_MAX_ITER``). A stage that does not converge raises
  :class:`~core.errors.HGNError` naming the step and the remaining change
  (``on_no_convergence="error"``, the default) or warns once and goes on
  (``"warn"``; the number of unconverged stages is kept in
  ``meta["unconverged_stages"]``). Fixed-point iteration converges when
  dt times the stiffness of H is small; the remedy is a smaller dt. The
  gradients used inside the iteration are those at the previous iterate, so
  the symplectic and reversible structure holds to the tolerance.

Cutoff systems: the interacting pairs change as particles move. The rollout
keeps a Verlet neighbour list with a skin (``core.physics.neighbours.NeighbourList``)
and hands its candidate pairs to the model (``pairs=`` keyword, for models
whose methods accept it; pairs farther apart than the cutoff are the model's
to ignore), so no step does an O(N^2) or even a fresh k-d tree search.

Energies: the returned :class:`~core.physics.trajectory.Trajectory` carries the TRUE
kinetic and potential energy (``core.physics.forces``) along the predicted path, so
its energy drift and Herr (``core.learning.metrics``) compare like with like with a
ground-truth run. The learned H_hat along the path is kept as a list in
``meta["learned_energy"]`` (one value per saved frame; JSON-able, so it goes
into files with the trajectory). ``label`` is the model's name.

Extrapolation check: a fitted model is only known on the pair distances
of its training data. When the model reports the largest one
(``model.info["train_r_max"]``, and ``"train_r_min"`` if present), the
rollout measures the pair distances of every saved frame and keeps their
range in ``meta["pair_distance_range"]``; if it leaves the training range,
``meta["outside_training_range"]`` is true and a
:class:`RolloutExtrapolationWarning` says when and how far (once per
rollout; ``meta["training_range_left"]`` keeps the step, time, value and
bound). A start state that is already outside the range is reported as the
start ("the initial state already has ..."), not as a step the roll-out
took; steps count from the start of the whole run (``t0``). The rollout
goes on: whether the model still holds there is for the caller to judge
(it often does not: a bond stretched beyond anything seen can break).
The kinetic features are known up to the largest kinetic energy of one
particle in the training data (``model.info["train_k_max"]``): a saved
frame with a particle above it is reported the same way (quantity
"particle kinetic energy"; ``meta["particle_kinetic_energy_max"]`` and
``meta["training_particle_kinetic_energy_max"]``); the warning names
whichever range the roll-out left first.

Divergence: a roll-out that blows up is stopped and marked, not written as
numbers. It has diverged when a learned gradient, a state or an energy
becomes NaN or infinite, or when the TRUE energy along the predicted path
moves from its start by more than ``core.physics.integrators.ENERGY_ERROR_LIMIT``
times the energy scale max(K(0) + |V(0)|, the system's own energy scale
``core.physics.simulate.energy_floor``) (checked at every saved frame; the
bound and why are in ``core.physics.integrators``: a learned model that
conserves its H_hat and is anywhere near the truth never gets there, one that
left its training range and broke does). With ``on_divergence="stop"`` (the
default) the trajectory returned holds the frames before the divergence and
``meta["diverged"] = {"step", "t", "reason", "frames"}`` (the step and time
at which it was detected, why, and the frames kept); :attr:`Trajectory.diverged
<core.physics.trajectory.Trajectory.diverged>` reads it, and it is saved in
the file's header with the trajectory's meta. ``on_divergence="error"``
raises :class:`~core.errors.HGNError` instead (the message is the reason).
A roll-out continued in chunks passes ``energy_reference`` = the first
chunk's ``meta["energy_reference"]`` ([H(0), scale]) so that every chunk
measures against the same start and the chunks decide as one run.

Damping and forcing (a model's "port", issue 13; ``core.learning.rfhgn.port``):
a model that identified damping and forcing (``model.info["port"]``) rolls
out with them, carried to the system rolled out on (:func:`carried_port`),
unless ``port=`` says otherwise. The step is then ground truth's Strang
splitting (:func:`port_step`; separable models only, others are refused),
the divergence check measures the energy balance as ground truth does, and
the trajectory's system carries the port. A Hamiltonian model rolls out as
before.

Periodic boxes: positions are integrated and saved unwrapped, as in the
ground truth (``core.physics.integrators``).

Device and precision: the integrator loop runs on torch tensors on
``device`` ("cpu" or "cuda") in ``precision`` ("float64" or "float32"), with
the model prepared once by :func:`core.learning.stepper.make_stepper`
(fitted invariant networks: the fixed edge list or the neighbour list's
candidates on the device, the pair and kinetic functions from checked
Hermite tables; other models through their own numpy methods). States are
copied to numpy only at saved frames; the true energies and the range check
run there, in float64. float32 is allowed only for separable (invariant)
models; measured (tests/core/test_stepper.py, benchmarks/bench_torch_core.py):
the largest position difference between float32 and float64 roll-outs after
1000 steps of dt 0.01 is 5e-6 to 5e-5 on 3x3x3 and 2.4e-4 on 47^3
(``core.learning.stepper.FLOAT32_BOUND`` = 1e-3 is the tested bound), against
~1e-2 for the float64 roll-out against ground truth on the same runs.

Job protocol (``core.jobs``): progress stage "rollout", reported at most
every ``PROGRESS_INTERVAL`` s; ``cancel`` is checked before every step and
every fixed-point iteration; ``on_frame`` receives a
:class:`core.physics.integrators.Frame` (with true energies) for every saved frame.
"""
from __future__ import annotations

import math
import time
import warnings

import numpy as np

from core.errors import HGNError
from core.physics.forces import DEFAULT_SKIN, ForceField
from core.physics.integrators import (ENERGY_ERROR_LIMIT, Frame, FrameFn, check_run_memory, check_run_settings,
                                      check_run_time, energy_scale, n_saved_frames)
from core.jobs import CancelLike, ProgressFn, check_cancel, report
from core.physics.port import Drive, Port
from core.physics.system import System
from core.physics.trajectory import Trajectory

#: relative tolerance of the fixed-point iterations of the implicit stages
FIXED_POINT_TOL = 1e-12
#: evaluations allowed per implicit stage before giving up
FIXED_POINT_MAX_ITER = 50
#: seconds between two progress reports
PROGRESS_INTERVAL = 0.05
INTEGRATORS = ("auto", "explicit", "implicit")
#: what a diverged roll-out does: stop and mark the trajectory, or raise HGNError
DIVERGENCE_POLICIES = ("stop", "error")


#: torch threads of a roll-out unless told otherwise. Measured on the 2-core
#: development machine shared with other jobs (benchmarks/results/torch_core.md):
#: a learned step on 100^3 particles took 242 ms with one thread and 319 ms with
#: two (47^3: 17.5 ms either way), so one thread is the default; 0 uses every core.
ROLLOUT_THREADS = 1


def check_threads(threads) -> int:
    """``threads`` as a whole number >= 0, or HGNError."""
    from core import validate

    return validate.whole("roll-out threads (0 = every core)", threads, 0, validate.MAX_THREADS)


class RolloutConvergenceWarning(RuntimeWarning):
    """An implicit stage stopped at max_iter before reaching the tolerance."""


class RolloutExtrapolationWarning(RuntimeWarning):
    """The rollout reached pair distances outside the model's training data."""


def training_distance_range(model) -> tuple[float, float] | None:
    """(smallest, largest) pair distance of the model's training data, from
    ``model.info`` (``train_r_min`` defaults to 0), or None if unknown."""
    info = getattr(model, "info", None)
    if not isinstance(info, dict) or info.get("train_r_max") is None:
        return None
    try:
        hi = float(info["train_r_max"])
        lo = float(info.get("train_r_min", 0.0) or 0.0)
    except (TypeError, ValueError):
        return None
    return (lo, hi) if hi > 0 else None


def training_kinetic_max(model) -> float | None:
    """The largest kinetic energy of one particle, |p_i|^2 / (2 m_i), in the
    model's training data (``model.info["train_k_max"]``), or None if unknown."""
    info = getattr(model, "info", None)
    if not isinstance(info, dict) or info.get("train_k_max") is None:
        return None
    try:
        k = float(info["train_k_max"])
    except (TypeError, ValueError):
        return None
    return k if math.isfinite(k) and k > 0 else None


def model_name(model) -> str:
    """A short name for labels: ``model.name``, ``model.info["name"]``, or a
    description built from the model's configuration."""
    name = getattr(model, "name", None)
    if isinstance(name, str) and name:
        return name
    info = getattr(model, "info", None)
    if isinstance(info, dict) and isinstance(info.get("name"), str) and info["name"]:
        return info["name"]
    cfg = getattr(model, "config", None)
    if cfg is not None and hasattr(cfg, "sampler") and hasattr(cfg, "encoding"):
        return f"RF-HGN ({str(cfg.sampler).upper()}, {cfg.encoding})"
    if type(model).__name__ == "TrueHamiltonian":
        return "true Hamiltonian"
    return type(model).__name__


def _finite(x) -> bool:
    """All entries finite (numpy array or torch tensor), checked on their sum
    (one pass and one scalar: NaN and inf propagate; a finite array whose sum
    overflows has blown up anyway)."""
    return math.isfinite(float(x.sum()))


def _numpy(x) -> np.ndarray:
    """A saved state as a float64 numpy array (a view for a CPU float64 tensor)."""
    if isinstance(x, np.ndarray):
        return x
    return x.detach().cpu().double().numpy()


# ----------------------------------------------------------------------
# damping and forcing (a model's "port", issue 13; docs/port_hamiltonian.md)
# ----------------------------------------------------------------------
def identified_port(ident: dict) -> Port:
    """A :class:`~core.physics.port.Port` from identified coefficients (a model's ``info["port"]``, as
    :func:`core.learning.rfhgn.port.fit_port` and the port baseline write it): damping as identified
    (negative values clipped to 0), one Drive per frequency and node with the identified amplitude, phase
    and direction, the field."""
    g = ident.get("damping")
    damping = 0.0 if g is None else (np.clip(np.asarray(g, dtype=np.float64), 0.0, None)
                                     if isinstance(g, list) else max(float(g), 0.0))
    drives = []
    f = ident.get("forcing")
    if f:
        for wi, w in enumerate(f["frequencies"]):
            for ni, node in enumerate(f["nodes"]):
                a = f["amplitude"][wi][ni]
                if a > 0:
                    drives.append(Drive((node,), a, w, tuple(f["direction"][wi][ni]), f["phase"][wi][ni]))
    return Port(damping, tuple(drives), None if ident.get("field") is None else tuple(ident["field"]))


def carried_port(model, system: System) -> Port | None:
    """The damping and forcing a model rolls out with on ``system``: its identified ones (``info["port"]``)
    on its training system, carried to the corresponding particles of another lattice (a larger one,
    zero-shot: :func:`core.physics.port.transfer_port`), checked against ``system``; for a model without
    identified ones but a ``port_for(system)`` method (:class:`core.learning.rfhgn.TrueHamiltonian`: the
    system's own port), what it returns; None for models with neither. HGNError when the model carries no
    training system to map identified ones from."""
    from core.physics.port import transfer_port

    info = getattr(model, "info", None)
    ident = info.get("port") if isinstance(info, dict) else None
    if not isinstance(ident, dict):
        own = getattr(model, "port_for", None)  # a model of known dynamics (the true Hamiltonian): the system's own
        port = own(system) if callable(own) else None
        return None if port is None else port.check(system.n, system.dim)
    port = identified_port(ident)
    train = getattr(model, "train_system", None)
    if train is None:
        raise HGNError("this model identified damping and forcing but carries no training system to map "
                       "them from; roll it out on its training system")
    if not (train.n == system.n and np.array_equal(train.positions, system.positions)):
        port = transfer_port(port, train, system)
    return port.check(system.n, system.dim)


class PortFlow:
    """A port's terms on the roll-out's device and dtype: the exact damping flow over half a step
    (``decay``, (N, 1) or None), the external force F(t) (:meth:`external`, None when not forced), and the
    energy balance accumulated every step with the trapezoid rule on the injected power F(t).v and the
    dissipated power sum gamma |v|^2 (v = p/m), as ground truth does (``core.physics.integrators``); the
    sums stay on the device (no synchronisation per step) until :meth:`balance` reads them at a saved frame.

    F(t) is built on the device: the field's m g plus, per drive frequency w, cos(w t) C_w + sin(w t) S_w
    with C_w = sum A cos(phi) u and S_w = -sum A sin(phi) u over that frequency's drives (the same force
    as :meth:`core.physics.port.PortTerms.external`, to round-off)."""

    def __init__(self, port: Port, system: System, grads, dt: float, t0: float):
        import torch

        terms = port.terms(system.masses, system.dim)
        n, d = system.n, system.dim
        self.torch, self.dt, self.t0 = torch, dt, t0
        self.decay = grads.tensor(terms.decay(0.5 * dt)) if terms.damped else None
        self.forced = terms.forced
        self.inv_m = grads.tensor(1.0 / system.masses[:, None])
        self.gamma_inv_m2 = grads.tensor((terms.gamma / system.masses ** 2)[:, None]) if terms.damped else None
        self.constant = grads.tensor(terms.constant if terms.constant is not None else np.zeros((n, d)))
        by_w: dict[float, list] = {}
        for drive in port.drives:
            c, sn = by_w.setdefault(float(drive.frequency), [np.zeros((n, d)), np.zeros((n, d))])
            au = drive.amplitude * np.asarray(drive.unit, dtype=np.float64)
            c[list(drive.nodes)] += math.cos(drive.phase) * au
            sn[list(drive.nodes)] -= math.sin(drive.phase) * au
        self.waves = [(w, grads.tensor(c), grads.tensor(sn)) for w, (c, sn) in by_w.items()]
        self.sums = self.first = self.last = None  # sums of the powers over the step ends, the first, the last

    def external(self, step: int):
        """F(t0 + step dt) (N, d) on the device, or None without forcing."""
        if not self.forced:
            return None
        t = self.t0 + step * self.dt
        f = self.constant.clone()
        for w, c, sn in self.waves:
            f.add_(c, alpha=math.cos(w * t)).add_(sn, alpha=math.sin(w * t))
        return f

    def _power(self, p, fext):
        """(injected, dissipated) power at (p, F) as a (2,) tensor."""
        dot, flat = self.torch.dot, p.reshape(-1)
        zero = flat.new_zeros(())
        inj = dot(fext.reshape(-1), (p * self.inv_m).reshape(-1)) if fext is not None else zero
        dis = dot((p * self.gamma_inv_m2).reshape(-1), flat) if self.gamma_inv_m2 is not None else zero
        return self.torch.stack((inj, dis))

    def start(self, p, fext) -> None:
        self.first = self.last = self._power(p, fext)
        self.sums = self.first.clone()

    def accumulate(self, p, fext) -> None:
        """One more step end: its powers join the sums (the trapezoid rule is applied in :meth:`balance`)."""
        self.last = self._power(p, fext)
        self.sums.add_(self.last)

    def balance(self) -> tuple[float, float]:
        """(injected, dissipated) energy since the start of this roll-out: the trapezoid rule on the powers
        at every step end, dt/2 (2 sum - first - last)."""
        e = (0.5 * self.dt) * (2.0 * self.sums - self.first - self.last)
        return float(e[0]), float(e[1])


def port_step(grads, flow: PortFlow, q, p, gv, fext, dt: float, step: int):
    """One step of the Strang splitting D(dt/2) K(dt/2) Q(dt) K(dt/2) D(dt/2) of ground truth
    (``core.physics.integrators``) with the learned dV/dq and dT/dp: D the exact damping flow, K the kick
    by -dV/dq + F(t) (F at the start of the step for the first kick, at its end for the second), Q the
    drift by dT/dp. Updates q and p in place; ``gv`` is dV/dq at q, ``fext`` F at the step's start.
    Returns (q, p, dV/dq at the new q, F at the new time)."""
    h = 0.5 * dt
    if flow.decay is not None:
        p *= flow.decay
    p -= h * (gv if fext is None else gv - fext)
    q += grads.kinetic(p, q, out=grads.scratch(p)).mul_(dt)
    gv = grads.potential(q, out=gv)
    if not _finite(gv):
        raise _blowup(step, dt)
    fext = flow.external(step)
    p -= h * (gv if fext is None else gv - fext)
    if flow.decay is not None:
        p *= flow.decay
    flow.accumulate(p, fext)
    return q, p, gv, fext


class Diverged(Exception):
    """Raised inside a roll-out when it diverged (see the module notes);
    :func:`rollout` turns it into the ``meta["diverged"]`` mark or an HGNError."""

    def __init__(self, step: int, reason: str, advice: str):
        super().__init__(reason)
        self.step, self.reason, self.advice = step, reason, advice

    def message(self, t: float) -> str:
        return f"the rollout diverged at step {self.step} (t = {t:.6g}): {self.reason}. {self.advice}"


def _blowup(step: int, dt: float) -> Diverged:
    return Diverged(step, "the learned gradients became NaN or infinite",
                    f"Reduce the time step dt (now {dt:g}) or start closer to the states the model was fitted on")


def check_rollout_settings(integrator: str = "auto", tol: float = FIXED_POINT_TOL,
                           max_iter: int = FIXED_POINT_MAX_ITER, on_no_convergence: str = "error") -> tuple[float, int]:
    """Validate the integrator settings (HGNError when wrong); returns the
    normalised (tol, max_iter)."""
    from core import validate

    validate.choice("integrator", integrator, INTEGRATORS)
    validate.choice("on_no_convergence", on_no_convergence, ("error", "warn"))
    try:
        tol = float(tol)
    except (TypeError, ValueError):
        raise HGNError(f"fixed-point tolerance must be a number, got {tol!r}") from None
    if not math.isfinite(tol) or tol <= 0:
        raise HGNError(f"fixed-point tolerance must be > 0, got {tol}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(max_iter)) or not float(max_iter).is_integer() or int(max_iter) < 1:
        raise HGNError(f"max_iter must be a whole number >= 1, got {max_iter!r}")
    return tol, int(max_iter)


def _distinct(x: float, y: float) -> tuple[str, str]:
    """``x`` and ``y`` printed with the fewest significant digits (4 to 12)
    that tell them apart, so a warning never reads "1.455 beyond 1.455"."""
    for digits in range(4, 13):
        a, b = f"{x:.{digits}g}", f"{y:.{digits}g}"
        if a != b:
            return a, b
    return f"{x!r}", f"{y!r}"


class RangeMonitor:
    """Pair distances and particle kinetic energies of the saved frames
    against the model's training range.

    :meth:`check` measures the pair distances (and, with ``k_train``, the
    largest kinetic energy of one particle) of one frame, widens the ranges
    seen so far and, the first time one leaves its training range, warns with
    :class:`RolloutExtrapolationWarning` (once per roll-out) and keeps what
    left which range where in ``meta["training_range_left"]`` (``step`` and
    ``t`` of the whole run, ``quantity``, ``value``, ``bound``, ``relative``
    = |value - bound| / bound (also in the message, in per cent), ``side``
    "above" | "below", ``at_start``). A start state that is already outside
    (frame 0: a larger lattice's random start has more extreme bonds than the
    small system's data) is reported as the start, not as something the
    roll-out reached; steps count from the start of the whole run, so a
    roll-out continued in chunks (``t0`` > 0) names the same step as one run.
    Only saved frames are measured: "at step N" is the first saved frame
    outside. ``train_range`` (pair distances, (lo, hi)) and ``k_train`` may
    each be None (not known). :meth:`meta` gives the ranges for the
    trajectory's meta.
    """

    #: frames between the caller of rollout() and warnings.warn: rollout -> Recorder.save -> check
    STACKLEVEL = 4

    def __init__(self, ff: ForceField, train_range: tuple[float, float] | None, dt: float, t0: float,
                 k_train: float | None = None, half_inv_m: np.ndarray | None = None):
        self.ff, self.train, self.dt, self.t0 = ff, train_range, dt, t0
        self.k_train, self.half_inv_m = k_train, half_inv_m
        self.offset = int(round(t0 / dt))  # steps before this roll-out's start (a continued chunk)
        self.seen = [math.inf, -math.inf]
        self.k_seen = -math.inf
        self.left: dict | None = None

    def check(self, q: np.ndarray, step: int, p: np.ndarray | None = None) -> None:
        out = None  # (quantity, value, bound, above) of the first range left in this frame
        if self.train is not None:
            r = self.ff.active_pairs(q)[3]
            if r.size:
                r_train, r_seen = self.train, self.seen
                lo, hi = float(r.min()), float(r.max())
                r_seen[0], r_seen[1] = min(r_seen[0], lo), max(r_seen[1], hi)
                if hi > r_train[1]:
                    out = ("pair distance", hi, r_train[1], True)
                elif lo < r_train[0]:
                    out = ("pair distance", lo, r_train[0], False)
        if self.k_train is not None and p is not None:
            k = float(np.max(np.einsum("ij,ij,i->i", p, p, self.half_inv_m), initial=0.0))
            self.k_seen = max(self.k_seen, k)
            if out is None and k > self.k_train:
                out = ("particle kinetic energy", k, self.k_train, True)
        if self.left is not None or out is None:
            return
        quantity, value, bound, above = out
        a, b = _distinct(value, bound)
        # how far, relative to the bound: a few per cent beyond the extremes of the data is where a
        # held-out run of the same system goes too, and a fitted model usually still holds there
        rel = abs(value - bound) / abs(bound) if bound else math.inf
        far = f"{100 * rel:.2g}% {'above' if above else 'below'} it"
        what = (f"{quantity} {a} beyond the largest in the training data ({b}), {far}" if above else
                f"{quantity} {a} below the smallest in the training data ({b}), {far}")
        n, t = self.offset + step, self.t0 + step * self.dt
        self.left = {"step": n, "t": t, "quantity": quantity, "value": value, "bound": bound,
                     "relative": rel, "side": "above" if above else "below", "at_start": step == 0}
        if step == 0 and n == 0:
            msg = f"the initial state already has a {what}, before any step"
        elif step == 0:
            msg = f"this continued roll-out starts at step {n} (t = {t:.6g}) with a {what}"
        else:
            msg = f"the rollout reached a {what} at step {n} (t = {t:.6g})"
        warnings.warn(f"{msg}: the model extrapolates there and may be wrong", RolloutExtrapolationWarning,
                      stacklevel=self.STACKLEVEL)

    def meta(self) -> dict:
        out = {}
        outside = False
        if self.train is not None and math.isfinite(self.seen[0]):
            r_train, r_seen = self.train, self.seen
            out["pair_distance_range"] = [r_seen[0], r_seen[1]]
            out["training_pair_distance_range"] = [r_train[0], r_train[1]]
            outside = r_seen[0] < r_train[0] or r_seen[1] > r_train[1]
        if self.k_train is not None and math.isfinite(self.k_seen):
            out["particle_kinetic_energy_max"] = self.k_seen
            out["training_particle_kinetic_energy_max"] = self.k_train
            outside = outside or self.k_seen > self.k_train
        if not out:
            return {}
        out["outside_training_range"] = bool(outside)
        if self.left is not None:
            out["training_range_left"] = dict(self.left)
        return out


class Recorder:
    """The saved frames of a roll-out: states, TRUE kinetic and potential
    energies along the predicted path, total momentum, the learned H_hat
    (optional), the range monitor and the ``on_frame`` callback."""

    def __init__(self, system: System, ff: ForceField, grads, n_frames: int, dt: float,
                 t0: float, learned_energy: bool, monitor: RangeMonitor | None, on_frame: FrameFn | None,
                 energy_floor: float = 0.0, energy_reference: tuple[float, float] | None = None):
        n, d = system.n, system.dim
        self.ff, self.grads, self.monitor, self.on_frame = ff, grads, monitor, on_frame
        self.dt, self.t0, self.n_frames = dt, t0, n_frames
        self.half_inv_m = 0.5 / system.masses
        self.q = np.empty((n_frames, n, d))
        self.p = np.empty((n_frames, n, d))
        self.potential = np.empty(n_frames)
        self.kinetic = np.empty(n_frames)
        self.momentum = np.empty((n_frames, d))
        self.learned = np.empty(n_frames) if learned_energy else None
        self.floor, self.reference = energy_floor, energy_reference
        self.h0, self.scale = energy_reference or (0.0, 0.0)  # H(0) and the energy scale, set by frame 0
        self.flow: PortFlow | None = None  # damping and forcing: the energy balance replaces H(0)
        self.injected = self.dissipated = None

    def with_port(self, flow: "PortFlow") -> None:
        """Measure the divergence against the energy balance of ``flow`` (a damped or driven roll-out):
        |H(t) - H(0) - (injected - dissipated)| against the scale + |injected| + dissipated, with H(0) this
        roll-out's own start (an ``energy_reference`` contributes its scale only), as ground truth does."""
        self.flow = flow
        self.injected, self.dissipated = np.empty(self.n_frames), np.empty(self.n_frames)

    def truncate(self, k: int) -> None:
        """Keep the first ``k`` frames (a diverged roll-out)."""
        self.q, self.p = self.q[:k], self.p[:k]
        self.potential, self.kinetic, self.momentum = self.potential[:k], self.kinetic[:k], self.momentum[:k]
        if self.learned is not None:
            self.learned = self.learned[:k]
        if self.flow is not None:
            self.injected, self.dissipated = self.injected[:k], self.dissipated[:k]
        self.n_frames = k

    def save(self, k: int, step: int, q: np.ndarray, p: np.ndarray) -> None:
        """Store (q, p) of ``step`` as frame ``k``; :class:`Diverged` when its true
        energy is not finite or moved beyond the limit (module notes)."""
        self.q[k] = _numpy(q)
        self.p[k] = _numpy(p)
        q, p = self.q[k], self.p[k]
        self.potential[k] = self.ff.energy(q)
        self.kinetic[k] = float(np.einsum("ij,ij,i->", p, p, self.half_inv_m))
        self.momentum[k] = p.sum(axis=0)
        if self.learned is not None:
            self.learned[k] = self.grads.energy(q, p)
        if self.monitor is not None:
            self.monitor.check(q, step, p)
        h = self.potential[k] + self.kinetic[k]
        if not math.isfinite(h):
            raise Diverged(step, "the true energy of the predicted state is NaN or infinite (particles on top "
                                 "of each other or flown apart)",
                           f"Reduce the time step dt (now {self.dt:g}) or start closer to the states the model "
                           "was fitted on")
        if self.flow is not None:
            inj, dis = self.injected[k], self.dissipated[k] = self.flow.balance()
            if k == 0:
                self.h0 = h  # the balance starts at this roll-out's own start
                if self.reference is None:
                    self.scale = energy_scale(self.kinetic[0], self.potential[0], self.floor)
            else:
                err, scale = abs(h - self.h0 - (inj - dis)), self.scale + abs(inj) + dis
                if self.scale > 0 and not err <= ENERGY_ERROR_LIMIT * scale:
                    raise Diverged(step, f"the true energy along the predicted path left the energy balance "
                                         f"(injected - dissipated) by {err / scale:.3g} times the energy scale "
                                         f"{scale:.3g} (limit {ENERGY_ERROR_LIMIT:g})",
                                   "The model has left the states it was fitted on, or the time step dt "
                                   f"(now {self.dt:g}) is too large")
        elif k == 0 and self.reference is None:
            self.h0, self.scale = h, energy_scale(self.kinetic[0], self.potential[0], self.floor)
        elif self.scale > 0 and not abs(h - self.h0) <= ENERGY_ERROR_LIMIT * self.scale:
            raise Diverged(step, f"the true energy along the predicted path moved by "
                                 f"{abs(h - self.h0) / self.scale:.3g} times the energy scale "
                                 "max(K(0) + |V(0)|, the system's own) = "
                                 f"{self.scale:.3g} (limit {ENERGY_ERROR_LIMIT:g})",
                           "The model has left the states it was fitted on (see the pair distance range); fit "
                           "it on data that cover this motion, or reduce the time step dt "
                           f"(now {self.dt:g})")
        if self.on_frame is not None:
            qv, pv = self.q[k].view(), self.p[k].view()
            qv.flags.writeable = False
            pv.flags.writeable = False
            self.on_frame(Frame(k, step, self.t0 + step * self.dt, qv, pv, float(self.kinetic[k]),
                                float(self.potential[k]), self.momentum[k].copy(), self.n_frames))


def _change(x_new, x) -> tuple[float, float]:
    """(max |x_new - x|, 1 + max |x_new|) of two numpy arrays or torch tensors."""
    if isinstance(x_new, np.ndarray):
        if x_new.size == 0:
            return 0.0, 1.0
        return float(np.max(np.abs(x_new - x))), 1.0 + float(np.max(np.abs(x_new)))
    if x_new.numel() == 0:
        return 0.0, 1.0
    return float((x_new - x).abs().max()), 1.0 + float(x_new.abs().max())


class FixedPointSolver:
    """Fixed-point iteration of the implicit stages of the generalised
    leapfrog, with the tolerance, the iteration limit and what to do when a
    stage does not converge (``"error"`` or ``"warn"``); counts iterations
    and unconverged stages for the trajectory's meta."""

    #: frames between the caller of rollout() and warnings.warn:
    #: rollout -> implicit_step -> solve -> _not_converged
    STACKLEVEL = 5

    def __init__(self, tol: float, max_iter: int, on_no_convergence: str, dt: float,
                 cancel: CancelLike | None = None):
        self.tol, self.max_iter, self.on_no_convergence = tol, max_iter, on_no_convergence
        self.dt, self.cancel = dt, cancel
        self.iterations = 0
        self.unconverged = 0
        self.warned = False

    def solve(self, x, update, step: int, stage: str):
        """Iterate ``x <- update(x)[0]`` until the largest change is at most
        ``tol * (1 + max |x|)`` (or ``max_iter`` iterations, then the
        convergence policy); returns the last ``x`` and the second value of
        the last ``update``."""
        first = 0.0
        for _ in range(self.max_iter):
            check_cancel(self.cancel)
            x_new, extra = update(x)
            change, scale = _change(x_new, x)
            x = x_new
            self.iterations += 1
            first = first or change
            if not math.isfinite(change):
                raise _blowup(step, self.dt)
            if change <= self.tol * scale:
                break
        else:
            self._not_converged(step, stage, first, change, scale)
        return x, extra

    def _not_converged(self, step: int, stage: str, first: float, change: float, scale: float) -> None:
        max_iter, dt = self.max_iter, self.dt
        self.unconverged += 1
        rate = (change / first) ** (1.0 / max(max_iter - 1, 1)) if first > 0 else 1.0
        msg = (f"the implicit Stoermer-Verlet step did not converge at step {step} ({stage}): after "
               f"{max_iter} fixed-point iterations the iterate still changed by {change:.3g} "
               f"(tolerance {self.tol:g} x {scale:.3g}). ")
        if rate > 0.9:
            msg += (f"The iteration does not contract (change x {rate:.2f} per iteration): the learned "
                    "gradients jump or vary too fast here (the frame encoding jumps when its reference "
                    f"particle changes). A smaller time step (now {dt:g}) helps against fast variation, not "
                    "against a jump; the invariant encoding has none")
        else:
            msg += f"Reduce the time step dt (now {dt:g}) or raise max_iter (now {max_iter})"
        if self.on_no_convergence == "error":
            raise HGNError(msg)
        if not self.warned:
            warnings.warn(msg + " (further non-converged steps are counted in meta['unconverged_stages'])",
                          RolloutConvergenceWarning, stacklevel=self.STACKLEVEL)
            self.warned = True

    def meta(self) -> dict:
        return {"fixed_point_tol": self.tol, "fixed_point_max_iter": self.max_iter,
                "fixed_point_iterations": self.iterations, "unconverged_stages": self.unconverged}


def explicit_step(grads, q, p, gv, dt: float, step: int):
    """One explicit Stoermer-Verlet step of a separable model (``grads`` a
    :class:`core.learning.stepper.Stepper`), updating the tensors q and p in
    place; ``gv`` is dV/dq at q. Returns (q, p, dV/dq at the new q)."""
    import torch

    h = 0.5 * dt
    buf = grads.scratch(p)  # the same arithmetic as p -= h * gv; q += dt * dT/dp, without fresh temporaries
    p -= torch.mul(gv, h, out=buf)
    q += grads.kinetic(p, q, out=buf).mul_(dt)
    gv = grads.potential(q, out=gv)  # the old dV/dq is spent
    if not _finite(gv):
        raise _blowup(step, dt)
    p -= torch.mul(gv, h, out=buf)
    return q, p, gv


def implicit_step(grads, solver: FixedPointSolver, q, p, gq, dt: float, step: int):
    """One step of the generalised leapfrog; ``gq`` is the guess of
    H_q(q, p_1/2) (H_q at the last (q, p_1/2)). Returns (q, p, H_q(q1, p_1/2))."""
    h = 0.5 * dt

    def half_kick(p_h):  # p_h = p - h H_q(q, p_h); also H_p(q, p_h)
        gq, gp = grads.both(q, p_h)
        return p - h * gq, gp

    def drift(q1):  # q1 = q + h (H_p(q, p_h) + H_p(q1, p_h))
        _, gp1 = grads.both(q1, p_h)
        return q + h * (gp0 + gp1), None

    # stage 1: p_h = p - h H_q(q, p_h), from the guess H_q at the last (q, p_h)
    p_h, gp0 = solver.solve(p - h * gq, half_kick, step, "momentum half step")
    # stage 2: q1 = q + h (H_p(q, p_h) + H_p(q1, p_h))
    q1, _ = solver.solve(q + dt * gp0, drift, step, "position step")
    # stage 3 (explicit): p1 = p_h - h H_q(q1, p_h), at the converged q1
    gq, _ = grads.both(q1, p_h)
    if not _finite(gq):
        raise _blowup(step, dt)
    return q1, p_h - h * gq, gq


def rollout(model, system: System, q0, p0, dt: float, steps: int, save_every: int = 1,
            progress: ProgressFn | None = None, cancel: CancelLike | None = None,
            on_frame: FrameFn | None = None, *, integrator: str = "auto",
            tol: float = FIXED_POINT_TOL, max_iter: int = FIXED_POINT_MAX_ITER,
            on_no_convergence: str = "error", on_divergence: str = "stop", energy_reference=None,
            learned_energy: bool = True,
            skin: float = DEFAULT_SKIN, label: str | None = None, t0: float = 0.0,
            device: str = "cpu", precision: str = "float64", threads: int = ROLLOUT_THREADS,
            port: Port | None = None) -> Trajectory:
    """Integrate the learned Hamiltonian ``model`` on ``system`` from (q0, p0)
    for ``steps`` steps of ``dt``, saving every ``save_every``-th step (frame 0
    is the initial state), and return the predicted :class:`Trajectory`.

    ``integrator``: "auto" (explicit when ``model.separable``, else
    implicit), "explicit" (needs a separable model) or "implicit" (the
    generalised leapfrog, for any model). ``tol``, ``max_iter`` and
    ``on_no_convergence`` ("error" or "warn") govern its fixed-point
    iterations. ``learned_energy`` also evaluates H_hat at every saved frame
    (``meta["learned_energy"]``). ``label`` defaults to the model's name.
    ``t0`` is the time of the start (for a rollout continued in chunks).
    ``device`` ("cpu", "cuda", "cuda:N") and ``precision`` ("float64",
    "float32": separable models only, see the module notes) say where and how
    the integrator runs; saved frames are float64 numpy either way.
    ``threads``: torch intra-op (and OpenBLAS) threads while the roll-out
    runs, 0 = leave the libraries' settings (all cores); the previous counts
    are restored afterwards. Default :data:`ROLLOUT_THREADS` (1, measured:
    see its note).

    The trajectory's kinetic and potential energies are the TRUE ones along
    the predicted path. ``meta`` holds the integrator, the number of gradient
    evaluations, the wall time per step and the neighbour-list builds.
    ``on_divergence`` ("stop" or "error"): what a roll-out that blows up does
    (module notes: stopped and marked in ``meta["diverged"]``, or HGNError);
    ``energy_reference``: [H(0), scale] of the first chunk of a roll-out
    continued in chunks (its ``meta["energy_reference"]``).
    ``port``: damping and forcing (a :class:`core.physics.port.Port`) to
    roll out with; default None = the model's own (:func:`carried_port`: the
    identified ones of a port model, ``info["port"]``, carried to
    ``system``; none for a Hamiltonian model). With an active port the step
    is ground truth's Strang splitting with the learned gradients
    (:func:`port_step`; separable models only), the returned trajectory's
    system carries the port, ``meta["injected"]``/``["dissipated"]`` the
    energy balance, and the divergence check measures the balance. Pass
    ``Port(0.0)`` to roll a port model out without its damping and forcing.
    Raises HGNError for bad settings, Cancelled when cancelled.

    The parts: :func:`explicit_step` and :func:`implicit_step` (one step of
    each integrator), :class:`FixedPointSolver` (the implicit stages),
    :class:`Recorder` (the saved frames) and :class:`RangeMonitor` (the
    training-range check).
    """
    from core.physics.simulate import check_state  # state validation shared with ground truth

    if not isinstance(system, System):
        raise HGNError(f"rollout needs a System to supply the graph, got {type(system).__name__}")
    dt, steps, save_every = check_run_settings(dt, steps, save_every)
    q, p = check_state(system, q0, p0)
    tol, max_iter = check_rollout_settings(integrator, tol, max_iter, on_no_convergence)
    try:
        t0 = float(t0)
    except (TypeError, ValueError):
        raise HGNError(f"start time t0 must be a number, got {t0!r}") from None
    if not math.isfinite(t0):
        raise HGNError(f"start time t0 must be finite, got {t0}")
    separable = bool(getattr(model, "separable", False))
    if port is None:
        port = carried_port(model, system)
    elif not isinstance(port, Port):
        raise HGNError(f"port must be a core.physics.port.Port (damping and forcing) or None, got "
                       f"{type(port).__name__}")
    else:
        port = port.check(system.n, system.dim)
    if port is not None and not port.active:
        port = None
    if port is not None and (not separable or integrator == "implicit"):
        raise HGNError("damping and forcing roll out with the explicit Strang splitting of ground truth, which "
                       "needs a separable model (H = T(p) + V(q)); this model is "
                       f"{'separable, but the implicit integrator was asked for' if separable else 'not separable'}"
                       ": use the invariant encoding (or integrator auto/explicit), or pass port=Port(0.0) to "
                       "roll it out without its damping and forcing")
    if integrator == "auto":
        integrator = "explicit" if separable else "implicit"
    if integrator == "explicit" and not separable:
        raise HGNError("the explicit Stoermer-Verlet rollout needs a separable model (H = T(p) + V(q)); "
                       "this model is not separable: use the implicit integrator")
    threads = check_threads(threads)
    from core import validate

    validate.choice("on_divergence", on_divergence, DIVERGENCE_POLICIES)
    if not (isinstance(precision, str) or type(precision).__module__ == "torch"):
        raise HGNError(f"precision must be one of float64, float32, got {precision!r:.60}")
    check_run_memory("the roll-out", system.n, system.dim, steps, save_every)
    check_run_time("the roll-out", system.n, steps)
    from core.physics.integrators import check_energy_reference
    from core.physics.simulate import energy_floor

    energy_reference = check_energy_reference(energy_reference)
    from core.learning.hgn.device import blas_threads, torch_threads
    from core.learning.stepper import make_stepper, resolve_precision

    dtype = resolve_precision(precision)
    grads = make_stepper(model, system, device, dtype, skin=skin)
    ff = ForceField(system, skin=skin)
    n_frames = n_saved_frames(steps, save_every)
    r_train, k_train = training_distance_range(model), training_kinetic_max(model)
    monitor = RangeMonitor(ff, r_train, dt, t0, k_train, 0.5 / system.masses) \
        if r_train is not None or k_train is not None else None
    recorder = Recorder(system, ff, grads, n_frames, dt, t0, learned_energy, monitor, on_frame,
                        energy_floor(system), energy_reference)
    solver = FixedPointSolver(tol, max_iter, on_no_convergence, dt, cancel)
    explicit = integrator == "explicit"
    flow = None
    if port is not None:
        flow = PortFlow(port, system, grads, dt, t0)
        recorder.with_port(flow)

    diverged = None
    k = 0
    start = time.perf_counter()
    with torch_threads(threads), blas_threads(threads):
        check_cancel(cancel)
        q, p = grads.tensor(q), grads.tensor(p)  # check_state's copies: the caller's arrays are never written
        fext = None
        if flow is not None:
            fext = flow.external(0)
            flow.start(p, fext)
        recorder.save(0, 0, q, p)
        k = 1
        grads.prepare(q, p)  # state-dependent tables and workspaces, outside the timed loop
        report(progress, "rollout", 0.0)
        last_report = start = time.perf_counter()
        try:
            if explicit:
                g = grads.potential(q)    # dV/dq at q_0
            else:
                g, _ = grads.both(q, p)   # first guess of H_q(q_0, p_1/2)
            if not _finite(g):
                raise _blowup(0, dt)
            for step in range(1, steps + 1):
                if cancel is not None and cancel.is_set():
                    check_cancel(cancel)
                if flow is not None:
                    q, p, g, fext = port_step(grads, flow, q, p, g, fext, dt, step)
                elif explicit:
                    q, p, g = explicit_step(grads, q, p, g, dt, step)
                else:
                    q, p, g = implicit_step(grads, solver, q, p, g, dt, step)
                if step % save_every == 0:
                    recorder.save(k, step, q, p)
                    k += 1
                if progress is not None and time.perf_counter() - last_report >= PROGRESS_INTERVAL:
                    report(progress, "rollout", step / steps)
                    last_report = time.perf_counter()
        except Diverged as exc:
            t_div = t0 + exc.step * dt
            # a roll-out continued from t0 (in chunks) counts its steps from the start of the whole run
            exc.step += int(round(t0 / dt))
            if on_divergence == "error":
                raise HGNError(exc.message(t_div)) from None
            diverged = {"step": int(exc.step), "t": t_div, "reason": exc.message(t_div), "frames": int(k)}
    elapsed = time.perf_counter() - start
    report(progress, "rollout", 1.0)
    if diverged is not None:  # the frames before the divergence
        n_frames = k
        recorder.truncate(k)

    t = t0 + dt * save_every * np.arange(n_frames)
    name = "strang-verlet (learned, port)" if flow is not None else (
        "stoermer-verlet" if explicit else "generalised-leapfrog")
    meta = {"integrator": name,
            "steps": steps, "unwrapped": True, "model": model_name(model),
            "gradient_evaluations": grads.n_evaluations,
            "seconds_per_step": elapsed / steps if steps else 0.0, "threads": threads,
            "energies": "true H (core.physics.forces) along the predicted path; learned H in learned_energy"}
    meta.update(grads.describe())
    if not explicit:
        meta.update(solver.meta())
    if grads.nlist is not None:
        meta["neighbour_builds"] = grads.nlist.n_builds
    if monitor is not None:
        meta.update(monitor.meta())
    if recorder.learned is not None:
        meta["learned_energy"] = recorder.learned
    if diverged is not None:
        meta["diverged"] = diverged
    if flow is not None:  # the energy balance, accumulated every step (core.physics.port.energy_balance reads it)
        meta["injected"], meta["dissipated"] = recorder.injected, recorder.dissipated
        system = system.copy(port=port)
    meta["energy_reference"] = [float(recorder.h0), float(recorder.scale)]
    return Trajectory(system=system, t=t, q=recorder.q, p=recorder.p, kinetic=recorder.kinetic,
                      potential=recorder.potential, momentum=recorder.momentum,
                      dt=dt, save_every=save_every, label=label or model_name(model), meta=meta)


def learned_energy(trajectory: Trajectory) -> np.ndarray | None:
    """H_hat along a rollout (from ``meta["learned_energy"]``), or None."""
    v = trajectory.meta.get("learned_energy")
    return None if v is None else np.asarray(v, dtype=np.float64)


def compare(model, system: System, q0, p0, dt: float, steps: int, save_every: int = 1,
            progress: ProgressFn | None = None, cancel: CancelLike | None = None,
            **rollout_kw) -> tuple[Trajectory, Trajectory]:
    """Ground truth and learned rollout from the same start, saved at the
    same steps: returns ``(truth, prediction)``. Progress stages "simulate"
    then "rollout"; extra keywords go to :func:`rollout`."""
    from core.physics.simulate import simulate

    truth = simulate(system, q0, p0, dt, steps, save_every, progress=progress, cancel=cancel,
                     skin=rollout_kw.get("skin", DEFAULT_SKIN))
    pred = rollout(model, system, q0, p0, dt, steps, save_every, progress=progress, cancel=cancel, **rollout_kw)
    return truth, pred
