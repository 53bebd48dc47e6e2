"""Issue 11, inputs half: every item of "Physics bug", "No silent garbage" and
"Inputs" as a test that fails on the code before the change (9e2be3b)."""
from __future__ import annotations

import numpy as np
import pytest

from core.physics import builders
from core.physics.forces import ForceField, derivatives, potential_energy
from core.physics.initial import initial_state
from core.physics.neighbours import wrap
from core.physics.simulate import simulate


# ---------------------------------------------------------------------------
# physics bug: periodic boxes with wrapped positions
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lj_crossing():
    """A periodic LJ liquid whose unwrapped trajectory crosses the box faces."""
    s = builders.molecular(125, density=0.8, cutoff=2.5)
    q0, p0 = initial_state(s, displacement=0.0, momentum=0.0, temperature=1.5, seed=3)
    tr = simulate(s, q0, p0, dt=0.005, steps=600, save_every=3)
    # the run crosses faces: some wrapped coordinate differs from the unwrapped one
    crossed = [not np.array_equal(wrap(q, s.box), q) for q in tr.q]
    assert sum(crossed) >= 10
    return s, tr


def _fresh(s, q):
    return ForceField(s).energy_forces(q)


def test_issue_reproduction_wrapped_after_unwrapped():
    s = builders.molecular(125, density=0.8, cutoff=2.5)
    q = s.positions + np.array([0.7, 0.2, 0.1])  # some particles now lie beyond a face
    assert (q >= s.box).any()
    ff = ForceField(s)
    ff.energy(q)
    qw = wrap(q, s.box)
    assert ff.energy(qw) == pytest.approx(ForceField(s).energy(qw), rel=1e-12, abs=1e-9)


@pytest.mark.parametrize("order", ["wrapped", "alternating", "unwrapped"])
def test_one_force_field_matches_a_fresh_one_on_every_frame(lj_crossing, order):
    s, tr = lj_crossing
    ff = ForceField(s)
    for k, q in enumerate(tr.q):
        if order == "wrapped" or (order == "alternating" and k % 2):
            q = wrap(q, s.box)
        v, f = ff.energy_forces(q)
        v0, f0 = _fresh(s, q)
        assert v == pytest.approx(v0, rel=1e-11, abs=1e-9), f"frame {k}"
        np.testing.assert_allclose(f, f0, rtol=1e-9, atol=1e-9, err_msg=f"frame {k}")
    # and the energies of the unwrapped run itself (the integrator's own field)
    np.testing.assert_allclose(tr.potential, [_fresh(s, q)[0] for q in tr.q], rtol=1e-11, atol=1e-9)


def test_batched_derivatives_and_energies_of_wrapped_frames(lj_crossing):
    s, tr = lj_crossing
    qw = np.stack([wrap(q, s.box) if k % 2 else q for k, q in enumerate(tr.q)])
    v = potential_energy(s, qw)
    _, dpdt = derivatives(s, qw, tr.p)
    for k in range(len(qw)):
        v0, f0 = _fresh(s, qw[k])
        assert v[k] == pytest.approx(v0, rel=1e-11, abs=1e-9), f"frame {k}"
        np.testing.assert_allclose(dpdt[k], f0, rtol=1e-9, atol=1e-9, err_msg=f"frame {k}")


def test_learned_table_stepper_rebuilds_its_pairs_after_a_wrap():
    """The roll-out's TableStepper fixes pair images at build time like ForceField."""
    import torch

    from core.learning.rfhgn import RFConfig, fit
    from core.learning.stepper import make_stepper
    from core.physics.datagen import random_snapshots

    s = builders.molecular(64, density=0.8, cutoff=2.0, jitter=0.1, seed=2)
    model = fit(random_snapshots(s, 40, 0.05, 0.1, seed=0), RFConfig(fast_tables=True))
    q = s.positions + np.array([0.6, 0.3, 0.2])
    assert (q >= s.box).any()
    qw = wrap(q, s.box)
    st = make_stepper(model, s)
    if not hasattr(st, "nlist") or st.nlist is None:
        pytest.skip("this model does not roll out through a stepper with a neighbour list")
    st.potential(torch.from_numpy(q.copy()))
    got = st.potential(torch.from_numpy(qw.copy())).numpy().copy()
    want = make_stepper(model, s).potential(torch.from_numpy(qw.copy())).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
