"""Writing run files atomically, with the permissions an ordinary `open()` would give them.

`tempfile.mkstemp` / `mkdtemp` create private files (0600) and folders (0700) whatever the umask says: a file
renamed into place from one stays private, so a run folder on a file system shared with a Ray cluster (or a
group of users) cannot be read by the others. These helpers give the temporary file the mode `open()` would
(0666 less the umask; folders 0777 less the umask) before it is renamed into place.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def current_umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux: /proc/self/status).

    The classic `os.umask(0); os.umask(old)` sets it to 0 for a moment, during which another thread (a web
    server has many) would create world-writable files; it is only the fallback."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def file_mode() -> int:
    """The mode `open(path, "w")` gives a new file: 0666 less the umask (0644 with the usual 022)."""
    return 0o666 & ~current_umask()


def folder_mode() -> int:
    """The mode `mkdir` gives a new folder: 0777 less the umask (0755 with the usual 022)."""
    return 0o777 & ~current_umask()


def atomic_write(path: str | Path, data: str | bytes) -> None:
    """Write `data` to `path` via a unique temporary file in the same folder, then rename it into place.

    A reader sees the old file or the new one, never half of one; two writers never share a temporary name;
    the new file has the permissions an ordinary open() would give it (the umask's)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if isinstance(data, bytes) else "w") as f:
            os.fchmod(f.fileno(), file_mode())
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
