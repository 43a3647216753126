"""Dataclass configs. A checkpoint stores `to_dict()`; rebuilding is `Config.from_dict(saved)`.

Model configs are open: every model kind registers its own `ModelConfig` subclass beside its model class
(`core.models.register_model`). The fields shared by every kind live here, in `ModelConfig`; a kind adds
its own typed fields, each with a default and `metadata={"help": ...}` (plus "choices" / "min" / "max" where
a value is bounded): the CLI flags (`core.config_flags`) and the Train page's form (`ui.config_form`) are
built from those fields, so a new kind needs no change anywhere else. A kind's field must not reuse the
name of a TrainConfig field (both become `python -m core train` flags).

`ModelConfig(kind=..., **fields)` and `ModelConfig.from_dict(d)` build the registered kind's config. They also
read the flat dicts that checkpoints stored before kinds were open ({"kind", "prior", "beta", "beta_norm",
...} for every kind): a key of that old format that a kind does not have is dropped, because the old models
ignored it (an AE's prior was always "none", a VAE's always "gaussian", only a VAE read beta).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

from core.settings import check_dataclass

PRIORS = ("uniform", "gaussian", "none")
MAX_LATENT, MAX_HIDDEN, MAX_INPUTS = 1024, 8192, 3 * 256 * 256
DEFAULT_KIND = "vae"
# Keys every kind's config accepted in the flat format of checkpoints written before kinds were open.
LEGACY_FLAT_KEYS = ("prior", "beta", "beta_norm")

# kind -> config class, filled by core.models.register_model (importing core.models registers every kind).
MODEL_CONFIGS: dict[str, type["ModelConfig"]] = {}


def help_of(f) -> str:
    return f.metadata.get("help", "")


class _DictMixin:
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


def model_config_class(kind: str) -> type["ModelConfig"]:
    """The registered config class of `kind`; ValueError naming the known kinds."""
    import core.models  # noqa: F401  (registers every kind)

    if kind not in MODEL_CONFIGS:
        raise ValueError(f"unknown model {kind!r}; choose one of {sorted(MODEL_CONFIGS)}")
    return MODEL_CONFIGS[kind]


class _DispatchOnKind(type):
    """`ModelConfig(kind="aae", ...)` builds the registered kind's class (AAEConfig); calling a kind's own
    class (AAEConfig(...)) builds it directly."""

    def __call__(cls, *args, **kwargs):
        if cls is ModelConfig:
            if args:
                raise TypeError("ModelConfig takes keyword arguments only (kind=..., latent_dim=...)")
            return ModelConfig.from_dict(kwargs)
        return super().__call__(*args, **kwargs)


@dataclass
class ModelConfig(_DictMixin, metaclass=_DispatchOnKind):
    """Fields every model kind has. `kind` is the registry name (a class attribute set at registration);
    `prior` is the latent prior the kind's codes follow ("gaussian", "uniform" or "none")."""

    kind: ClassVar[str] = ""
    prior: ClassVar[str] = "gaussian"
    description: ClassVar[str] = ""  # one line for the Train page, the CLI's --help and the catalog

    input_shape: tuple[int, ...] = field(default=(1, 28, 28), metadata={
        "help": "shape of one input (C, H, W) or (F,); set from the dataset", "form": False})
    latent_dim: int = field(default=16, metadata={
        "help": "size of the latent code z (2 shows the latent space without projection)",
        "min": 1, "max": MAX_LATENT})
    hidden: int = field(default=256, metadata={
        "help": "width of the widest hidden layer", "min": 2, "max": MAX_HIDDEN})
    arch: str = field(default="auto", metadata={
        "help": "network: auto (MLP for vectors and images up to 16x16, conv for larger), mlp or conv",
        "choices": ("auto", "mlp", "conv")})

    def __post_init__(self):
        self.input_shape = tuple(int(s) for s in self.input_shape)
        # Bounds also guard loading: a checkpoint's config.json is user input, and a huge or negative size
        # would otherwise allocate gigabytes or crash inside torch.
        if not 1 <= self.latent_dim <= MAX_LATENT:
            raise ValueError(f"latent_dim must be in 1..{MAX_LATENT} (2 for direct plots), got {self.latent_dim}")
        if not 2 <= self.hidden <= MAX_HIDDEN:
            raise ValueError(f"hidden must be in 2..{MAX_HIDDEN}, got {self.hidden}")
        if not self.input_shape or any(s < 1 for s in self.input_shape) or math.prod(self.input_shape) > MAX_INPUTS:
            raise ValueError(f"input_shape must be positive sizes with at most {MAX_INPUTS:,} values, got {self.input_shape}")
        check_dataclass(self)  # types, bounds and choices a kind declares on its fields (core.settings: one checker)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        """The config of d["kind"] (default "vae") from a dict such as a checkpoint's "model" entry."""
        if not isinstance(d, dict):
            raise ValueError(f"a model config must be a dict, got {type(d).__name__}")
        d = dict(d)
        kind = d.pop("kind", cls.kind or DEFAULT_KIND)
        target = model_config_class(kind)
        if cls is not ModelConfig and target is not cls:
            raise ValueError(f"{cls.__name__} cannot hold a {kind!r} model; use ModelConfig.from_dict")
        known = {f.name for f in fields(target)}
        if "prior" in d and "prior" not in known and d["prior"] not in PRIORS:
            raise ValueError(f"prior must be one of {PRIORS}, got {d['prior']!r}")
        for key in LEGACY_FLAT_KEYS:  # the old flat format: keys this kind never read
            if key not in known:
                d.pop(key, None)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"model kind {kind!r}: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
        return target(**d)

    def describe(self) -> str:
        """A short label for this model (the kind's description; kinds add their distinguishing settings)."""
        return self.kind.upper()

    def slug(self) -> str:
        """A short file-name part naming this model (folder names of trained checkpoints)."""
        return self.kind


@dataclass
class TrainConfig(_DictMixin):
    epochs: int = field(default=20, metadata={"help": "passes over the data set", "min": 1})
    batch_size: int = field(default=128, metadata={"help": "images per optimiser step", "min": 1})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
    seed: int = field(default=0, metadata={"help": "seed of the initial weights, batch order and model noise"})
    device: str = field(default="auto", metadata={"help": "auto (CUDA when present), cpu or cuda"})
    amp: bool = True  # only ever used on GPU

    def __post_init__(self):
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"learning rate must be > 0, got {self.lr}")
