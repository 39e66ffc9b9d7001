"""Heartbeats of a sweep's running trials, and reclaiming the trials a killed sweep left RUNNING.

The driver stamps each of its open trials in the study every few seconds. A later sweep on the same
study takes a RUNNING trial whose stamp is older than the grace period for an orphan of a killed
sweep: it is stored FAIL (``fail_reason`` says why) and its parameters are queued again, so the
sampler's plan is not lost. A trial with a fresh stamp belongs to a live sweep and is left alone.
Works with every storage (Optuna's own heartbeat exists for RDB storages only).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime

import optuna
from optuna.distributions import BaseDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from .queued import REQUEUED_FROM, misfit

log = logging.getLogger("hannah_ray.sweep")

HEARTBEAT_ATTR = "hannah_ray:heartbeat"
# The beating sweep's interval: another sweep on the study judges the trial's age by it too.
INTERVAL_ATTR = "hannah_ray:heartbeat_interval_s"
# A live trial may miss this many beats (a busy storage, a slow machine) before it is an orphan.
MISSED_BEATS = 3


def stamp(storage: BaseStorage, trial_id: int, interval_s: float | None = None) -> None:
    storage.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())
    if interval_s is not None:
        storage.set_trial_system_attr(trial_id, INTERVAL_ATTR, float(interval_s))


class Heartbeat:
    """A daemon thread that stamps ``open_trial_ids()`` every ``interval_s`` seconds."""

    def __init__(
        self, storage: BaseStorage, interval_s: float, open_trial_ids: Callable[[], list[int]]
    ) -> None:
        self._storage = storage
        self._interval_s = interval_s
        self._open_trial_ids = open_trial_ids
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hannah-ray-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            for trial_id in self._open_trial_ids():
                try:
                    stamp(self._storage, trial_id)
                except UpdateFinishedTrialError:
                    pass  # finished between the listing and the stamp
                except Exception as error:  # a missed beat must not end the sweep
                    log.debug("Heartbeat of trial id %d failed: %s", trial_id, error)


def reclaim_orphans(
    study: optuna.Study,
    grace_s: float,
    requeue: bool,
    space: Mapping[str, BaseDistribution] | None = None,
) -> int:
    """Fail (and by default re-queue) the RUNNING trials whose heartbeat is older than ``grace_s``
    (and than ``MISSED_BEATS`` of their own sweep's beats); returns how many. An orphan is queued
    again only where its parameters fit this command's ``space``: the rerun may have changed a
    range."""
    now = time.time()
    reclaimed = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        beat = trial.system_attrs.get(HEARTBEAT_ATTR)
        if beat is None:
            log.warning(
                "Trial %d is RUNNING without a hannah-ray heartbeat (another tool runs it?): "
                "left alone.",
                trial.number,
            )
            continue
        age = now - float(beat)
        trial_grace_s = _grace_s(trial, grace_s)
        if age <= trial_grace_s:
            log.warning(
                "Trial %d is RUNNING, its heartbeat %.0f s old: another sweep may be running it, "
                "so it is left alone (it counts as an orphan after %s s: "
                "hydra.sweeper.orphan_grace_s, or %d of its sweep's heartbeats).",
                trial.number,
                age,
                trial_grace_s,
                MISSED_BEATS,
            )
            continue
        storage = study._storage  # noqa: SLF001
        since = datetime.fromtimestamp(float(beat)).isoformat(timespec="seconds")
        reason = f"Orphaned: the sweep running it stopped (last heartbeat {since})."
        try:  # the reason first: a finished trial takes no more attributes
            storage.set_trial_user_attr(trial._trial_id, "fail_reason", reason)  # noqa: SLF001
            storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)  # noqa: SLF001
        except UpdateFinishedTrialError:
            continue  # it finished, or another sweep reclaimed it first
        reclaimed += 1
        unfit = None if space is None else misfit(trial.params, space)
        if requeue and unfit is None:
            study.enqueue_trial(trial.params, user_attrs={REQUEUED_FROM: trial.number})
        log.warning(
            "Trial %d was left RUNNING by a sweep that stopped: stored FAIL%s.",
            trial.number,
            ", its parameters queued again"
            if requeue and unfit is None
            else f", not queued again: {unfit}"
            if requeue
            else "",
        )
    return reclaimed


def is_live(trial: optuna.trial.FrozenTrial, grace_s: float, now: float) -> bool:
    """A RUNNING trial that a live sweep (or another tool, without a heartbeat) runs: not one
    that ``reclaim_orphans`` would take for an orphan."""
    beat = trial.system_attrs.get(HEARTBEAT_ATTR)
    return beat is None or now - float(beat) <= _grace_s(trial, grace_s)


def _grace_s(trial: optuna.trial.FrozenTrial, grace_s: float) -> float:
    """``grace_s``, or more for a trial whose sweep beats more slowly than this one would."""
    return max(grace_s, MISSED_BEATS * float(trial.system_attrs.get(INTERVAL_ATTR, 0.0)))
