# Two commands for a fresh machine (only Python 3.11 + pip needed):
#   make fit    set up .venv if needed, then: lit-linreg fit --config configs/base.yaml
#   make test   set up .venv if needed, then run the whole test suite (what CI runs)
#   make lint   ruff check, ruff format --check and mypy (CI runs it after the tests)
#   make test-lowest  the suite with every direct dependency at its lowest admitted version (CI runs it too)
# Set-up installs the dev extra, which includes the serve and export extras (lit-linreg serve / export).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup fit test lint test-lowest bench tensorboard clean

# Set-up is idempotent: it reruns only when pyproject.toml or the constraints change.
$(STAMP): pyproject.toml requirements/constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		--constraint requirements/constraints.txt --editable ".[dev]"
	@touch $(STAMP)

setup: $(STAMP)

fit: setup
	$(BIN)/lit-linreg fit --config configs/base.yaml

test: setup
	$(BIN)/python -m pytest

# The suite again in .venv-lowest, with every direct dependency at the lowest version pyproject.toml admits.
LOWEST := .venv-lowest
$(LOWEST)/.installed: pyproject.toml requirements/lowest.txt
	@test -x $(LOWEST)/bin/python || $(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install --quiet --disable-pip-version-check \
		--constraint requirements/lowest.txt --editable ".[dev]"
	@touch $@

test-lowest: $(LOWEST)/.installed
	$(LOWEST)/bin/python -m pytest

lint: setup
	$(BIN)/ruff check lit_linreg tests benchmarks
	$(BIN)/ruff format --check lit_linreg tests benchmarks
	$(BIN)/mypy

# Parquet: throughput at 10M rows; the 100M-row memory and accuracy part (about 3.6 GB written, several minutes)
# only with e.g. `make bench PARQUET_MEMORY_ROWS=100000000`.
PARQUET_MEMORY_ROWS ?= 0
bench: setup
	$(BIN)/python benchmarks/bench.py
	$(BIN)/python benchmarks/serve_bench.py
	$(BIN)/python benchmarks/baselines_bench.py
	$(BIN)/python benchmarks/parquet_bench.py --memory-rows $(PARQUET_MEMORY_ROWS)

tensorboard: setup
	$(BIN)/tensorboard --logdir lightning_logs

clean:
	rm -rf lightning_logs checkpoints/*/ figures .pytest_cache
