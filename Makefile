# Patronus Scanner: the two commands of the README, and helpers.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install Patronus with its test tools

demo: setup  ## the main job on the embedded default: scan real models, write reports to out/demo
	$(BIN)/patronus demo --out out/demo

test: setup  ## the whole test suite (pytest exit 5, "no tests", is a failure like any other)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python bench/bench_scan.py

clean:
	rm -rf $(VENV) out .cache
