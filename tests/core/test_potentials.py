"""Pair potentials and forces: analytic derivatives against finite differences
of the energy, for every potential and every kind of system, and the
truncation and shift of cutoff systems."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from core.physics import builders, forces
from core.physics.forces import ForceField, derivatives, hamiltonian, kinetic_energy, potential_energy
from core.physics.potentials import (POTENTIALS, Anharmonic, Harmonic, LennardJones, Morse, QuarticSpring,
                                     make_potential)

POTENTIAL_CASES = [
    (Harmonic(k=2.5, r0=1.2), np.linspace(0.3, 3.0, 41)),
    (Anharmonic(k=1.5, r0=1.0, beta=2.0), np.linspace(0.2, 2.5, 41)),
    (Morse(D=1.3, a=1.7, r0=1.1), np.linspace(0.5, 4.0, 41)),
    (LennardJones(epsilon=0.8, sigma=1.1), np.linspace(0.9, 3.5, 41)),
    (QuarticSpring(k=1.3, r0=1.1), np.linspace(0.2, 2.5, 41)),
]


def test_every_registered_potential_has_a_case():
    assert {type(p).kind for p, _ in POTENTIAL_CASES} == set(POTENTIALS)


@pytest.mark.parametrize("pot,r", POTENTIAL_CASES, ids=lambda x: getattr(x, "kind", ""))
def test_dvdr_matches_finite_differences_of_energy(pot, r):
    h = 1e-6
    fd = (pot.energy(r + h) - pot.energy(r - h)) / (2 * h)
    analytic = pot.dvdr(r)
    assert np.allclose(analytic, fd, rtol=1e-6, atol=1e-7 * np.max(np.abs(fd)))


@pytest.mark.parametrize("pot,r", POTENTIAL_CASES, ids=lambda x: getattr(x, "kind", ""))
def test_minimum_is_at_r_min(pot, r):
    rm = pot.r_min
    assert abs(pot.dvdr(np.array(rm))) < 1e-10
    assert pot.energy(np.array(rm * 0.97)) > pot.energy(np.array(rm))
    assert pot.energy(np.array(rm * 1.03)) > pot.energy(np.array(rm))


def test_potential_formulas_at_chosen_points():
    # values worked out by hand from the formulas of docs/method.md section 1
    assert Harmonic(k=2.0, r0=1.0).energy(np.array(1.5)) == pytest.approx(0.25)
    assert Anharmonic(k=2.0, r0=1.0, beta=4.0).energy(np.array(1.5)) == pytest.approx(0.25 + 0.0625)
    assert Morse(D=2.0, a=1.0, r0=1.0).energy(np.array(1.0 + np.log(2))) == pytest.approx(0.5)
    assert LennardJones(epsilon=1.5, sigma=1.0).energy(np.array(1.0)) == pytest.approx(0.0)
    assert LennardJones(epsilon=1.5, sigma=1.0).energy(np.array(2 ** (1 / 6))) == pytest.approx(-1.5)


def test_forces_are_minus_the_gradient_of_the_energy(any_system, fd_gradient, perturb):
    q = perturb(any_system, 0.05, seed=1)
    ff = ForceField(any_system)
    v, f = ff.energy_forces(q)
    assert v == pytest.approx(ff.energy(q), rel=1e-13, abs=1e-13)
    grad = fd_gradient(ForceField(any_system).energy, q, h=1e-6)
    scale = max(1.0, float(np.max(np.abs(f))))
    assert np.max(np.abs(f + grad)) < 1e-6 * scale
    # and the forces are not trivially zero (the check has something to see)
    assert np.max(np.abs(f)) > 1e-3


def test_forces_agree_with_torch_autograd_for_a_periodic_lj_liquid():
    s = builders.molecular(64, density=0.8, dim=3, cutoff=2.0, jitter=0.15, seed=7)
    q = s.positions + 0.03 * np.random.default_rng(2).standard_normal(s.positions.shape)
    v, f = ForceField(s).energy_forces(q)
    # independent O(N^2) energy in torch, float64
    qt = torch.tensor(q, dtype=torch.float64, requires_grad=True)
    box = torch.tensor(s.box, dtype=torch.float64)
    iu = torch.triu_indices(s.n, s.n, 1)
    d = qt[iu[0]] - qt[iu[1]]
    d = d - box * torch.round(d / box)
    r = d.norm(dim=1)
    lj = lambda x: 4 * ((1 / x) ** 12 - (1 / x) ** 6)  # noqa: E731
    vt = torch.where(r < s.cutoff, lj(r) - lj(torch.tensor(s.cutoff, dtype=torch.float64)),
                     torch.zeros_like(r)).sum()
    vt.backward()
    assert v == pytest.approx(vt.item(), rel=1e-12)
    assert np.allclose(f, -qt.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_public_fallback_of_the_private_scipy_kernel_gives_the_same_forces(monkeypatch):
    """forces.py calls SciPy's private csr_matvecs kernel directly when it exists and
    works; without it (a SciPy that moved or broke it) the public ``csr @ dense``
    operator is used. Both give the same forces, to round-off, on a fixed graph and on
    a periodic cutoff system, and match finite differences of the energy."""
    cases = [builders.cubic_lattice(3, 3, 3),
             builders.molecular(64, density=0.8, dim=3, cutoff=2.0, jitter=0.15, seed=7)]
    rng = np.random.default_rng(5)
    kernel = [(s, s.positions + 0.03 * rng.standard_normal(s.positions.shape)) for s in cases]
    direct = [ForceField(s).energy_forces(q) for s, q in kernel]
    assert forces._csr_matvecs is not None          # this SciPy has the kernel: the fast path was measured
    monkeypatch.setattr(forces, "_csr_matvecs", None)
    calls = []
    spmm = forces._spmm
    monkeypatch.setattr(forces, "_spmm", lambda a, x: calls.append(1) or spmm(a, x))
    for (s, q), (v, f) in zip(kernel, direct):
        v2, f2 = ForceField(s).energy_forces(q)
        assert v2 == v
        np.testing.assert_allclose(f2, f, rtol=1e-13, atol=1e-13)
        # and against the energy itself: central differences along a few coordinates
        ff, h = ForceField(s), 1e-6
        for i, k in [(0, 0), (5, 1), (s.n - 1, 2)]:
            qp, qm = q.copy(), q.copy()
            qp[i, k] += h
            qm[i, k] -= h
            assert -(ff.energy(qp) - ff.energy(qm)) / (2 * h) == pytest.approx(f2[i, k], rel=1e-6, abs=1e-7)
    assert calls  # the fallback path was the one that ran
    # the operator alone, on a matrix with several entries per row
    a = sp.random(7, 5, density=0.5, format="csr", random_state=1)
    x = rng.standard_normal((5, 3))
    assert np.array_equal(spmm(a, x), a @ x)


def test_a_kernel_that_disagrees_with_scipy_is_switched_off(monkeypatch):
    def wrong(n_row, n_col, n_vecs, indptr, indices, data, x, out):
        out[:] = 1.0

    monkeypatch.setattr(forces, "_csr_matvecs", wrong)
    forces._check_spmm()
    assert forces._csr_matvecs is None
    s = builders.chain(4)
    q = s.positions * 1.1                           # every bond stretched by 10 %
    f = ForceField(s).forces(q)
    assert np.abs(f).max() > 1e-3 and np.allclose(f.sum(axis=0), 0.0, atol=1e-12)


def test_lj_cutoff_truncates_and_shifts_continuously():
    rc = 2.5
    pot = LennardJones(epsilon=1.0, sigma=1.0)
    s = builders.custom(3, [[0, 0, 0], [1.5, 0, 0]], potential=pot, cutoff=rc)
    ff = ForceField(s)

    def energy_at(r):
        return ForceField(s).energy(np.array([[0.0, 0, 0], [r, 0, 0]]))

    # shifted: V(r) - V(rc) inside, continuous (-> 0) at the cutoff, 0 beyond
    assert energy_at(1.3) == pytest.approx(float(pot.energy(np.array(1.3)) - pot.energy(np.array(rc))), rel=1e-14)
    eps = 1e-9
    assert abs(energy_at(rc - eps)) < 2 * eps * abs(float(pot.dvdr(np.array(rc))))
    assert energy_at(rc - eps) < 0  # approaching from below the shifted V is just under 0
    assert energy_at(rc + eps) == 0.0
    assert energy_at(3.5) == 0.0
    # the force is the untruncated one inside and zero beyond
    _, f = ff.energy_forces(np.array([[0.0, 0, 0], [2.0, 0, 0]]))
    assert f[1, 0] == pytest.approx(-float(pot.dvdr(np.array(2.0))), rel=1e-13)
    _, f = ForceField(s).energy_forces(np.array([[0.0, 0, 0], [2.6, 0, 0]]))
    assert np.all(f == 0.0)


def test_pair_on_a_fixed_edge_gives_equal_and_opposite_forces_along_the_bond():
    s = builders.chain(2, dim=3, potential_params={"k": 3.0, "r0": 1.0})
    q = np.array([[0.0, 0.0, 0.0], [1.2, 0.9, 0.0]])  # r = 1.5
    v, f = ForceField(s).energy_forces(q)
    assert v == pytest.approx(0.5 * 3.0 * 0.5 ** 2)
    unit = (q[1] - q[0]) / 1.5
    assert np.allclose(f[1], -3.0 * 0.5 * unit)
    assert np.allclose(f[0], -f[1])


def test_edge_scale_multiplies_each_bond():
    q = np.array([[0.0, 0.0], [1.5, 0.0], [1.5, 2.0]])
    base = builders.custom(2, q, [[0, 1], [1, 2]], potential_params={"k": 1.0, "r0": 1.0})
    scaled = builders.custom(2, q, [[0, 1], [1, 2]], potential_params={"k": 1.0, "r0": 1.0}, edge_scale=[2.0, 0.5])
    qq = q + 0.1
    # bond 0: r = 1.5 -> V = 0.125; bond 1: r = 2 -> V = 0.5
    assert ForceField(base).energy(qq) == pytest.approx(0.125 + 0.5)
    assert ForceField(scaled).energy(qq) == pytest.approx(2 * 0.125 + 0.5 * 0.5)


def test_periodic_edge_uses_the_minimum_image():
    s = builders.custom(2, [[0.2, 1.0], [2.8, 1.0]], [[0, 1]], potential_params={"k": 1.0, "r0": 0.0},
                        box=[3.0, 3.0])
    # through the boundary the two are 0.4 apart, not 2.6
    assert ForceField(s).energy(s.positions) == pytest.approx(0.5 * 0.4 ** 2)
    # unwrapped positions (a whole box length away) give the same result
    assert ForceField(s).energy(s.positions + np.array([[3.0, -6.0], [0.0, 0.0]])) == pytest.approx(0.5 * 0.4 ** 2)


def test_cutoff_system_matches_a_brute_force_pair_sum_while_particles_move(perturb):
    # the neighbour list (with its fixed periodic images) must find exactly
    # the pairs a brute-force minimum-image scan finds, also after moves that
    # do and do not trigger a rebuild, and with unwrapped positions
    s = builders.molecular(64, density=0.8, dim=3, cutoff=2.0, jitter=0.1, seed=1)
    pot = s.potential
    ff = ForceField(s, skin=0.3)
    rng = np.random.default_rng(0)
    q = s.positions.copy()
    vc = float(pot.energy(np.array(s.cutoff)))
    for step in range(40):
        q = q + 0.03 * rng.standard_normal(q.shape)  # some steps exceed skin/2 in total
        if step == 20:
            q = q + s.box * rng.integers(-2, 3, size=q.shape)  # unwrap by whole boxes
        d = q[:, None, :] - q[None, :, :]
        d -= s.box * np.round(d / s.box)
        r = np.sqrt((d ** 2).sum(-1))[np.triu_indices(s.n, 1)]
        r = r[r < s.cutoff]
        assert ff.energy(q) == pytest.approx(float(np.sum(pot.energy(r) - vc)), rel=1e-12)
    assert ff.neighbour_builds > 1


def test_batched_helpers_match_single_evaluations(perturb):
    s = builders.molecular(27, density=0.8, dim=3, cutoff=2.5, periodic=False)
    rng = np.random.default_rng(1)
    qs = np.stack([perturb(s, 0.05, seed=k) for k in range(3)])
    ps = rng.standard_normal(qs.shape)
    v = potential_energy(s, qs)
    h = hamiltonian(s, qs, ps)
    dq, dp = derivatives(s, qs, ps)
    for k in range(3):
        vk, fk = ForceField(s).energy_forces(qs[k])
        assert v[k] == pytest.approx(vk, rel=1e-13)
        assert h[k] == pytest.approx(vk + 0.5 * np.sum(ps[k] ** 2 / s.masses[:, None]), rel=1e-13)
        assert np.allclose(dp[k], fk, rtol=1e-13, atol=1e-13)
        assert np.allclose(dq[k], ps[k] / s.masses[:, None])
    assert kinetic_energy(ps, s.masses).shape == (3,)


def test_make_potential_accepts_aliases():
    assert isinstance(make_potential("LJ", sigma=2.0), LennardJones)
    assert isinstance(make_potential("spring", k=2.0), Harmonic)
    assert isinstance(make_potential("fpu-beta"), Anharmonic)
