"""An uploaded data set is found by worker processes in the runs folder of whoever submitted the job: a worker's
environment dates from when its fork server started, so the folder travels with each job (JobHandle.runs_root)."""

from __future__ import annotations

import numpy as np
import pytest

from core import data_store
from core.executor.local import LocalExecutor
from core.user_data import UserArrays


def _table(seed: int) -> UserArrays:
    rng = np.random.default_rng(seed)
    return UserArrays(rng.normal(size=(12, 3)).astype(np.float32), np.arange(12) % 2, ["a", "b"], "t.csv",
                      {"kind": "csv"}, ["p", "q", "r"])


def test_a_job_reads_uploads_from_the_runs_folder_it_was_submitted_with(tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    monkeypatch.setenv(data_store.RUNS_ENV, str(first))
    ex = LocalExecutor(workers=1)
    try:
        assert ex.submit(data_store.data_root).result(120) == first / "data"   # workers start here
        monkeypatch.setenv(data_store.RUNS_ENV, str(second))   # e.g. the next test, or a notebook cell
        sha = data_store.store(_table(0), "t", owners=["o"])["sha256"]
        assert (second / "data" / sha).is_dir() and not (first / "data").exists()
        assert ex.submit(data_store.data_root).result(60) == second / "data"
        x, y, names = ex.submit(data_store.load_arrays, {"sha": sha}).result(60)
        np.testing.assert_array_equal(y, data_store.load_arrays(sha)[1])
        assert names == ["a", "b"]
        monkeypatch.delenv(data_store.RUNS_ENV)   # no folder given: the worker uses the default, as the caller does
        assert ex.submit(data_store.data_root).result(60) == data_store.data_root()
    finally:
        ex.shutdown()


def test_the_runs_folder_is_taken_when_the_job_is_submitted(tmp_path, monkeypatch):
    from core.executor.base import RUNS_ENV
    from core.executor.inline import InlineExecutor

    assert RUNS_ENV == data_store.RUNS_ENV
    monkeypatch.setenv(RUNS_ENV, str(tmp_path))
    with InlineExecutor() as ex:
        handle = ex.submit(data_store.data_root)
        assert handle.runs_root == str(tmp_path)
        handle.result(10)
    monkeypatch.delenv(RUNS_ENV)
    with InlineExecutor() as ex:
        assert ex.submit(data_store.data_root).runs_root is None
