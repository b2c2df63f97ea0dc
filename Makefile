# The two set-up commands in the README: `make demo` and `make test`. Both create or update .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.edgekd-installed

.PHONY: demo test test-fast lint bench clean

$(STAMP): requirements.lock requirements-nodeps.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip==26.3"
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/edgekd run examples/digits.toml

# Lint (ruff check + format check) and the type check of the typed modules ([tool.mypy] files).
lint: $(STAMP)
	$(VENV)/bin/ruff check edgekd tests bench
	$(VENV)/bin/ruff format --check edgekd tests bench
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

bench: $(STAMP)
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) runs .pytest_cache
