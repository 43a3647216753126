"""`inline`: jobs run in this process, for debugging (breakpoints and prints work) and tests.

map() runs the tasks one after another in the calling thread; submit() runs jobs one at a time in a
single background thread. Nothing can be killed in-process: cancel() drops a queued job, and a running
one ends only if it takes `stop=` (checked between tasks in map, by the job itself otherwise).
"""

from __future__ import annotations

import itertools
import os
import threading
import time

from core.executor.base import (CANCELLED, DONE, FAILED, CancelFlag, Executor, JobFailed, accepts,
                                in_ready_order)

_map_task_ids = itertools.count(1)


class InlineExecutor(Executor):
    kind = "inline"

    def __init__(self, workers: int | None = None, max_queued: int = 256, per_owner: int = 2):
        super().__init__(1, max_queued=max_queued, per_owner=per_owner)
        self._thread: threading.Thread | None = None

    def map(self, fn, tasks, *, stop=None, on_result, owner=None, group=None, ready=None) -> None:
        release = self.reserve(owner) if owner is not None else None
        try:
            failure = None
            for i, task in in_ready_order(tasks, ready, stop):
                kwargs = dict(task)
                if accepts(fn, "stop") and stop is not None:
                    kwargs["stop"] = stop
                t0, task_id = time.time(), f"map-{next(_map_task_ids)}"
                try:
                    result = fn(**kwargs)
                except Exception as exc:  # noqa: BLE001 - the same contract as the process backends
                    failure = JobFailed.from_exception(exc)
                    self._log_job(task_id, getattr(fn, "__name__", "task"), os.getpid(), "inline", FAILED,
                                  time.time() - t0)
                    break
                self._log_job(task_id, getattr(fn, "__name__", "task"), os.getpid(), "inline", DONE, time.time() - t0)
                on_result(i, result)
            if failure is not None:
                raise failure
        finally:
            if release is not None:
                release()

    def _start_pending(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._drain, name="latent-lab-inline", daemon=True)
                self._thread.start()

    def _drain(self) -> None:
        while True:
            job = self._next_queued()
            if job is None:
                return
            kwargs = dict(job.kwargs)
            if job.wants_report:
                kwargs["report"] = lambda info=None, _j=job, **kw: _j._report({**(info or {}), **kw})
            if job.wants_stop:
                kwargs["stop"] = CancelFlag(job)
            job.worker, job.pid = "inline", os.getpid()
            try:
                result = job.fn(**kwargs)
            except Exception as exc:  # noqa: BLE001
                self._finished(job, FAILED, error=JobFailed.from_exception(exc))
            else:
                self._finished(job, DONE, result)

    def _cancel_running(self, handle: JobHandle) -> None:
        pass  # a job that takes stop= sees handle.cancel_requested; others run to the end

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            queued = list(self._queue)
            self._queue.clear()
        for h in queued:
            self._finished(h, CANCELLED)
