"""The stock Optuna sweeper's deprecated ``hydra.sweeper.search_space`` -> Optuna distributions.

Hydra 1.2 replaced it with ``params``; configs written before still set it, in this form::

    search_space:
      lr: {type: float, low: 0.0001, high: 0.1, log: true}
      layers: {type: int, low: 1, high: 4}          # high included, as in Optuna
      act: {type: categorical, choices: [relu, tanh]}

It is read as the stock sweeper reads it: only where ``params`` is null, with the command line
winning on the same key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution

from .errors import SweepConfigError
from .search_space import categorical

KEY = "hydra.sweeper.search_space"
_TYPES = ("int", "float", "categorical")
_FIELDS = ("type", "choices", "low", "high", "log", "step")


def legacy_distributions(search_space: Mapping[str, Any]) -> dict[str, BaseDistribution]:
    """One distribution per key; raises SweepConfigError naming the key, the value and what is
    allowed."""
    distributions = {}
    for name, spec in search_space.items():
        where = f"{KEY}.{name}"
        if not isinstance(spec, Mapping):
            raise SweepConfigError(
                f"{where}={spec!r}: allowed: a mapping with 'type' ({', '.join(_TYPES)}) and "
                "'low'/'high' (int, float; optional 'log', 'step') or 'choices' (categorical)."
            )
        unknown = sorted(set(spec) - set(_FIELDS))
        if unknown:
            raise SweepConfigError(
                f"{where}: unknown field(s) {unknown}; allowed: {list(_FIELDS)}."
            )
        kind = str(spec.get("type", "")).split(".")[-1]  # "float" or "DistributionType.float"
        if kind not in _TYPES:
            raise SweepConfigError(
                f"{where}.type={spec.get('type')!r}: allowed: {', '.join(_TYPES)}."
            )
        try:
            distributions[str(name)] = _distribution(kind, spec)
        except (TypeError, ValueError) as error:
            raise SweepConfigError(f"{where}={dict(spec)}: {error}") from error
    return distributions


def _distribution(kind: str, spec: Mapping[str, Any]) -> BaseDistribution:
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list | tuple) or not choices:
            raise ValueError("a categorical needs a non-empty list of 'choices'")
        return categorical(choices)
    low, high, step, log = spec.get("low"), spec.get("high"), spec.get("step"), spec.get("log")
    if low is None or high is None:
        raise ValueError(f"an {kind} distribution needs 'low' and 'high'")
    for name, value in (("low", low), ("high", high), ("step", step)):
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError(f"'{name}' must be a finite number, got {value!r}")
    log = bool(log)
    if low > high:
        raise ValueError(f"'low' must be <= 'high' (low={low}, high={high})")
    if log and low <= 0:
        raise ValueError(f"a log scale needs bounds > 0 (low={low}, high={high})")
    if kind == "int":
        if log:  # the stock sweeper ignores a step on a log scale, as Optuna cannot use one
            return IntDistribution(int(low), int(high), log=True)
        return IntDistribution(int(low), int(high), step=1 if step is None else int(step))
    if log or step is None:
        return FloatDistribution(float(low), float(high), log=log)
    return FloatDistribution(float(low), float(high), step=float(step))
