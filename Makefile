# riskopt: `make demo` and `make test` set up .venv on their own.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The benchmark's peer lives in its own environment; the package never imports it.
PEER := benchmarks/.venv-peer
PEER_STAMP := $(PEER)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/riskopt demo --out out/demo

lint: $(STAMP)
	$(BIN)/ruff check optimizer constraints data tests benchmarks
	$(BIN)/ruff format --check optimizer constraints data tests benchmarks
	$(BIN)/mypy

test: $(STAMP) lint
	$(BIN)/pytest -q

$(PEER_STAMP): benchmarks/peer-requirements.txt
	$(PYTHON) -m venv $(PEER)
	$(PEER)/bin/pip install --quiet --upgrade pip
	$(PEER)/bin/pip install --quiet -r benchmarks/peer-requirements.txt
	touch $(PEER_STAMP)

bench: $(STAMP) $(PEER_STAMP)
	$(BIN)/python benchmarks/run.py --write benchmarks/README.md

clean:
	rm -rf $(VENV) $(PEER) out .pytest_cache .mypy_cache .ruff_cache .hypothesis
