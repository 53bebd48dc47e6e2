"""Builders make the systems they promise, and every bad input is refused
with an HGNError whose message says what was wrong."""
import math

import numpy as np
import pytest

from core.physics import builders
from core.physics.datagen import DataSpec, generate, random_snapshots
from core.errors import HGNError
from core.physics.initial import initial_state
from core.physics.potentials import Harmonic, make_potential
from core.physics.simulate import simulate
from core.physics.system import System, make_system


# -- what the builders make --------------------------------------------------
def _bond_lengths(s):
    d = s.positions[s.edges[:, 0]] - s.positions[s.edges[:, 1]]
    return np.linalg.norm(d, axis=1)


@pytest.mark.parametrize("dim", [2, 3])
def test_chain_is_a_line_of_nearest_neighbour_bonds(dim):
    s = builders.chain(7, spacing=1.5, dim=dim)
    assert s.n == 7 and s.dim == dim and s.positions.shape == (7, dim)
    assert s.edges.tolist() == [[k, k + 1] for k in range(6)]
    assert np.allclose(_bond_lengths(s), 1.5)


def test_square_lattice_counts_and_bond_lengths():
    n, m = 4, 5
    s = builders.square_lattice(n, m, spacing=0.7)
    assert s.n == n * m
    assert len(s.edges) == n * (m - 1) + m * (n - 1)
    assert np.allclose(_bond_lengths(s), 0.7)


def test_triangular_lattice_has_six_neighbours_inside():
    s = builders.triangular_lattice(5, 6, spacing=1.3)
    assert np.allclose(_bond_lengths(s), 1.3)
    deg = np.bincount(s.edges.ravel(), minlength=s.n)
    assert deg.max() == 6
    # interior sites (not on the first/last row or column) have six neighbours
    idx = np.arange(s.n).reshape(5, 6)
    assert np.all(deg[idx[1:-1, 1:-1].ravel()] == 6)
    # every pair closer than 1.01 spacings is bonded and no bond is longer
    from core.physics.neighbours import pairs_within
    assert pairs_within(s.positions, 1.3 * 1.01).tolist() == s.edges.tolist()


def test_cubic_lattice_counts_and_bond_lengths():
    s = builders.cubic_lattice(4, 4, 4)
    assert s.n == 64 and len(s.edges) == 3 * 4 * 4 * 3
    assert np.allclose(_bond_lengths(s), 1.0)
    assert len(np.unique(np.sort(s.edges, axis=1), axis=0)) == len(s.edges)


@pytest.mark.parametrize("dim", [2, 3])
def test_molecular_fills_a_box_of_the_requested_density(dim):
    s = builders.molecular(64, density=0.6, dim=dim, cutoff=1.8)
    assert s.n == 64 and s.edges is None and s.cutoff == 1.8
    assert np.prod(s.box) == pytest.approx(64 / 0.6)
    assert np.all((s.positions >= 0) & (s.positions < s.box))
    free = builders.molecular(64, density=0.6, dim=dim, cutoff=1.8, periodic=False)
    assert free.box is None


def test_rebuild_scaled_grows_a_lattice_and_keeps_its_potential():
    s = builders.square_lattice(3, 3, potential="morse", potential_params={"D": 2.0})
    big = builders.rebuild_scaled(s, 4)
    assert big.n == 144 and big.potential == s.potential
    with pytest.raises(HGNError, match="builder"):
        builders.rebuild_scaled(builders.custom(2, [[0, 0], [1, 0]], [[0, 1]]), 2)


def test_build_by_name_and_its_errors():
    assert builders.build("chain", n=3).n == 3
    with pytest.raises(HGNError, match="unknown system kind"):
        builders.build("hexagonal", n=3)
    with pytest.raises(HGNError, match="chain"):
        builders.build("chain", n=3, colour="red")


def test_copy_is_deep_and_validated():
    s = builders.chain(3)
    c = s.copy()
    c.positions[0, 0] = 99.0
    assert s.positions[0, 0] == 0.0
    with pytest.raises(HGNError, match="masses"):
        s.copy(masses=np.array([1.0, -1.0, 1.0]))


# -- bad input: sizes --------------------------------------------------------
@pytest.mark.parametrize("call,match", [
    (lambda: builders.chain(0), "at least 2"),
    (lambda: builders.chain(1), "at least 2"),
    (lambda: builders.chain(-3), "at least 2"),
    (lambda: builders.chain(2.5), "whole number"),
    (lambda: builders.chain(None), "whole number"),
    (lambda: builders.square_lattice("three", 3), "whole number"),
    (lambda: builders.square_lattice(0, 3), "at least 1"),
    (lambda: builders.square_lattice(1, 1), "at least two"),
    (lambda: builders.triangular_lattice(3, -2), "at least 1"),
    (lambda: builders.cubic_lattice(-1, 2, 2), "at least 1"),
    (lambda: builders.cubic_lattice(2, 2, 0), "at least 1"),
    (lambda: builders.molecular(0), "at least 2"),
    (lambda: builders.chain(4, spacing=0.0), "spacing must be > 0"),
    (lambda: builders.square_lattice(2, 2, spacing=-1.0), "spacing must be > 0"),
    (lambda: builders.molecular(64, density=0.0, cutoff=1.0), "density must be > 0"),
    (lambda: builders.molecular(64, density=-1, cutoff=1.0), "density must be > 0"),
    (lambda: builders.molecular(64, cutoff=-2.0), "cutoff must be > 0"),
    (lambda: builders.molecular(64, jitter=0.5, cutoff=1.0), "jitter"),
    (lambda: builders.rebuild_scaled(builders.chain(3), 0), "at least 1"),
    (lambda: builders.custom(2, np.zeros((0, 2)), []), "at least one particle"),
])
def test_bad_sizes_are_refused(call, match):
    with pytest.raises(HGNError, match=match):
        call()


# -- bad input: masses -------------------------------------------------------
@pytest.mark.parametrize("call,match", [
    (lambda: builders.chain(3, mass=0.0), "mass must be > 0"),
    (lambda: builders.cubic_lattice(2, 2, 2, mass=-1.0), "mass must be > 0"),
    (lambda: builders.molecular(8, cutoff=0.5, mass=0), "mass must be > 0"),
    (lambda: builders.custom(2, [[0, 0], [1, 0]], [[0, 1]], masses=[1.0, -2.0]), "masses must be > 0; particle 1"),
    (lambda: builders.custom(2, [[0, 0], [1, 0]], [[0, 1]], masses=[0.0, 1.0]), "masses must be > 0; particle 0"),
    (lambda: builders.custom(2, [[0, 0], [1, 0]], [[0, 1]], masses=[np.nan, 1.0]), "finite"),
    (lambda: builders.custom(2, [[0, 0], [1, 0]], [[0, 1]], masses=[1.0, 1.0, 1.0]), "one value per particle"),
])
def test_bad_masses_are_refused(call, match):
    with pytest.raises(HGNError, match=match):
        call()


# -- bad input: geometry and graph -------------------------------------------
@pytest.mark.parametrize("call,match", [
    (lambda: builders.custom(2, [[0, 0], [1, 0], [0, 0]], [[0, 1]]), "particles 0 and 2 overlap"),
    (lambda: builders.custom(2, [[0.1, 0], [2.9, 0]], [[0, 1]], box=[3.0 - 0.2, 3.0]), "overlap"),
    (lambda: builders.custom(2, [[0, 0], [1, 0]], [[0, 2]]), r"edge \(0, 2\) refers to a particle that does not exist"),
    (lambda: builders.custom(2, [[0, 0], [1, 0]], [[-1, 0]]), "does not exist"),
    (lambda: builders.custom(2, [[0, 0], [1, 0], [2, 0]], [[1, 1]]), r"edge \(1, 1\) joins a particle to itself"),
    (lambda: builders.custom(2, [[0, 0], [1, 0]], [[0, 1], [1, 0]]), "same pair twice"),
    (lambda: builders.custom(2, [[0, 0], [1, 0]], [[0, 1], [0, 1]]), "same pair twice"),
    (lambda: builders.custom(2, [[0, 0], [1, 0]], [[0, 0.5]]), "integer"),
    (lambda: builders.custom(2, [[0, 0], [1, 0]], [[0, 1, 2]]), "shape"),
    (lambda: builders.custom(2, [[0, 0], [np.nan, 0]], [[0, 1]]), "particle 1 is not finite"),
    (lambda: builders.custom(2, [[0, 0], [np.inf, 0]], [[0, 1]]), "not finite"),
    (lambda: builders.custom(2, [[0, 0, 0], [1, 0, 0]], [[0, 1]]), r"shape \(N, 2\)"),
    (lambda: builders.custom(2, [[0, 0], [1, 0]], [[0, 1]], edge_scale=[-1.0]), "edge_scale"),
    (lambda: builders.custom(2, [[0, 0], [1, 0]], [[0, 1]], edge_scale=[1.0, 2.0]), "one value per edge"),
    (lambda: builders.custom(2, [[0, 0], [1, 0]], cutoff=0.5, edge_scale=[1.0]), "edge_scale needs fixed edges"),
    (lambda: builders.custom(2, [[0, 0], [1, 0]], [[0, 1]], box=[2.0, -1.0]), "box lengths"),
    (lambda: builders.custom(2, [[0, 0], [1, 0]], [[0, 1]], box=[2.0, 2.0, 2.0]), "one length per axis"),
])
def test_bad_geometry_and_graphs_are_refused(call, match):
    with pytest.raises(HGNError, match=match):
        call()


@pytest.mark.parametrize("dim", [0, 1, 4, "3"])
def test_dimension_other_than_2_or_3_is_refused(dim):
    with pytest.raises(HGNError, match="dimension must be 2 or 3"):
        builders.chain(3, dim=dim)
    with pytest.raises(HGNError, match="dimension must be 2 or 3"):
        builders.molecular(8, dim=dim, cutoff=0.5)
    with pytest.raises(HGNError, match="dimension must be 2 or 3"):
        System(dim=dim, positions=np.zeros((1, 2)), masses=np.ones(1), potential=Harmonic(), edges=np.zeros((0, 2)))


def test_edges_and_cutoff_both_or_neither_are_refused():
    kw = dict(dim=2, positions=[[0, 0], [1, 0]], masses=[1, 1], potential=Harmonic())
    with pytest.raises(HGNError, match="either fixed edges or a cutoff"):
        System(**kw, edges=[[0, 1]], cutoff=1.5)
    with pytest.raises(HGNError, match="either fixed edges or a cutoff"):
        System(**kw)


@pytest.mark.parametrize("cutoff", [0.0, -1.0, math.nan, "far"])
def test_bad_cutoff_values_are_refused(cutoff):
    with pytest.raises(HGNError, match="cutoff must be"):
        System(dim=2, positions=[[0, 0], [1, 0]], masses=[1, 1], potential=Harmonic(), cutoff=cutoff)


def test_cutoff_not_below_half_the_box_is_refused():
    with pytest.raises(HGNError, match="half the box"):
        builders.molecular(27, density=0.8, dim=3, cutoff=2.5)  # box 3.23
    with pytest.raises(HGNError, match="less than half the smallest box length"):
        builders.custom(2, [[0, 0], [1, 0]], cutoff=2.0, box=[4.0, 5.0])


# -- bad input: potentials ---------------------------------------------------
@pytest.mark.parametrize("call,match", [
    (lambda: make_potential("quantum-glue"), "unknown potential 'quantum-glue'"),
    (lambda: make_potential(None), "potential kind must be a name"),
    (lambda: builders.chain(3, potential="coulomb"), "unknown potential 'coulomb'"),
    (lambda: make_potential("harmonic", k=-1.0), "k must be > 0"),
    (lambda: make_potential("harmonic", k=0.0), "k must be > 0"),
    (lambda: make_potential("harmonic", r0=-0.5), "r0 must be >= 0"),
    (lambda: make_potential("anharmonic", beta=-1.0), "beta must be >= 0"),
    (lambda: make_potential("morse", D=0.0), "D must be > 0"),
    (lambda: make_potential("morse", a="steep"), "not a number"),
    (lambda: make_potential("lennard-jones", sigma=0.0), "sigma must be > 0"),
    (lambda: make_potential("lennard-jones", epsilon=math.nan), "finite"),
    (lambda: make_potential("lennard-jones", epsilon=math.inf), "finite"),
    (lambda: make_potential("harmonic", stiffness=2.0), "no parameter"),
    (lambda: builders.chain(3, potential=Harmonic(), potential_params={"k": 2.0}), "not both"),
])
def test_bad_potentials_are_refused(call, match):
    with pytest.raises(HGNError, match=match):
        call()


# -- bad input: runs and data ------------------------------------------------
@pytest.fixture(scope="module")
def small():
    s = builders.chain(3)
    return s, *initial_state(s, seed=0)


@pytest.mark.parametrize("kw,match", [
    (dict(dt=0.0), "dt must be > 0"),
    (dict(dt=-0.01), "dt must be > 0"),
    (dict(dt=math.nan), "dt must be > 0"),
    (dict(dt="fast"), "dt must be a number"),
    (dict(steps=-1), "steps must be >= 0"),
    (dict(steps=2.5), "steps must be a whole number"),
    (dict(steps=None), "steps must be a whole number"),
    (dict(save_every=0), "save_every must be >= 1"),
    (dict(save_every=-2), "save_every must be >= 1"),
    (dict(save_every=True), "save_every must be a whole number"),
])
def test_bad_run_settings_are_refused(small, kw, match):
    s, q, p = small
    args = dict(dt=0.01, steps=10, save_every=1) | kw
    with pytest.raises(HGNError, match=match):
        simulate(s, q, p, **args)


def test_bad_initial_states_are_refused(small):
    s, q, p = small
    with pytest.raises(HGNError, match="initial positions must have shape"):
        simulate(s, q[:2], p, 0.01, 10)
    with pytest.raises(HGNError, match="initial momenta must have shape"):
        simulate(s, q, p[:, :1], 0.01, 10)
    bad = q.copy()
    bad[1, 0] = np.nan
    with pytest.raises(HGNError, match="initial positions contain NaN"):
        simulate(s, bad, p, 0.01, 10)
    with pytest.raises(HGNError, match="initial momenta contain NaN"):
        simulate(s, q, p * np.inf, 0.01, 10)
    with pytest.raises(HGNError, match=">= 0"):
        initial_state(s, displacement=-0.1)
    with pytest.raises(HGNError, match="temperature"):
        initial_state(s, temperature=-1.0)


@pytest.mark.parametrize("kw,match", [
    (dict(n_trajectories=0), "number of trajectories must be at least 1"),
    (dict(steps=-5), "steps must be >= 0"),
    (dict(dt=0.0), "dt must be > 0"),
    (dict(save_every=0), "save_every must be >= 1"),
    (dict(displacement=-0.1), "displacement must be >= 0"),
    (dict(momentum=math.nan), "momentum must be >= 0"),
    (dict(temperature=-1.0), "temperature must be >= 0"),
    (dict(seed=None), "seed is required"),
    (dict(seed=-3), "seed must be at least 0"),
    (dict(test_fraction=1.0), r"test fraction must be in \[0, 1\)"),
    (dict(test_fraction=-0.1), "test fraction"),
])
def test_bad_data_settings_are_refused(small, kw, match):
    with pytest.raises(HGNError, match=match):
        generate(small[0], DataSpec(**kw))


def test_bad_snapshot_requests_are_refused(small):
    s = small[0]
    with pytest.raises(HGNError, match="number of snapshots must be at least 1"):
        random_snapshots(s, 0)
    with pytest.raises(HGNError, match="displacement must be >= 0"):
        random_snapshots(s, 5, displacement=-1)
    with pytest.raises(HGNError, match="unknown data settings"):
        DataSpec.from_dict({"trajectories": 3})


def test_make_system_broadcasts_a_scalar_mass():
    s = make_system(2, [[0, 0], [1, 0], [2, 0]], masses=2.0, edges=[[0, 1], [1, 2]])
    assert s.masses.tolist() == [2.0, 2.0, 2.0]


def test_positions_a_hair_below_zero_in_a_periodic_box_are_accepted():
    # np.mod(-1e-17, 5) == 5.0, which a periodic k-d tree refuses: positions
    # are folded with core.physics.neighbours.wrap instead
    s = builders.custom(2, [[-1e-17, 1.0], [2.0, -1e-17]], cutoff=1.0, box=[5.0, 5.0])
    assert s.n == 2
    from core.physics.neighbours import wrap
    w = wrap(np.array([[-1e-17, 5.0], [10.0 - 1e-15, -5.0]]), np.array([5.0, 5.0]))
    assert np.all((w >= 0) & (w < 5.0))


def test_initial_state_of_a_periodic_system_lies_in_the_box():
    s = builders.molecular(64, density=0.8, dim=3, cutoff=2.0)
    q, p = initial_state(s, displacement=0.5, momentum=0.1, seed=2)
    assert np.all((q >= 0) & (q < s.box))
    assert np.allclose(p.sum(0), 0.0, atol=1e-14)


# -- lattice edges by index arithmetic (issue 10) ------------------------------------------
def _old_grid_edges(shape, offsets, periodic=False):
    """The edge builder before issue 10 (coordinates by itertools, np.unique on rows)."""
    import itertools

    idx = np.arange(int(np.prod(shape))).reshape(shape)
    coords = np.array(list(itertools.product(*[range(s) for s in shape])), dtype=np.int64).reshape(-1, len(shape))
    edges = []
    for off in offsets:
        tgt = coords + np.array(off)
        if periodic:
            tgt = np.mod(tgt, shape)
            ok = np.ones(len(coords), dtype=bool)
        else:
            ok = np.all((tgt >= 0) & (tgt < np.array(shape)), axis=1)
        edges.append(np.stack([idx[tuple(coords[ok].T)], idx[tuple(tgt[ok].T)]], 1))
    e = np.sort(np.concatenate(edges), axis=1)
    return np.unique(e[e[:, 0] != e[:, 1]], axis=0)


@pytest.mark.parametrize("shape", [(3, 3, 3), (1, 4, 2), (2, 1, 5), (6, 5, 4), (1, 1, 3), (2, 2, 2), (4, 3), (1, 7),
                                   (5, 1), (2, 2)])
@pytest.mark.parametrize("periodic", [False, True])
def test_lattice_edges_by_index_arithmetic_equal_the_old_edge_set(shape, periodic):
    from core.physics.builders import _grid, _grid_edges

    units = [tuple(int(k == a) for k in range(len(shape))) for a in range(len(shape))]
    diagonal = units + [tuple([1, -1] + [0] * (len(shape) - 2))]
    for offsets in (units, diagonal):
        new = _grid_edges(shape, offsets, periodic)
        old = _old_grid_edges(shape, offsets, periodic)
        assert new.dtype == np.int64
        assert {tuple(e) for e in new.tolist()} == {tuple(e) for e in old.tolist()}
        np.testing.assert_array_equal(new, old)  # same order too: sorted by (i, j)
    assert _grid(shape).tolist() == [list(c) for c in np.ndindex(*shape)]


def test_built_lattices_have_the_old_edges():
    s = builders.cubic_lattice(4, 3, 5)
    np.testing.assert_array_equal(s.edges, _old_grid_edges((4, 3, 5), [(1, 0, 0), (0, 1, 0), (0, 0, 1)]))
    s = builders.square_lattice(6, 2)
    np.testing.assert_array_equal(s.edges, _old_grid_edges((6, 2), [(1, 0), (0, 1)]))


def test_duplicate_edges_in_any_order_and_overlaps_anywhere_are_found():
    q = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    with pytest.raises(HGNError, match="same pair twice"):
        builders.custom(2, q, [[0, 1], [2, 3], [1, 0]])
    with pytest.raises(HGNError, match="same pair twice"):
        builders.custom(2, q, [[2, 3], [0, 1], [3, 2]])
    builders.custom(2, q, [[2, 3], [0, 1], [1, 2]])  # unsorted but distinct: fine
    # an overlap hidden among lattice sites whose projections interleave with it
    g = builders.cubic_lattice(6, 6, 6)
    pos = g.positions.copy()
    pos[100] = pos[17] + np.array([3e-7, -2e-7, 4e-7])
    with pytest.raises(HGNError, match="particles 17 and 100 overlap"):
        g.copy(positions=pos)
    pos[100] = pos[17] + np.array([3e-6, 0.0, 0.0])  # just apart
    g.copy(positions=pos)
