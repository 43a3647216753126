"""Small classifiers for the few-shot protocol: a CNN for images, an MLP for vectors.

Both split into ``features(x) -> (B, D)`` and a linear ``head`` (weight (C, D), bias (C,)),
so ISDA can augment the features with the head's W and b.

Speed: the CNN max-pools *before* its ReLUs (relu(max(window)) == max(relu(window)), and the gradients agree
too, ties included), so the ReLUs see a quarter of the values -- this changes no bit (tests/test_classifier.py).
On the CPU a forward pass without gradients over many rows runs in chunks of EVAL_CHUNK rows, whose activations
stay in the cache. A row's logits do not depend on the rows beside it, but the convolution kernel oneDNN picks
may depend on the batch size on some CPUs (seen on CI: the last bits of a logit differ from one 1,007-row pass),
so chunked and unchunked evaluation agree to float rounding, not always bit for bit. Records stay bit-identical
wherever the same kernels run: every evaluation chunks the same way.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from core.models.init import SeededDropout, init_parameters


EVAL_CHUNK = 100   # rows per CPU forward pass without gradients: 10k MNIST test images 1.8 s -> 0.8 s (one thread)


class MaxPool2dCL(nn.MaxPool2d):
    """nn.MaxPool2d computed in channels-last memory layout: on one CPU thread the NCHW kernel is the slowest
    layer of the few-shot CNN (more than both convolutions), the channels-last kernel runs its forward about 3x
    faster. The same values and the same gradients, bit for bit (a max is exact and both kernels pick the first
    maximum of a window; tests/test_classifier.py checks it on CPU), so records do not change. The output is
    NCHW-contiguous, whatever the input's layout."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.contiguous(memory_format=torch.channels_last)).contiguous()


class Classifier(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], n_classes: int, width: int = 16, feature_dim: int = 64,
                 dropout: float = 0.0, input_mean: Tensor | None = None, input_std: Tensor | None = None):
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {n_classes}")
        self.input_shape, self.n_classes, self.feature_dim = tuple(input_shape), n_classes, feature_dim
        if len(self.input_shape) == 3:
            c, h, w = self.input_shape
            pool = 2 if min(h, w) >= 4 else 1
            # conv -> pool -> ReLU: the same values and gradients as conv -> ReLU -> pool (module docstring);
            # the parameters keep their names (body.0, body.3), so saved weights load either way
            self.body = nn.Sequential(
                nn.Conv2d(c, width, 3, padding=1), MaxPool2dCL(pool), nn.ReLU(),
                nn.Conv2d(width, 2 * width, 3, padding=1), MaxPool2dCL(pool), nn.ReLU(),
                nn.Flatten(),
            )
            flat = 2 * width * (h // pool // pool) * (w // pool // pool)
        elif len(self.input_shape) == 1:
            self.body = nn.Sequential(nn.Linear(self.input_shape[0], 4 * width), nn.ReLU())
            flat = 4 * width
        else:
            raise ValueError(f"input_shape must be (C, H, W) or (F,), got {self.input_shape}")
        self.proj = nn.Sequential(nn.Linear(flat, feature_dim), nn.ReLU(), SeededDropout(dropout))
        self.head = nn.Linear(feature_dim, n_classes)
        # Input standardisation inside the model, so every caller (test set, TTA, saliency) scales alike.
        # (C,) per channel for images, (F,) per feature for vectors; None: inputs as they are.
        shape = (1, -1, 1, 1) if len(self.input_shape) == 3 else (1, -1)
        self.register_buffer("input_mean", None if input_mean is None else input_mean.detach().float().reshape(shape))
        self.register_buffer("input_std", None if input_std is None else input_std.detach().float().reshape(shape))

    def features(self, x: Tensor) -> Tensor:
        if self.input_mean is not None:
            x = (x - self.input_mean) / self.input_std
        return self.proj(self.body(x))                          # (B, D)

    def forward(self, x: Tensor) -> Tensor:
        if len(x) > EVAL_CHUNK and x.device.type == "cpu" and not torch.is_grad_enabled():
            return torch.cat([self.head(self.features(xc)) for xc in x.split(EVAL_CHUNK)])
        return self.head(self.features(x))                      # (B, C) logits


def build_classifier(input_shape: tuple[int, ...], n_classes: int, seed: int | torch.Generator = 0,
                     **kwargs) -> Classifier:
    """The few-shot classifier for data of this shape (CNN for images, MLP for vectors), its initial weights
    drawn from `seed` (explicit generator: the same in any thread or process)."""
    return init_parameters(Classifier(input_shape, n_classes, **kwargs), seed)
