# Two commands do all set-up on a fresh machine:
#   make demo   creates .venv (pinned CPU torch) and runs a real Lightning sweep with ASHA
#   make test   creates .venv and runs the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# An unpinned torch pulls a multi-GB CUDA build. On the project's machines torch==2.13.0 resolves
# to a CPU build on local disk; elsewhere choose one, e.g.
#   make test TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
TORCH ?= torch==2.13.0

.PHONY: demo sphere test lint benchmark clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

# 24 trials of hannah-ray-train on the embedded digits data, up to 15 epochs, ASHA stopping bad
# trials early; the study lives in demo.sqlite (a rerun finds its 24 trials done; add
# hydra.sweeper.add_trials=true to run 24 more), the trials under trained_models/demo.
demo: $(VENV)/.installed
	$(VENV)/bin/hannah-ray-train -m hydra/sweeper=ray_optuna hydra/sweeper/scheduler=asha \
		hydra.sweeper.scheduler.max_t=15 trainer.max_epochs=15 hydra.sweeper.n_trials=24 \
		scheduler.max_lr='tag(log, interval(0.0003, 0.3))' \
		optimizer.weight_decay='tag(log, interval(0.00001, 0.01))' \
		experiment_id=demo hydra.sweeper.study_name='$${experiment_id}' \
		hydra.sweeper.storage='sqlite:///$${experiment_id}.sqlite'

sphere: $(VENV)/.installed
	cd examples/sphere && ../../$(PY) sphere.py -m \
		x='interval(-5.5, 5.5)' y='choice(-5, 0, 5)' hydra.sweeper.n_trials=40 \
		hydra.sweeper.storage=sqlite:///sphere.db hydra.sweeper.study_name=sphere

test: $(VENV)/.installed
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

benchmark: $(VENV)/.installed
	$(PY) benchmarks/overhead.py
	$(PY) benchmarks/time_to_accuracy.py

clean:
	rm -rf $(VENV) .venv-stock examples/sphere/multirun examples/sphere/sphere.db trained_models demo.sqlite
