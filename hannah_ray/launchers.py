"""What ``ray_optuna`` makes of ``hydra/launcher``. It runs the trials on Ray Tune itself, so no
Hydra launcher runs them. hydra-ray-launcher's ``hydra/launcher=ray`` settings say how to reach
Ray and what a job holds: they are taken where the sweeper's own are left at their defaults.
Its ``ray_aws`` launcher creates a cluster, which the sweeper does not: refused before any trial."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .errors import SweepConfigError
from .settings import (
    DEFAULT_RESOURCES,
    SweepSettings,
    check_trial_resources,
    ray_init_arguments,
    trial_resource,
)

log = logging.getLogger("hannah_ray.sweep")

BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
RAY_LAUNCHER = "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"
RAY_AWS_LAUNCHER = "hydra_plugins.hydra_ray_launcher.ray_aws_launcher.RayAWSLauncher"
# hydra.launcher.ray.remote (ray.remote options) -> hydra.sweeper.resources_per_trial.
_REMOTE_RESOURCES = {"num_cpus": "cpu", "num_gpus": "gpu"}


def apply_launcher(settings: SweepSettings, launcher: Mapping[str, Any] | None) -> None:
    """Take hydra-ray-launcher's ``ray.init`` and ``ray.remote`` into ``settings`` where they
    keep their defaults; say that any other launcher is not used."""
    target = str((launcher or {}).get("_target_") or BASIC_LAUNCHER)
    if target == BASIC_LAUNCHER:
        return
    if target == RAY_AWS_LAUNCHER:
        raise SweepConfigError(
            "hydra/launcher=ray_aws: ray_optuna runs its trials on Ray Tune and creates no "
            "cluster. Allowed: start the cluster with `ray up <cluster.yaml>` and run the sweep on "
            "its head node, or join it with hydra.sweeper.ray.address=auto (or ray://<head>:10001)."
        )
    if target != RAY_LAUNCHER:
        jobs = (launcher or {}).get("n_jobs")
        ours = jobs if isinstance(jobs, int) and jobs > 0 else "null (as many as Ray allows)"
        hint = f" (hydra.launcher.n_jobs={jobs} -> hydra.sweeper.n_jobs={ours})" if jobs else ""
        log.warning(
            "hydra.launcher=%s is not used: ray_optuna runs the trials on Ray Tune itself; "
            "hydra.sweeper.n_jobs sets how many run at once%s.",
            target,
            hint,
        )
        return
    ray_config = _plain((launcher or {}).get("ray"))
    _take_ray_init(settings, _plain(ray_config.get("init")))
    _take_remote(settings, _plain(ray_config.get("remote")))


def _plain(node: Any) -> dict[str, Any]:
    """A config node as a plain dict (ray.init takes no DictConfig); {} for none."""
    if isinstance(node, DictConfig):
        return dict(OmegaConf.to_container(node, resolve=True))  # type: ignore[arg-type]
    return dict(node or {})


def _take_ray_init(settings: SweepSettings, init: Mapping[str, Any]) -> None:
    given = ray_init_arguments(init, "hydra.launcher.ray.init")
    taken = {key: value for key, value in given.items() if key not in settings.ray_init}
    if taken:
        settings.ray_init = {**settings.ray_init, **taken}
        log.info("ray.init takes %s from hydra.launcher.ray.init (hydra/launcher=ray).", taken)


def _take_remote(settings: SweepSettings, remote: Mapping[str, Any]) -> None:
    where = "hydra.launcher.ray.remote."
    for option, resource in _REMOTE_RESOURCES.items():
        attribute = f"{resource}_per_trial"
        value = remote.get(option)
        if value is None or getattr(settings, attribute) != DEFAULT_RESOURCES[resource]:
            continue  # the sweeper's own resources_per_trial wins
        setattr(settings, attribute, trial_resource(value, option, where))
        log.info(
            "Each trial holds %s=%s, from %s%s (hydra/launcher=ray).",
            resource, value, where, option,
        )  # fmt: skip
    unused = sorted(set(remote) - set(_REMOTE_RESOURCES))
    if unused:
        log.warning(
            "hydra.launcher.ray.remote options %s are not used: ray_optuna trials hold "
            "hydra.sweeper.resources_per_trial (cpu, gpu).",
            unused,
        )
    check_trial_resources(settings, f"{where}num_cpus/num_gpus give a trial cpu=%g and gpu=%g")
