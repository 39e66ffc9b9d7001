"""Shared fixtures: one local Ray instance for the whole session, and an in-process sweep runner."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent

# Ray workers import test task functions by module name.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(TESTS), str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
)


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    """A real local Ray instance shared by every test (``ray.init`` costs seconds)."""
    import ray

    # One logical GPU: Ray assigns it to trials like a real one (this machine has no GPU).
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@dataclass
class SweepRun:
    returns: list[Any]
    sweep_dir: Path

    def results(self) -> dict[str, Any]:
        import yaml

        return yaml.safe_load((self.sweep_dir / "optimization_results.yaml").read_text())

    def trials_table(self) -> list[dict[str, str]]:
        import csv

        with open(self.sweep_dir / "trials.csv") as table:
            return list(csv.DictReader(table))


@pytest.fixture
def run_sweep(ray_address: str, tmp_path: Path, hydra_restore_singletons: Any) -> Callable:
    """Run a ray_optuna sweep in this process through Hydra's own test utilities."""
    from hydra.test_utils.test_utils import SweepTaskFunction

    def run(
        task_function: Callable | None,
        overrides: list[str],
        config_path: str | None = None,
        config_name: str | None = None,
        calling_file: str | None = None,
        sweep_dir: Path | None = None,
    ) -> SweepRun:
        sweep = SweepTaskFunction()
        sweep.calling_file = calling_file or __file__
        sweep.calling_module = None
        sweep.task_function = task_function
        sweep.config_path = config_path
        sweep.config_name = config_name
        sweep.overrides = ["hydra/sweeper=ray_optuna", *overrides]
        sweep.temp_dir = str(sweep_dir or tmp_path / "sweep")
        sweep.configure_logging = False
        sweep.__enter__()  # no __exit__: it would delete the sweep folder we inspect
        return SweepRun(returns=sweep.returns[0], sweep_dir=Path(sweep.temp_dir))

    return run


@pytest.fixture
def stored_sweep(run_sweep: Callable, tmp_path: Path) -> Callable:
    """Run a sweep whose study lives in a fresh SQLite file; returns the study's trials."""

    def run(task_function: Callable, overrides: list[str], study_name: str = "study") -> list:
        import optuna

        storage = f"sqlite:///{tmp_path}/{study_name}.db"
        study_keys = [f"hydra.sweeper.storage={storage}", f"hydra.sweeper.study_name={study_name}"]
        run_sweep(task_function, [*overrides, *study_keys])
        return optuna.load_study(study_name=study_name, storage=storage).trials

    return run


def pytest_configure(config: pytest.Config) -> None:
    sys.path[:0] = [str(TESTS)]
