#!/usr/bin/env bash
# The GPU check of issue 13, one prepared script for a lent GPU machine (<= 8 minutes): the `gpu`-marked tests,
# then bench/gpu_bench.py's figures (training epoch time; few-shot cells per second in one process, on K
# worker processes, and batched when bench/batched_cells.py exists; the 10-seed MNIST headline's projected
# time). The last line is the summary:
#   gpu_check device=... epoch_s=... cell_per_s=... workers_cell_per_s=... batched_cell_per_s=... headline_min=... workers=K tests=...
#
#   bash bench/gpu_check.sh            # on the GPU machine
#   bash bench/gpu_check.sh --dry-run  # anywhere: the same code path on the CPU, tiny sizes, about a minute
#
# The GPU machine has torch, scikit-learn, scipy, pandas, matplotlib and pytest but not captum or mlxtend:
# bench/gpu_carry.sh puts their wheels (and the 10k MNIST test set) in .gpu-carry/; carry that folder and this
# script installs them first. Without them the saliency test skips and the bench uses mnist-like data.
# GPU_CHECK_MPS=1 starts the MPS daemon for the bench (worker processes then overlap on the GPU).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 CUBLAS_WORKSPACE_CONFIG=:4096:8  # cuBLAS: before CUDA starts
DRY=""
[[ ${1:-} == --dry-run ]] && DRY=--dry-run

if [[ -z ${PY:-} ]]; then  # the project's venv here; on the GPU machine the system python3 (it holds torch)
  if [[ -x .venv/bin/python ]] && .venv/bin/python -c 'import torch' 2>/dev/null; then PY=.venv/bin/python; else PY=python3; fi
fi
if compgen -G ".gpu-carry/wheels/*.whl" >/dev/null; then
  site=${TMPDIR:-/tmp}/gpu-check-site
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .gpu-carry/wheels/*.whl \
    && export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" || echo "gpu_check: the carried wheels did not install"
fi
[[ -n $DRY ]] && echo "gpu_check: DRY RUN on the CPU (tiny sizes; the figures check the script, they mean nothing)"
command -v nvidia-smi >/dev/null && [[ -z $DRY ]] && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c 'import torch; print(f"gpu_check: torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")'

# 1. the gpu-marked tests (files that carry the marker: the app's tests need streamlit, which the GPU machine lacks)
mapfile -t files < <(grep -l "mark\.gpu" tests/test_*.py)
tests="none"
if ! $PY -c "import pytest" 2>/dev/null; then
  tests="no-pytest"; echo "gpu_check: pytest is not installed: the gpu tests did not run"
elif (( ${#files[@]} )); then
  log=$(mktemp)
  timeout "${GPU_CHECK_TESTS_S:-170}" $PY -m pytest -q -m gpu -p no:cacheprovider "${files[@]}" 2>&1 | tee "$log"
  # "7 passed, 1 skipped in 80.1s" -> tests=7passed,1skipped
  tests=$(grep -E "^(=+ )?[0-9]+ (passed|failed|skipped|error|deselected)" "$log" | tail -1 \
          | sed -E 's/=//g; s/ in [0-9.]+s.*//; s/ //g')
  [[ -z $tests ]] && tests="timeout-or-crash"
  rm -f "$log"
fi

# 2. the figures
if [[ ${GPU_CHECK_MPS:-0} == 1 && -z $DRY ]]; then
  nvidia-cuda-mps-control -d && echo "gpu_check: MPS daemon started" || echo "gpu_check: MPS did not start"
fi
log=$(mktemp)
timeout "${GPU_CHECK_BENCH_S:-310}" $PY bench/gpu_bench.py $DRY 2>&1 | tee "$log"
summary=$(grep "^gpu_check " "$log" | tail -1)
rm -f "$log"
[[ ${GPU_CHECK_MPS:-0} == 1 && -z $DRY ]] && echo quit | nvidia-cuda-mps-control
[[ -z $summary ]] && summary="gpu_check device=? epoch_s=n/a cell_per_s=n/a workers_cell_per_s=n/a batched_cell_per_s=n/a headline_min=n/a bench=failed"
echo "$summary tests=$tests"
