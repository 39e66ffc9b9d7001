"""``hydra.sweeper.sampler`` -> an Optuna sampler, its arguments checked before any trial."""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Mapping
from decimal import Decimal
from importlib.util import find_spec
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler, CmaEsSampler, GPSampler, GridSampler, QMCSampler

from .configured import check_arguments, configured_class
from .errors import SweepConfigError

KEY = "hydra.sweeper.sampler"
# Packages Optuna imports only when such a sampler first samples: checked before any trial.
_NEEDS_PACKAGES: dict[type, tuple[str, ...]] = {
    CmaEsSampler: ("cmaes",),
    GPSampler: ("scipy", "torch"),
    QMCSampler: ("scipy",),
}


def build_sampler(
    sampler_config: Mapping[str, Any],
    distributions: Mapping[str, BaseDistribution],
    seed_offset: int = 0,
) -> BaseSampler:
    """Instantiate the configured sampler.

    ``seed_offset`` (the number of trials a resumed study holds) shifts a fixed seed, so that a
    resumed sweep does not replay the parameters its first run already tried.
    """
    kwargs = dict(sampler_config)
    target = kwargs.pop("_target_", None)
    if not target:
        raise SweepConfigError(
            "hydra.sweeper.sampler has no _target_; choose hydra/sweeper/sampler=tpe, ..."
        )
    sampler_class = configured_class(KEY, target, BaseSampler, "an optuna.samplers.BaseSampler")
    check_arguments(KEY, sampler_class, kwargs)
    check_packages(sampler_class)
    kwargs = _without_nulls_meaning_default(sampler_class, kwargs)
    if kwargs.get("seed") is not None and seed_offset:
        kwargs["seed"] = int(kwargs["seed"]) + seed_offset
    if issubclass(sampler_class, GridSampler) and kwargs.get("search_space") is None:
        kwargs["search_space"] = grid_from_distributions(distributions)
    try:
        return sampler_class(**kwargs)
    except Exception as error:
        raise SweepConfigError(
            f"hydra.sweeper.sampler: {sampler_class.__name__}({kwargs}) failed: {error}"
        ) from error


def _without_nulls_meaning_default(sampler_class: type, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``null`` in the config means Optuna's default. Optuna 5 spells several TPE defaults
    ``None``; older versions default to ``True`` or ``1.0`` there, and read ``None`` as "off"."""
    parameters = inspect.signature(sampler_class).parameters
    return {
        name: value
        for name, value in kwargs.items()
        if value is not None
        or name not in parameters
        or parameters[name].default is inspect.Parameter.empty
    }


def check_packages(sampler_class: type) -> None:
    """Fail now, not at the sampler's first use mid-sweep, when a package it imports is missing."""
    needed = [
        package
        for base, packages in _NEEDS_PACKAGES.items()
        if issubclass(sampler_class, base)
        for package in packages
    ]
    missing = [package for package in needed if find_spec(package) is None]
    if missing:
        raise SweepConfigError(
            f"{KEY}: {sampler_class.__name__} needs the Python package(s) {missing}, which are "
            f"not installed: pip install {' '.join(missing)}"
        )


def grid_from_distributions(distributions: Mapping[str, BaseDistribution]) -> dict[str, list]:
    """Every value of each discrete distribution; continuous ones cannot be gridded."""
    grid: dict[str, list] = {}
    for name, dist in distributions.items():
        if isinstance(dist, CategoricalDistribution):
            grid[name] = list(dist.choices)
        elif isinstance(dist, IntDistribution) and not dist.log:
            grid[name] = list(range(dist.low, dist.high + 1, dist.step))
        elif isinstance(dist, FloatDistribution) and dist.step is not None:
            low, step = Decimal(str(dist.low)), Decimal(str(dist.step))
            count = int((Decimal(str(dist.high)) - low) / step) + 1
            grid[name] = [float(low + i * step) for i in range(count)]
        else:
            raise SweepConfigError(
                f"The grid sampler needs discrete parameters, but key '{name}' is {dist}. "
                "Allowed: choice(...), comma lists, range(...)."
            )
    return grid


def grid_points(sampler: BaseSampler) -> list[dict[str, Any]] | None:
    """Every point of a grid sampler's grid (None for other samplers)."""
    if not isinstance(sampler, GridSampler):
        return None
    space = sampler._search_space  # noqa: SLF001  (Optuna keeps it private)
    return [dict(zip(space, values, strict=True)) for values in itertools.product(*space.values())]
