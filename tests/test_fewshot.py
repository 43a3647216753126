"""The few-shot runner: well-formed records, exact reproducibility, resume, fair splits, summaries."""
import json
import math
import threading

import pytest
import torch

from core.fewshot import (TIMING_KEYS, ExperimentSpec, list_runs, load_run, load_splits, pivot, run_experiment,
                          summarize)
from core.fewshot.report import holm, markdown_table

FAST = dict(dataset="digits", device="cpu", seeds=2, n_generated=[5], recipe={"steps": 25},
            generators={"vae": {"steps": 20, "hidden": 64, "latent_dim": 4},
                        "aae-uniform": {"steps": 20, "hidden": 64, "latent_dim": 4}, "multi-vae": {"steps": 5}})


def _results(records):
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


def test_spec_validation():
    with pytest.raises(ValueError, match="unknown augmentation"):
        ExperimentSpec(methods=["none", "bogus"])
    with pytest.raises(ValueError):
        ExperimentSpec(shots=[0])
    with pytest.raises(ValueError, match="no setting"):
        ExperimentSpec(generators={"vae": {"latent": 3}})
    with pytest.raises(ValueError, match="unknown generator"):
        ExperimentSpec(generators={"gan": {}})
    with pytest.raises(ValueError, match="unknown recipe"):
        ExperimentSpec(recipe={"momentum": 0.9})
    with pytest.raises(ValueError, match="no parameter"):
        ExperimentSpec(params={"mixup": {"beta": 1}})
    # every generator setting the old spec silently dropped can now be set
    ExperimentSpec(generators={"vae": {"beta_norm": True}, "gc": {"noise": 0.2}, "multi-vae": {"mix_in": 0.2}})
    spec = ExperimentSpec(**FAST, shots=[2, 3], methods=["none", "mixup", "lsi"], )
    assert len(spec.cells()) == 2 * 2 * 3
    assert ExperimentSpec.from_dict(spec.to_dict()) == spec
    sweep = ExperimentSpec(**{**FAST, "n_generated": [2, 10, "shots"]}, shots=[5], methods=["none", "vae-noise"])
    assert sorted(n for s, _, n, m in sweep.cells() if m == "vae-noise" and s == 0) == [2, 5, 10]
    assert [n for _, _, n, m in sweep.cells() if m == "none"] == [None, None]   # the baseline is not repeated


def test_validation_split_is_disjoint_from_shots_pool_and_test(mnist_test_dir):
    for spec in (ExperimentSpec(dataset="digits"), ExperimentSpec(dataset="mnist5k", test=f"idx:{mnist_test_dir}")):
        s = load_splits(spec)
        rows = lambda d: {bytes(r.numpy().tobytes()) for r in d.x.flatten(1)}    # noqa: E731
        val, train, test = rows(s.validation), rows(s.train), rows(s.test)
        assert val and not (val & train) and not (val & test) and not (train & test)
        counts = torch.bincount(s.validation.y)
        assert counts.min() == counts.max() >= 10               # a fixed, balanced share of every class


def test_end_to_end_digits(tmp_path):
    torch.set_num_threads(1)
    methods = ["none", "classic+tta", "isda", "lsi", "lsi-online", "vae-interp-noise", "vae-prior-gc", "multi-vae",
               "distill", "latent-probe"]
    spec = ExperimentSpec(**FAST, shots=[2], methods=methods)
    seen = []
    records = run_experiment(spec, tmp_path, on_progress=seen.append)
    assert len(records) == 2 * len(methods)
    cells = [p for p in seen if p["phase"] == "cells"]
    assert cells[-1]["done"] == cells[-1]["total"] == len(records)
    by = {(r["seed"], r["method"]): r for r in records}
    for r in records:
        assert r["n_labelled"] == 20 and r["n_eval"] > 300 and r["steps"] == 25
        assert r["data"] == ("pool" if r["method"] in ("lsi", "lsi-online", "vae-interp-noise", "vae-prior-gc",
                                                       "distill", "latent-probe") else "shots")
    assert by[(0, "lsi")]["n_added"] == by[(0, "multi-vae")]["n_added"] == 5 * 10
    assert by[(0, "none")]["epochs_real"] == 25.0                      # 25 steps of all 20 shots
    # generators were trained once per seed and saved; the cells loaded them
    gens = sorted(p.name for p in (tmp_path / "generators").iterdir())
    assert gens == ["aae-uniform-pool-s0", "aae-uniform-pool-s1", "multi-vae-k2-s0", "multi-vae-k2-s1",
                    "vae-pool-s0", "vae-pool-s1"]
    assert json.loads((tmp_path / "results.json").read_text()) == records
    run = load_run(tmp_path)
    assert run["spec"] == spec and len(run["records"]) == len(records)


def test_cell_is_bit_identical_alone_beside_a_thread_in_any_order_and_after_resume(tmp_path):
    torch.set_num_threads(1)
    methods = ["none", "classic", "lsi-online", "vae-extrap-noise", "distill"]
    spec = ExperimentSpec(**{**FAST, "seeds": 1}, shots=[2, 3], methods=methods)
    reference = _results(run_experiment(spec, tmp_path / "a"))

    # the same cells in reverse order, one run per cell, while another thread does unrelated torch work
    busy = threading.Event()

    def noise():
        g = torch.Generator().manual_seed(1)
        while not busy.is_set():
            torch.randn(64, 64, generator=g) @ torch.randn(64, 64)    # global-RNG draws too
    t = threading.Thread(target=noise)
    t.start()
    try:
        reordered = []
        for seed, shots, n, method in reversed(spec.cells()):
            one = ExperimentSpec(**{**FAST, "seeds": 1}, shots=[shots], methods=[method])
            reordered += run_experiment(one, tmp_path / f"b-{shots}-{method}")
    finally:
        busy.set()
        t.join()
    key = lambda r: (r["shots"], r["method"])                            # noqa: E731
    assert sorted(_results(reordered), key=key) == sorted(reference, key=key)

    # stopped after two cells, then resumed: the records are the same
    stop = threading.Event()
    seen = []
    run_experiment(spec, tmp_path / "c", stop=stop,
                   on_progress=lambda p: (seen.append(p), p["phase"] == "cells" and len(seen) > 3 and stop.set()))
    partial = json.loads((tmp_path / "c" / "results.json").read_text())
    assert 0 < len(partial) < len(reference)
    assert _results(run_experiment(spec, tmp_path / "c")) == reference


def test_resume_extends_and_refuses_changed_settings(tmp_path):
    torch.set_num_threads(1)
    spec = ExperimentSpec(**FAST, shots=[2, 3], methods=["none", "mixup"])
    stop = threading.Event()
    first = run_experiment(spec, tmp_path, on_progress=lambda info: stop.set(), stop=stop)
    assert len(first) == 1
    listed = {r["path"]: r for r in list_runs(tmp_path.parent)}
    assert not listed[str(tmp_path)]["complete"]
    seen = []
    records = run_experiment(spec, tmp_path, on_progress=seen.append)
    assert len(records) == 8 and len(seen) == 7 and records[0] == first[0]
    wider = ExperimentSpec(**{**FAST, "shots": [2, 3], "methods": ["none", "mixup", "cutout"]})
    assert len(run_experiment(wider, tmp_path)) == 12
    with pytest.raises(ValueError, match="different settings"):
        run_experiment(ExperimentSpec(**{**FAST, "recipe": {"steps": 7}}, shots=[2], methods=["none"]), tmp_path)


def test_damaged_run_folder_is_listed_not_fatal(tmp_path):
    good = tmp_path / "good"
    run_experiment(ExperimentSpec(**{**FAST, "seeds": 1}, shots=[2], methods=["none"]), good)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{ not json")
    (tmp_path / "worse").mkdir()
    (tmp_path / "worse" / "config.json").write_text(json.dumps({"spec": {"shots": "many"}}))
    runs = {r["name"]: r for r in list_runs(tmp_path)}
    assert runs["good"]["damaged"] is None and runs["good"]["complete"]
    assert "JSONDecodeError" in runs["bad"]["damaged"] and runs["worse"]["damaged"]
    with pytest.raises(ValueError, match="damaged"):
        load_run(bad)


def test_generated_only_trains_without_the_real_images(tmp_path):
    torch.set_num_threads(1)
    spec = ExperimentSpec(**{**FAST, "seeds": 1, "generated_only": True, "n_generated": [3, 12]}, shots=[5],
                          methods=["none", "vae-noise"])
    records = {(r["method"], r["n_generated"]): r for r in run_experiment(spec, tmp_path)}
    assert records[("none", None)]["trained_on"] == "real"
    for n in (3, 12):
        r = records[("vae-noise", n)]
        assert r["trained_on"] == "generated" and r["n_added"] == 10 * n and r["epochs_real"] == 0
    from core.fewshot.recipe import train_classifier
    from core.fewshot.spec import Recipe
    # and really without them: with no generated examples there is nothing to train on
    with pytest.raises(ValueError, match="nothing to train on"):
        train_classifier(None, None, Recipe(steps=1), seed=0, shots=5)


def test_baseline_recipe_on_digits_clears_a_real_floor(tmp_path):
    """20 shots of 8x8 digits: the frozen recipe reaches > 0.90 weighted F1 on the held-out split (a
    logistic regression on the same shots scores about 0.90; chance is 0.10)."""
    torch.set_num_threads(1)
    records = run_experiment(ExperimentSpec(dataset="digits", shots=[20], methods=["none"], seeds=2), tmp_path)
    assert min(r["f1_weighted"] for r in records) > 0.90


def test_summarize_paired_difference_and_holm():
    recs = [{"method": m, "shots": 5, "seed": s, "f1_weighted": v, "data": "shots"}
            for m, vals in {"none": [0.5, 0.6, 0.7], "lsi": [0.6, 0.6, 0.9]}.items() for s, v in enumerate(vals)]
    rows = {r["method"]: r for r in summarize(recs)}
    assert rows["none"]["mean"] == pytest.approx(0.6) and "diff_vs_none" not in rows["none"]
    assert rows["lsi"]["diff_vs_none"] == pytest.approx(0.1)
    assert rows["lsi"]["wins"] == 2 and rows["lsi"]["n_pairs"] == 3
    assert rows["none"]["ci95"] == pytest.approx(4.302653 * 0.1 / math.sqrt(3), rel=1e-4)
    from scipy.stats import ttest_rel
    assert rows["lsi"]["p_value"] == pytest.approx(ttest_rel([0.6, 0.6, 0.9], [0.5, 0.6, 0.7]).pvalue)
    shots, methods, table = pivot(list(rows.values()))
    assert shots == [5] and methods == ["none", "lsi"] and table[0][1] == pytest.approx(0.7)
    with pytest.raises(ValueError):
        summarize(recs, metric="auc")


def test_summarize_by_n_generated_keeps_one_column_per_method():
    """The "only generated data" table: rows are n generated, a method is one column (not one per n), and
    the real-data baseline (run once) is paired with every row."""
    recs = [{"method": "none", "shots": 5, "seed": s, "n_generated": None, "f1_weighted": 0.7, "data": "shots"}
            for s in range(3)]
    recs += [{"method": "vae-noise", "shots": 5, "seed": s, "n_generated": n, "f1_weighted": 0.6 + n / 1000,
              "data": "pool"} for n in (2, 50) for s in range(3)]
    rows = summarize(recs, row="n_generated")
    assert {r["method"] for r in rows} == {"none", "vae-noise"}
    gen = {r["n_generated"]: r for r in rows if r["method"] == "vae-noise"}
    assert gen[50]["diff_vs_none"] == pytest.approx(-0.05) and gen[2]["n_pairs"] == 3


def test_holm_step_down():
    # m = 4: thresholds 0.0125, 0.0167, 0.025, 0.05 in rank order; stops at the first failure
    assert holm([0.01, 0.04, 0.012, 0.03]) == [True, False, True, False]
    assert holm([0.001, 0.2, float("nan")]) == [True, False, False]
    assert holm([0.03, 0.04]) == [False, False]          # unadjusted both < 0.05, but not after Holm
    assert holm([0.02, 0.03]) == [True, True]


def test_markdown_table_marks_only_holm_significant():
    recs = [{"method": m, "shots": k, "seed": s, "data": "shots",
             "f1_weighted": 0.5 + (0.1 + 0.001 * s if m == "lsi" else 0.0) + 0.01 * s}
            for m in ("none", "lsi") for k in (2, 5) for s in range(5)]
    md = markdown_table(summarize(recs))
    lines = md.splitlines()
    assert lines[0] == "| shots | none <sup>shots</sup> | lsi <sup>shots</sup> |" and len(lines) == 4
    assert "+0.102" in lines[2] and "(+)" in lines[2]


def test_label_spread_cell_is_bit_identical_and_reports_its_pseudo_labels(tmp_path):
    """label-spread's UMAP and propagation draw only from the cell's streams: the same record alone and beside a
    thread doing other (global-RNG) torch work; its pseudo-labels come from the pool, at most n_per per class."""
    torch.set_num_threads(1)
    spec = ExperimentSpec(**{**FAST, "seeds": 1}, shots=[2], methods=["label-spread"])
    alone = run_experiment(spec, tmp_path / "a")
    busy = threading.Event()

    def noise():
        while not busy.is_set():
            torch.randn(64, 64) @ torch.randn(64, 64)
    t = threading.Thread(target=noise)
    t.start()
    try:
        beside = run_experiment(spec, tmp_path / "b")
    finally:
        busy.set()
        t.join()
    assert _results(alone) == _results(beside)
    r = alone[0]
    assert r["data"] == "pool" and r["n_generated"] == 5 and 0 < r["n_added"] <= 5 * 10
    assert r["pseudo_label_accuracy"] >= 0.3       # chance 0.1; a 20-step VAE: 0.56 (mnist5k: 0.90)


def test_batched_run_writes_every_cell_and_a_resume_after_a_stop_gives_the_same_records(tmp_path):
    """batch=3: the seeds of each (shots, method) trained as one stacked model, one record per cell; stopped
    after the first batch and resumed (the rest batched differently), the records equal an uninterrupted batched
    run's, and each is within rounding of the single cell's."""
    torch.set_num_threads(1)
    spec = ExperimentSpec(**{**FAST, "seeds": 3}, shots=[2, 3], methods=["none", "isda"])
    whole = _results(run_experiment(spec, tmp_path / "whole", batch=3))
    assert len(whole) == 12 and {r["batch"] for r in whole} == {3}
    stop = threading.Event()
    first = run_experiment(spec, tmp_path / "resumed", batch=3, stop=stop,
                           on_progress=lambda p: p["phase"] == "cells" and stop.set())
    assert len(first) == 3                                   # the whole first batch: its records come together
    resumed = _results(run_experiment(spec, tmp_path / "resumed", batch=2))
    strip = lambda rs: [{k: v for k, v in r.items() if k != "batch"} for r in rs]   # noqa: E731
    assert strip(resumed) == strip(whole)
    single = _results(run_experiment(spec, tmp_path / "single", batch=1))
    assert "batch" not in single[0]
    assert max(abs(a["f1_weighted"] - b["f1_weighted"]) for a, b in zip(single, whole)) < 0.05


def test_a_failing_cell_raises_job_failed_with_the_default_executor_too(tmp_path, monkeypatch):
    """One error contract: run_experiment without an executor runs its tasks on the inline executor, and a task
    that raises comes back as JobFailed (naming the exception), as from worker processes."""
    from core.executor import JobFailed
    from core.fewshot import runner

    def broken(*args, **kwargs):
        raise ValueError("this cell cannot run")
    monkeypatch.setattr(runner, "run_cell", broken)
    with pytest.raises(JobFailed, match="this cell cannot run") as info:
        run_experiment(ExperimentSpec(**{**FAST, "seeds": 1}, shots=[2], methods=["none"]), tmp_path)
    assert info.value.is_a("ValueError")
