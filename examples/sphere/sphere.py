"""The sphere function: any @hydra.main app works with hydra/sweeper=ray_optuna unchanged.

    python examples/sphere/sphere.py -m hydra/sweeper=ray_optuna \
        x='interval(-5.5, 5.5)' y='choice(-5, 0, 5)' hydra.sweeper.n_trials=40
"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path=".", config_name="config")
def sphere(cfg: DictConfig) -> float:
    return float(cfg.x) ** 2 + float(cfg.y) ** 2


if __name__ == "__main__":
    sphere()
