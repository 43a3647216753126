"""Small classifiers for the few-shot protocol: a CNN for images, an MLP for vectors.

Both split into ``features(x) -> (B, D)`` and a linear ``head`` (weight (C, D), bias (C,)),
so ISDA can augment the features with the head's W and b.

Speed: the CNN max-pools *before* its ReLUs (relu(max(window)) == max(relu(window)), and the gradients agree
too, ties included), so the ReLUs see a quarter of the values, and the max pool runs in the layout that is
fastest for the pass (MaxPool2dCL) -- neither changes a bit (tests/test_classifier.py). On the CPU a forward pass
without gradients over many rows runs in chunks of EVAL_CHUNK rows, whose activations stay in the cache. A row's
logits do not depend on the rows beside it, but the convolution kernel oneDNN picks may depend on the batch size
on some CPUs (seen on CI: the last bits of a logit differ from one 1,007-row pass), so chunked and unchunked
evaluation agree to float rounding, not always bit for bit. Records stay bit-identical wherever the same kernels
run: every evaluation chunks the same way.

`channels_last=True` computes the convolutions in channels-last memory layout: on one CPU thread (AVX2) about
1.5x faster per cell, but the convolution kernels sum in another order, so every weight differs in its last bits
and a trained cell's scores differ from the NCHW run's like those of another seed's rounding (measured in
core/fewshot/recipe.py's Recipe notes). It is a recipe setting, so a run's records stay reproducible.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from core.models.init import SeededDropout, init_parameters

EVAL_CHUNK = 100   # rows per CPU forward pass without gradients: 10k MNIST test images 1.8 s -> 0.8 s (one thread)
CHANNELS_LAST = torch.channels_last


def _is_channels_last(x: Tensor) -> bool:
    return x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=CHANNELS_LAST)


class MaxPool2dCL(nn.MaxPool2d):
    """nn.MaxPool2d in the layout that is fastest for the pass, the same values and gradients bit for bit (a max
    is exact, and every path picks the first maximum of a window; tests/test_classifier.py checks it on CPU):
    - an input in channels-last layout (a channels-last model) is pooled as it is and stays channels-last;
    - with gradients (training): the channels-last kernel (its NCHW forward is ~3x slower on one CPU thread),
      back to NCHW for the next layer;
    - without gradients, 2x2 windows of even height and width: the maximum of the four strided quarters,
      ~2x faster again than the channels-last kernel and its two copies (evaluation of 10k test images)."""

    def forward(self, x: Tensor) -> Tensor:
        if _is_channels_last(x):
            return super().forward(x)
        if not (torch.is_grad_enabled() and x.requires_grad) and self._quarters_apply(x):
            a, b, c, d = x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 0::2], x[:, :, 1::2, 1::2]
            return torch.maximum(torch.maximum(a, b), torch.maximum(c, d))
        return super().forward(x.contiguous(memory_format=CHANNELS_LAST)).contiguous()

    def _quarters_apply(self, x: Tensor) -> bool:
        two = (2, (2, 2))
        return (x.ndim == 4 and self.kernel_size in two and self.stride in two and self.padding in (0, (0, 0))
                and self.dilation in (1, (1, 1)) and not self.ceil_mode and x.shape[2] % 2 == 0
                and x.shape[3] % 2 == 0)


class Classifier(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], n_classes: int, width: int = 16, feature_dim: int = 64,
                 dropout: float = 0.0, input_mean: Tensor | None = None, input_std: Tensor | None = None,
                 channels_last: bool = False):
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {n_classes}")
        self.input_shape, self.n_classes, self.feature_dim = tuple(input_shape), n_classes, feature_dim
        self.channels_last = bool(channels_last) and len(self.input_shape) == 3
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

    def features(self, x: Tensor, keep: Tensor | None = None) -> Tensor:
        """(B, D) features. keep: a dropout mask (B, D) drawn by the caller (SeededDropout.draw_mask), used instead
        of the layer's own draw (a trainer of stacked models, core.fewshot.batched)."""
        if self.input_mean is not None:
            x = (x - self.input_mean) / self.input_std
        if self.channels_last:
            x = x.contiguous(memory_format=CHANNELS_LAST)
        if keep is None:
            return self.proj(self.body(x))                      # (B, D)
        linear, relu, dropout = self.proj
        return dropout.apply_mask(relu(linear(self.body(x))), keep)

    def forward(self, x: Tensor) -> Tensor:
        if len(x) > EVAL_CHUNK and x.device.type == "cpu" and not torch.is_grad_enabled():
            return torch.cat([self.head(self.features(xc)) for xc in x.split(EVAL_CHUNK)])
        return self.head(self.features(x))                      # (B, C) logits


def build_classifier(input_shape: tuple[int, ...], n_classes: int, seed: int | torch.Generator = 0,
                     **kwargs) -> Classifier:
    """The few-shot classifier for data of this shape (CNN for images, MLP for vectors), its initial weights
    drawn from `seed` (explicit generator: the same in any thread or process). channels_last=True: the
    convolution weights are stored channels-last too (the layout the kernels then use)."""
    model = init_parameters(Classifier(input_shape, n_classes, **kwargs), seed)
    return model.to(memory_format=CHANNELS_LAST) if model.channels_last else model
