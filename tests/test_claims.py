"""core.fewshot.claims: prose numbers cite their table's cell; every field a citation can name gives the number a
reader would compute from the table, and a number that cites nothing must say why (a named exception)."""
import json

import pytest

from core.fewshot.claims import Cited, exceptions, rewrite, uncited

# seeds 0-2; none 0.50/0.51/0.52 at 5 shots and 0.70/0.71/0.72 at 10; lsi = none + 0.10, mix = none + 0.002·seed
ROWS = ["method,shots,seed,data,f1_weighted,pseudo_label_accuracy"] + [
    f"{m},{k},{s},shots,{0.5 + 0.2 * (k == 10) + 0.1 * (m == 'lsi') + 0.01 * s + 0.002 * s * (m == 'mix')},"
    f"{0.9 + 0.01 * s if m == 'lsi' else ''}"
    for m in ("none", "lsi", "mix") for k in (5, 10) for s in range(3)]
FIGURES = ("hole_share", "hole_depth", "confidence", "fd", "precision", "recall", "density", "coverage")


@pytest.fixture
def cited(tmp_path):
    (tmp_path / "demo.csv").write_text("\n".join(ROWS) + "\n")
    samplers = ["model,sampler,seed," + ",".join(FIGURES)] + [
        f"ae,{smp},{s}," + ",".join(str(fd if f == "fd" else 0.5) for f in FIGURES)   # fd: prior 100/102/104
        for smp, base, step in (("prior", 100.0, 2), ("ex-post", 10.0, 1)) for s in range(3) for fd in [base + s * step]]
    (tmp_path / "samplers.csv").write_text("\n".join(samplers) + "\n")
    tables = [{"name": "demo", "records": ["demo.csv"]}, {"name": "s", "kind": "samplers", "records": ["samplers.csv"]}]
    return Cited(tables, tmp_path), tables, tmp_path


def test_every_field_gives_the_number_a_reader_computes_from_the_table(cited):
    c, _, _ = cited
    assert c.value("demo | lsi | 5") == pytest.approx(0.61)
    assert c.value("demo | lsi | 5 | diff") == pytest.approx(0.10)
    assert c.value("demo | lsi | 5 | ci") == pytest.approx(0, abs=1e-9)               # the same +0.10 on every seed
    assert c.value("demo | lsi | 5 | -diff") == pytest.approx(-0.10)                 # a loss written without its sign
    assert c.value("demo | mix | 5 | vs lsi") == pytest.approx(-0.098)
    lo, hi, half = (c.value(f"demo | mix | 5 | {f} none") for f in ("vslo", "vshi", "vsci"))
    assert lo == pytest.approx(0.002 - half) and hi == pytest.approx(0.002 + half) and half > 0
    assert c.value("demo | none | 5 | below 0.55") == pytest.approx(0.04)           # a constant (the slides') - ours
    assert c.value("demo | none | 5 | above 0.55") == pytest.approx(-0.04)
    assert c.value("demo | lsi | 5+10") == pytest.approx(0.71)                       # the mean over two rows
    assert c.value("demo | lsi | 10 | avg pseudo_label_accuracy") == pytest.approx(0.91)


def test_a_samplers_table_is_cited_by_figure_and_model_sampler_row(cited):
    c, _, _ = cited
    assert c.value("s | fd | ae prior") == pytest.approx(102.0)
    assert c.value("s | fd | ae prior | lo") < 102.0 < c.value("s | fd | ae prior | hi")
    assert c.value("s | fd | ae ex-post | vs ae prior") == pytest.approx(-91.0)    # this row minus that one, per seed
    assert c.value("s | fd | ae ex-post | vslo ae prior") < -91.0 < c.value("s | fd | ae ex-post | vshi ae prior")
    with pytest.raises(ValueError, match="no row"):
        c.value("s | fd | ae knn")
    with pytest.raises(ValueError, match="no figure"):
        c.value("s | fid | ae prior")


def test_rewrite_names_the_line_of_a_number_that_differs_and_keeps_the_prose_style(cited):
    _, tables, root = cited
    text = "ok 0.61<!-- cite demo | lsi | 5 -->\nlsi costs \u22120.100<!-- cite demo | lsi | 5 | -diff -->\n" \
           "and none is 0.04<!-- cite demo | none | 5 | below 0.55 --> below"
    new, problems = rewrite(text, tables, root)
    assert problems == [] and new == text                                            # the minus sign style is kept
    new, problems = rewrite(text.replace("0.04<!--", "0.05<!--"), tables, root)
    assert problems == ["line 3: 0.05 cites demo | none | 5 | below 0.55 = 0.04"] and new == text
    new, problems = rewrite("lsi loses 0.100<!-- cite demo | lsi | 5 | -diff -->", tables, root)
    assert problems and "-0.100" in new                       # a gain cited as a loss shows its sign: a mismatch


def test_a_number_without_a_citation_must_name_why_and_only_known_reasons_count():
    text = "the slides' 0.678<!-- nocite: slides --> and dropout 0.5<!-- nocite: protocol --> against 0.61 here"
    assert uncited(text) == [(1, "0.61")]
    assert exceptions(text) == {"slides": 1, "protocol": 1}
    with pytest.raises(ValueError, match="line 2: 0.3 is marked 'nocite: because'"):
        uncited("fine\n0.3<!-- nocite: because -->")


def test_a_malformed_citation_is_an_error_that_says_what_to_write(cited):
    c, _, _ = cited
    for body, message in (("demo | lsi", "TABLE | COLUMN | ROW"), ("demo | lsi | 5 | vs", "unknown citation field"),
                          ("demo | lsi | 5 | below", "unknown citation field"),
                          ("demo | lsi | 7", "no column 'lsi' at shots 7"),
                          ("demo | none | 5 | avg nothing", "no records with 'nothing'"),
                          ("other | lsi | 5", "does not name")):
        with pytest.raises(ValueError, match=message):
            c.value(body)
