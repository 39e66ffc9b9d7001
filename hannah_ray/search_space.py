"""Hydra override grammar -> Optuna search space (pure: no Ray, no storage).

=============================================  ==========================================================
override                                       Optuna distribution
=============================================  ==========================================================
``x=a,b,c`` / ``x=choice(a,b,c)``              ``CategoricalDistribution([a, b, c])``
``x=shuffle(choice(...))``                     same (order does not matter to a categorical)
``x=glob(*)``                                  ``CategoricalDistribution`` of the matching group options
``x=range(a,b)`` / ``range(a,b,step)``         ``IntDistribution(a, last, step)`` (ints) or
                                               ``FloatDistribution(a, last, step=step)`` (floats);
                                               ``b`` is excluded, as in Hydra's and Python's ``range``
``x=interval(a,b)``                            ``FloatDistribution(a, b)``
``x=int(interval(a,b))``                       ``IntDistribution(a, b)``
``x=tag(log, interval(a,b))``                  ``FloatDistribution(a, b, log=True)`` (and int likewise)
``x=tag(log, range(a,b))``                     ``IntDistribution(a, last, log=True)`` (step 1 only)
``x=value``                                    fixed: passed to every trial unchanged
=============================================  ==========================================================

Keys keep their prefix and package (``+key``, ``++key``, ``key@pkg``); ``~key`` is passed through.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    Glob,
    IntervalSweep,
    Override,
    QuotedString,
    RangeSweep,
)
from hydra.errors import HydraException
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from .errors import SweepConfigError

_SCALAR_TYPES = (str, int, float, bool)


@dataclass
class SearchSpace:
    """What a sweep varies (``distributions``) and what it passes to every trial (``fixed``)."""

    distributions: dict[str, BaseDistribution] = field(default_factory=dict)
    fixed: dict[str, str] = field(default_factory=dict)

    def trial_overrides(self, params: Mapping[str, Any]) -> list[str]:
        """The Hydra overrides of one trial: the fixed ones, then one per sampled parameter."""
        return list(self.fixed.values()) + [format_override(k, v) for k, v in params.items()]


def parse_search_space(
    command_line: Sequence[str],
    config_params: Mapping[str, Any] | None = None,
    config_loader: Any = None,
    legacy: Mapping[str, BaseDistribution] | None = None,
) -> SearchSpace:
    """Build the search space from ``hydra.sweeper.params`` (or the stock sweeper's deprecated
    ``search_space``, ``legacy``) and the command line (which wins)."""
    parser = OverridesParser.create(config_loader=config_loader)
    from_config = [
        f"{key}={'null' if value is None else value}"
        for key, value in _flatten(config_params or {}).items()
    ]
    space = SearchSpace(distributions=dict(legacy or {}))
    # hydra.sweeper.params keys by their target (no +, ++ or ~): the command line replaces them
    # however it prefixes the same key.
    from_params: dict[str, str] = {key: key for key in space.distributions}
    for source, lines in (("hydra.sweeper.params", from_config), ("command line", command_line)):
        for override in _parse(parser, lines, source):
            key = override.get_key_element()
            target = override.key_or_group + (f"@{override.package}" if override.package else "")
            if source == "command line":
                replaced = from_params.pop(target, key)
            else:
                replaced = from_params[target] = key
            for earlier in {key, replaced}:
                space.distributions.pop(earlier, None)
                space.fixed.pop(earlier, None)
            if override.is_sweep_override():
                space.distributions[key] = distribution_from_override(override)
            else:
                space.fixed[key] = override.input_line
    return space


def _parse(parser: OverridesParser, lines: list[str], source: str) -> list[Override]:
    overrides = []
    for line in lines:
        try:
            overrides.extend(parser.parse_overrides([line]))
        except HydraException as error:
            raise SweepConfigError(
                f"Cannot parse the override '{line}' ({source}): {error}"
            ) from error
    return overrides


def distribution_from_override(override: Override) -> BaseDistribution:
    """The Optuna distribution of one sweep override; raises SweepConfigError on invalid forms."""
    key = override.get_key_element()
    value = override.value()
    try:
        _check_tags(getattr(value, "tags", set()))
        if isinstance(value, IntervalSweep):
            return _interval(value)
        if isinstance(value, RangeSweep):
            return _range(value)
        if isinstance(value, ChoiceSweep):
            _reject_log(value.tags, "choice")
            # Declared order, even under shuffle(): a resumed study must see the same choices.
            return categorical(_unquote(element) for element in value.list)
        if isinstance(value, Glob):
            return categorical(override.sweep_string_iterator())
    except (ValueError, HydraException) as error:
        raise SweepConfigError(
            f"Invalid search space for key '{key}': '{override.input_line}': {error}"
        ) from error
    raise SweepConfigError(
        f"Unsupported sweep for key '{key}': '{override.input_line}'. Allowed: choice(...), "
        "comma lists, range(...), interval(...), int(interval(...)), tag(log, ...), glob(...)."
    )


def _interval(sweep: IntervalSweep) -> BaseDistribution:
    low, high = sweep.start, sweep.end
    log = "log" in sweep.tags
    if low is None or high is None:
        raise ValueError("interval needs both bounds")
    _check_finite(low=low, high=high)
    if low > high:
        raise ValueError(f"low must be <= high (low={low}, high={high})")
    if log and low <= 0:
        raise ValueError(f"a log scale needs bounds > 0 (low={low}, high={high})")
    if isinstance(low, int) and isinstance(high, int):
        return IntDistribution(low, high, log=log)
    return FloatDistribution(float(low), float(high), log=log)


def _range(sweep: RangeSweep) -> BaseDistribution:
    start, stop, step = sweep.start, sweep.stop, sweep.step
    _check_finite(start=start, stop=stop, step=step)
    if step == 0:
        raise ValueError("step must not be 0")
    count = math.ceil((Decimal(str(stop)) - Decimal(str(start))) / Decimal(str(step)))
    if count <= 0:
        raise ValueError(f"the range is empty (start={start}, stop={stop}, step={step})")
    last = Decimal(str(start)) + (count - 1) * Decimal(str(step))
    low, high = (start, last) if step > 0 else (last, start)
    log = "log" in sweep.tags
    if all(isinstance(v, int) for v in (start, stop, step)):
        if log and (abs(step) != 1 or low <= 0):
            raise ValueError(
                f"a log scale needs bounds > 0 and step 1 (low={low}, high={high}, step={step})"
            )
        return IntDistribution(int(low), int(high), step=1 if log else abs(step), log=log)
    if log:
        raise ValueError("a log scale cannot have a float step; use tag(log, interval(a, b))")
    return FloatDistribution(float(low), float(high), step=float(abs(step)))


def categorical(values: Iterable[Any]) -> CategoricalDistribution:
    """The choices as a categorical, refused where Optuna could not store or tell them apart."""
    choices = list(values)
    if not choices:
        raise ValueError("the choice is empty")
    for choice in choices:
        if choice is not None and not isinstance(choice, _SCALAR_TYPES):
            raise ValueError(
                f"cannot sweep over the non-scalar {choice!r} ({type(choice).__name__}); "
                "allowed: str, int, float, bool, null. Sweep a config group instead."
            )
    if len(set(map(repr, choices))) != len(choices):
        raise ValueError(f"the choices repeat a value: {choices}")
    for index, choice in enumerate(choices):
        if isinstance(choice, float) and math.isnan(choice):
            raise ValueError("nan cannot be a choice (it equals no value, itself included)")
        equal = [other for other in choices[index + 1 :] if other == choice]
        if equal:
            # Optuna finds a stored choice by ==: 1 would be recorded as True, or the reverse.
            raise ValueError(
                f"the choices {choice!r} and {equal[0]!r} are equal in Python, so Optuna cannot "
                "tell them apart; keep one, or quote them to make them strings"
            )
    return CategoricalDistribution(choices)


def _unquote(element: Any) -> Any:
    return element.text if isinstance(element, QuotedString) else element


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested ``hydra.sweeper.params`` (``{model: {lr: ...}}``, as ``+hydra.sweeper.params.model.lr=``
    writes them) as dotted keys (``model.lr``)."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


_TAGS = ("log",)


def _check_tags(tags: set[str]) -> None:
    unknown = sorted(set(tags) - set(_TAGS))
    if unknown:
        raise ValueError(f"unknown tag(s) {unknown}; allowed: {list(_TAGS)}")


def admits(distribution: BaseDistribution, value: Any) -> bool:
    """``value`` lies in ``distribution`` (a categorical's choice, a number within its range and
    step)."""
    try:
        return distribution._contains(distribution.to_internal_repr(value))  # noqa: SLF001
    except (ValueError, TypeError):  # not one of a categorical's choices, or no number
        return False


def _check_finite(**bounds: Any) -> None:
    for name, value in bounds.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{name}={value} is not a finite number")


def _reject_log(tags: set[str], form: str) -> None:
    if "log" in tags:
        raise ValueError(f"tag(log, ...) applies to interval and range, not to {form}")


_CHECK_PARSER: OverridesParser | None = None


def format_override(key: str, value: Any) -> str:
    """``key=value`` that Hydra parses back to exactly ``value`` (strings are quoted when needed)."""
    global _CHECK_PARSER
    if value is None:
        return f"{key}=null"
    if isinstance(value, bool):
        return f"{key}={'true' if value else 'false'}"
    if isinstance(value, int | float):
        return f"{key}={value!r}"
    plain = f"{key}={value}"
    if _CHECK_PARSER is None:
        _CHECK_PARSER = OverridesParser.create()
    try:
        parsed = _CHECK_PARSER.parse_override(plain)
        if not parsed.is_sweep_override() and parsed.value() == value:
            return plain
    except HydraException:
        pass
    return f"{key}='{_escape_quoted(value)}'"


def _escape_quoted(value: str) -> str:
    """Hydra reads backslashes in a quoted string as escapes only where they precede a quote
    (or the closing quote): double those runs and escape the quotes; leave the others alone."""
    escaped = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", value)
    return re.sub(r"(\\+)$", lambda m: m.group(1) * 2, escaped)
