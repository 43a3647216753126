"""AppTest: the Beta & dimensions page — beta maps side by side, the traversal grid."""

import pytest

from app_support import app_env, app_checkpoints, assert_clean, new_app, sidebar_ckpt  # noqa: F401
from ui.catalog import BETA_SET

PAGE = "app_pages/beta_dims.py"


def _grid(at):
    return next(img for img in at.image if img.captions and img.captions[0].startswith("columns:"))


def _rows(at):
    return next(df.value for df in at.dataframe if "latent dimension" in df.value.columns)


def test_renders_beta_maps_with_kl_falling(app_env):
    if not all((app_env / name / "model.safetensors").is_file() for name in BETA_SET):
        pytest.skip("the shipped beta-VAE checkpoints are not in this checkpoint root")
    at = new_app(PAGE)
    assert_clean(at)
    assert at.title[0].value == "Beta & dimensions"
    table = next(df.value for df in at.dataframe if "β" in df.value.columns)
    assert table["β"].tolist() == [0.5, 1.0, 4.0, 16.0]
    assert table["KL (nats)"].is_monotonic_decreasing
    assert len(at.get("plotly_chart")) == 4  # one map per beta
    assert sum(m.label == "KL (nats)" for m in at.metric) == 4


def test_traversal_grid_follows_the_controls(app_env):
    at = new_app(PAGE)
    assert_clean(at)
    at.selectbox(key=sidebar_ckpt(at).key).set_value("shipped/mnist5k-aae-uniform-z16").run()
    assert_clean(at)
    assert at.radio(key="w_beta_by_False").options == ["variance"]  # no KL without a posterior
    rows = _rows(at)
    assert len(rows) == 8 and rows["code variance"].is_monotonic_decreasing
    before = _grid(at).value
    at.slider(key="w_beta_ndims_16").set_value(3).run()
    at.select_slider(key="w_beta_steps").set_value(9).run()
    assert_clean(at)
    assert len(_rows(at)) == 3 and _grid(at).captions[0].count("σ") == 9
    at.number_input(key="w_beta_i0").set_value(42).run()
    assert_clean(at)
    assert at.session_state["ll_i0"] == 42  # shared with the other pages and the URL
    assert _grid(at).value != before


def test_vae_can_be_ordered_by_kl(app_env):
    at = new_app(PAGE)
    at.selectbox(key=sidebar_ckpt(at).key).set_value("shipped/mnist5k-vae-z2").run()
    assert_clean(at)
    radio = at.radio(key="w_beta_by_True")
    assert radio.options == ["KL", "variance"]
    assert "KL (nats)" in _rows(at).columns
    radio.set_value("variance").run()
    assert_clean(at)
    assert "code variance" in _rows(at).columns


def _column(at):
    return next(img for img in at.image if img.captions and img.captions[0].startswith("dim "))


def test_offset_slider_falls_back_to_the_server_decode(app_env):
    """With ?decode=server (or before the browser answers) the offset slider is a server slider whose
    column follows it; the value is the page's (session key shared with the browser's slider)."""
    at = new_app(PAGE, query={"decode": "server"})
    assert_clean(at)
    assert at.toggle(key="w_server_decode").value
    before = _column(at)
    assert before.captions == [f"dim {d} +0.0σ" for d in _rows(at)["latent dimension"]]
    at.slider(key="w_beta_t").set_value(2.0).run()
    assert_clean(at)
    after = _column(at)
    assert after.captions[0].endswith("+2.0σ") and at.session_state["ll_t"] == 2.0
    assert after.value != before.value
    assert at.query_params["t"] == "2", "the offset is in the link"


def test_offset_from_a_shared_link_is_the_columns_offset(app_env):
    """A link with ?t= opens the traversal at that offset; an out-of-range one falls back to 0 and leaves
    the link."""
    at = new_app(PAGE, query={"decode": "server", "t": "-1.5"})
    assert_clean(at)
    assert at.slider(key="w_beta_t").value == -1.5
    assert all(c.endswith("-1.5σ") for c in _column(at).captions)
    bad = new_app(PAGE, query={"decode": "server", "t": "9"})
    assert_clean(bad)
    assert bad.slider(key="w_beta_t").value == 0.0 and "t" not in bad.query_params
