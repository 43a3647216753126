"""A run folder survives kills and careless users: a half-saved generator is retrained on resume, never trusted;
one writer at a time (a second one is refused naming the holder; a dead holder's lock is taken over); the lock
is released however the run ends."""
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from core.fewshot import TIMING_KEYS, ExperimentSpec, run_experiment
from core.fewshot.context import _load

LOCK = "run.lock"                                             # core.fewshot.runfiles.LOCK

ROOT = Path(__file__).resolve().parent.parent
SMALL = dict(dataset="digits", device="cpu", seeds=1, shots=[2], n_generated=[5], methods=["none", "multi-vae"],
             recipe={"steps": 10}, generators={"multi-vae": {"steps": 5, "hidden": 32, "latent_dim": 4}})


def _results(records):
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


def _forget_cells(run: Path) -> None:
    """As if the run had been killed before any cell was written (the generator log too: the kill came before
    the generator's task returned)."""
    for name in ("results.json", "results.csv", "summary.csv", "generators.json"):
        (run / name).unlink(missing_ok=True)


def test_generator_killed_mid_save_is_retrained_and_the_records_equal_an_uninterrupted_run(tmp_path, caplog):
    torch.set_num_threads(1)
    spec = ExperimentSpec(**SMALL)
    reference = _results(run_experiment(spec, tmp_path / "a"))
    run = tmp_path / "b"
    run_experiment(spec, run)
    folder = run / "generators" / "multi-vae-k2-s0"
    parts = sorted(p.name for p in folder.iterdir() if p.is_dir())
    assert len(parts) == 10
    # the kill: 3 of the 10 class folders saved, no completion marker; plus a temporary folder it left behind
    _forget_cells(run)
    for p in folder.iterdir():
        if p.is_file() or p.name not in parts[:3]:
            (p.unlink() if p.is_file() else shutil.rmtree(p))
    leftover = run / "generators" / ".multi-vae-k2-s0.killed.partial"
    leftover.mkdir()
    _load.cache_clear()                                       # the resume after a kill is a new process
    with caplog.at_level(logging.WARNING):
        resumed = run_experiment(spec, run)
    assert _results(resumed) == reference                     # n_added 50, not the 15 of three class VAEs
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == parts
    assert not leftover.exists()
    assert any("multi-vae-k2-s0" in r.getMessage() and "retrained" in r.getMessage() for r in caplog.records)

    # a complete folder from before the completion marker existed (the run's generator log lists it) is trusted
    (folder / "generator.json").unlink()
    _forget_cells(run)
    (run / "generators.json").write_text(json.dumps({"multi-vae-k2-s0": {"seconds": 1.0}}))
    weights = folder / parts[0] / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert _results(run_experiment(spec, run)) == reference
    assert weights.stat().st_mtime_ns == before               # loaded, not retrained


def test_a_save_interrupted_midway_leaves_nothing_under_the_final_name(tmp_path, monkeypatch):
    import core.checkpoints
    from core.data import load_dataset
    from core.fewshot import generators

    saved = []

    def save_checkpoint(path, model, **kw):                    # writes a folder, dies at the third part
        if len(saved) == 2:
            raise KeyboardInterrupt
        Path(path).mkdir(parents=True)
        (Path(path) / "model.safetensors").write_bytes(b"w")
        saved.append(path)

    monkeypatch.setattr(core.checkpoints, "save_checkpoint", save_checkpoint)
    monkeypatch.setattr(generators, "generator_health", lambda model, x: {})
    folder = tmp_path / "generators" / "multi-vae-k2-s0"
    with pytest.raises(KeyboardInterrupt):
        generators.save_generator(folder, "multi-vae", {f"class-{c}": None for c in range(4)}, load_dataset("digits"))
    assert not folder.exists() and not list(folder.parent.iterdir())
    assert not generators.generator_complete(folder)


def _sleeper():
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


def _lock_of(pid: int, started: str = "2026-01-02 03:04:05 UTC") -> str:
    return json.dumps({"pid": pid, "host": socket.gethostname(), "started": started, "token": "x"})


def test_a_second_writer_is_refused_with_a_message_naming_the_holder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    holder = _sleeper()
    try:
        (run / LOCK).write_text(_lock_of(holder.pid))
        with pytest.raises(ValueError, match=rf"pid {holder.pid} on .*started 2026-01-02 03:04:05"):
            run_experiment(ExperimentSpec(**{**SMALL, "methods": ["none"]}), run)
        assert not (run / "config.json").exists()             # refused before anything was written
        # the CLI: one line naming the holder, no traceback, nothing written
        r = subprocess.run([sys.executable, "-m", "core", "fewshot", "--dataset", "digits", "--shots", "2",
                            "--seeds", "1", "--methods", "none", "--steps", "5", "--device", "cpu",
                            "--workers", "0", "--out", str(run)], cwd=ROOT, capture_output=True, text=True,
                           timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert r.returncode != 0 and f"pid {holder.pid}" in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert not (run / "config.json").exists() and (run / LOCK).exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_dead_holders_lock_is_taken_over_with_a_note_and_released_at_the_end(tmp_path, caplog):
    run = tmp_path / "run"
    run.mkdir()
    gone = _sleeper()
    gone.kill()
    gone.wait()
    (run / LOCK).write_text(_lock_of(gone.pid))
    seen = []
    with caplog.at_level(logging.WARNING):
        records = run_experiment(ExperimentSpec(**{**SMALL, "methods": ["none"]}), run,
                                 on_progress=lambda p: seen.append(json.loads((run / LOCK).read_text())["pid"]))
    assert len(records) == 1 and seen == [os.getpid()]        # held by this run while it ran
    assert not (run / LOCK).exists()
    assert any("taking over the lock" in r.getMessage() and str(gone.pid) in r.getMessage() for r in caplog.records)


def test_the_lock_is_released_on_error_and_on_stop(tmp_path):
    run = tmp_path / "run"
    spec = ExperimentSpec(**{**SMALL, "methods": ["none"], "seeds": 2})
    stop = threading.Event()
    held = []

    def on_progress(p):
        held.append((run / LOCK).exists())
        stop.set()

    assert len(run_experiment(spec, run, on_progress=on_progress, stop=stop)) == 1
    assert held == [True] and not (run / LOCK).exists()
    with pytest.raises(ValueError, match="different settings"):
        run_experiment(ExperimentSpec(**{**SMALL, "methods": ["none"], "recipe": {"steps": 7}}), run)
    assert not (run / LOCK).exists()
    assert len(run_experiment(spec, run)) == 2                # and the folder can be resumed
