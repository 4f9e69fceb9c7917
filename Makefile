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

# mypy reads the package as it installs (riskopt.optimizer is the folder optimizer/, and so
# on) from a tree of links under build/ that `make lint` lays out (pyproject's mypy_path).
TYPECHECK := build/typecheck/riskopt

lint: $(STAMP)
	$(BIN)/ruff check riskopt optimizer constraints data tests benchmarks
	$(BIN)/ruff format --check riskopt optimizer constraints data tests benchmarks
	rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)
	for f in riskopt/*.py riskopt/py.typed; do ln -s ../../../$$f $(TYPECHECK)/; done
	for d in optimizer constraints data; do ln -s ../../../$$d $(TYPECHECK)/$$d; done
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
	$(BIN)/python benchmarks/structured.py --write README.md benchmarks/README.md

clean:
	rm -rf $(VENV) $(PEER) out .pytest_cache .mypy_cache .ruff_cache .hypothesis
