"""The equal tuning budget (core.fewshot.tuning) and the tuned-settings file the runner reads."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.augment import list_augmentations
from core.fewshot import TIMING_KEYS, ExperimentSpec, run_experiment
from core.fewshot.cells import cell_params
from core.fewshot.report import markdown_table, summarize
from core.fewshot.spec import Cell
from core.fewshot.tuning import N_CONFIGS, choose, configurations, load_tuned, search_space, tune

REPO = Path(__file__).resolve().parent.parent
FAST = dict(dataset="digits", device="cpu", seeds=1, n_generated=[5], recipe={"steps": 10},
            generators={"vae": {"steps": 10, "hidden": 32, "latent_dim": 4}})


@pytest.mark.parametrize("method", list_augmentations())
def test_every_method_gets_the_same_number_of_configurations_within_its_bounds(method):
    configs = configurations(method)
    assert len(configs) == N_CONFIGS and configs[0] == {}            # configuration 0: the defaults
    assert configurations(method) == configs                        # a fixed seed: the same draws every time
    assert len({json.dumps(c, sort_keys=True) for c in configs}) == N_CONFIGS   # no configuration twice
    ExperimentSpec(methods=[method], tuned={method: configs[-1]})    # every draw passes the settings' checks
    assert "n_per" not in json.dumps(configs)                        # the cell's n_generated is not tuned


def test_the_search_draws_gen_ratio_only_for_methods_that_add_rows():
    assert "gen_ratio" in search_space("lsi")["recipe"] and "gen_ratio" in search_space("lsi-online")["recipe"]
    assert search_space("none")["recipe"] == ["lr", "weight_decay"] and not search_space("none")["params"]
    assert set(search_space("mixup")["params"]["mixup"]) == {"alpha", "lam"}
    # a method's draws do not depend on which others are tuned beside it
    assert configurations("mixup") == configurations("mixup", seed=16_000)
    assert configurations("mixup") != configurations("cutmix")


def test_choice_rule_highest_mean_ties_to_the_defaults():
    assert choose([0.5, 0.6, 0.55]) == 1
    assert choose([0.61234, 0.61231, 0.6]) == 0                    # equal to 4 decimals: the defaults stay
    assert choose([0.6, 0.7, 0.7]) == 1                            # ties: the lower index


def test_a_tuned_entry_changes_the_methods_parameters_and_gen_ratio_and_records_say_which():
    tuned = {"mixup": {"params": {"mixup": {"alpha": 0.3}}, "recipe": {"gen_ratio": 2.0}}}
    spec = ExperimentSpec(**FAST, shots=[2], methods=["none", "mixup"], tuned=tuned)
    assert cell_params(spec, Cell(0, 2, None, "mixup")) == {"mixup": {"alpha": 0.3}}
    assert spec.recipe_for("mixup").gen_ratio == 2.0 and spec.recipe_for("none").gen_ratio == 1.0
    assert spec.setting_of("mixup") == "tuned" and spec.setting_of("none") == "default"
    explicit = ExperimentSpec(**FAST, shots=[2], methods=["mixup"], tuned=tuned, params={"mixup": {"alpha": 0.9}})
    assert cell_params(explicit, Cell(0, 2, None, "mixup")) == {"mixup": {"alpha": 0.9}}   # --param wins
    untuned = ExperimentSpec(**FAST, shots=[2], methods=["none", "mixup"])
    assert untuned.setting_of("mixup") is None and cell_params(untuned, Cell(0, 2, None, "mixup")) == {}
    empty_file = ExperimentSpec(**FAST, shots=[2], methods=["none", "mixup"], tuned={})   # a tuned file, no entries
    assert empty_file.setting_of("mixup") == "default" and empty_file.recipe_for("mixup") == untuned.recipe_for("mixup")
    with pytest.raises(ValueError, match="not a part of it"):
        ExperimentSpec(tuned={"mixup": {"params": {"cutmix": {"alpha": 1.0}}}})
    with pytest.raises(ValueError, match="only"):
        ExperimentSpec(tuned={"mixup": {"recipe": {"steps": 10}}})
    with pytest.raises(ValueError, match="no parameter"):
        ExperimentSpec(tuned={"mixup": {"params": {"mixup": {"beta": 1}}}})


def test_the_runner_trains_with_the_tuned_setting_and_the_table_marks_untuned_methods(tmp_path):
    torch.set_num_threads(1)
    plain = ExperimentSpec(**FAST, shots=[2], methods=["none", "mixup"])
    before = run_experiment(plain, tmp_path / "plain")
    assert all("setting" not in r for r in before)                  # no tuned file: the records as before
    tuned = ExperimentSpec(**FAST, shots=[2], methods=["none", "mixup"],
                           tuned={"mixup": {"params": {"mixup": {"alpha": 0.05}}, "recipe": {"lr": 0.008}}})
    after = run_experiment(tuned, tmp_path / "tuned")
    by = {r["method"]: r for r in after}
    assert by["mixup"]["setting"] == "tuned" and by["none"]["setting"] == "default"
    strip = lambda r: {k: v for k, v in r.items() if k not in (*TIMING_KEYS, "setting")}   # noqa: E731
    assert strip(by["none"]) == strip(before[0])                    # no entry: its defaults, the same record
    assert by["mixup"]["f1_weighted"] != before[1]["f1_weighted"]   # the entry reached the training
    head = markdown_table(summarize(after)).splitlines()[0]
    assert "none <sup>shots, defaults</sup>" in head and "mixup <sup>shots</sup>" in head


def test_tune_runs_on_validation_only_and_writes_the_file_the_fewshot_cli_reads(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    import core.fewshot.cells as cells

    real = cells.Splits.evaluation
    seen = []
    monkeypatch.setattr(cells.Splits, "evaluation", lambda self, spec: seen.append(spec.evaluate_on) or real(self, spec))
    base = {**{k: v for k, v in FAST.items() if k != "seeds"}, "shots_tuning": [2], "seeds_tuning": 1}
    out_dir = tmp_path / "tuning" / "pool"                           # a folder that does not exist yet
    doc = tune(["none", "vae-noise"], out_dir, base, n_configs=2, runs_dir=tmp_path / "runs")
    assert set(seen) == {"validation"}                              # the test set is never scored
    assert set(doc["methods"]) == {"none", "vae-noise"} and doc["rule"].startswith("highest mean validation")
    rows = (out_dir / "tuning.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 2 and all(",validation 0.1," in r for r in rows[1:])
    assert list((tmp_path / "runs" / "generators").iterdir())       # one set of generators serves every config
    assert load_tuned(out_dir / "tuned.json") == doc["methods"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"methods": {"mixup": {"params": {"mixup": {"alpha": -1}}}}}))
    with pytest.raises(ValueError, match="alpha"):
        load_tuned(bad)
    out = subprocess.run([sys.executable, "-m", "core", "fewshot", "--tuned", str(tmp_path / "nope.json"),
                          "--methods", "none"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode != 0 and "does not exist" in out.stderr


def test_the_committed_tuned_file_is_valid_and_its_rule_is_the_code_s():
    path = REPO / "docs" / "tuning" / "tuned.json"
    doc = json.loads(path.read_text())
    from core.fewshot.tuning import RULE

    assert doc["rule"] == RULE
    spec = ExperimentSpec(methods=["none", "fixmatch"], tuned=load_tuned(path))
    for method in ("none", "fixmatch"):          # read by the runner: an entry is tuned, no entry says defaults
        assert spec.setting_of(method) == ("tuned" if method in doc["methods"] else "default")
