"""``hydra.sweeper.scheduler`` -> a Ray Tune trial scheduler (ASHA, median stopping, or none),
its arguments checked before any trial."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ray.tune import schedulers as tune_schedulers
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from .configured import check_arguments, configured_class
from .errors import SweepConfigError
from .reporting import LAST, OBJECTIVE

KEY = "hydra.sweeper.scheduler"
# Arguments the sweeper sets itself: the scheduler judges the objective in the study's direction.
_SET_BY_SWEEPER = ("metric", "mode")

# (check, what is allowed) per argument; checked for any scheduler that takes the argument.
_RULES: dict[str, tuple[Any, str]] = {
    "max_t": (lambda v, _: _number(v) and v > 0, "a number > 0"),
    "grace_period": (
        lambda v, kw: _number(v) and v > 0 and ("max_t" not in kw or v <= kw["max_t"]),
        "a number > 0 and <= max_t",
    ),
    "reduction_factor": (lambda v, _: _number(v) and v > 1, "a number > 1"),
    "brackets": (
        lambda v, _: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
        "an integer >= 1",
    ),
    "time_attr": (
        lambda v, _: isinstance(v, str) and v,
        "the name of a reported counter, e.g. epoch",
    ),
    # Pausing needs trial checkpoints to resume from; a Hydra job has none.
    "hard_stop": (lambda v, _: v is True, "true (pausing trials is not supported)"),
}


class _KeepsStartingWorkers:
    """Leaves the choice of the next trial to Tune's controller, which starts pending trials in
    order, each on a finished trial's (cached) worker when one is free, else on a new worker.

    Ray's schedulers choose the oldest pending trial, even one whose own worker is still starting
    up: Tune then moves it onto the finished trial's worker and kills the starting one, and the
    trial after it needs a new worker, which meets the same fate when the next trial ends. Once
    that starts, every few seconds a worker is started (importing Ray Tune, Hydra and the task,
    seconds of CPU) only to be killed, and the sweep runs one trial fewer at a time. None of the
    allowed schedulers pauses trials, so there is nothing else for this choice to do."""

    def choose_trial_to_run(self, tune_controller: Any) -> None:
        return None


class _LetsLastReportsFinish:
    """Never stops a trial at a report marked last (``report(..., last=True)``; the Lightning
    callback marks the one after the last epoch): the task has done its work, and stopping it
    there would store a finished trial PRUNED and lose its return value. The report still counts
    for the scheduler's cut-offs."""

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.STOP and result.get(LAST):
            # Ray's median rule remembers the trials it stopped and asserts that none reports
            # again: forget it, in case the task reports after all.
            getattr(self, "_stopped_trials", set()).discard(trial)
            return TrialScheduler.CONTINUE
        return action


class _StopsDivergedTrials:
    """A NaN objective (a diverged trial) counts as the worst value: Ray's rules compare with
    ``<``, which is False for NaN, so they would let such a trial train to its end."""

    # Not inf: Ray interpolates percentiles of the recorded values, and -inf + inf is NaN, which
    # would turn the cut-off itself into NaN and stop no trial at that rung.
    _WORST = 1e300

    def _worst_for_nan(self, result: dict) -> dict:
        value = result.get(self._metric)
        if isinstance(value, float) and math.isnan(value):
            worst = self._WORST if self._mode == "min" else -self._WORST
            return {**result, self._metric: worst}
        return result

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        return super().on_trial_result(tune_controller, trial, self._worst_for_nan(result))

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        super().on_trial_complete(tune_controller, trial, self._worst_for_nan(result))


class FifoScheduler(_KeepsStartingWorkers, FIFOScheduler):
    """No early stopping: every trial runs to its end."""


class ASHAScheduler(
    _LetsLastReportsFinish,
    _StopsDivergedTrials,
    _KeepsStartingWorkers,
    tune_schedulers.AsyncHyperBandScheduler,
):
    """Ray's ASHA, except that a trial that has reached ``max_t`` is not stopped (unless
    ``stop_last_trials``): a rung at ``max_t`` would otherwise cut trials at their last epoch and
    lose their return value."""

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if result.get(self._time_attr, 0) >= self._max_t and not self._stop_last_trials:
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)


class MedianStoppingRule(
    _LetsLastReportsFinish,
    _StopsDivergedTrials,
    _KeepsStartingWorkers,
    tune_schedulers.MedianStoppingRule,
):
    """Ray's median stopping rule, except that a final result without the objective (a trial
    that failed or never reported) is not recorded, as Ray's rule would crash on it later, and
    that too few samples mean "continue": Ray's rule would pause the trial, and a Hydra job has no
    checkpoint to resume from."""

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        if self._metric in result and self._time_attr in result:
            super().on_trial_complete(tune_controller, trial, result)

    def _on_insufficient_samples(self, tune_controller: Any, trial: Any, time: float) -> str:
        return TrialScheduler.CONTINUE


# Ray's own classes -> ours; no other scheduler is allowed: the rest pause trials (HyperBand,
# PBT, BOHB), which needs checkpoints a Hydra job does not make.
_OURS: dict[type, type] = {
    FIFOScheduler: FifoScheduler,
    FifoScheduler: FifoScheduler,
    tune_schedulers.AsyncHyperBandScheduler: ASHAScheduler,
    tune_schedulers.MedianStoppingRule: MedianStoppingRule,
    ASHAScheduler: ASHAScheduler,
    MedianStoppingRule: MedianStoppingRule,
}


def build_scheduler(
    scheduler_config: Mapping[str, Any] | None, directions: list[str]
) -> TrialScheduler:
    """Instantiate the configured scheduler for the study's direction(s)."""
    kwargs = dict(scheduler_config or {})
    target = kwargs.pop("_target_", None) or "ray.tune.schedulers.FIFOScheduler"
    scheduler_class = configured_class(
        KEY, target, TrialScheduler, "a ray.tune.schedulers.TrialScheduler"
    )
    if scheduler_class not in _OURS:
        raise SweepConfigError(
            f"hydra.sweeper.scheduler._target_={target!r}: schedulers that pause trials need "
            "checkpoints a Hydra job does not make. Allowed: hydra/sweeper/scheduler=none, asha "
            "or median."
        )
    scheduler_class = _OURS[scheduler_class]
    name = scheduler_class.__name__
    check_arguments(KEY, scheduler_class, kwargs, set_by_sweeper=_SET_BY_SWEEPER)
    for key in _EPOCHS:  # typed float in the config (fractions of an epoch are allowed)
        if key in kwargs:
            kwargs[key] = _whole_as_int(kwargs[key])
    for key, value in kwargs.items():
        check, rule = _RULES.get(key, (None, ""))
        if check is not None and not check(value, kwargs):
            raise SweepConfigError(
                f"hydra.sweeper.scheduler.{key}={value!r}: allowed: {rule} ({name})."
            )
    if scheduler_class is FifoScheduler:
        return scheduler_class()
    if len(directions) != 1:
        raise SweepConfigError(
            f"hydra/sweeper/scheduler: {name} stops trials by one objective, but "
            f"hydra.sweeper.direction={directions} has {len(directions)}. "
            "Allowed with multi-objective search: hydra/sweeper/scheduler=none."
        )
    mode = "min" if directions[0] == "minimize" else "max"
    try:
        return scheduler_class(metric=OBJECTIVE, mode=mode, **kwargs)
    except Exception as error:
        raise SweepConfigError(
            f"hydra.sweeper.scheduler: {name}({kwargs}) failed: {error}"
        ) from error


def describe(scheduler: TrialScheduler) -> str:
    """One line for the sweep's start-up log."""
    if type(scheduler) is FifoScheduler:
        return "none (every trial runs to its end)"
    return type(scheduler).__name__


_EPOCHS = ("max_t", "grace_period")


def _whole_as_int(value: Any) -> Any:
    """``10.0`` -> 10 (rungs and log lines keep whole epochs whole); anything else unchanged."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
