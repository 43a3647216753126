"""What each augmentation's parameters accept: their names, types and ranges, checked before any work.

A method's parameters are the keyword arguments its function takes with a default, plus the defaults its
registration adds (isda's lambda_0, tta's n_views), less what the cell passes itself (the generators and the
pool named in `inputs`, and an online method's batch share `n`). The type comes from the function's annotation
(else the default's type); the range from the registration's `limits={name: {...}}`, else from `COMMON` below,
where a parameter name means the same thing for every method that has it. The bounds use the keys of
core.config's fields ("min" / "max" inclusive, "above" / "below" exclusive, "choices"), and core.settings
checks them, so a bad value gives the same one-line message as a bad generator or recipe setting:
    method parameter mixup.alpha=nan is NaN, which is never allowed; allowed: a number > 0
"""
from __future__ import annotations

import inspect

from core.settings import Allowed, allowed_from_type, check_values

UNIT = {"min": 0, "max": 1}
COMMON: dict[str, dict] = {
    "n_per": {"min": 1},                     # generated rows per class
    "alpha": {"above": 0},                   # Beta(alpha, alpha) concentration, or a sampler's step / scale
    "lam": UNIT,                             # a fixed mixing weight (null: drawn from Beta(alpha, alpha))
    "k": {"min": 1},                         # nearest neighbours
    "noise": {"min": 0},
    "sigma": {"min": 0},
    "threshold": UNIT,                       # least confidence kept
    "oversample": {"min": 1},
    "n_views": {"min": 1},
    "lambda_0": {"min": 0},
    "diagonal": {}, "random_alpha": {}, "flip": {},
    "degrees": {"min": 0, "max": 180},
    "translate": UNIT,
    "scale": {"min": 0, "below": 1},
    "area": UNIT,
    "p": UNIT,
    "value": {},                              # cutout's fill value: any number
    "eps": UNIT,
    "batch_size": {"min": 1},
    "mode": {"choices": ("linear", "slerp")},
    "saliency": {"choices": ("spectral-residual", "gradient")},
    "embedding": {"choices": ("codes", "umap", "umap-pixels", "pixels", "pca")},
    "pca_dim": {"min": 1},
    "n_neighbors": {"min": 1},
    "umap_dim": {"min": 1},
    "umap_neighbors": {"min": 2},
    "max_iter": {"min": 1},
}
RUNNER_SUPPLIED = {"online": ("n", "classifier")}   # keywords the recipe passes an online method at every batch


def method_parameters(aug) -> dict[str, Allowed]:
    """{parameter: Allowed} of one registered augmentation (see the module docstring)."""
    sig = {k: p for k, p in inspect.signature(aug.fn).parameters.items() if p.default is not inspect.Parameter.empty}
    skip = set(aug.inputs) | set(RUNNER_SUPPLIED.get(aug.stage, ()))
    out = {}
    for name in [*sig, *aug.defaults]:
        if name in skip or name in out:
            continue
        p = sig.get(name)
        default = aug.defaults.get(name, p.default if p is not None else None)
        annotation = p.annotation if p is not None and p.annotation is not inspect.Parameter.empty else None
        limits = aug.limits.get(name, COMMON.get(name, {}))
        out[name] = allowed_from_type(annotation, default, limits) or Allowed(type(default))
    return out


def check_method_params(method: str, params: dict) -> None:
    """SettingError for a parameter `method` (one registered augmentation) does not have, listing the ones it
    has, or a value of the wrong type or out of range."""
    from core.augment import AUGMENTATIONS

    check_values(method_parameters(AUGMENTATIONS[method]), params, "method parameter", method)
