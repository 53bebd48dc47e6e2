"""``python main.py export-video PROJECT --out movie.mp4 --size 1280x720``:
the studio's video export without a window.

Rendering uses vispy's EGL backend with ``EGL_PLATFORM=surfaceless`` (set
here before vispy is imported), so it needs neither an X server nor Qt's GL;
encoding is :mod:`core.files.video`. PROJECT is a project file (``.hgnproj``) with
a roll-out, or a trajectory file (``.npz`` from ``python -m core simulate``;
with two trajectories on one system the second is drawn as the prediction;
``.xyz``/``.extxyz``: ground truth only). Layout, colouring and camera
default to what the project's view showed. ``--frame N --out x.png`` writes
one frame as a PNG instead of a video.

Exit codes: 0 done, 1 a user error (one line on stderr, nothing written),
130 interrupted (the partial video is removed).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from core.errors import HGNError

from .settings import COLOURS, LAYOUTS, ExportSettings, parse_size


def _parser() -> argparse.ArgumentParser:
    d = ExportSettings()
    p = argparse.ArgumentParser(prog="main.py export-video",
                                description="Render a project's roll-out (ground truth and prediction) to a "
                                            "video without opening a window.")
    p.add_argument("project", metavar="PROJECT",
                   help="project file (.hgnproj) or trajectory file (.npz, .xyz, .extxyz)")
    p.add_argument("--out", "-o", required=True, metavar="FILE",
                   help="output: .mp4 (H.264), .webm (VP9) or .gif; .png with --frame")
    p.add_argument("--size", default=f"{d.width}x{d.height}", metavar="WxH",
                   help=f"frame size in pixels, up to 1920x1080 (default {d.width}x{d.height})")
    p.add_argument("--fps", type=float, default=d.fps, help=f"frames a second (default {d.fps:g})")
    p.add_argument("--start", type=int, default=d.start, help="first roll-out frame (default 0)")
    p.add_argument("--stop", type=int, default=None, help="stop before this frame (default: the last)")
    p.add_argument("--stride", type=int, default=d.stride, help="use every n-th frame (default 1)")
    p.add_argument("--layout", choices=list(LAYOUTS), default=None,
                   help="side (truth | prediction), overlay, truth or prediction "
                        "(default: the project's view, else side)")
    p.add_argument("--colour", "--color", choices=list(COLOURS), default=None,
                   help="colour particles by: uniform, error, speed, energy (default: the project's view)")
    p.add_argument("--plot", action="store_true", help="add the energy-drift plot with a moving cursor")
    p.add_argument("--no-time", action="store_true", help="leave out the time label")
    p.add_argument("--crf", type=int, default=None, help="quality for mp4/webm (lower is better)")
    p.add_argument("--preset", default=None, help="H.264 speed preset (default veryfast)")
    p.add_argument("--default-camera", action="store_true",
                   help="frame the system afresh instead of using the project's saved camera")
    p.add_argument("--frame", type=int, default=None, metavar="N", help="write frame N as a PNG instead")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    return p


def load_source(path) -> tuple:
    """(RolloutBuffer, view dict) from a project or trajectory file."""
    from core.files import io
    from core.files import project as projects
    from .run import buffer_from_record, buffer_from_rollout

    path = Path(path)
    if io.is_xyz(path):
        from core.files import xyz
        return buffer_from_rollout(xyz.read_trajectory(path)), {}
    kind, value = io.load_any(path)
    if kind == projects.PROJECT_KIND:
        if value.rollout is None:
            raise HGNError(f"{path.name} holds no roll-out to export: open it in the studio, train or roll "
                           "out a model, and save it again")
        return buffer_from_record(value.rollout), dict(value.view or {})
    if kind == "trajectory":
        trajs = value
        if len(trajs) >= 2 and trajs[1].n_frames == trajs[0].n_frames and io.same_system(trajs[0].system,
                                                                                        trajs[1].system):
            return buffer_from_rollout(trajs[0], trajs[1], label=trajs[1].label), {}
        return buffer_from_rollout(trajs[0]), {}
    raise HGNError(f"{path.name} holds a {kind}, which has no frames to export (give a project or a trajectory)")


def settings_from_args(args, view: dict, with_prediction: bool) -> ExportSettings:
    w, h = parse_size(args.size)
    layout = args.layout or (view.get("layout") if view.get("layout") in LAYOUTS else None) or "side"
    if not with_prediction and args.layout is None:
        layout = "truth"
    colour = args.colour or (view.get("colour") if view.get("colour") in COLOURS else "uniform")
    if not with_prediction and args.colour is None and colour == "error":
        colour = "uniform"
    return ExportSettings(width=w, height=h, fps=args.fps, start=args.start, stop=args.stop, stride=args.stride,
                          layout=layout, colour=colour, time_label=not args.no_time, plot=args.plot,
                          crf=args.crf, preset=args.preset)


def use_egl() -> None:
    """Select vispy's EGL backend (no window, no X). Must run before vispy
    makes its first canvas; a backend chosen earlier in the process is kept."""
    os.environ.setdefault("EGL_PLATFORM", "surfaceless")
    import vispy

    try:
        vispy.use(app="egl")
    except RuntimeError:
        pass      # another backend is already in use in this process (tests): render with it
    except Exception as exc:
        raise HGNError(f"headless rendering needs EGL (Mesa's libEGL): {exc}") from None


class _Progress:
    def __init__(self, quiet: bool):
        self.quiet = quiet or not sys.stderr
        self.last = 0.0

    def __call__(self, stage: str, fraction: float) -> None:
        now = time.perf_counter()
        if self.quiet or (now - self.last < 0.5 and fraction < 1.0):
            return
        self.last = now
        print(f"\r{stage}: {100 * fraction:5.1f}%", end="", file=sys.stderr, flush=True)


def run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    out = Path(args.out)
    data, view = load_source(args.project)
    settings = settings_from_args(args, view, data.with_prediction)
    camera = None if args.default_camera else view.get("camera")
    if args.frame is not None:
        return _one_frame(data, settings, camera, args.frame, out, args.quiet)
    use_egl()
    from .run import export_video

    prog = _Progress(args.quiet)
    res = export_video(data, settings, out, camera=camera, progress=prog)
    if not args.quiet:
        print(f"\rwrote {res.path}: {res.frames} frames, {settings.width}x{settings.height} "
              f"{res.info['format']} at {settings.fps:g} fps in {res.seconds:.1f} s "
              f"({res.ms_per_frame:.0f} ms a frame)", file=sys.stderr)
    return 0


def _one_frame(data, settings: ExportSettings, camera, frame: int, out: Path, quiet: bool) -> int:
    from core.files.video import write_png

    if out.suffix.lower() != ".png":
        raise HGNError(f"--frame writes a PNG image: name the output .png, not {out.name!r}")
    settings.check(None, data.n_filled, data.with_prediction)
    if not 0 <= frame < data.n_filled:
        raise HGNError(f"frame {frame} does not exist: the roll-out has frames 0..{data.n_filled - 1}")
    use_egl()
    from .scene import ExportScene

    scene = ExportScene(data, settings, camera=camera, frames=[frame])
    try:
        write_png(out, scene.render(frame))
    finally:
        scene.close()
    if not quiet:
        print(f"wrote {out} ({settings.width}x{settings.height}, frame {frame})", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return run(argv)
    except HGNError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: no video written", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
