"""Physics: particle systems, pair potentials, forces, integrators and exact
ground truth (trajectories and training datasets). NumPy and SciPy only."""
