"""Video export speed: render plus encode, per frame.

The case of the target: a 4,096-particle simple cubic lattice (16x16x16,
harmonic springs, 11,520 bonds drawn), ground truth and prediction side by
side at 1280x720, H.264 (crf 23, preset veryfast), headless through vispy's
EGL backend exactly as ``python main.py export-video`` runs. Target: no
worse than 60 ms a frame.

The two runs are velocity-Verlet trajectories from the same positions with
slightly different momenta (a stand-in for a learned roll-out: what is drawn
costs the same wherever the positions come from). Each repeat builds a fresh
scene and encoder; the figure is the wall time from the first frame to the
published file (render, encode and the final flush) divided by the frames.
Scene set-up (shader compilation, about a second) is reported apart.
Results go to benchmarks/results/export.json.

    .venv/bin/python benchmarks/bench_export.py [--frames 120] [--repeat 3] [--plot]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("EGL_PLATFORM", "surfaceless")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results" / "export.json"
TARGET_MS = 60.0


def make_rollout(side: int, frames: int):
    from core.physics import builders
    from core.physics.initial import initial_state
    from core.physics.simulate import simulate
    from studio.export.run import buffer_from_rollout

    system = builders.cubic_lattice(side, side, side)
    q0, p0 = initial_state(system, 0.1, 0.1, seed=0)
    truth = simulate(system, q0, p0, 0.01, 2 * (frames - 1), save_every=2)
    other = simulate(system, q0, 1.02 * p0, 0.01, 2 * (frames - 1), save_every=2)
    other.label = "prediction"
    return buffer_from_rollout(truth, other, model_name="stand-in prediction")


def one_run(data, settings, path) -> dict:
    from core.files.video import BackgroundEncoder, VideoWriter, probe
    from studio.export.run import QUEUE_FRAMES
    from studio.export.scene import ExportScene

    frames = settings.frames(data.n_filled)
    t0 = time.perf_counter()
    scene = ExportScene(data, settings, frames=frames)
    scene.render(frames[0])           # compiles the shaders
    setup = time.perf_counter() - t0
    enc = BackgroundEncoder(VideoWriter(path, settings.width, settings.height, settings.fps), QUEUE_FRAMES)
    render = 0.0
    t1 = time.perf_counter()
    for f in frames:
        r0 = time.perf_counter()
        img = scene.render(f)
        render += time.perf_counter() - r0
        enc.submit(img)
    enc.finish()
    wall = time.perf_counter() - t1
    scene.close()
    info = probe(path)
    assert (info.width, info.height, info.frames) == (settings.width, settings.height, len(frames))
    n = len(frames)
    return {"ms_per_frame": 1000 * wall / n, "render_ms_per_frame": 1000 * render / n, "setup_s": setup,
            "frames": n, "bytes": os.path.getsize(path)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--side", type=int, default=16, help="lattice side (16 -> 4,096 particles)")
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--plot", action="store_true", help="with the energy-drift plot")
    ap.add_argument("--format", default="mp4", choices=["mp4", "webm", "gif"])
    ap.add_argument("--bonds", action="store_true", help="draw the 11,520 bonds too (off by default above "
                                                          "5,000 bonds)")
    ap.add_argument("--no-save", action="store_true", help="do not write the JSON file")
    args = ap.parse_args(argv)

    from studio.export.cli import use_egl
    from studio.export.settings import ExportSettings, parse_size

    use_egl()
    w, h = parse_size(args.size)
    data = make_rollout(args.side, args.frames)
    settings = ExportSettings(width=w, height=h, layout="side", plot=args.plot, bonds=True if args.bonds else None)
    runs = []
    with tempfile.TemporaryDirectory() as d:
        for k in range(args.repeat):
            runs.append(one_run(data, settings, Path(d) / f"bench{k}.{args.format}"))
            print(f"run {k + 1}: {runs[-1]['ms_per_frame']:.1f} ms a frame "
                  f"(render {runs[-1]['render_ms_per_frame']:.1f} ms), set-up {runs[-1]['setup_s']:.2f} s")
    ms = [r["ms_per_frame"] for r in runs]
    best, median = min(ms), statistics.median(ms)
    n = data.system.n
    bonds = settings.draw_bonds(data.system)
    print(f"\nexport of {n} particles side by side at {w}x{h}, {args.format}"
          f"{' + drift plot' if args.plot else ''}{' + bonds' if bonds else ''}, {args.frames} frames:")
    print(f"  best {best:.1f} ms a frame, median {median:.1f} ms (target <= {TARGET_MS:.0f} ms: "
          f"{'met' if best <= TARGET_MS else 'NOT met'})")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    result = {"case": f"{n} particles ({args.side}^3 cubic lattice, {len(data.system.edges)} bonds), "
                      f"side by side, {w}x{h}, {args.format}" + (", drift plot" if args.plot else "")
                      + (", bonds drawn" if bonds else ", bonds not drawn"),
              "frames": args.frames, "runs": runs, "best_ms_per_frame": best, "median_ms_per_frame": median,
              "target_ms_per_frame": TARGET_MS, "met": best <= TARGET_MS,
              "machine": {"cpus": os.cpu_count(), "load_average_1min": load, "python": platform.python_version(),
                          "backend": "vispy EGL surfaceless (Mesa llvmpipe)"}}
    if not args.no_save:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2))
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
