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
