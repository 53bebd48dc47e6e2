"""The plain random-feature HNN (no graph): its closed-form normal equations
equal the explicit least-squares problem, its gradients match finite
differences, and it refuses systems of another size."""
import numpy as np
import pytest

from core.physics import builders
from core.learning.baselines.rf_hnn import RFHNNConfig, RFHNNModel, _flat, fit_hnn
from core.physics.datagen import random_snapshots
from core.errors import HGNError
from core.learning.metrics import derivative_mse


@pytest.fixture(scope="module")
def chain_fit():
    s = builders.chain(3, dim=2)
    ds = random_snapshots(s, 120, seed=0, test_fraction=0.25)
    return ds, fit_hnn(ds, RFHNNConfig(width=60, regularisation=0.0))


def test_solution_is_the_least_squares_solution_of_hamiltons_equations(chain_fit):
    ds, m = chain_fit
    tr = ds.train
    X = _flat(ds.q[tr], ds.p[tr])
    h = np.tanh(X @ m.W.T + m.b)
    J = (1 - h * h)[:, :, None] * m.W[None]  # dPhi/dy per snapshot (S, L, 2Nd)
    nd = 6
    Z = np.vstack([J[:, :, nd:].transpose(0, 2, 1).reshape(-1, 60), -J[:, :, :nd].transpose(0, 2, 1).reshape(-1, 60)])
    u = np.concatenate([ds.dqdt[tr].reshape(-1), ds.dpdt[tr].reshape(-1)])
    best = np.linalg.lstsq(Z, u, rcond=None)[0]
    res_model = np.mean((Z @ m.theta - u) ** 2)
    res_best = np.mean((Z @ best - u) ** 2)
    assert res_model <= res_best * (1 + 1e-6) + 1e-14
    assert derivative_mse(m, ds, indices=tr) == pytest.approx(res_model, rel=1e-9)


def test_gradients_match_finite_differences(chain_fit, fd_gradient):
    ds, m = chain_fit
    s = ds.system
    q, p = ds.q[0], ds.p[0]
    gq, gp = m.gradients(s, q, p)
    assert np.allclose(gq, fd_gradient(lambda x: float(m.energy(s, x, p)), q), atol=1e-6)
    assert np.allclose(gp, fd_gradient(lambda x: float(m.energy(s, q, x)), p), atol=1e-6)
    assert float(m.energy(s, ds.q[ds.train[0]], ds.p[ds.train[0]])) == pytest.approx(ds.energy[ds.train[0]])


def test_refuses_another_particle_count_and_round_trips(chain_fit, tmp_path):
    ds, m = chain_fit
    bigger = builders.chain(4, dim=2)
    with pytest.raises(HGNError, match="cannot be applied"):
        m.gradients(bigger, bigger.positions, np.zeros_like(bigger.positions))
    back = RFHNNModel.load(m.save(tmp_path / "hnn.npz"))
    assert np.array_equal(back.energy(ds.system, ds.q[:4], ds.p[:4]), m.energy(ds.system, ds.q[:4], ds.p[:4]))
    from core.learning.baselines import load_model

    assert isinstance(load_model(tmp_path / "hnn.npz"), RFHNNModel)
    with pytest.raises(HGNError):
        RFHNNConfig(sampler="adam")
