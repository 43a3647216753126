"""What a few-shot experiment is: the spec (data, shots, methods, seeds), the classifier recipe, the cells.

A cell is (seed, shots, n_generated, method). n_generated is None for methods that add nothing (the baseline,
pixel methods, ISDA), so a sweep over n_generated does not repeat them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import NamedTuple

from core.augment import parse_method
from core.settings import Allowed, SettingError, check_dataclass, check_values, field_allowed


@dataclass
class Recipe:
    """The classifier's training recipe, the same for every method (chosen on the validation split of mnist5k,
    see docs/results.md "Choosing the recipe"; frozen since). Budget: `steps` optimiser steps of `batch_size`
    real examples (all of them when there are fewer), so the real shots are seen equally often by every method;
    a method that adds generated examples adds round(gen_ratio * real) of them to each batch."""
    steps: int = field(default=300, metadata={"min": 1})
    batch_size: int = field(default=64, metadata={"min": 1})
    lr: float = field(default=2e-3, metadata={"above": 0})
    weight_decay: float = field(default=5e-2, metadata={"min": 0})
    dropout: float = field(default=0.5, metadata={"min": 0, "below": 1})
    schedule: str = field(default="onecycle", metadata={"choices": ("onecycle", "cosine", "constant")})
    standardise: bool = True        # inputs scaled by the shots' mean and std (real labelled data only)
    gen_ratio: float = field(default=1.0, metadata={"above": 0})   # generated examples per real example in a batch
    width: int = field(default=16, metadata={"min": 1})            # CNN: conv widths 16, 32; MLP: 4 * width hidden
    feature_dim: int = field(default=64, metadata={"min": 1})
    channels_last: bool = False     # CNN convolutions in channels-last layout: ~1.5x faster on one CPU thread, a
                                    # different rounding (core/models/classifier.py); records differ from NCHW's

    def __post_init__(self):
        check_dataclass(self)       # types and the bounds above (core.settings), one message format


TUNED_KEYS = ("params", "recipe")
TUNABLE_RECIPE = ("gen_ratio", "lr", "weight_decay")   # the recipe settings a method's tuned entry may set


def check_tuned(tuned: dict) -> None:
    """SettingError for a tuned-settings mapping that names an unknown method, a key other than params / recipe,
    a parameter its method does not have or a value out of range (the same checks as --param and --recipe)."""
    from core.augment import AUGMENTATIONS
    from core.augment.params import check_method_params

    if not isinstance(tuned, dict):
        raise SettingError(f"tuned settings must be {{method: {{'params': ..., 'recipe': ...}}}}, got {tuned!r}")
    for method, entry in tuned.items():
        parts = {a.name for a in parse_method(method)}
        if not isinstance(entry, dict) or set(entry) - set(TUNED_KEYS):
            raise SettingError(f"tuned setting of {method!r} must have only the keys {list(TUNED_KEYS)}, got {entry!r}")
        for name, p in entry.get("params", {}).items():
            if name not in AUGMENTATIONS or name not in parts:
                raise SettingError(f"tuned setting of {method!r} names {name!r}, which is not a part of it")
            check_method_params(name, p)
        recipe = entry.get("recipe", {})
        if set(recipe) - set(TUNABLE_RECIPE):
            raise SettingError(f"tuned setting of {method!r}: only {list(TUNABLE_RECIPE)} of the recipe may be tuned "
                               f"per method, got {sorted(recipe)}")
        check_values(field_allowed(Recipe), recipe, "tuned recipe setting")


class Cell(NamedTuple):
    """One cell of an experiment: a frozen, hashable (seed, shots, n_generated, method); it unpacks like the
    tuples it replaced."""
    seed: int
    shots: int
    n_generated: int | None
    method: str


def check_keys(cls, d: dict, what: str) -> dict:
    known = {f.name for f in fields(cls)}
    unknown = set(d) - known if isinstance(d, dict) else set()
    if unknown:
        raise SettingError(f"unknown {what} setting(s) {sorted(unknown)}; known: {sorted(known)}")
    return d


@dataclass
class ExperimentSpec:
    dataset: str = "digits"
    test: str | None = None                 # e.g. "idx:../shared/data/mnist-test"; None: a held-out share
    evaluate_on: str = "test"               # "test" | "validation" (choose settings on validation, never on test)
    shots: list[int] = field(default_factory=lambda: [2, 5, 10, 20])
    methods: list[str] = field(default_factory=lambda: ["none", "classic", "mixup", "isda", "lsi", "vae-interp"])
    seeds: int = 3                          # seeds 0 .. seeds-1
    n_generated: list = field(default_factory=lambda: [50])   # per class; "shots" = as many as the shots
    generated_only: bool = False            # Bonn "only generated data": generating methods train on generated only
    gen_data: str = "pool"                  # generators trained on the unlabelled "pool" or the "labelled" shots
    validation: float = 0.1                 # per-class share of the training data kept for validation
    held_out: float = 0.25                  # test share per class when no test set is given
    recipe: dict = field(default_factory=dict)       # overrides of Recipe
    generators: dict = field(default_factory=dict)   # {generator name: {setting: value}}
    params: dict = field(default_factory=dict)       # {augmentation name: {param: value}}
    device: str = "auto"
    # per method its tuned setting, {method: {"params": {augmentation: {param: value}}, "recipe": {"gen_ratio": r}}}
    # (the "methods" of docs/tuning/tuned.json, core.fewshot.tuning); a method without an entry runs its defaults
    # and its records say "setting": "default". None (no tuned file): no record says "setting", as before tuning.
    tuned: dict | None = None

    def __post_init__(self):
        from core.augment import AUGMENTATIONS
        from core.augment.params import check_method_params
        from core.fewshot.generators import check_generator_settings

        self.shots = [int(s) for s in self.shots]
        self.methods = list(self.methods)
        self.n_generated = [n if n == "shots" else int(n) for n in
                            (self.n_generated if isinstance(self.n_generated, (list, tuple)) else [self.n_generated])]
        if not self.shots or min(self.shots) < 1:
            raise SettingError(f"shots must be a non-empty list of positive numbers, got {self.shots}")
        if not self.methods:
            raise SettingError("give at least one method (e.g. none)")
        for m in self.methods:
            parse_method(m)  # raises ValueError naming the unknown parts
        Allowed(int, min=1).check("seeds", self.seeds)
        if self.seeds < 1 or not self.n_generated or any(n != "shots" and n < 1 for n in self.n_generated):
            raise SettingError("seeds and every n_generated must be >= 1 (or 'shots')")
        if self.evaluate_on not in ("test", "validation"):
            raise SettingError(f"evaluate_on must be test or validation, got {self.evaluate_on!r}")
        if self.gen_data not in ("pool", "labelled"):
            raise SettingError(f"gen_data must be pool or labelled, got {self.gen_data!r}")
        if not 0 < self.validation < 0.5 or not 0 < self.held_out < 0.9:
            raise SettingError("validation must be in (0, 0.5) and held_out in (0, 0.9)")
        # every value of the recipe, the generators and the methods' parameters: its type and range, before any work
        check_values(field_allowed(Recipe), check_keys(Recipe, self.recipe, "recipe"), "recipe setting")
        check_generator_settings(self.generators)
        if not isinstance(self.params, dict):
            raise SettingError(f"params must be {{method: {{parameter: value}}}}, got {self.params!r}")
        for name, p in self.params.items():
            if name not in AUGMENTATIONS:
                raise SettingError(f"--param names an unknown method {name!r}")
            check_method_params(name, p)
        if self.tuned is not None:
            check_tuned(self.tuned)

    @property
    def classifier_recipe(self) -> Recipe:
        return Recipe(**self.recipe)

    def recipe_for(self, method: str) -> Recipe:
        """The recipe a method's cells train with: the spec's, with the method's tuned recipe settings (gen_ratio)
        on top."""
        over = (self.tuned or {}).get(method, {}).get("recipe", {})
        return Recipe(**{**self.recipe, **over}) if over else self.classifier_recipe

    def tuned_params(self, method: str) -> dict:
        """{augmentation: {param: value}} of the method's tuned setting ({} without one)."""
        return (self.tuned or {}).get(method, {}).get("params", {})

    def setting_of(self, method: str) -> str | None:
        """"tuned" / "default" when the spec carries tuned settings (the record and the table say which), else None."""
        if self.tuned is None:
            return None
        return "tuned" if method in self.tuned else "default"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ExperimentSpec":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def cells(self) -> list[Cell]:
        """Cell(seed, shots, n_generated, method), seed-major (a seed's generators serve all its cells)."""
        from core.fewshot.methods import generates

        out = []
        for s in range(self.seeds):
            for k in self.shots:
                for m in self.methods:
                    if generates(m):
                        out += [Cell(s, k, k if n == "shots" else n, m) for n in dict.fromkeys(self.n_generated)]
                    else:
                        out.append(Cell(s, k, None, m))
        return list(dict.fromkeys(out))
