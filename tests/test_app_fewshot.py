"""AppTest: the Few-shot lab — renders, runs a tiny experiment in the background, lists the run."""

import time

from app_support import app_env, app_checkpoints, assert_clean, new_app  # noqa: F401

PAGE = "app_pages/fewshot.py"


def test_renders_with_defaults(app_env):
    at = new_app(PAGE)
    assert_clean(at)
    assert at.title[0].value == "Few-shot lab"


def test_bad_method_shows_error(app_env):
    at = new_app(PAGE)
    at.text_input(key="w_fs_combos").set_value("classic+nonsense")
    at.button[0].click().run()
    assert not at.exception
    assert at.error and "nonsense" in at.error[0].value


def test_tiny_run_in_background(app_env):
    at = new_app(PAGE)
    at.multiselect(key="w_fs_methods").set_value(["none", "mixup"])
    at.number_input(key="w_fs_seeds").set_value(1)
    at.number_input(key="w_fs_steps").set_value(20)
    at.multiselect(key="w_fs_shots").set_value([2])
    at.button[0].click().run()
    assert_clean(at)
    job = at.session_state["_ll_fs_job"]
    deadline = time.time() + 90
    while not job.done and time.time() < deadline:
        time.sleep(0.5)
        at.run()
        assert not at.exception
    assert job.done and job.error is None, job.error
    at.run()
    at.run()
    assert_clean(at)
    assert any(len(df.value) == 2 for df in at.dataframe)  # summary: none and mixup at 2 shots
    assert at.selectbox(key="w_fs_open").value in job.result
