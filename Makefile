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
	# the attacks' reference in tests; without its dependencies: it pins requests~=2.25.1 (idna<3),
	# which conflicts with tokenizers' huggingface_hub, and its attack code imports none of them
	$(VENV)/bin/python -m pip install -q --no-deps 'torchattacks==3.5.1'
	touch $(STAMP)

train: $(STAMP)
	$(VENV)/bin/dlfp-train $(ARGS)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q $(ARGS)

test-all: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m '' $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check dlfp tests scripts
