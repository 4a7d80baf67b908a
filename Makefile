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

# tests/backtest runs BACKTEST_REPEAT times (CI: 20) so that a flaky backtest shows.
BACKTEST_REPEAT ?= 20

test: $(STAMP)
	$(PY) -m pytest --repeat-backtests $(BACKTEST_REPEAT)

# The main job: a Dask scheduler, two workers and the orchestrator (tasks.toml), API on :8888,
# all on 127.0.0.1 (DPORCH_DASK_HOST=0.0.0.0 exposes the cluster; other settings: bin/serve.sh).
serve: $(STAMP)
	bin/serve.sh

bench: $(STAMP)
	$(PY) bench/bench_run.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
