"""Numbers quoted in the results doc's prose, tied to the table they come from (generated snippets).

A number in prose cites its source with an HTML comment right after it, invisible once rendered:

    label spreading reaches 0.936<!-- cite pool | label-spread | 10 --> at 10 shots

    <!-- cite TABLE | COLUMN | ROW [| FIELD] -->
      TABLE   a table's name in docs/tables.json;  COLUMN  its column as the table heads it (without the <sup>);
      ROW     the row value (shots, or n_generated);  FIELD (default "mean"):
        mean          the column's mean                      lo / hi     the ends of the mean's 95 % interval
        diff / ci     the paired difference against the table's baseline / its 95 % half-width
        vs OTHER      the paired difference against column OTHER on the same seeds (e.g. "vs label-spread")
        vsci OTHER    its 95 % half-width

`python -m core report` rewrites each cited number from the records with the decimals and the sign style the
prose gives it (a generated snippet); `--check` fails when one differs, naming the line. A number without a
citation is not checked: `uncited` lists the decimal numbers of the prose (outside tables and code) that still
need one.
"""
from __future__ import annotations

import re
from pathlib import Path

CITE = re.compile(r"(?P<num>[+\-\u2212]?\d+\.\d+)(?P<tag><!-- cite (?P<body>[^>]*?) -->)")
DECIMAL = re.compile(r"(?<![\w.])[+\-\u2212]?\d+\.\d+(?![\w.])")


class Cited:
    """One table's records and summaries, computed once per (table, baseline)."""

    def __init__(self, tables: list[dict], root: Path):
        self.tables = {t["name"]: t for t in tables}
        self.root, self._records, self._rows = root, {}, {}

    def rows(self, name: str, baseline: str | None = None) -> list[dict]:
        from core.fewshot.report import summarize
        from core.fewshot.tables import table_records

        if name not in self.tables:
            raise ValueError(f"cites table {name!r}, which docs/tables.json does not name")
        table = self.tables[name]
        if name not in self._records:
            self._records[name] = table_records(table, self.root)
        key = (name, baseline or table.get("baseline", "none"))
        if key not in self._rows:
            self._rows[key] = summarize(self._records[name], table.get("metric", "f1_weighted"), key[1],
                                        row=table.get("row", "shots"))
        return self._rows[key]

    def value(self, body: str) -> float:
        parts = [p.strip() for p in body.split("|")]
        if len(parts) not in (3, 4):
            raise ValueError(f"a citation is 'TABLE | COLUMN | ROW [| FIELD]', got {body!r}")
        name, column, row_text = parts[:3]
        field = parts[3] if len(parts) == 4 else "mean"
        kind, _, other = field.partition(" ")
        if kind not in ("mean", "lo", "hi", "diff", "ci", "vs", "vsci") or (kind in ("vs", "vsci")) != bool(other):
            raise ValueError(f"unknown citation field {field!r}; use mean, lo, hi, diff, ci, 'vs COLUMN', "
                             "'vsci COLUMN'")
        table = self.tables.get(name, {})
        row_key = table.get("row", "shots")
        baseline = other.strip() if other else None
        rows = self.rows(name, baseline)
        match = [r for r in rows if r["method"] == column and str(r.get(row_key)) == row_text]
        if not match:
            raise ValueError(f"table {name!r} has no column {column!r} at {row_key} {row_text}")
        r = match[0]
        if kind == "mean":
            return r["mean"]
        if kind in ("lo", "hi"):
            return r["mean"] - r["ci95"] if kind == "lo" else r["mean"] + r["ci95"]
        base = baseline or table.get("baseline", "none")
        if "diff_vs_" + base not in r:
            raise ValueError(f"table {name!r}: {column!r} at {row_text} has no paired difference against {base!r}")
        return r["diff_vs_" + base] if kind in ("diff", "vs") else r["diff_ci95"]


def _format(value: float, like: str) -> str:
    """value written like `like`: its decimals, and a sign where `like` has one."""
    decimals = len(like.split(".")[1])
    text = f"{value:+.{decimals}f}" if like[0] in "+-\u2212" else f"{value:.{decimals}f}"
    if like[0] == "\u2212":
        text = text.replace("-", "\u2212")
    if like[0] not in "+-\u2212" and text.startswith("-"):
        return text                     # a negative value where the prose had no sign: a difference to show
    return text


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


def uncited(text: str) -> list[tuple[int, str]]:
    """(line, number) of every decimal number in the prose — outside table rows, table blocks, code and HTML
    comments — that carries no citation."""
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
        bare = re.sub(r"`[^`]*`", "", CITE.sub("", line))
        bare = re.sub(r"<!--.*?-->", "", bare)
        out += [(i, n) for n in DECIMAL.findall(bare)]
    return out
