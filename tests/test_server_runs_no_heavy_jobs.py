"""The web server only submits, polls and draws: opening the Saliency page and computing a UMAP and the hole
metrics on the Latent map page trains, fits, encodes and measures nothing in the server (here: the test process,
where AppTest runs the pages). Two checks: the executor's job log says every such job ran in a worker
process, and the core functions that do the work are made to fail in this process, so a page that
called them in-process would show an error."""

import os

import pytest

from app_support import app_env, app_checkpoints, assert_clean, new_app, rerun_until  # noqa: F401

HEAVY = {"saliency-pair", "umap", "holes", "latents"}


@pytest.fixture()
def worker_executor(monkeypatch):
    """The app's shared executor replaced by real worker processes (one), and the shared job registry
    emptied, so every job of this test runs (none is served from another test's cache)."""
    from core.executor import get_executor
    from ui import background, jobs

    ex = get_executor("local", workers=2)
    monkeypatch.setattr(jobs, "_executor", ex)
    background._registry.clear()
    yield ex
    background.wait_all(120)
    background._registry.clear()
    ex.shutdown()


def _in_server(*_a, **_k):
    raise AssertionError("heavy work ran in the web server's process")


@pytest.mark.slow
def test_saliency_umap_and_holes_run_in_worker_processes(app_env, worker_executor, monkeypatch):
    import core.holes
    import core.latent
    import core.projection
    import core.saliency

    for module, name in ((core.saliency, "train_pair"), (core.holes, "hole_metrics"), (core.projection, "umap_embed"),
                         (core.latent, "encode_dataset")):
        monkeypatch.setattr(module, name, _in_server)

    at = new_app("app_pages/saliency.py", query={"dataset": "digits"})
    assert_clean(at)
    assert len(at.image) == 2 * 4 + 1  # both classifiers' images and maps, and the saliencymix tiles

    at = new_app("app_pages/latent_map.py")
    assert_clean(at)
    at.radio(key="w_map_method_False").set_value("UMAP").run()
    rerun_until(at, lambda: any("UMAP" in str(c.proto) for c in at.get("plotly_chart")), seconds=240, clean=True)
    rerun_until(at, lambda: len(at.dataframe) >= 1 and len(at.dataframe[0].value) >= 2, seconds=240, clean=True)
    assert_clean(at)

    log = worker_executor.job_log()
    ran = {e["name"] for e in log}
    assert HEAVY <= ran, log
    heavy = [e for e in log if e["name"] in HEAVY]
    assert all(e["status"] == "done" for e in heavy), heavy
    assert all(e["pid"] is not None and e["pid"] != os.getpid() for e in heavy), heavy
