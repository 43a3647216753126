"""Models the app serves, placed on the GPU when there is one: one shared copy per checkpoint, a bounded LRU
of them, and the CPU when the GPU fails.

    out = run_placed(sha256, model, lambda m: m.decode(z.to(device_of(m))))

`model` is the CPU model the caller loaded (kept: it is the fallback). The GPU copy is made once per key
(the checkpoint's weights sha256, so two sessions on one checkpoint share it) and kept among the
`capacity` most recently used. When fn fails on the GPU copy with out-of-memory, that copy is dropped and
the key is served from the CPU from then on; after a CUDA error (the process's CUDA context is then
unusable) every key is served from the CPU. Either way fn is run again on the CPU model and the caller
gets its answer. fn must therefore be safe to run twice and move its inputs to its model's device.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from typing import Callable, TypeVar

import torch
from torch import nn

from core.executor.worker import is_sticky_cuda_error

T = TypeVar("T")
DEFAULT_CAPACITY = 4  # GPU copies kept (a decoder here is a few MB; the bound is for many uploads)


def device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _to_device(model: nn.Module, device: torch.device) -> nn.Module:
    return copy.deepcopy(model).to(device).eval()  # a copy: the caller's CPU model stays the fallback


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc)


class Placement:
    def __init__(self, device: str | torch.device | None = None, capacity: int = DEFAULT_CAPACITY,
                 mover: Callable[[nn.Module, torch.device], nn.Module] = _to_device):
        if capacity < 1:
            raise ValueError(f"placement capacity must be at least 1 (got {capacity})")
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.capacity = capacity
        self._mover = mover
        self._copies: OrderedDict[str, nn.Module] = OrderedDict()
        self._cpu_only: set[str] = set()  # keys whose GPU copy ran out of memory
        self.broken = False  # a sticky CUDA error: the whole process serves from the CPU
        self._lock = threading.Lock()

    def placed(self, key: str, model: nn.Module) -> nn.Module:
        """The shared copy of `model` on the placement device, or `model` itself when that is the CPU."""
        if self.device.type == "cpu" or self.broken or key in self._cpu_only:
            return model
        with self._lock:
            hit = self._copies.get(key)
            if hit is not None:
                self._copies.move_to_end(key)
                return hit
        try:
            on_device = self._mover(model, self.device)
        except Exception as exc:  # noqa: BLE001 - OOM / CUDA error while copying: serve from the CPU
            self._fail(key, exc)
            return model
        with self._lock:
            on_device = self._copies.setdefault(key, on_device)  # another thread may have placed it first
            self._copies.move_to_end(key)
            while len(self._copies) > self.capacity:
                self._copies.popitem(last=False)
        return on_device

    def run(self, key: str, model: nn.Module, fn: Callable[[nn.Module], T]) -> T:
        """fn(placed copy); on a GPU out-of-memory or CUDA error, fn(model) on the CPU."""
        target = self.placed(key, model)
        if target is model:
            return fn(model)
        try:
            return fn(target)
        except Exception as exc:  # noqa: BLE001 - only GPU failures fall back; the rest is the caller's
            if not (_is_oom(exc) or is_sticky_cuda_error(exc)):
                raise
            self._fail(key, exc)
            return fn(model)

    def _fail(self, key: str, exc: BaseException) -> None:
        with self._lock:
            self._copies.pop(key, None)
            if is_sticky_cuda_error(exc):
                self.broken = True
                self._copies.clear()
            else:
                self._cpu_only.add(key)
        if not self.broken and self.device.type == "cuda" and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def __len__(self) -> int:
        return len(self._copies)


_default: Placement | None = None
_default_lock = threading.Lock()


def default_placement() -> Placement:
    global _default
    with _default_lock:
        if _default is None:
            _default = Placement()
        return _default


def placed(key: str, model: nn.Module) -> nn.Module:
    return default_placement().placed(key, model)


def run_placed(key: str, model: nn.Module, fn: Callable[[nn.Module], T]) -> T:
    return default_placement().run(key, model, fn)
