"""Background jobs: a worker thread that calls no st.*, a stop Event, and a progress dict.

A page starts a Job, keeps it in st.session_state, and polls it from an
@st.fragment(run_every=...) that redraws only the progress widgets.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class Job:
    name: str
    stop: threading.Event = field(default_factory=threading.Event)
    progress: dict = field(default_factory=dict)  # written by the worker, read by the page
    events: list = field(default_factory=list)  # e.g. every on_step dict, appended by the worker
    result: Any = None
    error: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    thread: threading.Thread | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

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


def start(name: str, work: Callable[[Job], Any]) -> Job:
    """Run work(job) in a daemon thread; its return value lands in job.result, a
    ValueError/RuntimeError message in job.error (other exceptions too, with a short trace)."""
    job = Job(name)

    def run() -> None:
        try:
            job.result = work(job)
        except (ValueError, RuntimeError) as e:
            job.error = str(e)
        except Exception as e:  # a bug: keep the app alive, show the type and message
            job.error = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}"
        finally:
            job.finished = time.time()

    job.thread = threading.Thread(target=run, name=f"latent-lab-{name}", daemon=True)
    job.thread.start()
    return job
