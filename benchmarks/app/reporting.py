"""The storage benchmark's app: reports 10 intermediate values, then returns."""

import hydra
from omegaconf import DictConfig

import hannah_ray


@hydra.main(version_base="1.3", config_path=None)
def reporting(cfg: DictConfig) -> float:
    x = float(cfg.x)
    for epoch in range(1, 11):
        hannah_ray.report(x * x + 1.0 / epoch, epoch=epoch)
    return x * x


if __name__ == "__main__":
    reporting()
