"""Pair potentials V(r) with analytic derivatives.

Each potential is a frozen dataclass of its parameters with ``energy(r)`` and
``dvdr(r)`` acting elementwise on numpy arrays of distances. The registry
:data:`POTENTIALS` maps the names used in files, the command line and the
studio to the classes; :func:`make_potential` builds one from a name and a
parameter dict and validates it. New kinds (for example user-drawn splines)
register themselves with :func:`register`.

Truncation and shifting at a cutoff are not a property of the potential but
of a system with dynamic (cutoff) edges: see ``core.physics.forces``.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from core.errors import HGNError

POTENTIALS: dict[str, type["PairPotential"]] = {}
#: potentials defined by data (arrays of knots, not a few float parameters): built by
#: ``cls.from_params(**fields)``; kept apart from :data:`POTENTIALS`, whose classes have float parameters
#: with defaults (the studio's parameter forms). See ``core.physics.splines``.
DATA_POTENTIALS: dict[str, type["PairPotential"]] = {}


def register(cls):
    """Class decorator: make a potential available by its ``kind`` name."""
    POTENTIALS[cls.kind] = cls
    return cls


def register_data(cls):
    """Class decorator: make a data-defined potential (``from_params``) available by its ``kind`` name."""
    DATA_POTENTIALS[cls.kind] = cls
    return cls


@dataclass(frozen=True)
class PairPotential:
    """Base class. Subclasses set ``kind`` and implement energy and dvdr."""

    kind: ClassVar[str] = "base"
    #: parameters that must be strictly positive
    positive: ClassVar[tuple[str, ...]] = ()
    #: parameters that must be >= 0
    nonnegative: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise HGNError(f"{self.kind} potential: parameter {f.name}={v!r} is not a number")
            v = float(v)
            if not math.isfinite(v):
                raise HGNError(f"{self.kind} potential: parameter {f.name} must be finite, got {v}")
            object.__setattr__(self, f.name, v)
        for name in self.positive:
            if getattr(self, name) <= 0:
                raise HGNError(f"{self.kind} potential: {name} must be > 0, got {getattr(self, name)}")
        for name in self.nonnegative:
            if getattr(self, name) < 0:
                raise HGNError(f"{self.kind} potential: {name} must be >= 0, got {getattr(self, name)}")

    # -- interface -------------------------------------------------------
    def energy(self, r: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def dvdr(self, r: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def r_min(self) -> float:
        """Distance of the minimum of V (the natural bond length)."""
        return float(self.r0)

    # -- serialisation ---------------------------------------------------
    def params(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_dict(self) -> dict:
        return {"kind": self.kind, **self.params()}

    @staticmethod
    def from_dict(d: dict) -> "PairPotential":
        if not isinstance(d, dict):
            raise HGNError(f"a potential must be described by a mapping {{kind, parameters...}}, got {d!r:.80}")
        d = dict(d)
        kind = d.pop("kind", None)
        return make_potential(kind, **d)


@register
@dataclass(frozen=True)
class Harmonic(PairPotential):
    """V(r) = 1/2 k (r - r0)^2"""

    k: float = 1.0
    r0: float = 1.0
    kind: ClassVar[str] = "harmonic"
    positive: ClassVar[tuple[str, ...]] = ("k",)
    nonnegative: ClassVar[tuple[str, ...]] = ("r0",)

    def energy(self, r):
        return 0.5 * self.k * (np.asarray(r) - self.r0) ** 2

    def dvdr(self, r):
        return self.k * (np.asarray(r) - self.r0)


@register
@dataclass(frozen=True)
class Anharmonic(PairPotential):
    """FPU-beta: V(r) = 1/2 k (r - r0)^2 + 1/4 beta (r - r0)^4"""

    k: float = 1.0
    r0: float = 1.0
    beta: float = 1.0
    kind: ClassVar[str] = "anharmonic"
    positive: ClassVar[tuple[str, ...]] = ("k",)
    nonnegative: ClassVar[tuple[str, ...]] = ("r0", "beta")

    def energy(self, r):
        x = np.asarray(r) - self.r0
        return 0.5 * self.k * x**2 + 0.25 * self.beta * x**4

    def dvdr(self, r):
        x = np.asarray(r) - self.r0
        return self.k * x + self.beta * x**3


@register
@dataclass(frozen=True)
class Morse(PairPotential):
    """V(r) = D (1 - exp(-a (r - r0)))^2"""

    D: float = 1.0
    a: float = 1.0
    r0: float = 1.0
    kind: ClassVar[str] = "morse"
    positive: ClassVar[tuple[str, ...]] = ("D", "a")
    nonnegative: ClassVar[tuple[str, ...]] = ("r0",)

    def energy(self, r):
        e = np.exp(-self.a * (np.asarray(r) - self.r0))
        return self.D * (1.0 - e) ** 2

    def dvdr(self, r):
        e = np.exp(-self.a * (np.asarray(r) - self.r0))
        return 2.0 * self.D * self.a * (1.0 - e) * e


@register
@dataclass(frozen=True)
class LennardJones(PairPotential):
    """V(r) = 4 eps ((sigma/r)^12 - (sigma/r)^6)

    Untruncated here; a system with a cutoff truncates and shifts it.
    """

    epsilon: float = 1.0
    sigma: float = 1.0
    kind: ClassVar[str] = "lennard-jones"
    positive: ClassVar[tuple[str, ...]] = ("epsilon", "sigma")

    def energy(self, r):
        s6 = (self.sigma / np.asarray(r)) ** 6
        return 4.0 * self.epsilon * (s6 * s6 - s6)

    def dvdr(self, r):
        r = np.asarray(r)
        s6 = (self.sigma / r) ** 6
        return -24.0 * self.epsilon * (2.0 * s6 * s6 - s6) / r

    @property
    def r_min(self) -> float:
        return 2.0 ** (1.0 / 6.0) * self.sigma


@register
@dataclass(frozen=True)
class QuarticSpring(PairPotential):
    """V(r) = k (r^2 - r0^2)^2; with k = r0 = 1 the spring (r^2 - 1)^2 of the
    NeurIPS-2022 physics-GNN benchmark (Thangamuthu et al., 2022)."""

    k: float = 1.0
    r0: float = 1.0
    kind: ClassVar[str] = "quartic"
    positive: ClassVar[tuple[str, ...]] = ("k",)
    nonnegative: ClassVar[tuple[str, ...]] = ("r0",)

    def energy(self, r):
        r = np.asarray(r)
        return self.k * (r * r - self.r0 * self.r0) ** 2

    def dvdr(self, r):
        r = np.asarray(r)
        return 4.0 * self.k * r * (r * r - self.r0 * self.r0)


#: accepted spellings of potential names
ALIASES = {"lj": "lennard-jones", "lennard_jones": "lennard-jones", "lennardjones": "lennard-jones",
           "fpu": "anharmonic", "fpu-beta": "anharmonic", "spring": "harmonic",
           "neurips-spring": "quartic", "quartic-spring": "quartic", "splines": "spline"}


def make_potential(kind: str | None, **params) -> PairPotential:
    """Build a potential from its name and parameters, with clear errors."""
    if not isinstance(kind, str):
        raise HGNError(f"potential kind must be a name such as {sorted(POTENTIALS)}, got {kind!r}")
    key = ALIASES.get(kind.strip().lower(), kind.strip().lower())
    if key in DATA_POTENTIALS:
        return DATA_POTENTIALS[key].from_params(**params)
    if key not in POTENTIALS:
        known = sorted(POTENTIALS) + sorted(DATA_POTENTIALS)
        raise HGNError(f"unknown potential {kind!r}; known potentials: {', '.join(known)}")
    cls = POTENTIALS[key]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = {str(k) for k in params} - names
    if unknown:
        raise HGNError(f"{key} potential has no parameter(s) {sorted(unknown)}; its parameters are {sorted(names)}")
    return cls(**params)

