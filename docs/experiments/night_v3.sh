#!/usr/bin/env bash
# Protocol v3's night on the idle 2-core box, in order, each step resumable (rerun to finish):
#   1. tuning.sh        every method's 6 configurations on the validation split -> docs/tuning/
#   2. headline_v3.sh   the headline and pool tables at the tuned settings (test set, 10 seeds)
#   3. ablations.sh     label spreading on pixels / PCA / codes / UMAP, +classic paired, fixmatch, pool at 10 seeds
# Writes the wall time of each step to runs/night_v3.log (the README's figures come from it).
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p runs
for step in tuning headline_v3 ablations; do
  start=$(date +%s)
  bash "docs/experiments/$step.sh"
  echo "$step $(( $(date +%s) - start )) s $(date -u +%FT%TZ)" | tee -a runs/night_v3.log
done
