"""Physics: particle systems, pair potentials, forces, integrators and exact
ground truth (trajectories and training datasets). NumPy and SciPy only."""

# data-defined potentials (splines) register themselves with core.physics.potentials on import; imported
# here so that every process that reads a file (python -m core, the studio's workers) knows them
from . import splines as _splines  # noqa: E402,F401
