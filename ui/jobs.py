"""Background work for the pages, without heavy work in the web server.

Every job is a core.executor JobHandle (the one job protocol: status, queue place, progress events,
cancel, result, error class) on the one process-wide executor, `shared_executor()` (worker processes, or
a Ray cluster). The server only submits, polls and writes result files; a job that raises, diverges, is
killed or runs out of memory fails alone.

- `submit(...)` queues a session's job (a training) and wraps it in an `ExecutorJob`: the handle plus
  `then(result)`, work the server does once the job has finished (writing the checkpoint); the job is
  tracked in ui.session_jobs (whose it is, caps, the sweeper for closed tabs, the operator's view).
- Jobs shared by every session and keyed by their inputs (UMAP fits, hole metrics, the saliency
  classifiers) go through ui.background; a few-shot run's orchestration through executor.run_here.
No st.* is called from any thread here.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable

from core.executor import Executor, JobCancelled, JobHandle, get_executor
from core.executor.base import describe_error
from ui import session_jobs

__all__ = ["describe_error", "shared_executor", "session_owner", "ExecutorJob", "submit", "wait_for"]

# describe_error lives with the job protocol (core.executor.base): one error class for every job.

# ----------------------------------------------------------------------------- the shared executor

_executor: Executor | None = None
_executor_lock = threading.Lock()


def shared_executor() -> Executor:
    """The one executor of this server process, made on first use (st.cache_resource would give the same
    sharing, but its clear() would orphan a pool of worker processes). Settings from the environment:
    LATENT_LAB_EXECUTOR (local | ray | inline; ray when LATENT_LAB_RAY_ADDRESS is set), LATENT_LAB_WORKERS
    (default: one per core), LATENT_LAB_JOBS_PER_SESSION (default 2), LATENT_LAB_MAX_QUEUED (default 32)."""
    global _executor
    with _executor_lock:
        if _executor is None:
            kind = os.environ.get("LATENT_LAB_EXECUTOR") or (
                "ray" if os.environ.get("LATENT_LAB_RAY_ADDRESS") else "local")
            workers = os.environ.get("LATENT_LAB_WORKERS")
            _executor = get_executor(kind, workers=int(workers) if workers else None,
                                     max_queued=int(os.environ.get("LATENT_LAB_MAX_QUEUED", 32)),
                                     per_owner=int(os.environ.get("LATENT_LAB_JOBS_PER_SESSION", 2)))
        return _executor


def session_owner() -> str:
    """Whose share of the queue this session's jobs count against: its browser, kept across reloads and
    shared by the browser's tabs (ui.owners.owner_key); "anonymous" outside a session."""
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        if get_script_run_ctx() is None:
            return "anonymous"
    except ImportError:  # pragma: no cover
        return "anonymous"
    from ui.owners import owner_key

    return owner_key()


class _StopLatch:
    """job.stop: .set() asks the job to stop (cancels its handle), .is_set() says whether it was asked."""

    def __init__(self, on_set: Callable[[], None]):
        self._event = threading.Event()
        self._on_set = on_set

    def set(self) -> None:
        if not self._event.is_set():
            self._event.set()
            self._on_set()

    def is_set(self) -> bool:
        return self._event.is_set()


class ExecutorJob:
    """A page's view of one executor job, plus `then(result)`: work done in the server when the job has
    finished (e.g. writing the checkpoint), in a thread of its own, whether or not a page still polls."""

    def __init__(self, name: str, handle: JobHandle, then: Callable[[Any], Any] | None = None,
                 keep_event: Callable[[dict], bool] = lambda e: True):
        self.name = name
        self.handle = handle
        self.stop = _StopLatch(handle.cancel)
        self.result: Any = None
        self.error: str | None = None
        self.error_kind: str | None = None
        self.started = time.time()
        self.finished: float | None = None
        self._then = then
        self._keep_event = keep_event
        handle.add_done_callback(lambda h: threading.Thread(target=self._finish, name=f"latent-lab-{name}-done",
                                                            daemon=True).start())

    def _finish(self) -> None:
        try:
            value = self.handle.result(0)
            self.result = self._then(value) if self._then else value
        except JobCancelled:
            self.result = None
        except Exception as exc:  # noqa: BLE001 - every failure becomes a message on the page
            self.error_kind, self.error = describe_error(exc)
        finally:
            self.finished = time.time()

    @property
    def running(self) -> bool:
        return self.finished is None

    @property
    def done(self) -> bool:
        return self.finished is not None

    @property
    def status(self) -> str:
        return self.handle.status

    @property
    def cancelled(self) -> bool:
        return self.handle.status == "cancelled"

    @property
    def queue_position(self) -> int:
        return self.handle.queue_position

    @property
    def progress(self) -> dict:
        return self.handle.progress

    def snapshot(self) -> tuple[dict, list]:
        return self.handle.progress, [e for e in self.handle.events if self._keep_event(e)]

    def request_stop(self) -> None:
        self.stop.set()


def submit(name: str, fn: Callable, kwargs: dict, *, owner: str, then: Callable[[Any], Any] | None = None,
           keep_event: Callable[[dict], bool] = lambda e: True) -> ExecutorJob:
    """Queue fn(**kwargs) on the shared executor for `owner` and track it; raises core.executor.QueueFull (a
    ValueError with what to do) when this browser or address already has its share of jobs or the queue is full."""
    with session_jobs.admit() as address:
        job = ExecutorJob(name, shared_executor().submit(fn, kwargs, owner=owner, name=name), then, keep_event)
        session_jobs.track(name, job.handle, owner, stop=job.request_stop, address=address, view=job)
    return job


def wait_for(job: JobHandle, what: str) -> None:
    """Block this script run until `job` has finished, showing where it is (its place in the queue, or how
    long it has run in a worker) in place of a spinner. Waiting costs the server nothing (a timed wait);
    a rerun of the page ends the wait, not the job (the next run finds the same job)."""
    import streamlit as st

    if job.done:
        return
    box = st.empty()
    while not job.wait(0.5):
        place = job.queue_position
        where = (f"waiting for a free worker, place {place} in the queue" if place else
                 f"in a worker process, {time.time() - (job.started_at or time.time()):.0f} s")
        box.info(f"{what} ({where})…", icon=":material/hourglass_top:")
    box.empty()
