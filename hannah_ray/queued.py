"""Trials queued in a stored study (WAITING: an orphan requeued by an earlier run, or one the user
enqueued) that this run's search space cannot take: set aside before any trial starts."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from .search_space import admits
from .storage import retry_when_locked

log = logging.getLogger("hannah_ray.sweep")

REQUEUED_FROM = "requeued_from_trial"


def queued_params(trial: FrozenTrial) -> dict[str, Any]:
    """The parameters ``enqueue_trial`` fixed for a WAITING trial."""
    return trial.system_attrs.get("fixed_params", trial.params)


def misfit(params: Mapping[str, Any], space: Mapping[str, BaseDistribution]) -> str | None:
    """Which of ``params`` lies outside its distribution in ``space`` (``key=value``, not in
    ``distribution``), or None if each one ``space`` holds fits."""
    for key, value in params.items():
        distribution = space.get(key)
        if distribution is not None and not admits(distribution, value):
            return f"{key}={value!r} is not in {distribution}"
    return None  # keys space lacks: a custom search space's, or ones the rerun no longer sweeps


def off_grid(
    params: Mapping[str, Any], grid: list[dict[str, Any]], optional: set[str] | None = None
) -> str | None:
    """Why ``params`` is no point of ``grid`` (a key it lacks, or a value the grid does not
    hold), or None. ``optional``: keys a custom search space may leave out."""
    names = list(grid[0]) if grid else []
    lacking = [name for name in names if name not in params and name not in (optional or ())]
    if lacking:
        return f"it has no value for {lacking}"
    for name in names:
        values = [point[name] for point in grid if name in point]
        if name in params and params[name] not in values:
            return f"{name}={params[name]!r} is none of the grid's {_sorted(set(values))}"
    return None


def _sorted(values: set[Any]) -> list[Any]:
    try:
        return sorted(values)
    except TypeError:  # mixed types (a choice of null and numbers...)
        return sorted(values, key=repr)


def set_aside_unfit_queued(
    study: optuna.Study,
    space: Mapping[str, BaseDistribution],
    grid: list[dict[str, Any]] | None = None,
    optional: set[str] | None = None,
) -> int:
    """Store FAIL (with a ``fail_reason``) each queued trial this run would run wrongly: one the
    sweeper requeued whose parameters no longer fit ``space``, and in a grid sweep any that is no
    point of ``grid`` (Optuna's GridSampler fails on one lacking a grid key, and an off-grid one
    would take a missing point's turn). A point the user queued outside a random or model-based
    search runs as given, as Optuna runs it, with a warning. A trial another sweep starts
    meanwhile is left to it. Returns how many were set aside."""
    set_aside = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        params = queued_params(trial)
        reason = off_grid(params, grid, optional) if grid else misfit(params, space)
        if reason is None:
            continue
        if not grid and REQUEUED_FROM not in trial.user_attrs:
            log.warning(
                "Queued trial %d runs as queued although %s (Optuna runs a queued point as given).",
                trial.number,
                reason,
            )
            continue
        what = "a point of this run's grid" if grid else "in this run's search space"
        if _fail_waiting(study, trial, f"Queued, but not {what}: {reason}."):
            log.warning(
                "Queued trial %d is not %s (%s): stored FAIL, not run.", trial.number, what, reason
            )
            set_aside += 1
    return set_aside


def _fail_waiting(study: optuna.Study, trial: FrozenTrial, reason: str) -> bool:
    """Store a WAITING trial FAIL with ``reason``, taking it as Optuna takes a queued trial (only
    one taker succeeds); False where another sweep took or ended it first."""
    storage = study._storage  # noqa: SLF001
    trial_id = trial._trial_id  # noqa: SLF001
    what = f"Setting queued trial {trial.number} aside"
    try:
        if not retry_when_locked(
            lambda: storage.set_trial_state_values(trial_id, state=TrialState.RUNNING), what
        ):
            return False  # no longer WAITING: another sweep runs it
        retry_when_locked(
            lambda: storage.set_trial_user_attr(trial_id, "fail_reason", reason), what
        )
        retry_when_locked(
            lambda: storage.set_trial_state_values(trial_id, state=TrialState.FAIL), what
        )
    except UpdateFinishedTrialError:
        return False  # another sweep ended it first
    return True
