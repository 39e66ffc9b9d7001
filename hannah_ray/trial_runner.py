"""One Ray Tune trial = one full Hydra job, run like Hydra's own launchers do (``run_job``).

This runs in a Ray worker. The job gets its own output folder (``hydra.sweep.dir/hydra.sweep.subdir``)
with ``.hydra/`` and a log file, ``hydra.job.num`` = the Optuna trial number, and a working
``HydraConfig``. The outcome (objective values, or why the trial failed) is reported to Tune once.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobStatus, setup_globals
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.basecontainer import BaseContainer

from .compose import SweepConfigComposer
from .errors import InvalidReturnError, TrialStopped
from .hydra_job import run_job_like_hydra
from .objectives import objectives_from_return
from .reporting import EPOCH, FINAL, ActiveTrial, active_trial
from .storage import mask_storage_secrets

log = logging.getLogger("hannah_ray.trial")


@dataclass
class TrialPayload:
    """What every trial needs from the driver; shipped once through Ray's object store."""

    hydra_context: HydraContext
    task_function: TaskFunction
    config: DictConfig
    singleton_state: dict[Any, Any]
    n_objectives: int
    metric: Any
    trial_timeout_s: float | None = None
    # The storage password's forms, found in the driver: a worker may lack what the URL needs to
    # resolve (``${oc.env:...}``: a cluster's workers have their raylet's environment).
    storage_secrets: list[str] = field(default_factory=list, repr=False)
    # The trial configs' compositions the driver made while checking the search space: each
    # worker starts from them instead of composing them again (~0.2 CPU-s a worker).
    composed: dict[tuple[str, ...], DictConfig] = field(default_factory=dict, repr=False)
    # Set in the worker: composes each trial's config (see compose.py).
    composer: SweepConfigComposer | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PayloadHandle:
    """A small stand-in for the payload: trials fetch and prepare the payload once per worker."""

    ref: Any  # ray.ObjectRef of a TrialPayload


_prepared: dict[str, TrialPayload] = {}
# OmegaConf's resolvers as the sweep's state installed them in this worker.
_sweep_resolvers: dict[str, Any] = {}


def prepared_payload(handle: PayloadHandle) -> TrialPayload:
    """The payload, with Hydra's global state installed in this worker process (once per sweep:
    ``Singleton.set_state`` rescans every Hydra plugin, and the payload takes time to unpickle).
    OmegaConf's resolvers are set back to the sweep's for every trial, as Hydra's joblib launcher
    does per job: a task that registers one (without ``replace=True``) runs again on the worker."""
    import ray

    key = handle.ref.hex()
    if key not in _prepared:
        payload = ray.get(handle.ref)
        setup_globals()
        Singleton.set_state(payload.singleton_state)
        _sweep_resolvers.clear()
        _sweep_resolvers.update(BaseContainer._resolvers)
        _prepared.clear()
        _prepared[key] = payload
    else:
        BaseContainer._resolvers = dict(_sweep_resolvers)
    return _prepared[key]


_THREAD_TIMEOUT_VARIABLE = "TUNE_FUNCTION_THREAD_TIMEOUT_S"
_THREAD_TIMEOUT_S = "600"


def trial_trainable(handle: PayloadHandle) -> type:
    """``run_trial`` as a Tune trainable class whose workers let a stopped trial's job end.

    Tune keeps a stopped trial's worker for a next trial only once the trial's thread has ended
    (``reset_config`` waits for it). A worker it does not keep (nothing left to run, actor reuse
    off) it stops at once: ``cleanup`` wakes the thread and the worker process exits while the
    thread still winds the job down (Lightning closing its logger files, Hydra's ``on_job_end``
    callbacks). Here ``cleanup`` waits for the thread as ``reset_config`` would (at a sweep's end
    Tune itself ends a worker that is still stopping after ~10 s)."""
    from ray import tune
    from ray.tune.trainable.function_trainable import wrap_function

    function_trainable = wrap_function(tune.with_parameters(run_trial, handle=handle))

    class HydraJobTrainable(function_trainable):  # type: ignore[misc, valid-type]
        def cleanup(self) -> None:
            thread = _training_thread()
            super().cleanup()  # wakes a thread blocked in a report, without waiting for it
            # (A reused worker's next thread starts only with its first train call.)
            if (
                thread is not None
                and thread.is_alive()
                and thread is not threading.current_thread()
            ):
                timeout_s = float(os.environ.get(_THREAD_TIMEOUT_VARIABLE, _THREAD_TIMEOUT_S))
                threading.Thread.join(thread, timeout_s)  # not Ray's join: no error raised again

    return HydraJobTrainable


def _training_thread() -> threading.Thread | None:
    """The worker's trial thread (Ray's function-trainable session), or None."""
    try:
        from ray.train._internal.session import get_session

        session = get_session()
        return getattr(session, "training_thread", None) if session is not None else None
    except Exception:  # noqa: BLE001 - a Ray without this private API: Tune's own behaviour
        return None


def run_trial(trial_config: dict[str, Any], handle: PayloadHandle) -> None:
    """Ray Tune function trainable."""
    from ray import tune
    from ray.tune.result import DONE

    show_only_assigned_gpus()
    # Tune reuses this actor for the next trial only once a stopped trial's thread has ended, and
    # errors the next trial if that takes longer than this (default 2 s): allow for the thread to
    # finish its current batch or epoch. HydraJobTrainable.cleanup waits as long.
    os.environ.setdefault(_THREAD_TIMEOUT_VARIABLE, _THREAD_TIMEOUT_S)
    payload = prepared_payload(handle)
    number = int(trial_config["number"])
    watchdog = _watchdog(number, payload.trial_timeout_s)
    try:
        with active_trial(number, payload.n_objectives, payload.metric) as trial:
            result = run_hydra_job(
                payload,
                number=number,
                overrides=list(trial_config["overrides"]),
                job_id=str(tune.get_context().get_trial_id()),
                trial=trial,
            )
    finally:
        if watchdog is not None:
            watchdog.cancel()
    if trial.stopped:
        # Tune has stopped this trial and takes no more reports (Ray's own wrapper would make one
        # on return and block): end the thread the way Ray's report does.
        raise SystemExit(0)
    result[EPOCH] = trial.last_epoch
    # Marked done (Tune's function API): Tune ends the trial at this report and frees its worker
    # for the next trial at once, instead of one more round trip to see the function return.
    result[DONE] = True
    tune.report(result)


def _watchdog(number: int, timeout_s: float | None) -> threading.Timer | None:
    """Ends this worker process if the trial outlives ``trial_timeout_s``: a hung task (stuck in
    C code, a deadlock, a dead data loader) cannot be interrupted from inside its thread."""
    if not timeout_s:
        return None

    def expire() -> None:
        log.error(
            "Trial %d exceeded hydra.sweeper.trial_timeout_s=%g: stopping it.", number, timeout_s
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(124)

    timer = threading.Timer(timeout_s, expire)
    timer.daemon = True
    timer.start()
    return timer


def show_only_assigned_gpus() -> None:
    """A trial sees exactly the GPUs Ray assigned it, none if it asked for none: Ray no longer
    hides GPUs from a trial without one, and sets nothing under
    ``RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES``."""
    import ray

    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(gpu) for gpu in ray.get_gpu_ids())


@dataclass
class JobOutcome:
    """What one Hydra job came to; travels back to the driver inside the Tune result.

    It is one object, not a dict, because Tune flattens nested dicts in results.
    """

    overrides: list[str]
    complete: bool = False
    pruned: bool = False
    values: list[float] | None = None
    user_attrs: dict[str, Any] = field(default_factory=dict)
    job_dir: str | None = None
    fail_reason: str | None = None
    error: Any = None
    return_value: Any = None


def run_hydra_job(
    payload: TrialPayload,
    number: int,
    overrides: list[str],
    job_id: str,
    trial: ActiveTrial | None = None,
) -> dict:
    """Compose the job's config, run the task through ``run_job`` and judge its return value."""
    original_cwd = payload.config.hydra.runtime.cwd
    if original_cwd and os.path.isdir(original_cwd):
        os.chdir(original_cwd)  # Ray may start workers elsewhere; tasks expect the launch folder
    outcome = JobOutcome(overrides=overrides)
    try:
        sweep_config = _compose(payload, overrides)
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = job_id
            sweep_config.hydra.job.num = number
        # run_job writes .hydra/hydra.yaml: keep the storage password out of it.
        mask_storage_secrets(sweep_config, payload.storage_secrets)
        job = run_job_like_hydra(
            hydra_context=payload.hydra_context,
            task_function=_guarded(payload.task_function, trial),
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
    outcome.return_value = _picklable(off_devices(job.return_value))
    try:
        objectives = objectives_from_return(job.return_value, payload.n_objectives, payload.metric)
    except Exception as error:  # InvalidReturnError, or a return value that broke the judging
        if not isinstance(error, InvalidReturnError):
            error = InvalidReturnError(
                f"The task's return value could not be read: {type(error).__name__}: {error}"
            )
        log.error("Trial %d failed: %s", number, error)
        return _report(_failed(outcome, error, str(error)))
    outcome.complete = True
    outcome.values = objectives.values
    outcome.user_attrs = objectives.user_attrs
    return _report(outcome)


def planned_job_dir(config: Any, number: int, job_id: str) -> str | None:
    """The folder ``run_hydra_job`` gives trial ``number`` (``hydra.sweep.dir/hydra.sweep.subdir``),
    as the driver can know it without the trial's report; None where the subdir depends on more
    than ``hydra.job.num`` and ``hydra.job.id`` (e.g. the trial's overrides) or on no config."""
    try:
        sweep_dir = str(config.hydra.sweep.dir)
        subdir = OmegaConf.to_container(config.hydra.sweep, resolve=False)["subdir"]
        job = OmegaConf.create({"hydra": {"job": {"num": number, "id": job_id}}, "subdir": subdir})
        return os.path.abspath(os.path.join(sweep_dir, str(job.subdir)))
    except Exception:  # an interpolation this small config cannot resolve
        return None


def _compose(payload: TrialPayload, overrides: list[str]) -> DictConfig:
    if payload.composer is None:  # once per payload and worker process
        payload.composer = SweepConfigComposer(
            payload.hydra_context.config_loader,
            payload.config,
            bases=payload.composed,
            share_hydra=True,  # one job at a time in this worker
        )
        payload.composed = {}  # the composer holds (and evicts) them now
    return payload.composer.compose(list(overrides))


def _report(outcome: JobOutcome) -> dict[str, Any]:
    # No objective at the top level: the scheduler judges intermediate reports only, so it
    # never stops a trial that has already finished.
    return {FINAL: True, "job_outcome": outcome}


def _failed(outcome: JobOutcome, error: BaseException, reason: str) -> JobOutcome:
    outcome.fail_reason = reason
    outcome.error = _picklable_error(error)
    return outcome


def _guarded(task_function: TaskFunction, trial: ActiveTrial | None) -> TaskFunction:
    """Write a failing task's traceback into the job's own log file (Hydra's run_job does not),
    and turn ``SystemExit`` into an exception, so that ``run_job`` still ends the job properly
    (log flushed, Hydra callbacks called): Ray stops a trial with SystemExit at its next report."""

    @functools.wraps(task_function)
    def guarded(cfg: DictConfig) -> Any:
        try:
            return task_function(cfg)
        except SystemExit as exit_:
            if trial is not None and trial.stopped:
                raise TrialStopped(
                    f"Stopped early by the scheduler after epoch {trial.last_epoch}."
                ) from None
            log.error("The task called sys.exit(%r)", exit_.code)
            raise RuntimeError(f"The task called sys.exit({exit_.code!r})") from None
        except Exception:
            log.exception("The task raised an exception")
            raise

    return guarded


def off_devices(value: Any) -> Any:
    """``value`` with its torch tensors (also inside mappings, sequences, named tuples and
    dataclasses) on the CPU: the driver may have no GPU, or load them onto one a trial is using."""
    torch = sys.modules.get("torch")
    if torch is None:
        return value
    try:
        if not _holds_tensor(value, torch.Tensor):
            return value  # as it is: rebuilding a container may lose what its class adds
        from lightning_utilities.core.apply_func import apply_to_collection

        return apply_to_collection(value, torch.Tensor, _on_cpu)
    except Exception as error:  # one that cannot be walked (a cycle) or rebuilt from its items
        log.warning("The return value's tensors stay where they are: %s", error)
        return value


def _holds_tensor(value: Any, tensor_type: type) -> bool:
    """A tensor is ``value`` or lies inside it (mappings, lists, tuples, sets, dataclasses)."""
    if isinstance(value, tensor_type):
        return True
    if isinstance(value, Mapping):
        return any(_holds_tensor(item, tensor_type) for item in value.values())
    if isinstance(value, list | tuple | set | frozenset):
        return any(_holds_tensor(item, tensor_type) for item in value)
    if is_dataclass(value) and not isinstance(value, type):
        return any(_holds_tensor(getattr(value, f.name), tensor_type) for f in fields(value))
    return False


def _on_cpu(tensor: Any) -> Any:
    return tensor.detach().cpu() if tensor.device.type != "cpu" else tensor


def _picklable(value: Any) -> Any:
    """The value itself if it can travel back to the driver (pickled here, loaded there), else
    its repr."""
    from ray import cloudpickle

    try:
        cloudpickle.loads(cloudpickle.dumps(value))
    except Exception:
        return repr(value)
    return value


def _picklable_error(error: BaseException) -> BaseException:
    """The task's exception if it can travel back to the driver, else a RuntimeError with its type
    and message (an exception whose ``__init__`` takes other arguments than its ``args`` pickles,
    but does not load)."""
    value = _picklable(error)
    return value if value is error else RuntimeError(f"{type(error).__name__}: {error}")
