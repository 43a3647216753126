"""A results-doc table of each method at its tuned setting beside its own defaults (`"kind": "tuned"` in
docs/tables.json): records = [the defaults run, the tuned run] (e.g. mnist-headline.csv, mnist-headline-tuned.csv),
the same seeds, shots and test set.

A column is a method that both runs hold; a cell is the tuned mean with the paired difference tuned − defaults on
the same seeds (mean, 95 % interval, a (+) / (-) mark where it survives Holm's correction over the whole table).
Paired against the method's own defaults rather than against `none`: the question is what the tuning bought.
Prose cites it like any table (`<!-- cite headline-tuned | classic | 2 | diff -->`: the gain from tuning).
"""
from __future__ import annotations

from pathlib import Path

from core.fewshot.report import holm, markdown_table, summarize

BASELINE = "defaults"        # the name the defaults run's records take in the pairing (and the citations' baseline)


def tuned_records(table: dict, root: Path) -> tuple[list[dict], list[dict], list[str]]:
    """(defaults records, tuned records, methods only the tuned run holds) of the methods both runs hold, in the
    tuned run's order of methods."""
    from core.fewshot.tables import load_records

    if len(table["records"]) != 2:
        raise ValueError(f"a tuned table names two record files, the defaults run then the tuned run; "
                         f"{table['name']!r} names {table['records']}")
    defaults, tuned = (load_records(pattern, root) for pattern in table["records"])
    have = {r["method"] for r in defaults}
    only_tuned = list(dict.fromkeys(r["method"] for r in tuned if r["method"] not in have))
    return defaults, [r for r in tuned if r["method"] in have], only_tuned


def tuned_rows(defaults: list[dict], tuned: list[dict], metric: str = "f1_weighted") -> list[dict]:
    """summarize()-style rows of tuned_records' two lists, one per (method, shots): the tuned mean and
    diff_vs_defaults, Holm over all."""
    rows = []
    for method in dict.fromkeys(r["method"] for r in tuned):
        pair = [{**r, "method": BASELINE} for r in defaults if r["method"] == method]
        pair += [r for r in tuned if r["method"] == method]
        rows += [r for r in summarize(pair, metric, BASELINE) if r["method"] == method]
    tested = [r for r in rows if "p_value" in r]
    for r, rejected in zip(tested, holm([r["p_value"] for r in tested])):
        r["holm"] = rejected
    return rows


def render_tuned(table: dict, root: Path) -> str:
    """The table block: caption (records, cells, what the tuned run holds that has no defaults), then the table."""
    defaults, tuned, only_tuned = tuned_records(table, root)
    seeds = sorted({r["seed"] for r in tuned})
    note = (f" Only in the tuned run (no defaults run to pair with; see its own table): {', '.join(only_tuned)}."
            if only_tuned else "")
    head = (f"{table.get('caption', '')} Records: {', '.join('`docs/records/' + p + '`' for p in table['records'])}; "
            f"{len(tuned)} tuned cells paired with their defaults, seeds {seeds[0]}-{seeds[-1]}, "
            f"{table.get('metric', 'f1_weighted')}; each cell the tuned mean, below it tuned − defaults on the same "
            f"seeds.{note}")
    return head + "\n\n" + markdown_table(tuned_rows(defaults, tuned, table.get("metric", "f1_weighted")),
                                          baseline=BASELINE)
