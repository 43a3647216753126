"""docs/results.md's tables are regenerated from the records committed under docs/records/ and match them."""
import json
import re
from pathlib import Path

import pytest

from core.__main__ import main
from core.fewshot.tables import regenerate, render

REPO = Path(__file__).resolve().parent.parent


def test_results_doc_matches_its_committed_records():
    doc, tables = REPO / "docs" / "results.md", REPO / "docs" / "tables.json"
    assert regenerate(doc, tables, REPO / "docs" / "records") == doc.read_text(), \
        "docs/results.md differs from its records: run `python -m core report`"
    names = [t["name"] for t in json.loads(tables.read_text())]
    text = doc.read_text()
    assert all(f"<!-- BEGIN:{n} -->" in text for n in names)
    blocks = re.findall(r"<!-- BEGIN:([\w-]+) -->", text)
    assert sorted(blocks) == sorted(names), "a table block of the doc has no entry in docs/tables.json (no records)"
    assert not re.findall(r"^[A-Z_]{6,}$", text, re.M), "a placeholder line is left in the doc"


def test_report_check_fails_on_a_doctored_number(tmp_path, capsys):
    """`python -m core report [--check]`, run in-process (`python -m core` is `sys.exit(main())`): the same
    parser, command and exit codes without a subprocess paying torch's import four times."""
    records = tmp_path / "records"
    records.mkdir()
    rows = ["method,shots,seed,data,f1_weighted"] + [f"{m},5,{s},shots,{0.5 + 0.1 * (m == 'lsi') + 0.01 * s}"
                                                   for m in ("none", "lsi") for s in range(3)]
    (records / "demo.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "tables.json").write_text(json.dumps([{"name": "demo", "records": ["demo.csv"]}]))
    doc = tmp_path / "results.md"
    doc.write_text("intro\n<!-- BEGIN:demo -->\nold\n<!-- END:demo -->\nend\n")
    args = ["report", "--doc", str(doc), "--tables", str(tmp_path / "tables.json"), "--records", str(records)]
    assert main(args + ["--check"]) == 1 and doc.read_text().count("old") == 1   # --check never writes
    assert main(args) == 0
    assert "| 5 | 0.510 | 0.610 <sub>+0.100" in doc.read_text() and doc.read_text().endswith("end\n")
    assert main(args + ["--check"]) == 0
    doc.write_text(doc.read_text().replace("0.610", "0.640"))          # a doctored number is caught
    capsys.readouterr()
    assert main(args + ["--check"]) == 1
    assert "does not match its records" in capsys.readouterr().err


def test_missing_records_are_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no record files"):
        render({"name": "x", "records": ["nothing-*.csv"]}, tmp_path)


def test_variant_runs_get_one_column_each_beside_the_shared_baseline(tmp_path):
    """label "method+run": runs that vary one method's settings share the baseline of one of them; each
    variant is its own column named after its record file, and pairs with the baseline on the same seeds."""
    (tmp_path / "v-base.csv").write_text("method,shots,seed,data,f1_weighted\n" + "".join(
        f"{m},2,{s},{d},{v + 0.01 * s}\n" for m, d, v in (("none", "shots", 0.6), ("distill", "pool", 0.65))
        for s in range(3)))
    (tmp_path / "v-alpha.csv").write_text("method,shots,seed,data,f1_weighted\n" + "".join(
        f"distill,2,{s},pool,{0.7 + 0.01 * s}\n" for s in range(3)))
    md = render({"name": "v", "records": ["v-*.csv"], "label": "method+run", "strip": "v-"}, tmp_path)
    head, _, row = md.splitlines()[-3:]
    assert head == "| shots | none <sup>shots</sup> | distill (alpha) <sup>pool</sup> | distill (base) <sup>pool</sup> |"
    assert row.startswith("| 2 | 0.610 | 0.710 <sub>+0.100±0.000") and "0.660 <sub>+0.050" in row


def test_a_baseline_shared_by_two_runs_counts_once_and_must_agree(tmp_path):
    rows = "method,shots,seed,data,f1_weighted\n" + "".join(f"none,2,{s},shots,{0.6 + 0.01 * s}\n" for s in range(3))
    (tmp_path / "r-a.csv").write_text(rows + "".join(f"lsi,2,{s},pool,0.7\n" for s in range(3)))
    (tmp_path / "r-b.csv").write_text(rows + "".join(f"lsi,2,{s},pool,0.5\n" for s in range(3)))
    md = render({"name": "r", "records": ["r-*.csv"], "label": "method+run", "strip": "r-"}, tmp_path)
    assert "9 cells" in md and "| 2 | 0.610 | 0.700 <sub>+0.090" in md
    (tmp_path / "r-b.csv").write_text(rows.replace("0.6", "0.4"))     # another protocol's baseline
    with pytest.raises(ValueError, match="disagree"):
        render({"name": "r", "records": ["r-*.csv"], "label": "method+run", "strip": "r-"}, tmp_path)


def test_runs_with_n_generated_equal_to_shots_get_one_column_per_method(tmp_path):
    """PROBEN1 runs use --n-generated shots: n changes with every row, so it must not split the columns."""
    (tmp_path / "p.csv").write_text("method,shots,seed,n_generated,data,f1_weighted\n" + "".join(
        f"{m},{k},{s},{'' if m == 'none' else k},shots,{0.5 + 0.01 * k + (0.02 if m != 'none' else 0) + 0.001 * s}\n"
        for m in ("none", "multi-vae") for k in (5, 10) for s in range(3)))
    lines = render({"name": "p", "records": ["p.csv"], "n_follows_shots": True}, tmp_path).splitlines()
    assert lines[2] == "| shots | none <sup>shots</sup> | multi-vae <sup>shots</sup> |"
    assert lines[4].startswith("| 5 | 0.551 | 0.571 <sub>+0.020") and lines[5].startswith("| 10 | 0.601 | 0.621")
    split = render({"name": "p", "records": ["p.csv"]}, tmp_path).splitlines()[2]
    assert "multi-vae n=5" in split and "multi-vae n=10" in split       # without the option: a column per n


def _demo(tmp_path, prose: str):
    records = tmp_path / "records"
    records.mkdir(exist_ok=True)
    rows = ["method,shots,seed,data,f1_weighted"] + [f"{m},5,{s},shots,{0.5 + 0.1 * (m == 'lsi') + 0.01 * s + 0.002 * s * (m == 'mix')}"
                                                   for m in ("none", "lsi", "mix") for s in range(3)]
    (records / "demo.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "tables.json").write_text(json.dumps([{"name": "demo", "records": ["demo.csv"]}]))
    doc = tmp_path / "results.md"
    doc.write_text(f"{prose}\n<!-- BEGIN:demo -->\nold\n<!-- END:demo -->\n")
    args = ["report", "--doc", str(doc), "--tables", str(tmp_path / "tables.json"), "--records", str(records)]
    assert main(args) == 0                                               # the table block written
    return doc, args


def test_report_check_fails_when_a_cited_prose_number_disagrees_with_its_table(tmp_path, capsys):
    prose = ("lsi reaches 0.610<!-- cite demo | lsi | 5 -->, +0.100<!-- cite demo | lsi | 5 | diff --> over none; "
             "mix is +0.002<!-- cite demo | mix | 5 | diff --> and -0.098<!-- cite demo | mix | 5 | vs lsi --> against lsi, "
             "whose interval is [0.585<!-- cite demo | lsi | 5 | lo -->, 0.635<!-- cite demo | lsi | 5 | hi -->].")
    doc, args = _demo(tmp_path, prose)
    capsys.readouterr()
    assert main(args + ["--check"]) == 0 and "6 prose numbers cited" in capsys.readouterr().out
    doc.write_text(doc.read_text().replace("0.610<!--", "0.640<!--"))     # a doctored prose number
    assert main(args + ["--check"]) == 1
    assert "line 1: 0.640 cites demo | lsi | 5 = 0.610" in capsys.readouterr().err
    doc.write_text(doc.read_text().replace("+0.100<!--", "+0.101<!--").replace("0.640<!--", "0.610<!--"))
    assert main(args + ["--check"]) == 1                                  # the third decimal counts
    assert main(args) == 0                                                # report rewrites the snippet
    assert "+0.100<!-- cite demo | lsi | 5 | diff -->" in doc.read_text()
    assert main(args + ["--check"]) == 0


def test_a_citation_of_a_missing_column_or_field_is_an_error_and_uncited_numbers_are_listed(tmp_path):
    from core.fewshot.claims import uncited
    from core.fewshot.tables import regenerate

    doc, _ = _demo(tmp_path, "nothing")
    doc.write_text(doc.read_text().replace("nothing", "nothing 0.500<!-- cite demo | bogus | 5 -->"))
    with pytest.raises(ValueError, match="no column 'bogus'"):
        regenerate(doc, tmp_path / "tables.json", tmp_path / "records")
    doc.write_text(doc.read_text().replace("| bogus | 5 -->", "| lsi | 5 | median -->"))
    with pytest.raises(ValueError, match="unknown citation field"):
        regenerate(doc, tmp_path / "tables.json", tmp_path / "records")
    text = "a 0.5 b 0.610<!-- cite demo | lsi | 5 --> `0.7`\n| 1 | 0.9 |\n<!-- BEGIN:x -->\n0.3\n<!-- END:x -->\nc -0.25"
    assert uncited(text) == [(1, "0.5"), (6, "-0.25")]


def test_the_overstated_sentences_are_now_cited_against_their_tables():
    text = (REPO / "docs" / "results.md").read_text()
    # the Bonn comparison: our interval at 2 shots, which contains the slides' best (0.678)
    assert "<!-- cite headline | classic | 2 | lo -->" in text and "one run (seed 002)" in text
    # label-spread+classic paired against label-spread, and "above none with 100" only from 10 shots
    assert "<!-- cite pool | label-spread+classic | 100 | vs label-spread -->" in text
    assert "from 5 labelled shots per class it is above" not in text and "within ±0.01 of the baseline" not in text
    assert "<!-- cite headline | lsi | 5 | diff -->" in text


def test_every_prose_number_of_the_results_doc_cites_its_table_or_names_why_not():
    """`report --check` checks only cited numbers; a number without a citation must carry a named exception
    (`<!-- nocite: slides -->`, a constant of the protocol, ...), so that none escapes the check unnoticed."""
    from core.fewshot.claims import CITE, NOCITE_REASONS, exceptions, uncited

    text = (REPO / "docs" / "results.md").read_text()
    assert uncited(text) == [], "cite these numbers' tables or mark why they have none (core/fewshot/claims.py)"
    named = exceptions(text)
    assert set(named) <= set(NOCITE_REASONS) and sum(named.values()) < len(CITE.findall(text)) / 3


def test_report_check_fails_on_a_prose_number_that_cites_nothing(tmp_path, capsys):
    doc, args = _demo(tmp_path, "lsi reaches 0.610<!-- cite demo | lsi | 5 --> "
                                "against the slides' 0.6<!-- nocite: slides -->")
    capsys.readouterr()
    assert main(args + ["--check"]) == 0 and "slides 1" in capsys.readouterr().out
    doc.write_text(doc.read_text().replace("<!-- nocite: slides -->", ""))
    assert main(args + ["--check"]) == 1 and "line 1: 0.6 cites no table" in capsys.readouterr().err
    doc.write_text(doc.read_text().replace("0.6\n", "0.6<!-- nocite: hunch -->\n", 1))     # an unnamed reason
    assert main(args + ["--check"]) == 1 and "name one of slides" in capsys.readouterr().err


def test_the_prose_holds_to_its_intervals():
    """Issue 16, items 4 and 6: an interval that contains 0 is "not resolved", not "no gain"; few seeds say df."""
    text = (REPO / "docs" / "results.md").read_text()
    for overstated in ("neither help nor hurt", "is neutral", "gain nothing", "adds nothing", "makes Multi-VAE worse",
                       "real images help more than decoded", "helps most at", "nothing from 50 on"):
        assert overstated not in text, overstated
    assert text.count("df = 2") >= 5 and text.count("df = 4") >= 3
    # "above none with 100 from 10 shots" is a comparison of means whose interval contains none's: said so
    assert "contains 0.948<!-- cite pool | none | 100 -->" in text
