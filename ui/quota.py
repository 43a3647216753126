"""A disk quota for what the app writes: trained checkpoints (runs/checkpoints/) and few-shot runs
(runs/fewshot/) started from the pages. Without one, visitors could fill the server's disk.

`check_disk_quota()` is called before a job that writes there is queued; it counts every file under the
runs folder (ui.catalog.runs_dir) and refuses with how much is used and what to delete.
"""

from __future__ import annotations

import os
from pathlib import Path

from ui import catalog

QUOTA_ENV = "LATENT_LAB_DISK_QUOTA_MB"
DEFAULT_QUOTA_MB = 2048  # ~400 conv-VAE checkpoints (~3-5 MB each) or thousands of few-shot runs


class DiskQuotaFull(ValueError):
    """The runs folder holds the quota or more; the message says what to delete."""


def quota_bytes() -> int:
    """LATENT_LAB_DISK_QUOTA_MB (default DEFAULT_QUOTA_MB) in bytes; 0 turns the quota off."""
    raw = os.environ.get(QUOTA_ENV, "").strip()
    try:
        mb = float(raw) if raw else DEFAULT_QUOTA_MB
    except ValueError:
        raise ValueError(f"{QUOTA_ENV}={raw!r} is not a number of megabytes (e.g. 2048; 0 turns it off)") from None
    return int(mb * 2**20)


def folder_bytes(root: Path) -> int:
    """Bytes of the regular files under `root` (links are not followed; a file removed meanwhile counts 0)."""
    total = 0
    stack = [root]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for e in it:
                    try:
                        if e.is_dir(follow_symlinks=False):
                            stack.append(Path(e.path))
                        elif e.is_file(follow_symlinks=False):
                            total += e.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return total


def largest_entries(root: Path, n: int = 3) -> list[tuple[str, int]]:
    """The n largest folders one level inside runs/checkpoints and runs/fewshot: (path relative to root, bytes)."""
    sizes = []
    for sub in ("checkpoints", "fewshot"):
        try:
            children = list((root / sub).iterdir())
        except OSError:
            continue
        sizes += [(f"{sub}/{c.name}", folder_bytes(c) if c.is_dir() else c.stat().st_size) for c in children]
    return sorted(sizes, key=lambda p: -p[1])[:n]


def _mb(n: int) -> str:
    return f"{n / 2**20:.0f} MB" if n >= 2**20 else f"{n / 2**20:.2f} MB"


def check_disk_quota() -> None:
    """Raise DiskQuotaFull when the runs folder already holds the quota (a job would only add to it)."""
    cap = quota_bytes()
    if cap <= 0:
        return
    root = catalog.runs_dir()
    used = folder_bytes(root)
    if used < cap:
        return
    big = ", ".join(f"{p} ({_mb(b)})" for p, b in largest_entries(root))
    raise DiskQuotaFull(
        f"the app's runs folder `{root}` holds {_mb(used)}, its disk quota is {_mb(cap)} ({QUOTA_ENV}). "
        f"Delete (or ask the server's operator to delete) trained checkpoints under runs/checkpoints/ or few-shot runs under runs/fewshot/ that you no "
        f"longer need{f' (largest: {big})' if big else ''}, or raise the quota, then start again.")
