"""The loop a local worker process runs: one job at a time, one torch thread, results back through a pipe.

Each worker talks to the parent over its own duplex Pipe (never a shared Queue: a worker killed while it
holds a shared queue's lock would block every other worker). Messages to the parent:
("ready", pid) · ("progress", job_no, dict) · ("done", job_no, result) · ("error", job_no, JobFailed).
"""

from __future__ import annotations

import os
import signal
import threading

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


class StopFlag:
    """The `stop=` a job receives: is_set() turns true when the parent asks this job to stop early
    (a shared-memory integer holding the number of the job to stop; no lock a dying process could hold)."""

    def __init__(self, flag, job_no: int):
        self._flag, self._job_no = flag, job_no

    def is_set(self) -> bool:
        return self._flag.value == self._job_no


def single_thread_torch() -> None:
    """One thread per worker: N workers on N cores; more threads per process oversubscribe (15x slower)."""
    for name in THREAD_ENV:
        os.environ[name] = "1"
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or inter-op work already ran in this process
        pass


STICKY_CUDA_MARKERS = ("CUDA error", "device-side assert", "illegal memory access", "CUBLAS_STATUS", "cuDNN error")


def is_sticky_cuda_error(exc: BaseException) -> bool:
    """After such an error the process's CUDA context is corrupt: every later CUDA call fails too, so the
    worker must not take another job. Out-of-memory is not one of them (the context survives)."""
    names = {c.__name__ for c in type(exc).__mro__}
    if "OutOfMemoryError" in names:
        return False
    if names & {"AcceleratorError", "CudaError"} or any(n.startswith("cudaError") for n in names):
        return True
    text = str(exc)
    return any(marker in text for marker in STICKY_CUDA_MARKERS)


def sticky_cuda_failure(exc: BaseException):
    """The JobFailed sent back for a sticky CUDA error: the job's own type, a message that says what happened."""
    from core.executor.base import JobFailed

    failed = JobFailed.from_exception(exc)
    return JobFailed(failed.type_name, f"{exc} (a CUDA error: this worker's GPU context is unusable, so the "
                     "worker exits and is replaced; the job is not retried — run it again, or with --device "
                     "cpu if it repeats)", failed.traceback_text, failed.type_names + ["StickyCudaError"])


def prepare_gpu() -> bool:
    """A worker that sees a GPU runs in deterministic mode (records bit-identical run to run). Called before
    any CUDA op: the cuBLAS workspace setting is read when CUDA starts."""
    import torch

    if not torch.cuda.is_available():
        return False
    from core.device import set_deterministic

    return set_deterministic("cuda")


def use_runs_root(runs_root: str | None) -> None:
    """The job's runs folder (its submitter's LATENT_LAB_RUNS at submit time, None: the default), set before the
    job runs: this process's environment dates from when the fork server started, not from the submit."""
    from core.executor.base import RUNS_ENV

    if runs_root is None:
        os.environ.pop(RUNS_ENV, None)
    else:
        os.environ[RUNS_ENV] = runs_root


def worker_main(conn, stop_flag, cuda_device: str | None = None) -> None:
    from core.executor.base import JobFailed

    if cuda_device is not None:  # before torch initialises CUDA: this worker sees one device
        os.environ["CUDA_VISIBLE_DEVICES"] = cuda_device
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the parent, which ends us in order
    single_thread_torch()
    prepare_gpu()
    send_lock = threading.Lock()  # a job may report from its own threads

    def send(msg) -> None:
        with send_lock:
            conn.send(msg)

    try:
        send(("ready", os.getpid()))
    except OSError:  # the parent ended while we started
        return
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if msg is None:
            return
        job_no, fn, kwargs, wants_report, wants_stop, runs_root = msg
        use_runs_root(runs_root)
        if wants_report:
            kwargs["report"] = lambda info=None, _n=job_no, **kw: send(("progress", _n, {**(info or {}), **kw}))
        if wants_stop:
            kwargs["stop"] = StopFlag(stop_flag, job_no)
        try:
            result = fn(**kwargs)
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent, typed
            if is_sticky_cuda_error(exc):
                send(("error", job_no, sticky_cuda_failure(exc)))
                conn.close()
                os._exit(3)  # the parent sees the sentinel and starts a fresh worker (fresh CUDA context)
            send(("error", job_no, JobFailed.from_exception(exc)))
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                return
            continue
        try:
            send(("done", job_no, result))
        except Exception as exc:  # e.g. an unpicklable result
            send(("error", job_no, JobFailed(type(exc).__name__, f"the job's result could not be sent back: {exc}")))
