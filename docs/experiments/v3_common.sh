# Shared by the protocol-v3 scripts (sourced, not run): where the data and the interpreter are, and `fewshot NAME
# ARGS...`, one run folder under runs/ whose records are copied to docs/records/NAME.csv. Resumable.
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PY=${PY:-.venv/bin/python}
TEST=${TEST:-idx:../shared/data/mnist-test}
SEEDS=${SEEDS:-10}
WORKERS=${WORKERS:-2}
EXTRA=${EXTRA:-}                # e.g. --deterministic
fewshot() {  # record name, args...
  local name=$1; shift
  OMP_NUM_THREADS=1 $PY -m core fewshot --dataset mnist5k --test "$TEST" --seeds "$SEEDS" --workers "$WORKERS" \
      --gen vae.latent_dim=50 --out "runs/$name" $EXTRA "$@" >/dev/null
  cp "runs/$name/results.csv" "docs/records/$name.csv"
}
mkdir -p docs/records
