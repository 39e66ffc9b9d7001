"""Trials queued in a stored study (WAITING: an orphan requeued by an earlier run, or one the user
enqueued) that this run's search space cannot take: set aside before any trial starts."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState

log = logging.getLogger("hannah_ray.sweep")

REQUEUED_FROM = "requeued_from_trial"


def misfit(params: Mapping[str, Any], space: Mapping[str, BaseDistribution]) -> str | None:
    """Which of ``params`` lies outside its distribution in ``space`` (``key=value``, not in
    ``distribution``), or None if each one ``space`` holds fits."""
    for key, value in params.items():
        distribution = space.get(key)
        if distribution is None:
            continue  # a custom search space's key, or one the rerun no longer sweeps
        try:
            if distribution._contains(distribution.to_internal_repr(value)):  # noqa: SLF001
                continue
        except (ValueError, TypeError):  # not one of a categorical's choices, or no number
            pass
        return f"{key}={value!r} is not in {distribution}"
    return None


def set_aside_unfit_queued(
    study: optuna.Study,
    space: Mapping[str, BaseDistribution],
    grid_names: list[str] | None = None,
    optional: set[str] | None = None,
) -> int:
    """Store FAIL (with a ``fail_reason``) each queued trial this run would run wrongly: one the
    sweeper requeued whose parameters no longer fit ``space``, and in a grid sweep (``grid_names``)
    any that is no point of the grid (Optuna's GridSampler fails on one lacking a grid key, and an
    off-grid one would take a missing point's turn). ``optional``: keys a custom search space may
    leave out. A point the user queued outside a random or model-based search is run as given,
    as Optuna does, with a warning. Returns how many were set aside."""
    set_aside = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        params = trial.system_attrs.get("fixed_params", trial.params)
        reason = misfit(params, space)
        lacking = [n for n in grid_names or [] if n not in params and n not in (optional or ())]
        if lacking:
            reason = f"it has no value for {lacking}"
        if reason is None:
            continue
        if grid_names is None and REQUEUED_FROM not in trial.user_attrs:
            log.warning(
                "Queued trial %d runs as queued although %s (Optuna runs a queued point as given).",
                trial.number,
                reason,
            )
            continue
        storage = study._storage  # noqa: SLF001
        what = "a point of this run's grid" if grid_names is not None else "this run's search space"
        storage.set_trial_user_attr(
            trial._trial_id,  # noqa: SLF001
            "fail_reason",
            f"Queued, but not {what}: {reason}.",
        )
        storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)  # noqa: SLF001
        log.warning(
            "Queued trial %d is not %s (%s): stored FAIL, not run.", trial.number, what, reason
        )
        set_aside += 1
    return set_aside
