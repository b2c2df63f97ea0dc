# The two set-up commands in the README: `make demo` and `make test`. Both create or update .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.edgekd-installed

.PHONY: demo test test-fast test-litert lint bench clean

$(STAMP): requirements.lock requirements-nodeps.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip==26.3"
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# litert-torch cannot share the main lock (it pins pydantic 2.11 through xdsl): its own venv and pinned set.
VENV_LITERT := .venv-litert
LITERT_STAMP := $(VENV_LITERT)/.edgekd-installed

$(LITERT_STAMP): requirements-litert.txt requirements-nodeps.txt pyproject.toml
	test -x $(VENV_LITERT)/bin/python || $(PYTHON) -m venv $(VENV_LITERT)
	$(VENV_LITERT)/bin/python -m pip install --quiet --upgrade "pip==26.3"
	$(VENV_LITERT)/bin/python -m pip install --quiet -r requirements-litert.txt
	$(VENV_LITERT)/bin/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(VENV_LITERT)/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(LITERT_STAMP)

demo: $(STAMP)
	$(VENV)/bin/edgekd run examples/digits.toml

# Lint (ruff check + format check) and the type check of the typed modules ([tool.mypy] files).
lint: $(STAMP)
	$(VENV)/bin/ruff check edgekd tests bench
	$(VENV)/bin/ruff format --check edgekd tests bench
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest

# The litert_torch converter's tests, in its own venv (CI runs this after `make test`).
test-litert: $(LITERT_STAMP)
	$(VENV_LITERT)/bin/python -m pytest tests/converters/test_torch_tflite.py --require-covered converter:litert_torch

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

bench: $(STAMP)
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) $(VENV_LITERT) runs .pytest_cache
