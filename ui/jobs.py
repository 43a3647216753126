"""Background work for the pages, without heavy work in the web server.

Every job is a core.executor JobHandle (the one job protocol: status, queue place, progress events,
cancel, result, error class) on the one process-wide executor, `shared_executor()` (worker processes, or
a Ray cluster). The server only submits, polls and writes result files; a job that raises, diverges, is
killed or runs out of memory fails alone.

- `submit(...)` queues a session's job (a training) and wraps it in an `ExecutorJob`: the handle plus
  `then(result)`, work the server does once the job has finished (writing the checkpoint).
- Jobs shared by every session and keyed by their inputs (UMAP fits, hole metrics, the saliency
  classifiers) go through ui.background; a few-shot run's orchestration through executor.run_here.
Whose jobs (the session jobs registry): every session job is tracked with its owner (ui.owners: the
browser, kept across reloads) and client address, so that
- the per-owner cap of the executor counts a browser, not a tab; and an address may hold at most
  jobs_per_address() unfinished jobs (a client that discards its cookie on each visit stays bounded);
- an owner whose tabs are all closed loses its jobs: every page run and a sidebar fragment report the owner
  as seen (`heartbeat`), and a sweeper thread cancels the queued jobs of owners not seen for GONE_AFTER_S
  and their running ones after RUNNING_GRACE_S (a closed tab must not hold a worker others wait for);
- an operator can list every job and stop any (app_pages/operator.py).
No st.* is called from any thread here.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

from core.executor import QUEUED, Executor, JobCancelled, JobHandle, QueueFull, get_executor
from core.executor.base import describe_error

__all__ = ["describe_error", "shared_executor", "session_owner", "ExecutorJob", "submit", "track", "heartbeat",
           "sweep", "tracked_jobs", "owner_jobs", "stop_job", "admit"]

HEARTBEAT_S = 15.0  # an open tab whose browser has jobs reports in this often (a sidebar fragment)
# Browsers slow the timers of background tabs to about once a minute: GONE_AFTER_S leaves room for that.
GONE_AFTER_S = 150.0  # an owner not seen this long has closed its tabs: its waiting jobs are cancelled
RUNNING_GRACE_S = 300.0  # ... and its running jobs this long after it was last seen (a reload is back in time)
SWEEP_EVERY_S = 10.0
MAX_TRACKED = 500  # finished jobs beyond this are forgotten, oldest first (unfinished ones never)

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


def _session_address() -> str | None:
    try:
        from ui.owners import client_address

        return client_address()
    except Exception:  # noqa: BLE001 - outside a session
        return None


def jobs_per_address() -> int:
    """LATENT_LAB_JOBS_PER_ADDRESS (default 4, two browsers' share; 0 = no cap): unfinished session jobs of
    all owners at one client address. Behind a reverse proxy every user has the proxy's address: raise it."""
    return int(os.environ.get("LATENT_LAB_JOBS_PER_ADDRESS", 4))


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
    with admit() as address:
        job = ExecutorJob(name, shared_executor().submit(fn, kwargs, owner=owner, name=name), then, keep_event)
        track(name, job.handle, owner, stop=job.request_stop, address=address, view=job)
    return job


@contextmanager
def admit():
    """Around starting a session job (then `track` it inside): yields this session's client address
    after checking its cap (QueueFull); held under the registry's lock, so two tabs cannot both pass the
    check before either job is tracked."""
    address = _session_address()
    with _registry.lock:
        check_address_cap(address)
        yield address


# ----------------------------------------------------------------------------- the session jobs registry

@dataclass
class TrackedJob:
    id: int
    kind: str  # "train", "fewshot", ...
    owner: str  # ui.owners key: "browser:<token>" | "address:<ip>"
    address: str | None  # the client address it was started from (None: loopback / unknown)
    handle: JobHandle
    stop: Callable[[], None]
    submitted: float  # clock() when it was started
    stopped_by: str | None = None  # "operator" | "owner gone", once stopped from outside its session
    view: Any = None  # what the page that started it keeps (an ExecutorJob, a run's JobHandle)

    @property
    def waiting(self) -> bool:
        """Waiting for a worker (a few-shot run: none of its tasks runs yet and one waits)."""
        return not self.handle.done and (self.handle.status == QUEUED or self.handle.queue_position > 0)


@dataclass
class _Registry:
    lock: threading.RLock = field(default_factory=threading.RLock)
    jobs: dict[int, TrackedJob] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)  # owner -> clock() when a page of it last ran
    ids: Any = field(default_factory=lambda: itertools.count(1))
    sweeper: threading.Thread | None = None


_registry = _Registry()
clock: Callable[[], float] = time.monotonic


def heartbeat(owner: str, now: float | None = None) -> None:
    """`owner` has a tab open (every page run, and the sidebar's fragment while it has jobs)."""
    with _registry.lock:
        _registry.seen[owner] = clock() if now is None else now


def last_seen(owner: str) -> float | None:
    with _registry.lock:
        return _registry.seen.get(owner)


def check_address_cap(address: str | None) -> None:
    cap = jobs_per_address()
    if cap <= 0:
        return
    with _registry.lock:
        n = sum(1 for t in _registry.jobs.values() if t.address == address and not t.handle.done)
    if n >= cap:
        raise QueueFull(f"{n} jobs started from your network address are queued or running (at most {cap}); "
                        "wait for one to finish or stop it")


def track(kind: str, handle: JobHandle, owner: str, *, stop: Callable[[], None] | None = None,
          address: str | None = None, view: Any = None) -> TrackedJob:
    """Register a session job (its owner counts as seen now); the sweeper starts with the first one."""
    with _registry.lock:
        now = clock()
        t = TrackedJob(next(_registry.ids), kind, owner, address, handle, stop or handle.cancel, now,
                       view=handle if view is None else view)
        _registry.jobs[t.id] = t
        _registry.seen.setdefault(owner, now)
        finished = [k for k, j in _registry.jobs.items() if j.handle.done]
        for k in finished[: max(0, len(_registry.jobs) - MAX_TRACKED)]:
            del _registry.jobs[k]
        if _registry.sweeper is None:
            _registry.sweeper = threading.Thread(target=_sweep_forever, name="latent-lab-job-sweeper", daemon=True)
            _registry.sweeper.start()
    return t


def tracked_jobs() -> list[TrackedJob]:
    """Every tracked session job, oldest first (the operator's view)."""
    with _registry.lock:
        return list(_registry.jobs.values())


def owner_jobs(owner: str, kind: str | None = None) -> list[TrackedJob]:
    """`owner`'s unfinished jobs (optionally of one kind), oldest first."""
    return [t for t in tracked_jobs() if t.owner == owner and not t.handle.done and kind in (None, t.kind)]


def own_browser(owner: str) -> bool:
    """Whether `owner` is one browser (its token): its tabs may show and stop each other's jobs. An address
    owner may be many people (a classroom behind one router): they share a cap, never each other's jobs."""
    return owner.startswith("browser:")


def adopt(owner: str, kind: str) -> Any:
    """The page view of the newest unfinished `kind` job of this browser (after a reload, the page shows
    the training it started before), or None."""
    mine = owner_jobs(owner, kind) if own_browser(owner) else []
    return mine[-1].view if mine else None


def stop_job(job_id: int, by: str = "operator") -> bool:
    """Stop a tracked job (queued: dropped; running: asked to stop, ended within 2 s). -> it was unfinished."""
    with _registry.lock:
        t = _registry.jobs.get(job_id)
    if t is None or t.handle.done:
        return False
    t.stopped_by = t.stopped_by or by
    t.stop()
    return True


def sweep(now: float | None = None) -> list[TrackedJob]:
    """Stop the jobs of owners that are gone: waiting ones once the owner was not seen for GONE_AFTER_S,
    running ones after RUNNING_GRACE_S. -> the jobs stopped."""
    now = clock() if now is None else now
    with _registry.lock:
        candidates = [(t, now - _registry.seen.get(t.owner, t.submitted)) for t in _registry.jobs.values()
                      if not t.handle.done]
    stopped = []
    for t, unseen in candidates:
        if unseen > RUNNING_GRACE_S or (unseen > GONE_AFTER_S and t.waiting):
            if stop_job(t.id, by="owner gone"):
                stopped.append(t)
    return stopped


def _sweep_forever() -> None:
    while True:
        time.sleep(SWEEP_EVERY_S)
        try:
            sweep()
        except Exception:  # noqa: BLE001 - the sweeper must outlive any one bad job
            pass


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
