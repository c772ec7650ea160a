# rtml — every set-up step a fresh machine needs lives here.
#   make demo   embedded install (no server, no Java) and the end-to-end demo
#   make test   full install, real services, lint, the whole test suite
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
EMBEDDED := $(VENV)/.installed-embedded
DEV := $(VENV)/.installed-dev
DEMO_DIR ?= rtml-demo
PYTEST_ARGS ?=

.PHONY: demo test lint format docs services services-stop services-status bench clean

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(EMBEDDED): pyproject.toml | $(PY)
	$(PIP) install --quiet -e .
	touch $@

$(DEV): pyproject.toml | $(PY)
	$(PIP) install --quiet -e '.[dev]'
	touch $@ $(EMBEDDED)

demo: $(EMBEDDED)
	$(VENV)/bin/rtml demo --dir $(DEMO_DIR) --summary $(DEMO_DIR)/summary.json

test: $(DEV) services lint
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(DEV)
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/ruff format --check src tests bench scripts
	$(VENV)/bin/mypy

docs: $(DEV)
	$(PY) scripts/cli_docs.py
	$(PY) scripts/config_docs.py

format: $(DEV)
	$(VENV)/bin/ruff check --fix src tests bench
	$(VENV)/bin/ruff format src tests bench

services:
	bash scripts/services.sh start

services-stop:
	bash scripts/services.sh stop

services-status:
	bash scripts/services.sh status

bench: $(DEV)
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
