"""core.viz: figures carry what the pages rely on; selections map back to dataset indices."""

from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from core.viz import (density_figure, image_grid, latent_scatter, loss_curve, results_figure, selection_to_indices,
                      spectrum_figure)


def _map(n=30, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 2)).astype(np.float32), rng.integers(3, size=n)


def test_latent_scatter_one_webgl_trace_per_class_with_dataset_indices():
    xy, y = _map()
    index = np.arange(100, 130)  # e.g. a subset of the dataset
    fig = latent_scatter(xy, y, ["zero", "one", "two"], index)
    assert all(isinstance(t, go.Scattergl) for t in fig.data)
    assert [t.name for t in fig.data] == ["zero", "one", "two"]
    for c, t in enumerate(fig.data):
        assert list(t.customdata) == list(index[y == c])
        assert np.allclose(t.x, xy[y == c, 0])
    assert sum(len(t.x) for t in fig.data) == 30
    json.loads(fig.to_json())  # serialisable for st.plotly_chart


def test_latent_scatter_accepts_tensors_and_rejects_mismatched_lengths():
    xy, y = _map()
    fig = latent_scatter(torch.from_numpy(xy), torch.from_numpy(y))
    assert list(fig.data[0].customdata) == list(np.flatnonzero(y == 0))
    with pytest.raises(ValueError):
        latent_scatter(xy, y[:-1])
    with pytest.raises(ValueError, match="index"):
        latent_scatter(xy, y, index=np.arange(3))


def _event(points):
    # Shaped like Streamlit 1.67's PlotlyState: {"selection": {"points", "point_indices", "box", "lasso"}}
    return {"selection": {"points": points, "point_indices": [p.get("point_index", 0) for p in points],
                          "box": [{"x": [0, 1], "y": [0, 1]}], "lasso": []}}


def test_selection_maps_per_trace_points_back_to_dataset_indices():
    xy, y = _map()
    index = np.arange(500, 530)
    fig = latent_scatter(xy, y, None, index)
    # a box over points 0 and 2 of trace 1 and point 1 of trace 0: point indices are per trace
    picks = [(1, 0), (1, 2), (0, 1)]
    points = [{"curve_number": c, "point_number": i, "point_index": i, "x": float(fig.data[c].x[i]),
               "y": float(fig.data[c].y[i]), "customdata": int(fig.data[c].customdata[i]), "legendgroup": ""}
              for c, i in picks]
    expected = [int(fig.data[c].customdata[i]) for c, i in picks]
    assert selection_to_indices(_event(points)) == expected
    assert selection_to_indices(_event(points)["selection"]) == expected  # event.selection also works
    assert all(500 <= i < 530 for i in expected)


def test_selection_handles_list_customdata_duplicates_and_empty_events():
    pts = [{"point_index": 0, "customdata": [7, "extra"]}, {"point_index": 1, "customdata": 7},
           {"point_index": 2}, {"point_index": 3, "customdata": 3.0}, {"point_index": 4, "customdata": []}]
    assert selection_to_indices(_event(pts)) == [7, 3]
    empty = {"selection": {"points": [], "point_indices": [], "box": [], "lasso": []}}
    assert selection_to_indices(empty) == [] and selection_to_indices(None) == [] and selection_to_indices({}) == []


def test_density_figure_counts_shares_of_points():
    xy, _ = _map(400)
    fig = density_figure(xy, bins=10)
    z = np.nan_to_num(np.array(fig.data[0].z, dtype=float))
    assert z.shape == (10, 10) and z.sum() == pytest.approx(1.0)
    z16 = np.random.default_rng(0).standard_normal((200, 16))
    assert np.nansum(np.array(density_figure(z16, bins=8).data[0].z, dtype=float)) == pytest.approx(1.0)
    fixed = density_figure(xy, bins=4, xy_range=((-1, 1), (-1, 1)))
    assert min(fixed.data[0].x) > -1 and max(fixed.data[0].x) < 1


def test_image_grid_gray_and_colour():
    x = torch.rand(5, 1, 8, 8)
    g = image_grid(x, ncol=3, pad=1)
    assert g.dtype == np.uint8 and g.shape == (2 * 9 - 1, 3 * 9 - 1)
    assert np.array_equal(g[:8, :8], (x[0, 0].numpy() * 255 + 0.5).astype(np.uint8))
    assert (g[9:, 18:] == 255).all()  # the empty sixth cell is padding
    rgb = image_grid(np.ones((2, 3, 4, 4)) * 2.0, ncol=8, pad=0)  # clipped to [0, 1]; ncol shrinks to N
    assert rgb.shape == (4, 8, 3) and (rgb == 255).all()
    assert image_grid(np.zeros((3, 8, 8)), ncol=3).shape == (8, 26)
    with pytest.raises(ValueError, match="image_grid"):
        image_grid(np.zeros((3, 64)))


def test_loss_curve_reads_fit_history_and_step_records():
    history = {"epoch": [1, 2, 3], "seconds": [0.1, 0.1, 0.1], "stopped": False, "device": "cpu",
               "recon": [0.3, 0.2, 0.1], "disc": [0.7, 0.69, 0.69]}
    fig = loss_curve(history)
    assert sorted(t.name for t in fig.data) == ["disc", "recon"]
    assert list(fig.data[0].x) == [1, 2, 3]
    steps = [{"epoch": 1, "step": 10, "total_steps": 20, "losses": {"loss": 1.0}},
             {"epoch": 1, "step": 20, "total_steps": 20, "losses": {"loss": 0.5}}]
    assert list(loss_curve(steps).data[0].y) == [1.0, 0.5]


def test_spectrum_figure_sorted_with_cumulative_share():
    fig = spectrum_figure(torch.tensor([1.0, 3.0, 0.0, 6.0]))
    assert list(fig.data[0].y) == [6.0, 3.0, 1.0, 0.0]
    assert list(fig.data[1].y) == pytest.approx([0.6, 0.9, 1.0, 1.0])
    assert len(spectrum_figure(np.arange(10.0), top_k=3).data[0].y) == 3


def test_results_figure_one_line_per_method_with_ci():
    rows = [{"method": m, "shots": s, "mean": 0.5 + 0.01 * s + d, "ci_low": 0.45 + 0.01 * s + d,
             "ci_high": 0.56 + 0.01 * s + d}
            for m, d in (("none", 0.0), ("lsi", 0.02)) for s in (10, 2, 5, 100)]
    fig = results_figure(rows, metric="weighted F1")
    assert [t.name for t in fig.data] == ["none", "lsi"]
    assert list(fig.data[0].x) == [2, 5, 10, 100]
    assert np.allclose(fig.data[1].error_y.array, 0.06) and np.allclose(fig.data[1].error_y.arrayminus, 0.05)
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.title.text == "weighted F1"
    pd = pytest.importorskip("pandas")
    assert len(results_figure(pd.DataFrame(rows)).data) == 2
