"""One interface for heavy jobs (a model training, a few-shot cell, a generator training).

    ex = get_executor("local", workers=2)          # or "ray" (address=...), or "inline"
    h = ex.submit(fn, {"a": 1}, owner=session_id)  # -> JobHandle: .status .queue_position .progress
    h.result(timeout=60)                           #    .result() .cancel(); JobFailed on error
    ex.map(fn, [{"a": 1}, {"a": 2}], stop=event, on_result=lambda i, r: ...)

A job function is a module-level function taking plain keyword arguments; if it accepts `report` it gets
a callable that sends progress dicts to the caller (handle.progress / handle.events), if it accepts
`stop` it gets an object whose is_set() turns true when it is cancelled (it then has about a second to
return what it has before its worker is ended). Backends: local.py, ray_backend.py, inline.py.
"""

from __future__ import annotations

import os

from core.executor.base import (CANCELLED, DONE, FAILED, QUEUED, RUNNING, Executor, JobCancelled, JobFailed,
                                JobHandle, QueueFull)

KINDS = ("local", "ray", "inline")
__all__ = ["get_executor", "Executor", "JobHandle", "JobFailed", "JobCancelled", "QueueFull", "KINDS",
           "QUEUED", "RUNNING", "DONE", "FAILED", "CANCELLED", "default_workers"]


def default_workers() -> int:
    """Workers of a local pool: a few per GPU when CUDA is present ($LATENT_LAB_WORKERS_PER_GPU, default 2),
    otherwise one per core."""
    from core.executor.local import default_pool_size

    return default_pool_size()


def get_executor(kind: str = "local", workers: int | None = None, address: str | None = None,
                 max_queued: int = 256, per_owner: int = 2) -> Executor:
    """kind: "local" (worker processes: one per core, or a few per GPU, unless `workers`), "ray" (the cluster at `address`
    or $LATENT_LAB_RAY_ADDRESS) or "inline" (this process). Shut it down with .shutdown() or `with`."""
    if workers is not None and int(workers) < 1:
        raise ValueError(f"--workers must be at least 1 (got {workers})")
    if kind == "local":
        from core.executor.local import LocalExecutor

        return LocalExecutor(workers, max_queued=max_queued, per_owner=per_owner)
    if kind == "ray":
        from core.executor.ray_backend import RayExecutor

        return RayExecutor(address, workers, max_queued=max_queued, per_owner=per_owner)
    if kind == "inline":
        from core.executor.inline import InlineExecutor

        return InlineExecutor(workers, max_queued=max_queued, per_owner=per_owner)
    raise ValueError(f"unknown executor {kind!r}; choose one of {', '.join(KINDS)}")


def executor_from_args(workers: int | None = None, ray_address: str | None = None, inline: bool = False,
                       default: str = "local") -> Executor:
    """The CLI's choice: --ray ADDRESS (or $LATENT_LAB_RAY_ADDRESS) -> ray; --workers 0 / inline -> inline;
    otherwise `default`."""
    address = ray_address or os.environ.get("LATENT_LAB_RAY_ADDRESS")
    if address:
        return get_executor("ray", workers=workers or None, address=address)
    if inline or workers == 0:
        return get_executor("inline")
    return get_executor(default, workers=workers)
