#!/usr/bin/env bash
# Samplers against the holes (README, Latent map): the 8 shipped mnist5k models x prior / ex-post / kNN
# interpolation x 5 sampling seeds, the official MNIST test set as held-out images. ~15 min on one CPU thread.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OMP_NUM_THREADS=1 $PY -m core samplers \
  --checkpoints checkpoints/mnist5k-{ae,aae-gaussian,aae-uniform,vae}-z2 checkpoints/mnist5k-{ae,aae-gaussian,aae-uniform,vae}-z16 \
  --samplers prior ex-post knn-interpolate --seeds 5 --out docs/records/samplers.csv
