"""core.files.video: videos decode back with the size, frame count and codec asked
for, frames survive the round trip, and a cancelled or failed export leaves
neither a broken file nor a temporary one (a previous file stays intact)."""
from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from core import container
from core.files import video
from core.errors import Cancelled, HGNError
from core.files.video import BackgroundEncoder, VideoWriter, probe, read_frames

W, H = 96, 64


def moving_bar(k: int, w: int = W, h: int = H) -> np.ndarray:
    """A dark frame with an orange bar that moves 8 px a frame."""
    a = np.full((h, w, 3), 20, np.uint8)
    x = (8 * k) % (w - 16)
    a[:, x:x + 16] = (250, 140, 50)
    return a


def leftovers(folder) -> list[str]:
    return [n for n in os.listdir(folder) if n.endswith((".part", ".tmp", ".hgn-partial"))]


@pytest.mark.parametrize("suffix,codec", [(".mp4", "h264"), (".webm", "vp9"), (".gif", "gif")])
def test_round_trip_size_count_codec_and_content(tmp_path, suffix, codec):
    path = tmp_path / f"movie{suffix}"
    with VideoWriter(path, W, H, fps=20) as w:
        for k in range(9):
            w.write(moving_bar(k))
    info = probe(path)
    assert (info.width, info.height, info.frames, info.codec) == (W, H, 9, codec)
    frames = list(read_frames(path))
    assert len(frames) == 9
    for k, f in enumerate(frames):
        x = (8 * k) % (W - 16)
        bar = f[:, x + 3:x + 13].reshape(-1, 3).mean(0)
        assert np.allclose(bar, (250, 140, 50), atol=12), (k, bar)      # the bar is where it was drawn
        assert f[:, (x + 40) % W].mean() < 60                           # background stays dark
    assert np.abs(frames[0].astype(int) - frames[4].astype(int)).mean() > 5   # frames change
    assert leftovers(tmp_path) == []


def test_frame_rate_is_stored(tmp_path):
    path = tmp_path / "rate.mp4"
    with VideoWriter(path, W, H, fps=12.5) as w:
        for k in range(3):
            w.write(moving_bar(k))
    assert probe(path).fps == pytest.approx(12.5)


def gif_delays(path) -> list[int]:
    """The frame delays (hundredths of a second) of a GIF, read from its graphic control
    extensions (0x21 0xF9 0x04, packed fields, delay as little-endian uint16), not by FFmpeg."""
    data = path.read_bytes()
    out, i = [], 0
    while (i := data.find(b"\x21\xf9\x04", i)) >= 0:
        out.append(int.from_bytes(data[i + 4:i + 6], "little"))
        i += 8
    return out


@pytest.mark.parametrize("fps,frames,kept", [(10, 12, 12), (12.5, 12, 12), (30, 30, 30), (50, 20, 20),
                                             (60, 30, 15), (100, 20, 10), (240, 50, 10)])
def test_gif_plays_at_the_asked_rate(tmp_path, fps, frames, kept):
    """A GIF of n frames at fps lasts n / fps seconds, read both from the file's own delays
    and as PyAV decodes it; no delay is under 2/100 s (viewers show those as 1/10 s), so
    above 50 fps every k-th frame is kept."""
    import av

    path = tmp_path / "anim.gif"
    with VideoWriter(path, 32, 32, fps=fps) as w:
        for k in range(frames):
            w.write(moving_bar(k, 32, 32))
    delays = gif_delays(path)
    assert len(delays) == kept and min(delays) >= 2
    # the delays add up to the asked duration (each is rounded to 1/100 s, the sum is not)
    assert sum(delays) == pytest.approx(100 * frames / fps, abs=1)
    # and every delay is within 1/100 s of the asked spacing of the kept frames
    assert max(abs(d - 100 * frames / fps / kept) for d in delays) < 1
    with av.open(str(path)) as c:
        decoded = [(f.pts, f.duration, f.time_base) for f in c.decode(video=0)]
    assert len(decoded) == kept
    end = decoded[-1][0] + decoded[-1][1]
    assert float(end * decoded[-1][2]) == pytest.approx(frames / fps, abs=0.011)


def test_written_files_follow_the_umask(tmp_path):
    """Saved files get 0666 less the user's umask (mkstemp alone would give 0600)."""
    from core.container import save_npz

    old = os.umask(0o022)
    try:
        for mask in (0o022, 0o002, 0o077):
            os.umask(mask)
            expected = 0o666 & ~mask
            paths = [save_npz(tmp_path / f"f{mask:o}.npz", "note", {}, {"x": np.zeros(2)}),
                     video.write_png(tmp_path / f"f{mask:o}.png", moving_bar(0)),
                     video.write_bytes_atomic(tmp_path / f"f{mask:o}.txt", b"text")]
            with VideoWriter(tmp_path / f"f{mask:o}.gif", 32, 32, fps=10) as w:
                w.write(moving_bar(0, 32, 32))
            paths.append(tmp_path / f"f{mask:o}.gif")
            for p in paths:
                assert os.stat(p).st_mode & 0o777 == expected, (p.name, oct(os.stat(p).st_mode & 0o777))
    finally:
        os.umask(old)


@pytest.mark.parametrize("name", ["a.mp4", "a.webm"])
def test_odd_sizes_are_refused_for_yuv420_codecs(tmp_path, name):
    with pytest.raises(HGNError, match="even width and height"):
        VideoWriter(tmp_path / name, 95, 64)
    assert os.listdir(tmp_path) == []


def test_gif_accepts_odd_sizes(tmp_path):
    with VideoWriter(tmp_path / "odd.gif", 33, 21) as w:
        w.write(np.zeros((21, 33, 3), np.uint8))
    assert probe(tmp_path / "odd.gif").width == 33


@pytest.mark.parametrize("kw,msg", [({"width": 8}, "outside"), ({"width": 64.5}, "whole numbers"),
                                    ({"fps": 0}, "frame rate"), ({"fps": "fast"}, "frame rate"),
                                    ({"crf": 20, "name": "x.gif"}, "GIF has no quality"),
                                    ({"preset": "slow", "name": "x.webm"}, "MP4"),
                                    ({"name": "movie.avi"}, "cannot tell the video format")])
def test_bad_settings_raise_clear_errors(tmp_path, kw, msg):
    args = {"width": W, "height": H, "fps": 30, "name": "x.mp4", **kw}
    name = args.pop("name")
    with pytest.raises(HGNError, match=msg):
        VideoWriter(tmp_path / name, **args)
    assert leftovers(tmp_path) == [] and not (tmp_path / name).exists()


def test_missing_folder(tmp_path):
    with pytest.raises(HGNError, match="does not exist"):
        VideoWriter(tmp_path / "nope" / "a.mp4", W, H)


def test_abort_leaves_previous_file_intact_and_nothing_else(tmp_path):
    path = tmp_path / "keep.mp4"
    path.write_bytes(b"the previous video")
    w = VideoWriter(path, W, H)
    for k in range(4):
        w.write(moving_bar(k))
    assert leftovers(tmp_path)            # frames go to a temporary file ...
    w.abort()
    assert path.read_bytes() == b"the previous video"   # ... which a cancel removes
    assert leftovers(tmp_path) == []


def test_exception_inside_the_block_aborts(tmp_path):
    path = tmp_path / "boom.webm"
    with pytest.raises(RuntimeError):
        with VideoWriter(path, W, H) as w:
            w.write(moving_bar(0))
            raise RuntimeError("renderer crashed")
    assert not path.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("frame,msg", [(np.zeros((H, W, 4), np.uint8), "shape"),
                                       (np.zeros((H, W, 3), np.float32), "uint8")])
def test_bad_frames_are_refused_without_damage(tmp_path, frame, msg):
    path = tmp_path / "bad.mp4"
    with VideoWriter(path, W, H) as w:
        w.write(moving_bar(0))
        with pytest.raises(HGNError, match=msg):
            w.write(frame)
        w.write(moving_bar(1))
    assert probe(path).frames == 2


def test_no_frames_no_video(tmp_path):
    w = VideoWriter(tmp_path / "empty.mp4", W, H)
    with pytest.raises(HGNError, match="no frames"):
        w.close()
    assert os.listdir(tmp_path) == []


def test_failed_final_rename_keeps_previous_file(tmp_path, monkeypatch):
    """Disk full at the last moment: the old video survives, no temporary file stays."""
    path = tmp_path / "old.mp4"
    path.write_bytes(b"old")
    w = VideoWriter(path, W, H)
    w.write(moving_bar(0))

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(container.os, "replace", full)
    with pytest.raises(HGNError, match="No space left on device.*previous file"):
        w.close()
    assert path.read_bytes() == b"old" and leftovers(tmp_path) == []


def test_background_encoder_matches_direct_encoding(tmp_path):
    frames = [moving_bar(k) for k in range(10)]
    enc = BackgroundEncoder(VideoWriter(tmp_path / "bg.mp4", W, H, fps=10), maxsize=2)
    for f in frames:
        assert enc.submit(f)
    assert enc.finish(timeout=30) == tmp_path / "bg.mp4"
    assert enc.written == 10
    back = list(read_frames(tmp_path / "bg.mp4"))
    assert len(back) == 10
    assert np.abs(back[7].astype(int) - frames[7].astype(int)).mean() < 4


def test_background_encoder_abort_removes_everything(tmp_path):
    path = tmp_path / "cancel.gif"
    enc = BackgroundEncoder(VideoWriter(path, W, H), maxsize=2)
    for k in range(3):
        enc.submit(moving_bar(k))
    enc.abort()
    assert not path.exists() and leftovers(tmp_path) == []
    with pytest.raises(Cancelled):
        enc.submit(moving_bar(0))


def test_background_encoder_reports_encoder_errors(tmp_path):
    enc = BackgroundEncoder(VideoWriter(tmp_path / "err.mp4", W, H), maxsize=2)
    enc.submit(np.zeros((H + 2, W, 3), np.uint8))    # wrong size: fails inside the thread
    with pytest.raises(HGNError, match="shape"):
        enc.finish(timeout=30)
    assert os.listdir(tmp_path) == []


def test_png_round_trip_is_exact(tmp_path):
    import av

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    path = video.write_png(tmp_path / "frame.png", img)
    with av.open(str(path)) as c:
        back = next(c.decode(video=0)).to_ndarray(format="rgb24")
    assert np.array_equal(back, img)
    with pytest.raises(HGNError, match="uint8"):
        video.png_bytes(img.astype(float))


def test_probe_refuses_non_videos(tmp_path):
    p = tmp_path / "text.mp4"
    p.write_text("not a video")
    with pytest.raises(HGNError, match="not a readable video"):
        probe(p)
