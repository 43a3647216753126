"""Augmentation registry: every method behind ``augment(x, y_soft, rng, **params) -> (x', y_soft')``.

Stages say when the runner applies a method:
  "batch"  — to each training mini-batch (classic, cutout, mixup, cutmix, saliencymix, label-smoothing);
  "expand" — once, before training: adds n_per generated examples per class from a generator
             trained on the unlabelled pool (lsi, vae-*, multi-vae); x' = labelled + generated;
  "online" — generates new examples from each mini-batch while training (lsi-online: fresh pairs and lambdas
             every batch, seed 000; fixmatch: pseudo-labelled strong views of pool images); returns only the new
             rows, which join the batch at the recipe's ratio; a function with a `classifier` keyword gets the
             classifier being trained;
  "represent" — replaces the inputs by features before training and evaluation (latent-probe: the codes);
  "loss"   — a flag the trainer reads (isda); the function is the identity;
  "eval"   — a flag for test time (tta); the function is the identity.
Combinations are written "a+b" (e.g. "classic+lsi"): expanders run first, then batch transforms
in the order given. Expanders return their new rows with provenance (core.augment.generated.Generated):
``expand(...)`` gives them as one Generated, ``augment(...)`` appends them to the input.

What a method takes from the few-shot cell is declared, never special-cased by name: ``needs`` names the
generators it wants (core.fewshot.generators trains them; a generator's own ``context`` hook turns its trained
parts into the object passed on), ``inputs`` maps the function's keyword arguments to those generators, and a
``prepare(env)`` hook supplies anything else (distill's teacher, the unlabelled pool) from the cell's
environment (core.fewshot.context.CellEnv). An "eval" method's ``predict(model, x, **params)`` hook replaces the
plain softmax at test time (tta). ``uses_pool`` marks methods that read the unlabelled pool themselves (the
runner also counts generators trained on the pool).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from core.augment import fixmatch, generative, pixel, saliency_mix, spread
from core.augment.generated import Generated, concat
from core.settings import SettingError

STAGES = ("none", "batch", "expand", "online", "represent", "loss", "eval")


@dataclass(frozen=True)
class Augmentation:
    name: str
    fn: Callable[..., tuple[Tensor, Tensor]]
    stage: str
    needs: tuple[str, ...] = ()         # generator names, e.g. ("vae", "gc")
    defaults: dict = field(default_factory=dict)
    description: str = ""
    inputs: dict = field(default_factory=dict)   # {keyword: generator name, or a key of a flat context}
    uses_pool: bool = False
    prepare: Callable | None = None     # prepare(env) -> {keyword: value}: what else the cell must provide
    predict: Callable | None = None     # eval stage: predict(model, x, **params) -> (N, C) probabilities
    formula: str = ""                   # what one generated row is, for exported files
    limits: dict = field(default_factory=dict)   # {param: bounds} where they differ from core.augment.params.COMMON

    def __call__(self, x: Tensor, y_soft: Tensor, rng: torch.Generator, **params) -> tuple[Tensor, Tensor]:
        out = self.fn(x, y_soft, rng, **{**self.defaults, **params})
        return out.appended_to(x, y_soft) if isinstance(out, Generated) else out

    def generate(self, x: Tensor, y_soft: Tensor, rng: torch.Generator, **params) -> Generated:
        """An expander's new rows and their provenance (the rows __call__ appends to x)."""
        if self.stage != "expand":
            raise ValueError(f"{self.name} is a {self.stage}-stage method: it generates no rows of its own")
        return self.fn(x, y_soft, rng, **{**self.defaults, **params})


AUGMENTATIONS: dict[str, Augmentation] = {}


def register_augmentation(name: str, fn: Callable, stage: str, needs: tuple[str, ...] = (),
                          description: str = "", inputs: dict | None = None, uses_pool: bool = False,
                          prepare: Callable | None = None, predict: Callable | None = None, formula: str = "",
                          limits: dict | None = None, **defaults) -> Augmentation:
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    if isinstance(needs, str):
        needs = (needs,)
    inputs = dict(inputs) if inputs is not None else {"model": needs[0]} if needs else {}
    aug = Augmentation(name, fn, stage, tuple(needs), dict(defaults), description, inputs, uses_pool, prepare,
                       predict, formula, dict(limits or {}))
    AUGMENTATIONS[name] = aug
    return aug


def list_augmentations() -> list[str]:
    return list(AUGMENTATIONS)


def _identity(x, y, rng, **params):
    return x, y


def _pool(env) -> dict:
    return {"pool_x": env.pool_x()}


def _pool_and_log(env) -> dict:
    return {"pool_x": env.pool_x(), "pseudo_log": fixmatch.PseudoLabels()}    # a fresh log per cell


def _teacher_and_pool(env) -> dict:
    return {"teacher": env.shot_teacher(), "pool_x": env.pool_x()}


@torch.no_grad()
def _tta_predict(model, x: Tensor, n_views: int = 5, batch_size: int = 1000) -> Tensor:
    return torch.cat([tta_predict(model, xb, n_views) for xb in x.split(batch_size)])


LSI_FORMULA = ("z = (1 - t) z(src) + t z(partner), partner of another class, t = lam (or t ~ Beta(alpha, alpha)); "
               "y_soft = (1 - t) e(y_src) + t e(y_partner); the lam column holds 1 - t, the weight of src")
NOISE_FORMULA = "z = mu(src) + eps, eps ~ N(0, step^2 I); label of src"
INTERP_FORMULA = ("z = mu(src) + step (mu(partner) - mu(src)), partner a same-class kNN, step ~ U(0, alpha); "
                  "lam = 1 - step; plus N(0, noise^2 I) for the -noise variant")
KNN_LIMITS = {"alpha": {"min": 0}}     # the kNN samplers' largest step: 0 gives the source itself
EXTRAP_FORMULA = ("z = mu(src) - step (mu(partner) - mu(src)), partner a same-class kNN, step ~ U(0, alpha); "
                  "lam = 1 + step; plus N(0, noise^2 I) for the -noise variant")


register_augmentation("none", _identity, "none", description="no augmentation (baseline)")
register_augmentation("classic", pixel.classic, "batch",
                      description="small rotations, translations, zoom, Gaussian noise (vectors: noise only)")
register_augmentation("cutout", pixel.cutout, "batch", description="random erasing of a box (25% of the image)")
register_augmentation("mixup", pixel.mixup, "batch", description="pixel mixup, lam ~ Beta(alpha, alpha), soft labels")
register_augmentation("cutmix", pixel.cutmix, "batch", description="paste a box of another image, labels by area")
register_augmentation("saliencymix", saliency_mix.saliency_mix, "batch", alpha=1.0, lam=None,
                      saliency="spectral-residual",
                      description="CutMix with the box centred on the source's most salient point, labels by area")
register_augmentation("label-smoothing", pixel.label_smoothing, "batch", description="(1 - eps) y + eps / K")
register_augmentation("isda", _identity, "loss", lambda_0=0.5, diagonal=False,
                      description="implicit semantic augmentation: ISDA loss on the classifier's features")
register_augmentation("tta", _identity, "eval", n_views=5, predict=_tta_predict,
                      description="test-time augmentation: average predictions over shifted views")
register_augmentation("lsi", generative.lsi, "expand", needs="aae-uniform", n_per=10, lam=0.5, alpha=1.0,
                      formula=LSI_FORMULA,
                      description="AAE-uniform inter-class latent interpolation, generated once before training; "
                                  "two-hot labels at lam = 0.5 (lam=null: Beta(alpha, alpha))")
register_augmentation("lsi-online", generative.lsi_online, "online", needs="aae-uniform", lam=0.5, alpha=1.0,
                      description="LSI as seed 000 runs it: fresh inter-class pairs and lambdas for every mini-batch, "
                                  "decoded on the fly, lambda-weighted labels (two-hot at 0.5)")
register_augmentation("vae-noise", generative.vae_noise, "expand", needs="vae", n_per=10, sigma=0.5,
                      formula=NOISE_FORMULA,
                      description="z = mu(x) + N(0, sigma^2)")
# The Bonn kNN samplers: towards / away from a same-class neighbour, each also with latent noise on top.
for _name, _fn, _alpha, _noise, _formula, _description in (
        ("vae-interp", generative.vae_interp, 1.0, 0.0, INTERP_FORMULA,
         "towards a same-class k-nearest neighbour in latent space"),
        ("vae-extrap", generative.vae_extrap, 0.5, 0.0, EXTRAP_FORMULA,
         "away from a same-class k-nearest neighbour in latent space"),
        ("vae-interp-noise", generative.vae_interp, 1.0, 0.3, INTERP_FORMULA, "kNN interpolation plus latent noise"),
        ("vae-extrap-noise", generative.vae_extrap, 0.5, 0.3, EXTRAP_FORMULA, "kNN extrapolation plus latent noise")):
    register_augmentation(_name, _fn, "expand", needs="vae", n_per=10, alpha=_alpha, k=5, noise=_noise,
                          random_alpha=True, formula=_formula, limits=KNN_LIMITS, description=_description)
register_augmentation("vae-prior-gc", generative.vae_prior_gc, "expand", needs=("vae", "gc"), n_per=10, alpha=1.0,
                      threshold=0.8, oversample=10, inputs={"model": "vae", "gc": "gc"},
                      description="prior samples labelled by a generative classifier; unsure ones dropped")
register_augmentation("multi-vae", generative.multi_vae, "expand", needs="multi-vae", n_per=10, alpha=1.0,
                      inputs={"models": "multi-vae"},
                      description="one VAE per class trained on its shots (optional mix-in), prior samples")
register_augmentation("distill", generative.distill, "expand", n_per=10, threshold=0.9, uses_pool=True,
                      inputs={"teacher": "teacher", "pool_x": "pool"}, prepare=_teacher_and_pool,
                      description="data distillation (seed 003): the shot classifier's TTA-ensemble labels the "
                                  "unlabelled pool; the n_per most confident above the threshold per class join")
register_augmentation("label-spread", spread.label_spread, "expand", needs="vae", uses_pool=True, n_per=400,
                      threshold=0.5, embedding="umap", n_neighbors=10, alpha=0.99, umap_dim=10, umap_neighbors=30,
                      max_iter=100, limits={"alpha": {"above": 0, "below": 1}, "threshold": {"above": 0, "max": 1}},
                      inputs={"model": "vae", "pool_x": "pool"}, prepare=_pool,
                      description="label spreading (kNN graph) from the shots over the unlabelled pool in a UMAP "
                                  "of the pool-trained VAE's codes (embedding=codes: the codes); the n_per most "
                                  "confident spread labels above the threshold per class join")
register_augmentation("fixmatch", fixmatch.fixmatch, "online", uses_pool=True, threshold=0.95, n_ops=2, group=8,
                      cutout_area=0.25, inputs={"pool_x": "pool", "pseudo_log": "pseudo_log"}, prepare=_pool_and_log,
                      limits={"n_ops": {"min": 0, "max": len(fixmatch.OPS)}, "group": {"min": 1},
                              "cutout_area": {"min": 0, "max": 1}, "threshold": {"above": 0, "max": 1}},
                      description="FixMatch-style consistency (no generator): each step, round(gen_ratio x real) pool "
                                  "images pseudo-labelled by the classifier on a weak view where its confidence is "
                                  ">= threshold, trained on strong (RandAugment + cutout) views")
register_augmentation("latent-probe", generative.latent_probe, "represent", needs="vae",
                      description="the classifier trained on the frozen codes of the pool-trained VAE")


def parse_method(method: str) -> list[Augmentation]:
    """'classic+lsi' -> [Augmentation, ...]; 'none' -> [] . Unknown names and empty parts ('classic+') raise
    SettingError (a ValueError)."""
    names = [n.strip() for n in str(method).split("+")]
    if names == [""]:
        raise SettingError("empty method name; use 'none' for the baseline")
    if "" in names:
        raise SettingError(f"method {method!r} has an empty part; join methods with single '+' signs, e.g. "
                           f"classic+lsi")
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise SettingError(f"unknown augmentation(s) {unknown}; choose from {list_augmentations()} "
                           f"(combine with '+', e.g. classic+lsi)")
    return [AUGMENTATIONS[n] for n in names if n != "none"]


def method_needs(method: str) -> set[str]:
    """The generators a (combined) method needs."""
    return {n for a in parse_method(method) for n in a.needs}


def augment(method: str, x: Tensor, y_soft: Tensor, rng: torch.Generator, stage: str | None = None,
            params: dict | None = None, context: dict | None = None) -> tuple[Tensor, Tensor]:
    """Apply a (combined) method's parts of one stage (or all). params: {name: {param: value}};
    context: {augmentation name: {keyword: value}} — what each part takes from the cell (its generators'
    objects and what its prepare hook gave), see context_for."""
    params, context = params or {}, context or {}
    for aug in parse_method(method):
        if stage is not None and aug.stage != stage:
            continue
        extra = {**context_for(aug, context), **params.get(aug.name, {})}
        x, y_soft = aug(x, y_soft, rng, **extra)
    return x, y_soft


def expand(method: str, x: Tensor, y_soft: Tensor, rng: torch.Generator, params: dict | None = None,
           context: dict | None = None) -> Generated | None:
    """The expand-stage parts of a (combined) method: every new row with its provenance, in the order
    augment(..., stage="expand") appends them (a later expander sees the earlier rows appended to its input;
    its indices are into that). None when the method has no expander."""
    params, context = params or {}, context or {}
    parts = []
    for aug in parse_method(method):
        if aug.stage != "expand":
            continue
        new = aug.generate(x, y_soft, rng, **{**context_for(aug, context), **params.get(aug.name, {})})
        parts.append(new)
        x, y_soft = new.appended_to(x, y_soft)
    return concat(parts) if parts else None


def context_for(aug: Augmentation, context: dict) -> dict:
    """The keyword arguments an augmentation takes from the cell: context is {augmentation name: {keyword:
    value}} as core.fewshot.context builds it, or a flat {keyword: value} / {generator name: object} dict
    (a notebook, the tests; inputs name its keys). Missing entries -> None, so the function raises its own 'needs a trained ...'."""
    if isinstance(context.get(aug.name), dict):
        return dict(context[aug.name])
    return {kw: context.get(key) for kw, key in aug.inputs.items()}


@torch.no_grad()
def tta_predict(predict: Callable[[Tensor], Tensor], x: Tensor, n_views: int = 5) -> Tensor:
    """Average of softmax(predict(view)) over deterministic views of x (seed 003, test-time augmentation)."""
    views = pixel.tta_views(x, n=n_views)
    return torch.stack([torch.softmax(predict(v), dim=-1) for v in views]).mean(0)
