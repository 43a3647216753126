"""Summaries of few-shot records: mean and 95% t-interval per (method, row), the paired difference against the
baseline on the same seeds (mean, 95% interval, paired t-test p-value, wins), and a Holm correction over all
comparisons of one table (the family): only a Holm-significant difference gets a (+) / (-) mark.

A column is a method, or "method n=N" when a run holds several n_generated values for it. Rows are the shot
counts, or the n_generated values (the Bonn "only generated data" table, where the baseline is constant).
"""
from __future__ import annotations

import math

METRICS = ("accuracy", "f1_weighted", "f1_macro")


def _mean_ci(values: list[float]) -> tuple[float, float, float]:
    """(mean, std, 95% t-interval half-width); NaN spread for a single value."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan"), float("nan")
    from scipy.stats import t

    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, std, float(t.ppf(0.975, n - 1)) * std / math.sqrt(n)


def _paired_p(diffs: list[float]) -> float:
    """Two-sided paired t-test p-value of the differences (NaN with fewer than 2; 0 spread -> 0 or 1)."""
    if len(diffs) < 2:
        return float("nan")
    from scipy.stats import ttest_1samp

    if max(diffs) == min(diffs):
        return 0.0 if diffs[0] != 0 else 1.0
    return float(ttest_1samp(diffs, 0.0).pvalue)


def holm(p_values: list[float], alpha: float = 0.05) -> list[bool]:
    """Holm's step-down procedure: which hypotheses are rejected at family-wise error rate alpha (NaN: never)."""
    order = sorted((p, i) for i, p in enumerate(p_values) if p == p)
    reject = [False] * len(p_values)
    m = len(order)
    for rank, (p, i) in enumerate(order):
        if p > alpha / (m - rank):
            break
        reject[i] = True
    return reject


def column_label(r: dict, multi_n: set[str]) -> str:
    return f"{r['method']} n={r['n_generated']}" if r["method"] in multi_n and r.get("n_generated") is not None \
        else r["method"]


def summarize(records: list[dict], metric: str = "f1_weighted", baseline: str = "none", row: str = "shots",
              alpha: float = 0.05) -> list[dict]:
    """One dict per (column, row value): n, mean, std, ci95, data mark, and for other columns the paired
    difference against `baseline` on the same seeds and shots (diff_vs_<baseline>, diff_ci95, p_value, wins,
    n_pairs, holm: significant after Holm's correction over the whole table)."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    n_values: dict[str, set] = {}
    for r in records:
        n_values.setdefault(r["method"], set()).add(r.get("n_generated"))
    # a method run at several n_generated gets a column per n, unless n is the table's rows
    multi_n = {m for m, ns in n_values.items() if len(ns) > 1} if row != "n_generated" else set()
    groups: dict[tuple, dict[int, float]] = {}
    marks: dict[str, str] = {}
    base: dict[tuple, float] = {}
    for r in records:
        if r["method"] == baseline:
            base[(r["shots"], r["seed"])] = r[metric]
        col = column_label(r, multi_n)
        # "defaults": a run with tuned settings (core.fewshot.tuning) in which this method had no entry
        marks[col] = r.get("data", "") + (", defaults" if r.get("setting") == "default" else "")
        if r["method"] == baseline and row != "shots":
            continue                                    # constant baseline: shown beside every row below
        groups.setdefault((col, r[row]), {})[r["seed"]] = (r[metric], r["shots"])
    if row != "shots" and base:
        for value in {v for _, v in groups}:
            groups.setdefault((baseline, value), {}).update(
                {s: (v, k) for (k, s), v in base.items()})
    columns = list(dict.fromkeys(column_label(r, multi_n) for r in records))
    columns.sort(key=lambda c: c != baseline)           # the baseline first, the rest in record order
    rows = []
    for col, value in sorted(groups, key=lambda g: (g[1] if g[1] is not None else -1, columns.index(g[0]))):
        by_seed = groups[(col, value)]
        mean, std, ci = _mean_ci([v for v, _ in by_seed.values()])
        out = {"method": col, row: value, "metric": metric, "data": marks.get(col, ""), "n": len(by_seed),
               "mean": mean, "std": std, "ci95": ci}
        if row != "shots":
            out["shots"] = sorted({k for _, k in by_seed.values()})[0]
        diffs = [v - base[(k, s)] for s, (v, k) in by_seed.items() if (k, s) in base]
        if diffs and col != baseline:
            d_mean, _, d_ci = _mean_ci(diffs)
            out.update({"diff_vs_" + baseline: d_mean, "diff_ci95": d_ci, "n_pairs": len(diffs),
                        "wins": sum(d > 0 for d in diffs), "p_value": _paired_p(diffs)})
        rows.append(out)
    tested = [r for r in rows if "p_value" in r]
    for r, rejected in zip(tested, holm([r["p_value"] for r in tested], alpha)):
        r["holm"] = rejected
    return rows


def pivot(rows: list[dict], value: str = "mean", row: str = "shots") -> tuple[list, list[str], list[list[float]]]:
    """summarize() rows -> (row values, columns, table[row][column]) for printing / plotting."""
    keys = sorted({r[row] for r in rows}, key=lambda v: (v is None, v))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cell = {(r[row], r["method"]): r.get(value, float("nan")) for r in rows}
    return keys, methods, [[cell.get((k, m), float("nan")) for m in methods] for k in keys]


def markdown_table(rows: list[dict], digits: int = 3, baseline: str = "none", row: str = "shots") -> str:
    """summarize() rows -> a markdown table (rows x columns): the mean, and for other columns the paired
    difference against the baseline with its 95% interval; (+) / (-) where it survives Holm's correction over
    the table. Column heads carry the data mark: shots-only or pool-using."""
    keys, methods, _ = pivot(rows, row=row)
    cell = {(r[row], r["method"]): r for r in rows}
    mark = {r["method"]: r.get("data", "") for r in rows}
    head = [f"{m} <sup>{mark[m]}</sup>" if mark.get(m) else m for m in methods]
    out = [f"| {row.replace('_', ' ')} | " + " | ".join(head) + " |", "|---:|" + "---:|" * len(methods)]
    for k in keys:
        parts = []
        for m in methods:
            r = cell.get((k, m))
            if r is None:
                parts.append("")
                continue
            text = f"{r['mean']:.{digits}f}"
            d, ci = r.get("diff_vs_" + baseline), r.get("diff_ci95", float("nan"))
            if d is not None:
                sign = (" (+)" if d > 0 else " (-)") if r.get("holm") else ""
                text += f" <sub>{d:+.{digits}f}{'±%.*f' % (digits, ci) if ci == ci else ''}{sign}</sub>"
            parts.append(text)
        out.append(f"| {k} | " + " | ".join(parts) + " |")
    return "\n".join(out)
