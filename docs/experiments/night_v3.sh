#!/usr/bin/env bash
# Protocol v3's night on the idle 2-core box, in order, each step resumable (rerun to finish; a step whose records
# are complete takes seconds):
#   1. tuning.sh              every method's 6 configurations on the validation split -> docs/tuning/
#   2. headline_v3.sh pool    the pool-using methods at their tuned settings (test set, 10 seeds): the issue's goals
#   3. ablations.sh           label spreading on pixels / PCA / codes / UMAP, +classic paired, fixmatch, pool at 10 seeds
#   4. headline_v3.sh headline  every method at its tuned setting, 8 shot counts, 10 seeds (the longest step)
# The pool steps come first: they answer the accuracy goals, and a night cut short keeps them.
# Writes the wall time of each step to runs/night_v3.log (the README's figures come from it).
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p runs
for step in "tuning" "headline_v3 pool" "ablations" "headline_v3 headline"; do
  start=$(date +%s)
  read -r script part <<<"$step"
  bash "docs/experiments/$script.sh" "${part:-all}"
  echo "$step $(( $(date +%s) - start )) s $(date -u +%FT%TZ)" | tee -a runs/night_v3.log
done
