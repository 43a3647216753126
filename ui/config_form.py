"""Streamlit widgets built from a config dataclass: one widget per field, typed, labelled, with its help.

The Train page draws a model kind's settings with `config_widgets(cls, ...)`; a new kind's fields appear
there as widgets without any change to the page. bool -> checkbox, a field with "choices" -> selectbox,
int / float -> number_input (bounded by the field's "min" / "max"), str -> text_input. Fields marked
metadata={"form": False} (set by the program, e.g. input_shape) are left out.
"""

from __future__ import annotations

from dataclasses import MISSING, Field

import streamlit as st

from core.config_flags import field_type, visible_fields


def field_label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _default(f: Field):
    return f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]


def field_widget(container, cls, f: Field, key: str, value=None, bounds: tuple | None = None):
    """Draw one field's widget in `container` and return its value. `value` overrides the default shown,
    `bounds` (min, max) narrows the field's own bounds (a page may allow less than the config does)."""
    typ = field_type(cls, f)
    meta = f.metadata
    value = _default(f) if value is None else value
    label, help_text = field_label(f.name), meta.get("help") or None
    if typ is bool:
        return container.checkbox(label, value=bool(value), help=help_text, key=key)
    if "choices" in meta:
        options = list(meta["choices"])
        return container.selectbox(label, options, index=options.index(value), help=help_text, key=key)
    if typ in (int, float):
        lo, hi = bounds or (meta.get("min"), meta.get("max"))
        cast = int if typ is int else float
        kw = {"min_value": None if lo is None else cast(lo), "max_value": None if hi is None else cast(hi)}
        if typ is float:
            kw["format"] = "%.5g"
            kw["step"] = 0.5 if abs(float(value)) >= 1 else float(value) or 0.1
        return container.number_input(label, value=cast(value), help=help_text, key=key, **kw)
    return container.text_input(label, value=str(value), help=help_text, key=key)


def config_widgets(cls, key_prefix: str, columns=None, values: dict | None = None, bounds: dict | None = None,
                   skip: tuple[str, ...] = ()) -> dict:
    """Draw a widget for each visible field of the dataclass `cls`, spread over `columns` (containers;
    default the main area), keyed f"{key_prefix}{field name}"; return {field name: value}.

    The same field name gets the same key in every class, so a value the user set (latent_dim) survives
    switching between model kinds."""
    values, bounds = values or {}, bounds or {}
    columns = columns or [st]
    out = {}
    for i, f in enumerate(visible_fields(cls, skip)):
        out[f.name] = field_widget(columns[i % len(columns)], cls, f, f"{key_prefix}{f.name}",
                                   values.get(f.name), bounds.get(f.name))
    return out
