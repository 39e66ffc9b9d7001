"""Intermediate results of a running trial -> Ray Tune (and from there ASHA and the Optuna study).

``report`` is a no-op outside a ``ray_optuna`` trial, so an app that calls it also runs on its own.
This module imports nothing heavy: Ray is imported only when a trial reports.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .objectives import intermediate_objective, unwrap_scalar

log = logging.getLogger("hannah_ray.trial")

# Keys of the results a trial reports to Tune (read by the searcher and the scheduler in the driver).
FINAL = "hannah_ray_final"
OBJECTIVE = "objective"
EPOCH = "epoch"
# Set on a report after which the task does no more work: no scheduler stops the trial there.
LAST = "hannah_ray_last"
JOB_DIR = "hannah_ray_job_dir"
# Result keys Tune or the sweeper act on: a reported metric of such a name goes as reported.<name>
# (a metric named done would end the trial).
_RESERVED = {
    FINAL, OBJECTIVE, EPOCH, LAST, JOB_DIR, "done", "should_checkpoint", "__duplicate__",
    "training_iteration", "time_this_iter_s", "time_total_s", "timestamp", "trial_id", "config",
    "date", "pid", "hostname", "node_ip", "time_since_restore", "iterations_since_restore",
    "checkpoint_dir_name", "experiment_tag",
}  # fmt: skip


@dataclass
class ActiveTrial:
    """The trial this worker thread is running."""

    number: int
    n_objectives: int
    metric: str | list[str] | None
    reports: int = 0
    last_epoch: float = 0
    stopped: bool = False


_active: ActiveTrial | None = None


@contextmanager
def active_trial(number: int, n_objectives: int, metric: Any) -> Iterator[ActiveTrial]:
    """Mark the code inside as trial ``number`` (set by the trial runner around the Hydra job)."""
    global _active
    previous, _active = _active, ActiveTrial(number, n_objectives, metric)
    try:
        yield _active
    finally:
        _active = previous


def in_trial() -> bool:
    """True inside a ``ray_optuna`` trial."""
    return _active is not None


def report(
    metrics: float | Mapping[str, Any], *, epoch: float | None = None, last: bool = False
) -> None:
    """Report intermediate metrics of the running trial (e.g. once per epoch).

    ``metrics`` is a number (the objective) or a dict; the objective is the key named by
    ``hydra.sweeper.metric``, or the only key. ``epoch`` (the scheduler's time unit) defaults to the
    number of reports so far; a fraction (e.g. 2.5, a validation inside an epoch) counts for the
    scheduler; the study keeps each epoch's last value (Optuna's steps). ``last=True``
    says the task's work is done (its last epoch): no scheduler stops the trial at this report,
    so the trial ends COMPLETE with the task's return value instead of PRUNED. Outside a trial
    this does nothing.
    """
    trial = _active
    if trial is None:
        return
    if trial.stopped:  # the task caught the SystemExit and went on: Ray takes no more reports
        raise SystemExit(0)
    values = dict(metrics) if isinstance(metrics, Mapping) else {}
    result: dict[str, Any] = {}
    for key, value in values.items():
        number = _number(value)
        if number is not None:  # one named like a key Tune or the sweeper acts on: kept apart
            result[f"reported.{key}" if str(key) in _RESERVED else str(key)] = number
    if trial.n_objectives == 1:
        result[OBJECTIVE] = intermediate_objective(metrics, trial.metric)
    trial.reports += 1
    trial.last_epoch = _epoch(epoch) if epoch is not None else trial.reports
    result[EPOCH] = trial.last_epoch
    if last:
        result[LAST] = True
    result[JOB_DIR] = _job_dir()
    from ray import tune

    try:
        tune.report(result)
    except SystemExit:
        # Ray ends a stopped trial's thread with SystemExit at its next report.
        trial.stopped = True
        log.info(
            "Trial %d stopped early by the scheduler after epoch %g.",
            trial.number,
            trial.last_epoch,
        )
        raise


def stop_if_requested() -> None:
    """End the trial now if Ray Tune has stopped it (e.g. ASHA), instead of at the next report.

    Ray sets its session's stop event when it stops a trial; the training thread would only notice
    at its next report, a whole epoch later, and an actor whose thread has not ended within
    seconds cannot be reused. Cheap enough to call every batch.
    """
    trial = _active
    if trial is None:
        return
    if trial.stopped:
        raise SystemExit(0)
    try:
        from ray.train._internal.session import get_session

        session = get_session()
        stop_requested = session is not None and session.stop_event.is_set()
    except Exception:  # a Ray without this private API: the next report stops the trial
        return
    if stop_requested:
        trial.stopped = True
        log.info(
            "Trial %d stopped early by the scheduler during epoch %d.",
            trial.number,
            int(trial.last_epoch) + 1,
        )
        raise SystemExit(0)


def _epoch(epoch: Any) -> float:
    """Whole epochs as int (Optuna's step), fractions (a validation inside an epoch) as float."""
    try:
        value = float(epoch)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(epoch, bool) or not math.isfinite(value) or value < 0:
        raise ValueError(
            f"hannah_ray.report(epoch={epoch!r}): allowed: a finite number >= 0 (the epoch, or a "
            "fraction of one), or no epoch (the number of reports so far)."
        )
    return int(value) if value.is_integer() else value


def _job_dir() -> str:
    from hydra.core.hydra_config import HydraConfig

    try:
        return str(HydraConfig.get().runtime.output_dir)
    except ValueError:  # HydraConfig is not set: the app reports outside a Hydra job
        return ""


def _number(value: Any) -> float | None:
    value = unwrap_scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)
