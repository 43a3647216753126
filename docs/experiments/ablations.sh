#!/usr/bin/env bash
# Protocol v3, step 3: where label spreading's gain comes from, on the official 10k MNIST TEST set (settings fixed
# beforehand: label-spread's registered defaults, chosen on validation in spread.sh; nothing here is chosen on
# the test set). One record file per column, docs/records/ablation-<name>.csv:
#   umap        label spreading on a UMAP of the pool VAE's codes (the registered default)
#   codes       on the VAE's codes without UMAP
#   umap-pixels on a UMAP of the raw pixels (no VAE)
#   pca         on the 50 leading principal components of the pixels (no VAE, no UMAP)
#   pixels      on the raw pixels (no VAE, no UMAP)
#   classic     label-spread+classic beside label-spread, the same seeds (paired in the table)
#   fixmatch    the consistency baseline (no generator, no graph) under the same pool budget
# plus the pool table at 10 seeds (mnist-pool-10seeds.csv). 10 seeds, shots 2 and 10 (pool table: 2 5 10 20 50 100),
# 400 pseudo-labelled pool images per class for the spreading methods.
# Projected cost (not measured as a whole): ~7 x 20 label-spread cells at ~15-25 s (a UMAP fit each, +60 s JIT per
# worker process), the pool table 240 cells: about 2-3 h with 2 workers on the idle 2-core box.
# Afterwards add to docs/tables.json (then `python -m core report`):
#   {"name": "ablations", "records": ["ablation-*.csv"], "label": "method+run", "strip": "ablation-",
#    "caption": "Official test set; label spreading on five representations, 10 seeds, paired against none."}
#   {"name": "spread-classic", "records": ["ablation-umap.csv", "ablation-classic.csv"], "baseline": "label-spread",
#    "caption": "label-spread+classic paired against label-spread on the same seeds."}
#   {"name": "pool-10", "records": ["mnist-pool-10seeds.csv"], "caption": "The pool table at 10 seeds."}
set -euo pipefail
# EXTRA: e.g. --deterministic, or --tuned docs/tuning/pool/tuned.json for a tuned column
source "$(dirname "$0")/v3_common.sh"
what=${1:-all}
if [[ $what == spread || $what == all ]]; then
  fewshot ablation-umap --shots 2 10 --n-generated 400 --methods none label-spread
  for emb in codes umap-pixels pca pixels; do
    fewshot "ablation-$emb" --shots 2 10 --n-generated 400 --methods label-spread --param "label-spread.embedding=$emb"
  done
  fewshot ablation-classic --shots 2 10 --n-generated 400 --methods label-spread+classic
  fewshot ablation-fixmatch --shots 2 10 --n-generated 400 --methods fixmatch
fi
if [[ $what == pool || $what == all ]]; then
  fewshot mnist-pool-10seeds --shots 2 5 10 20 50 100 --n-generated 400 \
      --methods none distill label-spread label-spread+classic fixmatch
fi
