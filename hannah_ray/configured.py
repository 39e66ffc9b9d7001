"""A ``_target_`` class from a sweeper config group, checked before any trial: importable, of the
right kind, and given only arguments its constructor takes (every error names the key)."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

from hydra.utils import get_class

from .errors import SweepConfigError


def configured_class(key: str, target: str, base: type, base_name: str) -> type:
    """The class ``target`` names; ``key`` is the config key, e.g. ``hydra.sweeper.sampler``."""
    try:
        found = get_class(target)
    except Exception as error:
        raise SweepConfigError(f"{key}._target_={target!r} cannot be imported: {error}") from error
    if not (isinstance(found, type) and issubclass(found, base)):
        raise SweepConfigError(f"{key}._target_={target!r} is not {base_name}.")
    return found


def check_arguments(
    key: str, cls: type, kwargs: dict[str, Any], set_by_sweeper: Iterable[str] = ()
) -> None:
    """Fail on any argument ``cls.__init__`` does not take (or that the sweeper sets itself)."""
    allowed = sorted(set(constructor_parameters(cls)) - set(set_by_sweeper))
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise SweepConfigError(
            f"{key}: {cls.__name__} has no argument(s) {unknown}. Allowed: {allowed}."
        )


def constructor_parameters(cls: type) -> list[str]:
    signature = inspect.signature(cls.__init__)
    return [
        name
        for name, parameter in signature.parameters.items()
        if name != "self"
        and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    ]
