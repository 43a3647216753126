"""AppTest: the Train or load page — inspect, upload (good and bad), train in a worker process."""

import os
import time

import pytest

from app_support import app_env, app_checkpoints, assert_clean, new_app, sidebar_ckpt, sidebar_dataset  # noqa: F401

PAGE = "app_pages/train_load.py"


def test_renders_with_defaults(app_env):
    at = new_app(PAGE)
    assert_clean(at)
    assert at.title[0].value == "Train or load"
    assert len(at.image) >= 2  # originals and reconstructions
    assert any(m.label == "Latent size" for m in at.metric)


def test_bad_upload_shows_error_and_keeps_selection(app_env):
    at = new_app(PAGE)
    before = at.session_state["ll_ckpt"]
    for name, data in [("evil.zip", b"not a zip at all"),
                       ("../../x.zip", b"PK\x03\x04garbage that is not a real zip file")]:
        at.file_uploader(key="w_upload").set_value((name, data, "application/zip")).run()
        assert not at.exception
        assert at.error, "a bad upload must show st.error"
        assert "rejected" in at.error[0].value
        assert at.session_state["ll_ckpt"] == before
        assert sidebar_ckpt(at).value == before


def test_good_upload_is_selected(app_env):
    from core.checkpoints import zip_checkpoint

    data = zip_checkpoint(app_env / "mnist5k-ae-z2")
    at = new_app(PAGE)
    at.file_uploader(key="w_upload").set_value(("my model.zip", data, "application/zip")).run()
    assert_clean(at)
    key = at.session_state["ll_ckpt"]
    assert key.startswith("upload/") and "my model" not in key
    assert sidebar_ckpt(at).value == key


def wait_done(at, job, seconds: float) -> None:
    deadline = time.time() + seconds
    while not job.done and time.time() < deadline:
        time.sleep(0.5)
        at.run()  # the page stays usable while training runs
        assert not at.exception


def test_training_runs_in_a_worker_process_and_selects_result(app_env):
    at = new_app(PAGE)
    at.number_input(key="w_t_epochs").set_value(1)
    at.selectbox(key="w_t_model").set_value("ae").run()
    assert not [w for w in at.selectbox if w.key == "w_t_prior"], "an AE has no prior to choose"
    at.button[0].click().run()  # the form's submit button
    assert_clean(at)
    job = at.session_state["_ll_train_job"]
    wait_done(at, job, 120)
    assert job.done and job.error is None, job.error
    assert job.handle.worker.startswith("pid ") and job.handle.worker != f"pid {os.getpid()}"
    at.run()
    at.run()
    assert_clean(at)
    assert at.session_state["ll_ckpt"] == job.result and job.result.startswith("runs/")
    assert sidebar_ckpt(at).value == job.result
    _, events = job.snapshot()
    assert events and all("losses" in e for e in events), "the live loss curve gets every on_step report"


def test_stop_button_ends_training_and_keeps_it(app_env):
    at = new_app(PAGE)
    at.number_input(key="w_t_epochs").set_value(200)
    at.button[0].click().run()
    job = at.session_state["_ll_train_job"]
    deadline = time.time() + 120
    while not job.progress.get("losses") and time.time() < deadline:
        time.sleep(0.2)
    at.run()
    t0 = time.monotonic()
    at.button(key="w_t_stop").click().run()
    assert job.stop.is_set()
    while not job.done and time.monotonic() - t0 < 10:   # 200 epochs take minutes: within 10 s is the stop
        time.sleep(0.05)
    assert job.done, "not stopped 10 s after Stop"
    assert job.error is None, job.error
    assert job.progress["epoch"] < 200 and job.progress["stopped"]
    at.run()
    at.run()
    assert_clean(at)
    assert at.session_state["ll_ckpt"] == job.result


def test_queue_position_cancel_and_per_session_cap(app_env):
    from core.executor import QueueFull
    from core.executor import probe
    from ui import jobs
    from ui.resources import dataset
    from ui.training import start_training

    ex = jobs.shared_executor()
    blockers = [ex.submit(probe.sleep, {"seconds": 60}, owner=f"blocker-{i}") for i in range(ex.workers)]
    try:
        at = new_app(PAGE)
        at.button[0].click().run()
        job = at.session_state["_ll_train_job"]
        assert job.status == "queued"
        at.run()
        assert any("place 1 in the queue" in p.proto.text for p in at.get("progress")), "queue place shown"
        # The same session may hold at most 2 jobs (this one plus one more); a third is refused.
        extra = jobs.submit("probe", probe.sleep, {"seconds": 60}, owner=job.handle.owner)
        with pytest.raises(QueueFull, match="you already have 2 jobs queued or running"):
            start_training(dataset("mnist5k"), {"kind": "ae", "latent_dim": 2}, {"epochs": 1},
                           owner=job.handle.owner)
        extra.request_stop()
        at.button(key="w_t_stop").click().run()  # Cancel while queued
        deadline = time.time() + 5
        while not job.done and time.time() < deadline:
            time.sleep(0.05)
        assert job.cancelled and job.error is None
        at.run()
        assert not at.exception
        assert any("Stopped before anything could be saved" in w.value for w in at.warning)
    finally:
        for b in blockers:
            b.cancel()
            b.wait(5)


def test_failures_show_clear_errors_and_the_server_keeps_serving(app_env):
    from core.executor import probe
    from ui import jobs
    from ui.resources import dataset
    from ui.training import start_training

    at = new_app(PAGE)
    # A training that produces NaN: the user's settings, said plainly.
    diverging = start_training(dataset("mnist5k"), {"kind": "ae", "latent_dim": 2}, {"epochs": 2, "lr": 1e6},
                               owner="t-nan")
    # A bug in a job: shown as a bug with its type and message, not as the user's mistake.
    bug = jobs.submit("train", probe.fail, {"message": "index out of range"}, owner="t-bug")
    for job in (diverging, bug):
        deadline = time.time() + 120
        while not job.done and time.time() < deadline:
            time.sleep(0.2)
    assert diverging.error_kind == "user" and "diverged" in diverging.error, diverging.error
    assert bug.error_kind == "bug" and bug.error.startswith("ZeroDivisionError: index out of range")
    at.session_state["_ll_train_job"] = diverging
    at.run()
    assert not at.exception
    assert any(e.value.startswith("Training failed: training diverged") for e in at.error)
    at.session_state["_ll_train_job"] = bug
    at.run()
    assert not at.exception
    assert any("a bug, not your settings" in e.value and "ZeroDivisionError" in e.value for e in at.error)
    at.switch_page(PAGE).run()
    assert at.title[0].value == "Train or load"  # still serving


@pytest.mark.slow  # a killed worker is replaced twice (a fresh process imports torch each time)
def test_killed_worker_shows_clear_error(app_env):
    from core.executor import probe
    from ui import jobs

    job = jobs.submit("train", probe.kill_always, {}, owner="t-kill")
    deadline = time.time() + 120
    while not job.done and time.time() < deadline:
        time.sleep(0.2)
    assert job.error_kind == "resources" and "killed" in job.error and "SIGKILL" in job.error
    at = new_app(PAGE)
    at.session_state["_ll_train_job"] = job
    at.run()
    assert not at.exception
    assert any("ran out of memory or was killed" in e.value for e in at.error)


def test_two_trainings_in_the_same_second_get_different_folders():
    from ui.training import folder_name

    names = {folder_name("mnist5k", "aae-uniform", 2) for _ in range(50)}
    assert len(names) == 50


def test_the_form_shows_the_chosen_kinds_own_settings(app_env):
    """The Train form is built from the registry: every kind is offered, and each shows its config's fields."""
    from dataclasses import fields

    from core.models import config_class, list_models

    at = new_app(PAGE)
    assert len(at.selectbox(key="w_t_model").options) == len(list_models())
    for kind in list_models():
        at.selectbox(key="w_t_model").set_value(kind).run()
        assert_clean(at)
        keys = {w.key for w in [*at.number_input, *at.selectbox, *at.checkbox]}
        wanted = {f"w_t_{f.name}" for f in fields(config_class(kind)) if f.metadata.get("form", True)}
        assert wanted <= keys, (kind, wanted - keys)
    at.selectbox(key="w_t_model").set_value("wae").run()
    assert at.number_input(key="w_t_lambda_mmd").value == 10.0
    assert at.number_input(key="w_t_latent_dim").value == 2  # the page's default, not the config's 16


def test_training_a_new_kind_from_the_form_saves_its_settings(app_env):
    at = new_app(PAGE)
    at.selectbox(key="w_t_model").set_value("wae").run()
    at.number_input(key="w_t_lambda_mmd").set_value(3.0)
    at.number_input(key="w_t_epochs").set_value(1)
    at.button[0].click().run()
    assert_clean(at)
    job = at.session_state["_ll_train_job"]
    wait_done(at, job, 120)
    assert job.done and job.error is None, job.error
    at.run()
    at.run()
    entry = next(e for e in __import__("ui.resources", fromlist=["entries"]).entries() if e.key == job.result)
    assert entry.meta["model"]["kind"] == "wae" and entry.meta["model"]["lambda_mmd"] == 3.0
    assert "-wae-z2-" in job.result and entry.description == "WAE-MMD (lambda=3)"


def test_the_training_path_imports_core_not_the_cli():
    """The app calls core functions (core.training_job); `python -m core train` is a shell over the same ones."""
    from app_support import ROOT

    for path in ("ui/training.py", "app_pages/train_load.py"):
        assert "core.commands" not in (ROOT / path).read_text(), path
    import core.commands.train as command
    import core.training_job as job

    source = (ROOT / "core" / "commands" / "train.py").read_text()
    assert "from core.training_job import save_trained, train_task" in source
    assert not hasattr(command, "train_task") and callable(job.train_task) and callable(job.save_trained)
