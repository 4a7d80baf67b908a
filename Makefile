# dporch — every target installs what it needs into .venv first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install test serve bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

# The main job. Until the orchestrator lands this runs the indicator example over the sample data.
serve: $(STAMP)
	$(VENV)/bin/dporch run workflows/indicators.dp data/sample_ticks.csv

bench: $(STAMP)
	$(PY) bench/bench_run.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
