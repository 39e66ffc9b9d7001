"""What the sweep has seen so far: outcomes, job returns, failures, progress lines."""

from __future__ import annotations

import logging
import math
from typing import Any

from hydra.core.utils import JobReturn, JobStatus

from .errors import TrialStopped
from .reporting import EPOCH, JOB_DIR, OBJECTIVE
from .results import SWEEPER_ATTRS
from .trial_runner import JobOutcome

log = logging.getLogger("hannah_ray.sweep")


def outcome_from_result(result: dict | None, errored: bool) -> JobOutcome:
    """The job's outcome from Tune's last result; a trial that errored in Ray has none."""
    outcome = (result or {}).get("job_outcome")
    if not isinstance(outcome, JobOutcome):
        outcome = JobOutcome(overrides=[])
    if errored or not outcome.complete:
        outcome.complete = False
        if not outcome.fail_reason:
            outcome.fail_reason = (
                "The Ray trial errored before the task reported (worker died or was killed); "
                "see the Ray trial's error file."
                if errored
                else "Stopped before the task finished (the sweep was interrupted or stopped)."
            )
        if not isinstance(outcome.error, BaseException):
            outcome.error = RuntimeError(outcome.fail_reason)
    return outcome


def pruned_outcome(last_report: dict) -> JobOutcome:
    """A trial the scheduler stopped after its last intermediate report."""
    epoch = last_report.get(EPOCH)
    outcome = JobOutcome(overrides=[], pruned=True, values=[float(last_report[OBJECTIVE])])
    outcome.job_dir = last_report.get(JOB_DIR) or None
    outcome.user_attrs = {"pruned_at_epoch": epoch}
    outcome.error = TrialStopped(f"Stopped early by the scheduler after epoch {epoch}.")
    return outcome


def trial_user_attrs(
    outcome: JobOutcome, trial_id: str, stale_epochs: list[int] | None = None
) -> dict[str, Any]:
    """What the study keeps about a trial beyond its values: the sweeper's attributes first, then
    the task's extra return entries (one named like a sweeper's attribute as ``returned.<name>``).
    ``stale_epochs``: the steps a dead run of the trial left that this one did not report."""
    attrs: dict[str, Any] = {"ray_trial_id": trial_id}
    if outcome.job_dir:
        attrs["job_dir"] = outcome.job_dir
    if not outcome.complete and not outcome.pruned:
        attrs["fail_reason"] = outcome.fail_reason
    if stale_epochs:
        attrs["stale_epochs"] = stale_epochs
    for key, value in outcome.user_attrs.items():
        attrs[f"returned.{key}" if key in SWEEPER_ATTRS else key] = value
    return attrs


class SweepLedger:
    """Counts outcomes, logs one line per finished trial and decides when failures stop the sweep."""

    def __init__(
        self,
        max_failure_rate: float,
        planned_trials: int,
        directions: list[str],
        stored_best: float | None = None,
    ):
        self.max_failure_rate = max_failure_rate
        self.planned_trials = planned_trials
        self.directions = directions
        self.job_returns: list[JobReturn] = []
        self.completed = 0
        self.failed = 0
        self.pruned = 0
        self.stopped = 0
        self.running: set[int] = set()
        self.first_error: BaseException | None = None
        self._best = stored_best  # a resumed study's best counts from the start

    @property
    def stopped_early(self) -> bool:
        """Fewer trials finished than planned, and not because of failures (e.g. Ctrl-C)."""
        return self.finished < self.planned_trials and not self.failure_rate_exceeded()

    @property
    def finished(self) -> int:
        return self.completed + self.failed + self.pruned

    def started(self, number: int, params: dict[str, Any]) -> None:
        """A trial's task has started on a worker (not just been sampled)."""
        self.running.add(number)
        shown = " ".join(f"{key}={_short(value)}" for key, value in params.items())
        log.info("Trial %d started: %s  %s", number, shown, self.progress())

    def record(self, number: int, outcome: JobOutcome, stopped: bool = False) -> None:
        """Count one finished trial; ``stopped`` ones (cut off by the sweep ending) are stored FAIL
        but do not count against max_failure_rate, and neither do pruned ones."""
        self.running.discard(number)
        self.job_returns.append(_job_return(outcome))
        if stopped:
            self.stopped += 1
            log.warning("Trial %d FAIL (stopped): %s", number, outcome.fail_reason)
        elif outcome.pruned:
            self.pruned += 1
            log.info(
                "Trial %d PRUNED at epoch %s, %s  %s",
                number,
                outcome.user_attrs.get("pruned_at_epoch"),
                _fmt(outcome.values),
                self.progress(),
            )
        elif outcome.complete:
            self.completed += 1
            self._update_best(outcome.values or [])
            log.info("Trial %d COMPLETE %s  %s", number, _fmt(outcome.values), self.progress())
        else:
            self.failed += 1
            if self.first_error is None:
                self.first_error = outcome.error
            log.warning("Trial %d FAIL: %s  %s", number, outcome.fail_reason, self.progress())

    def progress(self) -> str:
        """``[running 2, done 5/20, pruned 3, failed 0, best 0.12]``"""
        best = f", best {self._best:.6g}" if self._best is not None else ""
        return (
            f"[running {len(self.running)}, done {self.finished}/{self.planned_trials}, "
            f"pruned {self.pruned}, failed {self.failed}{best}]"
        )

    def failure_rate_exceeded(self) -> bool:
        """More failures than ``max_failure_rate`` of the trials this sweep plans to run.

        Judged against the plan, not the trials finished so far, so that one early failure
        does not stop a sweep that tolerates some.
        """
        # As a fraction: 0.29 * 100 is 28.999999999999996, which 29 failures would exceed.
        if self.planned_trials == 0:
            return self.failed > 0
        return self.failed / self.planned_trials > self.max_failure_rate

    def _update_best(self, values: list[float]) -> None:
        if len(self.directions) != 1 or not values:
            return
        known = [values[0]] if self._best is None else [self._best, values[0]]
        self._best = best_value(known, self.directions[0])


def _job_return(outcome: JobOutcome) -> JobReturn:
    ret = JobReturn(overrides=outcome.overrides, working_dir=outcome.job_dir)
    if outcome.complete:
        ret.return_value = outcome.return_value
        ret.status = JobStatus.COMPLETED
    else:
        ret.return_value = outcome.error
        ret.status = JobStatus.FAILED
    return ret


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def best_value(values: list[float], direction: str) -> float | None:
    """The best of a single objective's values in its direction."""
    if not values:
        return None
    return min(values) if direction == "minimize" else max(values)


def _fmt(values: list[float] | None) -> str:
    if not values:
        return ""
    shown = [f"{v:.6g}" if math.isfinite(v) else str(v) for v in values]
    return "value " + shown[0] if len(shown) == 1 else "values [" + ", ".join(shown) + "]"
