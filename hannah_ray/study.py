"""The stored study a sweep continues: checks before any trial, and how many trials are missing."""

from __future__ import annotations

import logging
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, check_distribution_compatibility
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import TrialState

from .errors import SweepConfigError
from .queued import queued_params

log = logging.getLogger(__name__)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def existing_trials(
    storage: BaseStorage, study_name: str, directions: list[str], storage_label: str
) -> list[optuna.trial.FrozenTrial]:
    """Trials of the stored study (none for a new one); the stored directions must match."""
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        return []
    stored = [d.name.lower() for d in study.directions]
    if stored != directions and study.directions != [StudyDirection.NOT_SET]:
        raise SweepConfigError(
            f"The study '{study_name}' in {storage_label} optimises {stored}, but "
            f"hydra.sweeper.direction is {directions}. Use another hydra.sweeper.study_name, or "
            "the stored direction(s)."
        )
    trials = study.get_trials(deepcopy=False)
    if trials:
        log.info(
            "Continuing study '%s' in %s: %d trials stored (%d finished).",
            study_name,
            storage_label,
            len(trials),
            sum(t.state in FINISHED for t in trials),
        )
    return trials


def trials_to_run(n_trials: int, add_trials: bool, stored: list[optuna.trial.FrozenTrial]) -> int:
    """``n_trials`` is the study's total of finished trials unless ``add_trials`` asks for more."""
    if add_trials:
        return n_trials
    return max(0, n_trials - sum(t.state in FINISHED for t in stored))


def check_search_space(
    stored: list[optuna.trial.FrozenTrial],
    distributions: dict[str, BaseDistribution],
    study_name: str,
    storage_label: str,
) -> None:
    """A resumed study must keep each parameter's kind, log scale and categorical choices
    (Optuna would otherwise fail mid-sweep, at the first trial that samples it)."""
    latest: dict[str, BaseDistribution] = {}
    for trial in stored:
        latest.update(trial.distributions)
    for key, new in distributions.items():
        old = latest.get(key)
        if old is None:
            continue
        try:
            check_distribution_compatibility(old, new)
        except ValueError as error:
            raise SweepConfigError(
                f"The study '{study_name}' in {storage_label} sampled key '{key}' from {old}, but "
                f"the sweep asks for {new} ({error}). Use another hydra.sweeper.study_name, or the "
                "stored search space."
            ) from None


def grid_points_to_run(
    grid: list[dict[str, Any]],
    trials: list[optuna.trial.FrozenTrial],
    optional: set[str] | frozenset[str] = frozenset(),
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The grid points that no COMPLETE, PRUNED or RUNNING trial holds (RUNNING ones left after
    reclaiming orphans belong to a live sweep), and those of them that no WAITING trial will run.
    A trial holds a point when its parameters match it; of the ``optional`` keys (those a custom
    search space adds) only those it has: one given no ``db.port`` holds every port of its ``db``.
    (Optuna's GridSampler counts a FAILed point as done and, once every point is done, samples
    random ones again; a rerun must run exactly the missing points.)"""
    names = list(grid[0]) if grid else []
    done = _held(
        names, optional, [t.params for t in trials if t.state in (*FINISHED, TrialState.RUNNING)]
    )
    waiting = _held(
        names,
        optional,
        [queued_params(t) for t in trials if t.state == TrialState.WAITING],
    )
    missing = [point for point in grid if not _holds(done, point)]
    return missing, [point for point in missing if not _holds(waiting, point)]


def _held(
    names: list[str], optional: set[str] | frozenset[str], params: list[dict[str, Any]]
) -> dict[tuple[str, ...], set[tuple]]:
    """The grid values of ``params``, grouped by which grid names each one has; one that lacks a
    name that is not ``optional`` (a trial not yet, or not fully, sampled; a key new to the grid)
    holds nothing."""
    held: dict[tuple[str, ...], set[tuple]] = {}
    for values in params:
        present = tuple(name for name in names if name in values)
        if all(name in values for name in names if name not in optional):
            held.setdefault(present, set()).add(tuple(values[name] for name in present))
    return held


def _holds(held: dict[tuple[str, ...], set[tuple]], point: dict[str, Any]) -> bool:
    return any(tuple(point[name] for name in present) in values for present, values in held.items())
