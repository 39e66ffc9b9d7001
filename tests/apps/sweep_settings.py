"""The sweeper's settings as Hydra composes the plugin's config, with overrides (for unit tests)."""

from __future__ import annotations

from omegaconf import OmegaConf

from hannah_ray.settings import SweepSettings
from hydra_plugins.hannah_ray_sweeper.config import _SAMPLERS, _SCHEDULERS, RayOptunaSweeperConf


def sweep_settings(**overrides: object) -> SweepSettings:
    """``SweepSettings`` of the default config (TPE, no scheduler) with ``key=value`` overrides."""
    config = OmegaConf.structured(RayOptunaSweeperConf)
    config.sampler = OmegaConf.structured(_SAMPLERS["tpe"])
    config.scheduler = OmegaConf.structured(_SCHEDULERS["none"])
    for key, value in overrides.items():
        OmegaConf.update(config, key, value, force_add=True)
    return SweepSettings.from_config(
        {k: v for k, v in config.items() if k not in ("_target_", "defaults")}
    )
