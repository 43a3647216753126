"""Which CPU kernels a record was computed with, and pinning them (protocol v3, reproducibility).

PyTorch picks its CPU kernels once per process from the CPU's instruction sets (DEFAULT, AVX2, AVX512...): two
machines with different kernel paths round differently, so their records agree only to a few decimals (measured:
1 of 12 few-shot cells bit-identical between an AVX-512 and an AVX2 machine; label-spread cells up to 0.02 apart,
because the VAE's codes already differ). Every record says what it ran on (`machine`); `pin` asks for the AVX2
path (ATEN_CPU_CAPABILITY=avx2, which an AVX-512 CPU also runs) and torch's deterministic algorithms, in this
process and — through the environment — in every worker process started after it.

The environment variable only takes effect before the process's first CPU kernel: `pin` refuses (ValueError) when
this process already runs another path than the pinned one (run the command with ATEN_CPU_CAPABILITY=avx2 set, or
with worker processes, which start after it).
"""
from __future__ import annotations

import os

import torch

PINNED = "avx2"                         # the most common path; AVX-512 CPUs can run it, older ones cannot
FLAG = "LATENT_LAB_DETERMINISTIC"       # set by `pin`, read by every worker (`apply`)
MACHINE_KEYS = ("cpu_capability", "aten_cpu_capability", "deterministic")


def machine() -> dict:
    """The record's kernel path: torch's CPU capability in this process, ATEN_CPU_CAPABILITY as set ("" when not),
    and whether torch's deterministic algorithms are on."""
    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "aten_cpu_capability": os.environ.get("ATEN_CPU_CAPABILITY", ""),
            "deterministic": bool(torch.are_deterministic_algorithms_enabled())}


def pin(capability: str = PINNED) -> dict:
    """Pin the kernel path for this process and the worker processes it starts afterwards; returns `machine()`."""
    os.environ["ATEN_CPU_CAPABILITY"] = capability
    os.environ[FLAG] = "1"
    torch.use_deterministic_algorithms(True)
    now = torch.backends.cpu.get_cpu_capability()
    if now.lower().startswith("avx512") and not capability.lower().startswith("avx512"):
        raise ValueError(f"this process already runs torch's {now} CPU kernels (the path is chosen at the first "
                         f"kernel); start the command with ATEN_CPU_CAPABILITY={capability} in the environment, or "
                         "run the cells in worker processes (--workers 1 or more)")
    return machine()


def apply() -> None:
    """In a worker: torch's deterministic algorithms on when the parent pinned the kernels (the environment carried
    ATEN_CPU_CAPABILITY itself, read by torch at the worker's first kernel)."""
    if os.environ.get(FLAG) == "1" and not torch.are_deterministic_algorithms_enabled():
        torch.use_deterministic_algorithms(True)
