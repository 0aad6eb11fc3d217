# Patronus Scanner: the two commands of the README, and helpers. `make help` lists them.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help setup demo test test-heavy test-fast lint format typecheck bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install Patronus with its test tools

demo: setup  ## the main job on the embedded default: scan real models, write reports to out/demo
	$(BIN)/patronus demo --out out/demo

test: setup lint typecheck  ## the whole test suite (pytest exit 5, "no tests", is a failure like any other)
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test-heavy: setup  ## the heavy tests make test leaves out: the real all-mpnet-base-v2, the full 30-layer SmolLM2
	$(BIN)/python -m pytest -q -p no:cacheprovider -m heavy $(PYTEST_ARGS)

test-fast: setup  ## unit tests only: no slow (planting) and no service (Postgres, broker) tests
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow and not service" $(PYTEST_ARGS)

lint: setup  ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup  ## apply ruff's formatting and import order
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix --select I .

typecheck: setup  ## mypy over scanner, db, tasks, web (config in pyproject.toml)
	$(BIN)/mypy

bench: setup  ## CPU scan-cost benchmark (bench/RESULTS.md)
	$(BIN)/python bench/bench_scan.py

clean:  ## remove the venv, outputs and caches
	rm -rf $(VENV) out .cache
