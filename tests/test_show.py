"""ui.show draws a table's decoded rows as bars over its named features on the browser decoder's fixed axis
(the server-decode fallback of the slider pages, the path strips, the Train page's reconstructions)."""
import numpy as np
import torch

from core.data import load_dataset
from core.webdecoder import vector_chart
from ui import show


def _data(chart_dict):
    return chart_dict["datasets"][chart_dict["data"]["name"]]


def test_table_rows_are_bars_over_named_features_on_the_data_axis():
    ds = load_dataset("wine")
    x = ds.x[:3].numpy()
    style = show.style(ds)
    assert style["is_image"] is False and style["chart"] == vector_chart(ds.x, ds.feature_names)
    spec = show.vector_bars(x, ["a", "b", "c"], style["chart"]).to_dict()
    assert spec["spec"]["mark"]["type"] == "bar"
    lo, hi = style["chart"]["range"]
    assert spec["spec"]["encoding"]["y"]["scale"]["domain"] == [lo, hi]     # one axis for every sample and frame
    assert spec["spec"]["encoding"]["x"]["sort"] == list(ds.feature_names)  # the data set's feature order
    assert spec["facet"]["sort"] == ["a", "b", "c"]                          # samples in the order given
    rows = _data(spec)
    assert [r["feature"] for r in rows[: x.shape[1]]] == list(ds.feature_names)
    np.testing.assert_allclose([r["value"] for r in rows], np.clip(x.ravel(), lo, hi))
    assert [r["sample"] for r in rows[:: x.shape[1]]] == ["a", "b", "c"]


def test_without_a_chart_the_rows_own_range_and_generic_names():
    x = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    spec = show.vector_bars(x).to_dict()
    assert spec["spec"]["encoding"]["y"]["scale"]["domain"] == [-2.0, 3.0]
    assert [r["feature"] for r in _data(spec)] == ["f0", "f1", "f0", "f1"]
    assert [r["sample"] for r in _data(spec)] == ["0", "0", "1", "1"]


def test_images_stay_images():
    ds = load_dataset("digits")
    assert show.style(ds) == {"is_image": True}
