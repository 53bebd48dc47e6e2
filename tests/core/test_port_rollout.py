"""Roll-outs of models that carry damping and forcing (a "port", issue 13) through
core.learning.rollout.rollout: the identified port is used, not silently dropped, checked against the analytic
damped and driven oscillator and against ground truth (the same Strang splitting with the true forces); the
true Hamiltonian of a damped or driven system (core.learning.rfhgn.truth.TrueHamiltonian) rolls out and
differentiates with the system's own port."""
import numpy as np
import pytest

from core.errors import HGNError
from core.learning.rfhgn import TrueHamiltonian
from core.learning.rollout import rollout
from core.physics.port import Drive, Port, energy_balance
from core.physics.simulate import simulate
from core.physics.system import make_system
from tests.core.test_port import oscillator  # the closed-form damped and driven oscillator

M, K, C = 1.0, 1.0, 0.3            # mass, spring constant, friction coefficient
AMP, W, PHI = 0.2, 1.7, 0.4        # drive amplitude, angular frequency, phase
Q0 = np.array([[0.0, 0.0], [1.1, 0.0]])
P0 = np.array([[0.05, 0.0], [-0.02, 0.0]])


def pair(port=None):
    """Two particles on x joined by a spring K (rest length 1): their separation u = x1 - x0 - 1 obeys
    M u'' = -2K u - C u' + (F1 - F0) when both are damped by C."""
    return make_system(2, [[0.0, 0.0], [1.0, 0.0]], masses=M, potential="harmonic",
                       potential_params={"k": K, "r0": 1.0}, edges=[[0, 1]], port=port)


def separation(tr):
    return tr.q[:, 1, 0] - tr.q[:, 0, 0] - 1.0


def identified(damping=C, driven=False) -> dict:
    """A model's info["port"] as rfhgn.port.fit_port writes it: damping C, opposite drives on the two ends."""
    forcing = None
    if driven:
        forcing = {"frequencies": [W], "nodes": [0, 1], "amplitude": [[AMP, AMP]], "phase": [[PHI, PHI]],
                   "direction": [[[-1.0, 0.0], [1.0, 0.0]]]}
    return {"damping": damping, "forcing": forcing, "field": None}


def true_port(driven=False) -> Port:
    drives = (Drive((0,), AMP, W, (-1.0, 0.0), PHI), Drive((1,), AMP, W, (1.0, 0.0), PHI)) if driven else ()
    return Port(C, drives)


class PortModel(TrueHamiltonian):
    """A "fitted" port model: the exact conservative H of the undamped pair, and damping and forcing identified
    (info["port"]) on its training system, as fit_port leaves them."""

    def __init__(self, ident: dict, separable: bool = True):
        super().__init__(pair())
        self.info = {"port": ident}
        self.train_system = self.system
        self.separable = separable


@pytest.mark.parametrize("driven", [False, True])
def test_rollout_of_a_port_model_follows_the_analytic_damped_and_driven_oscillator(driven):
    dt, steps = 0.005, 8000                              # t = 40
    pred = rollout(PortModel(identified(driven=driven)), pair(), Q0, P0, dt, steps, 40)
    f0 = 2 * AMP if driven else 0.0
    ua = oscillator(pred.t, M, C, 2 * K, f0, W, PHI, u0=0.1, v0=(P0[1, 0] - P0[0, 0]) / M)
    err = np.abs(separation(pred) - ua).max()
    assert err < 3e-5, err                                # second order: ~1e-5 at dt 0.005 (test_port.py)
    if not driven:                                        # it loses energy: exp(-C t / M) = 6e-6 of it by t = 40
        assert pred.total[-1] < 1e-3 * pred.total[0], (pred.total[0], pred.total[-1])
    assert pred.diverged is None
    assert pred.system.port is not None and pred.system.port.damped
    assert pred.meta["integrator"].startswith("strang-verlet (learned, port)")


def test_rollout_of_a_port_model_equals_ground_truth_with_the_same_port_to_round_off():
    """With the true forces the learned Strang splitting is the ground truth's, step for step; the energy
    balance (injected and dissipated energy accumulated every step) comes with it."""
    port = true_port(driven=True)
    truth = simulate(pair(port), Q0, P0, 0.01, 3000, save_every=30)
    pred = rollout(PortModel(identified(driven=True)), pair(), Q0, P0, 0.01, 3000, 30)
    np.testing.assert_allclose(pred.q, truth.q, rtol=0, atol=1e-12)
    np.testing.assert_allclose(pred.p, truth.p, rtol=0, atol=1e-12)
    np.testing.assert_allclose(pred.meta["injected"], truth.meta["injected"], rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(pred.meta["dissipated"], truth.meta["dissipated"], rtol=1e-9, atol=1e-14)
    bal = energy_balance(pred)
    assert bal["accumulated"]
    assert np.max(np.abs(bal["residual"])) < 1e-3 * np.max(np.abs(bal["change"])), bal


def test_rollout_port_and_rollout_agree_and_chunks_equal_one_run():
    from core.learning.rfhgn.port import rollout_port

    model = PortModel(identified(driven=True))
    one = rollout(model, pair(), Q0, P0, 0.01, 600, 10)
    via = rollout_port(model, pair(), Q0, P0, 0.01, 600, 10)
    np.testing.assert_allclose(via.q, one.q, rtol=0, atol=1e-13)
    a = rollout(model, pair(), Q0, P0, 0.01, 250, 10)
    b = rollout(model, pair(), a.q[-1], a.p[-1], 0.01, 350, 10, t0=2.5, energy_reference=a.meta["energy_reference"])
    np.testing.assert_allclose(np.concatenate([a.q, b.q[1:]]), one.q, rtol=0, atol=1e-13)
    # an explicit port replaces the model's own: none at all gives the conservative roll-out
    bare = rollout(model, pair(), Q0, P0, 0.01, 600, 10, port=Port(0.0))
    plain = rollout(TrueHamiltonian(pair()), pair(), Q0, P0, 0.01, 600, 10)
    np.testing.assert_array_equal(bare.q, plain.q)


def test_a_driven_roll_out_gaining_energy_is_not_taken_for_a_divergence_but_a_blow_up_is():
    """At resonance an undamped driven pair gains many times its starting energy: the divergence check measures
    the energy balance (as ground truth does), not |H(t) - H(0)|. A time step beyond the stability limit is still
    caught."""
    w0 = np.sqrt(2 * K / M)
    ident = {"damping": 0.0, "forcing": {"frequencies": [w0], "nodes": [0, 1], "amplitude": [[0.05, 0.05]],
                                         "phase": [[0.0, 0.0]], "direction": [[[-1.0, 0.0], [1.0, 0.0]]]},
             "field": None}
    pred = rollout(PortModel(ident), pair(), Q0, P0, 0.01, 6000, 60)
    assert pred.diverged is None
    assert pred.total.max() > 10 * pred.total[0], (pred.total[0], pred.total.max())
    bad = rollout(PortModel(identified()), pair(), Q0, P0, 1.6, 400)    # w0 dt = 2.3 > 2
    assert bad.diverged is not None and bad.diverged["step"] < 400


def test_a_non_separable_port_model_is_refused_by_rollout():
    with pytest.raises(HGNError, match="separable"):
        rollout(PortModel(identified(), separable=False), pair(), Q0, P0, 0.01, 10)


# -- the true Hamiltonian of a damped or driven system ------------------------------------------------------
def independent_rhs(t, q, p, driven):
    """dq/dt, dp/dt of the damped (and driven) pair written out by hand: spring K along the bond, friction
    -C p/M on both, opposite drives AMP cos(W t + PHI) along -x on particle 0 and +x on particle 1."""
    d = q[1] - q[0]
    r = np.linalg.norm(d)
    f1 = -K * (r - 1.0) * d / r                         # the spring's force on particle 1
    dp = np.stack([-f1, f1]) - C * p / M
    if driven:
        dp = dp + AMP * np.cos(W * t + PHI) * np.array([[-1.0, 0.0], [1.0, 0.0]])
    return p / M, dp


@pytest.mark.parametrize("driven", [False, True])
def test_true_hamiltonian_of_a_port_system_rolls_out_like_ground_truth_and_the_analytic_oscillator(driven):
    s = pair(true_port(driven))
    pred = rollout(TrueHamiltonian(s), s, Q0, P0, 0.005, 8000, 40)
    truth = simulate(s, Q0, P0, 0.005, 8000, save_every=40)
    np.testing.assert_allclose(pred.q, truth.q, rtol=0, atol=1e-12)
    ua = oscillator(pred.t, M, C, 2 * K, 2 * AMP if driven else 0.0, W, PHI, u0=0.1, v0=(P0[1, 0] - P0[0, 0]) / M)
    assert np.abs(separation(pred) - ua).max() < 3e-5
    # zero-shot: the true Hamiltonian of one system on another uses the other's own port (here: none)
    plain = rollout(TrueHamiltonian(s), pair(), Q0, P0, 0.005, 800, 40)
    np.testing.assert_allclose(plain.q, simulate(pair(), Q0, P0, 0.005, 800, save_every=40).q, rtol=0, atol=1e-12)


def states(k, seed, t_end):
    """``k`` states of the pair near (Q0, 0) and their times 0..t_end."""
    rng = np.random.default_rng(seed)
    return (Q0[None] + 0.05 * rng.standard_normal((k, 2, 2)), 0.1 * rng.standard_normal((k, 2, 2)),
            np.linspace(0.0, t_end, k))


@pytest.mark.parametrize("driven", [False, True])
def test_true_hamiltonian_time_derivatives_include_the_systems_damping_and_forcing(driven):
    s = pair(true_port(driven))
    th = TrueHamiltonian(s)
    q, p, t = states(5, 0, 3.0)
    dq, dp = th.time_derivatives(s, q, p, t=t)
    for k in range(5):
        wq, wp = independent_rhs(t[k], q[k], p[k], driven)
        np.testing.assert_allclose(dq[k], wq, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(dp[k], wp, rtol=1e-12, atol=1e-14)
        one = th.time_derivatives(None, q[k], p[k], t=float(t[k]))     # one state, a number for t
        np.testing.assert_allclose(one[1], wp, rtol=1e-12, atol=1e-14)
    # H itself has no port: energy and gradients are the conservative part's
    np.testing.assert_allclose(th.gradients(s, q, p)[1], p / M, rtol=0, atol=0)
    if driven:  # the forcing depends on the time: without it there is no true dp/dt
        with pytest.raises(HGNError, match="driven"):
            th.time_derivatives(s, q, p)
    else:       # damping alone does not
        np.testing.assert_allclose(th.time_derivatives(s, q, p)[1], dp, rtol=0, atol=0)


@pytest.mark.parametrize("driven", [False, True])
def test_port_time_derivatives_of_the_true_hamiltonian_count_the_port_once(driven):
    """port_time_derivatives adds gamma dq/dt and F(t) to the model's Hamiltonian part: for the true
    Hamiltonian of a damped system (whose own time_derivatives hold the damping) it must not add them twice,
    with the port given or taken from the system."""
    from core.learning.rfhgn.port import port_time_derivatives
    s = pair(true_port(driven))
    th = TrueHamiltonian(s)
    q, p, t = states(4, 1, 2.0)
    for port in (None, s.port):
        dq, dp = port_time_derivatives(th, s, q, p, p / M, t, port)
        for k in range(4):
            wq, wp = independent_rhs(t[k], q[k], p[k], driven)
            np.testing.assert_allclose(dq[k], wq, rtol=1e-13, atol=1e-15)
            np.testing.assert_allclose(dp[k], wp, rtol=1e-12, atol=1e-14)
    with pytest.raises(HGNError, match="no damping or forcing"):
        port_time_derivatives(TrueHamiltonian(pair()), pair(), q, p, p / M, t)
