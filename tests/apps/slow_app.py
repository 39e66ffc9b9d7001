"""A command-line app whose trials take long enough to be interrupted."""

import time

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path=None)
def slow(cfg: DictConfig) -> float:
    time.sleep(0.1 if HydraConfig.get().job.num < 2 else cfg.seconds)
    return float(cfg.x)


if __name__ == "__main__":
    slow()
