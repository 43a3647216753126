"""Pick the compute device once; everything else asks this module."""

from __future__ import annotations

import torch


def pick_device(prefer: str = "auto") -> torch.device:
    """'auto' -> CUDA when present, else CPU. 'cpu' / 'cuda' / 'cuda:N' are taken as given."""
    if prefer in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(prefer)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {prefer!r} asked for, but no CUDA GPU is visible; use --device cpu or auto")
    return device


def derived_seed(rng: torch.Generator) -> int:
    """A seed drawn from `rng` (on any device): hands reproducibility on to another generator or numpy.

    A CUDA generator's state (seed and Philox offset) lives on the host: its seed is a hash of that state, and a
    draw on the device (no copy back) advances it, so the next call differs. Reading a device draw back would
    stall the host until the GPU caught up, once per mixup / cutmix batch."""
    if rng.device.type == "cpu":
        return int(torch.randint(0, 2**62, (1,), generator=rng))
    import hashlib

    state = bytes(rng.get_state().tolist())
    torch.empty(1, device=rng.device).uniform_(generator=rng)
    return int.from_bytes(hashlib.sha256(state).digest()[:8], "little") >> 2


def derived_generator(rng: torch.Generator, device: str | torch.device = "cpu") -> torch.Generator:
    """A generator on `device` seeded from `rng`: torch refuses a CPU generator for CUDA draws and vice versa."""
    return torch.Generator(device=device).manual_seed(derived_seed(rng))
