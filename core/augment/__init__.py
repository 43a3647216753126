"""Augmentation registry: every method behind ``augment(x, y_soft, rng, **params) -> (x', y_soft')``.

Stages say when the runner applies a method:
  "batch"  — to each training mini-batch (classic, cutout, mixup, cutmix, saliencymix, label-smoothing);
  "expand" — once, before training: adds n_per generated examples per class from a generator
             trained on the unlabelled pool (lsi, vae-*, multi-vae); x' = labelled + generated;
  "loss"   — a flag the trainer reads (isda); the function is the identity;
  "eval"   — a flag for test time (tta); the function is the identity.
Combinations are written "a+b" (e.g. "classic+lsi"): expanders run first, then batch transforms
in the order given. ``needs`` names the generator a method wants (the runner trains it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from core.augment import generative, pixel, saliency_mix

STAGES = ("none", "batch", "expand", "loss", "eval")


@dataclass(frozen=True)
class Augmentation:
    name: str
    fn: Callable[..., tuple[Tensor, Tensor]]
    stage: str
    needs: str | None = None            # "vae" | "aae-uniform" | "multi-vae" | "vae+gc" | None
    defaults: dict = field(default_factory=dict)
    description: str = ""

    def __call__(self, x: Tensor, y_soft: Tensor, rng: torch.Generator, **params) -> tuple[Tensor, Tensor]:
        return self.fn(x, y_soft, rng, **{**self.defaults, **params})


AUGMENTATIONS: dict[str, Augmentation] = {}


def register_augmentation(name: str, fn: Callable, stage: str, needs: str | None = None,
                          description: str = "", **defaults) -> Augmentation:
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    aug = Augmentation(name, fn, stage, needs, dict(defaults), description)
    AUGMENTATIONS[name] = aug
    return aug


def list_augmentations() -> list[str]:
    return list(AUGMENTATIONS)


def _identity(x, y, rng, **params):
    return x, y


register_augmentation("none", _identity, "none", description="no augmentation (baseline)")
register_augmentation("classic", pixel.classic, "batch",
                      description="small rotations, translations, zoom, Gaussian noise (vectors: noise only)")
register_augmentation("cutout", pixel.cutout, "batch", description="random erasing of a box (25% of the image)")
register_augmentation("mixup", pixel.mixup, "batch", description="pixel mixup, lam ~ Beta(alpha, alpha), soft labels")
register_augmentation("cutmix", pixel.cutmix, "batch", description="paste a box of another image, labels by area")
register_augmentation("saliencymix", saliency_mix.saliency_mix, "batch",
                      description="CutMix with the box centred on the source's most salient point, labels by area")
register_augmentation("label-smoothing", pixel.label_smoothing, "batch", description="(1 - eps) y + eps / K")
register_augmentation("isda", _identity, "loss", lambda_0=0.5, diagonal=False,
                      description="implicit semantic augmentation: ISDA loss on the classifier's features")
register_augmentation("tta", _identity, "eval", n_views=5,
                      description="test-time augmentation: average predictions over shifted views")
register_augmentation("lsi", generative.lsi, "expand", needs="aae-uniform", n_per=10,
                      description="AAE-uniform inter-class latent interpolation, two-hot labels at lam = 0.5")
register_augmentation("vae-noise", generative.vae_noise, "expand", needs="vae", n_per=10,
                      description="z = mu(x) + N(0, sigma^2)")
register_augmentation("vae-interp", generative.vae_interp, "expand", needs="vae", n_per=10,
                      description="towards a same-class k-nearest neighbour in latent space")
register_augmentation("vae-extrap", generative.vae_extrap, "expand", needs="vae", n_per=10,
                      description="away from a same-class k-nearest neighbour in latent space")
register_augmentation("vae-interp-noise", generative.vae_interp, "expand", needs="vae", n_per=10, noise=0.3,
                      description="kNN interpolation plus latent noise")
register_augmentation("vae-extrap-noise", generative.vae_extrap, "expand", needs="vae", n_per=10, noise=0.3,
                      description="kNN extrapolation plus latent noise")
register_augmentation("vae-prior-gc", generative.vae_prior_gc, "expand", needs="vae+gc", n_per=10,
                      description="prior samples labelled by a generative classifier; unsure ones dropped")
register_augmentation("multi-vae", generative.multi_vae, "expand", needs="multi-vae", n_per=10,
                      description="one VAE per class trained on its shots, prior samples")


def parse_method(method: str) -> list[Augmentation]:
    """'classic+lsi' -> [Augmentation, ...]; 'none' -> [] . Unknown names raise ValueError."""
    names = [n.strip() for n in method.split("+") if n.strip()]
    if not names:
        raise ValueError("empty method name; use 'none' for the baseline")
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown augmentation(s) {unknown}; choose from {list_augmentations()} "
                         f"(combine with '+', e.g. classic+lsi)")
    return [AUGMENTATIONS[n] for n in names if n != "none"]


def method_needs(method: str) -> set[str]:
    """The generators a (combined) method needs."""
    return {a.needs for a in parse_method(method) if a.needs}


def augment(method: str, x: Tensor, y_soft: Tensor, rng: torch.Generator, stage: str | None = None,
            params: dict | None = None, context: dict | None = None) -> tuple[Tensor, Tensor]:
    """Apply a (combined) method's parts of one stage (or all). params: {name: {param: value}};
    context: generator objects passed to every expander (model=..., models=..., gc=...)."""
    params, context = params or {}, context or {}
    for aug in parse_method(method):
        if stage is not None and aug.stage != stage:
            continue
        extra = dict(params.get(aug.name, {}))
        if aug.stage == "expand":
            extra = {**_context_for(aug, context), **extra}
        x, y_soft = aug(x, y_soft, rng, **extra)
    return x, y_soft


def _context_for(aug: Augmentation, context: dict) -> dict:
    needs = aug.needs or ""
    if needs == "multi-vae":
        return {"models": context.get("multi-vae")}
    if needs == "vae+gc":
        return {"model": context.get("vae"), "gc": context.get("gc")}
    return {"model": context.get(needs)}


@torch.no_grad()
def tta_predict(predict: Callable[[Tensor], Tensor], x: Tensor, n_views: int = 5) -> Tensor:
    """Average of softmax(predict(view)) over deterministic views of x (seed 003, test-time augmentation)."""
    views = pixel.tta_views(x, n=n_views)
    return torch.stack([torch.softmax(predict(v), dim=-1) for v in views]).mean(0)
