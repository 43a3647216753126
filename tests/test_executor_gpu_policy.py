"""The local executor's GPU policy, checked without a GPU: which device each worker gets, how many workers a
GPU machine starts, and that a worker whose CUDA context broke fails its job clearly and is replaced."""

from __future__ import annotations

import pytest

from core.executor import JobFailed, get_executor, probe
from core.executor import local
from core.executor.local import gpu_assignment
from core.executor.worker import is_sticky_cuda_error


def test_workers_get_entries_of_the_visible_list_never_bare_indices():
    assert gpu_assignment("3,5", 2, 4) == ["3", "5", "3", "5"]
    assert gpu_assignment("GPU-aa, GPU-bb", 2, 3) == ["GPU-aa", "GPU-bb", "GPU-aa"]
    assert gpu_assignment("7", 1, 2) == ["7", "7"]          # one allocated GPU: both workers stay on it
    assert gpu_assignment(None, 2, 3) == ["0", "1", "0"]    # unset: the machine's devices 0..n-1
    assert gpu_assignment("", 1, 1) == ["0"]
    assert gpu_assignment("3,5,bogus", 2, 2) == ["3", "5"]  # torch opened only the first two
    assert gpu_assignment("3,5", 0, 2) == [None, None]      # no CUDA: workers leave the variable alone


def test_pool_size_is_a_few_per_gpu_not_one_per_core(monkeypatch):
    monkeypatch.setattr(local, "_gpu_count", lambda: 2)
    monkeypatch.delenv(local.WORKERS_PER_GPU_ENV, raising=False)
    assert local.default_pool_size() == 4
    monkeypatch.setenv(local.WORKERS_PER_GPU_ENV, "3")
    assert local.default_pool_size() == 6
    monkeypatch.setenv(local.WORKERS_PER_GPU_ENV, "zero")
    with pytest.raises(ValueError, match="LATENT_LAB_WORKERS_PER_GPU"):
        local.default_pool_size()
    monkeypatch.setattr(local, "_gpu_count", lambda: 0)
    assert local.default_pool_size() == local.default_workers()


def test_sticky_cuda_errors_are_told_from_ordinary_ones():
    assert is_sticky_cuda_error(RuntimeError("CUDA error: an illegal memory access was encountered"))
    assert is_sticky_cuda_error(RuntimeError("CUDA error: device-side assert triggered"))
    assert not is_sticky_cuda_error(RuntimeError("shape mismatch"))
    assert not is_sticky_cuda_error(ValueError("shots must be positive"))

    class OutOfMemoryError(RuntimeError):  # torch.cuda.OutOfMemoryError: the context survives it
        pass

    assert not is_sticky_cuda_error(OutOfMemoryError("CUDA out of memory. CUDA error"))


def test_worker_with_a_cuda_error_fails_the_job_then_is_replaced():
    with get_executor("local", workers=1) as ex:
        first_pid = ex.submit(probe.whoami).result(90)["pid"]
        with pytest.raises(JobFailed) as info:
            ex.submit(probe.cuda_error).result(90)
        assert info.value.type_name == "RuntimeError" and info.value.is_a("StickyCudaError")
        assert "illegal memory access" in info.value.message and "replaced" in info.value.message
        after = ex.submit(probe.tiny_training, {"seed": 0, "steps": 5}).result(90)
        assert after["seed"] == 0 and after["pid"] != first_pid  # a fresh worker took the next job


def test_deterministic_mode_is_for_cuda_only_and_cublas_is_pinned_on_import():
    import os

    import torch

    from core.device import set_deterministic

    assert os.environ.get("CUBLAS_WORKSPACE_CONFIG")  # set by importing core.device, before any CUDA call
    before = torch.are_deterministic_algorithms_enabled()
    assert set_deterministic("cpu") is False and torch.are_deterministic_algorithms_enabled() == before
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            set_deterministic("cuda")


def test_ray_task_with_a_cuda_error_fails_it_and_its_worker_takes_no_further_job(monkeypatch):
    """Ray reuses worker processes: the one whose CUDA context broke must leave before its next job starts
    (Ray then reruns that job on a fresh process). Ray's runtime is faked: no cluster needed."""
    import os

    ray = pytest.importorskip("ray")
    from core.executor import ray_backend

    class Context:
        def get_node_id(self):
            return "0123456789abcdef"

    class Exited(Exception):
        pass

    def fake_exit(code):
        raise Exited(code)

    monkeypatch.setattr(ray, "get_runtime_context", Context)
    monkeypatch.setattr(ray_backend, "_cuda_broken", False)
    monkeypatch.setattr(os, "_exit", fake_exit)
    status, value, _ = ray_backend._run_task(probe.whoami, {}, 1, None, False, False)
    assert status == "done" and value["pid"] == os.getpid()
    status, value, _ = ray_backend._run_task(probe.bad_input, {}, 2, None, False, False)
    assert status == "error" and value.type_name == "ValueError" and not ray_backend._cuda_broken
    status, value, _ = ray_backend._run_task(probe.cuda_error, {}, 3, None, False, False)
    assert status == "error" and value.is_a("StickyCudaError") and "illegal memory access" in value.message
    with pytest.raises(Exited):                      # the next job never starts in this process
        ray_backend._run_task(probe.whoami, {}, 4, None, False, False)

