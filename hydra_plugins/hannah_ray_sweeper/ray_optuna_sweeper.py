"""The ``ray_optuna`` sweeper plugin: a thin shell that forwards to :mod:`hannah_ray.sweep`.

Hydra imports this module at every start-up, so it imports nothing heavy (no ray, optuna or torch).
"""

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from .config import RayOptunaSweeperConf  # noqa: F401  (registers the configs)


class RayOptunaSweeper(Sweeper):
    """Searches with Optuna, runs every trial as a Hydra job on Ray Tune."""

    def __init__(self, **sweeper_config: Any) -> None:
        self._sweeper_config = sweeper_config
        self._sweep: Any = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from hannah_ray.sweep import RayOptunaSweep

        self._sweep = RayOptunaSweep(
            self._sweeper_config,
            hydra_context=hydra_context,
            task_function=task_function,
            config=config,
        )

    def sweep(self, arguments: list[str]) -> Any:
        return self._sweep.run(arguments)
