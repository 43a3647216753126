"""The session jobs registry: whose each session job is, and what happens when its browser goes away.

Every session job (a training through ui.jobs.submit, a few-shot run through ui.fewshot_ops) is kept with its
owner (ui.owners: the browser, kept across reloads) and client address, so that
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

from core.executor import QUEUED, JobHandle, QueueFull

HEARTBEAT_S = 15.0  # an open tab whose browser has jobs reports in this often (a sidebar fragment)
# Browsers slow the timers of background tabs to about once a minute: GONE_AFTER_S leaves room for that.
GONE_AFTER_S = 150.0  # an owner not seen this long has closed its tabs: its waiting jobs are cancelled
RUNNING_GRACE_S = 300.0  # ... and its running jobs this long after it was last seen (a reload is back in time)
SWEEP_EVERY_S = 10.0
MAX_TRACKED = 500  # finished jobs beyond this are forgotten, oldest first (unfinished ones never)


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
    session: str | None = None  # the Streamlit session (tab) that started it; None outside a session

    @property
    def liveness_key(self) -> str:
        """Whose presence keeps it alive: its browser (any tab, a reload), or, for an address owner (a first
        visit without our cookie; one address may be a whole classroom), only the tab that started it — no
        other tab can see or adopt it, and others at the same address must not keep it alive for ever."""
        if self.owner.startswith("browser:") or self.session is None:
            return self.owner
        return f"session:{self.session}"

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


@contextmanager
def admit():
    """Around starting a session job (then `track` it inside): yields this session's client address
    after checking its cap (QueueFull); held under the registry's lock, so two tabs cannot both pass the
    check before either job is tracked."""
    address = _session_address()
    with _registry.lock:
        check_address_cap(address)
        yield address


def _session_id() -> str | None:
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx()
    except Exception:  # noqa: BLE001 - outside a session
        return None
    return getattr(ctx, "session_id", None)


def heartbeat(owner: str, now: float | None = None) -> None:
    """`owner` has a tab open (every page run, and the sidebar's fragment while it has jobs); so has this tab."""
    t = clock() if now is None else now
    session = _session_id()
    with _registry.lock:
        _registry.seen[owner] = t
        if session is not None:
            _registry.seen[f"session:{session}"] = t


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
                       view=handle if view is None else view, session=_session_id())
        _registry.jobs[t.id] = t
        _registry.seen.setdefault(owner, now)
        _registry.seen.setdefault(t.liveness_key, now)
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
    """Stop the jobs of owners that are gone: waiting ones once the owner (an address owner's job: the tab that
    started it, TrackedJob.liveness_key) was not seen for GONE_AFTER_S, running ones after RUNNING_GRACE_S.
    -> the jobs stopped."""
    now = clock() if now is None else now
    with _registry.lock:
        candidates = [(t, now - _registry.seen.get(t.liveness_key, t.submitted)) for t in _registry.jobs.values()
                      if not t.handle.done]
        live = {t.liveness_key for t in _registry.jobs.values() if not t.handle.done}
        for key in [k for k, at in _registry.seen.items() if k.startswith("session:") and k not in live
                    and now - at > RUNNING_GRACE_S]:
            del _registry.seen[key]   # tabs long closed, with no job left to keep alive
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
