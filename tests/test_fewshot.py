"""The few-shot runner: well-formed records, resume after a stop, summaries with paired differences."""
import json
import math
import threading

import pytest
import torch

from core.fewshot import ExperimentSpec, list_runs, load_run, pivot, run_experiment, summarize

FAST = dict(dataset="digits", steps=25, seeds=2, n_generated=5,
            generator={"steps": 20, "hidden": 64, "latent_dim": 4, "multi_steps": 5})


def test_spec_validation():
    with pytest.raises(ValueError, match="unknown augmentation"):
        ExperimentSpec(methods=["none", "bogus"])
    with pytest.raises(ValueError):
        ExperimentSpec(shots=[0])
    with pytest.raises(ValueError, match="generator setting"):
        ExperimentSpec(generator={"latent": 3})
    spec = ExperimentSpec(**FAST, shots=[2, 3], methods=["none", "mixup"])
    assert len(spec.cells()) == 2 * 2 * 2
    assert ExperimentSpec.from_dict(spec.to_dict()) == spec


def test_end_to_end_digits(tmp_path):
    torch.set_num_threads(1)
    methods = ["none", "classic+tta", "isda", "lsi", "vae-interp-noise", "vae-prior-gc", "multi-vae"]
    spec = ExperimentSpec(**FAST, shots=[2], methods=methods)
    seen = []
    records = run_experiment(spec, tmp_path, on_progress=seen.append)
    assert len(records) == len(seen) == 2 * len(methods)
    assert seen[-1]["done"] == seen[-1]["total"] == len(records)
    for r in records:
        assert r["dataset"] == "digits" and r["method"] in methods and r["shots"] == 2
        for m in ("accuracy", "f1_weighted", "f1_macro"):
            assert 0.0 <= r[m] <= 1.0
        assert r["n_labelled"] == 20 and r["n_test"] > 300 and r["seconds"] > 0
        if r["method"] in ("lsi", "vae-interp-noise", "multi-vae"):
            assert r["n_train"] == 20 + 5 * 10
    assert {p.name for p in tmp_path.iterdir()} >= {"config.json", "results.json", "results.csv", "summary.csv"}
    assert json.loads((tmp_path / "results.json").read_text()) == records
    assert (tmp_path / "results.csv").read_text().count("\n") == len(records) + 1
    rows = summarize(records)
    assert len(rows) == len(methods)
    for row in rows:
        assert row["n"] == 2 and math.isfinite(row["ci95"])
        if row["method"] != "none":
            assert row["n_pairs"] == 2 and "diff_vs_none" in row
    run = load_run(tmp_path)
    assert run["spec"] == spec and len(run["records"]) == len(records) and run["summary"] == rows
    listed = list_runs(tmp_path.parent)
    assert any(r["path"] == str(tmp_path) and r["complete"] for r in listed)


def test_resume_skips_finished_cells(tmp_path):
    torch.set_num_threads(1)
    spec = ExperimentSpec(**FAST, shots=[2, 3], methods=["none", "mixup"])
    stop = threading.Event()
    first = run_experiment(spec, tmp_path, on_progress=lambda info: stop.set(), stop=stop)
    assert len(first) == 1                                          # stopped after one cell
    assert len(json.loads((tmp_path / "results.json").read_text())) == 1
    listed = {r["path"]: r for r in list_runs(tmp_path.parent)}  # other tests' runs live beside this one
    assert load_run(tmp_path)["config"] != {} and not listed[str(tmp_path)]["complete"]
    seen = []
    records = run_experiment(spec, tmp_path, on_progress=seen.append)
    assert len(records) == 8 and len(seen) == 7                     # the finished cell was skipped
    assert records[0] == first[0]
    assert len({(r["seed"], r["shots"], r["method"]) for r in records}) == 8
    assert run_experiment(spec, tmp_path, on_progress=seen.append) == records and len(seen) == 7
    # extending the run with a method only runs the new cells; changed settings are refused
    wider = ExperimentSpec(**{**FAST, "shots": [2, 3], "methods": ["none", "mixup", "cutout"]})
    assert len(run_experiment(wider, tmp_path)) == 12
    with pytest.raises(ValueError, match="different settings"):
        run_experiment(ExperimentSpec(**{**FAST, "steps": 7}, shots=[2], methods=["none"]), tmp_path)


def test_summarize_paired_difference():
    recs = [{"method": m, "shots": 5, "seed": s, "f1_weighted": v}
            for m, vals in {"none": [0.5, 0.6, 0.7], "lsi": [0.6, 0.6, 0.9]}.items() for s, v in enumerate(vals)]
    rows = {r["method"]: r for r in summarize(recs)}
    assert rows["none"]["mean"] == pytest.approx(0.6) and "diff_vs_none" not in rows["none"]
    assert rows["lsi"]["diff_vs_none"] == pytest.approx(0.1)
    assert rows["lsi"]["wins"] == 2 and rows["lsi"]["n_pairs"] == 3
    assert rows["none"]["ci95"] == pytest.approx(4.302653 * 0.1 / math.sqrt(3), rel=1e-4)
    shots, methods, table = pivot(list(rows.values()))
    assert shots == [5] and methods == ["none", "lsi"] and table[0][1] == pytest.approx(0.7)
    with pytest.raises(ValueError):
        summarize(recs, metric="auc")


def test_markdown_table():
    from core.fewshot import markdown_table

    recs = [{"method": m, "shots": k, "seed": s, "f1_weighted": 0.5 + 0.1 * (m == "lsi") + 0.01 * s}
            for m in ("none", "lsi") for k in (2, 5) for s in range(3)]
    md = markdown_table(summarize(recs))
    lines = md.splitlines()
    assert lines[0] == "| shots | none | lsi |" and len(lines) == 4
    assert "+0.100" in lines[2] and "(+)" not in lines[2].split("|")[2]
