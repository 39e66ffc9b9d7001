"""The stored study a sweep continues: checks before any trial, and how many trials are missing."""

from __future__ import annotations

import logging

import optuna
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import TrialState

from .errors import SweepConfigError

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
