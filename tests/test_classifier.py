"""The few-shot classifier's speed changes change no bit: the channels-last max pool, pooling before the ReLUs,
and the chunked CPU evaluation give the values and gradients of the plain CNN (conv -> ReLU -> max pool)."""
import torch
from torch import nn

from core.models.classifier import EVAL_CHUNK, MaxPool2dCL, build_classifier


def _digits_like(n: int, seed: int) -> torch.Tensor:
    """(n, 1, 28, 28) images that are mostly exact zeros (like MNIST): many tied max-pool windows."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=g)
    return torch.where(x > 0.7, x, torch.zeros(()))


def _plain_cnn(model) -> nn.Module:
    """The same weights in the textbook order, with PyTorch's own NCHW max pool."""
    b = model.body
    return nn.Sequential(b[0], nn.ReLU(), nn.MaxPool2d(2), b[3], nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         model.proj[0], model.proj[1], model.head)


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


def test_pooling_before_relu_gives_the_plain_cnns_logits_and_gradients_bit_for_bit():
    """Over several optimiser steps (so a single differing gradient would show in the weights), with an input
    gradient too (saliency maps): pool -> ReLU is a reordering, not an approximation."""
    model = build_classifier((1, 28, 28), 10, seed=3)                  # dropout 0: deterministic forward
    plain = _plain_cnn(model)
    assert [type(m) for m in model.body[:3]] == [nn.Conv2d, MaxPool2dCL, nn.ReLU]
    opt = torch.optim.AdamW(model.parameters(), lr=2e-2)
    for step in range(4):
        x = _digits_like(16, step).requires_grad_(True)
        xp = x.detach().clone().requires_grad_(True)
        logits = model(x)
        ref = plain(xp)
        assert torch.equal(logits, ref)
        grads = torch.autograd.grad(logits.square().sum(), [x, *model.parameters()])
        ref_grads = torch.autograd.grad(ref.square().sum(), [xp, *model.parameters()])
        assert all(torch.equal(a, b) for a, b in zip(grads, ref_grads))
        for p, gr in zip(model.parameters(), grads[1:]):
            p.grad = gr
        opt.step()


def test_cpu_evaluation_equals_the_plain_cnn_in_one_pass():
    """Without gradients the CPU forward splits long inputs into EVAL_CHUNK rows and pools by strided quarters
    (speed-ups); the logits are those of the plain CNN over all rows at once up to float rounding (on some CPUs
    oneDNN's convolution kernel depends on the batch size; seen on CI) and every row is classified the same. A
    chunk that mixed rows up (wrong order, a dropped tail) fails by far more than the tolerance. Vectors (the
    MLP) are chunked too."""
    x = _digits_like(3 * EVAL_CHUNK + 7, 5)
    model = build_classifier((1, 28, 28), 10, seed=4, input_mean=torch.tensor([0.2]), input_std=torch.tensor([0.3]))
    model.eval()
    plain = _plain_cnn(model)
    with torch.no_grad():
        fast, ref = model(x), plain((x - model.input_mean) / model.input_std)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-6)
    assert torch.equal(fast.argmax(1), ref.argmax(1))
    v = torch.randn(3 * EVAL_CHUNK + 7, 12, generator=torch.Generator().manual_seed(6))
    mlp = build_classifier((12,), 10, seed=4).eval()
    one_pass = mlp(v).detach()                                         # gradients on: never chunked
    with torch.no_grad():
        chunked = mlp(v)
    torch.testing.assert_close(chunked, one_pass, rtol=1e-5, atol=1e-6)
    assert torch.equal(chunked.argmax(1), one_pass.argmax(1))


def test_odd_sizes_and_channels_last_inputs_pool_like_nn_maxpool():
    pool = MaxPool2dCL(2)
    for shape in ((3, 4, 7, 9), (3, 4, 6, 8)):
        x = torch.randn(shape, generator=torch.Generator().manual_seed(7))
        with torch.no_grad():
            assert torch.equal(pool(x), nn.MaxPool2d(2)(x))
            y = pool(x.contiguous(memory_format=torch.channels_last))
        assert torch.equal(y, nn.MaxPool2d(2)(x)) and y.is_contiguous(memory_format=torch.channels_last)


def test_channels_last_classifier_is_a_different_rounding_of_the_same_network():
    """channels_last=True: the same initial weights and (up to rounding) the same logits; reproducible run to
    run; its weights load into an NCHW classifier."""
    x = _digits_like(40, 8)
    nchw = build_classifier((1, 28, 28), 10, seed=5)
    cl = build_classifier((1, 28, 28), 10, seed=5, channels_last=True)
    assert cl.body[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert all(torch.equal(a, b) for a, b in zip(nchw.parameters(), cl.parameters()))
    with torch.no_grad():
        a, b = nchw(x), cl(x)
        assert torch.allclose(a, b, atol=1e-5) and torch.equal(b, build_classifier((1, 28, 28), 10, seed=5,
                                                                                   channels_last=True)(x))
    nchw.load_state_dict(cl.state_dict())
    with torch.no_grad():
        assert torch.allclose(nchw(x), b, atol=1e-5)
