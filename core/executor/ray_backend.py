"""`ray`: the same jobs as Ray tasks on a cluster (`--ray ADDRESS` or LATENT_LAB_RAY_ADDRESS).

Install with `pip install -r requirements-ray.txt`. Each job is one task with num_cpus=1 and one torch
thread; a worker process lost mid-task is retried by Ray (max_retries=1), then reported as
JobFailed("WorkerDied"). Progress and the cooperative stop flag go through one small actor per executor
(`_Channel`): a job's report() is a fire-and-forget actor call, the driver drains it a few times a second.
cancel() asks a job that takes stop= to stop, then ends it with ray.cancel(force=True) - within 2 s.

The `core` package travels to the cluster with the job (runtime_env py_modules), so the nodes need only
the requirements installed, not this repository; set LATENT_LAB_RAY_SHIP_CODE=0 when they have it.
Task results come back to the driver, which writes run folders; a few-shot runner's generator
checkpoints are written by the tasks, so on a multi-machine cluster the run folder must be on a
filesystem all nodes share.

GPU: with GPUs in the cluster each task takes 1/$LATENT_LAB_WORKERS_PER_GPU of one (default 2 per GPU, as
the local pool; Ray sets each task's CUDA_VISIBLE_DEVICES within its node's devices) and runs in
deterministic mode. A task that hits a sticky CUDA error fails with it; its worker process, whose CUDA
context is then unusable, exits when Ray hands it the next task, which Ray then runs on a fresh process.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from core.device import CUBLAS_WORKSPACE
from core.executor.base import CANCELLED, DONE, FAILED, Executor, JobFailed, JobHandle
from core.executor.local import workers_per_gpu
from core.executor.worker import (THREAD_ENV, is_sticky_cuda_error, prepare_gpu, single_thread_torch,
                                  sticky_cuda_failure)

ADDRESS_ENV = "LATENT_LAB_RAY_ADDRESS"
STOP_GRACE_S = 1.5
POLL_S = 0.1
STOP_POLL_S = 0.25  # a job's stop.is_set() asks the actor at most this often


class _Channel:
    """Actor: progress events from tasks to the driver, and stop requests from the driver to tasks."""

    def __init__(self):
        self.events: list = []
        self.stopped: set[int] = set()

    def put(self, job_no: int, info: dict) -> None:
        self.events.append((job_no, info))

    def drain(self) -> list:
        out, self.events = self.events, []
        return out

    def stop(self, job_no: int) -> None:
        self.stopped.add(job_no)

    def is_stopped(self, job_no: int) -> bool:
        return job_no in self.stopped


class _RemoteStop:
    def __init__(self, channel, job_no: int):
        self._channel, self._job_no = channel, job_no
        self._checked, self._value = 0.0, False

    def is_set(self) -> bool:
        import ray

        now = time.monotonic()
        if not self._value and now - self._checked >= STOP_POLL_S:
            self._checked = now
            self._value = bool(ray.get(self._channel.is_stopped.remote(self._job_no)))
        return self._value


_cuda_broken = False  # this Ray worker process hit a sticky CUDA error: it must take no further job


def _run_task(fn, kwargs: dict, job_no: int, channel, wants_report: bool, wants_stop: bool):
    """Runs on a Ray worker. Exceptions come back as values (typed JobFailed), so Ray retries only
    lost workers, never a job that raised."""
    global _cuda_broken
    import ray

    if _cuda_broken:
        # Ray reuses worker processes and has no "exit after this task": leave now, before this job starts;
        # Ray sees a lost worker and runs the job again on a fresh process (max_retries=1)
        os._exit(3)
    single_thread_torch()
    prepare_gpu()
    if wants_report:
        kwargs["report"] = lambda info=None, **kw: channel.put.remote(job_no, {**(info or {}), **kw})
    if wants_stop:
        kwargs["stop"] = _RemoteStop(channel, job_no)
    node = ray.get_runtime_context().get_node_id()[:8]
    try:
        return "done", fn(**kwargs), f"ray node {node} pid {os.getpid()}"
    except Exception as exc:  # noqa: BLE001
        if is_sticky_cuda_error(exc):
            _cuda_broken = True
            return "error", sticky_cuda_failure(exc), f"ray node {node} pid {os.getpid()}"
        return "error", JobFailed.from_exception(exc), f"ray node {node} pid {os.getpid()}"


class RayExecutor(Executor):
    kind = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None, max_queued: int = 256,
                 per_owner: int = 2):
        try:
            import ray
        except ImportError as exc:
            raise ValueError("the ray backend needs Ray: pip install -r requirements-ray.txt") from exc
        address = address or os.environ.get(ADDRESS_ENV)
        if not address:
            raise ValueError(f"name the Ray cluster: --ray HOST:PORT or {ADDRESS_ENV}=HOST:PORT "
                             "(start one with `ray start --head`)")
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            env = {"env_vars": {**{name: "1" for name in THREAD_ENV}, "CUBLAS_WORKSPACE_CONFIG": CUBLAS_WORKSPACE}}
            if os.environ.get("LATENT_LAB_RAY_SHIP_CODE", "1") != "0":
                env["py_modules"] = [str(Path(__file__).resolve().parent.parent)]  # the core package
                env["excludes"] = ["__pycache__"]
            ray.init(address=address, runtime_env=env, logging_level="WARNING", log_to_driver=True)
        resources = ray.cluster_resources()
        cpus = max(1, int(resources.get("CPU", 1)))
        super().__init__(workers or cpus, max_queued=max_queued, per_owner=per_owner)
        gpus = float(resources.get("GPU", 0))
        # With GPUs in the cluster every task takes a share of one: a few jobs per device (see the local
        # executor's docstring: without MPS more processes per GPU are time-sliced, they only add contexts)
        options = {"num_cpus": 1, "max_retries": 1, "retry_exceptions": False}
        if gpus:
            options["num_gpus"] = 1.0 / workers_per_gpu()
        self._task = ray.remote(_run_task).options(**options)
        self._channel = ray.remote(_Channel).options(num_cpus=0).remote()
        self._refs: dict = {}  # ObjectRef -> JobHandle
        self._stop_deadline: dict[JobHandle, float] = {}
        self._to_cancel: list[JobHandle] = []
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._manage, name="latent-lab-ray", daemon=True)
        self._thread.start()

    def _start_pending(self) -> None:
        self._wake.set()

    def _cancel_running(self, handle: JobHandle) -> None:
        with self._lock:
            self._to_cancel.append(handle)
        self._wake.set()

    def shutdown(self) -> None:
        if self._closed:
            return
        with self._lock:
            self._closed = True
            queued = list(self._queue)
            self._queue.clear()
        for h in queued:
            self._finished(h, CANCELLED)
        self._wake.set()
        self._thread.join(10)
        import ray

        if self._owns_ray and ray.is_initialized():
            ray.shutdown()

    def _manage(self) -> None:
        import ray

        while not self._closed:
            self._dispatch()
            if self._refs:
                ready, _ = ray.wait(list(self._refs), num_returns=len(self._refs), timeout=POLL_S)
            else:
                ready = []
                self._wake.wait(1.0)
            self._wake.clear()
            self._drain_progress()
            for ref in ready:
                self._collect(ref)
            self._handle_cancels()
        for ref, job in list(self._refs.items()):
            ray.cancel(ref, force=True)
            self._finished(job, CANCELLED)

    def _dispatch(self) -> None:
        while len(self._refs) < self.workers:
            job = self._next_queued()
            if job is None:
                return
            ref = self._task.remote(job.fn, dict(job.kwargs), job.id, self._channel, job.wants_report, job.wants_stop)
            self._refs[ref] = job

    def _drain_progress(self) -> None:
        import ray

        if not any(j.wants_report for j in self._refs.values()):
            return
        by_id = {j.id: j for j in self._refs.values()}
        for job_no, info in ray.get(self._channel.drain.remote()):
            if job_no in by_id:
                by_id[job_no]._report(info)

    def _collect(self, ref) -> None:
        import ray
        from ray.exceptions import RayTaskError, TaskCancelledError

        job = self._refs.pop(ref)
        self._stop_deadline.pop(job, None)
        try:
            status, value, where = ray.get(ref)
        except TaskCancelledError:
            self._finished(job, CANCELLED)
            return
        except RayTaskError as exc:  # the wrapper itself failed (e.g. the function could not be imported)
            cause = getattr(exc, "cause", None) or exc
            self._finished(job, FAILED, error=JobFailed(type(cause).__name__, str(cause), str(exc)))
            return
        except ray.exceptions.RayError as exc:  # the worker or its node died, after Ray's retry
            if job.cancel_requested:
                self._finished(job, CANCELLED)
            else:
                self._finished(job, FAILED, error=JobFailed(
                    "WorkerDied", f"the Ray worker running this job was lost ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0] if str(exc) else ''}); Ray retried it once", str(exc)))
            return
        job.worker = where
        self._drain_progress_for(job)
        if status == "done":
            self._finished(job, DONE, value)
        else:
            self._finished(job, FAILED, error=value)

    def _drain_progress_for(self, job: JobHandle) -> None:
        """The last reports of a job that just finished (sent before its result, may arrive after)."""
        import ray

        if job.wants_report:
            for job_no, info in ray.get(self._channel.drain.remote()):
                if job_no == job.id:
                    job._report(info)
                else:
                    other = next((j for j in self._refs.values() if j.id == job_no), None)
                    if other is not None:
                        other._report(info)

    def _handle_cancels(self) -> None:
        import ray

        with self._lock:
            asked, self._to_cancel = self._to_cancel, []
        now = time.monotonic()
        by_job = {j: r for r, j in self._refs.items()}
        for job in asked:
            ref = by_job.get(job)
            if ref is None:
                continue
            if job.wants_stop and job not in self._stop_deadline:
                self._channel.stop.remote(job.id)
                self._stop_deadline[job] = now + STOP_GRACE_S
            else:
                ray.cancel(ref, force=True)
        for job, deadline in list(self._stop_deadline.items()):
            if now >= deadline and job in by_job:
                ray.cancel(by_job[job], force=True)
                del self._stop_deadline[job]
