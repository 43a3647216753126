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
