"""Table 4: how RF-HGN's cost grows.

* fit time against the number of training snapshots (3x3x3 lattice), the
  number of particles (n x n x n lattices, 500 snapshots each; short mode
  fewer) and the network width (every hidden width times a factor);
* rollout step time against the particle count, up to about 100,000
  particles (46^3 = 97,336), for the fitted model and for the ground truth
  (velocity Verlet in core.physics.simulate);
* peak memory: tracemalloc's peak of the allocations during a fit and
  during a rollout (measured in separate, untimed runs, because tracing
  slows NumPy down), and the process's maximum resident set size at the end.
  tracemalloc sees Python and NumPy allocations, not torch's own CPU tensors
  (the fit's chunk buffers and the roll-out stepper's workspaces, a few MiB
  bounded by the chunk size): the traced peak is the data and NumPy's share.
"""
from __future__ import annotations

import time

import numpy as np

from .common import best_of, max_rss_mib, peak_memory


def _data(system, n, seed):
    from core.physics.datagen import random_snapshots

    return random_snapshots(system, n, seed=seed)


def run(mode, log) -> dict:
    from core.physics import builders
    from core.physics.initial import initial_state
    from core.learning.rfhgn import RFConfig, fit
    from core.learning.rollout import rollout
    from core.physics.simulate import simulate

    out = {"table": "scaling", "snapshots": [], "particles": [], "width": [], "rollout": []}
    lat = builders.cubic_lattice(3, 3, 3)
    for n in mode.scale_snapshots:
        ds = _data(lat, n, mode.seed)
        model, best, times = best_of(lambda ds=ds: fit(ds, RFConfig()), mode.repeats)
        _, peak = peak_memory(lambda ds=ds: fit(ds, RFConfig()))
        out["snapshots"].append({"snapshots": n, "particles": lat.n, "time": best, "times": times,
                                 "rows": int(model.info["n_rows"]), "peak_mib": peak / 2 ** 20})
        log(f"scaling: {n} snapshots: fit {best:.3f} s, peak {peak / 2 ** 20:.1f} MiB")
    n_snap = min(500, max(mode.scale_snapshots))
    for k in mode.scale_lattice:
        system = builders.cubic_lattice(k, k, k)
        ds = _data(system, n_snap, mode.seed)
        model, best, times = best_of(lambda ds=ds: fit(ds, RFConfig()), mode.repeats)
        _, peak = peak_memory(lambda ds=ds: fit(ds, RFConfig()))
        out["particles"].append({"lattice": f"{k}x{k}x{k}", "particles": system.n, "snapshots": n_snap,
                                 "time": best, "times": times, "rows": int(model.info["n_rows"]),
                                 "peak_mib": peak / 2 ** 20})
        log(f"scaling: {system.n} particles: fit {best:.3f} s, peak {peak / 2 ** 20:.1f} MiB")
    base = RFConfig()
    ds = _data(lat, n_snap, mode.seed)
    for f in mode.scale_width:
        cfg = base.replace(node_width=max(1, int(round(base.node_width * f))),
                           edge_width=max(1, int(round(base.edge_width * f))),
                           message_width=max(1, int(round(base.message_width * f))))
        model, best, times = best_of(lambda cfg=cfg: fit(ds, cfg), mode.repeats)
        _, peak = peak_memory(lambda cfg=cfg: fit(ds, cfg))
        out["width"].append({"factor": f, "node_width": cfg.node_width, "edge_width": cfg.edge_width,
                             "message_width": cfg.message_width, "features": int(model.info["n_features"]),
                             "time": best, "times": times, "peak_mib": peak / 2 ** 20})
        log(f"scaling: width x{f} ({model.info['n_features']} features): fit {best:.3f} s")
    model = fit(_data(builders.cubic_lattice(2, 2, 2), n_snap, mode.seed), RFConfig())
    steps = mode.scale_rollout_steps
    for k in mode.scale_rollout:
        system = builders.cubic_lattice(k, k, k)
        q0, p0 = initial_state(system, 0.1, 0.1, seed=mode.seed)
        rollout(model, system, q0, p0, 0.01, 1, 1, learned_energy=False)  # warm-up (tables, caches)
        t = time.perf_counter()
        rollout(model, system, q0, p0, 0.01, steps, steps, learned_energy=False)
        t_model = (time.perf_counter() - t) / steps
        t = time.perf_counter()
        simulate(system, q0, p0, 0.01, steps, steps)
        t_truth = (time.perf_counter() - t) / steps
        _, peak = peak_memory(lambda system=system, q0=q0, p0=p0:
                              rollout(model, system, q0, p0, 0.01, 2, 2, learned_energy=False))
        out["rollout"].append({"lattice": f"{k}x{k}x{k}", "particles": system.n, "edges": int(len(system.edges)),
                               "seconds_per_step": t_model, "truth_seconds_per_step": t_truth,
                               "steps": steps, "peak_mib": peak / 2 ** 20})
        log(f"scaling: rollout on {system.n} particles: {t_model * 1e3:.2f} ms/step "
            f"(ground truth {t_truth * 1e3:.2f} ms/step), peak {peak / 2 ** 20:.1f} MiB")
    out["max_rss_mib"] = max_rss_mib()
    out["fit_time_per_row_us"] = float(np.median([r["time"] / r["rows"] * 1e6 for r in out["snapshots"]]))
    return out
