"""Pair potentials defined by data: clamped cubic splines and Gaussian random fields.

:class:`SplinePotential` is V(r) given by control points (r_i, V_i), i = 0..n-1,
with r_0 < r_1 < ... and end slopes (s_L, s_R): the clamped cubic spline
through the points (the unique C2 piecewise cubic with V'(r_0) = s_L and
V'(r_{n-1}) = s_R; the same function as the clamped cubic B-spline, computed
with ``scipy.interpolate.CubicSpline(bc_type=((1, s_L), (1, s_R)))``). Outside
[r_lo, r_hi] = [r_0, r_{n-1}] it continues so that energy and force stay
continuous everywhere:

* below r_lo, a repulsive wall
  V(r) = V_0 + s_L (r - r_lo) + W (r_lo - r)^2 / (r_lo r),
  whose last term and its slope vanish at r_lo and which grows like W r_lo / r
  as r -> 0 (W = ``wall``, an energy; default 1);
* above r_hi, a tail that levels off to a constant:
  V(r) = V_{n-1} + s_R tau (1 - exp(-(r - r_hi) / tau)),
  tau = the mean knot spacing (r_hi - r_lo) / (n - 1). With s_R = 0 (the
  default) it is exactly constant, V_{n-1}.

The force is analytic everywhere (the spline's own derivative inside).
``to_dict``/``from_dict`` carry the knots as JSON lists of floats (Python's
float repr round-trips float64 exactly), so the potential travels inside
every system, dataset, model and project file and a separate process builds
the same function bit for bit. ``from_dict`` refuses damaged descriptions with
an :class:`~core.errors.HGNError` that names the field.

:func:`grf_potential` draws a smooth bounded potential from a Gaussian random
field (squared-exponential covariance, length scale, amplitude, seed) on
knots and splines it: interior knot values A (1 + tanh g_i) / 2 lie in (0, A),
the two end knots sit on the rim V = A with zero slopes, so a particle with
energy below A stays between the rims (the wall below, the constant A above).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import numpy as np
from scipy.interpolate import CubicSpline

from core.errors import HGNError
from .potentials import PairPotential, register_data

#: fewest and most control points of a spline potential
MIN_KNOTS = 2
MAX_KNOTS = 10_000
#: largest |value| accepted for r, V, slopes and wall (reduced units)
MAX_VALUE = 1e12
#: default GRF settings: knots on [GRF_R_LO, GRF_R_HI]
GRF_R_LO = 0.5
GRF_R_HI = 2.5
GRF_KNOTS = 33
GRF_LENGTH_SCALE = 0.3
GRF_AMPLITUDE = 1.0
#: diagonal jitter (relative to the unit variance) of the GRF covariance before its Cholesky factor
GRF_JITTER = 1e-8


def _numbers(value, name: str, where: str = "spline potential") -> tuple[float, ...]:
    """A 1-D list of finite numbers as a tuple of floats, else HGNError naming ``name``."""
    if isinstance(value, (str, bytes, dict)) or value is None:
        raise HGNError(f"{where}: field {name!r} must be a list of numbers, got {value!r:.80}")
    try:
        items = list(value)
    except TypeError:
        raise HGNError(f"{where}: field {name!r} must be a list of numbers, got {value!r:.80}") from None
    out = []
    for k, v in enumerate(items):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise HGNError(f"{where}: field {name!r}[{k}] = {v!r:.40} is not a number")
        v = float(v)
        if not math.isfinite(v) or abs(v) > MAX_VALUE:
            raise HGNError(f"{where}: field {name!r}[{k}] = {v} must be finite and at most {MAX_VALUE:g} "
                           "in size")
        out.append(v)
    return tuple(out)


def _number(value, name: str, where: str = "spline potential") -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise HGNError(f"{where}: field {name!r} = {value!r:.40} is not a number")
    v = float(value)
    if not math.isfinite(v) or abs(v) > MAX_VALUE:
        raise HGNError(f"{where}: field {name!r} = {v} must be finite and at most {MAX_VALUE:g} in size")
    return v


@register_data
@dataclass(frozen=True)
class SplinePotential(PairPotential):
    """Clamped cubic spline V(r) through (r_i, V_i) with end slopes; see the module notes."""

    r: tuple = (0.5, 1.0, 2.0)
    V: tuple = (1.0, 0.0, 1.0)
    slopes: tuple = (0.0, 0.0)
    wall: float = 1.0
    #: free text: where the knots came from (e.g. "grf seed=3 length_scale=0.3 amplitude=1")
    source: str = ""
    kind = "spline"
    _cs: object = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        r = _numbers(self.r, "r")
        v = _numbers(self.V, "V")
        s = _numbers(self.slopes, "slopes")
        if len(r) < MIN_KNOTS or len(r) > MAX_KNOTS:
            raise HGNError(f"spline potential: field 'r' has {len(r)} knots; between {MIN_KNOTS} and "
                           f"{MAX_KNOTS} are needed")
        if len(v) != len(r):
            raise HGNError(f"spline potential: field 'V' has {len(v)} values but 'r' has {len(r)} knots; "
                           "give one value per knot")
        if len(s) != 2:
            raise HGNError(f"spline potential: field 'slopes' must be [left, right] (2 numbers), got {len(s)}")
        if r[0] <= 0:
            raise HGNError(f"spline potential: field 'r' must start at a distance > 0, got r[0] = {r[0]}")
        steps = np.diff(r)
        if np.any(steps <= 0):
            k = int(np.argmax(steps <= 0))
            raise HGNError(f"spline potential: field 'r' must be strictly increasing; r[{k}] = {r[k]} and "
                           f"r[{k + 1}] = {r[k + 1]}")
        wall = _number(self.wall, "wall")
        if wall <= 0:
            raise HGNError(f"spline potential: field 'wall' (the strength of the repulsive wall below "
                           f"r[0]) must be > 0, got {wall}")
        if not isinstance(self.source, str) or len(self.source) > 1000:
            raise HGNError("spline potential: field 'source' must be text of at most 1000 characters")
        object.__setattr__(self, "r", r)
        object.__setattr__(self, "V", v)
        object.__setattr__(self, "slopes", s)
        object.__setattr__(self, "wall", wall)
        object.__setattr__(self, "_cs", CubicSpline(np.array(r), np.array(v), bc_type=((1, s[0]), (1, s[1]))))

    # -- geometry ---------------------------------------------------------
    @property
    def r_lo(self) -> float:
        return self.r[0]

    @property
    def r_hi(self) -> float:
        return self.r[-1]

    @property
    def tau(self) -> float:
        """Length over which the slope of the tail above r_hi decays (mean knot spacing)."""
        return (self.r[-1] - self.r[0]) / (len(self.r) - 1)

    @property
    def r_min(self) -> float:
        """Distance of the lowest point of V on [r_lo, r_hi] (the spline's critical points and the ends)."""
        cand = [self.r[0], self.r[-1]]
        roots = self._cs.derivative().roots(extrapolate=False)
        cand.extend(float(x) for x in roots if np.isfinite(x))
        cand = np.array(cand)
        return float(cand[np.argmin(self._cs(cand))])

    # -- values -----------------------------------------------------------
    def _evaluate(self, r, nu: int) -> np.ndarray:
        r = np.asarray(r, dtype=np.float64)
        out = np.empty(r.shape)
        lo_r, hi_r = self.r[0], self.r[-1]
        below = r < lo_r
        above = r > hi_r
        inside = ~(below | above)
        if inside.all():
            return self._cs(r, nu)
        out[inside] = self._cs(r[inside], nu)
        sl, sr = self.slopes
        if below.any():
            x = r[below]
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                if nu == 0:
                    out[below] = self.V[0] + sl * (x - lo_r) + self.wall * (lo_r - x) ** 2 / (lo_r * x)
                else:
                    out[below] = sl - self.wall * (lo_r * lo_r - x * x) / (lo_r * x * x)
        if above.any():
            e = np.exp(-(r[above] - hi_r) / self.tau)
            out[above] = self.V[-1] + sr * self.tau * (1.0 - e) if nu == 0 else sr * e
        return out

    def energy(self, r):
        return self._evaluate(r, 0)

    def dvdr(self, r):
        return self._evaluate(r, 1)

    # -- serialisation ----------------------------------------------------
    def params(self) -> dict[str, float]:
        """A numeric summary for one-line descriptions (the knots are in :meth:`to_dict`)."""
        return {"knots": float(len(self.r)), "r_lo": self.r[0], "r_hi": self.r[-1], "wall": self.wall}

    def to_dict(self) -> dict:
        d = {"kind": self.kind, "r": list(self.r), "V": list(self.V), "slopes": list(self.slopes),
             "wall": self.wall}
        if self.source:
            d["source"] = self.source
        return d

    @classmethod
    def from_params(cls, **params) -> "SplinePotential":
        """Build from the fields of a description (``to_dict`` without ``kind``), with clear errors."""
        known = {"r", "V", "slopes", "wall", "source"}
        unknown = sorted(str(k) for k in params if k not in known)
        if unknown:
            raise HGNError(f"spline potential has no field(s) {unknown}; its fields are {sorted(known)}")
        for name in ("r", "V"):
            if name not in params:
                raise HGNError(f"spline potential: field {name!r} is missing (a spline needs 'r' and 'V', "
                               "one value per knot)")
        return cls(**params)

    @classmethod
    def fit(cls, potential: PairPotential, r, wall: float = 1.0) -> "SplinePotential":
        """The spline through ``potential`` at knots ``r`` with its exact end slopes."""
        r = np.asarray(r, dtype=np.float64)
        v = np.asarray(potential.energy(r), dtype=np.float64)
        s = np.asarray(potential.dvdr(r[[0, -1]]), dtype=np.float64)
        return cls(r=tuple(r.tolist()), V=tuple(v.tolist()), slopes=tuple(s.tolist()), wall=wall,
                   source=f"fit to {potential.kind}")


def grf_values(seed: int, x: np.ndarray, length_scale: float) -> np.ndarray:
    """One draw of a zero-mean unit-variance Gaussian random field with covariance
    exp(-(x_i - x_j)^2 / (2 l^2)) at the points ``x``, from ``seed``."""
    x = np.asarray(x, dtype=np.float64)
    k = np.exp(-0.5 * ((x[:, None] - x[None, :]) / length_scale) ** 2)
    k[np.diag_indices_from(k)] += GRF_JITTER
    chol = np.linalg.cholesky(k)
    z = np.random.default_rng(seed).standard_normal(len(x))
    return chol @ z


def grf_potential(seed: int, length_scale: float = GRF_LENGTH_SCALE, amplitude: float = GRF_AMPLITUDE,
                  r_lo: float = GRF_R_LO, r_hi: float = GRF_R_HI, knots: int = GRF_KNOTS,
                  wall: float = 1.0) -> SplinePotential:
    """A smooth bounded random potential (module notes): GRF values squashed
    into (0, amplitude) on ``knots`` evenly spaced knots of [r_lo, r_hi], the end
    knots at the rim ``amplitude`` with zero slopes. Reproducible from ``seed``."""
    where = "random (grf) potential"
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) < 2**63:
        raise HGNError(f"{where}: seed must be a whole number >= 0, got {seed!r:.40}")
    if isinstance(knots, bool) or not isinstance(knots, numbers.Integral) or not 4 <= int(knots) <= 2000:
        raise HGNError(f"{where}: knots must be a whole number from 4 to 2000, got {knots!r:.40}")
    length_scale = _number(length_scale, "length_scale", where)
    amplitude = _number(amplitude, "amplitude", where)
    r_lo = _number(r_lo, "r_lo", where)
    r_hi = _number(r_hi, "r_hi", where)
    if length_scale <= 0:
        raise HGNError(f"{where}: length_scale must be > 0, got {length_scale}")
    if amplitude <= 0:
        raise HGNError(f"{where}: amplitude must be > 0, got {amplitude}")
    if not 0 < r_lo < r_hi:
        raise HGNError(f"{where}: need 0 < r_lo < r_hi, got r_lo={r_lo}, r_hi={r_hi}")
    x = np.linspace(r_lo, r_hi, int(knots))
    g = grf_values(int(seed), x, length_scale)
    v = amplitude * 0.5 * (1.0 + np.tanh(g))
    v[0] = v[-1] = amplitude
    return SplinePotential(r=tuple(x.tolist()), V=tuple(v.tolist()), slopes=(0.0, 0.0), wall=wall,
                           source=f"grf seed={int(seed)} length_scale={length_scale:g} amplitude={amplitude:g}")


#: largest potential description file read (bytes): 10,000 knots as JSON text need < 1 MB
MAX_POTENTIAL_FILE = 16 * 2**20
#: the settings of :func:`grf_potential` besides the seed (the command line's -P names)
GRF_SETTINGS = ("length_scale", "amplitude", "r_lo", "r_hi", "knots", "wall")


def read_potential_file(path) -> PairPotential:
    """The potential described by a JSON file: ``{"kind": "spline", "r": [...],
    "V": [...], "slopes": [left, right] (optional), "wall": W (optional)}`` (or
    any other kind with its parameters, e.g. ``{"kind": "morse", "D": 2}``).
    HGNError naming the file and what is wrong."""
    import json
    from pathlib import Path

    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_POTENTIAL_FILE:
            raise HGNError(f"potential file {p}: {size} bytes is more than the {MAX_POTENTIAL_FILE} accepted")
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HGNError(f"potential file {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HGNError(f"potential file {p} cannot be read: {exc}") from None
    try:
        d = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise HGNError(f"potential file {p} is not valid JSON ({exc}); expected "
                       '{"kind": "spline", "r": [...], "V": [...], "slopes": [left, right]}') from None
    if not isinstance(d, dict):
        raise HGNError(f"potential file {p} must hold one JSON object such as "
                       f'{{"kind": "spline", "r": [...], "V": [...]}}, got {type(d).__name__}')
    try:
        return PairPotential.from_dict(d)
    except HGNError as exc:
        raise HGNError(f"potential file {p}: {exc}") from None


def grf_from_settings(seed, settings: dict) -> SplinePotential:
    """:func:`grf_potential` from command-line style settings (``-P name=value`` floats)."""
    unknown = sorted(set(settings) - set(GRF_SETTINGS))
    if unknown:
        raise HGNError(f"the grf potential has no setting(s) {unknown}; its settings are {list(GRF_SETTINGS)}")
    kw = dict(settings)
    if "knots" in kw:
        k = kw["knots"]
        if not (isinstance(k, numbers.Real) and math.isfinite(k) and float(k).is_integer()):
            raise HGNError(f"random (grf) potential: knots must be a whole number, got {k!r}")
        kw["knots"] = int(k)
    return grf_potential(seed, **kw)
