"""Models the app serves, placed on the GPU when there is one: one shared copy per checkpoint, a bounded LRU
of them, and the CPU when the GPU fails.

    out = run_placed(sha256, model, lambda m: m.decode(z.to(device_of(m))))
    app_model = place(model)   # or: a stand-in with the model's interface, CPU tensors in and out

`model` is the CPU model the caller loaded (kept: it is the fallback). The GPU copy is made once per key
(the checkpoint's weights sha256, so two sessions on one checkpoint share it); at most `capacity` copies and
`max_bytes` of weights are kept, the least recently used dropped first. When fn fails on the GPU copy with out-of-memory, that copy is dropped and
the key is served from the CPU from then on; after a CUDA error (the process's CUDA context is then
unusable) every key is served from the CPU. Either way fn is run again on the CPU model and the caller
gets its answer. fn must therefore be safe to run twice and move its inputs to its model's device.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import threading
from collections import OrderedDict
from typing import Callable, TypeVar

import torch
from torch import nn

from core.executor.worker import is_sticky_cuda_error

T = TypeVar("T")
DEFAULT_CAPACITY = 4  # GPU copies kept (a model here is a few MB; the bounds are for many uploads)
DEFAULT_MAX_BYTES = 2 * 2**30  # their weights together; a model larger than this alone stays on the CPU


def device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def model_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


def _to_device(model: nn.Module, device: torch.device) -> nn.Module:
    return copy.deepcopy(model).to(device).eval()  # a copy: the caller's CPU model stays the fallback


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc)


class Placement:
    def __init__(self, device: str | torch.device | None = None, capacity: int = DEFAULT_CAPACITY,
                 mover: Callable[[nn.Module, torch.device], nn.Module] = _to_device,
                 max_bytes: int = DEFAULT_MAX_BYTES):
        if capacity < 1 or max_bytes < 1:
            raise ValueError(f"placement capacity and max_bytes must be at least 1 (got {capacity}, {max_bytes})")
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.capacity, self.max_bytes = capacity, max_bytes
        self._mover = mover
        self._copies: OrderedDict[str, nn.Module] = OrderedDict()
        self._cpu_only: set[str] = set()  # keys whose GPU copy ran out of memory
        self.broken = False  # a sticky CUDA error: the whole process serves from the CPU
        self._lock = threading.Lock()

    def placed(self, key: str, model: nn.Module) -> nn.Module:
        """The shared copy of `model` on the placement device, or `model` itself when that is the CPU."""
        if self.device.type == "cpu" or self.broken or key in self._cpu_only:
            return model
        if model_bytes(model) > self.max_bytes:
            return model  # alone over the budget: the CPU serves it
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
            # least recently used first, never the one just placed
            while len(self._copies) > 1 and (len(self._copies) > self.capacity or self.placed_bytes() > self.max_bytes):
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

    def placed_bytes(self) -> int:
        return sum(model_bytes(m) for m in self._copies.values())

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


# ----------------------------------------------------------------------------- a stand-in for the app

ROUTED = ("encode", "decode", "encode_dist", "reconstruct", "forward")  # computed on the placed copy


def _moved(obj, device: torch.device):
    """Tensors in obj (nested tuples / lists / dicts) moved to device; anything else as it is."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, (tuple, list)):
        return type(obj)(_moved(o, device) for o in obj)
    if isinstance(obj, dict):
        return {k: _moved(v, device) for k, v in obj.items()}
    return obj


def weights_key(model: nn.Module) -> str:
    """sha256 of the model's weights (its state_dict's bytes, in order): the same checkpoint, the same key."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class PlacedModel:
    """The CPU model's interface, computing on its shared placed copy: encode / decode / encode_dist /
    reconstruct / forward (and calling it) take CPU tensors and return CPU tensors, on the GPU when there is
    one and on the CPU model when the GPU fails (Placement.run). Every other attribute is the CPU model's
    own (config, latent_dim, decoder for the browser export, sample_prior with a CPU generator, ...)."""

    def __init__(self, key: str, model: nn.Module, placement: Placement):
        self._key, self._model, self._placement = key, model, placement

    def __getattr__(self, name: str):  # only for names the stand-in itself does not have
        if name in ("_key", "_model", "_placement"):  # not set yet (copy / unpickle): no recursion
            raise AttributeError(name)
        attr = getattr(self._model, name)
        if name in ROUTED and callable(attr):
            return functools.partial(self._run, name)
        return attr

    def __call__(self, *args, **kwargs):
        return self._run("__call__", *args, **kwargs)

    def _run(self, method: str, *args, **kwargs):
        def on(net: nn.Module):
            device = device_of(net)
            out = getattr(net, method)(*_moved(args, device), **_moved(kwargs, device))
            return _moved(out, torch.device("cpu"))

        return self._placement.run(self._key, self._model, on)

    def __repr__(self) -> str:
        return f"PlacedModel({type(self._model).__name__}, on {self._placement.device})"


def place(model: nn.Module, key: str | None = None, placement: Placement | None = None):
    """What the app keeps for a loaded CPU model: the model itself when there is no GPU, otherwise a
    PlacedModel (one shared GPU copy per weights key, default weights_key(model))."""
    placement = default_placement() if placement is None else placement  # (an empty one is falsy: __len__)
    if placement.device.type == "cpu":
        return model
    return PlacedModel(key or weights_key(model), model, placement)
