"""Pick the compute device once; everything else asks this module."""

from __future__ import annotations

import os

import torch


DEVICE_TYPES = ("cpu", "cuda")
DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")


def pick_device(prefer: str = "auto") -> torch.device:
    """'auto' -> CUDA when present, else CPU. 'cpu' / 'cuda' / 'cuda:N' are taken as given."""
    if prefer in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = parse_device(prefer)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {prefer!r} asked for, but no CUDA GPU is visible; use --device cpu or auto")
    return device


def parse_device(prefer: str) -> torch.device:
    """A device name -> torch.device, without asking whether it is present (a Ray job's device is on the
    cluster, not here); ValueError listing the choices for anything else ('nonsense', 'mps', 'cuda:x')."""
    try:
        device = torch.device(prefer)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in DEVICE_TYPES:  # torch knows ~20 types; Latent Lab runs on these
        raise ValueError(f"unknown device {prefer!r}; choose one of {', '.join(DEVICE_CHOICES)}")
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


# cuBLAS picks a reduction order per call unless it has a fixed workspace; with this setting its matmuls are
# reproducible (torch.use_deterministic_algorithms raises on CUDA without it). It is read when the process's
# first cuBLAS handle is made (its first CUDA matmul), so a later setting comes too late: it is set here, on
# import, which every entry point (app, CLI, executor workers) does before touching CUDA. It costs nothing: it
# is the size torch already uses by default on Hopper (8 buffers of 4 MiB), and a user's own value is kept.
CUBLAS_WORKSPACE = ":4096:8"
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)


def set_deterministic(device: str | torch.device = "auto") -> bool:
    """Make CUDA runs bit-reproducible: deterministic kernels, TF32 off (matmul and cuDNN), cuDNN without
    autotuning. Call it at process start, before the first CUDA op. CPU runs are already deterministic
    here: for a CPU device this does nothing and returns False; True when the CUDA flags were set."""
    if pick_device(device).type != "cuda":
        return False
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    # warn_only: an op without a deterministic CUDA kernel warns instead of failing the user's job (the gpu
    # tests compare two runs' records, which catches any such op on the paths we ship)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cuda.matmul.allow_tf32 = False  # TF32 rounds inputs to 10 bits: results depend on the GPU
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False  # autotuning may pick a different algorithm per run
    return True
