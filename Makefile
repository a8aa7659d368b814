# Everyday commands. `make setup` once; `make run` brings the platform up.
PY ?= .venv/bin/python
PIP ?= .venv/bin/pip

.PHONY: setup run test test-fast lint format chaos bench cluster validate-deploy clean

setup: .venv/.installed

.venv/.installed: pyproject.toml constraints.txt
	python3 -m venv .venv
	$(PIP) install -q --upgrade "pip<25"
	$(PIP) install -q -c constraints.txt -e ".[test]"
	touch $@

run: setup
	scripts/run-local

test: setup
	scripts/test

test-fast: setup
	$(PY) -m pytest tests/unit -q

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

chaos: setup
	LINKAGE_CHAOS=full scripts/test tests/chaos

bench: setup
	scripts/prepare-services
	$(PY) -m bench

cluster: setup
	scripts/cluster

validate-deploy: setup
	scripts/validate-deploy

clean:
	rm -rf var .pytest_cache
