"""AppTest: the Latent map & holes page — map, selection gallery, hole metrics, UMAP in the background."""


import pytest

from app_support import app_env, app_checkpoints, assert_clean, new_app, rerun_until  # noqa: F401

PAGE = "app_pages/latent_map.py"


def test_renders_with_defaults_and_hole_table(app_env):
    at = new_app(PAGE)
    assert_clean(at)
    assert at.title[0].value == "Latent map & holes"
    assert len(at.get("plotly_chart")) >= 3  # the map + at least two density views
    # The table grows a row per model as each one's hole metrics finish in the background.
    rerun_until(at, lambda: len(at.dataframe) >= 1 and len(at.dataframe[0].value) >= 2, 90)
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

    rerun_until(at, lambda: any("UMAP" in str(c.proto) for c in at.get("plotly_chart")), seconds=300)
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


# ----------------------------------------------------------------------------- probes (issue 14)
# The pointer, the in-browser decode and the click are tested in a real browser (tests/test_browser_probe.py);
# here: what the server does with pinned probes and the grid toggle (state, URL, the way to Interpolation).

Z2 = "shipped/mnist5k-aae-uniform-z2"
PINS = "raw:0.1,-0.2:0.1,-0.2;raw:0.5,0.5:0.5,0.5"


def test_pins_and_grid_from_the_url_are_listed_and_kept(app_env):
    at = new_app(PAGE, query={"ckpt": Z2, "pins": PINS, "grid": "16"})
    assert_clean(at)
    assert at.session_state["ll_grid"] == 16
    assert at.radio(key="w_probe_grid").value == "16"
    assert [p["z"] for p in at.session_state["ll_pins"]] == [(0.1, -0.2), (0.5, 0.5)]
    table = next(df.value for df in at.dataframe if "nearest" in df.value.columns)
    assert len(table) == 2
    # each pin's nearest data point and distance: the training code nearest to its z
    import numpy as np

    from core.checkpoints import load_checkpoint
    from core.data import load_dataset
    from core.latent import encode_dataset
    from ui.resources import checkpoint

    z = encode_dataset(load_checkpoint(checkpoint(Z2).path, device="cpu").model, load_dataset("mnist5k").x).numpy()
    for (_, row), pin in zip(table.iterrows(), [(0.1, -0.2), (0.5, 0.5)]):
        dist = np.sqrt(((z - np.asarray(pin)) ** 2).sum(1))
        assert row["nearest"].startswith(f"#{int(dist.argmin())} (")
        assert abs(row["distance"] - dist.min()) < 1e-4
    assert at.query_params["pins"] == PINS and at.query_params["grid"] == "16"
    at.radio(key="w_probe_grid").set_value("off").run()
    assert_clean(at)
    assert "grid" not in at.query_params and at.session_state["ll_grid"] is None


def test_pinned_code_becomes_the_interpolation_endpoint(app_env):
    at = new_app(PAGE, query={"ckpt": Z2, "pins": PINS})
    at.selectbox(key="w_probe_pin").set_value(2).run()
    at.button(key="w_probe_to_za").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Interpolation"
    assert at.session_state["ll_za"] == (0.5, 0.5)
    assert at.query_params["za"] == "0.5,0.5"
    assert any(c.value.startswith("A = a pinned code") for c in at.caption)


def test_remove_pin(app_env):
    at = new_app(PAGE, query={"ckpt": Z2, "pins": PINS})
    at.button(key="w_probe_remove").click().run()
    assert_clean(at)
    assert [p["z"] for p in at.session_state["ll_pins"]] == [(0.5, 0.5)]


@pytest.mark.parametrize("pins,grid", [("banana", "7"), ("raw:1,2:nan,1", "-1"), ("zzz:1,2:1,2", "16.5"),
                                       (";".join(["raw:0,0:0,0"] * 9), "1e9"), ("raw:1:1,2", "")])
def test_bad_probe_parameters_are_ignored(app_env, pins, grid):
    at = new_app(PAGE, query={"ckpt": Z2, "pins": pins, "grid": grid})
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["ll_pins"] is None and not at.session_state["ll_grid"]


def test_pins_of_another_latent_size_are_dropped_with_a_message(app_env):
    at = new_app(PAGE, query={"ckpt": "shipped/mnist5k-aae-uniform-z16", "pins": PINS})
    assert not at.exception
    assert any("Ignored 2 pinned probe(s)" in w.value for w in at.warning)
    assert at.session_state["ll_pins"] is None
