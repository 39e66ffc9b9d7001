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
from .search_space import admits

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
    custom_keys: set[str] | None = None,
) -> BaseSampler:
    """Instantiate the configured sampler.

    ``seed_offset`` (the number of trials a resumed study holds) shifts a fixed seed, so that a
    resumed sweep does not replay the parameters its first run already tried. ``custom_keys``:
    the parameters ``custom_search_space`` added on test trials (None: no such function), which
    a grid must list too.
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
    # QMC continues its sequence from the study, and a grid's seed only orders its points:
    # a shifted seed would start a new sequence (or order) instead.
    continues_from_study = issubclass(sampler_class, QMCSampler | GridSampler)
    if kwargs.get("seed") is not None and seed_offset and not continues_from_study:
        kwargs["seed"] = int(kwargs["seed"]) + seed_offset
    if issubclass(sampler_class, GridSampler):
        if kwargs.get("search_space") is None:
            if custom_keys:
                raise SweepConfigError(
                    f"{KEY}.search_space=null grids the swept keys only, but "
                    f"hydra.sweeper.custom_search_space adds {sorted(custom_keys)}, which Optuna's "
                    f"grid sampler then refuses. Allowed: a search_space listing every parameter."
                )
            kwargs["search_space"] = grid_from_distributions(distributions)
        else:
            check_grid(kwargs["search_space"], distributions, custom_keys)
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
        elif isinstance(dist, IntDistribution):
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


def check_grid(
    grid: Any, distributions: Mapping[str, BaseDistribution], custom_keys: set[str] | None = None
) -> None:
    """A given ``search_space`` must grid the swept keys and those ``custom_search_space`` added
    on test trials (more only where there is such a function), with values the swept keys allow."""
    if not isinstance(grid, Mapping):
        raise SweepConfigError(
            f"{KEY}.search_space={grid!r}: allowed: a mapping of each swept key to a list of values."
        )
    wanted = set(distributions) | (custom_keys or set())
    missing = wanted - set(grid)
    extra = set(grid) - wanted if custom_keys is None else set()
    if missing or extra:
        raise SweepConfigError(
            f"{KEY}.search_space grids {sorted(grid)}, but the sweep's parameters are "
            f"{sorted(wanted)}: give each of them, and only those, a list of values "
            f"(or search_space: null to grid the sweep's own choices and ranges)."
        )
    for name, values in grid.items():
        if not isinstance(values, list | tuple) or not values:
            raise SweepConfigError(
                f"{KEY}.search_space.{name}={values!r}: allowed: a non-empty list of values."
            )
        dist = distributions.get(name)
        outside = [value for value in values if dist is not None and not admits(dist, value)]
        if outside:
            raise SweepConfigError(
                f"{KEY}.search_space.{name}: {outside} outside the swept {dist}; "
                "allowed: values the sweep's own override for that key admits."
            )


def grid_points(sampler: BaseSampler) -> list[dict[str, Any]] | None:
    """Every point of a grid sampler's grid (None for other samplers)."""
    if not isinstance(sampler, GridSampler):
        return None
    space = sampler._search_space  # noqa: SLF001  (Optuna keeps it private)
    return [dict(zip(space, values, strict=True)) for values in itertools.product(*space.values())]
