"""Damping and forcing of a particle system: the port-Hamiltonian part (issue 13).

Convention (docs/port_hamiltonian.md): with the system's Hamiltonian
H(q, p) = sum_i |p_i|^2 / (2 m_i) + V(q),

    dq_i/dt = dH/dp_i = p_i / m_i
    dp_i/dt = -dH/dq_i - gamma_i dH/dp_i + F_i(t)

``gamma_i`` >= 0 is particle i's friction coefficient (force per velocity,
mass / time), so the damping force is -gamma_i v_i and without forces the
momentum decays as exp(-gamma_i t / m_i). The external force is

    F_i(t) = m_i g + sum_{drives k with i in nodes_k} A_k cos(w_k t + phi_k) u_k / |u_k|

with ``g`` the constant field (an acceleration, as gravity: the force on a
particle is its mass times g) and drives of amplitude A (a force), angular
frequency w > 0 (radians per time unit), phase phi (radians) and direction u
(any non-zero vector; only its direction counts). The energy balance is

    dH/dt = sum_i F_i(t) . v_i - sum_i gamma_i |v_i|^2  (injected - dissipated power).

:class:`Port` is the plain, Qt-free description; it travels with the
:class:`~core.physics.system.System` (``system.port``), so every file that
holds a system holds it (header field ``port`` of the system; files without it
load as undamped and undriven). :meth:`Port.terms` prepares it for one
system's particles (:class:`PortTerms`), as the integrator
(``core.physics.integrators.velocity_verlet(..., port=...)``) and the data
generation use it.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from core.errors import HGNError

#: the header keys of a port (``System.to_header()["port"]``)
PORT_KEYS = ("damping", "drives", "field")
DRIVE_KEYS = ("nodes", "amplitude", "frequency", "phase", "direction")


def _number(name: str, v, lo: float | None = None, above: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise HGNError(f"{name} must be a number, got {v!r:.60}")
    f = float(v)
    if not math.isfinite(f):
        raise HGNError(f"{name} must be a finite number, got {f}")
    if lo is not None and (f <= lo if above else f < lo):
        raise HGNError(f"{name} must be {'>' if above else '>='} {lo:g}, got {f:g}")
    return f


def _vector(name: str, v) -> tuple[float, ...]:
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise HGNError(f"{name} must be a list of 2 or 3 numbers, got {v!r:.60}") from None
    if a.ndim != 1 or a.size not in (2, 3) or isinstance(v, (str, bytes)):
        raise HGNError(f"{name} must be a list of 2 or 3 numbers (one per axis), got {v!r:.60}")
    if not np.all(np.isfinite(a)):
        raise HGNError(f"{name} must hold finite numbers, got {a.tolist()}")
    return tuple(float(x) for x in a)


@dataclass(frozen=True)
class Drive:
    """A time-periodic force A cos(w t + phi) u/|u| on each of ``nodes``."""

    nodes: tuple[int, ...]
    amplitude: float
    frequency: float  # angular frequency w > 0, radians per time unit
    direction: tuple[float, ...]
    phase: float = 0.0

    def __post_init__(self):
        nodes = self.nodes
        if isinstance(nodes, (numbers.Integral, np.integer)) and not isinstance(nodes, bool):
            nodes = (nodes,)
        try:
            items = list(nodes)
        except TypeError:
            raise HGNError(f"drive nodes must be a list of particle indices, got {self.nodes!r:.60}") from None
        if not items:
            raise HGNError("a drive needs at least one node (particle index)")
        out = []
        for x in items:
            if isinstance(x, bool) or not isinstance(x, (numbers.Integral, np.integer)):
                if isinstance(x, numbers.Real) and not isinstance(x, bool) and float(x).is_integer():
                    x = int(x)
                else:
                    raise HGNError(f"drive nodes must be whole particle indices, got {x!r:.40}")
            if int(x) < 0:
                raise HGNError(f"drive node {int(x)} does not exist (particle indices start at 0)")
            out.append(int(x))
        if len(set(out)) != len(out):
            dup = next(x for x in out if out.count(x) > 1)
            raise HGNError(f"drive node {dup} is listed twice")
        object.__setattr__(self, "nodes", tuple(out))
        object.__setattr__(self, "amplitude", _number("drive amplitude", self.amplitude, 0.0))
        w = _number("drive frequency", self.frequency)
        if w <= 0:
            raise HGNError(f"drive frequency must be > 0 (an angular frequency, radians per time unit), got "
                           f"{w:g}; a constant force is the constant field (--field), not a drive of frequency 0")
        object.__setattr__(self, "frequency", w)
        object.__setattr__(self, "phase", _number("drive phase", self.phase))
        d = _vector("drive direction", self.direction)
        if not any(d):
            raise HGNError(f"drive direction {list(d)} is the zero vector; give a direction such as 1,0,0")
        object.__setattr__(self, "direction", d)

    @property
    def unit(self) -> np.ndarray:
        u = np.asarray(self.direction, dtype=np.float64)
        return u / np.linalg.norm(u)

    def to_dict(self) -> dict:
        return {"nodes": list(self.nodes), "amplitude": self.amplitude, "frequency": self.frequency,
                "phase": self.phase, "direction": list(self.direction)}

    @classmethod
    def from_dict(cls, d) -> "Drive":
        if not isinstance(d, dict):
            raise HGNError(f"a drive must be a mapping of {', '.join(DRIVE_KEYS)}, got {d!r:.60}")
        unknown = set(d) - set(DRIVE_KEYS)
        if unknown:
            raise HGNError(f"unknown drive settings {sorted(unknown)}; known: {list(DRIVE_KEYS)}")
        missing = [k for k in ("nodes", "amplitude", "frequency", "direction") if k not in d]
        if missing:
            raise HGNError(f"a drive needs {', '.join(missing)}")
        return cls(nodes=d["nodes"], amplitude=d["amplitude"], frequency=d["frequency"],
                   direction=d["direction"], phase=d.get("phase", 0.0))


@dataclass(frozen=True, eq=False)
class Port:
    """Damping and forcing of a system (see the module notes).

    ``damping``: gamma, one number for every particle or one per particle
    (N,) (e.g. non-zero only on a boundary layer), >= 0. ``drives``: the
    periodic forces. ``field``: the constant acceleration g (d,) or None.
    """

    damping: float | np.ndarray = 0.0
    drives: tuple[Drive, ...] = ()
    field: tuple[float, ...] | None = None

    def __post_init__(self):
        g = self.damping
        if isinstance(g, (list, tuple, np.ndarray)):
            try:
                a = np.array(g, dtype=np.float64)
            except (TypeError, ValueError, OverflowError):
                raise HGNError("per-particle damping must be a list of numbers") from None
            if a.ndim != 1 or a.size == 0:
                raise HGNError(f"per-particle damping must be a flat list of numbers, got shape {a.shape}")
            if not np.all(np.isfinite(a)):
                raise HGNError("damping must be finite numbers (found NaN or inf)")
            if np.any(a < 0):
                i = int(np.argmax(a < 0))
                raise HGNError(f"damping must be >= 0 (a friction coefficient); particle {i} has {a[i]:g}")
            a.flags.writeable = False
            object.__setattr__(self, "damping", a)
        else:
            v = _number("damping", g)
            if v < 0:
                raise HGNError(f"damping must be >= 0 (a friction coefficient, force per velocity), got {v:g}")
            object.__setattr__(self, "damping", v)
        drives = self.drives
        if isinstance(drives, (Drive, dict)):
            drives = (drives,)
        try:
            drives = tuple(d if isinstance(d, Drive) else Drive.from_dict(d) for d in drives)
        except TypeError:
            raise HGNError(f"drives must be a list of drives, got {self.drives!r:.60}") from None
        object.__setattr__(self, "drives", drives)
        if self.field is not None:
            object.__setattr__(self, "field", _vector("field", self.field))

    # ------------------------------------------------------------------
    @property
    def per_particle(self) -> bool:
        return isinstance(self.damping, np.ndarray)

    @property
    def damped(self) -> bool:
        return bool(np.any(np.asarray(self.damping) > 0))

    @property
    def forced(self) -> bool:
        return bool(self.drives) or (self.field is not None and any(self.field))

    @property
    def active(self) -> bool:
        """True when it changes the dynamics (some damping or some force)."""
        return self.damped or self.forced

    def check(self, n: int, dim: int) -> "Port":
        """HGNError when it does not fit a system of ``n`` particles in ``dim`` dimensions."""
        if self.per_particle and self.damping.shape != (n,):
            raise HGNError(f"per-particle damping must have one value per particle ({n}), got "
                           f"{self.damping.size}")
        for k, d in enumerate(self.drives):
            bad = [i for i in d.nodes if i >= n]
            if bad:
                raise HGNError(f"drive {k}: node {bad[0]} does not exist (there are {n} particles, numbered "
                               f"0..{n - 1})")
            if len(d.direction) != dim:
                raise HGNError(f"drive {k}: direction {list(d.direction)} has {len(d.direction)} components; "
                               f"the system is {dim}D")
        if self.field is not None and len(self.field) != dim:
            raise HGNError(f"field {list(self.field)} has {len(self.field)} components; the system is {dim}D")
        return self

    def gamma(self, n: int) -> np.ndarray:
        """gamma per particle (n,)."""
        if self.per_particle:
            return np.array(self.damping)
        return np.full(n, float(self.damping))

    def terms(self, masses: np.ndarray, dim: int) -> "PortTerms":
        masses = np.asarray(masses, dtype=np.float64)
        self.check(len(masses), dim)
        return PortTerms(self, masses, dim)

    # ------------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-able (the system header's ``port``); floats read back exactly."""
        return {"damping": self.damping.tolist() if self.per_particle else self.damping,
                "drives": [d.to_dict() for d in self.drives],
                "field": None if self.field is None else list(self.field)}

    @classmethod
    def from_dict(cls, d) -> "Port":
        if isinstance(d, Port):
            return d
        if not isinstance(d, dict):
            raise HGNError(f"a port (damping and forcing) must be a mapping of {', '.join(PORT_KEYS)}, "
                           f"got {d!r:.60}")
        unknown = set(d) - set(PORT_KEYS)
        if unknown:
            raise HGNError(f"unknown port settings {sorted(unknown)}; known: {list(PORT_KEYS)}")
        drives = d.get("drives") or []
        if not isinstance(drives, list):
            raise HGNError(f"port drives must be a list, got {drives!r:.60}")
        return cls(damping=d.get("damping", 0.0), drives=tuple(Drive.from_dict(x) for x in drives),
                   field=d.get("field"))

    def describe(self) -> str:
        """One line for ``python -m core info``."""
        parts = []
        if self.per_particle:
            g = self.damping
            parts.append(f"damping per particle ({int(np.count_nonzero(g))} of {g.size} damped, "
                         f"{g.min():g}..{g.max():g})")
        else:
            parts.append(f"damping {self.damping:g}")
        for d in self.drives:
            nodes = ",".join(map(str, d.nodes[:6])) + (",..." if len(d.nodes) > 6 else "")
            parts.append(f"drive A={d.amplitude:g} w={d.frequency:g} phase={d.phase:g} "
                         f"dir={list(d.direction)} on {len(d.nodes)} node(s) [{nodes}]")
        if self.field is not None:
            parts.append(f"field g={list(self.field)}")
        return "; ".join(parts)


class PortTerms:
    """A :class:`Port` prepared for one system's particles (masses (N,), d dimensions).

    ``gamma`` (N,) friction coefficients; :meth:`external` the force F(t)
    (N, d); :meth:`injected` and :meth:`dissipated` the powers F(t).v and
    sum gamma |v|^2; :meth:`dpdt` the port's part of dp/dt.
    """

    def __init__(self, port: Port, masses: np.ndarray, dim: int):
        self.port = port
        self.masses = masses
        self.n, self.dim = len(masses), dim
        self.gamma = port.gamma(self.n)
        self.damped = port.damped
        self.forced = port.forced
        self.inv_m = 1.0 / masses[:, None]
        #: constant part of the force: m_i g
        self.constant = None
        if port.field is not None and any(port.field):
            self.constant = masses[:, None] * np.asarray(port.field)[None, :]
        # drives: per drive (nodes, amplitude * unit vector, w, phi)
        self._drives = [(np.asarray(d.nodes, dtype=np.int64), d.amplitude * d.unit, d.frequency, d.phase)
                        for d in port.drives]

    def decay(self, dt: float) -> np.ndarray:
        """exp(-gamma dt / m) per particle, (N, 1): the exact damping flow over dt."""
        return np.exp(-self.gamma * dt / self.masses)[:, None]

    def external(self, t: float, out: np.ndarray | None = None) -> np.ndarray:
        """F(t) (N, d): the field's m g plus every drive's A cos(w t + phi) u."""
        f = np.zeros((self.n, self.dim)) if out is None else out
        if out is not None:
            f[...] = 0.0
        if self.constant is not None:
            f += self.constant
        for nodes, au, w, phi in self._drives:
            f[nodes] += math.cos(w * t + phi) * au
        return f

    def external_series(self, t: np.ndarray) -> np.ndarray:
        """F(t) for several times (T,) -> (T, N, d)."""
        t = np.asarray(t, dtype=np.float64)
        return np.stack([self.external(float(x)) for x in t]) if t.size else np.zeros((0, self.n, self.dim))

    def injected(self, t: float, p: np.ndarray) -> float:
        """Injected power sum_i F_i(t) . p_i / m_i."""
        if not self.forced:
            return 0.0
        return float(np.einsum("ij,ij,i->", self.external(t), p, self.inv_m[:, 0]))

    def dissipated(self, p: np.ndarray) -> float:
        """Dissipated power sum_i gamma_i |p_i|^2 / m_i^2 (>= 0)."""
        if not self.damped:
            return 0.0
        return float(np.einsum("ij,ij,i->", p, p, self.gamma * self.inv_m[:, 0] ** 2))

    def dpdt(self, t, p: np.ndarray) -> np.ndarray:
        """The port's part of dp/dt: -gamma p/m + F(t); ``p`` (N, d) at time t, or (T, N, d) at times t (T,)."""
        p = np.asarray(p, dtype=np.float64)
        out = -(self.gamma * self.inv_m[:, 0])[:, None] * p
        if self.forced:
            out = out + (self.external(float(t)) if p.ndim == 2 else self.external_series(t))
        return out


def port_of(system) -> Port | None:
    """``system.port`` when it changes the dynamics, else None."""
    port = getattr(system, "port", None)
    return port if port is not None and port.active else None


def make_port(damping=0.0, drives=(), field=None) -> Port | None:
    """A Port, or None when it would do nothing (no damping, no drive, no field)."""
    port = Port(damping=damping, drives=tuple(drives), field=field)
    if not port.active and not port.per_particle and port.field is None and not port.drives:
        return None
    return port


def saved_powers(system, t, p) -> tuple[np.ndarray, np.ndarray]:
    """The injected and dissipated powers (T,) at saved frames (times t (T,), momenta p (T, N, d))."""
    port = port_of(system)
    t = np.asarray(t, dtype=np.float64)
    if port is None:
        return np.zeros(len(t)), np.zeros(len(t))
    terms = port.terms(system.masses, system.dim)
    inj = np.array([terms.injected(float(x), pk) for x, pk in zip(t, p)])
    dis = np.array([terms.dissipated(pk) for pk in p])
    return inj, dis


def _cumulative_trapezoid(y: np.ndarray, t: np.ndarray) -> np.ndarray:
    out = np.zeros(len(y))
    if len(y) > 1:
        out[1:] = np.cumsum(0.5 * (y[1:] + y[:-1]) * np.diff(t))
    return out


def energy_balance(trajectory) -> dict:
    """The energy balance of a run per saved frame (T,) arrays:

    ``change`` H(t) - H(0); ``injected``, ``dissipated`` the energies from
    the start (accumulated every integrator step when the run kept them,
    ``meta["injected"]``/``["dissipated"]``, else the trapezoid rule on the
    saved frames); ``residual`` = change - (injected - dissipated), the
    integrator's error (and the quadrature's); ``injected_saved``,
    ``dissipated_saved``, ``residual_saved``: the same from the trapezoid
    rule on the saved frames only (coarser: its error grows with
    save_every^2); ``accumulated``: whether the per-step figures were there.
    An undamped, undriven run has zero injected and dissipated energy, and
    its residual is its energy drift H(t) - H(0).
    """
    tr = trajectory
    h = np.asarray(tr.kinetic + tr.potential, dtype=np.float64)
    change = h - h[0]
    p_in, p_out = saved_powers(tr.system, tr.t, tr.p)
    inj_s, dis_s = _cumulative_trapezoid(p_in, tr.t), _cumulative_trapezoid(p_out, tr.t)
    meta = tr.meta if isinstance(tr.meta, dict) else {}
    acc = isinstance(meta.get("injected"), np.ndarray) and isinstance(meta.get("dissipated"), np.ndarray) \
        and meta["injected"].shape == h.shape and meta["dissipated"].shape == h.shape
    inj = np.asarray(meta["injected"], dtype=np.float64) if acc else inj_s
    dis = np.asarray(meta["dissipated"], dtype=np.float64) if acc else dis_s
    return {"t": np.asarray(tr.t, dtype=np.float64), "change": change, "injected": inj, "dissipated": dis,
            "residual": change - (inj - dis), "injected_saved": inj_s, "dissipated_saved": dis_s,
            "residual_saved": change - (inj_s - dis_s), "accumulated": bool(acc)}


def port_summary(port) -> dict:
    """``{"damping", "forcing"}`` of a :class:`~core.physics.port.Port` as JSON values (None for no port):
    damping a number (uniform) or ``{"per_particle": [...], "damped": count, "min", "max"}``; forcing
    ``{"drives": [{nodes, amplitude, frequency, phase, direction}], "field": [g...] or None}``."""
    if port is None:
        return {"damping": None, "forcing": None}
    if port.per_particle:
        g = port.damping
        damping = {"per_particle": g.tolist(), "damped": int(np.count_nonzero(g)), "min": float(g.min()),
                   "max": float(g.max())}
    else:
        damping = port.damping
    return {"damping": damping, "forcing": {"drives": [d.to_dict() for d in port.drives],
                                            "field": None if port.field is None else list(port.field)}}


# ======================================================================
#: a position within this fraction of the system's extent from a bounding-box face lies on that face
BOUNDARY_TOLERANCE = 1e-6


def boundary_classes(system) -> np.ndarray:
    """Per particle and axis: -1 on the lowest face of the reference positions' bounding box, +1 on the
    highest, 0 inside (N, d) int. Lattices of any size have the same classes (corners, edges, faces, bulk),
    which is how :func:`transfer_port` finds the corresponding particles."""
    q = system.positions
    lo, hi = q.min(axis=0), q.max(axis=0)
    tol = BOUNDARY_TOLERANCE * max(float(np.max(hi - lo)), 1.0)
    out = np.zeros(q.shape, dtype=np.int64)
    out[q <= lo + tol] = -1
    out[(q >= hi - tol) & (hi - lo > tol)] = 1
    return out


def transfer_port(port: Port | None, source, target) -> Port | None:
    """The damping and forcing of ``port`` (on ``source``) carried to ``target`` (e.g. a larger lattice for
    a zero-shot roll-out): particles correspond by their :func:`boundary_classes` (the x = min edge of a
    10x10 lattice is the x = min edge of a 30x30 one; corners, edges, faces and the bulk each form a class).
    Per-particle damping and the drives are averaged over each class (drives as complex amplitude vectors
    per frequency: A u e^{i phi}); the target's particles of a class get that average. A class only partly
    driven (or damped unevenly: a member below half or above twice its class's mean) has no counterpart and
    is refused. The field is carried as it is."""
    if port is None:
        return None
    if source.dim != target.dim:
        raise HGNError(f"cannot carry damping and forcing from a {source.dim}D system to a {target.dim}D one")
    port.check(source.n, source.dim)
    cs, ct = boundary_classes(source), boundary_classes(target)
    keys_s = [tuple(r) for r in cs]
    keys_t = [tuple(r) for r in ct]
    classes = sorted(set(keys_s))
    members = {k: np.array([i for i, x in enumerate(keys_s) if x == k]) for k in classes}
    targets = {k: np.array([i for i, x in enumerate(keys_t) if x == k], dtype=np.int64) for k in classes}

    def even(values: np.ndarray, what: str, k) -> float:
        mean = float(values.mean())
        if mean != 0 and (values.min() < 0.5 * mean or values.max() > 2 * mean):
            raise HGNError(f"the {what} of the source varies within one group of corresponding particles "
                           f"(boundary class {k}: {values.min():g}..{values.max():g}); it cannot be carried to "
                           "another system particle by particle")
        return mean

    if port.per_particle:
        g = np.zeros(target.n)
        for k in classes:
            v = even(port.damping[members[k]], "damping", k)
            g[targets[k]] = v
        damping = g
    else:
        damping = port.damping
    drives = []
    d = source.dim
    for w in sorted({dr.frequency for dr in port.drives}):
        amp = np.zeros((source.n, d), dtype=np.complex128)  # A u e^{i phi} per particle
        for dr in port.drives:
            if dr.frequency == w:
                amp[list(dr.nodes)] += dr.amplitude * np.exp(1j * dr.phase) * dr.unit
        size = np.linalg.norm(amp, axis=1)
        top = max(float(size.max()), 1e-300)
        for k in classes:
            idx = members[k]
            if size[idx].mean() <= 1e-3 * top or not len(targets[k]):
                continue  # not driven (identified drives leave ~0 on undriven candidates)
            even(size[idx], "drive amplitude", k)
            z = amp[idx].mean(axis=0)
            ref = z.real if np.linalg.norm(z.real) >= np.linalg.norm(z.imag) else z.imag
            u = ref / np.linalg.norm(ref)
            c = complex(np.dot(z, u))
            drives.append(Drive(tuple(int(i) for i in targets[k]), abs(c), w, tuple(float(x) for x in u),
                                float(np.angle(c))))
    return Port(damping, tuple(drives), port.field)
