#!/usr/bin/env bash
# The default comparison on the embedded `digits` data (what `python -m core fewshot --dataset digits` runs):
# none classic mixup isda lsi vae-interp x shots 2 5 10 20 x 3 seeds, a held-out 25 % of each class as test set.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
mkdir -p docs/records
$PY -m core fewshot --dataset digits --out runs/digits-default >/dev/null
cp runs/digits-default/results.csv docs/records/digits-default.csv
