#!/usr/bin/env bash
# The few-shot tables of docs/results.md, each one command (run folders under runs/, records copied to
# docs/records/). Shots from mnist5k, the official 10k MNIST test set. Resumable: rerun to finish or extend.
#   bash docs/experiments/mnist.sh headline      # the headline table
#   bash docs/experiments/mnist.sh all           # every table
# Add --workers N / --ray ADDRESS (see README) to spread the cells over processes or a cluster.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
TEST=${TEST:-idx:../shared/data/mnist-test}
SEEDS=${SEEDS:-5}
EXTRA=${EXTRA:-}
fewshot() {  # name, args...
  local name=$1; shift
  OMP_NUM_THREADS=1 $PY -m core fewshot --dataset mnist5k --test "$TEST" --threads 1 --out "runs/$name" $EXTRA "$@" >/dev/null
  cp "runs/$name/results.csv" "docs/records/$name.csv"
}
mkdir -p docs/records
what=${1:-all}
if [[ $what == headline || $what == all ]]; then
  # Every method family against the frozen recipe; the VAE as in the Bonn slides (d = 50, beta = 0.5).
  fewshot mnist-headline --shots 2 3 4 5 10 20 50 100 --seeds "$SEEDS" --n-generated 50 --gen vae.latent_dim=50 \
      --methods none classic mixup cutmix isda lsi lsi-online vae-noise vae-interp-noise vae-extrap-noise multi-vae \
                distill latent-probe
fi
if [[ $what == labelled || $what == all ]]; then
  # The same generator methods with generators trained on the shots only (shots-only versions).
  fewshot mnist-gen-labelled --shots 2 10 50 --seeds 3 --n-generated 50 --gen vae.latent_dim=50 \
      --gen-data labelled --methods none lsi-online vae-extrap-noise
fi
if [[ $what == only-generated || $what == all ]]; then
  # Bonn "only generated data": 5 originals per class; the classifier sees n generated per class only.
  fewshot mnist-only-generated --shots 5 --seeds 3 --generated-only --gen vae.latent_dim=50 \
      --n-generated 2 10 50 200 2000 --methods none vae-noise vae-interp-noise vae-extrap-noise multi-vae
fi
if [[ $what == more-generated || $what == all ]]; then
  # Bonn "more generated data": 2,000 generated per class at every shot count.
  fewshot mnist-more-generated --shots 2 10 50 --seeds 3 --n-generated 2000 --gen vae.latent_dim=50 \
      --methods none vae-noise vae-interp-noise vae-extrap-noise multi-vae distill
fi
if [[ $what == mix-in || $what == all ]]; then
  # Multi-VAE with the slides' optional 20 % mix-in of other classes.
  fewshot mnist-multivae-mixin --shots 2 10 50 --seeds 3 --n-generated 50 --gen multi-vae.mix_in=0.2 \
      --methods none multi-vae
fi
if [[ $what == pool || $what == all ]]; then
  # The pool-using methods side by side: distillation (no generator) and label spreading in the VAE's code space,
  # alone and with classic augmentation on the shots and pseudo-labels (chosen on validation: spread.sh "classic").
  fewshot mnist-pool --shots 2 5 10 20 50 100 --seeds "$SEEDS" --n-generated 400 --gen vae.latent_dim=50 \
      --methods none distill label-spread label-spread+classic
fi
