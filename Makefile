# `make app` and `make test` create .venv on first use (CPU install, torch pinned by constraints-cpu.txt).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: app test test-all install clean lint params bench

$(STAMP): requirements.txt requirements-dev.txt constraints-cpu.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints-cpu.txt -r requirements-dev.txt
	$(BIN)/pip install -q -c constraints-cpu.txt --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

app: $(STAMP)
	$(BIN)/python -m app

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ""

params: $(STAMP)
	$(BIN)/python -m reasonbrain params

bench: $(STAMP)
	$(BIN)/python benchmarks/pipeline_overhead.py

lint: $(STAMP)
	$(BIN)/ruff check reasonbrain app tests benchmarks

clean:
	rm -rf $(VENV)
