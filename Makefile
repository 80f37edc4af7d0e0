# ragops: `make repro` builds and evaluates the pipeline on SciFact; `make test` runs the tests.
# Both set up the virtual environment first. Variables: MIRROR (where SciFact is read from),
# PYTHON (the interpreter that creates the venv), VENV.
PYTHON ?= python3
VENV ?= .venv
MIRROR ?= ../shared/datasets
BIN := $(abspath $(VENV))/bin
# pytest-xdist workers (0: one process). A test file runs whole on one worker; tests/conftest.py orders the
# files so the shared tiny build starts first. The unit tests alone gain nothing from two workers (362 s in one
# process, 370 s on two: their model steps already use both cores), so test-fast runs one by default.
TEST_WORKERS ?= 2
FAST_WORKERS ?= 0
PYTEST := $(BIN)/python -m pytest --dist loadfile --no-loadscope-reorder
# dvc runs the stage commands with this PATH, so `python` is the venv's.
export PATH := $(BIN):$(PATH)
export RAGOPS_MIRROR := $(abspath $(MIRROR))
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup data repro test test-fast lint browser bench clean help

help:
	@echo "make repro   set up, fetch SciFact from MIRROR=$(MIRROR), run the DVC pipeline, show metrics"
	@echo "make test    set up and run lint + the test suite (tiny data profile)"
	@echo "make test-fast   lint + the unit tests only (no builds, no servers)"
	@echo "make bench   run the benchmarks in bench/ (full SciFact; writes docs/benchmarks.md)"

setup: $(VENV)/.installed

# torch first and pinned: 2.13.0 is a CPU wheel; anything else pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

data: setup
	$(BIN)/ragops data fetch --mirror $(MIRROR)

repro: data
	$(BIN)/dvc repro
	$(BIN)/dvc metrics show

lint: setup
	$(BIN)/ruff check src tests flows bench
	$(BIN)/actionlint .github/workflows/*.yml

test: lint browser
	$(PYTEST) -n $(TEST_WORKERS)

# the unit and reference tests only (no dvc build, no servers): a few minutes
test-fast: lint
	$(PYTEST) -n $(FAST_WORKERS) --ignore=tests/integration

# The search-page test drives Debian's chromium through Playwright (Playwright's own browser download is
# never used). Installed once; a no-op when present. Needs root or sudo (CI runners have both).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@test -x /usr/bin/chromium || $(SUDO) apt-get install -y --no-install-recommends chromium \
		|| ($(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium)

bench: data
	$(BIN)/python bench/stage_times.py
	$(BIN)/python bench/quick_build.py
	$(BIN)/python bench/precision.py
	$(BIN)/python bench/attention_dropout.py
	$(BIN)/python bench/train_step.py
	$(BIN)/python bench/dropout_step.py
	$(BIN)/python bench/flow.py
	$(BIN)/python bench/dask_embed.py
	$(BIN)/python bench/registry.py
	$(BIN)/python bench/onnx_encoder.py
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/scale.py

clean:
	rm -rf $(VENV) .cache
