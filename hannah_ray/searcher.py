"""Ray Tune's OptunaSearch on a persisted study, suggesting Hydra overrides."""

from __future__ import annotations

import logging
import math
import pickle
import time
from collections.abc import Callable
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler
from optuna.storages import BaseStorage
from optuna.trial import TrialState
from ray.tune import Callback
from ray.tune.search.optuna import OptunaSearch
from ray.tune.stopper import Stopper

from .heartbeat import stamp
from .ledger import SweepLedger, outcome_from_result, pruned_outcome, trial_user_attrs
from .reporting import EPOCH, FINAL, OBJECTIVE
from .search_space import SearchSpace
from .storage import retry_when_locked
from .trial_runner import JobOutcome

log = logging.getLogger(__name__)

CustomSearchSpace = Callable[[Any, optuna.Trial], None]


class HydraOptunaSearch(OptunaSearch):
    """Suggests ``{"number": optuna trial number, "overrides": [...]}`` for each Tune trial and
    tells the study what the Hydra job returned.

    Overridden seams: ``suggest`` (custom search space, Hydra overrides), ``on_trial_complete``
    (the job's values, user attributes and failures, not Tune's last metric; a trial the
    scheduler stopped is PRUNED, where Ray's OptunaSearch would store it COMPLETE with a
    partial-budget value), ``on_trial_result`` (intermediate reports, one step per epoch),
    ``save``/``restore`` (the study lives in its storage, so nothing
    of it, credentials included, is pickled into Ray's experiment folder).
    """

    def __init__(
        self,
        *,
        search_space: SearchSpace,
        directions: list[str],
        study_name: str,
        storage: BaseStorage,
        sampler: BaseSampler,
        ledger: SweepLedger,
        custom_search_space: CustomSearchSpace | None = None,
        sweep_config: Any = None,
        trial_timeout_s: float | None = None,
        heartbeat_interval_s: float | None = None,
    ) -> None:
        modes = ["min" if d == "minimize" else "max" for d in directions]
        multi = len(directions) > 1
        super().__init__(
            space=dict(search_space.distributions),
            metric=[f"{OBJECTIVE}_{i}" for i in range(len(modes))] if multi else OBJECTIVE,
            mode=modes if multi else modes[0],
            sampler=sampler,
            study_name=study_name,
            storage=storage,
        )
        if self._ot_study is None:  # an empty fixed space: everything comes from the custom one
            self._setup_study(self._mode)
        self._search_space = search_space
        self._custom_search_space = custom_search_space
        self._sweep_config = sweep_config
        self._ledger = ledger
        self._single_objective = not multi
        self._reported_steps: dict[str, set[int]] = {}
        self._inside_epoch: dict[str, tuple[int, float]] = {}  # trial -> (step, value) not stored
        self._trial_timeout_s = trial_timeout_s
        self._heartbeat_interval_s = heartbeat_interval_s
        self._started: dict[str, float] = {}

    @property
    def study(self) -> optuna.Study:
        return self._ot_study

    def set_search_properties(self, metric: Any, mode: Any, config: dict, **spec: Any) -> bool:
        return False  # the space and the study are fixed at construction

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if trial_id not in self._ot_trials:
            ot_trial = self._ask()
            try:
                retry_when_locked(
                    lambda: stamp(
                        self._ot_study._storage,  # noqa: SLF001
                        ot_trial._trial_id,  # noqa: SLF001
                        self._heartbeat_interval_s,
                    ),
                    f"Stamping trial {ot_trial.number}",
                )
                for name, distribution in self._space.items():
                    retry_when_locked(
                        lambda n=name, d=distribution: suggest_value(ot_trial, n, d),
                        f"Sampling {name} of trial {ot_trial.number}",
                    )
                if self._custom_search_space is not None:
                    self._custom_search_space(self._sweep_config, ot_trial)
            except Exception as error:  # the sweep stops; the trial must not stay RUNNING
                self._store_sampling_failure(ot_trial._trial_id, error)  # noqa: SLF001
                raise
            self._ot_trials[trial_id] = ot_trial
            self._started[trial_id] = time.monotonic()
        ot_trial = self._ot_trials[trial_id]
        return {
            "number": ot_trial.number,
            "overrides": self._search_space.trial_overrides(ot_trial.params),
        }

    def _ask(self) -> optuna.Trial:
        """A new trial; a sampler that fails inside ``ask`` (after the trial was created) must not
        leave it RUNNING: it is stored FAIL with the reason, and the error stops the sweep."""
        try:
            return retry_when_locked(self._ot_study.ask, "Starting a trial")
        except Exception as error:
            trial_id = _trial_id_created_by_ask(error)
            if trial_id is not None:
                self._store_sampling_failure(trial_id, error)
            raise

    def _store_sampling_failure(self, trial_id: int, error: Exception) -> None:
        """Store a trial whose sampling failed as FAIL, with the reason."""
        storage = self._ot_study._storage  # noqa: SLF001
        try:
            storage.set_trial_user_attr(trial_id, "fail_reason", f"Sampling failed: {error!r}")
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except Exception as store_error:  # the sampler's error matters more
            log.error("Could not store the trial as FAIL: %s", store_error)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Store an intermediate report in the study (Optuna supports them for one objective)."""
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None:
            return
        if result.get(FINAL):
            # Store the job's outcome now, not one round trip later in on_trial_complete: the
            # sweep may be interrupted, or the worker die, in between.
            self._store(trial_id, outcome_from_result(result, False))
            return
        if not self._single_objective or OBJECTIVE not in result:
            return
        epoch = float(result.get(EPOCH) or result.get("training_iteration") or 0)
        step, value = math.ceil(epoch), float(result[OBJECTIVE])
        # A validation inside an epoch (epoch 1.4 is in the 2nd): the study keeps the epoch's last
        # one at the epoch's step, unless the epoch ends with a validation of its own.
        held = self._inside_epoch.pop(trial_id, None)
        if held is not None and held[0] != step:
            self._report_step(trial_id, *held)
        if epoch.is_integer():
            self._report_step(trial_id, step, value)
        else:
            self._inside_epoch[trial_id] = (step, value)

    def _report_step(self, trial_id: str, step: int, value: float) -> None:
        ot_trial = self._ot_trials[trial_id]
        steps = self._reported_steps.setdefault(trial_id, set())
        if step in steps:
            return  # Tune hands the result that stopped a trial to on_trial_complete as well
        steps.add(step)
        try:
            retry_when_locked(
                lambda: ot_trial.report(value, step),
                f"Storing trial {ot_trial.number}'s value at epoch {step}",
            )
        except Exception as error:  # a lost intermediate value must not end the sweep
            log.warning("Trial %d: intermediate value not stored: %s", ot_trial.number, error)

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        result = result or {}
        stopped_by_scheduler = (
            not error
            and not result.get(FINAL)
            and OBJECTIVE in result
            and not self._ledger.failure_rate_exceeded()
        )
        if stopped_by_scheduler:
            # The result that made the scheduler stop the trial never reached on_trial_result.
            self.on_trial_result(trial_id, result)
            self._store(trial_id, pruned_outcome(result))
            return
        outcome = outcome_from_result(result, error)
        elapsed = time.monotonic() - self._started.get(trial_id, time.monotonic())
        if error and self._trial_timeout_s and elapsed >= self._trial_timeout_s:
            outcome.fail_reason = (
                f"Exceeded hydra.sweeper.trial_timeout_s={self._trial_timeout_s:g} "
                f"(ran {elapsed:.0f} s): its worker was stopped."
            )
            outcome.error = TimeoutError(outcome.fail_reason)
        self._store(trial_id, outcome)

    def trial_started(self, trial_id: str) -> None:
        """Tune started the trial's task on a worker (see ``TrialStartLogger``)."""
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None:
            # trial_timeout_s counts from here, per attempt (a retry starts it again), not from
            # sampling: a trial may wait for resources or a worker first.
            self._started[trial_id] = time.monotonic()
            self._ledger.started(ot_trial.number, ot_trial.params)

    def open_trial_ids(self) -> list[int]:
        """Storage ids of this sweep's trials that are not stored as finished yet."""
        return [t._trial_id for t in list(self._ot_trials.values())]  # noqa: SLF001

    def _store(self, trial_id: str, outcome: JobOutcome, stopped: bool = False) -> None:
        """Tell the study how the trial ended, with its user attributes."""
        held = self._inside_epoch.pop(trial_id, None)
        if held is not None:  # only a single-objective trial holds one
            self._report_step(trial_id, *held)
        self._completed_trials.add(trial_id)
        self._reported_steps.pop(trial_id, None)
        self._started.pop(trial_id, None)
        ot_trial = self._ot_trials.pop(trial_id)
        if not outcome.overrides:
            outcome.overrides = self._search_space.trial_overrides(ot_trial.params)
        what = f"Storing trial {ot_trial.number}"
        try:
            for key, value in trial_user_attrs(outcome, trial_id).items():
                retry_when_locked(lambda k=key, v=value: ot_trial.set_user_attr(k, v), what)
        except Exception as attr_error:  # the state matters more: tell it anyway
            log.error("Trial %d: user attributes not stored: %s", ot_trial.number, attr_error)
        if outcome.complete:
            state, values = TrialState.COMPLETE, outcome.values
        else:  # a pruned trial's value is its last intermediate one, which Optuna takes itself
            state, values = (TrialState.PRUNED if outcome.pruned else TrialState.FAIL), None
        try:
            retry_when_locked(lambda: self._ot_study.tell(ot_trial, values, state=state), what)
        except Exception as tell_error:  # never lose the sweep over one bad tell
            self._check_stored(ot_trial, tell_error)
        self._ledger.record(ot_trial.number, outcome, stopped=stopped)

    def fail_open_trials(self) -> None:
        """Store trials Tune never completed (it skips them when the run is interrupted or
        stopped) as FAIL, so that none is left RUNNING in the study."""
        for trial_id in list(self._ot_trials):
            self._store(trial_id, outcome_from_result(None, False), stopped=True)

    def _check_stored(self, ot_trial: optuna.Trial, tell_error: Exception) -> None:
        """Optuna stores the state before sampler hooks run; GridSampler's hook calls
        ``Study.stop``, which raises outside ``optimize`` once the grid is done. That is no loss."""
        stored = self._ot_study._storage.get_trial(ot_trial._trial_id)  # noqa: SLF001
        if not stored.state.is_finished():
            log.error("Could not store trial %d: %s", ot_trial.number, tell_error)
        elif stored.user_attrs.get("fail_reason", "").startswith("Orphaned"):
            log.error(
                "Trial %d finished, but another sweep took it for an orphan and stored it FAIL "
                "(hydra.sweeper.orphan_grace_s too short for this storage?): %s",
                ot_trial.number,
                tell_error,
            )
        else:
            log.debug("Trial %d stored; sampler hook said: %s", ot_trial.number, tell_error)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as output:
            pickle.dump({"study_name": self._study_name}, output)

    def restore(self, checkpoint_path: str) -> None:
        """Nothing to restore: a rerun of the same command continues the study from its storage."""

    def __getstate__(self) -> dict[str, Any]:
        # Ray pickles the search algorithm into its experiment folder; keep the storage (and any
        # password in its URL) out of that pickle.
        state = self.__dict__.copy()
        for key in (
            "_ot_study", "_storage", "_sampler", "_ot_trials", "_ledger", "_sweep_config",
            "_reported_steps", "_started",
        ):  # fmt: skip
            state[key] = None
        return state


def _trial_id_created_by_ask(error: BaseException) -> int | None:
    """The id of the trial ``Study.ask`` had created when ``error`` was raised inside it (read from
    its frame in the traceback: exact, where a search of the storage could take another sweep's
    new trial); None if it failed before creating one."""
    traceback = error.__traceback__
    while traceback is not None:
        frame = traceback.tb_frame
        if frame.f_code is optuna.Study.ask.__code__:
            trial_id = frame.f_locals.get("trial_id")
            return trial_id if isinstance(trial_id, int) else None
        traceback = traceback.tb_next
    return None


def suggest_value(trial: optuna.Trial, name: str, distribution: BaseDistribution) -> Any:
    """Sample one parameter through the trial's public ``suggest_*`` API."""
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(
            name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    if isinstance(distribution, FloatDistribution):
        return trial.suggest_float(
            name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    raise TypeError(f"{name}: unsupported distribution {distribution!r}")


class TrialStartLogger(Callback):
    """Logs a trial when its task starts on a worker, not when it is sampled: a sampled trial
    may wait for a worker, and the progress line counts running trials."""

    def __init__(self, searcher: HydraOptunaSearch) -> None:
        self._searcher = searcher

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._searcher.trial_started(trial.trial_id)


class FailureRateStopper(Stopper):
    """Ends the Tune experiment once failures exceed ``hydra.sweeper.max_failure_rate``."""

    def __init__(self, ledger: SweepLedger) -> None:
        self._ledger = ledger

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self._ledger.failure_rate_exceeded()
