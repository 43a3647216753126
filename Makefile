# Two commands for a fresh machine: `make run` and `make test`.
PY := .venv/bin/python
PIP := .venv/bin/pip
export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba

.PHONY: run test test-heavy test-fast venv checkpoints beta-checkpoints bench

.venv/.installed: requirements.txt
	test -x $(PY) || python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements.txt
	touch $@

.venv/.installed-test: .venv/.installed requirements-test.txt
	$(PIP) install -q -r requirements-test.txt
	touch $@

venv: .venv/.installed

run: .venv/.installed
	$(PY) -m streamlit run app.py

.venv/.installed-ray: .venv/.installed requirements-ray.txt
	$(PIP) install -q -r requirements-ray.txt
	touch $@

test: .venv/.installed-test .venv/.installed-ray
	$(PY) -m pytest -q -m "not heavy"

# The tests that take a minute or more each (two-node Ray cluster, the GPU script's CPU dry run, 20k-code neighbour
# agreement, batched cells with batch transforms / ISDA): CI runs them after `make test`.
test-heavy: .venv/.installed-test .venv/.installed-ray
	$(PY) -m pytest -q -m heavy

test-fast: .venv/.installed-test
	$(PY) -m pytest -q -m "not slow and not browser and not heavy"

# Re-create the shipped checkpoints (about 8 minutes on a 2-core CPU). One command per checkpoint; the
# WAE-MMD joins the z = 2 hole comparison only (one thread: about 3 minutes).
EPOCHS := 60
checkpoints: .venv/.installed
	for z in 2 16; do \
	  $(PY) -m core train --dataset mnist5k --model ae --latent-dim $$z --epochs $(EPOCHS) --out checkpoints/mnist5k-ae-z$$z && \
	  $(PY) -m core train --dataset mnist5k --model aae --prior gaussian --latent-dim $$z --epochs $(EPOCHS) --out checkpoints/mnist5k-aae-gaussian-z$$z && \
	  $(PY) -m core train --dataset mnist5k --model aae --prior uniform --latent-dim $$z --epochs $(EPOCHS) --out checkpoints/mnist5k-aae-uniform-z$$z && \
	  $(PY) -m core train --dataset mnist5k --model vae --latent-dim $$z --epochs $(EPOCHS) --out checkpoints/mnist5k-vae-z$$z || exit 1; \
	done
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m core train --dataset mnist5k --model wae --latent-dim 2 --epochs $(EPOCHS) --out checkpoints/mnist5k-wae-z2
	$(MAKE) beta-checkpoints

# The beta maps (seed 002): beta-VAEs at z = 2 beside mnist5k-vae-z2 (beta = 1), same settings otherwise.
# One thread each, one after another (about 2-3 CPU-minutes each on a 2-core box).
BETAS := 0.5 4 16
beta-checkpoints: .venv/.installed
	for b in $(BETAS); do \
	  OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m core train --dataset mnist5k --model vae --latent-dim 2 --beta $$b --epochs $(EPOCHS) --out checkpoints/mnist5k-vae-beta$$b-z2 || exit 1; \
	done

bench: .venv/.installed-test
	$(PY) bench/train_speed.py
