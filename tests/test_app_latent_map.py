"""AppTest: the Latent map & holes page — map, selection gallery, hole metrics, UMAP in the background."""

import time

import pytest

from app_support import app_env, app_checkpoints, assert_clean, new_app  # noqa: F401

PAGE = "app_pages/latent_map.py"


def _wait_for(at, cond, seconds=90):
    deadline = time.time() + seconds
    while not cond() and time.time() < deadline:
        time.sleep(0.5)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
    assert cond()


def test_renders_with_defaults_and_hole_table(app_env):
    at = new_app(PAGE)
    assert_clean(at)
    assert at.title[0].value == "Latent map & holes"
    assert len(at.get("plotly_chart")) >= 3  # the map + at least two density views
    # The table grows a row per model as each one's hole metrics finish in the background.
    _wait_for(at, lambda: len(at.dataframe) >= 1 and len(at.dataframe[0].value) >= 2)
    table = at.dataframe[0].value
    assert "hole fraction (box)" in table.columns
    assert table["hole fraction (box)"].between(0, 1).all()


def test_selection_fills_gallery_and_feeds_interpolation(app_env):
    at = new_app(PAGE)
    at.session_state["ll_selection"] = [3, 1500, 4000]  # what the chart's selection callback stores
    at.run()
    assert_clean(at)
    gallery = next(img for img in at.image if img.captions and img.captions[0].startswith("#3 · "))
    assert len(gallery.value) == 3
    at.button(key="w_map_to_interp").click().run()
    assert at.session_state["ll_i0"] == 3 and at.session_state["ll_i1"] == 1500
    assert at.title[0].value == "Interpolation"  # switched to the interpolation page
    assert not at.exception


def test_clear_selection_and_stale_indices(app_env):
    at = new_app(PAGE)
    at.session_state["ll_selection"] = [3, 10**7]  # an index from another, larger dataset is ignored
    at.run()
    assert_clean(at)
    at.button(key="w_map_clear").click().run()
    assert_clean(at)
    assert at.session_state["ll_selection"] == []


def test_raw_axes_for_a_2d_checkpoint(app_env):
    at = new_app(PAGE, query={"ckpt": "shipped/mnist5k-aae-uniform-z2"})
    assert_clean(at)
    radio = at.radio(key="w_map_method_True")
    assert radio.value == "raw axes"
    radio.set_value("PCA").run()
    assert_clean(at)


@pytest.mark.slow

def test_umap_in_background_then_cached(app_env):
    """Pays UMAP's first-fit JIT (about a minute): marked slow."""
    at = new_app(PAGE)
    at.radio(key="w_map_method_False").set_value("UMAP").run()
    assert not at.exception

    _wait_for(at, lambda: any("UMAP" in str(c.proto) for c in at.get("plotly_chart")), seconds=300)
    assert_clean(at)


def test_hole_comparison_shows_the_committed_sampler_figures(app_env):
    """The samplers-against-the-holes figures of the compared shipped models, read from the committed records:
    each row's hole share and FD as core.sampler_table summarises them (mean [95 % interval])."""
    from core.sampler_table import format_table, read_records, summarise
    from ui.maps import SAMPLER_RECORDS

    at = new_app(PAGE)
    assert_clean(at)
    picked = [k.split("/", 1)[1] for k in at.multiselect(key="w_holes_models").value]
    shown = "\n".join(m.value for m in at.markdown)
    expected = format_table([r for r in summarise(read_records(SAMPLER_RECORDS)) if r["model"] in picked])
    rows = [line for line in expected.splitlines() if line.startswith("| mnist5k-")]
    assert rows and all(row in shown for row in rows), expected
    assert {r.split(" | ")[0][2:] for r in rows} <= set(picked)
