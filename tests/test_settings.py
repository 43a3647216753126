"""KEY=VALUE / NAME.KEY=VALUE parsing, shared by the CLI and the app (core.settings)."""

import pytest

from core.settings import dotted, flat


def test_flat_reads_json_values_and_keeps_text():
    assert flat(["lr=0.002", "schedule=cosine", "warm=true", "sizes=[1, 2]"], "--recipe") == \
        {"lr": 0.002, "schedule": "cosine", "warm": True, "sizes": [1, 2]}


def test_dotted_groups_by_name():
    assert dotted(["mixup.alpha=0.4", "mixup.p=1", "lsi.k=5"], "--gen", "mixup.alpha=0.4") == \
        {"mixup": {"alpha": 0.4, "p": 1}, "lsi": {"k": 5}}


@pytest.mark.parametrize("fn, item", [(flat, "lr"), (dotted, "alpha=0.4"), (dotted, "mixup.alpha")])
def test_malformed_items_name_the_flag_and_show_an_example(fn, item):
    with pytest.raises(ValueError, match="--gen .*e.g."):
        fn([item], "--gen", "mixup.alpha=0.4")
