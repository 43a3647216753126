#!/usr/bin/env bash
# The Bonn PROBEN1 protocol on vector data (seed 002): VAE with beta_norm = beta * d / N (N = input dimension),
# d = 2, beta = 1; "VAE" = prior samples of one VAE per class (multi-vae: the label is the class), "VAE + GC" =
# prior samples of one VAE labelled by the generative classifier (vae-prior-gc); as many generated as shots.
# On the embedded breast-cancer and wine tables; any npz:FILE.npz (arrays X (N, F) and y) runs the same way:
#   DATASETS="npz:thyroid.npz" bash docs/experiments/proben1.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
mkdir -p docs/records
for ds in ${DATASETS:-breast-cancer wine}; do
  name="proben1-${ds//[^A-Za-z0-9]/_}"
  shots="5 10 20 30 50 100"; [[ $ds == wine ]] && shots="5 10 20 30"    # wine: 33 training examples in its smallest class
  OMP_NUM_THREADS=1 $PY -m core fewshot --dataset "$ds" --shots $shots --seeds 5 --n-generated shots \
      --gen vae.latent_dim=2 --gen vae.beta=1.0 --gen vae.beta_norm=true --gen vae.hidden=64 \
      --gen multi-vae.latent_dim=2 --gen multi-vae.beta=1.0 --gen multi-vae.beta_norm=true --gen multi-vae.hidden=64 \
      --methods none multi-vae vae-prior-gc --threads 1 --out "runs/$name" >/dev/null
  cp "runs/$name/results.csv" "docs/records/$name.csv"
done
