"""AppTest: the Train or load page — inspect, upload (good and bad), train in the background."""

import time

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


def test_training_runs_in_background_and_selects_result(app_env):
    at = new_app(PAGE)
    at.number_input(key="w_t_epochs").set_value(1)
    at.selectbox(key="w_t_model").set_value("AE (no prior)")
    at.button[0].click().run()  # the form's submit button
    assert_clean(at)
    job = at.session_state["_ll_train_job"]
    deadline = time.time() + 90
    while not job.done and time.time() < deadline:
        time.sleep(0.5)
        at.run()  # the page stays usable while training runs
        assert not at.exception
    assert job.done and job.error is None, job.error
    at.run()
    at.run()
    assert_clean(at)
    assert at.session_state["ll_ckpt"] == job.result and job.result.startswith("runs/")
    assert sidebar_ckpt(at).value == job.result


def test_stop_button_ends_training_early(app_env):
    at = new_app(PAGE)
    at.number_input(key="w_t_epochs").set_value(200)
    at.button[0].click().run()
    job = at.session_state["_ll_train_job"]
    deadline = time.time() + 30
    while not job.progress.get("step") and time.time() < deadline:
        time.sleep(0.2)
    at.run()
    at.button(key="w_t_stop").click().run()
    assert job.stop.is_set()
    deadline = time.time() + 60
    while not job.done and time.time() < deadline:
        time.sleep(0.3)
    assert job.done and job.error is None, job.error
    assert job.progress["epoch"] < 200
    at.run()
    at.run()
    assert_clean(at)
    assert at.session_state["ll_ckpt"] == job.result
