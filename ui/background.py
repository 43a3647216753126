"""Process-wide jobs shared by all sessions and keyed by their inputs (a UMAP fit, hole metrics, the
saliency classifier pair), run on the shared executor's worker processes (ui.jobs.shared_executor).

`submit(name, key, fn, kwargs)` queues fn(**kwargs) once per (name, key) and returns its JobHandle (the
one job protocol); later calls with the same key return the same handle, so a rerun, another tab or
another user waiting for the same result do not start it again, and a finished handle keeps its result
(the cache). A failed job keeps its error (the page shows it) and is retried only when submitted again
RETRY_AFTER_S after it failed, so a polling page cannot turn a persistent failure into a restart loop; a
cancelled one (the executor shut down) is retried at once. The key must name everything the result
depends on (a checkpoint's sha256, the data set, the settings).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable

import streamlit as st

from core.executor import CANCELLED, FAILED, JobHandle
from ui import jobs

MAX_JOBS = 64
RETRY_AFTER_S = 30.0


@st.cache_resource(max_entries=1)
def _registry() -> tuple["OrderedDict[tuple, JobHandle]", threading.Lock]:
    return OrderedDict(), threading.Lock()


def _stale(job: JobHandle) -> bool:
    if job.status == CANCELLED:
        return True
    return job.status == FAILED and time.time() - (job.finished_at or 0.0) > RETRY_AFTER_S


def submit(name: str, key: tuple, fn: Callable, kwargs: dict, urgent: bool = False) -> JobHandle:
    """The shared job computing fn(**kwargs) for (name, key); fn must be a module-level core function
    (it runs in a worker process) taking and returning plain data. urgent: to the front of the queue (a short
    job a page waits for)."""
    reg, lock = _registry()
    with lock:
        job = reg.get((name, key))
        if job is None or _stale(job):
            job = jobs.shared_executor().submit(fn, kwargs, name=name, urgent=urgent)
            reg[(name, key)] = job
        reg.move_to_end((name, key))
        # Drop the least recently asked-for finished jobs (and their results) beyond MAX_JOBS. A job still
        # queued or running is kept: the registry exceeds MAX_JOBS only by unfinished jobs.
        for old_key in [k for k, j in reg.items() if j.done][: max(0, len(reg) - MAX_JOBS)]:
            reg.pop(old_key)
        return job


def peek(name: str, key: tuple) -> JobHandle | None:
    reg, lock = _registry()
    with lock:
        return reg.get((name, key))


def wait_all(timeout: float = 60.0) -> bool:
    """Wait for every shared job to finish (tests call this between tests). -> all finished."""
    reg, lock = _registry()
    with lock:
        pending = [j for j in reg.values() if not j.done]
    deadline = time.time() + timeout
    for job in pending:
        job.wait(max(0.0, deadline - time.time()))
    return all(j.done for j in pending)


def all_jobs() -> list[tuple[str, tuple, JobHandle]]:
    """(name, key, handle) of every shared job the registry holds, oldest asked-for first (the operator's view)."""
    reg, lock = _registry()
    with lock:
        return [(name, key, job) for (name, key), job in reg.items()]
