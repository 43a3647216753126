"""An equal tuning budget for every method, on the validation split only (protocol v3).

The budget, fixed before any run:
  - every method gets N_CONFIGS configurations: configuration 0 is its defaults, 1 .. N_CONFIGS-1 are drawn by
    random search from a fixed seed (SEARCH_SEED and the method's name: the draws do not depend on which other
    methods are tuned, or in which order);
  - a configuration is a tuned-settings entry ({"params": {augmentation: {param: value}}, "recipe": {...}}), the
    same thing docs/tuning/tuned.json holds and the runner reads (ExperimentSpec.tuned), so a candidate runs
    through exactly the code path its frozen setting will;
  - the search space of a method is its own registered parameters (core.augment.params.method_parameters: type
    and bounds), less those the cell or the hardware sets (NOT_TUNED), plus the recipe's lr and weight_decay for
    every method (the recipe was tuned for `none` alone; now every method gets that chance) and gen_ratio for
    methods that add rows to the batch; the range each is drawn from is in SPACE (else a generic one, see `draw`);
    generator settings are not tuned (one set of generators per seed serves every method, as in the headline);
  - each configuration runs SEEDS seeds at SHOTS shots, scored on the validation split (never the test set).

The choice rule, written down before any run (RULE): the configuration with the highest mean validation weighted
F1 over all its cells (3 seeds x 2 shot counts); a tie, to 4 decimals, goes to the lower index, so a candidate
that does no better than the defaults leaves the defaults.
"""
from __future__ import annotations

import csv
import io
import json
import math
import random
import zlib
from pathlib import Path
from typing import Callable

from core.augment import parse_method
from core.augment.params import method_parameters
from core.fewshot.methods import generates
from core.fewshot.spec import ExperimentSpec, check_tuned

N_CONFIGS = 6
SEEDS = 3
SHOTS = (2, 10)
SEARCH_SEED = 16_000
RULE = ("highest mean validation weighted F1 over all cells of a configuration (3 seeds x shots 2 and 10); "
        "ties (equal to 4 decimals) go to the lower configuration index, configuration 0 being the defaults")
NOT_TUNED = {"n_per": "the cell's n_generated (the experiment's sweep)",
             "batch_size": "a memory / speed setting (tta's prediction batches)",
             "value": "cutout's fill value (the background)",
             "saliency": "the saliency map kind of saliencymix (an ablation, not a setting)",
             "group": "fixmatch's images per torchvision call (a speed setting)",
             "embedding": "label-spread's representation (the ablation table gives each its own column)",
             "pca_dim": "the PCA ablation's dimension (used only with embedding=pca)"}
# parameter -> how it is drawn: ("uniform", lo, hi), ("log", lo, hi), ("int", lo, hi) inclusive, ("choice", values)
SPACE: dict[str, tuple] = {
    "lr": ("log", 5e-4, 8e-3),
    "weight_decay": ("log", 5e-3, 2e-1),
    "gen_ratio": ("log", 0.25, 4.0),
    "threshold": ("uniform", 0.5, 0.99),
    "lam": ("choice", (None, 0.2, 0.35, 0.5)),
    "eps": ("uniform", 0.02, 0.3),
    "k": ("int", 2, 20),
    "n_neighbors": ("int", 5, 30),
    "umap_dim": ("int", 2, 16),
    "umap_neighbors": ("int", 10, 50),
    "max_iter": ("int", 30, 300),
    "noise": ("uniform", 0.0, 0.5),
    "lambda_0": ("uniform", 0.05, 1.0),
    "n_views": ("int", 2, 10),
    "oversample": ("int", 2, 20),
    "degrees": ("uniform", 0.0, 30.0),
    "translate": ("uniform", 0.0, 0.2),
    "scale": ("uniform", 0.0, 0.3),
    "area": ("uniform", 0.05, 0.5),
    "p": ("uniform", 0.1, 1.0),
    "n_ops": ("int", 1, 4),
    "cutout_area": ("uniform", 0.0, 0.5),
}
RECIPE_KEYS = ("lr", "weight_decay")          # tuned for every method
GEN_RECIPE_KEYS = ("gen_ratio",)              # tuned where the method adds rows to the batch


def search_space(method: str) -> dict:
    """{"params": {augmentation: {param: Allowed}}, "recipe": [recipe keys]}: what a method's random search
    draws (module docstring)."""
    params = {}
    for aug in parse_method(method):
        own = {k: a for k, a in method_parameters(aug).items() if k not in NOT_TUNED}
        if own:
            params[aug.name] = own
    return {"params": params, "recipe": [*RECIPE_KEYS, *(GEN_RECIPE_KEYS if generates(method) else ())]}


def draw(name: str, allowed, default, rnd: random.Random):
    """One value of parameter `name` (bounds `allowed`, default `default`) from its SPACE entry; without one: a
    bool or a choice uniformly, a number log-uniformly within 4x of its default (ints: 2x; up to its upper bound
    where that is nearer), clipped into its bounds; a parameter with neither a range nor a numeric default keeps
    its default."""
    kind = SPACE.get(name)
    if kind is None:
        if allowed.choices is not None:
            kind = ("choice", tuple(allowed.choices))
        elif allowed.type is bool:
            kind = ("choice", (False, True))
        elif isinstance(default, (int, float)) and not isinstance(default, bool) and default > 0:
            top = allowed.max if allowed.max is not None else allowed.below     # a bound inside 4x: drawn up to it
            kind = ("int", max(1, default // 2), default * 2) if allowed.type is int else \
                ("log", default / 4, default * 4 if top is None else min(default * 4, top))
        else:
            return default
    if kind[0] == "choice":
        value = rnd.choice(list(kind[1]))
    elif kind[0] == "int":
        value = rnd.randint(int(kind[1]), int(kind[2]))
    elif kind[0] == "log":
        value = math.exp(rnd.uniform(math.log(kind[1]), math.log(kind[2])))
    else:
        value = rnd.uniform(kind[1], kind[2])
    return _clip(value, allowed)


def _clip(value, allowed):
    if value is None or isinstance(value, (bool, str)):
        return value
    lo = allowed.min if allowed.min is not None else allowed.above
    hi = allowed.max if allowed.max is not None else allowed.below
    if lo is not None and value <= lo:
        value = lo if allowed.min is not None else lo + (abs(lo) + 1) * 1e-3
    if hi is not None and value >= hi:
        value = hi if allowed.max is not None else hi - (abs(hi) + 1) * 1e-3
    return int(round(value)) if allowed.type is int else round(float(value), 6)


def configurations(method: str, n: int = N_CONFIGS, seed: int = SEARCH_SEED) -> list[dict]:
    """The method's n tuned-settings entries: [defaults ({}), n - 1 random draws]. Deterministic in (method, n,
    seed); a method with nothing to tune still gets n (the recipe keys are always there)."""
    from core.augment import AUGMENTATIONS
    from core.fewshot.spec import Recipe
    from core.settings import field_allowed

    space = search_space(method)
    rnd = random.Random(seed * 1_000_003 + zlib.crc32(method.encode()))    # a local generator: no global seeding
    recipe_defaults, recipe_allowed = Recipe(), field_allowed(Recipe)
    out = [{}]
    for _ in range(n - 1):
        entry = {"params": {}, "recipe": {}}
        for aug_name, allowed in space["params"].items():
            aug = AUGMENTATIONS[aug_name]
            entry["params"][aug_name] = {k: draw(k, a, _default(aug, k), rnd) for k, a in allowed.items()}
        for key in space["recipe"]:
            entry["recipe"][key] = draw(key, recipe_allowed[key], getattr(recipe_defaults, key), rnd)
        entry = {k: v for k, v in entry.items() if v}
        check_tuned({method: entry})          # every draw within its parameter's bounds
        out.append(entry)
    return out


def _default(aug, name: str):
    import inspect

    if name in aug.defaults:
        return aug.defaults[name]
    p = inspect.signature(aug.fn).parameters.get(name)
    return None if p is None else p.default


def candidate_spec(base: dict, method: str, entry: dict) -> ExperimentSpec:
    """The validation run of one configuration: `base` (dataset, generators, n_generated, recipe, device...)
    with evaluate_on="validation", SHOTS, SEEDS, the one method and its candidate as its tuned setting."""
    spec = {**base, "evaluate_on": "validation", "shots": list(base.get("shots_tuning", SHOTS)),
            "seeds": base.get("seeds_tuning", SEEDS), "methods": [method], "tuned": {method: entry}}
    spec.pop("shots_tuning", None)
    spec.pop("seeds_tuning", None)
    return ExperimentSpec.from_dict(spec)


def choose(scores: list[float]) -> int:
    """RULE: the index of the highest score, ties (to 4 decimals) to the lower index."""
    rounded = [round(s, 4) for s in scores]
    return rounded.index(max(rounded))


def slug(method: str) -> str:
    return method.replace("+", "_plus_")


def tune(methods: list[str], out_dir, base: dict, n_configs: int = N_CONFIGS, executor=None,
         on_progress: Callable[[str], None] | None = None, runs_dir=None) -> dict:
    """Run every method's configurations on the validation split; write out_dir/tuning.csv (one row per cell,
    with its method, configuration index and entry) and out_dir/tuned.json (per method the chosen entry, its
    mean and the defaults' mean, the rule and the search). Run folders: <runs_dir>/<method>/c<i>/ (default
    out_dir/runs), resumable; all share <runs_dir>/generators (generator settings are not tuned, so one set per
    seed serves all).
    Returns the tuned.json dict."""
    from core.fewshot.runner import run_experiment

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)     # now, not after hours of runs (its files are written at the end)
    runs = Path(runs_dir) if runs_dir is not None else out / "runs"
    shared = runs / "generators"
    shared.mkdir(parents=True, exist_ok=True)
    rows, chosen = [], {}
    for method in methods:
        parse_method(method)
        scores = []
        configs = configurations(method, n_configs)
        for i, entry in enumerate(configs):
            spec = candidate_spec(base, method, entry)
            run_dir = runs / slug(method) / f"c{i}"
            run_dir.mkdir(parents=True, exist_ok=True)
            link = run_dir / "generators"
            if not link.exists():
                link.symlink_to(Path("..", "..", "generators"))
            records = run_experiment(spec, run_dir, executor=executor)
            f1 = [r["f1_weighted"] for r in records]
            scores.append(sum(f1) / len(f1))
            rows += [{"method": method, "config": i, "entry": json.dumps(entry, sort_keys=True),
                      **{k: r[k] for k in ("shots", "seed", "n_generated", "f1_weighted", "accuracy", "f1_macro",
                                           "evaluated_on", "dataset")}} for r in records]
            if on_progress:
                on_progress(f"{method} c{i}: mean validation F1w {scores[-1]:.4f} {json.dumps(entry)}")
        best = choose(scores)
        chosen[method] = {"entry": configs[best], "config": best, "mean": round(scores[best], 4),
                          "defaults_mean": round(scores[0], 4), "scores": [round(s, 4) for s in scores]}
    doc = {"rule": RULE, "search": {"n_configs": n_configs, "seed": SEARCH_SEED, "seeds": base.get("seeds_tuning", SEEDS),
                                    "shots": list(base.get("shots_tuning", SHOTS)), "space": SPACE,
                                    "not_tuned": NOT_TUNED, "recipe_keys": [*RECIPE_KEYS, *GEN_RECIPE_KEYS]},
           "base": {k: v for k, v in base.items() if k not in ("shots_tuning", "seeds_tuning")},
           "methods": {m: c["entry"] for m, c in chosen.items()},
           "choice": {m: {k: v for k, v in c.items() if k != "entry"} for m, c in chosen.items()}}
    _write(out / "tuning.csv", _csv(rows))
    _write(out / "tuned.json", json.dumps(doc, indent=1, sort_keys=False) + "\n")
    return doc


def load_tuned(path) -> dict:
    """The {method: entry} mapping of a tuned-settings file (its "methods"), checked: what ExperimentSpec.tuned
    takes. A ValueError naming the file when it is missing or malformed."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        raise ValueError(f"tuned-settings file {p} does not exist; write it with `python -m core tune`") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"tuned-settings file {p} is not JSON ({exc})") from None
    methods = doc.get("methods") if isinstance(doc, dict) else None
    if not isinstance(methods, dict):
        raise ValueError(f"tuned-settings file {p} has no \"methods\" mapping")
    check_tuned(methods)
    return methods


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return buf.getvalue()


def _write(path: Path, text: str) -> None:
    from core.files import atomic_write

    atomic_write(path, text)
