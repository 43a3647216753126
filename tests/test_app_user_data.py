"""AppTest: the Your data page — an upload is stored, selected and listed for its browser only; a bad one is
refused with its message and writes nothing; a guessed link opens nothing; delete removes it."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from app_support import app_env, app_checkpoints, assert_clean, new_app, sidebar_ckpt, sidebar_dataset  # noqa: F401

PAGE = "app_pages/your_data.py"


@pytest.fixture()
def who(monkeypatch):
    """Which browser the next AppTest session is: owner keys set by the test, not by cookies."""
    from ui import owners

    current = {"key": "browser:" + "A" * 24}
    monkeypatch.setattr(owners, "_cookie_token", lambda: current["key"].split(":", 1)[1])
    return current


def pets_zip(n: int = 4) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for c in ("cat", "dog"):
            for i in range(n):
                img = io.BytesIO()
                Image.fromarray(rng.integers(0, 256, (12, 12), dtype=np.uint8)).save(img, format="PNG")
                zf.writestr(f"pets/{c}/{i}.png", img.getvalue())
    return buf.getvalue()


def upload(at, files, **options):
    at.file_uploader(key="w_ud_files").set_value(files).run()
    for key, value in options.items():
        widget = next(w for kind in (at.selectbox, at.radio, at.number_input) for w in kind if w.key == key)
        widget.set_value(value).run()
    at.button(key="w_ud_store").click().run()
    return at


def test_zip_upload_is_stored_selected_and_private(app_env, who):
    at = upload(new_app(PAGE), [("pets.zip", pets_zip(), "application/zip")], w_ud_size=16)
    assert_clean(at)
    spec = at.session_state["ll_dataset"]
    assert spec.startswith("upload:") and sidebar_dataset(at).value == spec
    assert "pets" in sidebar_dataset(at).format_func(spec)
    assert at.query_params["dataset"] in (spec, [spec])  # the link carries the hash
    from core import data_store

    m = data_store.read_manifest(spec[7:])
    assert m["x_shape"] == [8, 1, 16, 16] and m["class_names"] == ["cat", "dog"] and m["test_split"]["n_test"] == 2
    assert "A" * 24 not in str(m)  # only a hash of the owner is stored

    who["key"] = "browser:" + "B" * 24  # another browser: not in its picker, and its link opens nothing
    other = new_app(PAGE, query={"dataset": spec})
    assert spec not in sidebar_dataset(other).options
    assert other.session_state["ll_dataset"] != spec
    assert any("not yours or does not exist" in w.value for w in other.sidebar.warning)
    assert not any("pets" in e.label for e in other.expander)


def test_operator_can_share_uploads(app_env, who, monkeypatch):
    at = upload(new_app(PAGE), [("pets.zip", pets_zip(), "application/zip")])
    spec = at.session_state["ll_dataset"]
    monkeypatch.setenv("LATENT_LAB_SHARE_UPLOADS", "1")
    who["key"] = "browser:" + "B" * 24
    other = new_app(PAGE, query={"dataset": spec})
    assert other.session_state["ll_dataset"] == spec
    assert not [b for b in other.button if str(b.key).startswith("w_ud_del_")], "only its owner may delete it"


def test_csv_upload_with_label_picker_and_bad_csv(app_env, who, tmp_path):
    good = "a,b,kind\n" + "\n".join(f"{i},{i * 2},{'xy'[i % 2]}" for i in range(10))
    at = new_app(PAGE)
    at.file_uploader(key="w_ud_files").set_value(("t.csv", good.encode(), "text/csv")).run()
    assert at.selectbox(key="w_ud_label").value == "kind"   # guessed: the last column
    assert len(at.dataframe) >= 1                           # the preview
    at.button(key="w_ud_store").click().run()
    assert_clean(at)
    assert at.session_state["ll_dataset"].startswith("upload:")

    bad = "a,b,kind\n1,2,x\n3,hello,y\n5,6,x\n7,8,y\n"
    at = new_app(PAGE)
    before = sorted((tmp_path / "runs" / "data").iterdir())
    at.file_uploader(key="w_ud_files").set_value(("bad.csv", bad.encode(), "text/csv")).run()
    at.button(key="w_ud_store").click().run()
    assert at.error and "column 'b' holds text" in at.error[0].value and "Nothing was written" in at.error[0].value
    assert sorted((tmp_path / "runs" / "data").iterdir()) == before


def test_delete_removes_it(app_env, who, tmp_path):
    at = upload(new_app(PAGE), [("pets.zip", pets_zip(), "application/zip")])
    spec = at.session_state["ll_dataset"]
    at.button(key=f"w_ud_del_{spec[7:23]}").click().run()
    assert_clean(at)
    assert spec not in sidebar_dataset(at).options
    assert not list((tmp_path / "runs" / "data").glob("[0-9a-f]*"))


def test_pages_work_on_an_upload(app_env, who):
    """Train a tiny model on an uploaded set in the server's own process, then open the map and sliders."""
    import torch

    from core.checkpoints import save_checkpoint
    from core.config import ModelConfig, TrainConfig
    from core.data import load_dataset
    from core.models import build_model
    from core.train import fit

    at = upload(new_app(PAGE), [("pets.zip", pets_zip(10), "application/zip")])
    spec = at.session_state["ll_dataset"]
    data = load_dataset(spec)
    torch.manual_seed(0)
    model = build_model(ModelConfig(kind="ae", input_shape=data.input_shape, latent_dim=2, hidden=32))
    tcfg = TrainConfig(epochs=1, batch_size=8, seed=0)
    hist = fit(model, data, tcfg)
    import os
    from pathlib import Path

    save_checkpoint(Path(os.environ["LATENT_LAB_RUNS"]) / "checkpoints" / "pets-ae", model, train_config=tcfg,
                    dataset_id=spec, class_names=data.class_names, metrics={"recon_mse": 0.1}, history=hist)
    for page in ("app_pages/latent_map.py", "app_pages/interpolation.py"):
        at.switch_page(page).run()
        assert_clean(at)
        assert sidebar_dataset(at).value == spec and sidebar_ckpt(at).value == "runs/pets-ae"
        if page.endswith("latent_map.py"):
            assert at.get("plotly_chart"), "the map of the upload's codes"
        else:
            assert len(at.image) >= 3 and any(w.label.startswith("λ") for w in at.slider)


def test_cookieless_sessions_on_one_address_do_not_share(app_env, monkeypatch):
    """Two first visits from one address (a classroom behind one router; loopback here) are two owners."""
    from ui import owners

    monkeypatch.setattr(owners, "_cookie_token", lambda: None)
    at = upload(new_app(PAGE), [("pets.zip", pets_zip(), "application/zip")])
    spec = at.session_state["ll_dataset"]
    assert spec.startswith("upload:")
    other = new_app(PAGE)
    assert spec not in sidebar_dataset(other).options


@pytest.mark.slow
def test_train_page_trains_on_an_upload(app_env, who, monkeypatch):
    """The Train page trains on the selected upload and the checkpoint records its spec, so the sidebar offers
    it with that data set. Runs the job inline: pool workers come from one forkserver per test process, started
    with the first test's LATENT_LAB_RUNS (a server's workers share its one runs folder; run alone, this test
    passes with worker processes too)."""
    import time

    from ui import jobs

    monkeypatch.setenv("LATENT_LAB_EXECUTOR", "inline")
    monkeypatch.setattr(jobs, "_executor", None)
    at = upload(new_app(PAGE), [("pets.zip", pets_zip(10), "application/zip")], w_ud_size=8)
    spec = at.session_state["ll_dataset"]
    at.switch_page("app_pages/train_load.py").run()
    at.number_input(key="w_t_epochs").set_value(1)
    at.selectbox(key="w_t_model").set_value("ae").run()
    at.button[0].click().run()
    job = at.session_state["_ll_train_job"]
    deadline = time.time() + 150
    while not job.done and time.time() < deadline:
        time.sleep(0.5)
        at.run()
    assert job.done and job.error is None, job.error
    at.run()
    at.run()
    assert_clean(at)
    assert sidebar_dataset(at).value == spec and at.session_state["ll_ckpt"] == job.result
    from pathlib import Path
    import json
    import os

    folder = Path(os.environ["LATENT_LAB_RUNS"]) / "checkpoints" / job.result.split("/", 1)[1]
    saved = json.loads((folder / "config.json").read_text())
    assert saved["dataset"] == spec
