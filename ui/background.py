"""Process-wide background computations, shared by all sessions (e.g. a UMAP fit, hole metrics).

`submit(name, key, fn)` starts fn() in a worker thread once per (name, key) and returns the Job;
later calls with the same key return the same Job, so a rerun, another tab or another user
waiting for the same result do not start it again. A failed job keeps its error (the page shows it)
and is retried only when submitted again RETRY_AFTER_S after it failed, so a polling page cannot
turn a persistent failure into a restart loop.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Callable

import streamlit as st

from ui import jobs

MAX_JOBS = 64
RETRY_AFTER_S = 30.0


@st.cache_resource(max_entries=1)
def _registry() -> tuple["OrderedDict[tuple, jobs.Job]", threading.Lock]:
    return OrderedDict(), threading.Lock()


def submit(name: str, key: tuple, fn: Callable[[], Any]) -> jobs.Job:
    reg, lock = _registry()
    with lock:
        job = reg.get((name, key))
        if job is None or (job.done and job.error and time.time() - job.finished > RETRY_AFTER_S):
            job = jobs.start(name, lambda _job: fn())
            reg[(name, key)] = job
        reg.move_to_end((name, key))
        # Drop the least recently asked-for finished jobs (and their results) beyond MAX_JOBS. A job still
        # running is kept (its thread holds it anyway): the registry exceeds MAX_JOBS only by running jobs.
        for old_key in [k for k, j in reg.items() if j.done][: max(0, len(reg) - MAX_JOBS)]:
            reg.pop(old_key)
        return job


def peek(name: str, key: tuple) -> jobs.Job | None:
    reg, lock = _registry()
    with lock:
        return reg.get((name, key))


def wait_all(timeout: float = 60.0) -> bool:
    """Wait for every shared job to finish (tests call this before the process exits: a torch
    thread still running at interpreter shutdown aborts the process). -> all finished."""
    reg, lock = _registry()
    with lock:
        pending = [j for j in reg.values() if not j.done]
    deadline = time.time() + timeout
    for job in pending:
        if job.thread is not None:
            job.thread.join(max(0.0, deadline - time.time()))
    return all(j.done for j in pending)
