# Two commands do everything on a fresh machine: `make train` and `make test`.
# Both create .venv on first use and reinstall only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: train test test-all lint

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

train: $(STAMP)
	$(VENV)/bin/dlfp-train $(ARGS)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q $(ARGS)

test-all: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m '' $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check dlfp tests scripts
