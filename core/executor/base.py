"""What every backend shares: job handles, errors, the bounded queue with a per-owner cap, and map().

A backend (local processes, Ray, inline) only has to start queued jobs, report what they send, and end
them on cancel; the queue, its limits, queue positions and map()'s stop / failure rules live here once.
"""

from __future__ import annotations

import inspect
import itertools
import os
import queue
import threading
import time
from collections import Counter, deque
from typing import Any, Callable

RUNS_ENV = "LATENT_LAB_RUNS"  # = core.data_store.RUNS_ENV = ui.catalog.RUNS_ENV (not imported: no numpy here)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)
MAX_EVENTS = 20_000  # progress dicts kept per job (a 200-epoch training reports ~1,000)
MAX_LOG = 1_000  # finished jobs the executor's job log remembers (name, pid, status), oldest out first
USER_ERRORS = ("ValueError", "TrainingDiverged")  # the user can fix these: show the message only
RESOURCE_ERRORS = ("WorkerDied", "MemoryError", "OutOfMemoryError")
MEMORY_HINTS = ("out of memory", "can't allocate memory", "cannot allocate memory")


class JobFailed(RuntimeError):
    """A job raised, or its worker died. Carries the job's exception type name, message and traceback text.

    `type_names` is the exception's class hierarchy (e.g. ["TrainingDiverged", "RuntimeError", ...]), so a
    caller can tell a user's mistake (a ValueError) from a bug without unpickling the exception."""

    def __init__(self, type_name: str, message: str, traceback_text: str = "", type_names: list[str] | None = None):
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.traceback_text = traceback_text
        self.type_names = list(type_names or [type_name])

    def __reduce__(self):  # picklable across processes / Ray
        return (JobFailed, (self.type_name, self.message, self.traceback_text, self.type_names))

    def is_a(self, name: str) -> bool:
        return name in self.type_names

    @classmethod
    def from_exception(cls, exc: BaseException) -> "JobFailed":
        import traceback

        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return cls(type(exc).__name__, str(exc), tb, [c.__name__ for c in type(exc).__mro__])


class JobCancelled(Exception):
    """result() of a job that was cancelled before it finished."""


class QueueFull(ValueError):
    """The queue, or this owner's share of it, is full; the message says what to do."""


def describe_error(exc: BaseException) -> tuple[str, str]:
    """-> (error class, text) of any job's failure. "user": a message that says what to do (ValueError and
    its kin, a diverged training); "resources": the job was killed or ran out of memory; "bug": anything else,
    shown with its type, message and the end of its traceback - not dressed as the user's fault."""
    import traceback

    if isinstance(exc, JobFailed):
        if any(exc.is_a(n) for n in USER_ERRORS):
            return "user", exc.message
        if exc.type_name in RESOURCE_ERRORS or any(h in exc.message.lower() for h in MEMORY_HINTS):
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


def accepts(fn: Callable, name: str) -> bool:
    """Whether fn takes a keyword argument `name` (the executor then passes report= / stop=)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def check_importable(fn: Callable) -> None:
    """Worker processes and Ray receive fn by reference (module + name): a lambda or a nested function
    cannot travel. Raise early, in the caller, instead of as an obscure pickling error in a worker."""
    import sys

    qual, module = getattr(fn, "__qualname__", ""), getattr(fn, "__module__", None)
    script_main = module == "__main__" and getattr(sys.modules.get("__main__"), "__spec__", None) is None
    if not module or "<" in qual or script_main:
        raise TypeError(f"{fn!r} must be a module-level function to run in a worker process "
                        "(lambdas, nested functions and functions of a script run by path cannot be sent); use the inline executor to debug it")


class JobHandle:
    """The one job protocol of the project: every heavy job (a training, a few-shot cell, a UMAP fit, hole
    metrics, the saliency classifiers) and the light orchestration of a few-shot run is one of these.

    status          queued -> running -> done | failed | cancelled (the executor writes, anyone reads)
    queue_position  1 = next to start; 0 once it runs or has finished
    progress/events the latest dict the job reported / all of them in order (events_since for a poller)
    cancel()        stop it (queued: dropped; running: asked to stop, then ended)
    result()        its return value, or JobFailed / JobCancelled
    error_class     None, or "user" (your input) | "resources" (memory, killed) | "bug"; error_text says it
    pid             the process that ran it (the job log records it, with the name and the final status)"""

    _ids = itertools.count(1)

    def __init__(self, executor: "Executor", fn: Callable, kwargs: dict, owner: str | None, name: str | None):
        self.id = next(JobHandle._ids)
        self.fn = fn
        self.kwargs = kwargs
        self.owner = owner
        self.group: str | None = None  # set by map(group=...)
        self.name = name or getattr(fn, "__name__", "job")
        self.status = QUEUED
        self.attempts = 0  # starts (a worker that died -> one more)
        self.worker: str | None = None  # where it runs: "pid 1234" or a Ray node id
        self.pid: int | None = None  # the process that ran it (None: unknown, e.g. a Ray worker elsewhere)
        self.position_fn: Callable[[], int] | None = None  # for run_here jobs: where the work they map waits
        self.in_thread = False  # a run_here job: light work in a thread of the caller's process
        self.cancel_requested = False
        self.submitted_at = time.time()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.wants_report = accepts(fn, "report")
        self.wants_stop = accepts(fn, "stop")
        # The submitter's runs folder, sent with the job: a worker process keeps the environment it started with
        # (the fork server's), so a job submitted after LATENT_LAB_RUNS changed (a test, a notebook) would
        # otherwise look for upload:<sha> data sets and caches in the old folder. None: the default folder.
        self.runs_root: str | None = os.environ.get(RUNS_ENV)
        self._executor = executor
        self._events: deque = deque(maxlen=MAX_EVENTS)
        self._progress: dict = {}
        self._n_events = 0
        self._result: Any = None
        self._error: JobFailed | None = None
        self._done = threading.Event()
        self._callbacks: list[Callable[["JobHandle"], None]] = []
        self._lock = threading.Lock()

    # ----- read side
    @property
    def progress(self) -> dict:
        with self._lock:
            return dict(self._progress)

    @property
    def events(self) -> list[dict]:
        with self._lock:
            return list(self._events)

    def events_since(self, seen: int) -> tuple[list[dict], int]:
        """(the events after the first `seen` ones, the new count): for a poller that shows every event."""
        with self._lock:
            new = self._n_events - seen
            return (list(self._events)[-new:] if new > 0 else []), self._n_events

    @property
    def queue_position(self) -> int:
        """1 = next to start; 0 once it runs or has finished."""
        if self.position_fn is not None:
            return 0 if self.done else int(self.position_fn())
        return self._executor.queue_position(self)

    @property
    def error_class(self) -> str | None:
        """None while it has not failed; then "user" | "resources" | "bug" (see describe_error)."""
        return describe_error(self._error)[0] if self._error is not None else None

    @property
    def error_text(self) -> str | None:
        """What to show a user about the failure (a ValueError's message; a bug with its traceback's end)."""
        return describe_error(self._error)[1] if self._error is not None else None

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def error(self) -> JobFailed | None:
        return self._error

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def result(self, timeout: float | None = None) -> Any:
        """The job's return value; raises JobFailed, JobCancelled, or TimeoutError after `timeout` s."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"job {self.name} #{self.id} still {self.status} after {timeout} s")
        if self.status == FAILED:
            raise self._error
        if self.status == CANCELLED:
            raise JobCancelled(f"job {self.name} #{self.id} was cancelled")
        return self._result

    def cancel(self) -> None:
        """Queued: dropped at once. Running: a job that takes `stop=` is asked to stop and gets a short grace
        to return what it has; otherwise (or after the grace) its worker is ended. Done within 2 s."""
        self._executor.cancel(self)

    def add_done_callback(self, fn: Callable[["JobHandle"], None]) -> None:
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(fn)
                return
        fn(self)

    # ----- write side (the executor)
    def _report(self, info: dict) -> None:
        with self._lock:
            self._progress = dict(info)
            self._events.append(info)
            self._n_events += 1

    def _finish(self, status: str, result: Any = None, error: JobFailed | None = None) -> None:
        with self._lock:
            if self._done.is_set():
                return
            self.status, self._result, self._error = status, result, error
            self.finished_at = time.time()
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            cb(self)

    def __repr__(self) -> str:
        return f"<JobHandle #{self.id} {self.name} {self.status}>"


class CancelFlag:
    """The `stop=` of a job run in this process: is_set() turns true once the job's cancel() was asked."""

    def __init__(self, handle: JobHandle):
        self._handle = handle

    def is_set(self) -> bool:
        return self._handle.cancel_requested


def _pid_of(handle: JobHandle) -> int | None:
    """handle.pid, or the pid in a backend's worker text "pid 1234" (the local backend writes that)."""
    if handle.pid is None and handle.worker and handle.worker.startswith("pid "):
        try:
            handle.pid = int(handle.worker[4:].split()[0])
        except ValueError:
            pass
    return handle.pid


def next_ready(pending, ready: Callable[[int], bool] | None) -> int | None:
    """The place in `pending` ((index, task) pairs) of the first task that may start, or None."""
    if ready is None:
        return 0 if pending else None
    return next((j for j, (i, _) in enumerate(pending) if ready(i)), None)


def in_ready_order(tasks: list[dict], ready: Callable[[int], bool] | None, stop: threading.Event | None = None):
    """(i, task) one at a time for maps that run tasks in the calling thread: the first ready one in list
    order, `ready` asked again after the caller has handled the previous task. Ends when all are given or
    `stop` is set; RuntimeError when tasks wait but none is ready (nothing else could make one ready)."""
    pending = deque(enumerate(tasks))
    while pending and not (stop is not None and stop.is_set()):
        j = next_ready(pending, ready)
        if j is None:
            raise RuntimeError(f"map(): none of the {len(pending)} waiting tasks is ready "
                               "(a task waits for one that is not in the map)")
        item = pending[j]
        del pending[j]
        yield item


class Executor:
    """submit / map over a FIFO queue. Backends implement _start_pending() (wake the dispatcher),
    _cancel_running(handle) and shutdown(); they pop work with _next_queued() and finish handles."""

    kind = "base"

    def __init__(self, workers: int, max_queued: int = 256, per_owner: int = 2):
        if workers < 1:
            raise ValueError(f"workers must be at least 1 (got {workers})")
        self.workers = int(workers)
        self.max_queued = int(max_queued)
        self.per_owner = int(per_owner)
        self._lock = threading.RLock()
        self._queue: deque[JobHandle] = deque()
        self._running: set[JobHandle] = set()
        self._owner_units: Counter = Counter()  # unfinished jobs + running map() calls per owner
        self._closed = False
        self._log: deque[dict] = deque(maxlen=MAX_LOG)

    # ----- public API
    def submit(self, fn: Callable, kwargs: dict | None = None, *, owner: str | None = None,
               name: str | None = None, urgent: bool = False) -> JobHandle:
        """Queue fn(**kwargs). `owner` (a session id) may have at most `per_owner` unfinished jobs;
        the queue holds at most `max_queued`. Both limits raise QueueFull with what to do. `urgent`: a short
        job a page is waiting for (a data set's latents) goes to the front of the queue, before queued
        trainings and runs (it still waits for a free worker)."""
        return self._submit(fn, dict(kwargs or {}), owner=owner, name=name, count_owner=True, urgent=urgent)

    def map(self, fn: Callable, tasks: list[dict], *, stop: threading.Event | None = None,
            on_result: Callable[[int, Any], None], owner: str | None = None, group: str | None = None,
            ready: Callable[[int], bool] | None = None) -> None:
        """Run fn(**task) for every task, up to `workers` at once plus a small look-ahead in the queue;
        on_result(i, result) is called in this thread as each finishes. `stop` set -> queued tasks are
        dropped, running ones ended (within 2 s), and map returns. A task that fails -> no new tasks
        start, the running ones finish (their on_result calls happen), then JobFailed is raised.
        `owner`: the whole map counts as one of that owner's jobs; `group`: a tag on its tasks for
        group_status() (e.g. one few-shot run's place in the queue). `ready(i)`: task i starts only once
        it returns True (asked again after every result; e.g. a cell waits for its generator's on_result);
        tasks start in list order among the ready ones. Nothing ready and nothing running -> RuntimeError."""
        release = self.reserve(owner) if owner is not None else None
        try:
            self._map(fn, list(tasks), stop, on_result, group, ready)
        finally:
            if release is not None:
                release()

    def reserve(self, owner: str) -> Callable[[], None]:
        """Count one job for `owner` (QueueFull when it has its share) until the returned release() is
        called: for work made of many tasks, such as a few-shot run, that should count once."""
        self._claim_owner(owner)
        released = threading.Event()

        def release() -> None:
            if not released.is_set():
                released.set()
                self._release_owner(owner)

        return release

    def group_status(self, group: str) -> dict:
        """{"running", "queued", "position"} of a map's tasks tagged `group`; position: the place of its
        first queued task (0 when one of them runs or none waits)."""
        with self._lock:
            running = sum(1 for h in self._running if h.group == group)
            places = [i for i, h in enumerate(self._queue, start=1) if h.group == group]
        return {"running": running, "queued": len(places), "position": 0 if running or not places else places[0]}

    def queue_position(self, handle: JobHandle) -> int:
        with self._lock:
            if handle.status != QUEUED:
                return 0
            for pos, h in enumerate(self._queue, start=1):
                if h is handle:
                    return pos
            return 0

    def queued_count(self) -> int:
        with self._lock:
            return len(self._queue)

    def cancel(self, handle: JobHandle) -> None:
        with self._lock:
            if handle.done:
                return
            handle.cancel_requested = True
            if handle.status == QUEUED and handle in self._queue:
                self._queue.remove(handle)
                queued = True
            else:
                queued = False
        if queued:
            self._finished(handle, CANCELLED)
        elif not handle.in_thread:  # a run_here job sees cancel_requested through its stop flag
            self._cancel_running(handle)

    def job_log(self) -> list[dict]:
        """Finished jobs, oldest first: {"id", "name", "pid", "worker", "status", "seconds"}. `pid` is the
        process that ran the job (None if it never started or ran on a Ray node), so a test can assert that
        no heavy job ran in the web server's process."""
        with self._lock:
            return [dict(e) for e in self._log]

    def run_here(self, fn: Callable, kwargs: dict | None = None, *, name: str | None = None,
                 queue_position: Callable[[], int] | None = None) -> JobHandle:
        """Light orchestration in a thread of *this* process behind the same JobHandle, for work that only
        submits / maps heavy tasks onto this executor and writes their records (a few-shot run). fn gets
        report= and stop= like a worker job; cancel() turns stop.is_set() true (fn returns what it has:
        status done). `queue_position`: where the work it maps waits. Logged with this process's pid."""
        handle = JobHandle(self, fn, dict(kwargs or {}), None, name)
        handle.status, handle.started_at, handle.attempts = RUNNING, time.time(), 1
        handle.worker, handle.pid, handle.position_fn = f"thread in pid {os.getpid()}", os.getpid(), queue_position
        handle.in_thread = True
        call = dict(handle.kwargs)
        if handle.wants_report:
            call["report"] = lambda info=None, **kw: handle._report({**(info or {}), **kw})
        if handle.wants_stop:
            call["stop"] = CancelFlag(handle)

        def run() -> None:
            try:
                result = fn(**call)
            except Exception as exc:  # noqa: BLE001 - the same contract as a worker job
                self._finished(handle, FAILED, error=JobFailed.from_exception(exc))
            else:
                self._finished(handle, DONE, result)

        threading.Thread(target=run, name=f"latent-lab-{handle.name}", daemon=True).start()
        return handle

    def shutdown(self) -> None:  # pragma: no cover - backends override
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    # ----- shared machinery
    def _submit(self, fn, kwargs, *, owner, name, count_owner: bool, urgent: bool = False) -> JobHandle:
        if self._closed:
            raise RuntimeError(f"the {self.kind} executor was shut down")
        if self.kind != "inline":
            check_importable(fn)
        handle = JobHandle(self, fn, kwargs, owner, name)
        with self._lock:
            if len(self._queue) >= self.max_queued:
                raise QueueFull(f"the job queue is full ({self.max_queued} jobs waiting); try again when some "
                                "have finished")
            if count_owner and owner is not None:
                self._claim_owner(owner)
                handle.add_done_callback(lambda h: self._release_owner(owner))
            if urgent:
                self._queue.appendleft(handle)
            else:
                self._queue.append(handle)
        self._start_pending()
        return handle

    def _claim_owner(self, owner: str) -> None:
        with self._lock:
            if self._owner_units[owner] >= self.per_owner:
                raise QueueFull(f"you already have {self._owner_units[owner]} jobs queued or running (at most "
                                f"{self.per_owner} per browser or caller); wait for one to finish or stop it")
            self._owner_units[owner] += 1

    def _release_owner(self, owner: str) -> None:
        with self._lock:
            self._owner_units[owner] -= 1
            if self._owner_units[owner] <= 0:
                del self._owner_units[owner]

    def owner_jobs(self, owner: str) -> int:
        with self._lock:
            return self._owner_units.get(owner, 0)

    def _next_queued(self) -> JobHandle | None:
        """Pop the first queued job and mark it running (the backend then starts it)."""
        with self._lock:
            if not self._queue:
                return None
            handle = self._queue.popleft()
            handle.status = RUNNING
            handle.attempts += 1
            handle.started_at = handle.started_at or time.time()
            self._running.add(handle)
            return handle

    def _requeue_front(self, handle: JobHandle) -> None:
        with self._lock:
            self._running.discard(handle)
            handle.status = QUEUED
            self._queue.appendleft(handle)

    def _finished(self, handle: JobHandle, status: str, result: Any = None, error: JobFailed | None = None) -> None:
        with self._lock:
            self._running.discard(handle)
            if not handle.done:
                self._log_job(handle.id, handle.name, _pid_of(handle), handle.worker, status,
                              None if handle.started_at is None else time.time() - handle.started_at)
        handle._finish(status, result, error)

    def _log_job(self, job_id: int, name: str, pid: int | None, worker: str | None, status: str,
                 seconds: float | None) -> None:
        with self._lock:
            self._log.append({"id": job_id, "name": name, "pid": pid, "worker": worker, "status": status,
                              "seconds": seconds})

    def _map(self, fn, tasks: list[dict], stop: threading.Event | None, on_result, group=None,
             ready: Callable[[int], bool] | None = None) -> None:
        finished: queue.Queue[JobHandle] = queue.Queue()
        pending = deque(enumerate(tasks))
        in_flight: dict[JobHandle, int] = {}
        window = max(self.workers + 2, 2 * self.workers)  # keep workers busy without filling the shared queue
        failure: JobFailed | None = None
        try:
            while pending or in_flight:
                if stop is not None and stop.is_set():
                    break
                while pending and failure is None and len(in_flight) < window:
                    j = next_ready(pending, ready)
                    if j is None:
                        if not in_flight:
                            raise RuntimeError(f"map(): none of the {len(pending)} waiting tasks is ready and "
                                               "none runs (a task waits for one that is not in the map)")
                        break
                    i, task = pending[j]
                    del pending[j]
                    h = self._submit(fn, dict(task), owner=None, name=getattr(fn, "__name__", None),
                                     count_owner=False)
                    h.group = group
                    in_flight[h] = i
                    h.add_done_callback(finished.put)
                try:
                    h = finished.get(timeout=0.05)
                except queue.Empty:
                    continue
                i = in_flight.pop(h)
                if h.status == DONE and not h.cancel_requested:
                    on_result(i, h._result)
                elif h.status == FAILED and failure is None:
                    failure = h.error
                    pending.clear()  # the running ones finish; nothing new starts
                    for other in in_flight:
                        if other.status == QUEUED:
                            other.cancel()
                elif h.status == CANCELLED and failure is None and not (stop is not None and stop.is_set()):
                    failure = JobFailed("JobCancelled", f"task {i} was cancelled from outside map()")
                    pending.clear()
        finally:
            # stop, a failing on_result, or KeyboardInterrupt: end whatever still runs, and wait (bounded).
            for h in list(in_flight):
                h.cancel()
            deadline = time.monotonic() + 5.0
            for h in list(in_flight):
                h.wait(max(0.0, deadline - time.monotonic()))
        if failure is not None:
            raise failure

    # ----- backend hooks
    def _start_pending(self) -> None:
        raise NotImplementedError

    def _cancel_running(self, handle: JobHandle) -> None:
        raise NotImplementedError
