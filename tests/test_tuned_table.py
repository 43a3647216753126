"""The results doc's tuned-vs-defaults table: each method's tuned cells paired with its OWN defaults on the same
seeds (not with `none`), a method that only the tuned run holds named in the caption, and prose citing the
gain from tuning checked like any other number."""
import csv

import pytest

from core.fewshot.claims import rewrite
from core.fewshot.tables import render

FIELDS = ["method", "shots", "seed", "n_generated", "data", "setting", "f1_weighted", "pseudo_label_accuracy"]
TABLE = {"name": "tuned", "kind": "tuned", "records": ["defaults.csv", "tuned.csv"], "caption": "T."}


def _write(path, cells: dict, setting=None):
    """cells: {(method, shots): [F1 of seed 0, 1, ...]} -> a records CSV."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        for (method, shots), values in cells.items():
            for seed, v in enumerate(values):
                w.writerow({"method": method, "shots": shots, "seed": seed, "n_generated": 50, "data": "shots",
                            "setting": setting(method) if setting else "", "f1_weighted": v,
                            "pseudo_label_accuracy": 0.9 if method == "fixmatch" else ""})


@pytest.fixture
def root(tmp_path):
    _write(tmp_path / "defaults.csv", {("none", 2): [0.60, 0.61, 0.62], ("classic", 2): [0.70, 0.72, 0.74],
                                       ("classic", 10): [0.80, 0.80, 0.80]})
    _write(tmp_path / "tuned.csv", {("none", 2): [0.60, 0.61, 0.62], ("classic", 2): [0.75, 0.78, 0.77],
                                    ("classic", 10): [0.70, 0.70, 0.70], ("fixmatch", 2): [0.9, 0.9, 0.9]},
           setting=lambda m: "default" if m == "none" else "tuned")
    return tmp_path


def test_each_method_is_paired_with_its_own_defaults(root):
    text = render(TABLE, root)
    head, _, table = text.partition("\n\n")
    lines = table.splitlines()
    assert lines[0].startswith("| shots | none <sup>shots, defaults</sup> | classic <sup>shots</sup> |")
    assert "fixmatch" not in lines[0] and "Only in the tuned run" in head and "fixmatch" in head
    row2 = next(line for line in lines if line.startswith("| 2 |"))
    # none ran the same cells in both runs: a zero difference; classic: +0.05, +0.06, +0.03 -> +0.047
    assert "| 0.610 <sub>+0.000±0.000</sub> |" in row2 and "0.767 <sub>+0.047±" in row2
    row10 = next(line for line in lines if line.startswith("| 10 |"))
    assert "0.700 <sub>-0.100±0.000 (-)</sub>" in row10        # a constant loss of 0.1: resolved, marked


def test_prose_cites_the_gain_from_tuning_and_a_doctored_one_is_caught(root):
    tables = [TABLE]
    prose = ("tuning classic gains +0.047<!-- cite tuned | classic | 2 | diff --> at 2 shots and loses "
             "0.100<!-- cite tuned | classic | 10 | -diff --> at 10")
    assert rewrite(prose, tables, root) == (prose, [])
    text, problems = rewrite(prose.replace("+0.047", "+0.057"), tables, root)
    assert text == prose and problems == ["line 1: +0.057 cites tuned | classic | 2 | diff = +0.047"]
    with pytest.raises(ValueError, match="own defaults"):
        rewrite("0.1<!-- cite tuned | classic | 2 | vs none -->", tables, root)


def test_a_tuned_table_needs_the_defaults_run_and_the_tuned_run(root):
    with pytest.raises(ValueError, match="two record files"):
        render({**TABLE, "records": ["tuned.csv"]}, root)
