"""One Ray Tune trial = one full Hydra job, run like Hydra's own launchers do (``run_job``).

This runs in a Ray worker. The job gets its own output folder (``hydra.sweep.dir/hydra.sweep.subdir``)
with ``.hydra/`` and a log file, ``hydra.job.num`` = the Optuna trial number, and a working
``HydraConfig``. The outcome (objective values, or why the trial failed) is reported to Tune once.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobStatus, run_job, setup_globals
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

from .errors import InvalidReturnError
from .objectives import objectives_from_return
from .storage import mask_storage_password, storage_password

log = logging.getLogger("hannah_ray.trial")

# Keys of the result a trial reports to Tune (read by the searcher in the driver).
FINAL = "hannah_ray_final"
OBJECTIVE = "objective"


@dataclass
class TrialPayload:
    """What every trial needs from the driver; shipped once through Ray's object store."""

    hydra_context: HydraContext
    task_function: TaskFunction
    config: DictConfig
    singleton_state: dict[Any, Any]
    n_objectives: int
    metric: Any


@dataclass(frozen=True)
class PayloadHandle:
    """A small stand-in for the payload: trials fetch and prepare the payload once per worker."""

    ref: Any  # ray.ObjectRef of a TrialPayload


_prepared: dict[str, TrialPayload] = {}


def prepared_payload(handle: PayloadHandle) -> TrialPayload:
    """The payload, with Hydra's global state installed in this worker process (once per sweep:
    ``Singleton.set_state`` rescans every Hydra plugin, and the payload takes time to unpickle)."""
    import ray

    key = handle.ref.hex()
    if key not in _prepared:
        payload = ray.get(handle.ref)
        setup_globals()
        Singleton.set_state(payload.singleton_state)
        _prepared.clear()
        _prepared[key] = payload
    return _prepared[key]


def run_trial(trial_config: dict[str, Any], handle: PayloadHandle) -> None:
    """Ray Tune function trainable."""
    from ray import tune

    result = run_hydra_job(
        prepared_payload(handle),
        number=int(trial_config["number"]),
        overrides=list(trial_config["overrides"]),
        job_id=str(tune.get_context().get_trial_id()),
    )
    tune.report(result)


@dataclass
class JobOutcome:
    """What one Hydra job came to; travels back to the driver inside the Tune result.

    It is one object, not a dict, because Tune flattens nested dicts in results.
    """

    overrides: list[str]
    complete: bool = False
    values: list[float] | None = None
    user_attrs: dict[str, Any] = field(default_factory=dict)
    job_dir: str | None = None
    fail_reason: str | None = None
    error: Any = None
    return_value: Any = None


def run_hydra_job(payload: TrialPayload, number: int, overrides: list[str], job_id: str) -> dict:
    """Compose the job's config, run the task through ``run_job`` and judge its return value."""
    original_cwd = payload.config.hydra.runtime.cwd
    if original_cwd and os.path.isdir(original_cwd):
        os.chdir(original_cwd)  # Ray may start workers elsewhere; tasks expect the launch folder
    outcome = JobOutcome(overrides=overrides)
    try:
        sweep_config = payload.hydra_context.config_loader.load_sweep_config(
            payload.config, list(overrides)
        )
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = job_id
            sweep_config.hydra.job.num = number
        # run_job writes .hydra/hydra.yaml: keep the storage password out of it.
        mask_storage_password(sweep_config, storage_password(sweep_config))
        job = run_job(
            hydra_context=payload.hydra_context,
            task_function=_log_exceptions(payload.task_function),
            config=sweep_config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
    except Exception as error:  # the job could not even start (e.g. a bad override)
        return _report(_failed(outcome, error, f"The Hydra job could not start: {error}"))
    outcome.job_dir = str(sweep_config.hydra.runtime.output_dir)
    if job.status == JobStatus.FAILED:
        error = job._return_value  # noqa: SLF001  (JobReturn keeps the exception here)
        return _report(_failed(outcome, error, f"{type(error).__name__}: {error}"))
    outcome.return_value = _picklable(job.return_value)
    try:
        objectives = objectives_from_return(job.return_value, payload.n_objectives, payload.metric)
    except InvalidReturnError as error:
        log.error("Trial %d failed: %s", number, error)
        return _report(_failed(outcome, error, str(error)))
    outcome.complete = True
    outcome.values = objectives.values
    outcome.user_attrs = objectives.user_attrs
    return _report(outcome)


def _report(outcome: JobOutcome) -> dict[str, Any]:
    result: dict[str, Any] = {FINAL: True, "job_outcome": outcome}
    if outcome.values:
        result[OBJECTIVE] = outcome.values[0]
    return result


def _failed(outcome: JobOutcome, error: BaseException, reason: str) -> JobOutcome:
    outcome.fail_reason = reason
    outcome.error = _picklable(error)
    return outcome


def _log_exceptions(task_function: TaskFunction) -> TaskFunction:
    """Write a failing task's traceback into the job's own log file (Hydra's run_job does not)."""

    @functools.wraps(task_function)
    def logged(cfg: DictConfig) -> Any:
        try:
            return task_function(cfg)
        except Exception:
            log.exception("The task raised an exception")
            raise

    return logged


def _picklable(value: Any) -> Any:
    """The value itself if it can travel back to the driver, else its repr."""
    from ray import cloudpickle

    try:
        cloudpickle.dumps(value)
    except Exception:
        return repr(value)
    return value
