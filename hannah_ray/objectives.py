"""A task's return value -> the objective value(s) Optuna is told (pure: no Ray, no storage).

* a number: the objective of a single-objective study;
* a list or tuple: one number per direction (multi-objective);
* a dict: the objective(s) are picked by ``metric`` (a name, or one name per direction); every other
  scalar entry is kept as a trial user attribute.

Anything else (None, NaN, inf, a string, a wrong length, a missing key) raises InvalidReturnError
that says what was returned and what was expected; the trial is then stored as FAIL.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidReturnError


@dataclass
class Objectives:
    values: list[float]
    user_attrs: dict[str, Any] = field(default_factory=dict)


def objectives_from_return(
    returned: Any, n_objectives: int, metric: str | Sequence[str] | None = None
) -> Objectives:
    """Turn what the task returned into ``n_objectives`` finite floats (and extra user attributes)."""
    metrics = _as_list(metric)
    if isinstance(returned, Mapping):
        return _from_dict(returned, n_objectives, metrics)
    if getattr(returned, "ndim", None) == 1 and callable(getattr(returned, "tolist", None)):
        returned = returned.tolist()  # a numpy array or torch tensor of values
    if isinstance(returned, list | tuple):
        if len(returned) != n_objectives:
            raise InvalidReturnError(
                f"The task returned {len(returned)} values {_short(returned)}, expected "
                f"{n_objectives} (one per hydra.sweeper.direction)."
            )
        return Objectives([_finite(v, f"entry {i}") for i, v in enumerate(returned)])
    if n_objectives != 1:
        raise InvalidReturnError(
            f"The task returned {_short(returned)}, expected a list or dict of {n_objectives} "
            "values (one per hydra.sweeper.direction)."
        )
    return Objectives([_finite(returned, "the return value")])


_REPORT = "hannah_ray.report got"


def intermediate_objective(reported: Any, metric: str | Sequence[str] | None = None) -> float:
    """The objective in an intermediate report: a number, or the dict entry named by ``metric``
    (or its only entry). NaN and inf pass: the trial's return value decides whether it failed."""
    if not isinstance(reported, Mapping):
        return _real(reported, "the objective", _REPORT)
    metrics = _as_list(metric)
    if metrics:
        if metrics[0] not in reported:
            raise InvalidReturnError(
                f"hannah_ray.report got keys {sorted(map(str, reported))}, without "
                f"hydra.sweeper.metric={metrics[0]!r}."
            )
        return _real(reported[metrics[0]], f"key '{metrics[0]}'", _REPORT)
    if len(reported) != 1:
        raise InvalidReturnError(
            f"hannah_ray.report got keys {sorted(map(str, reported))}; report one value or set "
            "hydra.sweeper.metric to the key to optimise."
        )
    key, value = next(iter(reported.items()))
    return _real(value, f"key '{key}'", _REPORT)


def _from_dict(returned: Mapping, n_objectives: int, metrics: list[str]) -> Objectives:
    if not metrics and n_objectives == 1 and len(returned) == 1:
        metrics = [next(iter(returned))]  # the only entry, as in hannah_ray.report
    if not metrics:
        raise InvalidReturnError(
            f"The task returned a dict with keys {sorted(map(str, returned))}; set "
            "hydra.sweeper.metric to the key(s) to optimise."
        )
    if len(metrics) != n_objectives:
        raise InvalidReturnError(
            f"hydra.sweeper.metric names {len(metrics)} keys {metrics}, expected {n_objectives} "
            "(one per hydra.sweeper.direction)."
        )
    missing = [m for m in metrics if m not in returned]
    if missing:
        raise InvalidReturnError(
            f"The task returned a dict without the metric key(s) {missing} "
            f"(hydra.sweeper.metric); it has {sorted(map(str, returned))}."
        )
    values = [_finite(returned[m], f"key '{m}'") for m in metrics]
    extras = {str(k): _attr(v) for k, v in returned.items() if k not in metrics}
    return Objectives(values, extras)


def unwrap_scalar(value: Any) -> Any:
    """numpy / torch 0-d values -> Python numbers; anything else unchanged."""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        return value.item()
    return value


def _real(value: Any, where: str, source: str = "The task returned") -> float:
    try:
        value = unwrap_scalar(value)
        if not isinstance(value, bool) and isinstance(value, numbers.Real):
            return float(value)
        problem = ","
    except Exception as error:  # e.g. OverflowError: an int beyond a float's range
        problem = f" ({type(error).__name__}: {error}),"
    raise InvalidReturnError(
        f"{source} {_short(value)} ({type(value).__name__}) as {where}{problem} "
        "expected a finite number."
    )


def _finite(value: Any, where: str) -> float:
    number = _real(value, where)
    if not math.isfinite(number):
        raise InvalidReturnError(
            f"The task returned {number} as {where}, expected a finite number."
        )
    return number


def _attr(value: Any) -> Any:
    """A JSON-friendly user attribute: numbers and strings kept, anything else as its repr."""
    value = unwrap_scalar(value)
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple):
        items = [unwrap_scalar(v) for v in value]  # numpy / torch numbers too
        if all(isinstance(v, str | int | float) for v in items):
            return items
    return repr(value)


def _as_list(metric: str | Sequence[str] | None) -> list[str]:
    if metric is None:
        return []
    if isinstance(metric, str):
        return [metric]
    return [str(m) for m in metric]


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
