"""AppTest: the Latent map's probe on table data (wine, 13 named features): the page offers the in-browser probe
with the bar chart the other pages draw for a decoded row (the features named, the data's fixed axis), says why
there is no decoded grid, and a pinned probe is listed and becomes an interpolation endpoint as for images.
The pointer and the painted bars themselves are tested in a real browser (tests/test_browser_probe_table.py)."""

import json
import os

import pytest

from app_support import app_env, app_checkpoints, assert_clean, new_app  # noqa: F401

PAGE = "app_pages/latent_map.py"
WINE = ("wine-probe-a", "wine-probe-b")  # two tiny z = 2 VAEs: the hole comparison needs two models


@pytest.fixture(scope="module")
def wine_root(tmp_path_factory):
    """A checkpoint folder with two tiny MLP VAEs (z = 2) on wine, trained here (well under a second each)."""
    from core.checkpoints import save_checkpoint
    from core.config import ModelConfig, TrainConfig
    from core.data import load_dataset
    from core.models import build_model
    from core.train import fit

    root = tmp_path_factory.mktemp("wine_ckpts")
    ds = load_dataset("wine")
    for seed, name in enumerate(WINE):
        model = build_model(ModelConfig(kind="vae", input_shape=ds.input_shape, latent_dim=2, hidden=32))
        tcfg = TrainConfig(epochs=3, batch_size=32, seed=seed)
        hist = fit(model, ds, tcfg)
        save_checkpoint(root / name, model, train_config=tcfg, dataset_id="wine", class_names=list(ds.class_names),
                        metrics={"recon_mse": 1.0}, history=hist)
    return root


@pytest.fixture()
def wine_env(app_env, wine_root, monkeypatch):
    monkeypatch.setenv("LATENT_LAB_CHECKPOINTS", os.pathsep.join([str(app_env), str(wine_root)]))
    return app_env


def _probe_data(at, wkey: str) -> dict:
    """What the page sent a probe element (its `data`, as the browser receives it)."""
    found = [c.proto for c in at.get("bidi_component") if c.proto.id.endswith(f"-{wkey}")]
    assert len(found) == 1, f"one {wkey} element"
    return json.loads(found[0].json)


def test_table_map_offers_the_probe_as_a_bar_chart_without_a_grid(wine_env):
    from core.data import load_dataset
    from core.webdecoder import vector_chart

    ds = load_dataset("wine")
    at = new_app(PAGE, query={"dataset": "wine", "ckpt": f"shipped/{WINE[0]}", "grid": "16"})
    assert_clean(at)
    shown = [i.value for i in at.info]
    assert not any("browser decoder" in text or "vector data" in text for text in shown), shown
    assert sum("decoded grid is for images" in c.value for c in at.caption) == 2, "the map's probe and the comparison"
    assert not at.get("radio") or all(r.key not in ("w_probe_grid", "w_holes_grid") for r in at.radio)
    main = _probe_data(at, "w_probe")
    assert main["shape"] == [13] and main["grid"] == 0, "a grid from the link is not drawn for a table"
    assert main["chart"] == json.loads(json.dumps(vector_chart(ds.x, ds.feature_names)))
    assert main["chart"]["features"] == list(ds.feature_names) and main["pinnable"]
    # the hole comparison: one pointer over both models' maps, each decoded row a chart on the same axis
    compared = _probe_data(at, "w_holes_probe")
    assert [p["title"] for p in compared["panels"]] == list(WINE)
    assert compared["grid"] == 0 and compared["chart"] == main["chart"]


def test_a_pin_on_a_table_map_is_listed_and_becomes_the_interpolation_endpoint(wine_env):
    at = new_app(PAGE, query={"dataset": "wine", "ckpt": f"shipped/{WINE[0]}", "pins": "raw:0.3,-0.2:0.3,-0.2"})
    assert_clean(at)
    table = next(df.value for df in at.dataframe if "nearest" in df.value.columns)
    assert len(table) == 1 and table["hole depth"].iloc[0] > 0
    assert _probe_data(at, "w_probe")["panels"][0]["pins"] == [{"xy": [0.3, -0.2]}], "the pin is drawn on the map"
    at.button(key="w_probe_to_za").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Interpolation"
    assert at.session_state["ll_za"] == (0.3, -0.2)
    assert any(c.value.startswith("A = a pinned code") for c in at.caption)
