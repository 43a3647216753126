"""KEY=VALUE settings as typed on a command line or in a text box, parsed in one place for the CLI and the app.

    flat(["lr=0.002", "schedule=cosine"], "--recipe")          -> {"lr": 0.002, "schedule": "cosine"}
    dotted(["mixup.alpha=0.4"], "--param", "mixup.alpha=0.4")  -> {"mixup": {"alpha": 0.4}}

Values are read as JSON when they are JSON (numbers, true/false, null, lists, quoted strings), else kept
as text. A malformed item raises ValueError naming the flag (or field) and showing an example.
"""

from __future__ import annotations

import json


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
