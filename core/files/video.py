"""Writing videos and still images from RGB frames (Qt-free, no GL).

:class:`VideoWriter` encodes numpy frames (``(height, width, 3)`` uint8, RGB)
through PyAV, which bundles FFmpeg, into one of three formats chosen by the
file's suffix:

=========  ===============  ===========  =====================================
suffix     codec            pixels       notes
=========  ===============  ===========  =====================================
``.mp4``   H.264 (libx264)  yuv420p      even width and height; ``crf`` 23,
                                         ``preset`` veryfast by default
``.webm``  VP9 (libvpx-vp9) yuv420p      even width and height; constant
                                         quality ``crf`` 32, realtime speed
``.gif``   GIF              rgb8         256 fixed colours; large files;
                                         at most 50 frames a second
=========  ===============  ===========  =====================================

Frame rate: videos play at the asked ``fps``. A GIF stores each frame's
delay in whole hundredths of a second (30 fps: 3 and 4 alternating, 3.33 on
average), and viewers show delays under 2/100 s as 1/10 s; so above 50 fps
a GIF keeps every k-th frame (k = ceil(fps / 50)) at fps / k, which plays at
the asked speed (``VideoWriter.keep_every``).

Atomic output: frames go to a hidden temporary file in the target folder
(``.NAME.<16 hex>.hgn-partial``, a :class:`core.container.Temporary`, as every
save uses), which :meth:`VideoWriter.close` renames over the target once the
encoder has been flushed; :meth:`VideoWriter.abort` (a cancelled export) and
any error remove it. A previous file of the same name is therefore left
intact by a failed or cancelled export, and no half-written video is ever
left behind; the temporary file of a killed export is removed by the next
save to the folder. A symbolic link at the target is written through and a
read-only target is refused, as for every save.

:class:`BackgroundEncoder` runs a writer in a thread with a small bounded
queue, so that rendering (which must stay on the thread that owns the GL
context) and encoding (FFmpeg releases the GIL) overlap on two cores.

:func:`probe` and :func:`read_frames` decode a video back (size, frame count,
codec; frames as arrays) for checks and tests; :func:`write_png` writes one
frame as a PNG (zlib only, atomic).
"""
from __future__ import annotations

import math
import queue
import struct
import threading
import zlib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from core.errors import Cancelled, HGNError
from core.container import Temporary, atomic_write

#: the largest frame a writer accepts (the export dialog stops at 1920x1080)
MAX_SIZE = (4096, 4096)
MIN_SIZE = 16
MAX_FPS = 240.0
#: GIF frame delays are whole hundredths of a second, and browsers and most
#: viewers play a delay under 2/100 s as 1/10 s; above this rate a GIF keeps
#: every k-th frame (k = ceil(fps / GIF_MAX_FPS)) and plays at fps / k, so it
#: still runs at the asked speed
GIF_MAX_FPS = 50.0


@dataclass(frozen=True)
class VideoFormat:
    """How one kind of file is written."""

    key: str
    container: str            # FFmpeg muxer name
    codec: str                # FFmpeg encoder name
    pix_fmt: str              # pixel format handed to the encoder
    even: bool                # width and height must be even
    options: dict = field(default_factory=dict)   # encoder defaults (strings)
    label: str = ""


FORMATS: dict[str, VideoFormat] = {
    "mp4": VideoFormat("mp4", "mp4", "libx264", "yuv420p", True,
                       {"crf": "23", "preset": "veryfast"}, "MP4 (H.264)"),
    "webm": VideoFormat("webm", "webm", "libvpx-vp9", "yuv420p", True,
                        {"crf": "32", "b": "0", "deadline": "realtime", "cpu-used": "8", "row-mt": "1"},
                        "WebM (VP9)"),
    "gif": VideoFormat("gif", "gif", "gif", "rgb8", False, {}, "GIF (256 colours)"),
}

#: file suffix -> format key
SUFFIXES = {".mp4": "mp4", ".m4v": "mp4", ".webm": "webm", ".gif": "gif"}


def format_for(path, fmt: str | None = None) -> VideoFormat:
    """The format named ``fmt`` or, without it, the one of ``path``'s suffix."""
    if fmt is not None:
        key = str(fmt).lower().lstrip(".")
        if key not in FORMATS:
            raise HGNError(f"unknown video format {fmt!r}; choose one of {', '.join(FORMATS)}")
        return FORMATS[key]
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise HGNError(f"cannot tell the video format from {Path(path).name!r}: "
                       f"name the file .mp4 (H.264), .webm (VP9) or .gif")
    return FORMATS[SUFFIXES[suffix]]


def check_size(width, height, fmt: VideoFormat | None = None) -> tuple[int, int]:
    """(width, height) as ints, or HGNError saying what is wrong."""
    try:
        w, h = int(width), int(height)
    except (TypeError, ValueError):
        raise HGNError(f"video size must be whole numbers, got {width!r} x {height!r}") from None
    if w != width or h != height:
        raise HGNError(f"video size must be whole numbers, got {width!r} x {height!r}")
    if not (MIN_SIZE <= w <= MAX_SIZE[0] and MIN_SIZE <= h <= MAX_SIZE[1]):
        raise HGNError(f"video size {w}x{h} is outside {MIN_SIZE}x{MIN_SIZE} .. {MAX_SIZE[0]}x{MAX_SIZE[1]}")
    if fmt is not None and fmt.even and (w % 2 or h % 2):
        raise HGNError(f"{fmt.label or fmt.key} needs an even width and height, got {w}x{h}")
    return w, h


def check_fps(fps) -> float:
    try:
        f = float(fps)
    except (TypeError, ValueError):
        raise HGNError(f"frame rate must be a number, got {fps!r}") from None
    if not (0 < f <= MAX_FPS) or f != f:
        raise HGNError(f"frame rate must lie in (0, {MAX_FPS:g}] frames a second, got {fps!r}")
    return f


class VideoWriter:
    """Encode RGB frames into ``path`` (see the module notes).

    ``options`` override the format's encoder options (FFmpeg names, e.g.
    ``{"crf": "18", "preset": "slow"}``); ``crf`` and ``preset`` are
    shortcuts. Use as a context manager: leaving the block normally closes
    (and publishes) the file, an exception aborts it.
    """

    def __init__(self, path, width: int, height: int, fps: float = 30.0, fmt: str | None = None,
                 crf: int | None = None, preset: str | None = None, options: dict | None = None):
        import av

        self.path = Path(path)
        self.format = format_for(self.path, fmt)
        self.width, self.height = check_size(width, height, self.format)
        self.fps = check_fps(fps)
        #: frames kept: every ``keep_every``-th (above GIF_MAX_FPS for GIF, else all)
        self.keep_every = 1
        if self.format.key == "gif" and self.fps > GIF_MAX_FPS:
            self.keep_every = math.ceil(self.fps / GIF_MAX_FPS)
        #: the stream's frame rate (frames per second of the file)
        self.rate = Fraction(self.fps).limit_denominator(1001) / self.keep_every
        opts = dict(self.format.options)
        if crf is not None:
            if self.format.key == "gif":
                raise HGNError("GIF has no quality setting (crf)")
            opts["crf"] = str(int(crf))
        if preset is not None:
            if self.format.key != "mp4":
                raise HGNError("preset applies to MP4 (H.264) only")
            opts["preset"] = str(preset)
        opts.update({str(k): str(v) for k, v in (options or {}).items()})
        self.options = opts
        if self.path.is_dir():
            raise HGNError(f"cannot write {self.path}: it is a folder")
        self._temp = Temporary(self.path)
        self.tmp = Path(self._temp.name)
        self.frames = 0
        self.closed = False
        try:
            self._container = av.open(str(self.tmp), mode="w", format=self.format.container)
            self._stream = self._container.add_stream(self.format.codec, rate=self.rate)
            self._stream.width, self._stream.height = self.width, self.height
            self._stream.pix_fmt = self.format.pix_fmt
            self._stream.options = opts
        except Exception as exc:
            self._cleanup()
            raise HGNError(f"cannot start the {self.format.label} encoder: {exc}") from None

    # ------------------------------------------------------------------
    def write(self, frame: np.ndarray) -> None:
        """Encode one (height, width, 3) uint8 RGB frame."""
        import av

        if self.closed:
            raise HGNError("this video is already closed")
        a = np.asarray(frame)
        if a.shape != (self.height, self.width, 3):
            raise HGNError(f"frame has shape {a.shape}, expected ({self.height}, {self.width}, 3)")
        if a.dtype != np.uint8:
            raise HGNError(f"frame must be uint8 RGB, got {a.dtype}")
        if self.frames % self.keep_every:
            self.frames += 1
            return
        try:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(a), format="rgb24")
            for packet in self._stream.encode(vf):
                self._container.mux(packet)
        except Exception as exc:
            self.abort()
            raise HGNError(f"encoding frame {self.frames} of {self.path.name} failed: {exc}") from None
        self.frames += 1

    def close(self) -> Path:
        """Flush the encoder and publish the file under its name; returns it."""
        if self.closed:
            return self.path
        if self.frames == 0:
            self.abort()
            raise HGNError(f"{self.path.name}: no frames were written, so no video was made")
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None
            self._temp.publish()
        except Exception as exc:
            self._cleanup()
            self.closed = True
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise HGNError(f"could not finish {self.path}: {reason}; the previous file (if any) is unchanged") from None
        self.closed = True
        return self.path

    def abort(self) -> None:
        """Stop and remove the temporary file (no video, previous file kept)."""
        if self.closed:
            return
        self.closed = True
        self._cleanup()

    def _cleanup(self) -> None:
        c = getattr(self, "_container", None)
        if c is not None:
            try:
                c.close()
            except Exception:
                pass
            self._container = None
        temp = getattr(self, "_temp", None)
        if temp is not None:
            temp.discard()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self):  # a writer dropped without close() leaves no temporary file
        try:
            if not self.closed:
                self.abort()
        except Exception:
            pass


# ----------------------------------------------------------------------
# encoding in a thread
# ----------------------------------------------------------------------
class BackgroundEncoder:
    """A :class:`VideoWriter` fed through a bounded queue by another thread.

    The producer calls :meth:`submit` per frame (blocking while the queue is
    full, or returning False at once with ``block=False``), then
    :meth:`finish` (waits, publishes the file, returns the path) or
    :meth:`abort` (drops queued frames, removes the temporary file). An
    encoder error is raised again as HGNError by the next call of either.
    ``written`` counts frames encoded so far (for progress bars).
    """

    _END = object()

    def __init__(self, writer: VideoWriter, maxsize: int = 4):
        self.writer = writer
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(maxsize)))
        self._aborted = threading.Event()
        self.error: BaseException | None = None
        self.written = 0
        self.result: Path | None = None
        self._thread = threading.Thread(target=self._run, name="video-encoder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is self._END or self._aborted.is_set():
                    break
                self.writer.write(item)
                self.written += 1
            if self._aborted.is_set():
                self.writer.abort()
            else:
                self.result = self.writer.close()
        except BaseException as exc:  # reported to the producer
            self.error = exc
            self.writer.abort()
            self._drain()

    def _drain(self) -> None:
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass

    def _raise(self) -> None:
        if self.error is not None:
            err = self.error
            if isinstance(err, HGNError):
                raise HGNError(str(err)) from None
            raise HGNError(f"the video encoder failed: {type(err).__name__}: {err}") from None

    def has_room(self) -> bool:
        """A frame can be queued without waiting."""
        return not self._queue.full()

    @property
    def done(self) -> bool:
        """The encoder thread has ended (file published, aborted or failed)."""
        return not self._thread.is_alive()

    def submit(self, frame: np.ndarray, block: bool = True, timeout: float | None = None) -> bool:
        """Queue a frame; False when the queue is full and ``block`` is False
        (or the timeout passed). Raises HGNError if the encoder failed."""
        self._raise()
        if self._aborted.is_set():
            raise Cancelled()
        if not self._thread.is_alive():
            raise HGNError("the video encoder has already stopped")
        frame = np.array(frame, dtype=np.uint8, copy=True)
        try:
            self._queue.put(frame, block=block, timeout=timeout)
        except queue.Full:
            return False
        return True

    def close_input(self) -> None:
        """No more frames: the thread publishes the file once the queue is empty
        (poll :attr:`done`, then call :meth:`finish`)."""
        if self.error is None and not self._aborted.is_set():
            while self._thread.is_alive():
                try:
                    self._queue.put(self._END, timeout=0.1)
                    return
                except queue.Full:
                    continue

    def finish(self, timeout: float | None = None) -> Path:
        """Wait for the queued frames, publish the video, return its path."""
        self.close_input()
        self._thread.join(timeout)
        self._raise()
        if self._thread.is_alive():
            raise HGNError("the video encoder did not finish in time")
        if self.result is None:
            raise Cancelled()
        return self.result

    def abort(self, timeout: float = 10.0) -> None:
        """Drop queued frames and remove the temporary file."""
        self._aborted.set()
        self._drain()
        try:
            self._queue.put_nowait(self._END)
        except queue.Full:
            pass
        self._thread.join(timeout)
        self.writer.abort()


# ----------------------------------------------------------------------
# reading back
# ----------------------------------------------------------------------
@dataclass
class VideoInfo:
    width: int
    height: int
    frames: int
    codec: str
    fps: float
    container: str


def probe(path) -> VideoInfo:
    """Decode a video completely and say what it holds (frames are counted)."""
    import av

    path = Path(path)
    if not path.is_file():
        raise HGNError(f"file not found: {path}")
    try:
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            n = sum(1 for _ in c.decode(s))
            rate = s.average_rate or s.base_rate or 0
            return VideoInfo(width=s.codec_context.width, height=s.codec_context.height, frames=n,
                             codec=s.codec_context.name, fps=float(rate), container=c.format.name)
    except (av.error.FFmpegError, IndexError) as exc:
        raise HGNError(f"{path.name} is not a readable video ({exc})") from None


def read_frames(path, every: int = 1):
    """Yield every ``every``-th decoded frame of a video as (h, w, 3) uint8 RGB."""
    import av

    with av.open(str(path)) as c:
        for k, frame in enumerate(c.decode(video=0)):
            if k % every == 0:
                yield frame.to_ndarray(format="rgb24")


# ----------------------------------------------------------------------
# still images
# ----------------------------------------------------------------------
def png_bytes(rgb: np.ndarray, compress: int = 6) -> bytes:
    """A PNG file (8-bit RGB or RGBA, no interlace) of an (h, w, 3|4) uint8 array."""
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or a.dtype != np.uint8 or 0 in a.shape[:2]:
        raise HGNError(f"an image must be a non-empty (height, width, 3 or 4) uint8 array, got "
                       f"{a.shape} {a.dtype}")
    h, w, c = a.shape
    raw = np.empty((h, 1 + w * c), dtype=np.uint8)
    raw[:, 0] = 0  # filter type "none" on every row
    raw[:, 1:] = a.reshape(h, w * c)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2 if c == 3 else 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(raw.tobytes(), compress)) + chunk(b"IEND", b""))


def write_png(path, rgb: np.ndarray) -> Path:
    """Write an image atomically (temporary file, then rename)."""
    return write_bytes_atomic(path, png_bytes(rgb))


def write_bytes_atomic(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder."""
    path = Path(path)
    with atomic_write(path) as fh:
        fh.write(data)
    return path


__all__ = ["VideoWriter", "BackgroundEncoder", "VideoFormat", "VideoInfo", "FORMATS", "SUFFIXES",
           "format_for", "check_size", "check_fps", "probe", "read_frames", "png_bytes", "write_png",
           "write_bytes_atomic", "MAX_SIZE"]
