"""The ``ray_optuna`` sweep: command line -> search space -> Ray Tune trials -> study and results."""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import ray
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, _save_config
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method
from omegaconf import DictConfig
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler
from optuna.storages import BaseStorage
from optuna.trial import TrialState
from ray import tune
from ray.tune.schedulers import TrialScheduler

from .compose import SweepConfigComposer
from .errors import SweepConfigError, SweepInterrupted
from .heartbeat import Heartbeat, reclaim_orphans
from .launchers import apply_launcher
from .ledger import SweepLedger, best_value
from .legacy_search_space import legacy_distributions
from .queued import set_aside_unfit_queued
from .ray_instance import skip_garbage_collection_at_exit, start_ray, started_ray_here, stop_ray
from .results import describe_results, write_results
from .samplers import build_sampler, grid_points
from .schedulers import build_scheduler, describe
from .search_space import SearchSpace, parse_search_space
from .searcher import FailureRateStopper, HydraOptunaSearch, SharedPlan, TrialStartLogger
from .settings import SweepSettings
from .storage import (
    create_storage,
    mask_storage_secrets,
    mask_url,
    resolve_storage_url,
    storage_secrets,
)
from .study import check_search_space, existing_trials, grid_points_to_run, trials_to_run
from .trial_runner import PayloadHandle, TrialPayload, trial_trainable

log = logging.getLogger("hannah_ray.sweep")

# Tune's per-trial logger callbacks cost ~0.05 s a trial and duplicate what Hydra's job folder
# holds; experiment checkpoints are only needed for Tune's own restore, which we do not use.
_TUNE_ENVIRONMENT = {
    "TUNE_GLOBAL_CHECKPOINT_S": "60",
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
    "RAY_CHDIR_TO_TRIAL_DIR": "0",
    # One result at a time: a scheduler's stop must reach a trial before its next report.
    "TUNE_RESULT_BUFFER_LENGTH": "1",
    # The old console reporter honours verbose=0; the new one prints its boxes anyway. Our own
    # progress lines say what is running, done, pruned and failed.
    "RAY_AIR_NEW_OUTPUT": "0",
}


@dataclass
class SweepPlan:
    """What a sweep will do, settled before any trial starts."""

    space: SearchSpace
    custom_search_space: Any
    storage: BaseStorage
    storage_label: str
    study_name: str
    sampler: BaseSampler
    scheduler: TrialScheduler
    n_to_run: int
    sweep_dir: str
    stored_best: float | None = None
    # Trials the study held when the sweep planned, other than queued ones (see SharedPlan).
    known_ids: frozenset[int] = frozenset()
    # The trial configs composed while checking them, by structural overrides (compose.py).
    composed: dict[tuple[str, ...], DictConfig] = field(default_factory=dict)


class RayOptunaSweep:
    """Everything the plugin's ``sweep`` does; built in the plugin's ``setup``."""

    def __init__(
        self,
        sweeper_config: Mapping[str, Any],
        *,
        hydra_context: HydraContext,
        task_function: TaskFunction,
        config: DictConfig,
    ) -> None:
        self.settings = SweepSettings.from_config(sweeper_config)
        apply_launcher(self.settings, config.hydra.get("launcher"))
        self.hydra_context = hydra_context
        self.task_function = task_function
        self.config = config

    def run(self, arguments: list[str]) -> list[list[JobReturn]]:
        """Validate everything, run the missing trials, write the results; returns the job returns."""
        plan = self._plan(arguments)
        ledger = SweepLedger(
            self.settings.max_failure_rate,
            plan.n_to_run,
            self.settings.directions,
            plan.stored_best,
        )
        searcher = HydraOptunaSearch(
            search_space=plan.space,
            directions=self.settings.directions,
            study_name=plan.study_name,
            storage=plan.storage,
            sampler=plan.sampler,
            ledger=ledger,
            custom_search_space=plan.custom_search_space,
            sweep_config=self.config,
            trial_timeout_s=self.settings.trial_timeout_s,
            heartbeat_interval_s=self.settings.heartbeat_interval_s,
            storage_outage_s=self.settings.orphan_grace_s,
            shared_plan=self._shared_plan(plan),
        )
        heartbeat = Heartbeat(
            plan.storage, self.settings.heartbeat_interval_s, searcher.open_trial_ids
        )
        told_to_exit = False
        ended_by_error = True
        try:
            if plan.n_to_run > 0:
                with heartbeat:
                    self._run_trials(searcher, ledger, plan)
            ended_by_error = False
        except SystemExit:  # SIGTERM: Ray's handler calls sys.exit
            told_to_exit = True
            raise
        finally:
            searcher.fail_open_trials()
            failed_too_often = ledger.failure_rate_exceeded() and ledger.first_error is not None
            ends_with_an_error = ended_by_error or ledger.stopped_early or failed_too_often
            _write_results(searcher, plan, keep_error_quiet=ends_with_an_error)
            if told_to_exit:
                log.error("Told to exit (e.g. SIGTERM). %s.", self._stopped_message(ledger, plan))
        if failed_too_often:
            log.error(
                "%d trial(s) failed, more than hydra.sweeper.max_failure_rate=%s of the %d this "
                "run plans: stopping the sweep.",
                ledger.failed, self.settings.max_failure_rate, plan.n_to_run,
            )  # fmt: skip
            raise ledger.first_error
        if ledger.stopped_early:
            raise SweepInterrupted(f"{self._stopped_message(ledger, plan)}.")
        return [ledger.job_returns]

    def _stopped_message(self, ledger: SweepLedger, plan: SweepPlan) -> str:
        where = (
            f"are stored in {plan.storage_label}; rerun the same command to continue"
            if self.settings.storage is not None
            else f"are listed in {plan.sweep_dir} (the study was in memory, so a rerun starts "
            "afresh; set hydra.sweeper.storage to make sweeps resumable)"
        )
        return (
            f"The sweep stopped after {ledger.finished} of {plan.n_to_run} trials. "
            f"Finished trials {where}"
        )

    def _plan(self, arguments: list[str]) -> SweepPlan:
        """Everything checked before any trial: search space, trial config, storage, study, sampler."""
        settings = self.settings
        legacy = legacy_distributions(settings.legacy_search_space or {})
        space = parse_search_space(
            arguments, settings.params, self.hydra_context.config_loader, legacy=legacy
        )
        custom = _load_custom_search_space(settings.custom_search_space)
        custom_keys, composed = self._check_trial_config(space, custom)
        storage_url = resolve_storage_url(settings.storage, self.config.hydra.runtime.cwd)
        storage_label = mask_url(storage_url)
        study_name = settings.study_name or str(self.config.hydra.job.name)
        storage = create_storage(storage_url)
        stored = existing_trials(storage, study_name, settings.directions, storage_label)
        check_search_space(stored, space.distributions, study_name, storage_label)
        sampler = build_sampler(
            settings.sampler, space.distributions, seed_offset=len(stored), custom_keys=custom_keys
        )
        scheduler = build_scheduler(settings.scheduler, settings.directions)
        grid = grid_points(sampler)
        if stored:  # only now that the command is known to fit the study: it changes the study
            study = optuna.load_study(study_name=study_name, storage=storage)
            # A grid rerun queues each point without a finished trial itself (_plan_grid).
            requeue = settings.requeue_orphans and grid is None
            reclaim_orphans(study, settings.orphan_grace_s, requeue, space.distributions)
            set_aside_unfit_queued(study, space.distributions, grid, custom_keys)
        n_to_run = trials_to_run(settings.n_trials, settings.add_trials, stored)
        if n_to_run == 0 and settings.n_trials > 0:
            log.warning(
                "The study '%s' already holds hydra.sweeper.n_trials=%d finished trials: none to "
                "run. To run more: raise n_trials, or set hydra.sweeper.add_trials=true to run "
                "n_trials more.",
                study_name, settings.n_trials,
            )  # fmt: skip
        if grid is not None:
            n_to_run = _plan_grid(
                grid, storage, study_name, n_to_run, resumed=bool(stored), optional=custom_keys
            )
        sweep_dir = os.path.abspath(str(self.config.hydra.sweep.dir))
        os.makedirs(sweep_dir, exist_ok=True)
        saved_config = copy.deepcopy(self.config)
        mask_storage_secrets(saved_config, storage_secrets(self.config))
        _save_config(saved_config, "multirun.yaml", Path(sweep_dir))
        log.info(
            "ray_optuna: study '%s' in %s, %d trial(s) to run, sampler %s, scheduler %s",
            study_name, storage_label, n_to_run, type(sampler).__name__, describe(scheduler),
        )  # fmt: skip
        for key, dist in space.distributions.items():
            log.info("  %s: %s", key, dist)
        log.info(
            "Sweep folder: %s  (TensorBoard logs the trials write into their folders: "
            "tensorboard --logdir %s)",
            sweep_dir, sweep_dir,
        )  # fmt: skip
        stored_best = None
        if len(settings.directions) == 1:
            values = [t.value for t in stored if t.state == TrialState.COMPLETE]
            stored_best = best_value(values, settings.directions[0])
        return SweepPlan(
            space, custom, storage, storage_label, study_name, sampler, scheduler, n_to_run,
            sweep_dir, stored_best, _known_ids(stored), composed,
        )  # fmt: skip

    def _shared_plan(self, plan: SweepPlan) -> SharedPlan | None:
        """What the study should hold when other sweeps may run trials of it at the same time
        (``n_trials`` is the study's total); None where none can (in memory) or each sweep runs
        its own ``n_trials`` (``add_trials``)."""
        if self.settings.add_trials or isinstance(plan.storage, optuna.storages.InMemoryStorage):
            return None
        return SharedPlan(plan.n_to_run, plan.known_ids, self.settings.orphan_grace_s)

    def _run_trials(
        self, searcher: HydraOptunaSearch, ledger: SweepLedger, plan: SweepPlan
    ) -> None:
        os.environ.update(_TUNE_ENVIRONMENT)
        # Only the result files asked for by hydra.sweeper.tune_logs (see _tune_loggers).
        os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
        started_ray = not ray.is_initialized()
        if started_ray:
            start_ray(self.settings.ray_init, import_turns=self.settings.import_turns)
        try:
            self._tune(searcher, ledger, plan)
        finally:
            if started_ray:
                # Leave Ray as the sweep found it. Ray's exit hook would do this too, after first
                # sleeping 0.5 s for log lines that the trials' job logs already hold.
                stop_ray()
            skip_garbage_collection_at_exit()

    def _tune(self, searcher: HydraOptunaSearch, ledger: SweepLedger, plan: SweepPlan) -> None:
        self._check_a_node_fits_a_trial()
        payload = TrialPayload(
            hydra_context=self.hydra_context,
            task_function=self.task_function,
            config=self.config,
            singleton_state=Singleton.get_state(),
            n_objectives=len(self.settings.directions),
            metric=self.settings.metric,
            trial_timeout_s=self.settings.trial_timeout_s,
            storage_secrets=storage_secrets(self.config),
            composed=plan.composed,
        )
        resources = {"cpu": self.settings.cpu_per_trial, "gpu": self.settings.gpu_per_trial}
        handle = PayloadHandle(ray.put(payload))
        trainable = tune.with_resources(trial_trainable(handle), resources)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=plan.scheduler,
                num_samples=plan.n_to_run,
                max_concurrent_trials=self._concurrency(),
                reuse_actors=self.settings.reuse_actors,
                trial_name_creator=_trial_name,
                trial_dirname_creator=_trial_name,
            ),
            run_config=tune.RunConfig(
                name="ray_tune",
                storage_path=plan.sweep_dir,
                verbose=0,
                stop=FailureRateStopper(ledger),
                failure_config=tune.FailureConfig(max_failures=self.settings.max_retries),
                callbacks=[TrialStartLogger(searcher), *_tune_loggers(self.settings.tune_logs)],
            ),
        )
        # Tune's result table reads the per-trial logger files we switched off; the study has it all.
        logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
        tune_logger = logging.getLogger("ray.tune.tune")
        tune_logger.addFilter(_drop_tune_restore_hint)
        try:
            tuner.fit()
        finally:
            tune_logger.removeFilter(_drop_tune_restore_hint)

    def _concurrency(self) -> int | None:
        """``n_jobs``, or as many trials as the cluster's nodes hold at once; without a limit
        Tune would ask the sampler for trials that then wait for resources, blind to results."""
        if self.settings.n_jobs is not None:
            return self.settings.n_jobs
        needs = self._trial_needs()
        if not needs:
            return None
        fits = trials_that_fit(ray.nodes(), needs)
        if started_ray_here():
            return max(1, fits)
        log.info(
            "hydra.sweeper.n_jobs=null: at most %d trial(s) at once, as the cluster's nodes "
            "hold now; on a cluster that grows (an autoscaler), set hydra.sweeper.n_jobs.",
            fits,
        )
        # No node fits a trial yet: leave the limit to Tune, whose pending trials show an
        # autoscaler the demand (a limit of 1 would hold the sweep at one trial for good).
        return fits or None

    def _trial_needs(self) -> dict[str, float]:
        """The Ray resources one trial holds, by Ray's names (those above zero)."""
        needs = {"CPU": self.settings.cpu_per_trial, "GPU": self.settings.gpu_per_trial}
        return {name: need for name, need in needs.items() if need > 0}

    def _check_a_node_fits_a_trial(self) -> None:
        """A trial no node can hold would wait forever: fail now, naming the key. On a cluster this
        process joined (not one it started), an autoscaler may add such a node: warn only."""
        listed = ray.nodes()
        if trials_that_fit(listed, self._trial_needs()) > 0:
            return
        needs = {"CPU": self.settings.cpu_per_trial, "GPU": self.settings.gpu_per_trial}
        nodes = [node["Resources"] for node in listed if node.get("Alive")]
        largest = {r: max((node.get(r, 0.0) for node in nodes), default=0.0) for r in needs}
        message = (
            f"hydra.sweeper.resources_per_trial: cpu={needs['CPU']:g}, gpu={needs['GPU']:g}, but "
            f"no Ray node has that much (most per node: cpu={largest['CPU']:g}, "
            f"gpu={largest['GPU']:g}). Allowed: at most what one node has; more CPUs for a "
            "local instance: hydra.sweeper.ray.num_cpus=..."
        )
        if not started_ray_here():
            log.warning("%s Trials wait until the cluster adds such a node.", message)
            return
        raise SweepConfigError(message)

    def _check_trial_config(
        self, space: SearchSpace, custom_search_space: Any
    ) -> tuple[set[str] | None, dict[tuple[str, ...], DictConfig]]:
        """Compose trial configs now, so a bad key or choice fails before any trial runs: one with
        every parameter at its first choice or low bound, then each other choice and each high
        bound in turn; each with what ``custom_search_space`` adds to it on a throwaway trial.
        Returns the keys ``custom_search_space`` added (None: there is no such function) and the
        compositions, for the trials to start from."""
        base = {
            key: dist.choices[0] if isinstance(dist, CategoricalDistribution) else dist.low
            for key, dist in space.distributions.items()
        }
        composer = SweepConfigComposer(self.hydra_context.config_loader, self.config)
        custom_keys: set[str] | None = None if custom_search_space is None else set()
        for sample in _samples_to_compose(space.distributions, base):
            if custom_keys is not None:  # what the function adds may depend on the sample
                sample = self._try_custom_search_space(space, custom_search_space, sample)
                custom_keys |= set(sample) - set(space.distributions)
            overrides = space.trial_overrides(sample)
            try:
                composer.compose(overrides)
            except Exception as error:
                added = sorted(set(sample) - set(space.distributions))
                hint = (
                    f" ({added} came from hydra.sweeper.custom_search_space="
                    f"{self.settings.custom_search_space}: a key the config lacks is named with "
                    f"a leading + there too, e.g. trial.suggest_float('+{added[0].lstrip('+~')}', "
                    "...))"
                    if added
                    else ""
                )
                raise SweepConfigError(
                    f"The trial config does not compose with the overrides {overrides}: "
                    f"{error}{hint}"
                ) from error
        return custom_keys, composer.bases()

    def _try_custom_search_space(
        self, space: SearchSpace, custom_search_space: Any, sample: dict[str, Any]
    ) -> dict[str, Any]:
        """Run ``custom_search_space`` on a throwaway trial; returns that trial's parameters."""
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "study created" line
        try:
            study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        finally:
            optuna.logging.set_verbosity(verbosity)
        study.enqueue_trial(sample)
        trial = study.ask(fixed_distributions=dict(space.distributions))
        try:
            custom_search_space(self.config, trial)
        except Exception as error:
            raise SweepConfigError(
                f"hydra.sweeper.custom_search_space={self.settings.custom_search_space!r} "
                f"failed on a test trial with {sample}: {type(error).__name__}: {error}"
            ) from error
        return dict(trial.params)


def _known_ids(stored: list[optuna.trial.FrozenTrial]) -> frozenset[int]:
    """Storage ids of the stored trials the plan counts: all but the queued (WAITING) ones, which
    this sweep or another runs."""
    return frozenset(t._trial_id for t in stored if t.state != TrialState.WAITING)  # noqa: SLF001


def trials_that_fit(nodes: list[dict[str, Any]], needs: Mapping[str, float]) -> int:
    """How many trials needing ``needs`` the live ``nodes`` (as ``ray.nodes()`` lists them) hold
    at once: a trial runs on one node, so per node, not from the cluster's totals."""
    return sum(
        int(min(node["Resources"].get(name, 0.0) / need for name, need in needs.items()) + 1e-9)
        for node in nodes
        if node.get("Alive")
    )


def _samples_to_compose(
    distributions: Mapping[str, BaseDistribution], base: dict[str, Any]
) -> list[dict[str, Any]]:
    """``base``, then ``base`` with one key changed to each of its other choices or its high
    bound: each config-group option and value type meets the config once (the composer composes
    a config-group choice with Hydra, a plain value by applying it to a cached copy)."""
    samples = [base]
    for key, dist in distributions.items():
        others = dist.choices[1:] if isinstance(dist, CategoricalDistribution) else [dist.high]
        samples += [{**base, key: value} for value in others if value != base[key]]
    return samples


def _plan_grid(
    grid: list[dict[str, Any]],
    storage: BaseStorage,
    study_name: str,
    n_to_run: int,
    *,
    resumed: bool,
    optional: set[str] | None = None,
) -> int:
    """Run the grid points no finished trial holds, once each: on a rerun they are queued in the
    study, since Optuna's GridSampler takes a FAILed point as done. ``optional``: the keys a
    custom search space may leave out of a trial."""
    if not resumed:
        if n_to_run > len(grid):
            log.info(
                "The grid holds %d points: running %d trials, not %d.",
                len(grid),
                len(grid),
                n_to_run,
            )
        return min(n_to_run, len(grid))
    study = optuna.load_study(study_name=study_name, storage=storage)
    missing, to_queue = grid_points_to_run(
        grid, study.get_trials(deepcopy=False), optional or set()
    )
    if not missing and n_to_run > 0:
        log.warning("Each of the grid's %d points has a finished trial: none to run.", len(grid))
        return 0
    if n_to_run > len(missing):
        log.info(
            "%d of the grid's %d points have no finished trial yet: running %d trials, not %d.",
            len(missing), len(grid), len(missing), n_to_run,
        )  # fmt: skip
        n_to_run = len(missing)
    for point in to_queue[: max(0, n_to_run - (len(missing) - len(to_queue)))]:
        study.enqueue_trial(point)
    return n_to_run


def _write_results(searcher: HydraOptunaSearch, plan: SweepPlan, keep_error_quiet: bool) -> None:
    """The results files and the closing "Best: ..." line. Where the sweep is already ending with
    an error (the task's, an interruption), failing to write them (the storage down) is logged
    instead, so that the sweep's own error is the one that ends it."""
    try:
        summary = write_results(searcher.study, plan.sweep_dir, plan.storage_label)
    except Exception as error:
        if not keep_error_quiet:
            raise
        log.error(
            "Could not write the results (optimization_results.yaml, trials.csv) to %s: %s. "
            "The study in %s keeps every trial it stored.",
            plan.sweep_dir, error, plan.storage_label,
        )  # fmt: skip
        return
    log.info("%s. Results: %s", describe_results(summary), plan.sweep_dir)


def _drop_tune_restore_hint(record: logging.LogRecord) -> bool:
    """Leave out Tune's "Resume experiment with: Tuner.restore(...)" after Ctrl-C: a sweep
    continues by running the same command again (the study holds its state), as the sweep says."""
    return "Tuner.restore(" not in record.getMessage()


def _trial_name(trial: Any) -> str:
    return f"job_{trial.config.get('number', 'x')}_{trial.trial_id}"


def _load_custom_search_space(path: str | None) -> Any:
    if not path:
        return None
    try:
        return get_method(path)
    except Exception as error:
        raise SweepConfigError(
            f"hydra.sweeper.custom_search_space={path!r} cannot be imported: {error}. "
            "Allowed: a dotted path to fn(cfg, optuna_trial)."
        ) from error


def _tune_loggers(names: tuple[str, ...]) -> list[tune.Callback]:
    """Ray Tune's per-trial result writers named in ``hydra.sweeper.tune_logs``."""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback

    writers = {
        "json": JsonLoggerCallback,
        "csv": CSVLoggerCallback,
        "tensorboard": TBXLoggerCallback,
    }
    return [writers[name]() for name in names]
