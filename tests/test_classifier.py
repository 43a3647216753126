"""The few-shot classifier's channels-last max pool is a speed change only: the same values and gradients."""
import torch
from torch import nn

from core.models.classifier import MaxPool2dCL, build_classifier


def test_channels_last_pool_matches_nchw_pool_bit_for_bit_including_ties():
    g = torch.Generator().manual_seed(0)
    x = torch.relu(torch.randn(8, 16, 28, 28, generator=g))           # post-ReLU: many all-zero windows
    x[:, :, :2, :2] = 0.5                                              # and windows of equal positive values
    grad = torch.randn(8, 16, 14, 14, generator=g)
    outs = []
    for pool in (nn.MaxPool2d(2), MaxPool2dCL(2)):
        xi = x.clone().requires_grad_(True)
        y = pool(xi)
        y.backward(grad)
        outs.append((y.detach(), xi.grad))
        assert y.is_contiguous()                                       # NCHW again for the next layer
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


def test_classifier_logits_equal_those_of_the_plain_cnn():
    model = build_classifier((1, 28, 28), 10, seed=3)
    plain = build_classifier((1, 28, 28), 10, seed=3)
    plain.body[2], plain.body[5] = nn.MaxPool2d(2), nn.MaxPool2d(2)
    x = torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    assert torch.equal(model(x), plain(x))
