"""Ray Tune's OptunaSearch on a persisted study, suggesting Hydra overrides."""

from __future__ import annotations

import logging
import math
import os
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.exceptions import UpdateFinishedTrialError
from optuna.samplers import BaseSampler
from optuna.storages import BaseStorage
from optuna.trial import TrialState
from ray.tune import Callback
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch
from ray.tune.stopper import Stopper

from .heartbeat import is_live, stamp
from .ledger import SweepLedger, outcome_from_result, pruned_outcome, trial_user_attrs
from .reporting import EPOCH, FINAL, JOB_DIR, OBJECTIVE
from .search_space import SearchSpace
from .storage import is_locked, retry_when_locked
from .trial_runner import JobOutcome, planned_job_dir

log = logging.getLogger(__name__)

CustomSearchSpace = Callable[[Any, optuna.Trial], None]
JOB_DIR_CLOCK_SLACK_S = 30.0
# While the storage is down (or other sweeps run the rest of the study), how long Tune's next
# requests for a trial are answered with none before the storage is asked again.
STORAGE_RETRY_S = 1.0


@dataclass
class _Attempt:
    """What the searcher has seen of one run of a trial; a Tune retry (``max_retries``, after
    its worker died) starts a new one, and the dead run's steps become stale."""

    started_s: float  # time.monotonic() at sampling, then at each start on a worker
    steps: dict[int, float] = field(default_factory=dict)  # stored by this run: step -> value
    held: tuple[int, float] | None = None  # (step, value) of a validation inside an epoch
    job_dir: str | None = None  # from the run's reports
    stale_steps: set[int] = field(default_factory=set)  # stored by earlier runs
    sampled_at: float = field(default_factory=time.time)  # wall clock, for folder times
    on_worker: bool = False  # its task has started on a worker

    def retry(self) -> _Attempt:
        return _Attempt(
            time.monotonic(),
            stale_steps=self.stale_steps | set(self.steps),
            sampled_at=self.sampled_at,
            on_worker=True,
        )


@dataclass(frozen=True)
class SharedPlan:
    """A sweep's share of a study that other sweeps may run trials of at the same time: it starts
    trials while its own and the others' new ones number fewer than ``n_to_run``. New: not among
    ``known_ids``, the trials that were finished, failed or running when it planned (its plan
    already counts those)."""

    n_to_run: int
    known_ids: frozenset[int]
    grace_s: float  # hydra.sweeper.orphan_grace_s: when another sweep's trial counts as alive


@dataclass
class _Untold:
    """A finished trial whose end the study does not have yet (the storage failed, or the sweep
    was told to exit while storing it): told again until it takes."""

    ot_trial: optuna.Trial
    outcome: JobOutcome
    user_attrs: dict[str, Any]


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
        storage_outage_s: float = 120.0,
        shared_plan: SharedPlan | None = None,
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
        self._attempts: dict[str, _Attempt] = {}
        self._untold: dict[str, _Untold] = {}
        self._trial_timeout_s = trial_timeout_s
        self._heartbeat_interval_s = heartbeat_interval_s
        # A storage outage: when it began, when to try again, and its limit (see _storage_is_down).
        self._storage_outage_s = storage_outage_s
        self._storage_down_since: float | None = None
        self._next_ask_at = 0.0
        # Trials whose sampling failed and whose FAIL the storage did not take: id -> reason.
        self._unstored_failures: dict[int, str] = {}
        self._shared_plan = shared_plan
        self._own_ids: set[int] = set()  # storage ids of the trials this sweep created
        self._n_suggested = 0
        self._waiting_for_others = False

    @property
    def study(self) -> optuna.Study:
        return self._ot_study

    def set_search_properties(self, metric: Any, mode: Any, config: dict, **spec: Any) -> bool:
        return False  # the space and the study are fixed at construction

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if trial_id not in self._ot_trials:
            if time.monotonic() < self._next_ask_at:
                return None  # the storage is down: Tune asks again at its next step
            try:
                full = self._shared_study_is_full()
                if full is not None:
                    if full == "wait":
                        self._next_ask_at = time.monotonic() + STORAGE_RETRY_S
                        return None
                    return full
                ot_trial = self._ask()
            except Exception as error:
                if self._storage_is_down(error):
                    return None
                raise
            self._own_ids.add(ot_trial._trial_id)  # noqa: SLF001
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
            except BaseException as error:  # the sweep stops (SIGTERM too): not left RUNNING
                self._store_sampling_failure(ot_trial._trial_id, error)  # noqa: SLF001
                if isinstance(error, Exception) and self._storage_is_down(error):
                    return None
                raise
            self._storage_down_since = None
            self._n_suggested += 1
            self._ot_trials[trial_id] = ot_trial
            self._attempts[trial_id] = _Attempt(time.monotonic())
        ot_trial = self._ot_trials[trial_id]
        return {
            "number": ot_trial.number,
            "overrides": self._search_space.trial_overrides(ot_trial.params),
        }

    def _shared_study_is_full(self) -> str | None:
        """Whether other sweeps running the same study have taken this sweep's remaining share:
        ``Searcher.FINISHED`` once its trials and the others' new finished ones reach
        ``n_to_run``; ``"wait"`` while the others' running ones (in a live sweep) make up the rest
        (one may still fail); None to start a trial. Two sweeps asking at the same moment may
        still start one trial each."""
        plan = self._shared_plan
        if plan is None:
            return None
        now = time.time()
        finished = running = 0
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        for trial in self._ot_study.get_trials(deepcopy=False, states=states):
            storage_id = trial._trial_id  # noqa: SLF001
            if storage_id in self._own_ids or storage_id in plan.known_ids:
                continue
            if trial.state != TrialState.RUNNING:
                finished += 1
            elif is_live(trial, plan.grace_s, now):
                running += 1
        if self._n_suggested + finished + running < plan.n_to_run:
            self._waiting_for_others = False
            return None
        if self._n_suggested + finished < plan.n_to_run:
            if not self._waiting_for_others:
                self._waiting_for_others = True
                log.info(
                    "The study's other sweeps are running the rest of hydra.sweeper.n_trials: "
                    "waiting for them to end (a trial of theirs that fails is run here)."
                )
            return "wait"
        log.info(
            "The study holds hydra.sweeper.n_trials trials with those other sweeps on it ran: "
            "this sweep ends after %d of the %d it planned.",
            self._n_suggested,
            plan.n_to_run,
        )
        self._ledger.planned_trials = self._n_suggested  # a full study is no interruption
        return Searcher.FINISHED

    def _storage_is_down(self, error: Exception) -> bool:
        """Whether starting a trial failed because the storage is down (a read of the study fails
        too; otherwise the error is the sampler's). Then no trial starts until the storage is
        back, the running ones go on, and ends are stored later (see ``_store``); an outage
        longer than ``storage_outage_s`` (as long as other sweeps wait before they take this
        one's trials for orphans) stops the sweep with the storage's error."""
        storage = self._ot_study._storage  # noqa: SLF001
        try:
            storage.get_study_id_from_name(self._study_name)
            return False
        except Exception as read_error:  # noqa: BLE001 - whatever a storage raises when down
            log.debug("The storage does not answer: %s", read_error)
        now = time.monotonic()
        if self._storage_down_since is None:
            self._storage_down_since = now
            log.error(
                "Could not start a trial: %s. The storage does not answer: the running trials go "
                "on, and new ones start once it is back (the sweep stops if it is not back "
                "within %g s, hydra.sweeper.orphan_grace_s).",
                error,
                self._storage_outage_s,
            )
        elif now - self._storage_down_since > self._storage_outage_s:
            log.error("The storage has not answered for %g s: stopping.", self._storage_outage_s)
            return False
        self._next_ask_at = now + STORAGE_RETRY_S
        return True

    def _ask(self) -> optuna.Trial:
        """A new trial; a sampler that fails inside ``ask`` (after the trial was created) must not
        leave it RUNNING: it is stored FAIL with the reason, and the error stops the sweep (a
        locked database asks again, for a new trial)."""

        def ask_once() -> optuna.Trial:
            try:
                return self._ot_study.ask()
            except Exception as error:
                trial_id = _trial_id_created_by_ask(error)
                if trial_id is not None:
                    self._own_ids.add(trial_id)
                    queued = self._queued(trial_id) if is_locked(error) else None
                    self._store_sampling_failure(trial_id, error)
                    if queued:  # a queued point (a grid rerun's) is asked for again, not lost
                        retry_when_locked(
                            lambda: self._ot_study.enqueue_trial(*queued), "Queueing a point again"
                        )
                raise

        return retry_when_locked(ask_once, "Starting a trial")

    def _queued(self, trial_id: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The parameters and user attributes (``requeued_from_trial``...) ``enqueue_trial`` had
        queued for the trial ``ask`` took, if it took a queued one."""
        storage = self._ot_study._storage  # noqa: SLF001
        try:
            trial = retry_when_locked(lambda: storage.get_trial(trial_id), "Reading a trial")
        except Exception:
            return None
        params = trial.system_attrs.get("fixed_params")
        return (params, dict(trial.user_attrs)) if params else None

    def _store_sampling_failure(self, trial_id: int, error: BaseException) -> None:
        """Store a trial whose sampling failed as FAIL, with the reason."""
        self._store_failed(trial_id, f"Sampling failed: {error!r}")

    def _store_failed(self, trial_id: int, reason: str) -> None:
        """Store a trial that never ran as FAIL with ``reason``; where the storage fails, it is
        stored again when the next trial ends, and at the sweep's end."""
        storage = self._ot_study._storage  # noqa: SLF001
        what = "Storing a trial whose sampling failed"
        try:
            retry_when_locked(
                lambda: storage.set_trial_user_attr(trial_id, "fail_reason", reason), what
            )
            retry_when_locked(
                lambda: storage.set_trial_state_values(trial_id, TrialState.FAIL), what
            )
        except UpdateFinishedTrialError:  # stored before (a lost reply), or reclaimed by another
            self._unstored_failures.pop(trial_id, None)
        except Exception as store_error:  # the sampler's error matters more
            log.error("Could not store the trial as FAIL (trying again later): %s", store_error)
            self._unstored_failures[trial_id] = reason
        else:
            self._unstored_failures.pop(trial_id, None)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Store an intermediate report in the study (Optuna supports them for one objective)."""
        attempt = self._attempts.get(trial_id)
        if attempt is None:
            return
        attempt.job_dir = result.get(JOB_DIR) or attempt.job_dir
        if result.get(FINAL):
            # The last report is marked done, so Tune hands it to on_trial_complete alone; should
            # one come here first, store it now: the sweep may be interrupted before the other.
            self._store(trial_id, outcome_from_result(result, False))
            return
        if not self._single_objective or OBJECTIVE not in result:
            return
        epoch = float(result_epoch(result))
        step, value = math.ceil(epoch), float(result[OBJECTIVE])
        # A validation inside an epoch (epoch 1.4 is in the 2nd): the study keeps the epoch's last
        # one at the epoch's step, unless the epoch ends with a validation of its own.
        held, attempt.held = attempt.held, None
        if held is not None and held[0] != step:
            self._report_step(trial_id, *held)
        if epoch.is_integer():
            self._report_step(trial_id, step, value)
        else:
            attempt.held = (step, value)

    def _report_step(self, trial_id: str, step: int, value: float) -> None:
        """Store one intermediate value; the last one reported for an epoch wins. Through the
        storage, not ``Trial.report``: that ignores a step already stored, and a retried trial's
        value replaces its dead run's."""
        ot_trial = self._ot_trials[trial_id]
        steps = self._attempts[trial_id].steps
        if step in steps and _same(steps[step], value):
            return  # Tune hands the result that stopped a trial to on_trial_complete as well
        if step < 0:
            log.warning("Trial %d: epoch %d not stored (steps start at 0).", ot_trial.number, step)
            return
        steps[step] = value
        storage, storage_id = self._ot_study._storage, ot_trial._trial_id  # noqa: SLF001
        try:
            retry_when_locked(
                lambda: storage.set_trial_intermediate_value(storage_id, step, value),
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
            try:
                self.on_trial_result(trial_id, result)
            finally:  # an interruption while its value is stored (SIGTERM) keeps the end too
                self._store(trial_id, pruned_outcome(result))
            return
        outcome = outcome_from_result(result, error)
        attempt = self._attempts[trial_id]
        elapsed = time.monotonic() - attempt.started_s
        timed_out = self._trial_timeout_s and elapsed >= self._trial_timeout_s
        if error and attempt.on_worker and timed_out:
            outcome.fail_reason = (
                f"Exceeded hydra.sweeper.trial_timeout_s={self._trial_timeout_s:g} "
                f"(ran {elapsed:.0f} s): its worker was stopped."
            )
            outcome.error = TimeoutError(outcome.fail_reason)
        self._store(trial_id, outcome)

    def trial_started(self, trial_id: str) -> None:
        """Tune started the trial's task on a worker (see ``TrialStartLogger``): at first, and
        again for each retry after its worker died (Tune tells the searcher nothing else)."""
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None:
            # trial_timeout_s counts from here, per attempt, not from sampling: a trial may wait
            # for resources or a worker first. A retry reports its epochs from the start again.
            self._attempts[trial_id] = self._attempts[trial_id].retry()
            self._ledger.started(ot_trial.number, ot_trial.params)

    def open_trial_ids(self) -> list[int]:
        """Storage ids of this sweep's trials that are not stored as finished yet."""
        # Called from the heartbeat thread: copy each dict in one step (atomic under the GIL).
        running, untold = list(self._ot_trials.values()), list(self._untold.values())
        open_trials = [*running, *(u.ot_trial for u in untold)]
        unstored = list(self._unstored_failures)
        return list({*(t._trial_id for t in open_trials), *unstored})  # noqa: SLF001

    def _store(self, trial_id: str, outcome: JobOutcome, stopped: bool = False) -> None:
        """Tell the study how the trial ended, with its user attributes. Where the storage
        fails, the trial stays open (the heartbeat keeps it from being taken for an orphan) and
        is told again when the next trial ends, and at the sweep's end."""
        attempt = self._attempts[trial_id]
        ot_trial = self._ot_trials[trial_id]
        if not outcome.overrides:
            outcome.overrides = self._search_space.trial_overrides(ot_trial.params)
        outcome.job_dir = (
            outcome.job_dir
            or attempt.job_dir
            or self._existing_job_dir(ot_trial.number, trial_id, attempt.sampled_at)
        )
        # Optuna cannot delete a step: the attributes say which ones a dead run of the trial left.
        held_step = {attempt.held[0]} if attempt.held is not None else set()
        stale = sorted(attempt.stale_steps - set(attempt.steps) - held_step)
        # From here on the outcome is kept until the study has it; an interruption (SIGTERM)
        # while it or an earlier trial's end is stored leaves it for fail_open_trials to tell,
        # not to store as "stopped".
        self._untold[trial_id] = _Untold(
            ot_trial, outcome, trial_user_attrs(outcome, trial_id, stale)
        )
        if attempt.held is not None:  # only a single-objective trial holds one
            self._report_step(trial_id, *attempt.held)
        self._tell_untold()  # earlier ends the storage did not take, then this one
        self._ledger.record(ot_trial.number, outcome, stopped=stopped)

    def _tell_untold(self) -> None:
        """Tell the study the ends it does not have yet, and the FAIL of trials whose sampling
        failed while the storage was down."""
        for storage_id, reason in list(self._unstored_failures.items()):
            self._store_failed(storage_id, reason)
        for trial_id in list(self._untold):
            untold = self._untold.get(trial_id)
            if untold is None:
                continue
            self._completed_trials.add(trial_id)  # held by _untold alone from here on
            self._ot_trials.pop(trial_id, None)
            self._attempts.pop(trial_id, None)
            if self._told(untold):
                del self._untold[trial_id]

    def _told(self, untold: _Untold) -> bool:
        """Store the trial's user attributes and end; True once the study has its end."""
        ot_trial, what = untold.ot_trial, f"Storing trial {untold.ot_trial.number}"
        for key, value in untold.user_attrs.items():
            try:  # one the storage refuses (too long for a MySQL TEXT...) costs no other
                retry_when_locked(lambda k=key, v=value: ot_trial.set_user_attr(k, v), what)
            except Exception as attr_error:  # the state matters more: tell it anyway
                log.error(
                    "Trial %d: user attribute %r not stored: %s", ot_trial.number, key, attr_error
                )
        try:
            retry_when_locked(lambda: self._tell(ot_trial, untold.outcome), what)
        except Exception as tell_error:  # never lose the sweep over one bad tell
            return self._check_stored(ot_trial, tell_error)
        return True

    def _tell(self, ot_trial: optuna.Trial, outcome: JobOutcome) -> None:
        if outcome.complete:
            self._ot_study.tell(ot_trial, outcome.values, state=TrialState.COMPLETE)
        elif outcome.pruned:
            # The value of the report that stopped it. Study.tell would take the highest step's:
            # a dead run's that got further, or a later epoch than the one that stopped it.
            tell_pruned(self._ot_study, ot_trial, (outcome.values or [math.nan])[0])
        else:
            self._ot_study.tell(ot_trial, state=TrialState.FAIL)

    def _existing_job_dir(self, number: int, trial_id: str, since: float) -> str | None:
        """The trial's job folder where it reported none (its worker died or hung first, or it
        was stopped): the planned one, if the job got as far as writing its ``.hydra`` files
        there (not an earlier sweep's folder of the same number)."""
        job_dir = planned_job_dir(self._sweep_config, number, trial_id)
        if job_dir is None or not os.path.isdir(job_dir):
            return None
        # Slack for clocks that differ between the driver and the node that wrote the folder.
        return job_dir if _last_written(job_dir) >= since - JOB_DIR_CLOCK_SLACK_S else None

    def fail_open_trials(self) -> None:
        """Tell the study the ends it does not have yet, and store trials Tune never completed
        (it skips them when the run is interrupted or stopped) as FAIL, so that none is left
        RUNNING in the study (unless the storage keeps failing: those are logged)."""
        self._tell_untold()
        for trial_id in list(self._ot_trials):
            self._store(trial_id, outcome_from_result(None, False), stopped=True)
        for untold in self._untold.values():
            log.error(
                "Trial %d ended %s, but the study could not store it: it stays RUNNING there "
                "until a rerun takes it for an orphan.",
                untold.ot_trial.number,
                "COMPLETE" if untold.outcome.complete else "PRUNED" if untold.outcome.pruned
                else "FAIL",
            )  # fmt: skip
        for storage_id in self._unstored_failures:
            log.error(
                "A trial (storage id %d) whose sampling failed could not be stored FAIL: it stays "
                "RUNNING until a rerun takes it for an orphan.",
                storage_id,
            )

    def _check_stored(self, ot_trial: optuna.Trial, tell_error: Exception) -> bool:
        """Whether the study has the trial's end although telling it failed. Optuna stores the
        state before sampler hooks run; GridSampler's hook calls ``Study.stop``, which raises
        outside ``optimize`` once the grid is done. That is no loss."""
        try:
            stored = self._ot_study._storage.get_trial(ot_trial._trial_id)  # noqa: SLF001
        except Exception as read_error:  # the storage is down: tell it again later
            log.error(
                "Could not store trial %d (%s), nor read it back (%s): trying again when the "
                "next trial ends.",
                ot_trial.number, tell_error, read_error,
            )  # fmt: skip
            return False
        if not stored.state.is_finished():
            log.error(
                "Could not store trial %d: %s; trying again when the next trial ends.",
                ot_trial.number,
                tell_error,
            )
            return False
        if str(stored.user_attrs.get("fail_reason") or "").startswith("Orphaned"):
            log.error(
                "Trial %d finished, but another sweep took it for an orphan and stored it FAIL "
                "(hydra.sweeper.orphan_grace_s too short for this storage?): %s",
                ot_trial.number,
                tell_error,
            )
        else:
            log.debug("Trial %d stored; sampler hook said: %s", ot_trial.number, tell_error)
        return True

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
            "_attempts",
        ):  # fmt: skip
            state[key] = None
        return state


def _last_written(folder: str) -> float:
    """When a job last wrote into ``folder``: the newest time of it, its files and folders (a job
    that starts writes its ``.hydra`` files, whatever ``hydra.output_subdir`` names them, and its
    log), one level deep."""
    times = [0.0]
    for path in (folder, *_entries(folder)):
        try:  # a file may go while we look: it just does not count
            times.append(os.path.getmtime(path))
            if path != folder and os.path.isdir(path):
                times += [os.path.getmtime(inner) for inner in _entries(path)]
        except OSError:
            continue
    return max(times)


def _entries(folder: str) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            return [entry.path for entry in entries]
    except OSError:
        return []


def result_epoch(result: dict) -> float:
    """The epoch of a Tune result: the one the task reported (0 included), else Tune's count."""
    epoch = result.get(EPOCH)
    return result.get("training_iteration", 0) if epoch is None else epoch


def tell_pruned(study: optuna.Study, ot_trial: optuna.Trial, value: float) -> None:
    """Store the trial PRUNED with ``value``, the report that stopped it (``Study.tell`` would
    take the highest step's), doing what ``tell`` does for a pruned trial: the sampler's hook,
    then the state."""
    storage = study._storage  # noqa: SLF001
    frozen = storage.get_trial(ot_trial._trial_id)  # noqa: SLF001
    if frozen.state != TrialState.RUNNING:
        raise ValueError(f"Cannot tell a {frozen.state.name} trial.")
    values = None if math.isnan(value) else [value]  # as tell: a NaN trial has no value
    try:
        study.sampler.after_trial(study, frozen, TrialState.PRUNED, values)
    finally:
        storage.set_trial_state_values(ot_trial._trial_id, TrialState.PRUNED, values)  # noqa: SLF001


def _same(stored: float, value: float) -> bool:
    return stored == value or (math.isnan(stored) and math.isnan(value))


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
