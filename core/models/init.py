"""Explicit weight initialisation: PyTorch's default init, drawn from a torch.Generator.

`nn.Linear` / `nn.Conv*` draw their initial weights from torch's global RNG when built, so two threads (two
app sessions, or a cell beside other work) disturb each other's draws and `torch.manual_seed` would reset the
RNG for everyone. `init_parameters` redraws every parameter from the caller's generator with the same
distributions as the modules' own `reset_parameters` (kaiming_uniform(a=sqrt(5)) weights, U(-1/sqrt(fan_in),
1/sqrt(fan_in)) biases), so the same seed gives the same weights in any thread, process or order.
"""
from __future__ import annotations

import math

import torch
from torch import nn

_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


@torch.no_grad()
def init_parameters(module: nn.Module, generator: torch.Generator | int) -> nn.Module:
    """Re-initialise every Linear / Conv / ConvTranspose of `module` in place from `generator` (or an int seed);
    norm layers get their usual ones / zeros. Returns the module. Raises for parameters it does not know,
    so a new layer type cannot silently keep a global-RNG init."""
    g = generator if isinstance(generator, torch.Generator) else torch.Generator().manual_seed(int(generator))
    covered = set()
    for m in module.modules():
        if isinstance(m, _WEIGHTED):
            w = torch.empty(m.weight.shape)
            nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=g)
            m.weight.copy_(w)
            covered.add(id(m.weight))
            if m.bias is not None:
                fan_in, _ = nn.init._calculate_fan_in_and_fan_out(m.weight)
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                m.bias.copy_(torch.empty(m.bias.shape).uniform_(-bound, bound, generator=g))
                covered.add(id(m.bias))
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)):
            for p, value in ((getattr(m, "weight", None), 1.0), (getattr(m, "bias", None), 0.0)):
                if p is not None:
                    p.fill_(value)
                    covered.add(id(p))
    missed = [n for n, p in module.named_parameters() if id(p) not in covered]
    if missed:
        raise TypeError(f"init_parameters does not know how to initialise {missed}; add the layer type here")
    return module


class SeededDropout(nn.Dropout):
    """Dropout whose masks come from `self.rng` (a torch.Generator set by the trainer), not the global RNG.
    `draw_mask` and `apply_mask` are the two halves of a training forward, for a trainer that draws the masks
    of several stacked models itself (core.fewshot.batched) with the same draws and the same arithmetic."""

    rng: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if self.rng is None:
            raise RuntimeError("SeededDropout in training mode needs .rng (a torch.Generator); use set_rng(model, g)")
        return self.apply_mask(x, self.draw_mask(x.shape, self.rng, x.device))

    def draw_mask(self, shape, generator: torch.Generator, device=None) -> torch.Tensor:
        """The keep mask (bool, `shape`) one training forward draws from `generator`."""
        return torch.rand(shape, generator=generator, device=device) >= self.p

    def apply_mask(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        return x * keep / (1 - self.p)


def set_rng(module: nn.Module, generator: torch.Generator | None) -> None:
    """Give every SeededDropout in `module` the generator (None to detach it after training)."""
    for m in module.modules():
        if isinstance(m, SeededDropout):
            m.rng = generator
