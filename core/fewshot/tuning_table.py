"""The tuning table of the results doc (`"kind": "tuning"` in docs/tables.json): every method's configurations
on the validation split, read from the raw records `python -m core tune` wrote (tuning.csv), the choice rule
applied again (core.fewshot.tuning.choose) and checked against the tuned-settings file the runner reads
(tuned.json beside it): a table can never show a choice the headline did not run with.

One row per method: the mean validation weighted F1 of each configuration over its cells (c0 = the method's
defaults), the chosen configuration, its gain over the defaults, and the setting itself.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from core.fewshot.tuning import choose


def tuning_rows(records: list[dict]) -> list[dict]:
    """records: tuning.csv's rows (method, config, entry, f1_weighted, ...) -> one dict per method, in order of
    first appearance: {"method", "means": [per configuration], "cells": [per configuration], "chosen", "entry"}."""
    by_method: dict[str, dict[int, list]] = {}
    entries: dict[tuple[str, int], str] = {}
    for r in records:
        by_method.setdefault(r["method"], {}).setdefault(int(r["config"]), []).append(float(r["f1_weighted"]))
        entries[(r["method"], int(r["config"]))] = r["entry"]
    rows = []
    for method, configs in by_method.items():
        idx = sorted(configs)
        if idx != list(range(len(idx))):
            raise ValueError(f"tuning records of {method} have configurations {idx}: rerun `python -m core tune`")
        means = [sum(configs[i]) / len(configs[i]) for i in idx]
        best = choose(means)
        rows.append({"method": method, "means": means, "cells": [len(configs[i]) for i in idx], "chosen": best,
                     "entry": json.loads(entries[(method, best)])})
    return rows


def check_against(rows: list[dict], tuned: dict) -> None:
    """The tuned-settings file must hold, for every tuned method, the entry its records choose."""
    methods = tuned.get("methods", {})
    for r in rows:
        if methods.get(r["method"], {}) != r["entry"]:     # no entry: the runner runs the defaults ({})
            raise ValueError(f"tuned.json's setting for {r['method']} is {methods.get(r['method'])!r}, but its "
                             f"tuning records choose configuration {r['chosen']} ({r['entry']!r}): rerun "
                             "`python -m core tune` to rewrite both")


def _setting(entry: dict) -> str:
    if not entry:
        return "defaults"
    parts = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in entry.get("recipe", {}).items()]
    for aug, params in entry.get("params", {}).items():
        parts += [f"{aug}.{k}={v:g}" if isinstance(v, float) else f"{aug}.{k}={v}" for k, v in params.items()]
    return "`" + " ".join(parts) + "`"


def markdown(rows: list[dict]) -> str:
    n = max(len(r["means"]) for r in rows)
    head = ["method", "c0 (defaults)", *[f"c{i}" for i in range(1, n)], "chosen", "chosen − defaults", "setting"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        means = [f"**{m:.4f}**" if i == r["chosen"] else f"{m:.4f}" for i, m in enumerate(r["means"])]
        means += [""] * (n - len(means))
        gain = r["means"][r["chosen"]] - r["means"][0]
        lines.append("| " + " | ".join([r["method"], *means, f"c{r['chosen']}", f"{gain:+.4f}",
                                          _setting(r["entry"])]) + " |")
    return "\n".join(lines)


def table_rows(table: dict, root: Path) -> list[dict]:
    """tuning_rows of a tuning table's records (one tuning.csv, relative to root), checked against the tuned.json
    in the same folder: what the table shows and the prose cites (core.fewshot.claims)."""
    import pandas as pd

    (pattern,) = table["records"]
    path = root / pattern
    if not path.exists():
        raise ValueError(f"no tuning records at {path}: run docs/experiments/tuning.sh")
    rows = tuning_rows(pd.read_csv(path).to_dict("records"))
    check_against(rows, json.loads((path.parent / "tuned.json").read_text()))
    return rows


def render_tuning(table: dict, root: Path) -> str:
    """The table block: caption, then the table of table_rows."""
    (pattern,) = table["records"]
    rows = table_rows(table, root)
    cells = sum(sum(r["cells"]) for r in rows)
    moved = sum(r["chosen"] != 0 for r in rows)
    shown = os.path.normpath(f"docs/records/{pattern}")
    return (f"{table.get('caption', '')} Records: `{shown}` ({cells} validation cells, "
            f"{len(rows)} methods, {moved} moved off their defaults); mean weighted F1 per configuration, the "
            f"chosen one in bold.\n\n" + markdown(rows))
