"""Reference cases of the NumPy RF-HGN (the implementation before the torch
core, commit b00e48d), kept so that the torch network can be checked against
the previous results to round-off (issue 10).

Run once with the NumPy implementation; it writes ``numpy_reference.npz`` next
to this file. Each case ``<name>.`` stores the fitted weights and theta, the
predicted test derivatives, the test MSE, and the positions of a short
roll-out. The test in tests/core/rfhgn/test_numpy_reference.py rebuilds the
same data and fits with the current code.

    .venv/bin/python tests/data/make_numpy_reference.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.learning.metrics import derivative_mse
from core.learning.rfhgn import RFConfig, fit
from core.learning.rollout import rollout
from core.physics.builders import build
from core.physics.datagen import random_snapshots

#: name -> (system kwargs, data kwargs, RFConfig kwargs, roll-out steps)
CASES = {
    "cubic3_swim_invariant": (dict(kind="cubic", n=3, m=3, l=3), {}, dict(), 200),
    "cubic3_elm_invariant": (dict(kind="cubic", n=3, m=3, l=3), {}, dict(sampler="elm"), 200),
    "cubic3_swim_frame": (dict(kind="cubic", n=3, m=3, l=3), {}, dict(encoding="frame", node_width=96,
                                                                      swim_scale=0.02), 50),
    "square4_morse_static": (dict(kind="square", n=4, m=4, potential="morse"), {},
                             dict(static_width=4, sampler="adaptive"), 200),
    "lj64_cutoff": (dict(kind="molecular", n=64, density=0.8, dim=3, cutoff=2.0), dict(displacement=0.02),
                    dict(), 100),
}
N_TRAIN, N_TEST, DT = 300, 100, 0.01


def make_case(name):
    sys_kw, data_kw, cfg_kw, steps = CASES[name]
    system = build(**sys_kw)
    train = random_snapshots(system, N_TRAIN, seed=0, **data_kw)
    test = random_snapshots(system, N_TEST, seed=1, **data_kw)
    return system, train, test, RFConfig(**cfg_kw), steps


def main():
    out = {}
    for name in CASES:
        system, train, test, config, steps = make_case(name)
        model = fit(train, config)
        dqdt, dpdt = model.time_derivatives(system, test.q, test.p)
        traj = rollout(model, system, test.q[0], test.p[0], DT, steps, save_every=steps // 10,
                       learned_energy=False)
        out[f"{name}.theta"] = model.theta
        out[f"{name}.constant"] = np.array([model.constant])
        for k, v in model.network.to_arrays().items():
            out[f"{name}.{k}"] = v
        out[f"{name}.dqdt"] = dqdt
        out[f"{name}.dpdt"] = dpdt
        out[f"{name}.test_mse"] = np.array([derivative_mse(model, test, indices=np.arange(N_TEST))])
        out[f"{name}.energy"] = np.asarray(model.energy(system, test.q, test.p))
        out[f"{name}.rollout_q"] = traj.q
        print(f"{name}: test MSE {out[f'{name}.test_mse'][0]:.3e}, {model.network.L} features")
    np.savez_compressed(Path(__file__).with_name("numpy_reference.npz"), **out)


if __name__ == "__main__":
    main()
