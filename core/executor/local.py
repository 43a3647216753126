"""`local`: a bounded pool of worker processes on this machine, one torch thread each.

Why not concurrent.futures.ProcessPoolExecutor: it cannot end one running job (stop within 2 s) and a
worker killed by SIGKILL / the OOM killer breaks the whole pool. Here one manager thread owns the workers:
it starts queued jobs on idle workers, reads their pipes, ends a worker to stop its job and starts a
replacement, and notices a dead worker by its process sentinel (its job is retried once, then fails
with JobFailed("WorkerDied")). Workers come from a `forkserver` (never a plain fork of the caller:
forking a process that already runs torch threads is unsafe).

GPU: with CUDA present the pool has a few workers per GPU ($LATENT_LAB_WORKERS_PER_GPU, default 2), not
one per core: each worker holds its own CUDA context (~0.3-0.5 GB) and, without MPS, processes on one GPU are
time-sliced, not overlapped, so more workers only add contexts. Two per GPU let one worker's host work (data,
Python) overlap the other's kernels. With the MPS daemon running (`nvidia-cuda-mps-control -d`) kernels of
different workers do overlap; then raise LATENT_LAB_WORKERS_PER_GPU (4-8 for small cells). Worker i gets one
entry *of* the parent's CUDA_VISIBLE_DEVICES list (see gpu_assignment), so it never leaves a scheduler's
allocation. A worker whose job hits a sticky CUDA error fails that job and exits; it is replaced.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import wait as wait_ready

from core.executor.base import CANCELLED, DONE, FAILED, Executor, JobFailed, JobHandle
from core.executor.worker import worker_main

STOP_GRACE_S = 1.5  # a job that takes stop= gets this long to return what it has before its worker ends
TERM_WAIT_S = 0.5  # SIGTERM, then SIGKILL after this long
MAX_ATTEMPTS = 2  # a job whose worker died is started once more
MAX_START_FAILURES = 3  # workers dying before they are ready, in a row -> fail the queue instead of looping


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


WORKERS_PER_GPU_ENV = "LATENT_LAB_WORKERS_PER_GPU"


def workers_per_gpu() -> int:
    raw = os.environ.get(WORKERS_PER_GPU_ENV, "2")
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{WORKERS_PER_GPU_ENV} must be a positive integer (got {raw!r}); unset it for 2")
    return n


def default_pool_size() -> int:
    """Workers of a local pool when none are asked for: a few per GPU with CUDA, otherwise one per core."""
    n_gpu = _gpu_count()
    return n_gpu * workers_per_gpu() if n_gpu else default_workers()


def gpu_assignment(visible: str | None, n_gpus: int, workers: int) -> list[str | None]:
    """The CUDA_VISIBLE_DEVICES value for each of `workers` workers: None (leave it alone) without GPUs,
    otherwise worker i gets entry i mod n of the parent's visible list (`visible`, e.g. "3,5" or
    "GPU-uuid,..."; None or "" when unset: devices 0..n_gpus-1). Never a bare index: a worker told "1"
    while the parent sees "3,5" would use the machine's GPU 1, outside the scheduler's allocation."""
    if n_gpus <= 0:
        return [None] * workers
    entries = [e.strip() for e in (visible or "").split(",") if e.strip()]
    if not entries:
        entries = [str(i) for i in range(n_gpus)]
    entries = entries[:n_gpus]  # torch stops at the first invalid entry; n_gpus is what it could open
    return [entries[i % len(entries)] for i in range(workers)]


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - no torch / no driver: CPU workers
        return 0


_start_lock = threading.Lock()


@contextlib.contextmanager
def _main_script_hidden():
    """spawn / forkserver re-run the parent's main *script* in the server unless it has an `if __name__ ==
    "__main__"` guard (a bench script, a notebook's kernel, a user's script). Workers need only `core`
    and the job's own module, so hide the script's path while starting one; a main *module* run with
    `python -m` (e.g. `python -m core`) is still imported, as multiprocessing does."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None or getattr(main, "__spec__", None) is not None:
        yield
        return
    with _start_lock:
        del main.__file__
        try:
            yield
        finally:
            main.__file__ = path


class _Worker:
    def __init__(self, ctx, index: int, cuda_device: str | None):
        self.index = index
        self.conn, child = ctx.Pipe(duplex=True)
        self.stop_flag = ctx.RawValue("q", 0)
        self.proc = ctx.Process(target=worker_main, args=(child, self.stop_flag, cuda_device),
                                name=f"latent-lab-worker-{index}", daemon=True)
        with _main_script_hidden():
            self.proc.start()
        child.close()
        self.ready = False
        self.job: JobHandle | None = None
        self.stop_deadline: float | None = None  # cooperative stop asked; terminate after this

    def end(self) -> None:
        """SIGTERM, then SIGKILL: the worker is gone when this returns (bounded by ~1 s)."""
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(TERM_WAIT_S)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join(TERM_WAIT_S)
        self.conn.close()


class LocalExecutor(Executor):
    kind = "local"

    def __init__(self, workers: int | None = None, max_queued: int = 256, per_owner: int = 2):
        super().__init__(workers or default_pool_size(), max_queued=max_queued, per_owner=per_owner)
        self._ctx = mp.get_context("forkserver")
        # The fork server imports torch once; each worker (and each replacement after a stop or a crash) is
        # then a fork of that single-threaded server: ~0.1 s instead of a fresh interpreter importing torch
        # (3-8 s here). Forking is safe there: the server never ran a torch op, so no thread pool exists yet.
        self._ctx.set_forkserver_preload(["core.executor.worker", "torch"])
        devices = gpu_assignment(os.environ.get("CUDA_VISIBLE_DEVICES"), _gpu_count(), self.workers)
        self._cuda_for = devices.__getitem__  # worker index -> its CUDA_VISIBLE_DEVICES (None: CPU)
        self._wake_r, self._wake_w = os.pipe()
        self._to_cancel: list[JobHandle] = []
        self._start_failures = 0
        self._pool = [_Worker(self._ctx, i, self._cuda_for(i)) for i in range(self.workers)]
        self._thread = threading.Thread(target=self._manage, name="latent-lab-executor", daemon=True)
        self._thread.start()
        atexit.register(self.shutdown)  # end workers in order before multiprocessing's own exit hook

    # ----- hooks called from any thread: just wake the manager
    def _start_pending(self) -> None:
        self._wake()

    def _cancel_running(self, handle: JobHandle) -> None:
        with self._lock:
            self._to_cancel.append(handle)
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:  # shut down
            pass

    def shutdown(self) -> None:
        if self._closed:
            return
        with self._lock:
            self._closed = True
            queued = list(self._queue)
            self._queue.clear()
        for h in queued:
            self._finished(h, CANCELLED)
        self._wake()
        self._thread.join(10)
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)

    # ----- the manager thread: the only one that touches workers
    def _manage(self) -> None:
        while not self._closed:
            waitables = [self._wake_r] + [w.conn for w in self._pool] + [w.proc.sentinel for w in self._pool]
            timeout = 0.2 if any(w.stop_deadline for w in self._pool) else 1.0
            ready = wait_ready(waitables, timeout=timeout)
            if self._wake_r in ready:
                os.read(self._wake_r, 4096)
            for w in list(self._pool):
                if w.conn in ready:
                    self._read(w)
            for w in list(self._pool):
                if not w.proc.is_alive():
                    self._worker_died(w)
            self._handle_cancels()
            self._dispatch()
        for w in self._pool:  # shutdown: running jobs end with their workers
            if w.job is not None:
                self._finished(w.job, CANCELLED)
            try:
                w.conn.send(None)
            except OSError:
                pass
        for w in self._pool:
            w.proc.join(1.0)
            w.end()

    def _read(self, w: _Worker) -> None:
        try:
            while w.conn.poll():
                self._on_message(w, w.conn.recv())
        except (EOFError, OSError):
            pass  # the worker died; its sentinel says so and _worker_died handles it

    def _on_message(self, w: _Worker, msg) -> None:
        kind = msg[0]
        if kind == "ready":
            w.ready = True
            self._start_failures = 0
            return
        job = w.job
        if job is None or msg[1] != job.id:
            return  # a late message from a job that was already ended
        if kind == "progress":
            job._report(msg[2])
            return
        w.job, w.stop_deadline = None, None
        w.stop_flag.value = 0
        if kind == "done":
            self._finished(job, DONE, msg[2])  # finished before its cancel took effect: a real result
        elif kind == "error":
            self._finished(job, FAILED, error=msg[2])

    def _worker_died(self, w: _Worker) -> None:
        code = w.proc.exitcode
        pid = w.proc.pid
        self._read(w)  # whatever it sent before dying (perhaps its result)
        w.end()
        self._pool[self._pool.index(w)] = _Worker(self._ctx, w.index, self._cuda_for(w.index))
        job = w.job
        if job is None:
            if not w.ready:
                self._start_failures += 1
                if self._start_failures >= MAX_START_FAILURES:
                    self._fail_queue(code)
            return
        if job.cancel_requested:
            self._finished(job, CANCELLED)
        elif job.attempts < MAX_ATTEMPTS:
            self._requeue_front(job)
        else:
            self._finished(job, FAILED, error=JobFailed("WorkerDied", _death_message(pid, code, job.attempts)))

    def _fail_queue(self, code) -> None:
        with self._lock:
            queued = list(self._queue)
            self._queue.clear()
        err = JobFailed("WorkerStartFailed", f"worker processes exit before they are ready (exit code {code}); "
                        "run the job with the inline executor to see why")
        for h in queued:
            self._finished(h, FAILED, error=err)

    def _handle_cancels(self) -> None:
        with self._lock:
            asked, self._to_cancel = self._to_cancel, []
        now = time.monotonic()
        for h in asked:
            w = next((w for w in self._pool if w.job is h), None)
            if w is None:
                continue  # already finished
            if h.wants_stop and w.stop_deadline is None:
                w.stop_flag.value = h.id  # the job's stop.is_set() turns true
                w.stop_deadline = now + STOP_GRACE_S
            else:
                self._end_job(w)
        for w in list(self._pool):
            if w.stop_deadline is not None and now >= w.stop_deadline and w.job is not None:
                self._end_job(w)

    def _end_job(self, w: _Worker) -> None:
        job = w.job
        w.job = None
        w.end()
        self._pool[self._pool.index(w)] = _Worker(self._ctx, w.index, self._cuda_for(w.index))
        if job is not None:
            self._finished(job, CANCELLED)

    def _dispatch(self) -> None:
        for w in self._pool:
            if not (w.ready and w.job is None and w.proc.is_alive()):
                continue
            job = self._next_queued()
            if job is None:
                return
            try:
                w.conn.send((job.id, job.fn, job.kwargs, job.wants_report, job.wants_stop, job.runs_root))
            except (OSError, ValueError):  # broken pipe: the worker just died -> retry elsewhere
                self._requeue_front(job)
                job.attempts -= 1
                continue
            except Exception as exc:  # noqa: BLE001 - the arguments cannot be pickled: the caller's bug
                self._finished(job, FAILED, error=JobFailed.from_exception(exc))
                continue
            w.job = job
            job.worker = f"pid {w.proc.pid}"


def _death_message(pid, code, attempts: int) -> str:
    if code is not None and code < 0:
        try:
            sig = signal.Signals(-code).name
        except ValueError:
            sig = f"signal {-code}"
        why = f"was killed by {sig}" + (" (often the out-of-memory killer: the job needed more memory than "
                                        "the machine had free)" if -code == signal.SIGKILL else "")
    else:
        why = f"exited with code {code}"
    return f"the worker process (pid {pid}) running this job {why}; tried {attempts} times"
