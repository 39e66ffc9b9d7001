"""What the sweep has seen so far: outcomes, job returns, failures, progress lines."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from optuna.trial import FrozenTrial, TrialState

log = logging.getLogger("hannah_ray.sweep")


@dataclass
class TrialOutcome:
    """One finished trial as the driver sees it."""

    state: TrialState
    values: list[float] | None = None
    user_attrs: dict[str, Any] = field(default_factory=dict)
    fail_reason: str | None = None
    error: BaseException | None = None
    return_value: Any = None
    job_num: int | None = None
    job_dir: str | None = None
    overrides: list[str] = field(default_factory=list)

    @classmethod
    def from_result(cls, result: dict | None, errored: bool, trial_id: str) -> TrialOutcome:
        result = result or {}
        attrs = dict(result.get("user_attrs") or {})
        attrs["ray_trial_id"] = trial_id
        if result.get("job_dir"):
            attrs["job_dir"] = result["job_dir"]
        common = {
            "job_num": result.get("job_num"),
            "job_dir": result.get("job_dir"),
            "overrides": list(result.get("overrides") or []),
            "return_value": result.get("return_value"),
        }
        if result.get("status") == "COMPLETE" and not errored:
            return cls(TrialState.COMPLETE, list(result["objective_values"]), attrs, **common)
        reason = result.get("fail_reason") or (
            "The Ray trial errored before the task reported (worker died or was killed); "
            "see the Ray trial's error file."
        )
        attrs["fail_reason"] = reason
        error = result.get("error")
        if not isinstance(error, BaseException):
            error = RuntimeError(reason)
        return cls(TrialState.FAIL, None, attrs, reason, error, **common)


class SweepLedger:
    """Counts outcomes, logs one line per finished trial and decides when failures stop the sweep."""

    def __init__(self, max_failure_rate: float, min_denominator: int, directions: list[str]):
        self.max_failure_rate = max_failure_rate
        self.min_denominator = max(1, min_denominator)
        self.directions = directions
        self.job_returns: list[JobReturn] = []
        self.completed = 0
        self.failed = 0
        self.first_error: BaseException | None = None
        self._best: float | None = None

    @property
    def finished(self) -> int:
        return self.completed + self.failed

    def record(self, number: int, outcome: TrialOutcome, frozen: FrozenTrial | None) -> None:
        self.job_returns.append(_job_return(outcome))
        if outcome.state == TrialState.COMPLETE:
            self.completed += 1
            self._update_best(outcome.values or [])
            log.info(
                "Trial %d COMPLETE %s  [done %d, failed %d%s]",
                number,
                _fmt(outcome.values),
                self.completed,
                self.failed,
                f", best {self._best:.6g}" if self._best is not None else "",
            )
        else:
            self.failed += 1
            if self.first_error is None:
                self.first_error = outcome.error
            log.warning(
                "Trial %d FAIL: %s  [done %d, failed %d]",
                number,
                outcome.fail_reason,
                self.completed,
                self.failed,
            )

    def failure_rate_exceeded(self) -> bool:
        """Failures / finished trials above max_failure_rate, judged over at least one batch."""
        if not self.failed:
            return False
        return self.failed / max(self.finished, self.min_denominator) > self.max_failure_rate

    def _update_best(self, values: list[float]) -> None:
        if len(self.directions) != 1 or not values:
            return
        value = values[0]
        better = min if self.directions[0] == "minimize" else max
        self._best = value if self._best is None else better(self._best, value)


def _job_return(outcome: TrialOutcome) -> JobReturn:
    ret = JobReturn(overrides=outcome.overrides, working_dir=outcome.job_dir)
    if outcome.state == TrialState.COMPLETE:
        ret.return_value = outcome.return_value
        ret.status = JobStatus.COMPLETED
    else:
        ret.return_value = outcome.error
        ret.status = JobStatus.FAILED
    return ret


def _fmt(values: list[float] | None) -> str:
    if not values:
        return ""
    shown = [f"{v:.6g}" if math.isfinite(v) else str(v) for v in values]
    return "value " + shown[0] if len(shown) == 1 else "values [" + ", ".join(shown) + "]"
