"""AppTest: the home page and the shared sidebar."""

import sys

from app_support import app_env, app_checkpoints, assert_clean, new_app, sidebar_ckpt, sidebar_dataset  # noqa: F401


def test_home_renders_without_torch_or_umap(app_env):
    at = new_app()
    assert_clean(at)
    assert at.title[0].value == "Latent Lab"
    assert sidebar_dataset(at).value == "mnist5k"
    assert sidebar_ckpt(at).value.startswith("shipped/")


def test_app_module_imports_no_torch():
    """Start-up cost: importing what app.py imports must not pull in torch, umap or the models."""
    import subprocess

    code = ("import sys, runpy; sys.argv=['x'];"
            "import ui.sidebar, ui.state, ui.catalog;"
            "bad=[m for m in ('torch','umap','core.models','numba') if m in sys.modules];"
            "print(bad); sys.exit(1 if bad else 0)")
    from app_support import ROOT

    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_checkpoint_choice_goes_to_the_url(app_env):
    at = new_app()
    box = sidebar_ckpt(at)
    first = box.value
    box.select_index(1 if box.index == 0 else 0).run()
    assert_clean(at)
    other = sidebar_ckpt(at).value
    assert other != first and other.startswith("shipped/")
    at.run()
    assert at.query_params["ckpt"] == other
    assert at.query_params["dataset"] == "mnist5k"


def test_unknown_checkpoint_in_url_falls_back(app_env):
    at = new_app(query={"ckpt": "../../etc/passwd", "dataset": "mnist5k"})
    assert_clean(at)
    assert sidebar_ckpt(at).value.startswith("shipped/")


PAGES = ["app_pages/train_load.py", "app_pages/latent_map.py", "app_pages/interpolation.py", "app_pages/isda.py",
         "app_pages/fewshot.py"]


def test_every_page_on_tabular_data(app_env, tmp_path, monkeypatch):
    """Vector datasets (wine) take the non-image paths: charts instead of image tiles."""
    import os
    import subprocess

    from app_support import ROOT

    out = tmp_path / "extra" / "wine-vae-z2"
    r = subprocess.run([sys.executable, "-m", "core", "train", "--dataset", "wine", "--model", "vae",
                        "--latent-dim", "2", "--epochs", "3", "--out", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    monkeypatch.setenv("LATENT_LAB_CHECKPOINTS", os.pathsep.join([str(app_env), str(out.parent)]))
    at = new_app(query={"dataset": "wine"})
    assert sidebar_ckpt(at).value.endswith("wine-vae-z2")
    for page in PAGES:
        at.switch_page(page).run()
        assert_clean(at)
        assert at.session_state["ll_dataset"] == "wine", page


def test_every_page_says_what_to_do_without_a_checkpoint(app_env):
    at = new_app(query={"dataset": "breast-cancer"})
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, page
    at.switch_page("app_pages/interpolation.py").run()
    assert any("Train or load" in i.value for i in at.info)
