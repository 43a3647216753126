"""Records name their CPU kernel path; --deterministic pins it (core/fewshot/kernels.py)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.fewshot import TIMING_KEYS, ExperimentSpec, run_experiment
from core.fewshot.kernels import FLAG, MACHINE_KEYS, machine, pin

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_every_record_names_its_kernel_path_and_the_comparisons_ignore_it(tmp_path):
    torch.set_num_threads(1)
    spec = ExperimentSpec(dataset="digits", device="cpu", seeds=1, shots=[2], methods=["none"], recipe={"steps": 5})
    r = run_experiment(spec, tmp_path / "run")[0]
    assert r["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert r["aten_cpu_capability"] == os.environ.get("ATEN_CPU_CAPABILITY", "")
    assert r["deterministic"] is torch.are_deterministic_algorithms_enabled() and r["device"] == "cpu"
    assert set(MACHINE_KEYS) <= set(TIMING_KEYS)        # another machine's records compare on everything else
    csv_head = (tmp_path / "run" / "results.csv").read_text().splitlines()[0]
    assert "cpu_capability" in csv_head


@pytest.mark.slow       # two fresh interpreters (~30 s on a loaded 2-core box)
def test_pin_asks_for_avx2_and_deterministic_algorithms_in_a_fresh_process():
    code = "from core.fewshot.kernels import pin; import json; print(json.dumps(pin()))"
    env = {k: v for k, v in ENV.items() if k not in ("ATEN_CPU_CAPABILITY", FLAG)}
    out = json.loads(subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                                    check=True).stdout)
    assert out["aten_cpu_capability"] == "avx2" and out["deterministic"] is True
    assert out["cpu_capability"] in ("AVX2", "DEFAULT")    # DEFAULT: a CPU without AVX2 runs the generic path
    # a worker started with the parent's environment turns the deterministic algorithms on itself
    code = "from core.fewshot.kernels import apply, machine; apply(); import json; print(json.dumps(machine()))"
    out = json.loads(subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                                    env={**env, FLAG: "1", "ATEN_CPU_CAPABILITY": "avx2"}).stdout)
    assert out == {"cpu_capability": out["cpu_capability"], "aten_cpu_capability": "avx2", "deterministic": True}


def test_pin_refuses_when_this_process_already_runs_avx512_kernels(monkeypatch):
    # setenv (not delenv) so that monkeypatch restores both afterwards: pin() writes them
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", os.environ.get("ATEN_CPU_CAPABILITY", "default"))
    monkeypatch.setenv(FLAG, "0")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    try:
        with pytest.raises(ValueError, match="ATEN_CPU_CAPABILITY=avx2"):
            pin()
    finally:
        torch.use_deterministic_algorithms(False)
    monkeypatch.undo()
    assert FLAG not in os.environ or os.environ[FLAG] != "1"          # nothing leaks into later tests


@pytest.mark.slow       # two CLI runs in fresh interpreters
def test_fewshot_cli_deterministic_records_say_so_and_match_the_unpinned_records_on_an_avx2_machine(tmp_path):
    base = [sys.executable, "-m", "core", "fewshot", "--methods", "none", "classic", "--shots", "2", "--seeds", "1",
            "--steps", "10", "--workers", "0"]
    env = {k: v for k, v in ENV.items() if k not in ("ATEN_CPU_CAPABILITY", FLAG)}
    for name, extra in (("plain", []), ("pinned", ["--deterministic"])):
        subprocess.run(base + extra + ["--out", str(tmp_path / name)], cwd=REPO, env=env, capture_output=True,
                       check=True)
    plain, pinned = (json.loads((tmp_path / n / "results.json").read_text()) for n in ("plain", "pinned"))
    assert {(r["aten_cpu_capability"], r["deterministic"]) for r in pinned} == {("avx2", True)}
    assert {r["deterministic"] for r in plain} == {False}
    if machine()["cpu_capability"] == "AVX2":               # the same kernel path: the same records
        strip = lambda rs: [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rs]   # noqa: E731
        assert strip(plain) == strip(pinned)
