# Two commands matter: `make run` starts the whole stack, `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEPS_STAMP := $(VENV)/.deps-stamp

.PHONY: run test deps dapr tools lint typecheck unit integration bench bench-storage clean

$(DEPS_STAMP): requirements-dev.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-dev.lock
	@touch $@

deps: $(DEPS_STAMP)

# Builds daprd, placement and scheduler from Dapr's Go module (cached outside the repo).
dapr: deps
	$(PY) -m devstack build

# Debian packages: redis-server for the stack, docker-compose to validate the compose file.
tools: deps
	$(PY) -m devstack ensure-tools redis-server docker-compose

run: deps
	$(PY) -m devstack run

# ruff for style, lint-imports for the layer contracts in pyproject.toml.
lint: deps
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: deps
	$(PY) -m mypy app devstack bench

unit: deps
	$(PY) -m pytest -m "not integration"

integration: deps tools dapr
	$(PY) -m pytest -m integration

# Every check; branch coverage of app/ is printed at the end.
test: deps tools dapr lint typecheck
	$(PY) -m pytest --cov --cov-report=term

bench: deps tools dapr
	$(PY) -m bench

# Redis keys and memory per finished order with the retention policy on (docs/storage.md).
bench-storage: deps tools dapr
	$(PY) -m bench.storage

clean:
	rm -rf .data .pytest_cache .mypy_cache .ruff_cache
