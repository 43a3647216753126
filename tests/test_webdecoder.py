"""The browser decoder's spec: a plain-numpy reading of it (what the JS does, loop for loop in spirit)
reproduces torch's model.decode on every shipped checkpoint and on MLP / conv models of every kind."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from app_support import shipped_root
from core.webdecoder import FORMAT, decode_floats, decoder_spec, encode_floats


# ----------------------------------------------------------------------------- a numpy reference of the spec

def _conv2d(x, w, b, stride, pad, dil):  # x (Cin, H, W), w (Cout, Cin, kh, kw)
    cin, h, wd = x.shape
    cout, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    oh = (h + 2 * pad[0] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + 2 * pad[1] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((cout, oh, ow), np.float64)
    for ky in range(kh):
        for kx in range(kw):
            patch = xp[:, ky * dil[0]: ky * dil[0] + stride[0] * (oh - 1) + 1: stride[0],
                       kx * dil[1]: kx * dil[1] + stride[1] * (ow - 1) + 1: stride[1]]  # (Cin, oh, ow)
            out += np.einsum("oc,chw->ohw", w[:, :, ky, kx], patch)
    return out + (b[:, None, None] if b is not None else 0)


def _conv_transpose2d(x, w, b, stride, pad, dil, out_pad, out_shape):  # w (Cin, Cout, kh, kw)
    cin, h, wd = x.shape
    _, cout, kh, kw = w.shape
    full_h = (h - 1) * stride[0] + dil[0] * (kh - 1) + 1 + out_pad[0]
    full_w = (wd - 1) * stride[1] + dil[1] * (kw - 1) + 1 + out_pad[1]
    full = np.zeros((cout, full_h, full_w), np.float64)
    for ky in range(kh):
        for kx in range(kw):
            contrib = np.einsum("co,chw->ohw", w[:, :, ky, kx], x)  # (Cout, H, W)
            full[:, ky * dil[0]: ky * dil[0] + stride[0] * (h - 1) + 1: stride[0],
                 kx * dil[1]: kx * dil[1] + stride[1] * (wd - 1) + 1: stride[1]] += contrib
    out = full[:, pad[0]: pad[0] + out_shape[1], pad[1]: pad[1] + out_shape[2]]
    assert out.shape == tuple(out_shape)
    return out + (b[:, None, None] if b is not None else 0)


def reference_decode(spec: dict, z: np.ndarray) -> np.ndarray:
    """z (d,) -> x (*output_shape), reading only the JSON spec."""
    x = np.asarray(z, np.float64)
    for L in spec["layers"]:
        op = L["op"]
        if op == "linear":
            w = decode_floats(L["weight"], (L["out"], L["in"]))
            b = decode_floats(L["bias"], (L["out"],))
            x = w @ x + (b if b is not None else 0)
        elif op in ("conv2d", "conv_transpose2d"):
            cin, cout = L["in_shape"][0], L["out_shape"][0]
            wshape = (cout, cin, *L["kernel"]) if op == "conv2d" else (cin, cout, *L["kernel"])
            w = decode_floats(L["weight"], wshape)
            b = decode_floats(L["bias"], (cout,))
            x = x.reshape(L["in_shape"])
            x = (_conv2d(x, w, b, L["stride"], L["padding"], L["dilation"]) if op == "conv2d" else
                 _conv_transpose2d(x, w, b, L["stride"], L["padding"], L["dilation"], L["output_padding"],
                                   L["out_shape"]))
        elif op == "reshape":
            x = x.reshape(L["shape"])
        elif op == "relu":
            x = np.maximum(x, 0)
        elif op == "leaky_relu":
            x = np.where(x >= 0, x, L["slope"] * x)
        elif op == "tanh":
            x = np.tanh(x)
        elif op == "sigmoid":
            x = 1 / (1 + np.exp(-x))
        else:
            raise AssertionError(f"unknown op {op}")
    x = x.reshape(spec["output_shape"])
    return 1 / (1 + np.exp(-x)) if spec["output"] == "sigmoid" else x


def _check_matches_torch(model, n: int = 4, tol: float = 1e-4) -> dict:
    spec = json.loads(json.dumps(decoder_spec(model)))  # really JSON-able
    assert spec["format"] == FORMAT and spec["latent_dim"] == model.latent_dim
    z = torch.randn(n, model.latent_dim, generator=torch.Generator().manual_seed(1)) * 1.5
    with torch.no_grad():
        want = model.decode(z).numpy()
    for i in range(n):
        got = reference_decode(spec, z[i].numpy())
        assert got.shape == want[i].shape
        np.testing.assert_allclose(got, want[i], atol=tol, rtol=0)
    return spec


# ----------------------------------------------------------------------------- tests

def _shipped():
    root = shipped_root()
    return sorted(p for p in root.iterdir() if (p / "model.safetensors").is_file()) if root else []


@pytest.mark.parametrize("path", _shipped(), ids=lambda p: p.name)
def test_spec_reproduces_every_shipped_checkpoint(path):
    from core.checkpoints import load_checkpoint

    model = load_checkpoint(path, device="cpu").model.eval()
    spec = _check_matches_torch(model)
    ops = [layer["op"] for layer in spec["layers"]]
    assert "conv_transpose2d" in ops and spec["output"] == "sigmoid"  # the shipped mnist5k ones are conv


@pytest.mark.parametrize("kind", ["vae", "ae", "aae"])
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)], ids=["mlp", "conv", "conv-rgb"])
def test_spec_reproduces_each_kind_and_arch(tiny_model, kind, shape):
    model = tiny_model(kind, input_shape=shape, latent_dim=3)
    spec = _check_matches_torch(model)
    ops = [layer["op"] for layer in spec["layers"]]
    assert ("conv_transpose2d" in ops) == (shape[1] >= 28)
    assert spec["output_shape"] == list(shape)


def test_vector_data_has_no_sigmoid(tiny_model):
    """Tabular models decode to standardised features: no output squashing."""
    spec = _check_matches_torch(tiny_model("vae", input_shape=(12,), latent_dim=2))
    assert spec["output"] == "identity" and spec["output_shape"] == [12]


def test_weights_are_little_endian_float32_base64():
    w = torch.arange(6, dtype=torch.float32).reshape(2, 3) / 7
    text = encode_floats(w)
    import base64

    assert base64.b64decode(text) == np.asarray(w.numpy(), "<f4").tobytes()
    np.testing.assert_array_equal(decode_floats(text, (2, 3)), w.numpy())


class _Wrapped(nn.Module):
    def __init__(self, decoder: nn.Module, d: int):
        super().__init__()
        self.decoder, self.latent_dim = decoder, d


def test_other_layers_and_conv2d_export():
    """Layers the shipped nets do not use yet (Conv2d, ReLU, Tanh, Unflatten) still export and match."""
    torch.manual_seed(0)
    dec = nn.Sequential(nn.Linear(2, 2 * 5 * 5), nn.ReLU(), nn.Unflatten(1, (2, 5, 5)),
                        nn.Conv2d(2, 3, 3, stride=1, padding=1), nn.Tanh(),
                        nn.ConvTranspose2d(3, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid())
    model = _Wrapped(dec.eval(), 2)
    spec = decoder_spec(model)
    assert [layer["op"] for layer in spec["layers"]] == [
        "linear", "relu", "reshape", "conv2d", "tanh", "conv_transpose2d", "sigmoid"]
    z = torch.randn(3, 2)
    with torch.no_grad():
        want = dec(z).numpy()
    for i in range(3):
        np.testing.assert_allclose(reference_decode({**spec, "output": "identity"}, z[i].numpy()), want[i],
                                   atol=1e-5)


@pytest.mark.parametrize("layer,needle", [
    (nn.BatchNorm1d(4), "BatchNorm1d"),
    (nn.Conv1d(1, 1, 1), "Conv1d"),
])
def test_unknown_layer_is_a_clear_value_error(layer, needle):
    dec = nn.Sequential(nn.Linear(2, 4), layer) if needle != "Conv1d" else nn.Sequential(
        nn.Linear(2, 4), nn.Unflatten(1, (1, 4)), layer)
    with pytest.raises(ValueError, match=f"{needle} cannot run in the browser"):
        decoder_spec(_Wrapped(dec.eval(), 2))


def test_branching_decoder_is_a_clear_value_error():
    class Skip(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(2, 2)

        def forward(self, z):
            return self.a(z) + z

    with pytest.raises(ValueError, match="straight chain"):
        decoder_spec(_Wrapped(Skip(), 2))


# ----------------------------------------------------------------------------- vector (table) models

def test_a_table_models_spec_is_a_one_dimensional_chain_torch_agrees_with(tiny_model):
    """A vector model's spec: output_shape (F,), only linear layers and activations (nothing to reshape into an
    image), no sigmoid, and its reading equals torch's decode: what the browser paints as bars."""
    model = tiny_model("vae", input_shape=(13,), latent_dim=2)
    spec = _check_matches_torch(model, n=6)
    assert spec["output_shape"] == [13] and spec["output"] == "identity"
    assert {layer["op"] for layer in spec["layers"]} <= {"linear", "leaky_relu", "relu", "tanh"}
    assert spec["layers"][-1]["op"] == "linear" and spec["layers"][-1]["out"] == 13


def test_vector_chart_names_the_features_and_fixes_the_axis_by_the_data():
    from core.data import load_dataset
    from core.webdecoder import vector_chart

    ds = load_dataset("wine")
    chart = json.loads(json.dumps(vector_chart(ds.x, ds.feature_names)))  # JSON-able, sent as is
    assert chart["features"][0] == "alcohol" and len(chart["features"]) == 13 == ds.x.shape[1]
    lo, hi = chart["range"]
    x = ds.x.numpy()
    assert lo < 0 < hi  # standardised features: bars grow from the mean, up and down
    inside = ((x >= lo) & (x <= hi)).mean()
    assert inside >= 0.99, f"the axis must hold (almost) every value of the data, holds {inside:.3f}"
    assert hi - lo <= 1.3 * (np.quantile(x, 0.995) - np.quantile(x, 0.005)), "an outlier must not flatten the bars"


def test_vector_chart_without_names_or_spread():
    from core.webdecoder import vector_chart

    chart = vector_chart(np.zeros((5, 3), np.float32), ["only one name"])
    assert chart["features"] == ["f0", "f1", "f2"]
    lo, hi = chart["range"]
    assert lo < 0 < hi
    big = np.random.default_rng(0).normal(size=(50_000, 4))
    big[7, 2] = 1e6  # one outlier among 200k values
    assert vector_chart(big)["range"][1] < 10
    with pytest.raises(ValueError, match=r"\(N, F\)"):
        vector_chart(np.zeros((4, 1, 2, 2)))


def test_chart_width_grows_with_the_features():
    from ui.components.latent_decoder import chart_width

    assert chart_width(13, 168) == 212 and chart_width(2, 168) == 168
    assert chart_width(30, 72) == 416 and chart_width(500, 72) == 560
