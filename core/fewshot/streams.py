"""Named random streams: every random draw of a few-shot cell comes from a generator derived from its names.

`stream(seed, "shots", 5, "batches")` is a fresh torch.Generator whose seed is a hash of the parts, so a cell's
draws depend only on (seed, cell, purpose) — never on the global RNG, the thread, the worker, the order the
cells ran in or what ran before. Streams keyed by (seed, shots) only (the real-batch order, dropout) are shared
by every method of that cell: paired comparisons then differ only by the method (common random numbers).
"""
from __future__ import annotations

import hashlib

import torch


def stream_seed(*parts) -> int:
    """A 63-bit seed from the parts' text (stable across processes, machines and Python's hash salt)."""
    text = "/".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def stream(*parts, device: str | torch.device = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(stream_seed(*parts))
