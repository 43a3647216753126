"""The results doc's tables, regenerated from raw records: docs/tables.json names, for each table, the record
files (CSV, as the runner writes them, committed under docs/records/), which rows to keep, the metric, the
rows (shots or n_generated) and the baseline; docs/results.md holds each table between
`<!-- BEGIN:name -->` and `<!-- END:name -->`. `python -m core report` rewrites those blocks (and `--check`
says whether the committed doc matches its records), so every number in the doc can be checked.

A table's keys: name, records (glob patterns), caption; optional where (column -> value or list of values),
metric, baseline, row ("shots" | "n_generated"), label ("run": a column per record file; "method+run": a column
per method and record file, the baseline shared), strip (a prefix of the file names to drop), rename,
n_follows_shots (runs made with `--n-generated shots`: one column per method, not one per n).
"""
from __future__ import annotations

import glob
import json
import math
import re
from pathlib import Path

from core.fewshot.report import markdown_table, summarize

INT_KEYS = ("shots", "seed", "n_generated", "n_labelled", "n_added", "steps", "n_eval")


def load_records(pattern: str, root: Path) -> list[dict]:
    """Records of every CSV matching `pattern` (relative to root), typed, each with "run": the file's stem."""
    import pandas as pd

    files = sorted(glob.glob(str(root / pattern)))
    if not files:
        raise ValueError(f"no record files match {pattern!r} under {root}")
    out = []
    for f in files:
        for r in pd.read_csv(f).to_dict("records"):
            r = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for k in INT_KEYS:
                if r.get(k) is not None:
                    r[k] = int(r[k])
            r["run"] = Path(f).stem
            out.append(r)
    return out


def _keep(r: dict, where: dict) -> bool:
    return all((r.get(k) in v) if isinstance(v, list) else r.get(k) == v for k, v in where.items())


def _unique(records: list[dict], metric: str) -> list[dict]:
    """One record per cell: a table that reads several runs sharing a baseline (the same shots and seeds) sees
    its cells twice; they must agree (records are deterministic), else the runs are not comparable."""
    seen: dict[tuple, dict] = {}
    for r in records:
        key = (r["method"], r["shots"], r["seed"], r.get("n_generated"), r.get("dataset"), r.get("evaluated_on"),
               r.get("data"), r.get("trained_on"))
        if key in seen and seen[key][metric] != r[metric]:
            raise ValueError(f"{r['run']} and {seen[key]['run']} disagree on {key}: not the same protocol")
        seen.setdefault(key, r)
    return list(seen.values())


def render_samplers(table: dict, root: Path) -> str:
    """A samplers-against-the-holes table (`"kind": "samplers"`): core.sampler_table's summary of the records,
    mean [95 % t-interval over the sampling seeds] per figure."""
    from core.sampler_table import format_table, summarise

    records = sampler_records(table, root)
    seeds = sorted({int(r["seed"]) for r in records})
    return (_head(table, f"{len(records)} rows, sampling seeds {seeds[0]}-{seeds[-1]}")
            + "\n\n" + format_table(summarise(records)))


def sampler_records(table: dict, root: Path) -> list[dict]:
    """A samplers table's records (core.sampler_table.read_records of every file its patterns match)."""
    from core.sampler_table import read_records

    files = sorted(f for pattern in table["records"] for f in glob.glob(str(root / pattern)))
    if not files:
        raise ValueError(f"no record files match {table['records']} under {root}")
    return [r for f in files for r in read_records(f)]


def render(table: dict, root: Path) -> str:
    if table.get("kind") == "samplers":
        return render_samplers(table, root)
    if table.get("kind") == "tuning":
        from core.fewshot.tuning_table import render_tuning

        return render_tuning(table, root)
    if table.get("kind") == "tuned":
        from core.fewshot.tuned_table import render_tuned

        return render_tuned(table, root)
    records = table_records(table, root)
    row = table.get("row", "shots")
    rows = summarize(records, table.get("metric", "f1_weighted"), table.get("baseline", "none"), row=row)
    seeds = sorted({r["seed"] for r in records})
    head = _head(table, f"{len(records)} cells, seeds {seeds[0]}-{seeds[-1]}, {table.get('metric', 'f1_weighted')}")
    return head + "\n\n" + markdown_table(rows, baseline=table.get("baseline", "none"), row=row)


def table_records(table: dict, root: Path) -> list[dict]:
    """A table's records as its columns see them: filtered by `where`, each "method" set to its column's name
    (label / rename / n_follows_shots), one record per cell."""
    records = [r for pattern in table["records"] for r in load_records(pattern, root)]
    records = [r for r in records if _keep(r, table.get("where", {}))]
    prefix = table.get("strip", "")
    if table.get("label") == "run":                    # one column per run folder (e.g. recipe variants)
        for r in records:
            r["method"] = r["run"].removeprefix(prefix)
    elif table.get("label") == "method+run":           # runs of one method's variants beside shared baselines
        for r in records:
            if r["method"] != table.get("baseline", "none"):
                r["method"] = f"{r['method']} ({r['run'].removeprefix(prefix)})"
    if table.get("n_follows_shots"):                   # --n-generated shots: n is the row, not a column
        for r in records:
            r["n_generated"] = None
    if table.get("rename"):
        for r in records:
            r["method"] = table["rename"].get(r["method"], r["method"])
    return _unique(records, table.get("metric", "f1_weighted"))


def _head(table: dict, what: str) -> str:
    """A table's caption line: its caption, its record files and `what` they hold."""
    return (f"{table.get('caption', '')}{' ' if table.get('caption') else ''}"
            f"Records: {', '.join('`docs/records/' + p + '`' for p in table['records'])}; {what}.")


def regenerate(doc: Path, tables_file: Path, root: Path) -> str:
    """The doc's text with every table block and every cited prose number (core.fewshot.claims) rewritten from
    the records."""
    return regenerate_checked(doc, tables_file, root)[0]


def regenerate_checked(doc: Path, tables_file: Path, root: Path) -> tuple[str, list[str]]:
    """(regenerate's text, the prose numbers that differed from their tables: "line N: ... = ...")."""
    from core.fewshot.claims import rewrite

    text = doc.read_text()
    tables = json.loads(tables_file.read_text())
    for table in tables:
        name = table["name"]
        pattern = re.compile(rf"(<!-- BEGIN:{re.escape(name)} -->\n)(?:.*?\n)?(<!-- END:{re.escape(name)} -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"{doc} has no block <!-- BEGIN:{name} --> ... <!-- END:{name} -->")
        body = render(table, root)
        text = pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)
    return rewrite(text, tables, root)
