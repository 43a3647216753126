"""The sampler table: every (model x sampler x sampling seed) measured by core.sample_quality, as plain records,
and their summary (mean and 95 % t-interval over the seeds). `python -m core samplers` and the Latent map page
call these; records are plain dicts (one CSV row each).

Randomness: seed s of sampler S draws from the named stream (s, "sampler", S), the same for every model (common
random numbers: two models' prior rows see the same N(0, I) draws); the held-out reference and probe images of seed
s come from (s, "held-out"), the same for every model and sampler of that seed.
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from core.fewshot.streams import stream
from core.latent import encode_dataset
from core.sample_quality import FIGURE_LABELS, FIGURES, real_figures, real_reference, sample_figures, split_held_out
from core.samplers import draw_codes

__all__ = ["DEFAULT_SAMPLERS", "REAL_ROW", "RECON_ROW", "held_out_images", "measure_samplers", "sampler_records_job",
           "read_records", "summarise", "paired_difference", "format_table"]

DEFAULT_SAMPLERS = ("prior", "ex-post", "knn-interpolate")
REPO = Path(__file__).resolve().parent.parent
DEFAULT_HELD_OUT = REPO.parent / "shared" / "data" / "mnist-test"  # the official MNIST test set, where it exists
NOT_HELD_OUT = "(training data, not held out)"
REAL_ROW = "held-out-real"    # reference rows: n held-out images (their codes for the hole figures)
RECON_ROW = "held-out-recon"  # the same codes decoded: the best a sampler of this decoder could do


def held_out_images(spec: str | None, train_data):
    """Real images the models never saw -> (x (M, *shape), label for the records). spec: a core.data spec (idx:
    folders give their t10k split); None: the official MNIST test set at DEFAULT_HELD_OUT when it exists, else the
    training data itself, labelled NOT_HELD_OUT (the shipped mnist5k models were trained on all of mnist5k, so no
    part of it is held out; FD and recall are then optimistic)."""
    from core.data import load_dataset

    if spec is None and DEFAULT_HELD_OUT.is_dir():
        spec = f"idx:{DEFAULT_HELD_OUT}"
    if spec is None:
        return train_data.x, f"{train_data.id} {NOT_HELD_OUT}"
    data = load_dataset(spec, train=False)
    if data.input_shape != train_data.input_shape:
        raise ValueError(f"{spec} has inputs {data.input_shape} but the models' data {train_data.id} has "
                         f"{train_data.input_shape}; give held-out images of the same shape")
    return data.x, spec.replace(str(REPO.parent), "..")


def measure_samplers(model, train_data, held_out_x, samplers: Iterable[str] = DEFAULT_SAMPLERS,
                     seeds: Iterable[int] = range(5), n: int = 2000, model_name: str = "", held_out: str = "",
                     include_real: bool = True, params: dict | None = None,
                     on_record: Callable[[dict], None] | None = None) -> list[dict]:
    """One record per (sampler, seed) for `model` trained on train_data (a core.data.Dataset; its codes are the
    training codes, its labels feed the kNN samplers), against held_out_x (M, *shape) real images never trained on.

    params: {sampler: {setting: value}}. include_real adds two reference records per seed: REAL_ROW (n other
    held-out images scored like a sampler: hole figures from their codes, the rest from the images) and RECON_ROW
    (those codes decoded: what the decoder makes of codes that are known to be good). on_record(record) is called
    as each record is done (progress)."""
    samplers, seeds = list(samplers), [int(s) for s in seeds]
    if not seeds:
        raise ValueError("give at least one sampling seed")
    z_train = encode_dataset(model, train_data.x)                                          # (N, d)
    cfg = getattr(model, "config", None)
    base = {"model": model_name, "kind": getattr(cfg, "kind", ""), "prior": getattr(model, "prior", ""),
            "latent_dim": int(z_train.shape[1]), "train_data": train_data.id, "held_out": held_out}
    records = []

    def emit(record):
        records.append(record)
        if on_record is not None:
            on_record(record)

    for seed in seeds:
        reference_x, probe_x = split_held_out(held_out_x, n, stream(seed, "held-out"))
        real = real_reference(train_data, reference_x, held_out)
        if include_real:
            t0 = time.perf_counter()
            figs = real_figures(model, z_train, probe_x, real)
            emit({**base, "sampler": REAL_ROW, "seed": seed, "n": len(probe_x), "ex_post_k": "",
                  **figs, "seconds": round(time.perf_counter() - t0, 3)})
            t0 = time.perf_counter()
            figs = sample_figures(model, z_train, encode_dataset(model, probe_x), real)
            emit({**base, "sampler": RECON_ROW, "seed": seed, "n": len(probe_x), "ex_post_k": "",
                  **figs, "seconds": round(time.perf_counter() - t0, 3)})
        for name in samplers:
            t0 = time.perf_counter()
            details: dict = {}
            z = draw_codes(name, model, z_train, len(reference_x), stream(seed, "sampler", name),
                           context={"y_train": train_data.y, "details": details}, **(params or {}).get(name, {}))
            figs = sample_figures(model, z_train, z, real)
            emit({**base, "sampler": name, "seed": seed, "n": len(z), "ex_post_k": details.get("k", ""),
                  **figs, "seconds": round(time.perf_counter() - t0, 3)})
    return records


def sampler_records_job(checkpoint: str | bytes, held_out: str | None = None,
                        samplers: Iterable[str] = DEFAULT_SAMPLERS, seeds: int = 5, n: int = 2000) -> list[dict]:
    """measure_samplers as an executor job from plain arguments (a worker process, never the web server):
    `checkpoint` a checkpoint folder or a zipped checkpoint's bytes; its own dataset is the training data."""
    from core.checkpoints import load_checkpoint, load_checkpoint_zip
    from core.data import load_dataset

    load = load_checkpoint_zip if isinstance(checkpoint, (bytes, bytearray)) else load_checkpoint
    ckpt = load(checkpoint, device="cpu")
    train = load_dataset(ckpt.meta["dataset"])
    x, name = held_out_images(held_out, train)
    return measure_samplers(ckpt.model, train, x, samplers, range(int(seeds)), n, model_name=ckpt.name,
                            held_out=name)


def read_records(path: str | Path) -> list[dict]:
    """The records of a CSV written by `python -m core samplers` (values as strings; summarise reads them)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _interval(values: list[float]) -> tuple[float, float, float]:
    """(mean, low, high): the 95 % t-interval of the mean over the values (NaN bounds for a single value)."""
    from scipy import stats

    v = np.asarray([x for x in values if x == x], dtype=float)  # NaN (undefined) values are left out
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    mean = float(v.mean())
    if len(v) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return mean, mean - half, mean + half


def summarise(records: Iterable[dict]) -> list[dict]:
    """One row per (model, sampler) in first-seen order: n_seeds and, per figure F, F (mean), F_lo, F_hi (95 %
    t-interval over the seeds). Values may be strings (read back from a CSV)."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["model"], r["sampler"]), []).append(r)
    rows = []
    for (model, sampler), rs in groups.items():
        row = {"model": model, "sampler": sampler, "n_seeds": len(rs)}
        for f in FIGURES:
            row[f], row[f"{f}_lo"], row[f"{f}_hi"] = _interval([float(r[f]) for r in rs])
        ks = sorted({str(r.get("ex_post_k", "")) for r in rs} - {""}, key=int)
        row["ex_post_k"] = "/".join(ks)
        rows.append(row)
    return rows


def paired_difference(records: Iterable[dict], figure: str, a: tuple[str, str], b: tuple[str, str]) -> dict:
    """figure of b minus figure of a, a and b (model, sampler) pairs, paired by sampling seed (the same held-out
    reference images, and for one sampler the same random stream): {"mean", "lo", "hi", "n_seeds"}, the 95 %
    t-interval of the mean difference."""
    by = {}
    for r in records:
        by[(r["model"], r["sampler"], int(r["seed"]))] = float(r[figure])
    seeds_of = lambda pair: {s for (m, smp, s) in by if (m, smp) == tuple(pair)}  # noqa: E731
    seeds = sorted(seeds_of(a) & seeds_of(b))
    if not seeds:
        raise ValueError(f"no seed has records of both {a} and {b}")
    mean, lo, hi = _interval([by[(*b, s)] - by[(*a, s)] for s in seeds])
    return {"mean": mean, "lo": lo, "hi": hi, "n_seeds": len(seeds)}


def _cell(mean: float, lo: float, hi: float, digits: int) -> str:
    if mean != mean:
        return "n/a"
    if lo != lo:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


DIGITS = {"hole_share": 3, "hole_depth": 2, "confidence": 3, "fd": 1, "precision": 3, "recall": 3, "density": 3,
          "coverage": 3}


def format_table(summary: list[dict]) -> str:
    """A markdown table of summarise()'s rows: mean [95 % interval] per figure."""
    head = ["model", "sampler"] + [FIGURE_LABELS[f] for f in FIGURES]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary:
        cells = [r["model"], r["sampler"] + (f" (k={r['ex_post_k']})" if r.get("ex_post_k") else "")]
        cells += [_cell(r[f], r[f"{f}_lo"], r[f"{f}_hi"], DIGITS[f]) for f in FIGURES]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
