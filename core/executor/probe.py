"""Small module-level jobs that check an executor end to end (tests, the Ray check, a new cluster).

They live in `core` so they travel to Ray workers with the package.
"""

from __future__ import annotations

import os
import signal
import time


def tiny_training(seed: int, steps: int = 30, report=None) -> dict:
    """A deterministic tiny torch training (explicit generator, no global RNG): the same numbers in any
    process, on any worker. Returns the final loss and a checksum of the weights, both as exact floats."""
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 8, generator=g)
    y = (x[:, :1] * 0.7 - x[:, 1:2] * 0.3 + 0.1 * torch.randn(64, 1, generator=g))
    w1 = (torch.randn(8, 16, generator=g) * 0.3).requires_grad_()
    w2 = (torch.randn(16, 1, generator=g) * 0.3).requires_grad_()
    opt = torch.optim.Adam([w1, w2], lr=1e-2)
    loss = torch.tensor(0.0)
    for step in range(steps):
        idx = torch.randperm(64, generator=g)[:16]
        loss = ((torch.tanh(x[idx] @ w1) @ w2 - y[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if report is not None and step % 10 == 9:
            report({"step": step + 1, "loss": loss.item()})
    return {"seed": seed, "loss": loss.item(), "weights_sum": (w1.detach().sum() + w2.detach().sum()).item(),
            "threads": torch.get_num_threads(), "pid": os.getpid()}


def sleep(seconds: float, value=None, stop=None):
    """Sleep, or until stop is set (when given); returns `value`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if stop is not None and stop.is_set():
            return {"stopped": True, "value": value}
        time.sleep(0.02)
    return value


def sleep_uninterruptible(seconds: float, value=None):
    """Sleep without looking at any stop flag: only ending the worker can stop it."""
    time.sleep(seconds)
    return value


def fail(message: str = "boom"):
    raise ZeroDivisionError(message)


def bad_input(message: str = "shots must be positive"):
    raise ValueError(message)


def cuda_error(message: str = "CUDA error: an illegal memory access was encountered"):
    """Fail as a job whose CUDA context broke (no GPU needed): its worker must exit and be replaced."""
    raise RuntimeError(message)


def kill_self(marker: str, value=None):
    """SIGKILL this worker the first time (as the OOM killer would), succeed on the retry. `marker` is a
    file path that records the first attempt."""
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return value


def kill_always():
    os.kill(os.getpid(), signal.SIGKILL)


def cuda_info() -> dict:
    """What a worker sees of the GPU: its CUDA_VISIBLE_DEVICES, the device count, the deterministic flags,
    and a small matmul on the device (so the CUDA context really starts)."""
    import torch

    info = {"pid": os.getpid(), "visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "available": torch.cuda.is_available(), "count": torch.cuda.device_count(),
            "deterministic": torch.are_deterministic_algorithms_enabled(),
            "tf32": torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32,
            "cublas": os.environ.get("CUBLAS_WORKSPACE_CONFIG")}
    if info["available"]:
        g = torch.Generator(device="cuda").manual_seed(0)
        a = torch.randn(64, 64, device="cuda", generator=g)
        info["matmul_sum"] = (a @ a).sum().item()
    return info


def whoami() -> dict:
    import torch

    return {"pid": os.getpid(), "threads": torch.get_num_threads(), "omp": os.environ.get("OMP_NUM_THREADS")}
