"""The worker process behind :class:`studio.workers.JobRunner` (Qt-free).

The studio runs every long job (simulate, fit, baselines, roll-outs, saving,
video export) in a separate Python process, so that the job's work and its
imports (torch, vispy, FFmpeg) never hold the GUI process's interpreter lock.
This module holds what both ends share and the worker's own loop:

* **Wire format.** One socket pair per worker. A message is a small
  *envelope* (a tuple of plain values: what the message is, the job id,
  progress figures) and an optional *body* (any picklable object: the job's
  function and arguments, a roll-out chunk, the result), pickled with
  protocol 5 so that numpy arrays travel as separate out-of-band buffers.
  The receiver reads those straight into their final memory, a slice at a
  time (:class:`FrameReader`), so a large chunk never blocks the GUI for
  long, and unpickling the body is cheap (the arrays are not copied again).
* **The worker loop** (:func:`worker_main`). A reader thread takes messages
  off the socket: jobs go to a queue the main thread runs, a ``cancel`` sets
  the running job's :class:`core.jobs.CancelToken` at once. The main thread
  runs one job at a time with core's protocol (``progress``, ``cancel``,
  ``emit``) and answers with exactly one of ``finished`` / ``failed`` /
  ``cancelled``. When the GUI process goes away (the socket closes) the
  worker exits.
* **Models that need torch** (:class:`PackedModel`). A fitted RF-HGN
  (:class:`core.learning.rfhgn.model.FittedModel`) and a gradient-trained
  baseline (:class:`core.learning.baselines.model.TrainedHGN`) hold the torch
  network (core.learning.hgn); unpickling one would import torch into the GUI
  process. The worker therefore sends such a model as its own saved file
  (bytes) plus the plain facts the window shows (name, info, training
  system). A PackedModel saves itself without torch; a job that evaluates it
  (a roll-out, in a worker) loads the real model once (:func:`unpack`),
  cached per worker.
"""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import queue
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from collections import deque
from pathlib import Path

#: modules a worker imports before it says it is ready (missing ones are skipped)
PRELOAD = ("numpy", "scipy.linalg", "scipy.sparse", "scipy.spatial", "core.physics.datagen",
           "core.physics.simulate", "core.physics.forces", "core.learning.rfhgn", "core.learning.rfhgn.fitting",
           "core.learning.rollout", "core.learning.metrics", "core.files.project", "studio.pipeline")
#: a function a fresh worker runs once before it says it is ready ("module:function"):
#: a tiny fit and roll-out, so the first Train does not pay for first calls
WARM_UP = "studio.pipeline:warm_up"
#: modules that take long to import; a worker reports which of them its jobs needed, and the
#: studio's later workers import those while idle (:class:`studio.workers` pool)
HEAVY = ("torch", "vispy", "av")
#: how often a job's progress is forwarded (plus every change of stage and the end)
PROGRESS_INTERVAL = 0.05


def worker_threads() -> int:
    """Threads a worker's torch and BLAS calls use unless the environment says
    otherwise (``OMP_NUM_THREADS``): one core fewer than the machine has, so
    the window keeps a core. On a busy 2-core machine the table build after a
    fit (HGN.pair in torch, 2 threads) took 0.25-0.6 s instead of 20 ms:
    a parallel section waits for its slowest thread, and that one waits for a
    CPU."""
    return max(1, (os.cpu_count() or 2) - 1)


# ---------------------------------------------------------------------------
# wire format
# ---------------------------------------------------------------------------
#: frame header: envelope length, body length (0: no body), number of out-of-band buffers, flags
HEAD = struct.Struct("!IQIB")
#: flag: the out-of-band buffers are in a memory file passed along with the header
IN_MEMFD = 1
#: buffers of a message larger than this (bytes, together) travel in a memory file
#: (one copy, no round trips through the socket's small buffer); smaller ones inline
MEMFD_MIN = int(os.environ.get("HGN_STUDIO_MEMFD_MIN", 256 * 1024))
#: alignment of each buffer in a memory file (numpy wants aligned data)
ALIGN = 64
HAS_MEMFD = hasattr(os, "memfd_create") and hasattr(socket, "SCM_RIGHTS")


def _layout(lens) -> tuple[list, int]:
    """Offsets of buffers of ``lens`` bytes in a memory file, and its size."""
    offs, pos = [], 0
    for n in lens:
        offs.append(pos)
        pos += (n + ALIGN - 1) // ALIGN * ALIGN
    return offs, pos


class Message:
    """One encoded message: header and envelope, pickled body, out-of-band buffers."""

    __slots__ = ("env", "main", "raws", "size")

    #: ``size``: bytes of the body (pickle and out-of-band buffers)

    def __init__(self, envelope: tuple, body=None, has_body: bool = False, pickler=None):
        self.env = pickle.dumps(envelope, protocol=5)
        bufs: list = []
        if has_body:
            f = io.BytesIO()
            (pickler or pickle.Pickler)(f, protocol=5, buffer_callback=bufs.append).dump(body)
            self.main = f.getbuffer()
        else:
            self.main = b""
        self.raws = [b.raw() for b in bufs]
        self.size = len(self.main) + sum(r.nbytes for r in self.raws)

    def memfd(self) -> bool:
        return HAS_MEMFD and self.size >= MEMFD_MIN

    def head(self, flags: int) -> bytes:
        return (HEAD.pack(len(self.env), len(self.main), len(self.raws), flags)
                + struct.pack(f"!{len(self.raws)}Q", *(r.nbytes for r in self.raws)) + self.env)


def encode(envelope: tuple, body=None, has_body: bool = False, pickler=None) -> Message:
    """The message (pickling errors surface here, before any byte is sent)."""
    return Message(envelope, body, has_body, pickler)


def _wait_writable(sock, end) -> None:
    import select

    left = None if end is None else end - time.perf_counter()
    if left is not None and left <= 0:
        raise TimeoutError("the other process takes no more data")
    select.select([], [sock], [], left)


def send_all(sock: socket.socket, pieces: list, timeout: float | None = None) -> None:
    """Send byte pieces in order; works on blocking and non-blocking sockets
    (``timeout``: seconds to wait for room in the socket before giving up)."""
    end = None if timeout is None else time.perf_counter() + timeout
    for piece in pieces:
        mv = memoryview(piece).cast("B")
        while len(mv):
            try:
                n = sock.send(mv)
            except (BlockingIOError, InterruptedError):
                _wait_writable(sock, end)
                continue
            mv = mv[n:]


def send_message(sock: socket.socket, msg: Message, timeout: float | None = None) -> None:
    """Send ``msg``: large buffers in a memory file whose descriptor goes
    with the header (SCM_RIGHTS), the rest through the socket."""
    if not msg.memfd():
        send_all(sock, [msg.head(0), msg.main, *msg.raws], timeout)
        return
    import array

    parts = [memoryview(msg.main).cast("B")] + [r.cast("B") for r in msg.raws]
    offs, total = _layout([len(p) for p in parts])
    fd = os.memfd_create("hgn-studio-message", getattr(os, "MFD_CLOEXEC", 0))
    try:
        os.ftruncate(fd, total)
        for off, mv in zip(offs, parts):
            while len(mv):                   # os.pwrite releases the interpreter lock
                n = os.pwrite(fd, mv, off)
                mv, off = mv[n:], off + n
        head = memoryview(msg.head(IN_MEMFD))
        end = None if timeout is None else time.perf_counter() + timeout
        fds = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
        while True:
            try:
                n = sock.sendmsg([head], fds)
                break
            except (BlockingIOError, InterruptedError):
                _wait_writable(sock, end)
        send_all(sock, [head[n:]], timeout)
    finally:
        os.close(fd)


def decode_body(main, buffers):
    """The body of a received message (the out-of-band buffers are used in place)."""
    return pickle.loads(main, buffers=buffers)


class FrameReader:
    """Reassembles messages from a socket, reading straight into each part.

    :meth:`read` takes what the socket has (non-blocking, or blocking) up to
    a time budget and appends complete messages to :attr:`messages` as
    ``(envelope, main, buffers)``; ``main`` is ``None`` for messages without
    a body. Buffers that came in a memory file are read out of it at once. It
    returns False once the other end has closed the socket.
    """

    def __init__(self):
        self.messages: deque = deque()
        self._fds: deque = deque()       # descriptors received, oldest first
        self._pos = 0
        self._stage = "head"
        self._head = bytearray(HEAD.size)
        self._parts: list = [memoryview(self._head)]
        self._lens = None
        self._env = self._main = None
        self._bufs: list = []
        self._flags = 0
        self.bytes_in = 0

    def _advance(self) -> None:
        """The current part is full: parse it and set up the next ones."""
        if self._stage == "head":
            self._env_len, self._main_len, self._nbuf, self._flags = HEAD.unpack(self._head)
            self._stage = "lens"
            self._lens = bytearray(8 * self._nbuf)
            self._parts = [memoryview(self._lens)] if self._nbuf else []
            if not self._nbuf:
                self._advance()
            return
        if self._stage == "lens":
            self._lens = struct.unpack(f"!{self._nbuf}Q", self._lens) if self._nbuf else ()
            self._env = bytearray(self._env_len)
            inline = not (self._flags & IN_MEMFD)
            self._main = bytearray(self._main_len) if self._main_len and inline else None
            self._bufs = [bytearray(n) for n in self._lens] if inline else []
            self._parts = [memoryview(x) for x in (self._env, self._main, *self._bufs) if x is not None and len(x)]
            self._stage = "data"
            if not self._parts:
                self._advance()
            return
        # a whole message
        if self._flags & IN_MEMFD:
            main, *self._bufs = self._map([self._main_len, *self._lens])
            self._main = main if self._main_len else None
        env = pickle.loads(self._env)
        self.messages.append((env, self._main, self._bufs))
        self._stage = "head"
        self._parts = [memoryview(self._head)]
        self._env = self._main = None
        self._bufs = []

    def _map(self, lens) -> list:
        """The buffers of a message, read out of its memory file (one copy at
        memory speed, the interpreter lock released; mapping the file instead
        would keep a descriptor open for as long as the arrays live)."""
        if not self._fds:
            raise OSError("a message announced a memory file that did not arrive")
        fd = self._fds.popleft()
        try:
            offs, _total = _layout(lens)
            bufs = [bytearray(n) for n in lens]
            for off, buf in zip(offs, bufs):
                mv = memoryview(buf)
                while len(mv):
                    k = os.preadv(fd, [mv], off)
                    if k <= 0:
                        raise OSError("a memory file ended early")
                    mv, off = mv[k:], off + k
        finally:
            os.close(fd)
        return bufs

    def read(self, sock: socket.socket, budget: float | None = None, block: bool = False) -> bool:
        end = None if budget is None else time.perf_counter() + budget
        flags = 0 if block else socket.MSG_DONTWAIT
        anc = socket.CMSG_SPACE(16 * 4) if HAS_MEMFD else 0
        while True:
            part = self._parts[0]
            try:
                if anc:
                    n, ancdata, _mflags, _addr = sock.recvmsg_into([part[self._pos:]], anc, flags)
                    for level, kind, data in ancdata:
                        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                            import array

                            fds = array.array("i")
                            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
                            self._fds.extend(fds)
                else:
                    n = sock.recv_into(part[self._pos:], 0, flags)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:
                return False
            if n == 0:
                return False
            self.bytes_in += n
            self._pos += n
            if self._pos == len(part):
                self._pos = 0
                self._parts.pop(0)
                if not self._parts:
                    try:
                        self._advance()
                    except OSError:
                        return False
                    if block and self.messages:
                        return True
            if end is not None and time.perf_counter() > end:
                return True

    @property
    def partway(self) -> bool:
        """True while a message has been started but not completed."""
        return self._stage != "head" or self._pos > 0

    def close(self) -> None:
        """Close descriptors received but not used (a message cut short)."""
        while self._fds:
            try:
                os.close(self._fds.popleft())
            except OSError:
                pass


# ---------------------------------------------------------------------------
# models that need torch
# ---------------------------------------------------------------------------
#: digest -> the real model, in a process that evaluated a PackedModel (the last few)
_UNPACKED: dict = {}
_UNPACKED_MAX = 8


def _remember(digest: str, model) -> None:
    _UNPACKED.pop(digest, None)
    _UNPACKED[digest] = model
    while len(_UNPACKED) > _UNPACKED_MAX:
        _UNPACKED.pop(next(iter(_UNPACKED)))


class PackedModel:
    """A model whose class needs torch, held as its own saved file.

    ``blob`` is the model file's bytes (its ``save`` format), ``meta`` the
    facts the studio shows without evaluating it: ``kind`` (file kind),
    ``name``, ``info``, ``train_system``, ``dim`` and whatever else the
    packer knew. Attribute access beyond those loads the real model (that
    imports torch; jobs do it in a worker through :func:`unpack`).
    """

    def __init__(self, blob: bytes, meta: dict):
        self.blob = bytes(blob)
        self.meta = dict(meta)
        self.digest = self.meta.get("digest") or hashlib.sha1(self.blob).hexdigest()
        self.meta["digest"] = self.digest
        self.info = dict(self.meta.get("info") or {})
        self.train_system = self.meta.get("train_system")
        self.kind = self.meta.get("kind", "baseline_model")

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or ("RF-HGN" if self.kind == "model" else "baseline"))

    @property
    def packed(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"PackedModel({self.kind}, {self.name}, {len(self.blob)} bytes)"

    def __reduce__(self):
        meta = dict(self.meta, info=self.info)
        return (restore_model, (self.blob, meta))

    def save(self, path) -> Path:
        """Write the model file (the same bytes the model's own ``save`` wrote),
        atomically and with core's errors (core.container.atomic_write)."""
        from core.container import atomic_write

        path = Path(path)
        with atomic_write(path) as fh:
            fh.write(self.blob)
        return path

    def unpacked(self):
        """The real model (imports torch); loaded once per process."""
        model = _UNPACKED.get(self.digest)
        if model is None:
            import tempfile

            with tempfile.TemporaryDirectory(prefix="hgn-model-") as d:
                path = Path(d) / "model.npz"
                path.write_bytes(self.blob)
                model = _load_real(self.kind, path)
            model.info = self.info
            _remember(self.digest, model)
        return model

    def __getattr__(self, name):
        if name.startswith("__") or name in ("blob", "meta", "digest", "info", "train_system", "kind"):
            raise AttributeError(name)
        return getattr(self.unpacked(), name)

    @classmethod
    def from_file(cls, path, kind: str = "baseline_model") -> "PackedModel":
        """Read a model file (fitted RF-HGN or baseline) without torch (for
        opening models and projects in the GUI). The file gets the checks of
        core's loader that need no torch (header schema, stored settings,
        every array's dtype, shape and finiteness, the training system), so a
        damaged file is refused here with core's HGNError; the checks that
        need the network run when a worker unpacks it."""
        from core.container import load_npz

        path = Path(path)
        header, arrays = load_npz(path, kind)
        if kind == "model":
            from core.learning.rfhgn.model_file import check_model_file
        else:
            from core.learning.baselines.model import check_model_file
        config, train_system = check_model_file(header, arrays, path.name)
        meta = {"kind": kind, "info": header.get("info") or {}, "dim": header["dim"]}
        meta["name"] = _display_name(kind, header["config"], meta["info"])
        if train_system is not None:
            meta["train_system"] = train_system
        return cls(path.read_bytes(), meta)


def _display_name(kind: str, config: dict, info: dict) -> str:
    """The name a model file's model shows in the studio, from its header
    (the names core.learning.rollout.model_name and TrainedHGN.name give)."""
    if isinstance(info.get("name"), str) and info["name"]:
        return info["name"]
    if kind == "model":
        return f"RF-HGN ({str(config.get('sampler', '')).upper()}, {config.get('encoding', '')})"
    try:
        from core.learning.baselines.optimizers import OPTIMIZERS

        opt = config.get("optimizer", "")
        spec = OPTIMIZERS.get(opt)
        return f"HGN ({spec.label if spec else opt})"
    except Exception:  # noqa: BLE001 - a name is only for display
        return "HGN"


def _load_real(kind: str, path: Path):
    if kind == "model":
        from core.learning.rfhgn.model import FittedModel

        return FittedModel.load(path)
    if kind == "baseline_model":
        from core.learning.baselines.model import TrainedHGN

        return TrainedHGN.load(path)
    from core.learning.baselines.model import load_model

    return load_model(path)


def restore_model(blob: bytes, meta: dict) -> PackedModel:
    """Unpickling end of a packed model (both processes keep it packed)."""
    return PackedModel(blob, meta)


def unpack(model):
    """The model a job can evaluate: a PackedModel's real model, else ``model``."""
    return model.unpacked() if isinstance(model, PackedModel) else model


#: (module, class) of the models that hold torch, and the file kind each saves as
TORCH_MODELS = {("core.learning.rfhgn.model", "FittedModel"): "model",
                ("core.learning.baselines.model", "TrainedHGN"): "baseline_model"}


def needs_packing(obj) -> bool:
    cls = type(obj)
    return (cls.__module__, cls.__name__) in TORCH_MODELS


def pack_model(model) -> PackedModel:
    """The PackedModel of a torch model (its saved file and plain facts)."""
    import tempfile

    from core.learning.learned import plain_info
    from core.learning.rollout import model_name

    cls = type(model)
    kind = TORCH_MODELS.get((cls.__module__, cls.__name__), "baseline_model")
    with tempfile.TemporaryDirectory(prefix="hgn-model-") as d:
        path = Path(d) / "model.npz"
        model.save(path)
        blob = path.read_bytes()
    meta = {"kind": kind, "name": model_name(model),
            "info": plain_info(getattr(model, "info", {}) or {}),
            "train_system": getattr(model, "train_system", None), "dim": getattr(model, "dim", None)}
    digest = hashlib.sha1(blob).hexdigest()
    meta["digest"] = digest
    _remember(digest, model)             # this process already has the real one
    return PackedModel(blob, meta)


class WorkerPickler(pickle.Pickler):
    """Pickles what a worker sends back, with torch models packed."""

    def reducer_override(self, obj):
        if needs_packing(obj):
            return pack_model(obj).__reduce__()
        return NotImplemented


# ---------------------------------------------------------------------------
# the worker
# ---------------------------------------------------------------------------
class _Worker:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.jobs: queue.Queue = queue.Queue()
        self.lock = threading.Lock()
        self.current = None                 # (job id, CancelToken)
        self.cancelled: set = set()         # ids cancelled before they started
        self.reader = FrameReader()

    # -- sending ------------------------------------------------------------
    def send(self, envelope: tuple, body=None, has_body: bool = False) -> None:
        msg = encode(envelope, body, has_body, WorkerPickler)   # pickling errors surface before any byte
        with self.lock:
            send_message(self.sock, msg)

    # -- the reader thread ----------------------------------------------------
    def read_loop(self) -> None:
        while True:
            if not self.reader.read(self.sock, block=True):
                os._exit(0)                  # the studio has gone
            while self.reader.messages:
                env, main, bufs = self.reader.messages.popleft()
                kind = env[0]
                if kind == "cancel":
                    cur = self.current
                    if cur is not None and cur[0] == env[1]:
                        cur[1].cancel()
                    else:
                        self.cancelled.add(env[1])
                elif kind == "job":
                    self.jobs.put((env, main, bufs))
                elif kind == "preload":
                    threading.Thread(target=preload, args=(env[1],), daemon=True).start()
                elif kind == "quit":
                    self.jobs.put(None)

    # -- the main thread ----------------------------------------------------------
    def serve(self) -> None:
        while True:
            item = self.jobs.get()
            if item is None:
                return
            self.run(*item)

    def run(self, env: tuple, main, bufs) -> None:
        from core.errors import Cancelled, HGNError
        from core.jobs import CancelToken

        job_id, paths = env[1], env[2]
        for p in paths:
            if p not in sys.path:
                sys.path.append(p)
        token = CancelToken()
        self.current = (job_id, token)
        if job_id in self.cancelled:
            self.cancelled.discard(job_id)
            token.cancel()
        last = [0.0, None]

        def progress(stage: str, fraction: float) -> None:
            now = time.perf_counter()
            if stage != last[1] or fraction >= 1.0 or now - last[0] >= PROGRESS_INTERVAL:
                last[0], last[1] = now, stage
                self.send(("progress", job_id, str(stage), float(fraction)))

        def emit(obj) -> None:
            self.send(("partial", job_id), obj, True)

        try:
            try:
                fn, args, kwargs = decode_body(main, bufs)
                del main, bufs
                if token.is_set():
                    raise Cancelled()
                result = fn(*args, progress=progress, cancel=token, emit=emit, **kwargs)
            except Cancelled:
                self.send(("cancelled", job_id, heavy()))
            except HGNError as exc:
                self.send(("failed", job_id, heavy(), str(exc), ""))
            except Exception as exc:  # a bug: report it with its traceback
                self.send(("failed", job_id, heavy(), f"{type(exc).__name__}: {exc}", traceback.format_exc()))
            else:
                returned = time.perf_counter()
                try:
                    msg = encode(("finished", job_id, heavy()), result, True, WorkerPickler)
                    # when the job returned and its result was pickled (perf_counter is the
                    # machine's monotonic clock, the window's too): JobRunner.last_times
                    msg.env = pickle.dumps(("finished", job_id, heavy(),
                                            {"returned": returned, "encoded": time.perf_counter()}),
                                           protocol=5)
                except Exception as exc:  # noqa: BLE001 - an unpicklable result is a bug of the job
                    self.send(("failed", job_id, heavy(), f"the job's result cannot be sent to the window: "
                               f"{type(exc).__name__}: {exc}", traceback.format_exc()))
                else:
                    with self.lock:
                        send_message(self.sock, msg)
        finally:
            self.current = None


def heavy() -> list:
    """The slow-to-import modules this process has imported."""
    return [m for m in HEAVY if m in sys.modules]


def preload(modules) -> dict:
    """Import ``modules`` (skipping missing ones); seconds each took."""
    import importlib

    times = {}
    for m in modules:
        t0 = time.perf_counter()
        try:
            importlib.import_module(m)
        except Exception:  # noqa: BLE001 - a module that moved is not worth failing for
            continue
        times[m] = time.perf_counter() - t0
    return times


def worker_main(fd: int, modules=PRELOAD) -> None:
    """The worker process: serve jobs over the socket ``fd`` until told to quit
    or until the studio goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # Ctrl+C in the terminal is the studio's
    os.environ["HGN_STUDIO_WORKER"] = "1"
    os.environ.setdefault("EGL_PLATFORM", "surfaceless")   # exports render headless (EGL)
    os.environ.setdefault("OMP_NUM_THREADS", str(worker_threads()))   # before torch / numpy load
    sock = socket.socket(fileno=fd)
    sock.setblocking(True)
    w = _Worker(sock)
    threading.Thread(target=w.read_loop, name="hgn-worker-reader", daemon=True).start()
    t0 = time.perf_counter()
    times = preload(modules)
    if WARM_UP:
        try:
            import importlib

            mod, fn = WARM_UP.split(":")
            times[WARM_UP] = getattr(importlib.import_module(mod), fn)()
        except Exception:  # noqa: BLE001 - warming up is optional
            pass
    w.send(("ready", os.getpid(), time.perf_counter() - t0, times))
    w.serve()


#: the command line of a worker: python -c BOOT <json sys.path> <fd>
BOOT = ("import sys, json; p = json.loads(sys.argv[1]); sys.path[:0] = [x for x in p if x not in sys.path]; "
        "from studio.worker_process import worker_main; worker_main(int(sys.argv[2]))")


def in_worker() -> bool:
    return os.environ.get("HGN_STUDIO_WORKER") == "1"
