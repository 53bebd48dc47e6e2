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

Against the gradient-trained baseline (issue 13's "Baseline" bullet): on the same data of every case, the
same network (RFConfig defaults' widths) with learnable damping (softplus, >= 0) and forcing on the same
cos/sin columns, trained by Adam (BaselineConfig defaults: float32, lr 1e-2, port lr 1e-1, minibatches of
32, one torch thread, no early stopping) on the derivative loss for a wall-clock budget (``--adam-budget``
seconds per case; core.learning.baselines.port.fit_port_baseline). Measures: the same errors as the RF rows,
and from the damping learned after every epoch the training time from which on it stays within a relative
error of 1e-1, 1e-2, 1e-3 (the RF fit's error was never reached in the budget). Not built: a multi-step
(K-step) loss.

Run: ``.venv/bin/python benchmarks/bench_port.py`` (``--quick``: fewer steps of the roll-outs;
``--adam-budget S``). Writes benchmarks/results/port.json and port.md.
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

from core.errors import HGNError  # noqa: E402
from core.learning.baselines import BaselineConfig  # noqa: E402
from core.learning.baselines.port import fit_port_baseline  # noqa: E402
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


#: the datasets of the cases (the Adam rows use the same data as the RF rows)
DATA: dict = {}


def errors(out: dict, ident: dict, true_port: Port) -> None:
    """Damping, amplitude and phase errors of identified coefficients (``info["port"]``) into ``out``."""
    gamma = float(true_port.damping)
    out["damping_identified"] = ident["damping"]
    out["damping_rel_error"] = abs(ident["damping"] / gamma - 1)
    if true_port.drives:
        d = true_port.drives[0]
        f = ident["forcing"]
        amp = np.array(f["amplitude"][0])
        out["amplitude_rel_error"] = float(np.max(np.abs(amp / d.amplitude - 1)))
        out["phase_error"] = float(np.max(np.abs(np.array(f["phase"][0]) - d.phase)))


def rollouts(out: dict, model, s, system, true_port: Port, steps: int, zero_shot) -> None:
    from core.learning.rfhgn.port import identified_port

    port = identified_port(model.info["port"])
    out["rollout_steps"] = steps
    try:
        out["rollout_position_mse"], out["rollout_s"] = position_mse(model, s, port, steps)
    except HGNError as exc:  # a baseline's roll-out may blow up
        out["rollout_error"] = str(exc)
    if zero_shot is not None:
        # the true port and the identified one carried to the larger lattice's corresponding particles
        big = zero_shot.copy(port=transfer_port(true_port, system, zero_shot))
        out["zero_shot_particles"] = big.n
        try:
            out["zero_shot_position_mse"], out["zero_shot_s"] = position_mse(
                model, big, transfer_port(port, system, zero_shot), steps)
        except HGNError as exc:
            out["zero_shot_error"] = str(exc)


def adam_case(name: str, system, true_port: Port, steps: int, budget: float, zero_shot=None) -> dict:
    """The Adam port baseline on the data of the RF rows of case ``name``."""
    s = system.copy(port=true_port)
    ds = DATA[name]
    config = BaselineConfig.from_rf(RFConfig(**CONFIGS["default"]), time_budget=budget, patience=0, threads=1)
    model = fit_port_baseline(ds, config)
    gamma = float(true_port.damping)
    hist = np.array(model.info["port_history"], dtype=np.float64).reshape(-1, 3)
    rel = np.abs(hist[:, 2] / gamma - 1)
    reach = {}
    for tol in (1e-1, 1e-2, 1e-3):  # the training clock from which on the damping stays within tol
        out_ = np.flatnonzero(rel > tol)
        if out_.size == 0:
            reach[f"{tol:g}"] = float(hist[0, 1])
        else:
            reach[f"{tol:g}"] = float(hist[out_[-1] + 1, 1]) if out_[-1] + 1 < len(rel) else None
    out = {"case": name, "settings": "adam", "config": config.to_dict(), "particles": s.n,
           "snapshots": ds.n_snapshots, "train": int(len(ds.train)), "fit_s": model.info["fit_time"],
           "epochs": model.info["epochs"], "stop_reason": model.info["stop_reason"],
           "best_epoch": model.info["best_epoch"], "train_mse": model.info["loss_history"][-1],
           "test_derivative_mse": port_derivative_mse(model, ds), "port": true_port.to_dict(),
           "time_to_damping_rel_error": reach, "best_damping_rel_error_seen": float(rel.min()),
           "port_learning_rate": model.info["port_learning_rate"]}
    errors(out, model.info["port"], true_port)
    rollouts(out, model, s, system, true_port, steps, zero_shot)
    return out


def case(name: str, system, true_port: Port, steps: int, zero_shot=None, settings: str = "default") -> dict:
    s = system.copy(port=true_port)
    t = time.perf_counter()
    ds = DATA[name] = generate(s, SPEC)
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
    errors(out, ident, true_port)
    rollouts(out, model, s, system, true_port, steps, zero_shot)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="roll-outs of 200 steps instead of 1000")
    ap.add_argument("--adam-budget", type=float, default=120.0,
                    help="seconds of Adam training per case for the baseline rows, 0 = skip them (default: "
                         "%(default)s)")
    ap.add_argument("--adam-budget-factor", type=float, default=0.0,
                    help="instead of --adam-budget: each case's Adam budget is this many times that case's RF fit "
                         "time with default settings (the issue asks for 1000)")
    args = ap.parse_args(argv)
    steps = 200 if args.quick else 1000
    sq = builders.square_lattice(10, 10)
    morse = builders.square_lattice(10, 10, potential="morse", potential_params={"D": 1.0, "a": 1.5})
    chain = builders.chain(16)
    w0 = 2 * np.sin(np.pi / (2 * 16))
    cases = [("square10", sq, Port(0.05, (Drive(edge(sq), 0.1, 1.3, (1.0, 0.0), 0.3),)),
              builders.square_lattice(30, 30)),
             ("morse10", morse, Port(0.05), None),
             ("chain_resonance", chain, Port(0.02, (Drive((0,), 0.05, float(w0), (1.0, 0.0), 0.0),)), None)]
    rows = [case(name, system, port, steps, zero_shot=big, settings=settings)
            for settings in CONFIGS for name, system, port, big in cases]
    budgets = {}
    for name, *_ in cases:
        rf = next(r for r in rows if r["case"] == name and r["settings"] == "default")
        budgets[name] = args.adam_budget_factor * rf["fit_s"] if args.adam_budget_factor > 0 else args.adam_budget
    if max(budgets.values()) > 0:
        rows += [adam_case(name, system, port, steps, budgets[name], zero_shot=big)
                 for name, system, port, big in cases]
    meta = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": platform.platform(), "cores": os.cpu_count(),
            "load": os.getloadavg()[0], "spec": SPEC.to_dict(), "configs": CONFIGS,
            "targets": {"damping_rel_error": 1e-6, "amplitude_rel_error": 1e-6, "rollout_position_mse": 1e-6},
            "adam_budget_s": budgets, "adam_budget_factor": args.adam_budget_factor or None}
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
        if r["settings"] == "adam":
            continue

        def g(k, fmt="{:.2e}", r=r):
            return fmt.format(r[k]) if k in r else "-"
        lines.append(f"| {r['case']} | {r['settings']} | {r['particles']} | {g('damping_rel_error')} | "
                     f"{g('amplitude_rel_error')} | "
                     f"{g('phase_error')} | {g('test_derivative_mse')} | {g('rollout_position_mse')} | "
                     f"{g('zero_shot_position_mse')} | {r['fit_s']:.2f} ({r['plain_fit_s']:.2f}) | "
                     f"{r['train_mse']:.1e} ({r['plain_train_mse']:.1e}) |")
    adam = [r for r in rows if r["settings"] == "adam"]
    if adam:
        lines += ["", "## RF-HGN (one solve) against the Adam baseline (same network, same data; "
                      + (f"{args.adam_budget_factor:g} x the case's default RF fit time of Adam: "
                         + ", ".join(f"{k} {v:.0f} s" for k, v in budgets.items())
                         if args.adam_budget_factor > 0 else f"{args.adam_budget:g} s of Adam per case") + ")", "",
                  "The baseline: the HGN with learnable damping (softplus) and forcing on the same cos/sin columns, "
                  "every layer trained by Adam on the derivative loss (BaselineConfig defaults: float32, lr 1e-2, "
                  "damping/forcing lr 1e-1, minibatches of 32, one torch thread, weights of the best validation "
                  "loss kept); "
                  "RF rows: RFConfig defaults (same widths) and tuned. Time to a damping relative error: the "
                  "training clock from which on the damping learned after every epoch stays within it (- = not "
                  "in the budget); the Adam model's error is that of the restored best-validation epoch.",
                  "", "| case | method | fit s | epochs | gamma rel. err | amplitude rel. err (worst) | "
                      "test dq,dp MSE | roll-out pos. MSE | zero-shot 30x30 pos. MSE | "
                      "time to gamma err 1e-1 / 1e-2 / 1e-3 (s) |",
                  "|---|---|---|---|---|---|---|---|---|---|"]

        def cell(r, k):
            if k in r:
                return f"{r[k]:.2e}"
            return "blew up" if k.replace("position_mse", "error") in r else "-"

        for name in [r["case"] for r in adam]:
            for r in [x for x in rows if x["case"] == name]:
                t = r.get("time_to_damping_rel_error")
                reach = " / ".join("-" if v is None else f"{v:.1f}" for v in t.values()) if t else "-"
                lines.append(f"| {name} | {'Adam' if r['settings'] == 'adam' else 'RF ' + r['settings']} | "
                             f"{r['fit_s']:.2f} | {r.get('epochs', '-')} | {cell(r, 'damping_rel_error')} | "
                             f"{cell(r, 'amplitude_rel_error')} | {cell(r, 'test_derivative_mse')} | "
                             f"{cell(r, 'rollout_position_mse')} | {cell(r, 'zero_shot_position_mse')} | {reach} |")
        ratio = {r["case"]: r["fit_s"] for r in rows if r["settings"] == "default"}
        lines += ["", "Adam's budget against the RF default fit's time: " + ", ".join(
            f"{r['case']} {r['fit_s'] / ratio[r['case']]:.0f}x" for r in adam) + " (the issue asks for 1000x or the "
            "time to the same error; the RF errors were not reached). Not built: the baseline's multi-step "
            "(K-step roll-out) loss."]
    (RESULTS / "port.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
