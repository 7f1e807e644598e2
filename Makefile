# Quick start: `make demo` and `make test` work on a fresh machine with Python 3.11.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv demo test test-quick test-all lint format clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: venv
	$(PY) tune_main.py --space video_transformer

test: venv  # test-quick's tests on two processes, then the Ray tests one at a time (they start clusters)
	$(PY) -m pytest -m "not slow and not gpu and not ray" -q -n 2
	$(PY) -m pytest -m "ray and not slow and not gpu" -q

test-quick: venv  # the edit loop: no Ray process, two test processes, under 2 minutes on 2 cores
	$(PY) -m pytest -m "not slow and not gpu and not ray" -q -n 2

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test-all: venv
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache ray_results
