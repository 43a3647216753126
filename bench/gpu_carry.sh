#!/usr/bin/env bash
# Prepare .gpu-carry/ for bench/gpu_check.sh on a lent GPU machine (run here, in the checkout the device tool
# sends): the wheels of what that machine lacks (captum, mlxtend: pure Python; their needs are all there) and
# the 10k MNIST test set the headline evaluates on. The folder is git-ignored through .git/info/exclude.
# Then call the device tool with: command "bash bench/gpu_check.sh", carry [".gpu-carry"], timeout_s 540.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
exclude=$(git rev-parse --git-path info/exclude)
grep -qxF '/.gpu-carry/' "$exclude" 2>/dev/null || echo '/.gpu-carry/' >>"$exclude"
mkdir -p .gpu-carry/wheels
# the GPU machine runs Python 3.12 (see /work/.library/device/README.md); versions as in requirements.txt
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .gpu-carry/wheels \
  "$(grep -o '^captum==[0-9.]*' requirements.txt)" "$(grep -o '^mlxtend==[0-9.]*' requirements.txt)"
test_set=${MNIST_TEST:-../shared/data/mnist-test}
if [[ -f $test_set/t10k-images-idx3-ubyte.gz ]]; then
  mkdir -p .gpu-carry/mnist-test && cp "$test_set"/t10k-*-ubyte.gz .gpu-carry/mnist-test/
else
  echo "no MNIST test set at $test_set (set MNIST_TEST=folder): the bench evaluates on a held-out share"
fi
ls -la .gpu-carry/wheels .gpu-carry/mnist-test 2>/dev/null
du -sh .gpu-carry
