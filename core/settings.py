"""KEY=VALUE settings as typed on a command line or in a text box, parsed in one place for the CLI and the app.

    flat(["lr=0.002", "schedule=cosine"], "--recipe")          -> {"lr": 0.002, "schedule": "cosine"}
    dotted(["mixup.alpha=0.4"], "--param", "mixup.alpha=0.4")  -> {"mixup": {"alpha": 0.4}}

Values are read as JSON when they are JSON (numbers, true/false, null, lists, quoted strings), else kept
as text. A malformed item raises ValueError naming the flag (or field) and showing an example.

What values a setting accepts is checked here too, in one format for every kind of setting (generator configs,
the classifier recipe, augmentation parameters): `Allowed` (type, bounds, choices) from a dataclass field's
annotation and metadata ("min" / "max" inclusive, "above" / "below" exclusive, "choices": the keys core.config's
model fields use), and `check_values` raising SettingError, one line, e.g.
    generator setting vae.batch_size=0 is out of range; allowed: an integer >= 1
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, dataclass, fields


def parse_value(text: str):
    """'0.4' -> 0.4, 'true' -> True, '[1, 2]' -> [1, 2], 'cosine' -> 'cosine'."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def flat(items: list[str], flag: str, example: str = "lr=0.002") -> dict:
    """["KEY=VALUE", ...] -> {KEY: value}; `flag` and `example` go into the error message."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"{flag} {item!r}: write KEY=VALUE, e.g. {example}")
        key, value = item.split("=", 1)
        out[key.strip()] = parse_value(value)
    return out


def dotted(items: list[str], flag: str, example: str) -> dict:
    """["NAME.KEY=VALUE", ...] -> {NAME: {KEY: value}}; `flag` and `example` go into the error message."""
    out: dict = {}
    for item in items:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ValueError(f"{flag} {item!r}: write NAME.KEY=VALUE, e.g. {example}")
        key, value = item.split("=", 1)
        head, name = key.strip().split(".", 1)
        out.setdefault(head, {})[name] = parse_value(value)
    return out


# ------------------------------------------------------------------------------------------ checking values

class SettingError(ValueError):
    """A setting's value the user gave is of the wrong type or out of range. One line that names the setting,
    the value and what is allowed; the CLI exits with 2 on it and the pages show it as "your settings"."""


@dataclass(frozen=True)
class Allowed:
    """What one setting accepts: its type (bool, int, float or str), bounds (min / max inclusive, above / below
    exclusive), choices, and whether None (JSON null) is accepted. A float setting takes ints too; NaN and
    infinities are never allowed; an int setting takes no floats and no true/false."""
    type: type
    min: float | None = None
    max: float | None = None
    above: float | None = None
    below: float | None = None
    choices: tuple | None = None
    optional: bool = False

    def describe(self) -> str:
        """'an integer >= 1', 'a number in (0, 1]', "one of 'mlp', 'conv'", 'true or false' (+ ' or null')."""
        if self.choices is not None:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.type is bool:
            text = "true or false"
        elif self.type is str:
            text = "a text"
        else:
            text = "an integer" if self.type is int else "a number"
            low = high = None                     # (bound, bracket, sign)
            if self.min is not None or self.above is not None:
                low = (self.min, "[", ">=") if self.min is not None else (self.above, "(", ">")
            if self.max is not None or self.below is not None:
                high = (self.max, "]", "<=") if self.max is not None else (self.below, ")", "<")
            if low and high:
                text += f" in {low[1]}{_num(low[0])}, {_num(high[0])}{high[1]}"
            elif low:
                text += f" {low[2]} {_num(low[0])}"
            elif high:
                text += f" {high[2]} {_num(high[0])}"
        return text + (" or null" if self.optional else "")

    def problem(self, value) -> str | None:
        """None when `value` is allowed, else what is wrong with it ('is text', 'is out of range', ...)."""
        if value is None:
            return None if self.optional else "is null"
        if self.type is bool:
            return None if isinstance(value, bool) else f"is {_kind(value)}"
        if self.type is str:
            if not isinstance(value, str):
                return f"is {_kind(value)}"
        elif self.type is int:
            if isinstance(value, bool) or not isinstance(value, int):
                return f"is {_kind(value)}"
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"is {_kind(value)}"
        elif math.isnan(value):
            return "is NaN, which is never allowed"
        elif math.isinf(value):
            return "is infinite, which is never allowed"
        if self.choices is not None:
            return None if value in self.choices else "is not one of the choices"
        if self.type in (int, float) and not (
                (self.min is None or value >= self.min) and (self.max is None or value <= self.max) and
                (self.above is None or value > self.above) and (self.below is None or value < self.below)):
            return "is out of range"
        return None

    def check(self, label: str, value) -> None:
        """SettingError('<label>=<value> <problem>; allowed: <describe>') unless `value` is allowed."""
        problem = self.problem(value)
        if problem is not None:
            raise SettingError(f"{label}={_show(value)} {problem}; allowed: {self.describe()}")


def _num(x) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _kind(value) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str):
        return "text"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, (list, tuple)):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__


def _show(value) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict, bool)) or value is None else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_TYPES = {"bool": bool, "int": int, "float": float, "str": str}


def allowed_from_type(annotation, default=None, meta: dict | None = None) -> Allowed | None:
    """An Allowed from a type annotation (a type or its text: 'int', 'float | None', ...) and the bounds of
    `meta` ({"min", "max", "above", "below", "choices"}: the keys dataclass fields carry in their metadata,
    as core.config's do). Without a usable annotation the default's type is used; None when neither says."""
    meta = dict(meta or {})
    text = "" if annotation is None else annotation if isinstance(annotation, str) else \
        getattr(annotation, "__name__", str(annotation))
    parts = [p.strip() for p in text.replace("Optional[", "").rstrip("]").split("|")] if text else []
    optional = "None" in parts or (default is None and annotation is not None)
    named = [_TYPES[p] for p in parts if p in _TYPES]
    typ = named[0] if len(named) == 1 else None
    if typ is None and default is not None and type(default) in (bool, int, float, str):
        typ = type(default)
    if typ is None:
        return None
    keys = ("min", "max", "above", "below")
    return Allowed(typ, **{k: meta[k] for k in keys if k in meta},
                   choices=tuple(meta["choices"]) if "choices" in meta else None,
                   optional=bool(meta.get("optional", optional)))


def field_allowed(cls) -> dict[str, Allowed]:
    """{field: Allowed} of a dataclass, from each field's annotation and metadata bounds."""
    out = {}
    for f in fields(cls):
        default = f.default if f.default is not MISSING else None
        allowed = allowed_from_type(f.type, default, f.metadata)
        if allowed is not None:
            out[f.name] = allowed
    return out


def check_values(allowed: dict[str, Allowed], values: dict, kind: str, owner: str = "") -> None:
    """SettingError for a key of `values` that `allowed` lacks (listing the known ones) or a value it refuses.
    kind: '<what> <noun>', e.g. 'generator setting', 'method parameter', 'recipe setting'; owner: the generator
    or method the values belong to ('vae'), written before each key as the user types it ('vae.batch_size')."""
    what, noun = kind.rsplit(" ", 1)
    if not isinstance(values, dict):
        whose = f"the {noun}s of {what} {owner!r}" if owner else f"{what} {noun}s"
        raise SettingError(f"{whose} must be KEY=VALUE pairs, got {_show(values)}")
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise SettingError(f"{what} {owner!r} has no {noun}(s) {unknown}; its {noun}s: {known}" if owner else
                           f"unknown {what} {noun}(s) {unknown}; known: {known}")
    prefix = f"{owner}." if owner else ""
    for key, value in values.items():
        allowed[key].check(f"{kind} {prefix}{key}", value)


def check_dataclass(obj) -> None:
    """A dataclass's own values against its fields' types and bounds (for __post_init__)."""
    allowed = field_allowed(type(obj))
    for name, a in allowed.items():
        a.check(f"{type(obj).__name__}.{name}", getattr(obj, name))
