"""core.placement: one shared device copy per checkpoint, a bounded number of them, and the CPU answer when
the GPU runs out of memory or its context breaks (failures injected, so this runs without a GPU)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from core.placement import Placement


def fake_gpu_mover(moved: list):
    """Stands in for .to('cuda'): a tagged CPU copy, recorded."""
    def move(model, device):
        c = copy.deepcopy(model)
        c.on_fake_gpu = True
        moved.append(c)
        return c
    return move


def model(seed=0):
    torch.manual_seed(seed)
    return nn.Linear(3, 2)


def test_one_shared_copy_per_key_and_a_bounded_lru():
    moved = []
    p = Placement(device="cuda", capacity=2, mover=fake_gpu_mover(moved))
    a, b, c = model(0), model(1), model(2)
    assert p.placed("a", a) is p.placed("a", a) and len(moved) == 1  # two sessions share one copy
    p.placed("b", b)
    p.placed("a", a)            # a is now the most recent
    p.placed("c", c)            # evicts b, the least recently used
    assert len(p) == 2
    p.placed("b", b)
    assert len(moved) == 4      # b was copied again; a was never copied twice


def test_out_of_memory_falls_back_to_the_cpu_model_for_that_key():
    p = Placement(device="cuda", mover=fake_gpu_mover([]))
    m = model()
    x = torch.ones(1, 3)

    def forward(net):
        if getattr(net, "on_fake_gpu", False):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return net(x)

    assert torch.equal(p.run("a", m, forward), m(x))   # the caller still gets its answer
    assert p.placed("a", m) is m and not p.broken       # that key now stays on the CPU
    assert getattr(p.placed("b", model(1)), "on_fake_gpu", False)  # others still go to the GPU


def test_a_cuda_error_sends_every_key_to_the_cpu():
    p = Placement(device="cuda", mover=fake_gpu_mover([]))
    m, other = model(), model(1)
    p.placed("other", other)

    def forward(net):
        if getattr(net, "on_fake_gpu", False):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return net(torch.ones(1, 3))

    assert p.run("a", m, forward).shape == (1, 2)
    assert p.broken and len(p) == 0 and p.placed("other", other) is other


def test_other_errors_are_the_callers():
    p = Placement(device="cuda", mover=fake_gpu_mover([]))
    with pytest.raises(ValueError, match="bad input"):
        p.run("a", model(), lambda net: (_ for _ in ()).throw(ValueError("bad input")))


def test_cpu_placement_returns_the_model_itself():
    m = model()
    assert Placement(device="cpu").placed("a", m) is m


def test_the_app_stand_in_answers_like_the_cpu_model_and_falls_back_on_oom(tiny_model, digits):
    """place(): what ui/resources.py keeps per checkpoint. CPU tensors in and out, computed on the placed copy;
    the model's other attributes are its own; an out-of-memory there gives the CPU model's answer."""
    from core.latent import decode_latents, encode_dataset
    from core.placement import PlacedModel, place, weights_key

    moved = []
    p = Placement(device="cuda", mover=fake_gpu_mover(moved))
    vae = tiny_model("vae")
    app = place(vae, placement=p)
    assert isinstance(app, PlacedModel) and place(vae, placement=p)._key == weights_key(vae)
    assert app.latent_dim == vae.latent_dim and hasattr(app, "encode_dist") and app.decoder is vae.decoder
    x = digits.x[:20]
    z = encode_dataset(app, x)                                    # core functions take the stand-in
    assert torch.equal(z, encode_dataset(vae, x)) and len(moved) == 1
    mu, logvar = app.encode_dist(x)                               # tuples come back whole, on the CPU
    assert torch.equal(mu, vae.encode_dist(x)[0]) and logvar.device.type == "cpu"
    assert torch.equal(place(copy.deepcopy(vae), placement=p).decode(z), vae.decode(z)) and len(moved) == 1

    def oom(*args):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    moved[0].decode = oom                                         # the shared copy now runs out of memory
    assert torch.equal(decode_latents(app, z), decode_latents(vae, z))
    assert p.placed(app._key, vae) is vae                         # that checkpoint stays on the CPU


def test_place_without_a_gpu_keeps_the_model_itself(tiny_model):
    from core.placement import place

    vae = tiny_model("vae")
    assert place(vae, placement=Placement(device="cpu")) is vae


def test_the_copies_are_bounded_by_bytes_too():
    from core.placement import model_bytes

    one = model_bytes(model())                                  # nn.Linear(3, 2): 8 floats, 32 bytes
    p = Placement(device="cuda", capacity=10, max_bytes=2 * one, mover=fake_gpu_mover([]))
    for key in "abc":
        p.placed(key, model())
    assert len(p) == 2 and p.placed_bytes() == 2 * one          # "a" went, least recently used
    big = nn.Linear(30, 20)
    assert p.placed("big", big) is big and len(p) == 2          # alone over the budget: served from the CPU
