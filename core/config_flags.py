"""Command-line flags built from config dataclasses: one `--field-name` per field, typed, with its help.

`add_config_flags(parser, classes)` adds the union of the classes' fields (a field several classes share,
such as `latent_dim`, is one flag); `config_kwargs(args, cls)` collects the flags the user gave that `cls`
has, and refuses the ones it lacks, so `--beta 4 --model aae` says that beta belongs to another kind.
Flags default to None (not given): the dataclass's own default then applies, and stays in one place.
"""

from __future__ import annotations

import argparse
import typing
from dataclasses import MISSING, Field, fields


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def field_type(cls, f: Field) -> type:
    """The field's runtime type (bool, int, float, str, tuple), annotations being strings here."""
    hint = typing.get_type_hints(cls)[f.name]
    return typing.get_origin(hint) or hint


def visible_fields(cls, skip: tuple[str, ...] = ()) -> list[Field]:
    """The fields a user sets: not those marked metadata={"form": False} (set by the program) or skipped."""
    return [f for f in fields(cls) if f.metadata.get("form", True) and f.name not in skip]


def _default(f: Field):
    return f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]


def add_config_flags(parser, classes: dict[str, type], skip: tuple[str, ...] = ()) -> None:
    """Add one flag per distinct field of `classes` ({label: dataclass}, e.g. {"aae": AAEConfig, ...}).
    The help names the classes that have the field when not all of them do, and the default."""
    owners: dict[str, list[str]] = {}
    first: dict[str, tuple[type, Field]] = {}
    for label, cls in classes.items():
        for f in visible_fields(cls, skip):
            owners.setdefault(f.name, []).append(label)
            first.setdefault(f.name, (cls, f))
    for name, (cls, f) in first.items():
        typ = field_type(cls, f)
        defaults = {label: _default(next(g for g in fields(classes[label]) if g.name == name)) for label in owners[name]}
        if len(set(map(repr, defaults.values()))) == 1:
            default_text = f"default {next(iter(defaults.values()))}"
        else:
            default_text = "default " + ", ".join(f"{k}: {v}" for k, v in defaults.items())
        where = "" if len(owners[name]) == len(classes) else f"[{', '.join(owners[name])}] "
        kw: dict = {"default": None, "dest": name, "help": f"{where}{f.metadata.get('help', '')} ({default_text})"}
        if typ is bool:
            parser.add_argument(flag_name(name), action=argparse.BooleanOptionalAction, **kw)
            continue
        if typ is tuple:
            kw.update(nargs="+", type=int)
        elif typ in (int, float, str):
            kw["type"] = typ
        if "choices" in f.metadata:
            kw["choices"] = list(f.metadata["choices"])
        parser.add_argument(flag_name(name), **kw)


def config_kwargs(args: argparse.Namespace, cls, every: dict[str, type], skip: tuple[str, ...] = ()) -> dict:
    """{field: value} for the flags the user gave that `cls` has; ValueError for a given flag that only other
    classes of `every` have (it would be silently ignored otherwise)."""
    own = {f.name for f in visible_fields(cls, skip)}
    out = {}
    for label, other in every.items():
        for f in visible_fields(other, skip):
            value = getattr(args, f.name, None)
            if value is None:
                continue
            if f.name in own:
                out[f.name] = tuple(value) if isinstance(value, list) else value
            else:
                users = [k for k, c in every.items() if f.name in {g.name for g in fields(c)}]
                raise ValueError(f"{flag_name(f.name)} is a setting of {', '.join(users)}, not of this model; "
                                 f"drop it or pick one of those")
    return out
