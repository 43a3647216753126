"""Encoder / decoder networks sized from the input shape.

MLP for vectors and small images (<= 16x16, e.g. 8x8 digits); a small conv net for 28x28 / 32x32.
The decoder returns *logits* for images (the model applies the sigmoid) and values for vectors.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from core.config import ModelConfig


def use_conv(cfg: ModelConfig) -> bool:
    shape = cfg.input_shape
    is_big_image = len(shape) == 3 and shape[1] >= 28 and shape[2] >= 28 and shape[1] == shape[2]
    if cfg.arch == "conv" and not is_big_image:
        raise ValueError(f"arch='conv' needs square images with sides >= 28, got input shape {shape}; use mlp")
    return cfg.arch == "conv" or (cfg.arch == "auto" and is_big_image)


def mlp(sizes: list[int], final_activation: nn.Module | None = None) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(0.2))
    if final_activation is not None:
        layers.append(final_activation)
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    def __init__(self, cfg: ModelConfig, out_dim: int):
        super().__init__()
        n_in = math.prod(cfg.input_shape)
        self.net = mlp([n_in, cfg.hidden, cfg.hidden // 2, out_dim])

    def forward(self, x):  # (B, *shape) -> (B, out_dim)
        return self.net(x.flatten(1))


class MLPDecoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.shape = cfg.input_shape
        self.net = mlp([cfg.latent_dim, cfg.hidden // 2, cfg.hidden, math.prod(cfg.input_shape)])

    def forward(self, z):  # (B, d) -> (B, *shape)
        return self.net(z).view(-1, *self.shape)


CONV_CHANNELS = (32, 32, 32)


def _conv_sizes(side: int) -> list[int]:
    """Spatial sides after each stride-2 conv: 28 -> 14 -> 7 -> 4, 32 -> 16 -> 8 -> 4."""
    sizes = [side]
    for _ in CONV_CHANNELS:
        sizes.append((sizes[-1] + 1) // 2)
    return sizes


class ConvEncoder(nn.Module):
    """Three stride-2 convs down to a 4x4 grid, then a small MLP head: ~0.1 M parameters for MNIST."""

    def __init__(self, cfg: ModelConfig, out_dim: int):
        super().__init__()
        c, h, w = cfg.input_shape
        layers, c_in = [], c
        for c_out, side in zip(CONV_CHANNELS, _conv_sizes(h)):
            k = 4 if side % 2 == 0 else 3  # k4/s2/p1 halves an even side, k3/s2/p1 maps odd n to (n + 1) / 2
            layers += [nn.Conv2d(c_in, c_out, k, 2, 1), nn.LeakyReLU(0.2)]
            c_in = c_out
        self.conv = nn.Sequential(*layers)  # (B, 32, 4, 4) for 28x28 / 32x32
        side_h, side_w = _conv_sizes(h)[-1], _conv_sizes(w)[-1]
        self.head = mlp([c_in * side_h * side_w, cfg.hidden // 2, out_dim])

    def forward(self, x):
        return self.head(self.conv(x).flatten(1))


class ConvDecoder(nn.Module):
    """Mirror of ConvEncoder: MLP up to the 4x4 grid, then transposed convs back to the input side."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c, h, w = cfg.input_shape
        sizes = _conv_sizes(h)
        self.grid = (CONV_CHANNELS[-1], sizes[-1], _conv_sizes(w)[-1])
        self.fc = nn.Sequential(mlp([cfg.latent_dim, cfg.hidden // 2, math.prod(self.grid)]), nn.LeakyReLU(0.2))
        layers = []
        outs = list(reversed(CONV_CHANNELS[:-1])) + [c]
        c_in = CONV_CHANNELS[-1]
        for i, (c_out, target) in enumerate(zip(outs, reversed(sizes[:-1]))):
            k = 4 if target % 2 == 0 else 3  # k4 doubles n, k3 maps n to 2n - 1
            layers.append(nn.ConvTranspose2d(c_in, c_out, k, 2, 1))
            if i < len(outs) - 1:
                layers.append(nn.LeakyReLU(0.2))
            c_in = c_out
        self.deconv = nn.Sequential(*layers)  # (B, C, H, W) logits

    def forward(self, z):
        return self.deconv(self.fc(z).view(-1, *self.grid))


def build_encoder(cfg: ModelConfig, out_dim: int) -> nn.Module:
    return ConvEncoder(cfg, out_dim) if use_conv(cfg) else MLPEncoder(cfg, out_dim)


def build_decoder(cfg: ModelConfig) -> nn.Module:
    return ConvDecoder(cfg) if use_conv(cfg) else MLPDecoder(cfg)


def is_image_shape(shape: tuple[int, ...]) -> bool:
    return len(shape) == 3


def output_transform(cfg: ModelConfig):
    """Images: decoder logits -> [0, 1] pixels. Vectors: identity (standardised features)."""
    return torch.sigmoid if is_image_shape(cfg.input_shape) else (lambda t: t)
