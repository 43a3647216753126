"""Background work for the pages, without heavy work in the web server.

- `submit(...)` sends a heavy job (a training, a few-shot cell) to the one process-wide executor
  (`shared_executor()`: worker processes, or a Ray cluster) and returns an `ExecutorJob` the page keeps
  in st.session_state and polls from an @st.fragment(run_every=...). The server only submits, polls and
  writes the result files; a job that raises, diverges, is killed or runs out of memory fails alone.
- `start(name, work)` runs light work (a UMAP fit's bookkeeping, a run's orchestration) in a thread.

Both expose the same read side: running / done / error / error_kind / result / snapshot() /
queue_position / request_stop(). No st.* is called from any thread here.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from core.executor import Executor, JobCancelled, JobFailed, JobHandle, get_executor

# ----------------------------------------------------------------------------- errors shown to users

USER_ERRORS = ("ValueError", "TrainingDiverged")  # the user can fix these: show the message only
MEMORY_HINTS = ("out of memory", "can't allocate memory", "cannot allocate memory")


def describe_error(exc: BaseException) -> tuple[str, str]:
    """-> (kind, text). kind "user": a message that says what to do (ValueError and its kin, a
    diverged training); "resources": the job was killed or ran out of memory; "bug": anything else,
    shown as a bug with its type, message and the end of its traceback - not dressed as the user's fault."""
    if isinstance(exc, JobFailed):
        if any(exc.is_a(n) for n in USER_ERRORS):
            return "user", exc.message
        if exc.type_name in ("WorkerDied", "MemoryError", "OutOfMemoryError") or \
                any(h in exc.message.lower() for h in MEMORY_HINTS):
            return "resources", (f"the job ran out of memory or was killed ({exc.type_name}: {exc.message}). "
                                 "Try a smaller model, batch or dataset, or fewer jobs at once.")
        return "bug", f"{exc.type_name}: {exc.message}\n{_tail(exc.traceback_text)}"
    if isinstance(exc, ValueError):
        return "user", str(exc)
    if isinstance(exc, MemoryError):
        return "resources", "the job ran out of memory. Try a smaller model, batch or dataset."
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return "bug", f"{type(exc).__name__}: {exc}\n{_tail(tb)}"


def _tail(tb: str, lines: int = 8) -> str:
    return "\n".join(tb.strip().splitlines()[-lines:])


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
    """This browser session's id (the per-session cap counts jobs by it); "anonymous" outside a session."""
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx()
        return ctx.session_id if ctx is not None else "anonymous"
    except ImportError:  # pragma: no cover
        return "anonymous"


class _StopLatch:
    """job.stop for pages written against the thread Job: .set() asks the job to stop, .is_set() says so."""

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
    """Queue fn(**kwargs) on the shared executor for `owner`; raises core.executor.QueueFull (a
    ValueError with what to do) when this session already has its share of jobs or the queue is full."""
    return ExecutorJob(name, shared_executor().submit(fn, kwargs, owner=owner, name=name), then, keep_event)


# ----------------------------------------------------------------------------- light work in a thread

@dataclass
class Job:
    name: str
    stop: threading.Event = field(default_factory=threading.Event)
    progress: dict = field(default_factory=dict)  # written by the worker, read by the page
    events: list = field(default_factory=list)  # e.g. every on_step dict, appended by the worker
    result: Any = None
    error: str | None = None
    error_kind: str | None = None  # "user" | "resources" | "bug" (see describe_error)
    started: float = field(default_factory=time.time)
    finished: float | None = None
    thread: threading.Thread | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    position_fn: Callable[[], int] | None = None  # where the work it sends to the executor waits

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    @property
    def done(self) -> bool:
        return self.finished is not None

    def snapshot(self) -> tuple[dict, list]:
        with self.lock:
            return dict(self.progress), list(self.events)

    def report(self, event: dict | None = None, **progress) -> None:
        with self.lock:
            self.progress.update(progress)
            if event is not None:
                self.events.append(event)

    @property
    def queue_position(self) -> int:
        return self.position_fn() if self.position_fn is not None and self.running else 0

    def request_stop(self) -> None:
        self.stop.set()


def start(name: str, work: Callable[[Job], Any], queue_position: Callable[[], int] | None = None) -> Job:
    """Run work(job) in a daemon thread; its return value lands in job.result, a failure in job.error
    (described by describe_error: a ValueError's message; a bug with its type, message and trace)."""
    job = Job(name, position_fn=queue_position)

    def run() -> None:
        try:
            job.result = work(job)
        except Exception as e:  # noqa: BLE001 - keep the app alive; the page shows what happened
            job.error_kind, job.error = describe_error(e)
        finally:
            job.finished = time.time()

    job.thread = threading.Thread(target=run, name=f"latent-lab-{name}", daemon=True)
    job.thread.start()
    return job
