"""Issue 13 benchmark: damping and forcing identified in one solve (docs/port_hamiltonian.md).

Cases (ground truth by core.physics's Strang splitting, RF-HGN by core.learning.rfhgn.port.fit_port with
RFConfig defaults; the data's own port terms are the fit's candidates):

* ``square10``: a 10x10 harmonic square lattice, damping 0.05 on every particle, the x = 0 edge driven
  (A = 0.1, w = 1.3, phase 0.3, along x); 5 runs of 500 steps, dt 0.01, a snapshot every 5 steps (4 runs
  train, 1 test). Measures: relative error of the identified damping and of the drive amplitudes (worst over
  the driven particles), phase error, derivative MSE on the held-out run, the learned roll-out's position
  MSE after 1000 steps (dt 0.01, from a new random state; core.learning.rfhgn.port.rollout_port with the
  identified coefficients) and the same on a 30x30 lattice zero-shot (core.physics.port.transfer_port: the
  true port for the truth, the identified one for the roll-out, carried to the corresponding particles).
* ``morse10``: the same lattice with a Morse potential (D = 1, a = 1.5), damping 0.05, no drive.
* ``chain_resonance``: a 16-particle harmonic chain, damping 0.02, the first particle driven along x at the
  chain's lowest normal-mode frequency 2 sin(pi / (2 * 16)) (free ends), A = 0.05.

Every case runs with the RFConfig defaults and with the "tuned" settings of :data:`CONFIGS`.

Not here yet: the Adam baseline with learnable damping and forcing (not built), fits from time series.

Run: ``.venv/bin/python benchmarks/bench_port.py`` (``--quick``: fewer steps of the roll-outs). Writes
benchmarks/results/port.json and port.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.learning.rfhgn import RFConfig, fit  # noqa: E402
from core.learning.rfhgn.port import fit_port, port_derivative_mse, rollout_port  # noqa: E402
from core.physics import builders  # noqa: E402
from core.physics.datagen import DataSpec, generate  # noqa: E402
from core.physics.initial import initial_state  # noqa: E402
from core.physics.port import Drive, Port, transfer_port  # noqa: E402
from core.physics.simulate import simulate  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SPEC = DataSpec(n_trajectories=5, steps=500, dt=0.01, save_every=5)


def edge(system) -> tuple[int, ...]:
    """The particles on the x = min boundary."""
    x = system.positions[:, 0]
    return tuple(int(i) for i in np.flatnonzero(np.isclose(x, x.min())))


def position_mse(model, system, port, steps: int, seed: int = 99) -> tuple[float, float]:
    """Position MSE after ``steps`` of the learned roll-out with ``port`` against ground truth of ``system``
    (with its own, true port), from the same random state; and the roll-out's wall time."""
    q0, p0 = initial_state(system, 0.1, 0.1, seed=seed)
    truth = simulate(system, q0, p0, 0.01, steps, save_every=steps)
    t = time.perf_counter()
    pred = rollout_port(model, system, q0, p0, 0.01, steps, save_every=steps, port=port)
    return float(np.mean((pred.q[-1] - truth.q[-1]) ** 2)), time.perf_counter() - t


#: the RF settings of the rows: the defaults, and wider layers with broader neurons and a smaller ridge (chosen
#: on square10 among a few tried: edge 128 / message 64 / ridge 1e-14 gave gamma 3.0e-7, amplitude 8.4e-7 in 3.0 s)
CONFIGS = {"default": {}, "tuned": {"edge_width": 64, "message_width": 32, "regularisation": 1e-14,
                                    "swim_scale": 0.1}}


def case(name: str, system, true_port: Port, steps: int, zero_shot=None, settings: str = "default") -> dict:
    s = system.copy(port=true_port)
    t = time.perf_counter()
    ds = generate(s, SPEC)
    data_s = time.perf_counter() - t
    config = RFConfig(**CONFIGS[settings])
    model = fit_port(ds, config)
    plain = fit(ds, config)
    ident = model.info["port"]
    out = {"case": name, "settings": settings, "config": CONFIGS[settings], "particles": s.n,
           "snapshots": ds.n_snapshots, "train": int(len(ds.train)),
           "data_s": data_s, "fit_s": model.info["fit_time"], "plain_fit_s": plain.info["fit_time"],
           "train_mse": model.info["train_mse"], "plain_train_mse": plain.info["train_mse"],
           "test_derivative_mse": port_derivative_mse(model, ds), "port": true_port.to_dict()}
    gamma = float(true_port.damping)
    out["damping_identified"] = ident["damping"]
    out["damping_rel_error"] = abs(ident["damping"] / gamma - 1)
    if true_port.drives:
        d = true_port.drives[0]
        f = ident["forcing"]
        amp = np.array(f["amplitude"][0])
        out["amplitude_rel_error"] = float(np.max(np.abs(amp / d.amplitude - 1)))
        out["phase_error"] = float(np.max(np.abs(np.array(f["phase"][0]) - d.phase)))
    from core.learning.rfhgn.port import identified_port

    port = identified_port(ident)
    out["rollout_steps"] = steps
    out["rollout_position_mse"], out["rollout_s"] = position_mse(model, s, port, steps)
    if zero_shot is not None:
        # the true port and the identified one carried to the larger lattice's corresponding particles
        big = zero_shot.copy(port=transfer_port(true_port, system, zero_shot))
        out["zero_shot_particles"] = big.n
        out["zero_shot_position_mse"], out["zero_shot_s"] = position_mse(
            model, big, transfer_port(port, system, zero_shot), steps)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="roll-outs of 200 steps instead of 1000")
    args = ap.parse_args(argv)
    steps = 200 if args.quick else 1000
    sq = builders.square_lattice(10, 10)
    morse = builders.square_lattice(10, 10, potential="morse", potential_params={"D": 1.0, "a": 1.5})
    chain = builders.chain(16)
    w0 = 2 * np.sin(np.pi / (2 * 16))
    rows = [r for settings in CONFIGS for r in (
        case("square10", sq, Port(0.05, (Drive(edge(sq), 0.1, 1.3, (1.0, 0.0), 0.3),)), steps,
             zero_shot=builders.square_lattice(30, 30), settings=settings),
        case("morse10", morse, Port(0.05), steps, settings=settings),
        case("chain_resonance", chain, Port(0.02, (Drive((0,), 0.05, float(w0), (1.0, 0.0), 0.0),)), steps,
             settings=settings))]
    meta = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": platform.platform(), "cores": os.cpu_count(),
            "load": os.getloadavg()[0], "spec": SPEC.to_dict(), "configs": CONFIGS,
            "targets": {"damping_rel_error": 1e-6, "amplitude_rel_error": 1e-6, "rollout_position_mse": 1e-6}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "port.json").write_text(json.dumps({"meta": meta, "cases": rows}, indent=2))
    lines = ["# Damping and forcing identified in one solve (issue 13)", "",
             f"{meta['when']}, {meta['machine']}, {meta['cores']} cores, load {meta['load']:.1f}; data: "
             f"{SPEC.n_trajectories} runs x {SPEC.steps} steps, dt {SPEC.dt}, every {SPEC.save_every} steps "
             f"(the last run held out); RFConfig defaults, or tuned: {CONFIGS['tuned']}; roll-outs {steps} steps "
             "of dt 0.01 from a new state. "
             "Issue targets: damping and amplitude relative errors <= 1e-6, roll-out position MSE <= 1e-6.", "",
             "| case | RF settings | N | gamma rel. err | amplitude rel. err (worst) | phase err | test dq,dp MSE | "
             "roll-out pos. MSE | zero-shot 30x30 pos. MSE | fit s (plain fit s) | train MSE (plain) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        def g(k, fmt="{:.2e}", r=r):
            return fmt.format(r[k]) if k in r else "-"
        lines.append(f"| {r['case']} | {r['settings']} | {r['particles']} | {g('damping_rel_error')} | "
                     f"{g('amplitude_rel_error')} | "
                     f"{g('phase_error')} | {g('test_derivative_mse')} | {g('rollout_position_mse')} | "
                     f"{g('zero_shot_position_mse')} | {r['fit_s']:.2f} ({r['plain_fit_s']:.2f}) | "
                     f"{r['train_mse']:.1e} ({r['plain_train_mse']:.1e}) |")
    lines += ["", "Adam baseline with learnable damping and forcing: not built yet (issue 13)."]
    (RESULTS / "port.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
