# Quick start: `make demo` and `make test` work on a fresh machine with Python 3.11.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NOTEBOOK_STAMP := $(VENV)/.notebook-installed
# EXPERIMENT=STORAGE/NAME for the notebook targets: a local path (made absolute) or a storage URI
EXPERIMENT_ABS = $(if $(findstring ://,$(EXPERIMENT)),$(EXPERIMENT),$(abspath $(EXPERIMENT)))
# where notebook-html writes trials.html: into a local experiment, else here
NOTEBOOK_OUT = $(if $(findstring ://,$(EXPERIMENT)),.,$(EXPERIMENT_ABS))

.PHONY: venv demo test test-quick test-all lint format clean docs docs-serve notebook notebook-html check-experiment

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: venv
	$(VENV)/bin/msa search --space video_transformer

# test: test-quick's tests, then the Ray tests, each tier on two processes: two searches side by
# side (each with its own local Ray) keep both cores busy, which one search alone does not (a third
# was slower: docs/development.md). Each test counts only the Ray processes its own commands started
# (tests/processes.py).
test: venv
	$(PY) -m pytest -m "not slow and not gpu and not ray" -q -n 2 --dist loadfile
	$(PY) -m pytest -m "ray and not slow and not gpu" -q -n 2 --dist loadfile

# test-quick, the edit loop: no Ray process; two test processes, one thread each (tests/conftest.py),
# each taking whole files (--dist loadfile), so that a module's fixtures (trained checkpoints, exported
# models, generated clips) are built once, not once per process; the session's sample is built once
# for both. Measured times: docs/development.md (the one place they are stated).
test-quick: venv
	$(PY) -m pytest -m "not slow and not gpu and not ray" -q -n 2 --dist loadfile

$(NOTEBOOK_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[notebook]'
	touch $(NOTEBOOK_STAMP)

check-experiment:
	@test -n "$(EXPERIMENT)" || { echo "error: name the search: make $(MAKECMDGOALS) EXPERIMENT=ray_results/NAME" >&2; exit 2; }

notebook: check-experiment $(NOTEBOOK_STAMP)  # JupyterLab on analysis/trials.ipynb (installs the notebook extra once)
	MSA_EXPERIMENT=$(EXPERIMENT_ABS) $(VENV)/bin/jupyter lab analysis/trials.ipynb

notebook-html: check-experiment venv  # headless: the notebook executed into EXPERIMENT/trials.html
	MSA_EXPERIMENT=$(EXPERIMENT_ABS) $(PY) -m jupyter nbconvert --to html --execute analysis/trials.ipynb \
		--output-dir $(NOTEBOOK_OUT) --output trials

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

docs: venv  # the documentation site into site/; --strict: a broken link, a missing page or a warning fails
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

docs-serve: venv  # the site at http://127.0.0.1:8000, rebuilt on every edit
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

test-all: venv
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache ray_results site
