"""Video export: off-screen frames show what was asked for (layouts, colours,
time label, plot cursor), exported videos decode back with the requested
size, frame count and codec and their frames change and are not blank, a
cancelled export leaves nothing behind, and the headless command line works
without any X server."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from studio_helpers import non_background_fraction

from core.errors import Cancelled, HGNError
from core.files.project import Project, RolloutRecord, save_project
from core.files.video import probe, read_frames
from core.physics import builders
from core.physics.initial import initial_state
from core.physics.simulate import simulate
from studio.export.run import buffer_from_rollout, export_video
from studio.export.settings import ExportSettings, parse_size
from studio.scene import palette

ROOT = Path(__file__).resolve().parents[2]
BG = np.array(palette.rgb255(palette.BACKGROUND))


def runs(n=4, frames=12, kind="square"):
    system = builders.square_lattice(n, n) if kind == "square" else builders.cubic_lattice(n, n, n)
    q0, p0 = initial_state(system, 0.1, 0.3, seed=1)
    steps = 4 * (frames - 1)
    truth = simulate(system, q0, p0, 0.01, steps, save_every=4)
    pred = simulate(system, q0, 1.1 * p0, 0.01, steps, save_every=4)
    pred.label = "stand-in"
    return truth, pred


@pytest.fixture(scope="module")
def data():
    truth, pred = runs()
    return buffer_from_rollout(truth, pred, model_name="rfhgn-7")


@pytest.fixture
def gl(qapp):
    from studio.gl import ensure_backend

    ensure_backend()
    return qapp


def scene(data, **kw):
    from studio.export.scene import ExportScene

    s = ExportSettings(**{"width": 320, "height": 180, **kw})
    return ExportScene(data, s)


def colour_share(img, rgb, tol=60):
    """Share of pixels near a colour (particle colours are shaded, so loosely)."""
    d = np.abs(img.astype(int) - np.array(rgb)[None, None]).sum(-1)
    return float(np.mean(d < tol))


BLUE = palette.rgb255(palette.TRUTH)
ORANGE = palette.rgb255(palette.PREDICTION)


def test_side_by_side_frame(gl, data):
    sc = scene(data, layout="side")
    try:
        img = sc.render(5)
    finally:
        sc.close()
    assert img.shape == (180, 320, 3) and img.dtype == np.uint8
    assert np.all(img[-1, -1] == BG)                      # background where nothing is drawn
    left, right = img[:, :160], img[:, 160:]
    assert colour_share(left, BLUE) > 0.01 and colour_share(left, ORANGE) < 0.001
    assert colour_share(right, ORANGE) > 0.01 and colour_share(right, BLUE) < 0.001


@pytest.mark.parametrize("layout,blue,orange", [("truth", True, False), ("prediction", False, True),
                                                ("overlay", True, True)])
def test_single_view_layouts(gl, layout, blue, orange):
    truth, pred = runs()
    pred.q = pred.q + 0.35                      # apart enough to see both in the overlay
    data = buffer_from_rollout(truth, pred)
    sc = scene(data, layout=layout, width=240, height=240)
    try:
        img = sc.render(8)
    finally:
        sc.close()
    assert (colour_share(img, BLUE) > 0.005) == blue
    # shaded orange spheres: look for orange-ish hues
    r, g, b = (img[..., k].astype(int) for k in range(3))
    orangeish = np.mean((r > g + 25) & (g > b + 10) & (r > 60))
    assert (orangeish > 0.003) == orange


def test_frames_change_over_time_and_time_label_follows(gl, data):
    sc = scene(data, layout="side", time_label=True)
    try:
        a, b = sc.render(0), sc.render(11)
        label_a, label_b = sc.render(3)[14:40, :70], sc.render(4)[14:40, :70]
    finally:
        sc.close()
    assert non_background_fraction(a) > 0.02 and non_background_fraction(b) > 0.02
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 0.5    # particles moved
    assert np.any(label_a != label_b)                          # "t = 0.120" -> "t = 0.160"


def test_colouring_uses_the_colour_map(gl, data):
    sc = scene(data, layout="truth", colour="speed")
    try:
        img = sc.render(6)
        lo, hi = sc.colouring.range
    finally:
        sc.close()
    speeds = np.concatenate([np.linalg.norm(data.p["truth"][f], axis=1) for f in range(data.n_filled)])
    assert lo == pytest.approx(speeds.min()) and hi == pytest.approx(speeds.max())
    assert colour_share(img, BLUE, 30) < 0.002          # no uniform truth colour left
    r, g, b = (img[..., k].astype(int) for k in range(3))
    assert np.mean((g > r + 30) & (g > 60)) > 0.002          # viridis greens/teals are there


def test_plot_cursor_moves_with_time(gl, data):
    sc = scene(data, layout="side", plot=True, width=400, height=300)
    try:
        band = [sc.render(f)[int(0.8 * 300):int(0.9 * 300)] for f in (0, 11)]
        left, _, right = sc.plot.box[:3]
    finally:
        sc.close()

    def cursor_x(img):
        bright = (img.min(axis=2) > 150).sum(axis=0)      # the light-grey vertical cursor
        return int(np.argmax(bright))

    assert abs(cursor_x(band[0]) - left) <= 2
    assert abs(cursor_x(band[1]) - right) <= 2


def test_export_video_round_trip(gl, data, tmp_path):
    out = tmp_path / "movie.mp4"
    s = ExportSettings(width=320, height=180, fps=15, start=1, stop=11, stride=2, layout="side")
    res = export_video(data, s, out)
    info = probe(out)
    assert (info.width, info.height, info.frames, info.codec) == (320, 180, 5, "h264")
    assert info.fps == pytest.approx(15)
    frames = list(read_frames(out))
    assert all(non_background_fraction(f) > 0.02 for f in frames)
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 0.5
    assert res.frames == 5 and res.path == out


@pytest.mark.parametrize("name,codec", [("m.webm", "vp9"), ("m.gif", "gif")])
def test_other_formats(gl, data, tmp_path, name, codec):
    out = tmp_path / name
    export_video(data, ExportSettings(width=160, height=120, stride=3, layout="overlay", plot=True), out)
    info = probe(out)
    assert (info.width, info.height, info.frames, info.codec) == (160, 120, 4, codec)


def test_cancel_leaves_no_file_and_keeps_the_old_one(gl, data, tmp_path):
    out = tmp_path / "old.mp4"
    out.write_bytes(b"previous export")
    cancel = threading.Event()
    seen = []

    def progress(stage, fraction):
        seen.append(fraction)
        if len(seen) == 4:
            cancel.set()

    with pytest.raises(Cancelled):
        export_video(data, ExportSettings(width=160, height=120), out, progress=progress, cancel=cancel)
    assert out.read_bytes() == b"previous export"
    assert sorted(os.listdir(tmp_path)) == ["old.mp4"]


@pytest.mark.parametrize("kw,path,msg", [
    ({"width": 321}, "a.mp4", "even width"),
    ({"width": 2560, "height": 1440}, "a.mp4", "larger than 1920x1080"),
    ({"layout": "diagonal"}, "a.mp4", "unknown layout"),
    ({"stride": 0}, "a.mp4", "stride"),
    ({"start": 50}, "a.mp4", "no frames to export"),
    ({"crf": 18}, "a.gif", "GIF has no quality"),
    ({}, "a.mov", "cannot tell the video format"),
])
def test_bad_settings(data, tmp_path, kw, path, msg):
    s = ExportSettings(**{"width": 320, "height": 180, **kw})
    with pytest.raises(HGNError, match=msg):
        export_video(data, s, tmp_path / path)
    assert os.listdir(tmp_path) == []


def test_truth_only_rollouts_refuse_prediction_layouts():
    truth, _ = runs(frames=3)
    buf = buffer_from_rollout(truth)
    with pytest.raises(HGNError, match="no prediction"):
        ExportSettings(layout="side").check("a.mp4", buf.n_filled, buf.with_prediction)
    ExportSettings(layout="truth").check("a.mp4", buf.n_filled, buf.with_prediction)


def test_parse_size():
    assert parse_size("1280x720") == (1280, 720) and parse_size(" 640 X 360 ") == (640, 360)
    with pytest.raises(HGNError, match="1280x720"):
        parse_size("720p")


def test_bonds_auto_rule():
    small, big = builders.square_lattice(4, 4), builders.cubic_lattice(16, 16, 16)
    assert ExportSettings().draw_bonds(small) and not ExportSettings().draw_bonds(big)
    assert ExportSettings(bonds=True).draw_bonds(big) and not ExportSettings(bonds=False).draw_bonds(small)
    assert not ExportSettings(bonds=True).draw_bonds(builders.molecular(27, cutoff=2.0, periodic=False))


# ----------------------------------------------------------------------
# the command line, headless (EGL, no X server), in a subprocess
# ----------------------------------------------------------------------
def _headless_env():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _cli(*args, timeout=120):
    return subprocess.run([sys.executable, str(ROOT / "main.py"), "export-video", *map(str, args)],
                          capture_output=True, text=True, env=_headless_env(), cwd=ROOT, timeout=timeout)


@pytest.fixture(scope="module")
def project_file(tmp_path_factory):
    truth, pred = runs(n=3, frames=16, kind="cubic")
    pr = Project(system=truth.system, rollout=RolloutRecord(truth, pred, model_name="rfhgn-1"),
                 view={"layout": "overlay", "colour": "speed",
                       "camera": {"center": [1.0, 1.0, 1.0], "scale_factor": 6.0, "elevation": 10.0,
                                  "azimuth": 45.0, "fov": 35.0}})
    return save_project(tmp_path_factory.mktemp("proj") / "demo.hgnproj", pr)


def test_cli_exports_without_x(project_file, tmp_path):
    out = tmp_path / "movie.mp4"
    r = _cli(project_file, "--out", out, "--size", "320x240", "--fps", "24", "--stride", "2", "--layout",
             "side", "--plot", "--quiet")
    assert r.returncode == 0, r.stderr
    info = probe(out)
    assert (info.width, info.height, info.frames, info.codec) == (320, 240, 8, "h264")
    frames = list(read_frames(out))
    assert all(non_background_fraction(f) > 0.02 for f in frames)
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 0.3


def test_cli_single_frame_png_and_errors(project_file, tmp_path):
    import av

    png = tmp_path / "frame.png"
    r = _cli(project_file, "--out", png, "--frame", "3", "--size", "200x150")
    assert r.returncode == 0, r.stderr
    with av.open(str(png)) as c:
        img = next(c.decode(video=0)).to_ndarray(format="rgb24")
    assert img.shape == (150, 200, 3) and non_background_fraction(img) > 0.02

    bad = tmp_path / "broken.hgnproj"
    bad.write_bytes(project_file.read_bytes()[:2000])
    r = _cli(bad, "--out", tmp_path / "x.mp4")
    assert r.returncode == 1 and "error:" in r.stderr and "truncated" in r.stderr
    r = _cli(project_file, "--out", tmp_path / "x.mp4", "--size", "333x200")
    assert r.returncode == 1 and "even width" in r.stderr
    assert sorted(os.listdir(tmp_path)) == ["broken.hgnproj", "frame.png"]
