"""Shared fixtures for the core tests: one small system of every builder and
potential, and helpers that check derivatives by finite differences."""
import numpy as np
import pytest

from core.physics import builders
def _edge_scaled_custom():
    # a ring of 5 particles plus a diagonal, each spring with its own strength
    ang = np.linspace(0, 2 * np.pi, 5, endpoint=False)
    q = np.stack([np.cos(ang), np.sin(ang)], 1) * 1.2
    edges = [[0, 1], [1, 2], [2, 3], [3, 4], [0, 4], [0, 2]]
    return builders.custom(2, q, edges, masses=[1.0, 2.0, 0.5, 1.5, 1.0], potential="anharmonic",
                           potential_params={"k": 2.0, "r0": 1.1, "beta": 0.5},
                           edge_scale=[1.0, 0.5, 2.0, 1.5, 0.7, 3.0])


def _periodic_custom():
    # a fixed graph in a periodic box, with edges that cross the boundary
    q = np.array([[0.2, 0.5], [2.8, 0.5], [1.5, 2.7], [1.5, 0.3]])
    return builders.custom(2, q, [[0, 1], [1, 2], [0, 3], [2, 3]], potential="harmonic",
                           potential_params={"k": 3.0, "r0": 0.5}, box=[3.0, 3.0])


#: name -> factory of a small system; covers every builder and every potential
SYSTEM_FACTORIES = {
    "chain2d-harmonic": lambda: builders.chain(6, dim=2, potential_params={"k": 2.0, "r0": 1.0}),
    "chain3d-morse": lambda: builders.chain(5, dim=3, potential="morse", potential_params={"D": 1.5, "a": 1.3}),
    "square-anharmonic": lambda: builders.square_lattice(3, 4, potential="anharmonic"),
    "triangular-harmonic": lambda: builders.triangular_lattice(3, 4, spacing=1.2, mass=2.0),
    "cubic-harmonic": lambda: builders.cubic_lattice(3, 3, 2, potential_params={"k": 1.5}),
    "cubic-lj-edges": lambda: builders.cubic_lattice(2, 2, 3, spacing=2 ** (1 / 6), potential="lennard-jones"),
    "molecular-lj-periodic-3d": lambda: builders.molecular(64, density=0.8, dim=3, cutoff=2.0, jitter=0.1, seed=3),
    "molecular-lj-free-3d": lambda: builders.molecular(27, density=0.8, dim=3, cutoff=2.5, periodic=False,
                                                      jitter=0.1, seed=4),
    "molecular-lj-periodic-2d": lambda: builders.molecular(49, density=0.7, dim=2, cutoff=2.5, jitter=0.1),
    "molecular-morse-periodic": lambda: builders.molecular(64, density=0.8, dim=3, potential="morse",
                                                          potential_params={"D": 1.0, "a": 2.0, "r0": 1.1},
                                                          cutoff=2.0, jitter=0.1, seed=5),
    "molecular-morse-free-2d": lambda: builders.molecular(25, density=0.8, dim=2, potential="morse",
                                                         potential_params={"D": 1.0, "a": 2.0, "r0": 1.1},
                                                         cutoff=2.2, periodic=False),
    "custom-edge-scale": _edge_scaled_custom,
    "custom-periodic-edges": _periodic_custom,
}


@pytest.fixture(params=sorted(SYSTEM_FACTORIES))
def any_system(request):
    """Every builder and potential in turn (a fresh System each time)."""
    return SYSTEM_FACTORIES[request.param]()


@pytest.fixture(params=sorted(n for n in SYSTEM_FACTORIES if "periodic" not in n))
def free_system(request):
    """Every system without a periodic box (for rotations)."""
    s = SYSTEM_FACTORIES[request.param]()
    assert s.box is None
    return s


def perturbed(system, scale=0.05, seed=0):
    """Reference positions moved by N(0, scale^2) per coordinate."""
    rng = np.random.default_rng(seed)
    return system.positions + scale * rng.standard_normal(system.positions.shape)


def numerical_gradient(fun, x, h=1e-6):
    """Central finite-difference gradient of a scalar function of an array."""
    x = np.array(x, dtype=float)
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for k in range(flat.size):
        old = flat[k]
        flat[k] = old + h
        up = fun(x)
        flat[k] = old - h
        down = fun(x)
        flat[k] = old
        gflat[k] = (up - down) / (2 * h)
    return g


@pytest.fixture
def fd_gradient():
    return numerical_gradient


@pytest.fixture
def perturb():
    return perturbed
