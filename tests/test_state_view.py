"""The Latent map probe's zoom window in the URL (ui/state.py `view`): what a link may hold, and a bad one ignored
with the usual note. The browser side (a wheel zoom reaches the URL, a reload restores it) is in
tests/test_browser_probe.py."""

from __future__ import annotations

import pytest

from app_support import app_checkpoints, app_env, new_app  # noqa: F401 (fixtures)
from ui import state


def test_a_view_round_trips_through_the_url_text():
    view = (0.25, 0.5, -0.125, 0.375)
    text = state.FORMATS["view"](view)
    assert text == "0.25,0.5,-0.125,0.375"
    assert state.parse_view(text) == view


def test_the_default_window_needs_no_parameter():
    assert state.parse_view("0,1,0,1") is None
    assert state.valid_view([0, 1, 0, 1]) is None


@pytest.mark.parametrize("raw", ["1,0,0,1", "0,1,0.5,0.5", "0,1,0", "0,1,0,1,2", "0,nan,0,1", "0,inf,0,1",
                                 "a,b,c,d", "0,1e9,0,1", "", "0,1e-9,0,1"])
def test_a_bad_view_is_a_value_error(raw):
    with pytest.raises(ValueError):
        state.parse_view(raw)


def test_what_the_browser_reports_is_validated_like_a_link():
    assert state.valid_view([0.1, 0.2, 0.3, 0.4]) == (0.1, 0.2, 0.3, 0.4)
    for bad in (None, "0,1,0,1", [0.2, 0.1, 0, 1], [0, 1, 0, float("nan")], [0, 1, 0], [0, 2000, 0, 1]):
        assert state.valid_view(bad) is None, bad


@pytest.mark.parametrize("query, want", [({"view": "0.25,0.5,0.25,0.5"}, (0.25, 0.5, 0.25, 0.5)),
                                         ({"view": "1,0,0,1"}, None)])
def test_a_link_seeds_the_view_and_a_bad_one_is_ignored_with_a_note(app_env, query, want):  # noqa: F811
    at = new_app(query=query)
    assert at.session_state["ll_view"] == want
    warned = any(w.value == "Ignored bad link parameter(s): view." for w in at.sidebar.warning)
    assert warned == (want is None)
    if want:
        assert at.query_params["view"] in ("0.25,0.5,0.25,0.5", ["0.25,0.5,0.25,0.5"])  # written back as it came


def test_a_deep_zoom_keeps_its_size_in_the_url():
    view = (123.456789012, 123.456791012, -0.5, -0.499998)  # 2 millionths of the map wide, far from the origin
    back = state.parse_view(state.format_view(view))
    assert back[1] - back[0] == pytest.approx(2e-6, rel=1e-3)
