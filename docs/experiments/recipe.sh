#!/usr/bin/env bash
# Choosing the classifier recipe on the VALIDATION split of mnist5k (50 images per class, never a shot, never
# in the pool, disjoint from the official test set). Method `none`, shots 2 / 10 / 50, 3 seeds, 300 steps each.
# One configuration per run folder; records go to docs/records/recipe-<name>.csv.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
run() {  # name, recipe settings...
  local name=$1; shift
  local args=()
  for kv in "$@"; do args+=(--recipe "$kv"); done
  OMP_NUM_THREADS=1 $PY -m core fewshot --dataset mnist5k --evaluate-on validation --shots 2 10 50 \
      --methods none --seeds 3 --threads 1 --out "runs/recipe-$name" "${args[@]}" > /dev/null
  cp "runs/recipe-$name/results.csv" "docs/records/recipe-$name.csv"
}
mkdir -p docs/records
# the issue-4 recipe: Adam (no weight decay) at a constant 1e-3, no dropout, raw inputs
run old lr=0.001 weight_decay=0 dropout=0 schedule='"constant"' standardise=false
run default                                   # AdamW 2e-3, wd 0.05, dropout 0.5, one-cycle, standardised
run lr1e-3 lr=0.001
run lr4e-3 lr=0.004
run wd0 weight_decay=0
run wd0.2 weight_decay=0.2
run drop0 dropout=0
run drop0.3 dropout=0.3
run cosine schedule='"cosine"'
run constant schedule='"constant"'
run raw standardise=false
run wide width=32 feature_dim=128
