#!/usr/bin/env bash
# Protocol v3, step 3: where label spreading's gain comes from, on the official 10k MNIST TEST set (settings fixed
# beforehand: label-spread's registered defaults, chosen on validation in spread.sh and kept by the pool tuning;
# nothing here is chosen on the test set). One record file per column, docs/records/ablation-<name>.csv:
#   codes       label spreading on the VAE's codes without UMAP
#   umap-pixels on a UMAP of the raw pixels (no VAE)
#   pca         on the 50 leading principal components of the pixels (no VAE, no UMAP)
#   pixels      on the raw pixels (no VAE, no UMAP)
# The other columns are cells step 2 (headline_v3.sh pool) already ran, not run twice: label spreading on a UMAP
# of the pool VAE's codes (the registered default; the pool tuning kept it, tuned entry {}), none,
# label-spread+classic (paired against label-spread) and fixmatch at its tuned setting all come from
# docs/records/mnist-pool-tuned.csv (10 seeds, the same seeds and pool). The pool table's defaults of the two
# methods the pool tuning moved (distill, fixmatch) at 10 seeds: docs/records/mnist-pool-defaults.csv.
# 10 seeds, shots 2 and 10 (pool defaults: 2 5 10 20 50 100), 400 pseudo-labelled pool images per class.
# Projected cost (not measured as a whole): 4 x 20 label-spread cells at ~15-25 s (a UMAP fit each, +60 s JIT per
# worker process), the pool defaults 120 cells: about 1-1.5 h with 2 workers on the idle 2-core box.
# Afterwards add to docs/tables.json (then `python -m core report`):
#   {"name": "ablations", "records": ["ablation-*.csv", "mnist-pool-tuned.csv"], "label": "method+run",
#    "strip": "ablation-", "where": {"shots": [2, 10], "method": ["none", "label-spread", "fixmatch"]},
#    "rename": {"label-spread (mnist-pool-tuned)": "label-spread (umap)", "fixmatch (mnist-pool-tuned)": "fixmatch"},
#    "caption": "Official test set; label spreading on five representations, 10 seeds, paired against none."}
#   {"name": "spread-classic", "records": ["mnist-pool-tuned.csv"], "baseline": "label-spread",
#    "where": {"method": ["label-spread", "label-spread+classic"]},
#    "caption": "label-spread+classic paired against label-spread on the same seeds."}
#   {"name": "pool-defaults", "records": ["mnist-pool-tuned.csv", "mnist-pool-defaults.csv"], "label": "method+run",
#    "strip": "mnist-pool-", "caption": "The pool table at 10 seeds, distill and fixmatch tuned beside defaults."}
set -euo pipefail
# EXTRA: e.g. --deterministic, or --tuned docs/tuning/pool/tuned.json for a tuned column
source "$(dirname "$0")/v3_common.sh"
what=${1:-all}
if [[ $what == spread || $what == all ]]; then
  for emb in codes umap-pixels pca pixels; do
    fewshot "ablation-$emb" --shots 2 10 --n-generated 400 --methods label-spread --param "label-spread.embedding=$emb"
  done
fi
if [[ $what == pool || $what == all ]]; then
  fewshot mnist-pool-defaults --shots 2 5 10 20 50 100 --n-generated 400 --methods distill fixmatch
fi
