"""Studio speed: Train to first frame, GUI responsiveness, playback, cancel.

Drives the real main window (OpenGL through Xvfb + Mesa llvmpipe) and
measures:

* **train_to_first_frame** -- from pressing Train on the default lattice
  (studio.defaults: cubic 4x4x4 harmonic, default simulation and RF-HGN
  settings) until the first roll-out frame after the start is drawn in the
  views. Target <= 2 s.
* **gui_stall_during_training** -- the longest gap between ticks of a 10 ms
  GUI-thread timer while a model trains and the views play the previous
  roll-out; and the longest interval between two drawn frames of the views.
  Target: no frame blocks for more than 100 ms.
* **cancel_latency** -- from pressing Cancel during a long training job to
  the job having stopped. Target <= 1 s.
* **playback** -- frames per second of the timeline driving two views
  (truth and prediction) of 4,096 particles each (16^3 cubic lattice with
  bonds), every frame fully drawn (synchronous repaint), at the window's
  default size, while the timeline plays (what is seen) and at full speed
  (capacity); and the same for 10,648 particles (22^3). Target >= 30 fps at
  4,096 particles.

Each measure runs ``--repeat`` times; best and median are printed and
written with the machine description to benchmarks/results/studio.json.
Without a DISPLAY the script re-runs itself under ``xvfb-run``.

    .venv/bin/python benchmarks/bench_studio.py [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "studio.json"
SCREEN = "1600x1000x24"


def _machine() -> dict:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import PySide6
    import vispy

    return {"cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "numpy": np.__version__, "pyside6": PySide6.__version__, "vispy": vispy.__version__,
            "load_average": os.getloadavg()}


def _pump(app, seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.002)


def _wait(app, cond, timeout=300.0):
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        app.processEvents()
        if cond():
            return True
        time.sleep(0.001)
    raise RuntimeError("timed out")


class _Stall:
    """Longest gap between ticks of a fast GUI-thread timer, and between
    drawn frames of a view."""

    def __init__(self, app, view):
        from PySide6.QtCore import QTimer

        self.app = app
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.last = None
        self.max_gap = 0.0
        self.frame_last = None
        self.max_frame_gap = 0.0
        self.frames = 0
        self.active = False
        view.rendered.connect(lambda: self._drawn(None))

    def _tick(self):
        now = time.perf_counter()
        if self.last is not None:
            self.max_gap = max(self.max_gap, now - self.last)
        self.last = now

    def _drawn(self, _ev):
        now = time.perf_counter()
        if self.frame_last is not None and self.active:
            self.max_frame_gap = max(self.max_frame_gap, now - self.frame_last)
        self.frame_last = now
        self.frames += 1

    def start(self):
        self.active = True
        self.last = self.frame_last = None
        self.max_gap = self.max_frame_gap = 0.0
        self.frames = 0
        self.timer.start()

    def stop(self):
        self.active = False
        self.timer.stop()


def bench_window(repeat: int) -> dict:
    from PySide6.QtWidgets import QApplication

    from studio.gl import ensure_backend
    from studio.style import apply_style

    app = QApplication.instance() or QApplication([])
    ensure_backend()
    apply_style(app)
    from studio.main_window import MainWindow

    w = MainWindow(restore=False)           # first-run layout (studio.defaults.VIEW)
    w.show()
    _wait(app, lambda: w.session.system is not None)
    _pump(app, 0.5)
    out = {"system": w.session.system.name, "particles": w.session.system.n,
           "window": [w.width(), w.height()]}

    # -- Train -> first roll-out frame on screen -------------------------------
    first, parts = [], []
    for _ in range(repeat):
        n = len(w.session.models)
        w.train()
        _wait(app, lambda: "first_frame" in w.timing)
        first.append(w.timing["first_frame"] - w.timing["train_pressed"])
        _wait(app, lambda: len(w.session.models) > n and w.session.rollout.finished
              and not w.rolloutJobs.is_running())
        e = w.session.models[-1]
        parts.append({"data": e.data_time, "fit": e.fit_time,
                      "trained_after": w.timing["trained"] - w.timing["train_pressed"],
                      "test_mse": e.test_mse})
        _pump(app, 0.2)
    out["train_to_first_frame_s"] = {"best": min(first), "median": statistics.median(first), "all": first,
                                     "target": 2.0, "parts": parts}

    # -- responsiveness while training (views playing the last roll-out) -------
    stall = _Stall(app, w.views.truthView)
    gaps, frame_gaps, fps = [], [], []
    for _ in range(repeat):
        w.time.set_loop("loop")
        w.time.play()
        stall.start()
        t0 = time.perf_counter()
        n = len(w.session.models)
        w.train()
        _wait(app, lambda: len(w.session.models) > n)
        dt = time.perf_counter() - t0
        stall.stop()
        w.time.pause()
        gaps.append(stall.max_gap)
        frame_gaps.append(stall.max_frame_gap)
        fps.append(stall.frames / dt)
        _wait(app, lambda: not w.rolloutJobs.is_running())
    out["gui_during_training"] = {"max_timer_gap_ms": [1e3 * g for g in gaps],
                                  "max_frame_gap_ms": [1e3 * g for g in frame_gaps],
                                  "frames_per_s": fps, "target_ms": 100.0,
                                  "best_max_frame_gap_ms": 1e3 * min(frame_gaps),
                                  "median_max_frame_gap_ms": 1e3 * statistics.median(frame_gaps)}

    # -- cancel latency ------------------------------------------------------------
    lat = []
    sim_form = w.trainPanel.simForm
    saved = sim_form.values()
    sim_form.set_values({"n_trajectories": 400, "steps": 4000, "save_every": 50})
    for _ in range(repeat):
        w.train()
        _wait(app, lambda: w.trainPanel.progress.value() > 20)
        t0 = time.perf_counter()
        w.cancel()
        _wait(app, lambda: not w.trainJobs.is_running())
        lat.append(time.perf_counter() - t0)
    sim_form.set_values(saved)
    out["cancel_latency_s"] = {"best": min(lat), "median": statistics.median(lat), "all": lat, "target": 1.0}

    # -- playback of two views ----------------------------------------------------------
    out["playback"] = [bench_playback(app, w, 16, repeat), bench_playback(app, w, 16, repeat, bonds=True),
                       bench_playback(app, w, 22, repeat)]
    w.close()
    return out


def bench_playback(app, w, side: int, repeat: int, frames: int = 120, seconds: float = 4.0,
                   bonds: bool | None = None) -> dict:
    """Two views of side^3 particles with bonds, playing a roll-out.

    * ``fps_playing``: frames actually drawn per second by both views while
      the timeline plays at its normal rate (30 frames a second at speed 1),
      plot cursors and the timeline bar following -- what a user sees;
    * ``fps_capacity``: 1 / (median time to draw both views once), the rate
      the views could reach if nothing else ran (how far above the 30 fps
      playback rate they are).
    """
    from core.physics.builders import build
    from core.learning.rfhgn import TrueHamiltonian
    from studio import pipeline
    from studio.rollout_buffer import RolloutBuffer

    s = build("cubic", n=side, m=side, l=side)
    rng = np.random.default_rng(0)
    q0 = s.positions + 0.05 * rng.standard_normal(s.positions.shape)
    p0 = 0.05 * rng.standard_normal(s.positions.shape)
    buf = RolloutBuffer(s, 0.02, frames * 2, 2, model_name="exact H", label="exact H")
    pipeline.rollout_job(TrueHamiltonian(s), s, q0, p0, 0.02, frames * 2, 2, emit=lambda it: buf.add(*it),
                         first_chunk=frames)
    w.session.start_rollout(buf)
    w.session.finish_rollout()
    w.views.set_layout("side")
    w.views.set_colour_mode("uniform")
    if bonds is not None:                       # None: the studio's automatic choice
        w.views.bondsCheck.setChecked(bonds)
    _pump(app, 0.5)
    tv, pv = w.views.truthView, w.views.predictionView
    playing, capacity = [], []
    for _ in range(repeat):
        w.time.set_loop("loop")
        w.time.set_frame(0)
        _pump(app, 0.2)
        f0 = min(tv.frames, pv.frames)
        t0 = time.perf_counter()
        w.time.play()
        end = t0 + seconds
        while time.perf_counter() < end:
            app.processEvents()
        w.time.pause()
        playing.append((min(tv.frames, pv.frames) - f0) / (time.perf_counter() - t0))
        renders = []
        for f in range(1, buf.n_frames):
            w.time.set_frame(f)
            t0 = time.perf_counter()
            tv.render_image()
            pv.render_image()
            renders.append(time.perf_counter() - t0)
        capacity.append(1.0 / statistics.median(renders))
    size = [list(tv.canvas.size), list(pv.canvas.size)]
    return {"particles": s.n, "bonds": int(len(s.edges)), "bonds_drawn": bool(tv.bonds.visible),
            "view_sizes": size, "view_mode": tv.mode,
            "fps_playing_best": max(playing), "fps_playing_median": statistics.median(playing),
            "fps_capacity_best": max(capacity), "fps_capacity_median": statistics.median(capacity),
            "all_playing": playing, "all_capacity": capacity,
            "target_fps": 30.0 if s.n <= 4096 else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    if not os.environ.get("DISPLAY") and shutil.which("xvfb-run"):
        cmd = ["xvfb-run", "-a", "-s", f"-screen 0 {SCREEN}", sys.executable, __file__,
               "--repeat", str(args.repeat)]
        return subprocess.call(cmd)
    os.environ.setdefault("HGN_STUDIO_SETTINGS", str(Path(tempfile.mkdtemp()) / "bench.ini"))
    res = {"machine": _machine(), **bench_window(args.repeat)}
    res["machine"]["load_average_after"] = os.getloadavg()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=2))

    m = res["machine"]
    print(f"HGN Studio benchmark  ({m['cpus']} cores, {m['cpu']}, Python {m['python']}, "
          f"PySide6 {m['pyside6']}, vispy {m['vispy']}, Mesa llvmpipe under Xvfb; load {m['load_average'][0]:.1f})")
    t = res["train_to_first_frame_s"]
    print(f"{'measure':46s} {'best':>10s} {'median':>10s} {'target':>10s}")
    label = f"Train -> first roll-out frame ({res['system']})"
    print(f"{label:46s} {t['best']:9.2f}s {t['median']:9.2f}s {'<= 2 s':>10s}")
    g = res["gui_during_training"]
    print(f"{'longest frame gap while training':46s} {g['best_max_frame_gap_ms']:8.0f}ms "
          f"{g['median_max_frame_gap_ms']:8.0f}ms {'<= 100 ms':>10s}")
    print(f"{'longest GUI timer gap while training':46s} {min(g['max_timer_gap_ms']):8.0f}ms "
          f"{statistics.median(g['max_timer_gap_ms']):8.0f}ms {'<= 100 ms':>10s}")
    c = res["cancel_latency_s"]
    print(f"{'Cancel -> job stopped':46s} {c['best']:9.2f}s {c['median']:9.2f}s {'<= 1 s':>10s}")
    for p in res["playback"]:
        target = ">= 30 fps" if p["target_fps"] else "-"
        size = f"{p['view_sizes'][0][0]}x{p['view_sizes'][0][1]}"
        bonds = "bonds" if p["bonds_drawn"] else "no bonds"
        print(f"{'playing, 2 views x ' + str(p['particles']) + ' (' + size + ', ' + bonds + ')':46s} "
              f"{p['fps_playing_best']:6.1f}fps {p['fps_playing_median']:6.1f}fps {target:>10s}")
        print(f"{'  capacity: 1 / time to draw both views':46s} "
              f"{p['fps_capacity_best']:6.1f}fps {p['fps_capacity_median']:6.1f}fps {'':>10s}")
    print(f"(written to {RESULTS.relative_to(ROOT)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
