#!/usr/bin/env bash
# Protocol v3, step 2 of the night: the headline table re-run with every method at its TUNED setting
# (docs/tuning/tuned.json from tuning.sh, chosen on validation), 10 seeds, on the official 10k MNIST test set,
# beside today's defaults (docs/records/mnist-headline.csv, unchanged). A method without an entry in the tuned
# file runs its defaults and the table marks it <sup>..., defaults</sup>. Then the pool-using methods at 400
# pseudo-labelled per class with docs/tuning/pool/tuned.json. Records: docs/records/mnist-headline-tuned.csv,
# docs/records/mnist-pool-tuned.csv.
# Projected cost (not measured as a whole): 16 methods x 8 shot counts x 10 seeds = 1,280 cells at ~8 s (pixel
# methods) to ~25 s (label-spread: a UMAP fit), 2 workers: about 2-2.5 h on the idle 2-core box; the pool block
# 6 x 5 x 10 = 300 cells, about 1 h. Add EXTRA=--deterministic to pin the kernel path (records then say avx2).
# Afterwards add to docs/tables.json (then `python -m core report`):
#   {"name": "headline-v3", "records": ["mnist-headline-tuned.csv"], "caption": "Every method at its tuned setting."}
#   {"name": "headline-tuned", "kind": "tuned", "records": ["mnist-headline.csv", "mnist-headline-tuned.csv"],
#    "caption": "Each method's tuned setting paired with its own defaults (core/fewshot/tuned_table.py)."}
#   {"name": "pool-tuned", "records": ["mnist-pool-tuned.csv"], "caption": "Pool-using methods, tuned settings."}
set -euo pipefail
source "$(dirname "$0")/v3_common.sh"
what=${1:-all}
if [[ $what == headline || $what == all ]]; then
  fewshot mnist-headline-tuned --tuned docs/tuning/tuned.json --shots 2 3 4 5 10 20 50 100 --n-generated 50 \
      --methods none classic mixup cutmix isda lsi lsi-online vae-noise vae-interp-noise vae-extrap-noise multi-vae \
                distill label-spread fixmatch latent-probe
fi
if [[ $what == pool || $what == all ]]; then
  fewshot mnist-pool-tuned --tuned docs/tuning/pool/tuned.json --shots 2 5 10 20 50 100 --n-generated 400 \
      --methods none distill label-spread label-spread+classic fixmatch
fi
