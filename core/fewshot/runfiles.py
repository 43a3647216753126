"""The files of a run folder: atomic writes readable as the umask allows, and the lock that keeps one writer.

A run folder has one writer at a time: `run_lock(folder)` creates `<folder>/run.lock` with O_CREAT|O_EXCL,
holding the writer's pid, host, process start and the time it started, and removes it when the run ends (success,
error or stop). A second writer is refused with RunLocked, naming the holder. A lock left by a process that is no
longer alive on this host (killed, a crash) is taken over with a note; one held from another host cannot be
checked from here, so the message says how to remove it once that run is known to be gone.

Files are written through unique temporary names and renamed into place (core.files.atomic_write); mkstemp /
mkdtemp create them private (0600 / 0700), so they get the mode an ordinary create would (0666 / 0777 less the
umask, core.files): a run folder on a file system shared by a Ray cluster's nodes is readable by the group when
the umask says so.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
import uuid
from pathlib import Path

from core.files import file_mode, folder_mode

LOCK = "run.lock"
log = logging.getLogger(__name__)


class RunLocked(ValueError):
    """Another process is writing this run folder; the message names it (pid, host, since when)."""


# ------------------------------------------------------------------------------------------- file modes

def readable_by_group(path: Path, folder: bool = False) -> None:
    """Give a file made by mkstemp (or a folder made by mkdtemp) the mode an ordinary create would have."""
    os.chmod(path, folder_mode() if folder else file_mode())


# ------------------------------------------------------------------------------------------- the lock

def _process_start(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, /proc/<pid>/stat field 22), None where unknown: tells a
    live holder from a new process that reuses a dead holder's pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(holder: dict) -> bool:
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True                       # someone else's process: alive
    start = _process_start(pid)
    return holder.get("pid_start") is None or start is None or start == holder["pid_start"]


def _describe(holder: dict, path: Path) -> str:
    return (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started {holder.get('started', '?')} "
            f"(lock file {path})")


def _read(path: Path) -> dict | None:
    try:
        holder = json.loads(path.read_text())
        return holder if isinstance(holder, dict) else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}                         # being written, or damaged: judged by its age below


def _create(path: Path, holder: dict) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(holder))
    return True


@contextlib.contextmanager
def _guard(folder: Path):
    """Serialise lock take-overs of one folder among the processes of this host (flock on the folder itself):
    two processes that both find a dead holder's lock must not both take it."""
    try:
        import fcntl
    except ImportError:                    # no flock (Windows): O_EXCL alone
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def acquire(folder: Path) -> dict:
    """Create folder/run.lock for this process; RunLocked when a live process holds it. -> the holder written."""
    folder = Path(folder)
    path = folder / LOCK
    me = {"pid": os.getpid(), "host": socket.gethostname(), "pid_start": _process_start(os.getpid()),
          "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "token": uuid.uuid4().hex}
    with _guard(folder):
        for _ in range(2):
            if _create(path, me):
                return me
            holder = _read(path)
            if holder is None:             # removed meanwhile: try again
                continue
            if not holder and time.time() - _mtime(path) < 10:
                raise RunLocked(f"{folder} is being opened by another run right now; try again in a moment")
            if holder and holder.get("host") != me["host"]:
                raise RunLocked(f"{folder} is in use by another run: {_describe(holder, path)}. If that run has "
                                f"ended (its machine is down), delete {path} and start again")
            if holder and _alive(holder):
                raise RunLocked(f"{folder} is in use by another run: {_describe(holder, path)}; wait for it to "
                                f"finish, stop it, or choose another output folder")
            log.warning("%s: taking over the lock of a run that is no longer running (%s)", folder,
                        _describe(holder, path) if holder else "an unreadable lock file")
            path.unlink(missing_ok=True)
    raise RunLocked(f"{folder} is in use by another run (lock file {path}); try again in a moment")


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def release(folder: Path, holder: dict) -> None:
    """Remove the lock if it is still `holder`'s (never another run's that took over a lock judged stale)."""
    path = Path(folder) / LOCK
    current = _read(path)
    if current and current.get("token") == holder["token"]:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def run_lock(folder: Path):
    """Hold folder/run.lock while the block runs; released however the block ends (success, error, stop)."""
    holder = acquire(folder)
    try:
        yield holder
    finally:
        release(folder, holder)
