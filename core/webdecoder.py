"""A model's decoder as a JSON-able spec that a browser can run (the in-browser slider decoder).

`decoder_spec(model)` traces `model.decoder` with torch.fx, so any decoder that is a straight chain of
supported layers exports, whatever module nesting it uses (MLPDecoder, ConvDecoder, a future one):

    {"format": "latent-lab-decoder/1", "latent_dim": d, "output_shape": [C, H, W] or [F],
     "output": "sigmoid" | "identity",            # what model.decode applies to the decoder's output
     "layers": [{"op": "linear", "in": 16, "out": 128, "weight": b64, "bias": b64},
                {"op": "leaky_relu", "slope": 0.2},
                {"op": "reshape", "shape": [32, 4, 4]},
                {"op": "conv_transpose2d", "in_shape": [32, 4, 4], "out_shape": [32, 7, 7], "kernel": [3, 3],
                 "stride": [2, 2], "padding": [1, 1], "dilation": [1, 1], "weight": b64, "bias": b64}, ...]}

Weights are float32, little-endian, base64, in torch's own layout (Linear (out, in); Conv2d (Cout, Cin, kh, kw);
ConvTranspose2d (Cin, Cout, kh, kw)); "bias" is null when a layer has none. Activations are per layer
("relu", "leaky_relu", "tanh", "sigmoid"). A layer the browser cannot run raises ValueError, and the page
then decodes on the server as before.
"""

from __future__ import annotations

import base64
import operator

import numpy as np
import torch
from torch import nn

from core.models.nets import is_image_shape

FORMAT = "latent-lab-decoder/1"


def encode_floats(t: torch.Tensor | np.ndarray | None) -> str | None:
    """A tensor -> base64 of its float32 little-endian bytes, C order (None stays None)."""
    if t is None:
        return None
    a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode("ascii")


def decode_floats(text: str | None, shape) -> np.ndarray | None:
    """The inverse of encode_floats (for tests and notebooks)."""
    if text is None:
        return None
    return np.frombuffer(base64.b64decode(text), dtype="<f4").reshape(shape).astype(np.float32)


def _pair(v) -> list[int]:
    return [int(v), int(v)] if isinstance(v, int) else [int(a) for a in v]


def _shape(node) -> list[int]:
    return [int(s) for s in node.meta["tensor_meta"].shape[1:]]  # without the batch dimension


def _conv_common(m: nn.Module, kind: str) -> dict:
    if m.groups != 1:
        raise ValueError(f"{kind} with groups={m.groups} cannot run in the browser (only groups=1)")
    if m.padding_mode != "zeros" or isinstance(m.padding, str):
        raise ValueError(f"{kind} with padding {m.padding!r} / mode {m.padding_mode!r} cannot run in the browser")
    return {"kernel": _pair(m.kernel_size), "stride": _pair(m.stride), "padding": _pair(m.padding),
            "dilation": _pair(m.dilation), "weight": encode_floats(m.weight), "bias": encode_floats(m.bias)}


def _module_layer(m: nn.Module, in_shape: list[int], out_shape: list[int]) -> dict | None:
    """One nn.Module -> its layer dict (None: nothing to do at inference, e.g. Dropout)."""
    if isinstance(m, nn.Linear):
        if len(in_shape) != 1:
            raise ValueError(f"Linear on a {len(in_shape) + 1}-d input cannot run in the browser (flatten first)")
        return {"op": "linear", "in": m.in_features, "out": m.out_features,
                "weight": encode_floats(m.weight), "bias": encode_floats(m.bias)}
    if isinstance(m, nn.Conv2d):
        return {"op": "conv2d", "in_shape": in_shape, "out_shape": out_shape, **_conv_common(m, "Conv2d")}
    if isinstance(m, nn.ConvTranspose2d):
        layer = {"op": "conv_transpose2d", "in_shape": in_shape, "out_shape": out_shape,
                 **_conv_common(m, "ConvTranspose2d")}
        layer["output_padding"] = _pair(m.output_padding)
        return layer
    if isinstance(m, nn.LeakyReLU):
        return {"op": "leaky_relu", "slope": float(m.negative_slope)}
    if isinstance(m, nn.ReLU):
        return {"op": "relu"}
    if isinstance(m, nn.Tanh):
        return {"op": "tanh"}
    if isinstance(m, nn.Sigmoid):
        return {"op": "sigmoid"}
    if isinstance(m, nn.Flatten | nn.Unflatten):
        return {"op": "reshape", "shape": out_shape}
    if isinstance(m, nn.Dropout | nn.Identity):
        return None
    raise ValueError(f"layer {type(m).__name__} cannot run in the browser yet; decode on the server")


_FUNCTIONS = {torch.relu: "relu", torch.tanh: "tanh", torch.sigmoid: "sigmoid",
              nn.functional.relu: "relu", nn.functional.tanh: "tanh", nn.functional.sigmoid: "sigmoid"}
_RESHAPES = {"view", "reshape", "flatten", "unflatten", "contiguous", torch.flatten, torch.reshape}


def _node_layer(node, modules: dict, in_shape: list[int]) -> dict | None:
    out_shape = _shape(node)
    if node.op == "call_module":
        return _module_layer(modules[node.target], in_shape, out_shape)
    if node.op == "call_function" and node.target in _FUNCTIONS:
        return {"op": _FUNCTIONS[node.target]}
    if node.op == "call_function" and node.target is nn.functional.leaky_relu:
        slope = node.kwargs.get("negative_slope", node.args[1] if len(node.args) > 1 else 0.01)
        return {"op": "leaky_relu", "slope": float(slope)}
    if node.target in _RESHAPES or (node.op == "call_method" and node.target in _RESHAPES):
        return None if out_shape == in_shape else {"op": "reshape", "shape": out_shape}
    if node.op == "call_function" and node.target is operator.getitem:
        raise ValueError("indexing inside the decoder cannot run in the browser; decode on the server")
    raise ValueError(f"decoder step {node.op} {getattr(node.target, '__name__', node.target)!r} cannot run in "
                     f"the browser yet; decode on the server")


def decoder_spec(model: nn.Module) -> dict:
    """model (with .decoder, .latent_dim, .config.input_shape) -> the browser spec described above.

    Raises ValueError when the decoder holds a layer (or a branch) the browser decoder does not know."""
    from torch.fx import symbolic_trace
    from torch.fx.passes.shape_prop import ShapeProp

    decoder, d = getattr(model, "decoder", None), getattr(model, "latent_dim", None)
    if decoder is None or d is None:
        raise ValueError(f"{type(model).__name__} has no .decoder / .latent_dim to export")
    try:
        gm = symbolic_trace(decoder)
    except Exception as e:  # noqa: BLE001 - data-dependent control flow and the like
        raise ValueError(f"the decoder cannot be traced for the browser ({e}); decode on the server") from None
    p = next(decoder.parameters(), None)
    ShapeProp(gm).propagate(torch.zeros(1, d, dtype=torch.float32, device=p.device if p is not None else "cpu"))
    modules = dict(gm.named_modules())
    layers, previous, shape = [], None, [int(d)]
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            previous = node
            continue
        if node.op == "output":
            if node.args[0] is not previous:
                raise ValueError("the decoder's output is not its last step; decode on the server")
            break
        tensor_args = [a for a in node.all_input_nodes]
        if tensor_args != [previous]:
            raise ValueError("the decoder is not a straight chain of layers (a skip or a branch); "
                             "decode on the server")
        layer = _node_layer(node, modules, shape)
        if layer is not None:
            layers.append(layer)
        previous, shape = node, _shape(node)
    cfg = getattr(model, "config", None)
    out_shape = list(getattr(cfg, "input_shape", shape))
    if out_shape != shape:
        raise ValueError(f"the decoder ends in shape {shape}, the model's data has shape {out_shape}")
    return {"format": FORMAT, "latent_dim": int(d), "output_shape": shape,
            "output": "sigmoid" if is_image_shape(tuple(shape)) else "identity", "layers": layers}


def vector_chart(x, feature_names=(), max_values: int = 200_000) -> dict:
    """How the browser paints a decoded feature vector: {"features": F names, "range": [lo, hi]}.

    x (N, F): the data set's (standardised) vectors. The axis is fixed by the data, not by each decoded vector,
    so a bar's height means the same while a slider moves: from the 0.5th to the 99.5th percentile of every value
    (of evenly spaced rows, at most `max_values` values: milliseconds on every rerun), always holding 0 (the features' mean), padded by a tenth. Features
    without a name (or a list of the wrong length) are called f0, f1, ..."""
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim != 2 or a.shape[1] < 1:
        raise ValueError(f"a vector chart needs (N, F) data, got shape {a.shape}")
    n, f = a.shape
    names = [str(s) for s in feature_names]
    if len(names) != f:
        names = [f"f{i}" for i in range(f)]
    max_rows = max(1, max_values // f)
    rows = a[:: max(1, -(-n // max_rows))] if n else a
    finite = rows[np.isfinite(rows)]
    lo, hi = (float(np.quantile(finite, 0.005)), float(np.quantile(finite, 0.995))) if finite.size else (-1.0, 1.0)
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo < 1e-6:
        lo, hi = lo - 1.0, hi + 1.0
    pad = 0.1 * (hi - lo)
    return {"features": names, "range": [round(lo - pad if lo < 0 else lo, 4), round(hi + pad if hi > 0 else hi, 4)]}


def spec_bytes(spec: dict) -> int:
    """Rough size of the spec on the wire (the base64 weights dominate)."""
    return sum(len(v) for layer in spec["layers"] for v in layer.values() if isinstance(v, str))
