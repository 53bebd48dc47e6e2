"""What colour each particle is drawn in.

Per-particle quantities the views and the video export colour by:

* ``error``: |q_hat_i - q_i| of the prediction against the ground truth
  (minimum image in a periodic box, via core.learning.metrics);
* ``speed``: |p_i| / m_i;
* ``energy``: kinetic energy of particle i plus half of each pair energy it
  takes part in (so the per-particle energies sum to H), using the system's
  potential and graph through core.physics.forces.ForceField.

:class:`Colouring` turns one frame of a roll-out into RGBA arrays through
the colour map (:data:`palette.COLORMAP`) and a value range: the live views
let the range grow with every frame shown, the export fixes it beforehand
from a sample of the exported frames (:meth:`Colouring.fit`). For the same
range both give identical colours, because both call this code.
"""
from __future__ import annotations

import numpy as np

from core.physics.system import System

from . import palette

COLOUR_MODES = {"uniform": "Uniform", "error": "Position error", "speed": "Speed",
                "energy": "Particle energy"}
UNITS = {"error": "|Δq|", "speed": "|v|", "energy": "E_i"}
#: frames sampled to fix a colour range (:meth:`Colouring.fit`)
RANGE_SAMPLES = 64


def particle_error(system: System, q_true: np.ndarray, q_pred: np.ndarray) -> np.ndarray:
    from core.learning.metrics import position_difference

    d = position_difference(q_true[None], q_pred[None], system.box)[0]
    return np.sqrt(np.sum(d * d, axis=1))


def particle_speed(system: System, p: np.ndarray) -> np.ndarray:
    return np.sqrt(np.sum(p * p, axis=1)) / system.masses


class ParticleEnergy:
    """Per-particle energy with a cached force field (one per system)."""

    def __init__(self, system: System):
        from core.physics.forces import ForceField

        self.system = system
        self.ff = ForceField(system)
        pot = system.potential
        self.shift = float(pot.energy(np.array(system.cutoff))) if system.cutoff is not None else 0.0

    def __call__(self, q: np.ndarray, p: np.ndarray) -> np.ndarray:
        s = self.system
        e = 0.5 * np.sum(p * p, axis=1) / s.masses
        i, j, _, r, scale = self.ff.active_pairs(q, fresh=True)
        v = s.potential.energy(r) - self.shift
        if scale is not None:
            v = v * scale
        e += 0.5 * (np.bincount(i, v, minlength=s.n) + np.bincount(j, v, minlength=s.n))
        return e


def colormap_rgba(values: np.ndarray, vmin: float, vmax: float, name: str = palette.COLORMAP,
                  alpha: float = 1.0) -> np.ndarray:
    """(N, 4) float32 RGBA of values scaled into [vmin, vmax]."""
    from vispy.color import get_colormap

    span = vmax - vmin if vmax > vmin else 1.0
    x = np.clip((np.asarray(values, float) - vmin) / span, 0.0, 1.0)
    rgba = get_colormap(name).map(x.astype(np.float32)).astype(np.float32)
    rgba[:, 3] = alpha
    return rgba


def colour_stops(n: int = 11, name: str = palette.COLORMAP) -> list[tuple[float, tuple]]:
    """(position 0..1, RGBA) stops of the colour map, bottom to top of a
    colour bar."""
    from vispy.color import get_colormap

    x = np.linspace(0, 1, n, dtype=np.float32)
    return [(float(a), tuple(float(c) for c in rgba)) for a, rgba in zip(x, get_colormap(name).map(x))]


def bar_labels(vmin: float, vmax: float) -> tuple[str, str]:
    """The (top, bottom) labels of a colour bar."""
    return f"{vmax:.3g}", f"{vmin:.3g}"


def run_colour(which: str) -> tuple:
    """The uniform colour of a run ('truth' or 'prediction')."""
    return palette.TRUTH if which == "truth" else palette.PREDICTION


class Colouring:
    """Colours of the particles of one roll-out (a RolloutBuffer) in one
    colour mode. ``colours(which, f)`` is None in the uniform mode (each
    view then uses its run's colour)."""

    def __init__(self, buffer, mode: str, colormap: str = palette.COLORMAP):
        self.buffer = buffer
        self.mode = mode
        self.colormap = colormap
        self.range: list[float] | None = None
        self.fixed = False
        self._energy: ParticleEnergy | None = None

    @property
    def uniform(self) -> bool:
        return self.mode == "uniform" or self.mode not in UNITS

    @property
    def unit(self) -> str:
        return UNITS.get(self.mode, "")

    def values(self, which: str, f: int) -> np.ndarray | None:
        """The quantity of each particle of run ``which`` at frame ``f``."""
        b, mode = self.buffer, self.mode
        if mode == "error":
            if not b.with_prediction:
                return None
            return particle_error(b.system, b.q["truth"][f], b.q["prediction"][f])
        if mode == "speed":
            return particle_speed(b.system, b.p[which][f])
        if mode == "energy":
            if self._energy is None or self._energy.system is not b.system:
                self._energy = ParticleEnergy(b.system)
            return self._energy(b.q[which][f], b.p[which][f])
        return None

    def include(self, values: np.ndarray) -> None:
        """Widen the range to hold ``values`` (unless fixed by :meth:`fit`)."""
        if self.fixed:
            return
        lo, hi = float(np.min(values)), float(np.max(values))
        if self.range is not None:
            lo, hi = min(self.range[0], lo), max(self.range[1], hi)
        if self.mode == "error":
            lo = 0.0
        self.range = [lo, hi]

    def fit(self, frames, runs=("truth", "prediction")) -> tuple[float, float] | None:
        """Fix the range from up to :data:`RANGE_SAMPLES` of ``frames``
        (first and last always in) of the given runs."""
        if self.uniform:
            return None
        frames = list(frames)
        step = max(1, len(frames) // RANGE_SAMPLES)
        sample = frames[::step] + [frames[-1]]
        if not self.buffer.with_prediction:
            runs = ("truth",)
        self.fixed, self.range = False, None
        for f in sample:
            for w in runs:
                v = self.values(w, f)
                if v is not None:
                    self.include(v)
        if self.range is None:
            return None
        if not self.range[1] > self.range[0]:
            self.range[1] = self.range[0] + 1e-12
        self.fixed = True
        return tuple(self.range)

    def colours(self, which: str, f: int, alpha: float = 1.0) -> np.ndarray | None:
        """(N, 4) RGBA of run ``which`` at frame ``f``; None when uniform."""
        if self.uniform:
            return None
        v = self.values(which, f)
        if v is None:
            return None
        self.include(v)
        return colormap_rgba(v, self.range[0], self.range[1], self.colormap, alpha)
