"""Every default the studio offers, in one place.

Widgets read their initial values (and the "Reset to defaults" values) from
here; the session model starts from here; tests build tiny variants with
``dataclasses.replace``. Model-method defaults (RF-HGN widths, samplers, ...)
are *not* repeated here: they come from the core config dataclasses
(``core.learning.rfhgn.RFConfig``) so there is one default per number project-wide.
"""
from __future__ import annotations

from dataclasses import dataclass, field

#: system kinds the system panel offers, in order, with their labels
SYSTEM_KINDS: dict[str, str] = {
    "chain": "Chain",
    "square": "Square lattice (2D)",
    "triangular": "Triangular lattice (2D)",
    "cubic": "Cubic lattice (3D)",
    "molecular": "Molecular (cutoff pairs)",
    "custom": "Drawn system",
}

#: the builder parameters each kind shows, with their defaults. The names are
#: the keyword arguments of the core.physics.builders function of the same kind.
BUILDER_DEFAULTS: dict[str, dict] = {
    "chain": {"n": 8, "spacing": 1.0, "dim": 2, "mass": 1.0},
    "square": {"n": 6, "m": 6, "spacing": 1.0, "mass": 1.0},
    "triangular": {"n": 6, "m": 6, "spacing": 1.0, "mass": 1.0},
    "cubic": {"n": 4, "m": 4, "l": 4, "spacing": 1.0, "mass": 1.0},
    "molecular": {"n": 125, "density": 0.8, "dim": 3, "cutoff": 2.5, "periodic": True,
                  "mass": 1.0, "seed": 0, "jitter": 0.0},
}

#: the kind the studio opens with ("the default lattice")
DEFAULT_KIND = "cubic"

#: default potential per kind (lattices use springs, molecular systems LJ)
DEFAULT_POTENTIAL: dict[str, str] = {
    "chain": "harmonic", "square": "harmonic", "triangular": "harmonic",
    "cubic": "harmonic", "molecular": "lennard-jones", "custom": "harmonic",
}

#: tooltips and labels of builder parameters
PARAM_LABELS: dict[str, str] = {
    "n": "n", "m": "m", "l": "l", "spacing": "Spacing", "dim": "Dimension", "mass": "Mass",
    "density": "Density", "cutoff": "Cutoff", "periodic": "Periodic box", "seed": "Seed",
    "jitter": "Jitter",
}
PARAM_TIPS: dict[str, str] = {
    "n": "particles along the first axis (chain length / particle count for molecular systems)",
    "m": "particles along the second axis",
    "l": "particles along the third axis",
    "spacing": "lattice spacing (length units)",
    "dim": "2 or 3 dimensions",
    "mass": "mass of every particle",
    "density": "number density (particles per unit volume/area)",
    "cutoff": "pairs closer than this interact (truncated and shifted potential)",
    "periodic": "periodic box with the minimum-image convention",
    "seed": "random seed of the lattice jitter",
    "jitter": "random displacement of the start sites, in lattice spacings (< 0.3)",
}


@dataclass(frozen=True)
class SimulationDefaults:
    """Ground truth and training data (maps to core.physics.datagen.DataSpec), and the
    roll-out shown after training."""

    dt: float = 0.01
    steps: int = 200                 # steps per training trajectory
    n_trajectories: int = 8
    save_every: int = 4
    displacement: float = 0.1        # std of initial position perturbation
    momentum: float = 0.1            # std of initial momenta
    temperature: float = 0.0         # > 0: Maxwell-Boltzmann momenta at k_B T instead
    test_fraction: float = 0.25
    seed: int = 0
    rollout_steps: int = 2000        # steps of the comparison roll-out after a fit
    rollout_save_every: int = 5
    rollout_device: str = "cpu"      # where learned roll-outs run: cpu | cuda (core.learning.rollout)
    rollout_precision: str = "float64"  # float32: separable models only (measured error in core.learning.stepper)
    rollout_threads: int = 1         # torch threads of a roll-out, 0 = every core (rollout.ROLLOUT_THREADS)
    integrator: str = "verlet"       # ground truth (data, roll-out): verlet | rk4 | dop853 (core.physics.reference)
    reference_check: bool = False    # after each roll-out: its ground truth against DOP853 (studio.jobs)


SIMULATION = SimulationDefaults()

#: simulation settings that differ per system kind. Switching the kind moves
#: a setting to the new kind's value only if the user left it at the old
#: kind's value. Lennard-Jones pairs blow up from random displacements at
#: liquid density, so molecular systems start from the lattice with thermal
#: (Maxwell-Boltzmann) momenta and a smaller step.
KIND_SIMULATION: dict[str, dict] = {
    "molecular": {"dt": 0.005, "displacement": 0.0, "temperature": 1.0},
}


def simulation_default(kind: str, name: str):
    """The default of one simulation setting for a system kind."""
    return KIND_SIMULATION.get(kind, {}).get(name, getattr(SIMULATION, name))


@dataclass(frozen=True)
class PlaybackDefaults:
    fps: float = 30.0                # frames per second at speed 1
    speed: float = 1.0               # saved frames advanced per tick multiplier
    loop: str = "loop"               # "once" | "loop" | "bounce"
    speeds: tuple = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
    #: while playing, plot cursors move at most this often (s); each move
    #: repaints three plots, which would otherwise halve the frame rate
    cursor_interval: float = 0.2
    #: while a roll-out streams in, plots are redrawn at most this often (s)
    plot_interval: float = 0.25


PLAYBACK = PlaybackDefaults()


@dataclass(frozen=True)
class ViewDefaults:
    # colours (background, runs, bonds, colour map): studio/scene/palette.py
    particle_size: float = 0.42       # sphere diameter in units of the bond length
    colour_by: str = "uniform"        # "uniform" | "error" | "speed" | "energy"
    layout: str = "side"              # "side" (linked cameras) | "overlay"
    #: first-run window size and dock sizes (later runs restore the user's)
    window_size: tuple = (1500, 940)
    side_dock_widths: tuple = (370, 330)   # left (system/draw/train), right (models)
    plots_height: int = 220
    #: above this many bonds the views start with bonds hidden (the "Bonds"
    #: box shows them): under software rendering 12k lines cost more than
    #: 4k spheres, and a dense lattice's lines are clutter anyway
    auto_bond_limit: int = 6000


VIEW = ViewDefaults()


@dataclass(frozen=True)
class DrawingDefaults:
    grid: float = 0.5                 # snap grid spacing (length units)
    snap: bool = True
    mass: float = 1.0
    spring: float = 1.0               # edge_scale of a new spring
    layers: int = 1                   # extrude into this many layers (3D when > 1)
    layer_spacing: float = 1.0
    pixels_per_unit: float = 60.0


DRAWING = DrawingDefaults()


@dataclass(frozen=True)
class ZeroShotDefaults:
    factor: int = 4                   # scale each lattice axis by this
    steps: int = 1000
    save_every: int = 10


ZERO_SHOT = ZeroShotDefaults()

#: organisation/application names of the persistent settings (QSettings);
#: the environment variable HGN_STUDIO_SETTINGS names an INI file instead.
SETTINGS_ORG = "HGN"
SETTINGS_APP = "HGN Studio"
SETTINGS_ENV = "HGN_STUDIO_SETTINGS"

#: how often workers may emit progress (seconds); keeps the GUI thread free
PROGRESS_INTERVAL = 0.05
#: Python's GIL switch interval while the studio runs (seconds; Python's
#: default is 0.005). PySide releases the GIL around every Qt call, so a
#: paint that makes hundreds of Qt calls waits up to one interval per call
#: for a busy worker thread to hand the GIL back; 0.5 ms keeps a repaint
#: during training in the tens of milliseconds instead of hundreds.
GIL_SWITCH_INTERVAL = 0.0005
#: frames the background roll-out computes between timeline updates
ROLLOUT_CHUNK_FRAMES = 10


@dataclass
class Choices:
    """Choice lists of known config fields, for combo boxes in generated forms."""

    fields: dict = field(default_factory=lambda: {
        "encoding": ["invariant", "frame"],
        "sampler": ["swim", "elm", "adaptive"],
    })


CHOICES = Choices().fields
