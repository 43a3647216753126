"""Numbers quoted in the results doc's prose, tied to the table they come from (generated snippets).

A number in prose cites its source with an HTML comment right after it, invisible once rendered:

    label spreading reaches 0.936<!-- cite pool | label-spread | 10 --> at 10 shots

    <!-- cite TABLE | COLUMN | ROW [| FIELD] -->
      TABLE   a table's name in docs/tables.json;  COLUMN  its column as the table heads it (without the <sup>);
      ROW     the row value (shots, or n_generated); "2+10": the mean of FIELD over those rows;
      FIELD (default "mean"):
        mean          the column's mean                      lo / hi     the ends of the mean's 95 % interval
        diff / ci     the paired difference against the table's baseline / its 95 % half-width
        vs OTHER      the paired difference against column OTHER on the same seeds (e.g. "vs label-spread")
        vsci OTHER    its 95 % half-width;  vslo OTHER / vshi OTHER  the ends of its 95 % interval
        above C       the mean minus the constant C (e.g. "above 0.849", a figure of the Bonn slides);
        below C       C minus the mean
        avg KEY       the mean over the cell's seeds of the records' column KEY (e.g. "avg pseudo_label_accuracy")
        -FIELD        minus FIELD: a loss written without its sign ("costs 0.047<!-- cite ... | -diff -->")
    A tuning table (`"kind": "tuning"`) is cited by method and what:
      <!-- cite tuning | METHOD | WHAT -->   WHAT: defaults (configuration 0's mean validation F1), chosen (the
      chosen configuration's), gain (chosen minus defaults), or cK (configuration K's).
    A tuned table (`"kind": "tuned"`, core.fewshot.tuned_table) is cited like any table; its diff / ci are the
    paired difference tuned − defaults of the same method (no "vs OTHER").
    A samplers table (`"kind": "samplers"`) is cited by figure and row:
      <!-- cite samplers | FIGURE | MODEL SAMPLER [| FIELD] -->   FIGURE as core.sample_quality names it (fd,
      hole_share, ...); FIELD: mean, lo, hi, or vs / vslo / vshi / vsci "MODEL SAMPLER" (the paired difference,
      this row minus that one, over the sampling seeds).

A number that comes from no table says where it comes from instead, with a named reason (NOCITE_REASONS):

    the slides' 0.678<!-- nocite: slides -->, dropout 0.5<!-- nocite: protocol -->

`python -m core report` rewrites each cited number from the records with the decimals and the sign style the
prose gives it (a generated snippet); `--check` fails when one differs, naming the line. `uncited` lists the
decimal numbers of the prose (outside tables and code) that carry neither a citation nor a named exception;
tests/test_results_doc.py requires it to be empty.
"""
from __future__ import annotations

import re
from pathlib import Path

from core.fewshot.tuned_table import BASELINE as TUNED_BASELINE

NUMBER = r"[+\-\u2212]?\d+\.\d+"
CITE = re.compile(rf"(?P<num>{NUMBER})(?P<tag><!-- cite (?P<body>[^>]*?) -->)")
NOCITE = re.compile(rf"(?P<num>{NUMBER})<!-- nocite: (?P<why>[^>]*?) -->")
DECIMAL = re.compile(r"(?<![\w.])[+\-\u2212]?\d+\.\d+(?![\w.])")

# Why a prose number may stand without a citation. Each is a source no table of docs/tables.json holds.
NOCITE_REASONS = {
    "slides": "a figure of the Bonn slides (one run, seed 002), quoted beside ours",
    "protocol": "a constant of the protocol or a method's setting (dropout, alpha, thresholds, ...), not a result",
    "v1": "a result of protocol v1, whose tables are in the git history (git show 9aa99a1:docs/results.md)",
    "goal": "a goal of an issue, a threshold we compare with",
    "literature": "a figure from a paper",
    "measured": "a measurement recorded outside docs/records/ (a wall time, a one-off check)",
}
FIELDS = ("mean", "lo", "hi", "diff", "ci", "vs", "vsci", "vslo", "vshi", "above", "below", "avg")


def _parse(body: str) -> tuple[str, str, str, str, str, bool]:
    """(table, column, row, field kind, its argument, negated) of a citation's body."""
    parts = [p.strip() for p in body.split("|")]
    if len(parts) not in (3, 4):
        raise ValueError(f"a citation is 'TABLE | COLUMN | ROW [| FIELD]', got {body!r}")
    field = parts[3] if len(parts) == 4 else "mean"
    negated = field.startswith("-")
    kind, _, other = field.lstrip("-").partition(" ")
    other = other.strip()
    needs_arg = kind in ("vs", "vsci", "vslo", "vshi", "above", "below", "avg")
    if kind not in FIELDS or needs_arg != bool(other):
        raise ValueError(f"unknown citation field {field!r}; use mean, lo, hi, diff, ci, 'vs COLUMN', "
                         "'vsci COLUMN', 'vslo COLUMN', 'vshi COLUMN', 'above C', 'below C', 'avg KEY', or -FIELD")
    return parts[0], parts[1], parts[2], kind, other, negated


def _baseline(table: dict) -> str:
    """The column a table's "diff" is paired with: a tuned table pairs each method with its own defaults."""
    return TUNED_BASELINE if table.get("kind") == "tuned" else table.get("baseline", "none")


class Cited:
    """One table's records and summaries, computed once per (table, baseline)."""

    def __init__(self, tables: list[dict], root: Path):
        self.tables = {t["name"]: t for t in tables}
        self.root, self._records, self._rows = root, {}, {}

    def records(self, name: str) -> list[dict]:
        from core.fewshot.tables import table_records

        if name not in self.tables:
            raise ValueError(f"cites table {name!r}, which docs/tables.json does not name")
        if name not in self._records:
            table = self.tables[name]
            if table.get("kind") == "samplers":
                from core.fewshot.tables import sampler_records
                self._records[name] = sampler_records(table, self.root)
            elif table.get("kind") == "tuned":             # the tuned run's cells ("avg KEY" reads them), and
                from core.fewshot.tuned_table import tuned_records, tuned_rows   # its rows, from one read
                defaults, self._records[name], _ = tuned_records(table, self.root)
                self._rows[(name, TUNED_BASELINE)] = tuned_rows(defaults, self._records[name],
                                                                table.get("metric", "f1_weighted"))
            else:
                self._records[name] = table_records(table, self.root)
        return self._records[name]

    def rows(self, name: str, baseline: str | None = None) -> list[dict]:
        from core.fewshot.report import summarize

        records = self.records(name)
        table = self.tables[name]
        key = (name, baseline or _baseline(table))
        if table.get("kind") == "tuned" and key[1] != TUNED_BASELINE:   # its rows are made with its records
            raise ValueError(f"table {name!r} pairs each method with its own defaults; cite diff / ci, "
                             f"not vs {baseline!r}")
        if key not in self._rows:
            self._rows[key] = summarize(records, table.get("metric", "f1_weighted"), key[1],
                                        row=table.get("row", "shots"))
        return self._rows[key]

    def value(self, body: str) -> float:
        name, column, row_text, kind, other, negated = _parse(body)
        if self.tables.get(name, {}).get("kind") == "tuning":
            value = self._tuning_value(name, column, row_text)
        elif self.tables.get(name, {}).get("kind") == "samplers":
            value = self._sampler_value(name, column, row_text, kind, other)
        else:
            rows = [r.strip() for r in row_text.split("+")]
            value = sum(self._value(name, column, r, kind, other) for r in rows) / len(rows)
        return -value if negated else value

    def _value(self, name: str, column: str, row_text: str, kind: str, other: str) -> float:
        table = self.tables.get(name, {})
        row_key = table.get("row", "shots")
        if kind == "avg":
            return self._record_mean(name, column, row_key, row_text, other)
        baseline = other if kind in ("vs", "vsci", "vslo", "vshi") else None
        rows = self.rows(name, baseline)
        match = [r for r in rows if r["method"] == column and str(r.get(row_key)) == row_text]
        if not match:
            raise ValueError(f"table {name!r} has no column {column!r} at {row_key} {row_text}")
        r = match[0]
        if kind == "mean":
            return r["mean"]
        if kind in ("lo", "hi"):
            return r["mean"] - r["ci95"] if kind == "lo" else r["mean"] + r["ci95"]
        if kind in ("above", "below"):
            return (r["mean"] - float(other)) * (1 if kind == "above" else -1)
        base = baseline or _baseline(table)
        if "diff_vs_" + base not in r:
            raise ValueError(f"table {name!r}: {column!r} at {row_text} has no paired difference against {base!r}")
        diff, half = r["diff_vs_" + base], r["diff_ci95"]
        return {"diff": diff, "vs": diff, "ci": half, "vsci": half, "vslo": diff - half, "vshi": diff + half}[kind]

    def _record_mean(self, name: str, column: str, row_key: str, row_text: str, key: str) -> float:
        """The mean of the records' column `key` over one cell's seeds ("method n=N": that n_generated only)."""
        method, _, n = column.partition(" n=")
        cell = [r for r in self.records(name) if r["method"] == method and str(r.get(row_key)) == row_text
                and (not n or str(r.get("n_generated")) == n)]
        values = [float(r[key]) for r in cell if r.get(key) is not None]
        if not values:
            raise ValueError(f"table {name!r} has no records with {key!r} for {column!r} at {row_key} {row_text}")
        return sum(values) / len(values)

    def _tuning_value(self, name: str, method: str, what: str) -> float:
        """A tuning table's figure: defaults / chosen / gain / cK of one method (core.fewshot.tuning_table)."""
        if name not in self._records:
            from core.fewshot.tuning_table import table_rows
            self._records[name] = table_rows(self.tables[name], self.root)
        match = [r for r in self._records[name] if r["method"] == method]
        if not match:
            raise ValueError(f"tuning table {name!r} has no method {method!r}")
        means, chosen = match[0]["means"], match[0]["chosen"]
        if what in ("defaults", "chosen", "gain"):
            return {"defaults": means[0], "chosen": means[chosen], "gain": means[chosen] - means[0]}[what]
        if what.startswith("c") and what[1:].isdigit() and int(what[1:]) < len(means):
            return means[int(what[1:])]
        raise ValueError(f"a tuning table is cited with defaults, chosen, gain or c0..c{len(means) - 1}, not {what!r}")

    def _sampler_value(self, name: str, figure: str, row_text: str, kind: str, other: str) -> float:
        from core.sampler_table import paired_difference, summarise

        records = self.records(name)
        if figure not in records[0]:
            raise ValueError(f"table {name!r} has no figure {figure!r}")
        pair = tuple(row_text.split())
        if kind in ("mean", "lo", "hi"):
            match = [r for r in summarise(records) if (r["model"], r["sampler"]) == pair]
            if len(pair) != 2 or not match:
                raise ValueError(f"table {name!r} has no row 'MODEL SAMPLER' = {row_text!r}")
            return match[0][figure + {"mean": "", "lo": "_lo", "hi": "_hi"}[kind]]
        if kind not in ("vs", "vsci", "vslo", "vshi"):
            raise ValueError(f"a samplers table is cited with mean, lo, hi or vs / vsci / vslo / vshi, not {kind!r}")
        d = paired_difference(records, figure, tuple(other.split()), pair)
        return {"vs": d["mean"], "vslo": d["lo"], "vshi": d["hi"], "vsci": (d["hi"] - d["lo"]) / 2}[kind]


def _format(value: float, like: str) -> str:
    """value written like `like`: its decimals, and a sign where `like` has one."""
    decimals = len(like.split(".")[1])
    text = f"{value:+.{decimals}f}" if like[0] in "+-\u2212" else f"{value:.{decimals}f}"
    if like[0] == "\u2212":
        text = text.replace("-", "\u2212")
    return text                          # a negative value where the prose had no sign shows its "-": a mismatch


def rewrite(text: str, tables: list[dict], root: Path) -> tuple[str, list[str]]:
    """(text with every cited number rewritten from its table, ["line N: 0.944 cites ... = 0.948", ...] for
    those that differed)."""
    cited = Cited(tables, root)
    problems = []

    def sub(m: re.Match) -> str:
        new = _format(cited.value(m["body"]), m["num"])
        if new != m["num"]:
            line = text.count("\n", 0, m.start()) + 1
            problems.append(f"line {line}: {m['num']} cites {m['body'].strip()} = {new}")
        return new + m["tag"]

    return CITE.sub(sub, text), problems


def exceptions(text: str) -> dict[str, int]:
    """How many prose numbers carry each named exception (`<!-- nocite: REASON -->`); an unknown reason is an
    error, so every exception is one of NOCITE_REASONS."""
    counts: dict[str, int] = {}
    for m in NOCITE.finditer(text):
        why = m["why"].strip()
        if why not in NOCITE_REASONS:
            line = text.count("\n", 0, m.start()) + 1
            raise ValueError(f"line {line}: {m['num']} is marked 'nocite: {why}'; name one of "
                             f"{', '.join(NOCITE_REASONS)} (core/fewshot/claims.py), or cite its table")
        counts[why] = counts.get(why, 0) + 1
    return counts


def uncited(text: str) -> list[tuple[int, str]]:
    """(line, number) of every decimal number in the prose — outside table rows, table blocks, code and HTML
    comments — that carries neither a citation nor a named exception."""
    exceptions(text)                    # an unknown reason is an error, not an exception
    out, in_block, in_code = [], False, False
    for i, line in enumerate(text.splitlines(), 1):
        if line.startswith("<!-- BEGIN:"):
            in_block = True
        if line.startswith("<!-- END:"):
            in_block = False
            continue
        if line.startswith("```"):
            in_code = not in_code
            continue
        if in_block or in_code or line.lstrip().startswith("|"):
            continue
        bare = re.sub(r"`[^`]*`", "", NOCITE.sub("", CITE.sub("", line)))
        bare = re.sub(r"<!--.*?-->", "", bare)
        out += [(i, n) for n in DECIMAL.findall(bare)]
    return out
