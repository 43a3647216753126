"""Generator registry for the latent methods: a typed config and one build-and-train function per generator.

A method names what it needs (core.augment: `needs="vae"`); the runner looks the name up here. Scopes:
  "pool"  — trained once per seed on the unlabelled pool (training split minus validation, labels unused), or
            with gen_data="labelled" on the cell's shots; saved under <run>/generators/ and loaded by the cells;
  "shots" — needs labels, trained per (seed, shots) on the shots (Multi-VAE); saved the same way;
  "cell"  — trained inside the cell from other generators (the generative classifier needs the VAE).
What a cell passes on to a method is the generator's `context(env)` hook (core.fewshot.context.CellEnv): by
default the trained "model" part; Multi-VAE gives one model per class, the generative classifier trains itself
there. The cell names no generator. `checkpoint_kind` says which saved checkpoints can stand in for it (the
export's --checkpoint). Adding a generator: a config dataclass, a train function (or a context hook) and one
`register_generator` line.
"""
from __future__ import annotations

import copy
import json
import math
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from core.config import MAX_HIDDEN, MAX_LATENT, ModelConfig, TrainConfig
from core.data import Dataset
from core.fewshot.streams import stream, stream_seed
from core.models import build_model
from core.settings import SettingError, check_dataclass, check_values, field_allowed
from core.train import fit


class Stopped(Exception):
    """The stop event was set while a generator or classifier was training."""


def check_stop(stop: threading.Event | None):
    if stop is not None and stop.is_set():
        raise Stopped()


# --------------------------------------------------------------------------------------------- configs

# Bounds in field metadata, as core.config's model fields declare them (core.settings checks them up front: a
# bad value is refused when the ExperimentSpec is built, before any work). latent_dim / hidden / arch have the
# model configs' own bounds, so a generator never fails later when its model is built.
LATENT = {"min": 1, "max": MAX_LATENT}
HIDDEN = {"min": 2, "max": MAX_HIDDEN}
ARCH = {"choices": ("mlp", "conv", "auto")}
AT_LEAST_1 = {"min": 1}
POSITIVE = {"above": 0}
NON_NEGATIVE = {"min": 0}


@dataclass
class VAEConfig:
    """beta-VAE of the Bonn slides (seed 002): d = 50, beta = 0.5 there; beta_norm = beta * d / N."""
    latent_dim: int = field(default=16, metadata=LATENT)
    beta: float = field(default=0.5, metadata=NON_NEGATIVE)
    beta_norm: bool = False
    hidden: int = field(default=256, metadata=HIDDEN)
    arch: str = field(default="mlp", metadata=ARCH)
    steps: int = field(default=2000, metadata=AT_LEAST_1)
    batch_size: int = field(default=128, metadata=AT_LEAST_1)
    lr: float = field(default=1e-3, metadata=POSITIVE)
    early_fraction: float = field(default=0.05, metadata={"min": 0, "max": 1})   # the GC's "early VAE" snapshot

    def __post_init__(self):
        check_dataclass(self)


@dataclass
class AAEConfig:
    """AAE with a uniform prior (seed 000), for lsi / lsi-online."""
    latent_dim: int = field(default=16, metadata=LATENT)
    hidden: int = field(default=256, metadata=HIDDEN)
    arch: str = field(default="mlp", metadata=ARCH)
    steps: int = field(default=2000, metadata=AT_LEAST_1)
    batch_size: int = field(default=128, metadata=AT_LEAST_1)
    lr: float = field(default=1e-3, metadata=POSITIVE)

    def __post_init__(self):
        check_dataclass(self)


@dataclass
class MultiVAEConfig:
    """One VAE per class on its shots (seed 002), optionally with a share of other classes mixed in (0.2)."""
    latent_dim: int = field(default=16, metadata=LATENT)
    beta: float = field(default=0.5, metadata=NON_NEGATIVE)
    beta_norm: bool = False
    hidden: int = field(default=256, metadata=HIDDEN)
    steps: int = field(default=150, metadata=AT_LEAST_1)
    batch_size: int = field(default=128, metadata=AT_LEAST_1)
    lr: float = field(default=1e-3, metadata=POSITIVE)
    mix_in: float = field(default=0.0, metadata={"min": 0, "below": 1})   # share of other classes' rows

    def __post_init__(self):
        check_dataclass(self)


@dataclass
class GCConfig:
    """Generative classifier (seed 002): the recipe's classifier trained on the shots, their early-VAE
    reconstructions and noisy decodes of the final VAE (images), or noisy copies (vectors)."""
    noise: float = field(default=0.5, metadata=NON_NEGATIVE)          # latent noise of the decoded copies (images)
    vector_noise: float = field(default=0.3, metadata=NON_NEGATIVE)   # input noise of the copies (vectors)

    def __post_init__(self):
        check_dataclass(self)


def model_part(env, name: str):
    """The default context hook: the generator's trained "model" part (loaded from the run folder)."""
    return env.generator_parts(name)["model"]


@dataclass(frozen=True)
class Generator:
    name: str
    config: type
    train: Callable | None           # train(data, cfg, seed_parts, device, stop) -> {part: model}; None: scope "cell"
    scope: str                       # "pool" | "shots" | "cell"
    description: str = ""
    context: Callable = model_part   # context(env, name) -> what a method receives
    checkpoint_kind: dict | None = None   # config fields a saved checkpoint must have to stand in for it


GENERATORS: dict[str, Generator] = {}


def register_generator(name: str, config: type, train: Callable | None, scope: str, description: str = "",
                       context: Callable = model_part, checkpoint_kind: dict | None = None) -> Generator:
    if scope not in ("pool", "shots", "cell"):
        raise ValueError(f"generator scope must be pool, shots or cell, got {scope!r}")
    if (train is None) != (scope == "cell"):
        raise ValueError(f"generator {name!r}: scope 'cell' generators are built by their context hook (train=None); "
                         f"the others need a train function")
    GENERATORS[name] = Generator(name, config, train, scope, description, context, checkpoint_kind)
    return GENERATORS[name]


def check_generator_settings(settings: dict) -> None:
    """{name: {field: value}} -> SettingError (a ValueError) naming an unknown generator or setting (a key that
    cannot be set does not exist), or a value of the wrong type or out of range, with what is allowed."""
    if not isinstance(settings, dict):
        raise SettingError(f"generator settings must be {{generator: {{setting: value}}}}, got {settings!r}")
    for name, values in settings.items():
        if name not in GENERATORS:
            raise SettingError(f"unknown generator {name!r}; generators: {sorted(GENERATORS)}")
        check_values(field_allowed(GENERATORS[name].config), values, "generator setting", name)


def generator_config(name: str, settings: dict):
    return GENERATORS[name].config(**settings.get(name, {}))


def settings_table() -> dict[str, dict]:
    """{generator: {setting: default}} for forms and --help."""
    return {name: asdict(g.config()) for name, g in GENERATORS.items()}


# --------------------------------------------------------------------------------------------- training

VAE_MODEL = {"kind": "vae"}
AAE_UNIFORM_MODEL = {"kind": "aae", "prior": "uniform"}


def _model_config(model: dict, input_shape, cfg) -> ModelConfig:
    """The model config of a generator: its kind (and prior) from `model`, every other field the kind's config
    has from the generator's config (beta only where the kind has one)."""
    from dataclasses import fields as fields_of

    from core.config import model_config_class

    own = {f.name for f in fields_of(model_config_class(model["kind"]))}
    shared = {k: getattr(cfg, k) for k in own if hasattr(cfg, k) and k not in model}
    shared.setdefault("arch", "mlp")
    return ModelConfig(**model, input_shape=tuple(input_shape), **shared)


@torch.no_grad()
def init_output_bias(model, data: Dataset) -> None:
    """Start an image decoder's last linear layer at logit(mean image): a cheaper start (measured with the
    current AAE on mnist5k, MLP, 25 epochs: d = 16 recon MSE 0.0142 without, 0.0112 with)."""
    if not data.is_image:
        return
    linears = [m for m in model.decoder.modules() if isinstance(m, torch.nn.Linear)]
    if linears and linears[-1].out_features == data.x[0].numel():
        mean = data.x.mean(0).flatten().clamp(1e-3, 1 - 1e-3)
        linears[-1].bias.copy_(torch.logit(mean).to(linears[-1].bias))


def _build(model: dict, data: Dataset, cfg, seed_parts: tuple):
    """The model with its initial weights from the seed stream (never the global RNG)."""
    model = build_model(_model_config(model, data.input_shape, cfg), seed=stream(*seed_parts, "init"))
    init_output_bias(model, data)
    return model


def _train(model, data: Dataset, cfg, seed_parts: tuple, device: str, stop, on_step=None):
    """Train for about cfg.steps optimiser steps (a budget in steps, whatever the data size)."""
    epochs = max(1, round(cfg.steps / math.ceil(len(data) / cfg.batch_size)))
    tcfg = TrainConfig(epochs=epochs, batch_size=cfg.batch_size, lr=cfg.lr, seed=stream_seed(*seed_parts, "fit"),
                       device=device, amp=False)
    if fit(model, data, tcfg, on_step=on_step, stop=stop).get("stopped"):
        raise Stopped()
    return model.eval()


def train_vae(data: Dataset, cfg: VAEConfig, seed_parts: tuple, device: str, stop=None) -> dict:
    """{"model": the VAE, "early": its snapshot after early_fraction of training}."""
    model = _build(VAE_MODEL, data, cfg, seed_parts)
    epochs = max(1, round(cfg.steps / math.ceil(len(data) / cfg.batch_size)))
    early_epoch, snap = max(1, round(epochs * cfg.early_fraction)), {}

    def on_step(info):
        if info["epoch"] == early_epoch and "early" not in snap:
            snap["early"] = copy.deepcopy(model).eval()

    _train(model, data, cfg, seed_parts, device, stop, on_step)
    return {"model": model, "early": snap.get("early", copy.deepcopy(model))}


def train_aae(data: Dataset, cfg: AAEConfig, seed_parts: tuple, device: str, stop=None) -> dict:
    return {"model": _train(_build(AAE_UNIFORM_MODEL, data, cfg, seed_parts), data, cfg, seed_parts, device, stop)}


def train_multi_vae(data: Dataset, cfg: MultiVAEConfig, seed_parts: tuple, device: str, stop=None) -> dict:
    """{"class-<c>": VAE of class c, ...} (classes without shots are skipped). data: the labelled shots."""
    out = {}
    g = stream(*seed_parts, "mix-in")
    n_classes = len(data.class_names)
    for c in range(n_classes):
        check_stop(stop)
        own = torch.nonzero(data.y == c).flatten()
        if len(own) == 0:
            continue
        idx = own
        if cfg.mix_in > 0:
            others = torch.nonzero(data.y != c).flatten()
            n_mix = min(len(others), max(1, round(len(own) * cfg.mix_in / (1 - cfg.mix_in))))
            idx = torch.cat([own, others[torch.randperm(len(others), generator=g)[:n_mix]]])
        part = Dataset(f"{data.id}-class-{c}", data.x[idx].cpu(), data.y[idx].cpu(), list(data.class_names))
        out[f"class-{c}"] = _train(_build(VAE_MODEL, part, cfg, (*seed_parts, c)), part, cfg, (*seed_parts, c), device, stop)
    return out


def per_class_models(env, name: str) -> list:
    """Multi-VAE's context: one model per class (None for a class without shots)."""
    parts = env.generator_parts(name)
    return [parts.get(f"class-{c}") for c in range(env.n_classes)]


def generative_classifier(env, name: str):
    """The GC's context: the recipe's classifier trained in the cell on gc_training_set (the shots, early-VAE
    reconstructions, noisy decodes of the final VAE); a method gets x -> class probabilities."""
    cfg: GCConfig = generator_config(name, env.spec.generators)
    vae = env.generator_parts("vae")
    xg, yg = gc_training_set(env.x_lab, env.y_lab, vae["early"], vae["model"], cfg,
                             stream(env.cell.seed, env.cell.shots, "gc-data"))
    gc = env.train_on(xg, soft_targets(yg, env.n_classes))
    return lambda xb: torch.softmax(gc(xb), 1)


register_generator("vae", VAEConfig, train_vae, "pool", "beta-VAE for the vae-* samplers, GC and latent-probe",
                   checkpoint_kind=VAE_MODEL)
register_generator("aae-uniform", AAEConfig, train_aae, "pool", "AAE with a uniform prior for lsi / lsi-online",
                   checkpoint_kind=AAE_UNIFORM_MODEL)
register_generator("multi-vae", MultiVAEConfig, train_multi_vae, "shots", "one VAE per class on its shots",
                   context=per_class_models)
register_generator("gc", GCConfig, None, "cell", "generative classifier (trained in the cell from the VAE)",
                   context=generative_classifier)


# --------------------------------------------------------------------------------------------- save / load

MANIFEST = "generator.json"          # written last into a complete generator folder: its name and parts


def save_generator(folder: Path, name: str, models: dict, data: Dataset) -> None:
    """Each model of a trained generator as a checkpoint folder <folder>/<part>/ (safetensors + config), written
    into a temporary sibling folder with the manifest (MANIFEST, listing the parts) last, then renamed to `folder`
    in one step: a killed save leaves no folder under the final name, only a hidden `.<name>.*.partial` folder that
    the next attempt removes. A complete folder already there is kept (its twin: training is deterministic)."""
    import shutil
    import tempfile

    from core.checkpoints import save_checkpoint
    from core.fewshot.runfiles import readable_by_group

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=folder.parent))
    try:
        for part, model in models.items():
            save_checkpoint(tmp / part, model, dataset_id=data.id, class_names=list(data.class_names),
                            metrics=generator_health(model, data.x), extra={"generator": name})
        (tmp / MANIFEST).write_text(json.dumps({"generator": name, "parts": sorted(models)}, indent=1))
        readable_by_group(tmp, folder=True)
        if generator_complete(folder):
            shutil.rmtree(tmp)
            return
        if folder.exists():                       # an incomplete folder (the caller removes it first, normally)
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def generator_complete(folder: Path) -> bool:
    """True when `folder` holds a completely saved generator: its manifest is there and so is every part it lists.
    A folder that runs before the manifest existed wrote counts as complete when the run's generators.json lists
    it (that log entry was written only after the whole folder was saved)."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    manifest = folder / MANIFEST
    if manifest.is_file():
        try:
            parts = json.loads(manifest.read_text())["parts"]
        except (ValueError, KeyError, TypeError):
            return False
        return all((folder / p).is_dir() for p in parts)
    log = folder.parent.parent / "generators.json"
    try:
        return folder.name in json.loads(log.read_text())
    except (OSError, ValueError):
        return False


def load_generator(folder: Path, device) -> dict:
    from core.checkpoints import load_checkpoint

    folder = Path(folder)
    if not generator_complete(folder):
        raise ValueError(f"{folder} holds no completely saved generator; resume the run to retrain it")
    parts = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    out = {}
    for p in parts:
        ckpt = load_checkpoint(p, device=device)
        ckpt.model.fewshot_health = ckpt.meta.get("metrics", {})
        out[p.name] = ckpt.model
    return out


@torch.no_grad()
def generator_health(model, x: Tensor, n: int = 1000) -> dict:
    """Reconstruction MSE and mean per-dimension std of the codes on up to n training inputs: a collapsed
    generator (all codes equal, recon = the mean input) shows z_std ~ 0."""
    from core.latent import encode_dataset
    from core.train import reconstruction_error

    xs = x[:n]
    z = encode_dataset(model, xs)
    return {"recon_mse": reconstruction_error(model, xs), "z_std": float(z.std(0).mean())}


# --------------------------------------------------------------------------------------------- GC

def gc_training_set(x: Tensor, y: Tensor, early_vae, vae, cfg: GCConfig, rng: torch.Generator) -> tuple[Tensor, Tensor]:
    """The generative classifier's training data: the shots, plus their reconstructions by an early VAE
    ('bad' reconstructions, for images) or noisy copies (for vectors), plus decoded mu + noise of the final
    VAE — all labelled with their source's class."""
    from core.latent import decode_latents, encode_dataset

    xs, ys = [x], [y]
    if x.ndim == 4:
        for m in (early_vae, vae):
            z = encode_dataset(m, x)
            z = z + cfg.noise * torch.randn(z.shape, generator=rng)
            xs.append(decode_latents(m, z).reshape(x.shape).to(x.device))
            ys.append(y)
    else:
        for _ in range(2):
            xs.append(x + cfg.vector_noise * torch.randn(x.shape, generator=rng).to(x.device))
            ys.append(y)
    return torch.cat(xs), torch.cat(ys)


def soft_targets(y: Tensor, n_classes: int) -> Tensor:
    return F.one_hot(y.long(), n_classes).float()
