"""One Hydra job, run as Hydra's own ``run_job`` runs it, with fewer copies of the config.

Hydra 1.3's ``run_job`` copies the whole ``hydra`` node four times per job (``HydraConfig.set_config``
twice, the task config before it drops ``hydra``, the Hydra config for ``JobReturn``): about 40 ms
of one core for a small app, half of what a short trial costs its worker. ``run_job_lean`` takes the
same steps in the same order with the same results (output folder, ``.hydra/`` files, logging,
``env_set``, callbacks, working folder, ``HydraConfig``), but shares the (read-only) ``hydra`` node
instead of copying it, copies the task config without it, and writes the ``.hydra`` files with
``job_yaml.YamlPieces`` (the same text, reusing what the last job wrote for unchanged parts).
``tests/test_hydra_job.py`` checks it against ``run_job``. With a Hydra other than 1.3 (whose
``run_job`` may differ), ``run_job`` runs.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import hydra
from hydra import version
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import (
    JobReturn,
    JobRuntime,
    JobStatus,
    _flush_loggers,
    _save_config,
    configure_log,
    env_override,
    run_job,
)
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, flag_override, open_dict, read_write

from .job_yaml import YamlPieces

LEAN_HYDRA_VERSION = "1.3."
# The .hydra files' text, reusing what the last job wrote for unchanged parts (see job_yaml.py).
_CONFIG_YAML = YamlPieces(depth=1)
_HYDRA_YAML = YamlPieces(depth=2)


def run_job_like_hydra(
    hydra_context: HydraContext,
    task_function: TaskFunction,
    config: DictConfig,
    job_dir_key: str,
    job_subdir_key: str | None,
) -> JobReturn:
    """Hydra's ``run_job``; the lean one where this Hydra's ``run_job`` is the one it mirrors."""
    lean = hydra.__version__.startswith(LEAN_HYDRA_VERSION) and (
        # Hydra < 1.2 semantics (an unset chdir means chdir, with a warning): Hydra's own path.
        config.hydra.job.chdir is not None or version.base_at_least("1.2")
    )
    runner = run_job_lean if lean else run_job
    return runner(
        hydra_context=hydra_context,
        task_function=task_function,
        config=config,
        job_dir_key=job_dir_key,
        job_subdir_key=job_subdir_key,
    )


def run_job_lean(
    hydra_context: HydraContext,
    task_function: TaskFunction,
    config: DictConfig,
    job_dir_key: str,
    job_subdir_key: str | None,
) -> JobReturn:
    """Hydra 1.3's ``run_job`` (``configure_logging=True``, ``hydra.job.chdir`` set or false),
    step for step, sharing the ``hydra`` node instead of copying it."""
    callbacks = hydra_context.callbacks
    old_cwd = os.getcwd()
    orig_hydra_cfg = HydraConfig.instance().cfg
    # Hydra config for resolving the output folder (which may use ${hydra:...}).
    _set_hydra_config(config)
    output_dir = str(OmegaConf.select(config, job_dir_key))
    if job_subdir_key is not None:
        output_dir = os.path.join(output_dir, str(OmegaConf.select(config, job_subdir_key)))
    # The shared hydra node: HydraConfig sees this at once (run_job sets the config again).
    with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
        config.hydra.runtime.output_dir = os.path.abspath(output_dir)
    chdir = False
    try:
        ret = JobReturn()
        ret.cfg = task_cfg = _copy_without_hydra(config)
        ret.hydra_cfg = hydra_cfg = HydraConfig.instance().cfg
        overrides = OmegaConf.to_container(config.hydra.overrides.task)
        assert isinstance(overrides, list)
        ret.overrides = overrides
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        chdir = bool(hydra_cfg.hydra.job.chdir)
        if chdir:
            os.chdir(output_dir)
            ret.working_dir = output_dir
        else:
            ret.working_dir = os.getcwd()
        configure_log(config.hydra.job_logging, config.hydra.verbose)
        if config.hydra.output_subdir is not None:
            hydra_output = Path(config.hydra.runtime.output_dir) / Path(config.hydra.output_subdir)
            _CONFIG_YAML.save(task_cfg, "config.yaml", hydra_output)
            _HYDRA_YAML.save(hydra_cfg, "hydra.yaml", hydra_output)
            _save_config(config.hydra.overrides.task, "overrides.yaml", hydra_output)
        with env_override(hydra_cfg.hydra.job.env_set):
            callbacks.on_job_start(config=config, task_function=task_function)
            try:
                ret.return_value = task_function(task_cfg)
                ret.status = JobStatus.COMPLETED
            except Exception as error:
                ret.return_value = error
                ret.status = JobStatus.FAILED
        ret.task_name = JobRuntime.instance().get("name")
        _flush_loggers()
        if getattr(callbacks, "callbacks", True):
            # What a callback keeps (PickleJobInfoCallback pickles it) is Hydra's detached copy,
            # not the node shared with the task's config.
            ret.hydra_cfg = copy.deepcopy(hydra_cfg)
        callbacks.on_job_end(config=config, job_return=ret)
        return ret
    finally:
        HydraConfig.instance().cfg = orig_hydra_cfg
        if chdir:
            os.chdir(old_cwd)


def _set_hydra_config(config: DictConfig) -> None:
    """``HydraConfig.set_config(config)`` holding ``config.hydra`` itself, not a copy of it."""
    OmegaConf.set_readonly(config.hydra, True)
    hydra_node = config._get_node("hydra")  # noqa: SLF001
    holder = DictConfig({})
    with flag_override(holder, "no_deepcopy_set_nodes", True):
        holder["hydra"] = hydra_node
    hydra_node._set_parent(config)  # noqa: SLF001  (as set_config does: ${...} into the task)
    HydraConfig.instance().cfg = holder


def _copy_without_hydra(config: DictConfig) -> DictConfig:
    """``copy.deepcopy(config)`` with ``hydra`` deleted, without copying ``hydra`` first."""
    hydra_node = config._get_node("hydra")  # noqa: SLF001
    stand_in: Any = DictConfig({})
    task_cfg = copy.deepcopy(config, memo={id(hydra_node): stand_in})
    with read_write(task_cfg), open_dict(task_cfg):
        del task_cfg["hydra"]
    return task_cfg
