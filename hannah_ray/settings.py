"""The sweeper's config, checked once before any trial (every error names the key)."""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from .errors import SweepConfigError

log = logging.getLogger("hannah_ray.sweep")

DIRECTIONS = ("minimize", "maximize")
# hydra.sweeper.resources_per_trial's defaults (the plugin's ResourcesPerTrial).
DEFAULT_RESOURCES = {"cpu": 1.0, "gpu": 0.0}


@dataclass
class SweepSettings:
    sampler: dict[str, Any]
    directions: list[str]
    storage: str | None
    study_name: str | None
    n_trials: int
    add_trials: bool
    n_jobs: int | None
    max_failure_rate: float
    max_retries: int
    params: dict[str, Any]
    # The stock sweeper's deprecated search_space, where params is empty (see legacy_search_space).
    legacy_search_space: dict[str, Any] | None
    custom_search_space: str | None
    metric: str | list[str] | None
    cpu_per_trial: float
    gpu_per_trial: float
    ray_init: dict[str, Any]
    reuse_actors: bool
    import_turns: bool
    scheduler: dict[str, Any]
    tune_logs: tuple[str, ...]
    trial_timeout_s: float | None
    heartbeat_interval_s: float
    orphan_grace_s: float
    requeue_orphans: bool

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SweepSettings:
        plain = {k: _plain(v) for k, v in config.items()}
        directions = _directions(plain.get("direction", "minimize"))
        resources = plain.get("resources_per_trial") or {}
        settings = cls(
            sampler=dict(plain.get("sampler") or {}),
            directions=directions,
            storage=None if plain.get("storage") is None else str(plain["storage"]),
            study_name=None if plain.get("study_name") is None else str(plain["study_name"]),
            n_trials=_int(plain.get("n_trials", 20), "n_trials", minimum=0),
            add_trials=bool(plain.get("add_trials", False)),
            n_jobs=None if plain.get("n_jobs") is None else _int(plain["n_jobs"], "n_jobs", 1),
            max_failure_rate=_rate(plain.get("max_failure_rate", 0.0)),
            max_retries=_int(plain.get("max_retries", 0), "max_retries", minimum=0),
            params=dict(plain.get("params") or {}),
            legacy_search_space=_legacy_search_space(plain),
            custom_search_space=plain.get("custom_search_space"),
            metric=_metric(plain.get("metric"), len(directions)),
            cpu_per_trial=trial_resource(resources.get("cpu", DEFAULT_RESOURCES["cpu"]), "cpu"),
            gpu_per_trial=trial_resource(resources.get("gpu", DEFAULT_RESOURCES["gpu"]), "gpu"),
            ray_init=ray_init_arguments(plain.get("ray") or {}),
            reuse_actors=bool(plain.get("reuse_actors", True)),
            import_turns=bool(plain.get("import_turns", True)),
            scheduler=dict(plain.get("scheduler") or {}),
            tune_logs=_tune_logs(plain.get("tune_logs", list(TUNE_LOGS[:2]))),
            trial_timeout_s=None
            if plain.get("trial_timeout_s") is None
            else _seconds(plain["trial_timeout_s"], "trial_timeout_s"),
            heartbeat_interval_s=_seconds(
                plain.get("heartbeat_interval_s", 10.0), "heartbeat_interval_s"
            ),
            orphan_grace_s=_seconds(plain.get("orphan_grace_s", 120.0), "orphan_grace_s"),
            requeue_orphans=bool(plain.get("requeue_orphans", True)),
        )
        check_trial_resources(settings, "hydra.sweeper.resources_per_trial: cpu=%g and gpu=%g")
        if settings.orphan_grace_s <= settings.heartbeat_interval_s:
            raise SweepConfigError(
                f"hydra.sweeper.orphan_grace_s={settings.orphan_grace_s} must be larger than "
                f"hydra.sweeper.heartbeat_interval_s={settings.heartbeat_interval_s} (a live "
                "sweep's trials would look orphaned)."
            )
        unknown = set(plain) - {
            "sampler", "direction", "storage", "study_name", "n_trials", "add_trials", "n_jobs",
            "max_failure_rate", "max_retries", "params", "search_space", "custom_search_space", "metric", "resources_per_trial",
            "ray", "reuse_actors", "import_turns", "scheduler", "tune_logs", "trial_timeout_s", "heartbeat_interval_s",
            "orphan_grace_s", "requeue_orphans", "_recursive_",
        }  # fmt: skip
        if unknown:
            raise SweepConfigError(f"Unknown hydra.sweeper key(s): {sorted(unknown)}.")
        return settings


def _legacy_search_space(plain: Mapping[str, Any]) -> dict[str, Any] | None:
    """``search_space`` as the stock sweeper takes it: ignored, with a warning, beside ``params``."""
    legacy = plain.get("search_space")
    if legacy is None:
        return None
    if not isinstance(legacy, Mapping):
        raise SweepConfigError(
            f"hydra.sweeper.search_space={legacy!r}: allowed: null or a mapping of keys to "
            "{type, low, high, log, step, choices} (deprecated: use hydra.sweeper.params)."
        )
    if plain.get("params"):
        log.warning(
            "Both hydra.sweeper.params and hydra.sweeper.search_space are set: params defines "
            "the search space, search_space is ignored (as by Hydra's Optuna sweeper)."
        )
        return None
    log.warning(
        "hydra.sweeper.search_space is deprecated (as in Hydra's Optuna sweeper since Hydra 1.2): "
        "use hydra.sweeper.params, e.g. lr: tag(log, interval(0.0001, 0.1)). See "
        "https://hydra.cc/docs/upgrades/1.1_to_1.2/changes_to_sweeper_config/"
    )
    return dict(legacy)


def _plain(value: Any) -> Any:
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Enum):
        return value.name
    return value


TUNE_LOGS = ("json", "csv", "tensorboard")


def _tune_logs(value: Any) -> tuple[str, ...]:
    if value is True:
        return TUNE_LOGS
    if value is False or value is None:
        return ()
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list | tuple) or any(n not in TUNE_LOGS for n in names):
        raise SweepConfigError(
            f"hydra.sweeper.tune_logs={value!r}: allowed: true, false, or a list of "
            f"{list(TUNE_LOGS)}."
        )
    return tuple(dict.fromkeys(names))


def _directions(direction: Any) -> list[str]:
    items = direction if isinstance(direction, list | tuple) else [direction]
    # Optuna and the stock sweeper accept any case ("MAXIMIZE", a StudyDirection name).
    names = [(item.name if isinstance(item, Enum) else str(item)).lower() for item in items]
    bad = [n for n in names if n not in DIRECTIONS]
    if not names or bad:
        raise SweepConfigError(
            f"hydra.sweeper.direction={direction!r}: allowed values are 'minimize' or 'maximize', "
            "or a list of them for multi-objective search."
        )
    return names


def _metric(metric: Any, n_objectives: int) -> str | list[str] | None:
    if metric is None:
        return None
    if isinstance(metric, str):
        metric = [metric]
    if isinstance(metric, list):
        if len(metric) != n_objectives or not all(isinstance(m, str) for m in metric):
            raise SweepConfigError(
                f"hydra.sweeper.metric={metric!r}: give one key name per direction "
                f"({n_objectives} direction(s))."
            )
        return metric[0] if n_objectives == 1 else metric
    raise SweepConfigError(
        f"hydra.sweeper.metric={metric!r}: allowed: a key name or a list of them."
    )


def _int(value: Any, key: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SweepConfigError(f"hydra.sweeper.{key}={value!r}: allowed: an integer >= {minimum}.")
    return value


def _rate(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise SweepConfigError(
            f"hydra.sweeper.max_failure_rate={value!r}: allowed: a number from 0.0 to 1.0."
        )
    return float(value)


def _seconds(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise SweepConfigError(f"hydra.sweeper.{key}={value!r}: allowed: a number of seconds > 0.")
    return float(value)


def check_trial_resources(settings: SweepSettings, given: str) -> None:
    """A trial must hold some resource, or Ray cannot schedule it; ``given`` says where the
    values come from (a format for cpu and gpu)."""
    if settings.cpu_per_trial == 0 and settings.gpu_per_trial == 0:
        raise SweepConfigError(
            f"{given % (settings.cpu_per_trial, settings.gpu_per_trial)}: allowed: cpu > 0 or "
            "gpu > 0 (a trial must hold some resource, or Ray cannot schedule it)."
        )


def trial_resource(
    value: Any, key: str, where: str = "hydra.sweeper.resources_per_trial."
) -> float:
    """How much of a resource a trial holds, checked as Ray schedules it (``where``: the key's
    prefix in errors)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise SweepConfigError(
            f"{where}{key}={value!r}: allowed: a number >= 0 (fractions share a device, e.g. 0.25)."
        )
    if "gpu" in key and value > 1 and not float(value).is_integer():
        # Ray's raylet refuses such a demand: the trials would wait forever.
        raise SweepConfigError(
            f"{where}{key}={value!r}: allowed: a fraction up to 1 (a share of one GPU) or a whole "
            "number of GPUs."
        )
    return float(value)


def ray_init_arguments(
    kwargs: Mapping[str, Any], where: str = "hydra.sweeper.ray"
) -> dict[str, Any]:
    """``kwargs`` that ``ray.init`` takes, without the null ones (``where``: the key in errors)."""
    import ray

    allowed = set(inspect.signature(ray.init).parameters) - {"kwargs"} | _hidden_ray_init_options()
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise SweepConfigError(
            f"{where}: ray.init has no argument(s) {unknown}. Allowed: {sorted(allowed)}."
        )
    return {k: v for k, v in kwargs.items() if v is not None}


def _hidden_ray_init_options() -> set[str]:
    """The options ray.init takes from its ``**kwargs`` (``_temp_dir``, ``_system_config``, ...):
    its signature does not list them, so they are read off its source."""
    import ray

    try:
        source = inspect.getsource(inspect.unwrap(ray.init))
    except (OSError, TypeError):
        return set()
    return set(re.findall(r"kwargs\.pop\(\s*[\"'](\w+)[\"']", source))
