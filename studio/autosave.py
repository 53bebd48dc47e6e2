"""Which autosaves belong to a running studio: an identity per run and a lock.

Each studio run has an identity of its own (:class:`RunLock`: the start time
and a random part, never reused) that names its autosave,
``autosave-<run>.hgnproj``, and a lock file beside it,
``autosave-<run>.lock``, which the run holds locked (``fcntl.flock``) for as
long as it lives. The kernel drops the lock when the process ends, however
it ends (a crash, a kill, a power cut), so an autosave whose lock nobody
holds belongs to a run that is over (:func:`orphaned_autosaves`); a process
id would not say that, since the system gives a dead process's id to the
next process it starts.

Autosaves named by a process id (``autosave-<pid>.hgnproj``, written by
older versions) have no lock: they count as orphaned when no process has
that id.
"""
from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from core.files.project import PROJECT_SUFFIX

try:
    import fcntl
except ImportError:                    # not POSIX: a lock file that exists counts as held
    fcntl = None

PREFIX = "autosave-"
LOCK_SUFFIX = ".lock"


def new_run_id() -> str:
    """An identity for a studio run: its start time (sortable, readable) and
    a random part (two runs started in the same second differ)."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:12]}"


class RunLock:
    """This run's autosave path and the lock that says the run is alive."""

    def __init__(self, folder: Path, run_id: str | None = None):
        self.folder = Path(folder)
        self.run_id = run_id or new_run_id()
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        """The run's autosave."""
        return self.folder / f"{PREFIX}{self.run_id}{PROJECT_SUFFIX}"

    @property
    def lock_path(self) -> Path:
        return self.folder / f"{PREFIX}{self.run_id}{LOCK_SUFFIX}"

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Create and lock the run's lock file (once; OSError if it cannot)."""
        if self._fd is not None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()}, started {self.run_id[:15]}\n".encode())
        except OSError:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """The run ends: its lock file goes and the lock with it (its
        autosave, if still there, is then an orphan the next start offers)."""
        if self._fd is None:
            return
        try:
            self.lock_path.unlink()
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None


def lock_held(lock_path: Path) -> bool:
    """Whether a running studio holds this lock file."""
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except FileNotFoundError:
        return False
    except OSError:
        return True                   # cannot tell: assume alive (never offer a live run's file)
    try:
        if fcntl is None:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def run_of(path: Path) -> str:
    """The run identity in an autosave's name."""
    return path.name[len(PREFIX):-len(PROJECT_SUFFIX)]


def orphaned_autosaves(folder: Path, own: str = "") -> list[Path]:
    """Autosaves in ``folder`` of runs that are over (not ``own``), newest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    out = []
    for p in folder.glob(f"{PREFIX}*{PROJECT_SUFFIX}"):
        run = run_of(p)
        if not run or run == own:
            continue
        if run.isdigit():             # an older version's autosave, named by its process id
            alive = _pid_alive(int(run))
        else:
            alive = lock_held(folder / f"{PREFIX}{run}{LOCK_SUFFIX}")
        if not alive:
            out.append(p)

    def mtime(p: Path) -> float:
        try:
            return p.stat().st_mtime
        except OSError:
            return 0.0

    return sorted(out, key=mtime, reverse=True)


def remove(path: Path) -> None:
    """An autosave and its (released) lock file gone."""
    for p in (path, path.with_name(f"{PREFIX}{run_of(path)}{LOCK_SUFFIX}")):
        try:
            p.unlink()
        except OSError:
            pass
