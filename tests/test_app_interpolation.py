"""AppTest: the Interpolation page — renders with defaults; the slider changes the decoded image.
(How fast a frame decodes is measured by bench/app_latency.py, not asserted here.)"""

from app_support import app_env, app_checkpoints, assert_clean, new_app  # noqa: F401

PAGE = "app_pages/interpolation.py"


def _lsi_image(at):
    # The first st.image inside the slider fragment is the decoded LSI sample.
    return next(img for img in at.image if img.captions and img.captions[0].startswith("λ = "))


def test_renders_with_defaults(app_env):
    at = new_app(PAGE)
    assert_clean(at)
    assert at.title[0].value == "Interpolation"
    assert len(at.image) >= 4  # LSI, mixup, both path strips, sampler tiles
    assert at.query_params.get("i0") is not None or at.session_state["ll_i0"] is not None


def test_slider_changes_decoded_image_and_url(app_env):
    at = new_app(PAGE)
    before = _lsi_image(at).value
    slider = next(s for s in at.slider if s.key == "w_lam")
    assert slider.value == 0.5
    slider.set_value(0.9).run()
    assert_clean(at)
    after = _lsi_image(at)
    assert after.captions[0] == "λ = 0.90"
    assert after.value != before, "moving lambda must change the decoded image"
    assert at.session_state["ll_lam"] == 0.9


def test_url_parameters_restore_the_pair(app_env):
    at = new_app(PAGE, query={"i0": "10", "i1": "20", "lam": "1.25"})
    assert_clean(at)
    assert next(n for n in at.number_input if n.key == "w_i0").value == 10
    assert next(n for n in at.number_input if n.key == "w_i1").value == 20
    assert next(s for s in at.slider if s.key == "w_lam").value == 1.25


def test_bad_url_parameters_are_ignored(app_env):
    at = new_app(PAGE, query={"i0": "banana", "i1": "999999", "lam": "7"})
    assert not at.exception
    assert next(s for s in at.slider if s.key == "w_lam").value == 0.5


def test_random_pair_and_samplers(app_env):
    at = new_app(PAGE)
    at.radio(key="w_pick_how").set_value("Random").run()
    before = (at.session_state["ll_i0"], at.session_state["ll_i1"])
    at.button[0].click().run()
    assert_clean(at)
    assert (at.session_state["ll_i0"], at.session_state["ll_i1"]) != before
    for method in ("noise", "knn-extrapolate", "prior"):
        at.selectbox(key="w_s_method").set_value(method).run()
        assert_clean(at)


def test_switching_dataset_drops_sample_indices(app_env):
    """Indices picked in one dataset must not silently select unrelated samples of another."""
    at = new_app(PAGE, query={"dataset": "mnist5k", "i0": "7", "i1": "4000"})
    at.session_state["ll_selection"] = [3, 1500]
    at.run()
    assert at.session_state["ll_i0"] == 7 and at.session_state["ll_i1"] == 4000  # a link is honoured
    at.session_state["ll_dataset"] = "digits"  # what picking another dataset in the sidebar does
    at.run()
    assert at.session_state["ll_dataset"] == "digits"
    assert "ll_selection" not in at.session_state
    assert at.session_state["ll_i0"] != 7  # 7 is a valid digits index: only the switch can drop it


def test_a_code_endpoint_from_the_url(app_env):
    """A pinned probe's code as endpoint A (from the URL): named as such, its image is the decode of that code,
    and the button makes both endpoints samples again."""
    import numpy as np
    import torch

    from ui import probe_ops
    from ui.resources import ModelRef, checkpoint

    key = "shipped/mnist5k-aae-uniform-z2"
    at = new_app(PAGE, query={"ckpt": key, "za": "0.25,-0.5", "lam": "0", "i1": "20"})
    assert_clean(at)
    assert any(c.value.startswith("A = a pinned code") for c in at.caption)
    assert at.query_params["za"] == "0.25,-0.5"
    ckpt = checkpoint(key)
    with torch.no_grad():
        want = ckpt.model.eval().decode(torch.tensor([[0.25, -0.5]]))[0].numpy()
    got = probe_ops.endpoint(ModelRef(key, ckpt.sha256), "mnist5k", 0, at.session_state["ll_za"])
    np.testing.assert_allclose(got["z"], [0.25, -0.5])
    np.testing.assert_allclose(got["x"], want, atol=1e-6)
    at.button(key="w_codes_clear").click().run()
    assert_clean(at)
    assert at.session_state["ll_za"] is None and "za" not in at.query_params


def test_bad_code_endpoints_are_ignored(app_env):
    for za in ("banana", "1,nan", "1,2,3", ""):
        at = new_app(PAGE, query={"ckpt": "shipped/mnist5k-aae-uniform-z2", "za": za})
        assert not at.exception, (za, [e.value for e in at.exception])
        assert at.session_state["ll_za"] is None, za
