# Two commands do all set-up on a fresh machine:
#   make demo   creates .venv (pinned CPU torch) and runs a real sweep
#   make test   creates .venv and runs the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# An unpinned torch pulls a multi-GB CUDA build; 2.13.0 is the CPU build.
TORCH ?= torch==2.13.0

.PHONY: demo test lint benchmark clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

demo: $(VENV)/.installed
	cd examples/sphere && ../../$(PY) sphere.py -m \
		x='interval(-5.5, 5.5)' y='choice(-5, 0, 5)' hydra.sweeper.n_trials=40 \
		hydra.sweeper.storage=sqlite:///sphere.db hydra.sweeper.study_name=sphere

test: $(VENV)/.installed
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

benchmark: $(VENV)/.installed
	$(PY) benchmarks/overhead.py

clean:
	rm -rf $(VENV) .venv-stock examples/sphere/multirun examples/sphere/sphere.db
