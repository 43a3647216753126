#!/usr/bin/env bash
# Protocol v3, step 1: the equal tuning budget, on the VALIDATION split of mnist5k only (never the test set).
# Every method: 6 configurations (its defaults + 5 random draws from a fixed seed over its own registered
# parameters, the recipe's lr / weight_decay, and gen_ratio where it adds rows), 3 seeds, shots 2 and 10; one
# rule, fixed in core/fewshot/tuning.py (RULE) before any run. Writes docs/tuning/tuning.csv (raw records) and
# docs/tuning/tuned.json (what `python -m core fewshot --tuned` reads); the pool-using methods at the pool table's
# 400 pseudo-labelled per class go to docs/tuning/pool/. Resumable: rerun to finish.
# Projected cost (not measured as a whole): 21 methods x 6 x 3 x 2 = 756 cells at ~8-15 s each on one core
# (README's per-cell figures; label-spread cells add a UMAP fit), plus 3 pool generators per seed shared by every
# configuration: about 1.5-2.5 h with 2 workers on the idle 2-core box; then the pool block ~1 h.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
WORKERS=${WORKERS:-2}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
$PY -m core tune --dataset mnist5k --n-generated 50 --gen vae.latent_dim=50 --workers "$WORKERS" --out docs/tuning \
    --runs runs/tuning \
    --methods none classic cutout mixup cutmix saliencymix label-smoothing isda tta lsi lsi-online vae-noise \
              vae-interp vae-extrap vae-interp-noise vae-extrap-noise vae-prior-gc multi-vae distill label-spread \
              fixmatch latent-probe
$PY -m core tune --dataset mnist5k --n-generated 400 --gen vae.latent_dim=50 --workers "$WORKERS" \
    --out docs/tuning/pool --runs runs/tuning-pool --methods distill label-spread label-spread+classic fixmatch
