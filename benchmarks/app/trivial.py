"""The benchmark's app: returns at once, or sleeps a duration that depends only on the job number."""

import random
import time

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path=".", config_name="trivial")
def trivial(cfg: DictConfig) -> float:
    if cfg.vary_duration:
        # 0.1-1.0 s, the same for job N under either sweeper.
        time.sleep(0.1 + 0.9 * random.Random(HydraConfig.get().job.num).random())
    return float(cfg.x) ** 2


if __name__ == "__main__":
    trivial()
