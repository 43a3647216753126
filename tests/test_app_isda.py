"""AppTest: the ISDA page — spectrum, live direction sliders, and the bound check."""

from app_support import app_env, app_checkpoints, assert_clean, new_app  # noqa: F401

PAGE = "app_pages/isda.py"


def test_renders_with_defaults(app_env):
    at = new_app(PAGE)
    assert_clean(at)
    assert at.title[0].value == "ISDA semantic directions"
    assert any(m.label == "ISDA bound" for m in at.metric)


def test_direction_slider_changes_the_moved_sample(app_env):
    at = new_app(PAGE)
    moved = lambda: next(img for img in at.image if img.captions and img.captions[0].startswith(("+", "-", "0")))
    before = moved().value
    at.slider(key="w_isda_t0").set_value(2.5).run()
    assert_clean(at)
    assert moved().value != before


def test_bound_is_above_monte_carlo(app_env):
    at = new_app(PAGE)
    bound = float(next(m for m in at.metric if m.label == "ISDA bound").value)
    mc = float(next(m for m in at.metric if m.label.startswith("Monte-Carlo")).value)
    assert mc <= bound + 0.02


def test_other_class_and_batch_size(app_env):
    at = new_app(PAGE)
    at.selectbox(key="w_isda_class").set_value("3").run()
    at.select_slider(key="w_isda_batch").set_value(64).run()
    assert_clean(at)
