"""The results doc's tuning table: rebuilt from the raw tuning records with the pre-written rule, and refused when
the tuned-settings file the runner reads holds another choice."""
import csv
import json

import pytest

from core.fewshot.tables import render
from core.fewshot.tuning import configurations

FIELDS = ["method", "config", "entry", "shots", "seed", "f1_weighted"]


def _write(folder, scores: dict, tuned_methods: dict):
    """scores: {method: [[cell F1 per cell] per configuration]} -> tuning.csv + tuned.json in folder."""
    rows = []
    for method, per_config in scores.items():
        entries = configurations(method, len(per_config))
        for i, cells in enumerate(per_config):
            for j, f1 in enumerate(cells):
                rows.append({"method": method, "config": i, "entry": json.dumps(entries[i], sort_keys=True),
                             "shots": (2, 10)[j % 2], "seed": j // 2, "f1_weighted": f1})
    with open(folder / "tuning.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    (folder / "tuned.json").write_text(json.dumps({"methods": tuned_methods}))


def _table(root):
    return render({"name": "tuning", "kind": "tuning", "records": ["tuning/tuning.csv"], "caption": "T."}, root)


def test_table_applies_the_rule_and_shows_the_chosen_setting(tmp_path):
    (tmp_path / "tuning").mkdir()
    mixup = configurations("mixup", 3)
    _write(tmp_path / "tuning", {"none": [[0.70, 0.80], [0.70, 0.80], [0.60, 0.80]],        # a tie -> defaults
                                 "mixup": [[0.70, 0.80], [0.60, 0.80], [0.75, 0.85]]},      # c2 wins
           {"mixup": mixup[2]})
    text = _table(tmp_path)
    assert "(8 validation cells" not in text and "12 validation cells, 2 methods, 1 moved off their defaults" in text
    none_row = next(line for line in text.splitlines() if line.startswith("| none |"))
    mixup_row = next(line for line in text.splitlines() if line.startswith("| mixup |"))
    assert "| **0.7500** | 0.7500 | 0.7000 | c0 | +0.0000 | defaults |" in none_row
    assert "| 0.7500 | 0.7000 | **0.8000** | c2 | +0.0500 |" in mixup_row
    assert f"lr={mixup[2]['recipe']['lr']:g}" in mixup_row


def test_a_tuned_file_that_disagrees_with_its_records_is_refused(tmp_path):
    (tmp_path / "tuning").mkdir()
    mixup = configurations("mixup", 3)
    _write(tmp_path / "tuning", {"mixup": [[0.70, 0.80], [0.60, 0.80], [0.75, 0.85]]}, {"mixup": mixup[1]})
    with pytest.raises(ValueError, match="rerun `python -m core tune`"):
        _table(tmp_path)


def test_prose_cites_the_tuning_table_and_a_doctored_gain_is_caught(tmp_path):
    from core.fewshot.claims import rewrite

    (tmp_path / "tuning").mkdir()
    mixup = configurations("mixup", 3)
    _write(tmp_path / "tuning", {"mixup": [[0.70, 0.80], [0.60, 0.80], [0.75, 0.85]]}, {"mixup": mixup[2]})
    tables = [{"name": "tuning", "kind": "tuning", "records": ["tuning/tuning.csv"]}]
    prose = ("mixup gains +0.050<!-- cite tuning | mixup | gain --> over its defaults' 0.750<!-- cite tuning | mixup | "
             "defaults --> (c1: 0.70<!-- cite tuning | mixup | c1 -->)")
    assert rewrite(prose, tables, tmp_path) == (prose, [])
    text, problems = rewrite(prose.replace("+0.050", "+0.060"), tables, tmp_path)
    assert text == prose and problems == ["line 1: +0.060 cites tuning | mixup | gain = +0.050"]
    with pytest.raises(ValueError, match="defaults, chosen, gain or c0..c2"):
        rewrite("0.1<!-- cite tuning | mixup | c7 -->", tables, tmp_path)
