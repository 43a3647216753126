"""AppTest: whose jobs are whose across reloads and tabs, jobs of closed tabs, the operator's view, the disk
quota, and non-finite numbers in links (issue 17, items 4 and 10).

AppTest gives every AppTest the same session id and no client (no cookies, no address). A real server gives
each tab (each reload) a new session id, and the cookies and address its browser sent when it connected:
the `browser` fixture does the same, so a reload is a new Tab with the same cookies.
"""

from __future__ import annotations

import time
import uuid
from types import SimpleNamespace

import pytest

from app_support import APP, TIMEOUT, app_checkpoints, app_env, new_app  # noqa: F401

TRAIN = "app_pages/train_load.py"
FEWSHOT = "app_pages/fewshot.py"
OPERATOR = "app_pages/operator.py"
COOKIE_A = "a" * 12 + "AAAA_-AAAAAA"  # a token as the browser would send it (24 url-safe characters)
COOKIE_B = "b" * 24


class Tab:
    """One tab of a browser: its own session (id), the cookies and client address of its browser."""

    current: "Tab | None" = None

    def __init__(self, cookies: dict | None = None, ip: str | None = None, query: dict | None = None):
        from streamlit.testing.v1 import AppTest

        self.at = AppTest.from_file(APP, default_timeout=TIMEOUT)
        for k, v in (query or {}).items():
            self.at.query_params[k] = v
        self.session_id = uuid.uuid4().hex
        self.client = SimpleNamespace(cookies=dict(cookies or {}), headers=[], remote_ip=ip)

    def run(self) -> "Tab":
        Tab.current = self
        try:
            self.at.run()
        finally:
            Tab.current = None
        assert not self.at.exception, [e.value for e in self.at.exception]
        return self

    def open(self, page: str) -> "Tab":
        self.run()
        self.at.switch_page(page)
        return self.run()

    def click_train(self) -> "Tab":
        self.at.number_input(key="w_t_epochs").set_value(1)
        self.at.button[0].click()  # the form's submit button
        return self.run()

    def errors(self) -> list[str]:
        return [e.value for e in self.at.error]


@pytest.fixture()
def browser(monkeypatch):
    """Each Tab gets the session id and client context (cookies, address) a real server would give it."""
    from streamlit.runtime import context
    from streamlit.runtime.scriptrunner import script_runner

    init = script_runner.ScriptRunner.__init__

    def with_tab_session(self, *args, session_id, **kwargs):
        init(self, *args, session_id=Tab.current.session_id if Tab.current else session_id, **kwargs)

    real_client = context._get_client_context
    monkeypatch.setattr(script_runner.ScriptRunner, "__init__", with_tab_session)
    monkeypatch.setattr(context, "_get_client_context", lambda: Tab.current.client if Tab.current else real_client())
    return Tab


@pytest.fixture()
def busy_workers():
    """Every worker busy, so that the jobs a test starts stay queued."""
    from core.executor import probe
    from ui import jobs

    ex = jobs.shared_executor()
    blockers = [ex.submit(probe.sleep, {"seconds": 60}, owner=f"blocker-{i}") for i in range(ex.workers)]
    deadline = time.time() + 60
    while any(b.status == "queued" for b in blockers) and time.time() < deadline:
        time.sleep(0.1)
    yield
    for b in blockers:
        b.cancel()
        b.wait(5)


@pytest.fixture()
def stop_all_session_jobs():
    """Cancel whatever session jobs a test left (they must not hold the workers the next test needs)."""
    from ui import session_jobs

    yield
    for t in session_jobs.tracked_jobs():
        if not t.handle.done:
            t.stop()
            t.handle.wait(5)


def _state(at, key: str):
    return at.session_state[key] if key in at.session_state else None


def _train_job(tab: Tab):
    return _state(tab.at, "_ll_train_job")


# ----------------------------------------------------------------------------- the cap across reloads

def test_reloads_of_one_browser_cannot_exceed_its_job_cap(app_env, browser, busy_workers, stop_all_session_jobs,
                                                          monkeypatch):
    from ui import jobs

    monkeypatch.setattr(jobs.shared_executor(), "per_owner", 1)  # one job per browser: a second kind shows it
    cookie = {"latent_lab_browser": COOKIE_A}
    first = browser(cookies=cookie).open(TRAIN).click_train()
    job = _train_job(first)
    assert not first.errors() and job.status == "queued"
    reload = browser(cookies=cookie).open(TRAIN)  # a new session of the same browser
    assert _train_job(reload) is job  # it shows the training it started before (and can stop it)
    reload.at.switch_page(FEWSHOT)
    reload.run()
    reload.at.button[0].click()  # Run: a second job of this browser
    reload.run()
    assert _state(reload.at, "_ll_fs_job") is None
    assert any("Cannot start: you already have 1 jobs queued or running" in e for e in reload.errors()), \
        reload.errors()
    other = browser(cookies={"latent_lab_browser": COOKIE_B}).open(FEWSHOT)  # another browser may
    other.at.button[0].click()
    other.run()
    assert not other.errors() and _state(other.at, "_ll_fs_job") is not None


def test_a_reload_can_stop_the_job_its_browser_started(app_env, browser, busy_workers, stop_all_session_jobs):
    from ui import session_jobs

    first = browser(cookies={"latent_lab_browser": COOKIE_A}).open(TRAIN).click_train()
    job = _train_job(first)
    tracked = next(t for t in session_jobs.tracked_jobs() if t.handle is job.handle)
    stranger = browser(cookies={"latent_lab_browser": COOKIE_B}).open(TRAIN)  # another browser: nothing to stop
    assert not [b for b in stranger.at.sidebar.button if str(b.key).startswith("w_my_stop_")]
    same_address = browser().open(TRAIN)  # no cookie: an address may be many people, who never see each other's jobs
    assert not [b for b in same_address.at.sidebar.button if str(b.key).startswith("w_my_stop_")]
    reload = browser(cookies={"latent_lab_browser": COOKIE_A}).open(TRAIN)
    assert any("Jobs of this browser: train (queued)" in c.value for c in reload.at.sidebar.caption)
    reload.at.sidebar.button(key=f"w_my_stop_{tracked.id}").click()
    reload.run()
    assert job.handle.wait(5) and job.cancelled and tracked.stopped_by == "its browser"


def test_without_a_cookie_the_cap_is_the_client_address(app_env, browser, busy_workers, stop_all_session_jobs):
    for _reload in range(2):
        tab = browser(ip="203.0.113.7").open(TRAIN).click_train()
        assert not tab.errors() and _train_job(tab) is not None
    third = browser(ip="203.0.113.7").open(TRAIN).click_train()
    assert _train_job(third) is None and any("you already have 2 jobs" in e for e in third.errors())
    elsewhere = browser(ip="198.51.100.9").open(TRAIN).click_train()
    assert not elsewhere.errors() and _train_job(elsewhere) is not None


def test_an_address_that_discards_its_cookies_stays_bounded(app_env, browser, busy_workers, stop_all_session_jobs,
                                                            monkeypatch):
    monkeypatch.setenv("LATENT_LAB_JOBS_PER_ADDRESS", "3")
    for i in range(3):  # a fresh cookie on every visit: three "browsers", one job each
        tab = browser(cookies={"latent_lab_browser": f"{i}" * 24}, ip="203.0.113.8").open(TRAIN).click_train()
        assert not tab.errors() and _train_job(tab) is not None
    fourth = browser(cookies={"latent_lab_browser": "9" * 24}, ip="203.0.113.8").open(TRAIN).click_train()
    assert _train_job(fourth) is None
    assert any("3 jobs started from your network address" in e for e in fourth.errors()), fourth.errors()


def test_a_first_visit_asks_the_browser_to_keep_a_token(app_env, browser):
    from ui.owners import _TOKEN

    first = browser().open(TRAIN)
    token = first.at.session_state["_ll_browser_token"]
    assert _TOKEN.fullmatch(token)
    back = browser(cookies={"latent_lab_browser": token}).open(TRAIN)  # the reload sends it
    assert "_ll_browser_token" not in back.at.session_state  # known: nothing more to set
    forged = browser(cookies={"latent_lab_browser": "../../etc"}).open(TRAIN)  # not a token of ours: ignored
    assert _TOKEN.fullmatch(forged.at.session_state["_ll_browser_token"])


# ----------------------------------------------------------------------------- jobs of closed tabs

@pytest.fixture()
def fake_clock(monkeypatch):
    from ui import session_jobs

    now = [time.monotonic()]
    monkeypatch.setattr(session_jobs, "clock", lambda: now[0])
    return now


def test_queued_jobs_of_a_closed_browser_are_cancelled(app_env, browser, busy_workers, stop_all_session_jobs,
                                                       fake_clock):
    from ui import session_jobs

    gone = browser(cookies={"latent_lab_browser": COOKIE_A}).open(TRAIN).click_train()
    open_tab = browser(cookies={"latent_lab_browser": COOKIE_B}).open(TRAIN).click_train()
    gone_job, kept_job = _train_job(gone), _train_job(open_tab)
    assert gone_job.status == kept_job.status == "queued"
    fake_clock[0] += session_jobs.GONE_AFTER_S / 2
    open_tab.run()  # this tab is still open (a rerun, or its sidebar's heartbeat fragment)
    assert session_jobs.sweep() == []  # nobody has been away long enough
    fake_clock[0] += session_jobs.GONE_AFTER_S / 2 + 1
    swept = session_jobs.sweep()
    assert [t.handle for t in swept] == [gone_job.handle]
    assert gone_job.handle.wait(5) and gone_job.cancelled
    assert kept_job.status == "queued"
    assert swept[0].stopped_by == "owner gone"


def test_an_address_owners_queued_job_ends_with_its_tab_not_with_the_address(app_env, browser, busy_workers,
                                                                              stop_all_session_jobs, fake_clock):
    """A first visit has no cookie yet: its job is the address's. Other tabs at that address (a classroom behind
    one router, or the next reload, which has the cookie) cannot see or adopt it, so they must not keep it alive:
    it ends once the tab that started it is gone (it stayed queued for ever while anyone at the address was
    active: issue 17's probe), while a browser's job lives on through any of its tabs."""
    from ui import session_jobs

    first_visit = browser(ip="203.0.113.9").open(TRAIN).click_train()
    neighbour = browser(ip="203.0.113.9").open(TRAIN)                      # another person at the address
    mine = browser(cookies={"latent_lab_browser": COOKIE_A}).open(TRAIN).click_train()
    other_tab_of_mine = browser(cookies={"latent_lab_browser": COOKIE_A}).open(TRAIN)
    address_job, browser_job = _train_job(first_visit), _train_job(mine)
    assert address_job.status == browser_job.status == "queued"
    assert session_jobs.owner_jobs("address:203.0.113.9")
    for _ in range(2):                                 # both tabs that started a job are closed; the others run
        fake_clock[0] += session_jobs.GONE_AFTER_S / 2 + 1
        neighbour.run()
        other_tab_of_mine.run()
    swept = {t.handle: t for t in session_jobs.sweep()}   # (an earlier test's job still ending may be swept too)
    assert address_job.handle in swept and swept[address_job.handle].stopped_by == "owner gone"
    assert browser_job.handle not in swept
    assert address_job.handle.wait(5) and address_job.cancelled
    assert browser_job.status == "queued"


def test_running_jobs_of_a_closed_browser_end_after_the_grace(app_env, fake_clock, stop_all_session_jobs):
    from core.executor import probe
    from ui import jobs, session_jobs

    job = jobs.submit("probe", probe.sleep, {"seconds": 60}, owner="browser:" + "c" * 24)
    deadline = time.time() + 60
    while job.status != "running" and time.time() < deadline:
        time.sleep(0.1)
    assert job.status == "running"
    fake_clock[0] += session_jobs.GONE_AFTER_S + 1
    assert session_jobs.sweep() == [] and job.status == "running"  # a reload within the grace finds it still running
    fake_clock[0] += session_jobs.RUNNING_GRACE_S
    assert len(session_jobs.sweep()) == 1
    assert job.handle.wait(3) and job.stop.is_set()  # asked to stop: it returns what it has (a training saves)
    assert job.handle.result(0) == {"stopped": True, "value": None}


# ----------------------------------------------------------------------------- the operator

def test_the_operator_can_stop_another_sessions_job(app_env, browser, busy_workers, stop_all_session_jobs,
                                                    monkeypatch):
    from ui import session_jobs

    monkeypatch.setenv("LATENT_LAB_OPERATOR_TOKEN", "op-" + "x" * 30)
    user = browser(cookies={"latent_lab_browser": COOKIE_A}).open(TRAIN).click_train()
    job = _train_job(user)
    tracked = next(t for t in session_jobs.tracked_jobs() if t.handle is job.handle)
    op = browser(cookies={"latent_lab_browser": COOKIE_B}, query={"operator": "op-" + "x" * 30}).open(OPERATOR)
    assert op.at.title[0].value == "Operator: jobs"
    assert any(tracked.owner[:16] in m.value for m in op.at.markdown)  # whose job it is
    op.at.button(key=f"w_op_stop_{tracked.id}").click()
    op.run()
    assert job.handle.wait(5) and job.cancelled and tracked.stopped_by == "operator"


def test_a_job_asked_to_stop_shows_stopping_instead_of_another_stop_button(app_env, browser, monkeypatch):
    """A running job ends at its next step, not at once: until then its row says so, and the next Stop button on
    the page is another job's (the hostile probe's operator pressed the same job's Stop three times)."""
    from core.executor import probe
    from ui import jobs, session_jobs

    monkeypatch.setenv("LATENT_LAB_OPERATOR_TOKEN", "op-" + "x" * 30)
    handle = jobs.shared_executor().submit(probe.sleep, {"seconds": 60}, owner="browser:" + "d" * 24)
    slow = session_jobs.track("probe", handle, "browser:" + "d" * 24, stop=lambda: None)   # slow to end
    try:
        assert session_jobs.stop_job(slow.id) and not handle.done
        op = browser(cookies={"latent_lab_browser": COOKIE_B}, query={"operator": "op-" + "x" * 30}).open(OPERATOR)
        assert f"w_op_stop_{slow.id}" not in [b.key for b in op.at.button]
        assert any(m.value == "stopping…" for m in op.at.markdown)
        assert any("(stopped: operator)" in m.value for m in op.at.markdown)
    finally:
        handle.cancel()
        handle.wait(5)


@pytest.mark.parametrize("env, given", [(None, None), (None, "anything"), ("op-" + "x" * 30, None),
                                        ("op-" + "x" * 30, "op-wrong")])
def test_without_the_operator_token_there_is_no_operator_view(app_env, browser, monkeypatch, env, given):
    if env:
        monkeypatch.setenv("LATENT_LAB_OPERATOR_TOKEN", env)
    else:
        monkeypatch.delenv("LATENT_LAB_OPERATOR_TOKEN", raising=False)
    tab = browser(query={"operator": given} if given else None).run()
    assert tab.at.title[0].value == "Latent Lab"
    with pytest.raises(ValueError, match="Could not find a navigation page"):  # not among the app's pages
        tab.at.switch_page(OPERATOR)
    assert not any(str(b.key).startswith("w_op_") for b in tab.at.button)


# ----------------------------------------------------------------------------- the disk quota

def _fill_runs(app_env_runs, mb: float) -> None:
    folder = app_env_runs / "checkpoints" / "old-model"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"\0" * int(mb * 2**20))


def test_training_is_refused_when_the_runs_folder_is_over_its_quota(app_env, tmp_path, monkeypatch,
                                                                    stop_all_session_jobs):
    monkeypatch.setenv("LATENT_LAB_DISK_QUOTA_MB", "1")
    _fill_runs(tmp_path / "runs", 2)
    at = new_app(TRAIN)
    at.number_input(key="w_t_epochs").set_value(1)
    at.button[0].click().run()
    assert _state(at, "_ll_train_job") is None
    msg = next(e.value for e in at.error if e.value.startswith("Cannot start training"))
    assert "holds 2 MB" in msg and "quota is 1 MB" in msg and "checkpoints/old-model (2 MB)" in msg, msg
    monkeypatch.setenv("LATENT_LAB_DISK_QUOTA_MB", "4")  # room again: it starts
    at.button[0].click().run()
    assert _state(at, "_ll_train_job") is not None


def test_a_fewshot_run_is_refused_when_the_runs_folder_is_over_its_quota(app_env, tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_LAB_DISK_QUOTA_MB", "1")
    _fill_runs(tmp_path / "runs", 2)
    at = new_app(FEWSHOT)
    at.button[0].click().run()
    assert _state(at, "_ll_fs_job") is None
    assert any(e.value.startswith("Cannot start:") and "disk quota" in e.value and "LATENT_LAB_DISK_QUOTA_MB" in e.value
               for e in at.error), [e.value for e in at.error]


# ----------------------------------------------------------------------------- links

@pytest.mark.parametrize("query, bad", [({"lam": "nan"}, "lam"), ({"t": "inf"}, "t"), ({"lam": "-Infinity"}, "lam")])
def test_non_finite_numbers_in_a_link_are_ignored_with_a_note(app_env, query, bad):
    at = new_app(query=query)
    assert any(w.value == f"Ignored bad link parameter(s): {bad}." for w in at.sidebar.warning), \
        [w.value for w in at.sidebar.warning]
    assert at.session_state["ll_" + bad] is None or at.session_state["ll_" + bad] == 0.5
