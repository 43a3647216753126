"""Summaries of few-shot records: mean, 95% CI and the paired difference against the baseline, as rows,
a pivot (shots x methods) and a markdown table."""
from __future__ import annotations

import math

METRICS = ("accuracy", "f1_weighted", "f1_macro")


def _t975(n: int) -> float:
    if n < 2:
        return float("nan")
    from scipy.stats import t
    return float(t.ppf(0.975, n - 1))


def _mean_ci(values: list[float]) -> tuple[float, float, float]:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan"), float("nan")
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, std, _t975(n) * std / math.sqrt(n)


def summarize(records: list[dict], metric: str = "f1_weighted", baseline: str = "none") -> list[dict]:
    """One row per (method, shots): n, mean, std, 95% CI half-width (t), and the paired difference against
    `baseline` on the same seeds (mean, CI, wins) — the comparison that matters with few seeds."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    groups: dict[tuple, dict[int, float]] = {}
    for r in records:
        groups.setdefault((r["method"], r["shots"]), {})[r["seed"]] = r[metric]
    methods = list(dict.fromkeys(r["method"] for r in records))
    rows = []
    for (method, shots) in sorted(groups, key=lambda k: (k[1], methods.index(k[0]))):
        by_seed = groups[(method, shots)]
        mean, std, ci = _mean_ci(list(by_seed.values()))
        row = {"method": method, "shots": shots, "metric": metric, "n": len(by_seed), "mean": mean, "std": std,
               "ci95": ci}
        base = groups.get((baseline, shots), {})
        pairs = [by_seed[s] - base[s] for s in by_seed if s in base]
        if pairs and method != baseline:
            d_mean, _, d_ci = _mean_ci(pairs)
            row.update({"diff_vs_" + baseline: d_mean, "diff_ci95": d_ci, "n_pairs": len(pairs),
                        "wins": sum(p > 0 for p in pairs)})
        rows.append(row)
    return rows


def pivot(rows: list[dict], value: str = "mean") -> tuple[list[int], list[str], list[list[float]]]:
    """summarize() rows -> (shots, methods, table[shots][method]) for printing / plotting."""
    shots = sorted({r["shots"] for r in rows})
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cell = {(r["shots"], r["method"]): r.get(value, float("nan")) for r in rows}
    return shots, methods, [[cell.get((k, m), float("nan")) for m in methods] for k in shots]


def markdown_table(rows: list[dict], digits: int = 3, baseline: str = "none") -> str:
    """summarize() rows -> a markdown table (shots x methods): mean, and for other methods the paired
    difference against the baseline with its 95% CI; a difference whose CI excludes 0 is marked (+ / -)."""
    shots, methods, _ = pivot(rows)
    cell = {(r["shots"], r["method"]): r for r in rows}
    out = ["| shots | " + " | ".join(methods) + " |", "|---:|" + "---:|" * len(methods)]
    for k in shots:
        parts = []
        for m in methods:
            r = cell.get((k, m))
            if r is None:
                parts.append("")
                continue
            text = f"{r['mean']:.{digits}f}"
            d, ci = r.get("diff_vs_" + baseline), r.get("diff_ci95", float("nan"))
            if d is not None:
                mark = "" if not ci == ci or abs(d) <= ci else (" (+)" if d > 0 else " (-)")
                text += f" <sub>{d:+.{digits}f}{'±%.*f' % (digits, ci) if ci == ci else ''}{mark}</sub>"
            parts.append(text)
        out.append(f"| {k} | " + " | ".join(parts) + " |")
    return "\n".join(out)
