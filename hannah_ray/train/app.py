"""``hannah-ray-train``: train once, or sweep with ``-m hydra/sweeper=ray_optuna``.

Returns each monitored validation metric's best value over the epochs (one number, or a list for
several ``monitor`` names), as hannah's ``hannah-train`` does; lower is better for ``val_error``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig, OmegaConf

from .checks import (
    check_batch_limits,
    check_devices_fit_the_trial,
    check_one_process,
    check_sweep_direction,
    check_validation_before_max_steps,
    check_validation_runs,
    check_validation_within_epochs,
    in_sweep,
    limited_batches,
    monitored,
    warn_of_unvalidated_training,
)

log = logging.getLogger("hannah_ray.train")


def config_dir() -> str:
    """The app's config tree: packaged inside the wheel, or the repository's ``conf/``."""
    packaged = Path(__file__).parent / "conf"
    return str(packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "conf")


def training_seed(seed: Any) -> int:
    """``seed``: a number, or hannah's one-element list (``seed: [1234]``)."""
    if isinstance(seed, ListConfig | list | tuple):
        if len(seed) != 1:
            raise ValueError(
                f"seed={list(seed)}: hannah-ray-train trains one model per run. Allowed: one "
                "seed, e.g. seed=1234 or seed=[1234]; to train with several, sweep them: "
                f"-m seed=choice({', '.join(str(s) for s in seed)})."
            )
        seed = seed[0]
    try:
        return int(seed)
    except (TypeError, ValueError):
        raise ValueError(f"seed={seed!r}: allowed: an integer, or a list of one.") from None


def warn_of_overrides_1cycle_ignores(cfg: DictConfig) -> None:
    """``scheduler=1cycle`` sets the learning rate itself: an ``optimizer.lr`` override does
    nothing; nor does one of ``optimizer.momentum`` / ``betas`` while it cycles the momentum."""
    if cfg.scheduler.get("name") != "1cycle" or not HydraConfig.initialized():
        return
    task_overrides = [o.lstrip("+~") for o in HydraConfig.get().overrides.task]
    if any(o.startswith("optimizer.lr=") for o in task_overrides):
        log.warning(
            "optimizer.lr is set, but scheduler=1cycle sets the learning rate itself (from "
            "scheduler.max_lr): sweep scheduler.max_lr, or use scheduler=cosine or none."
        )
    cycles = cfg.scheduler.get("cycle_momentum", True) is not False
    for key in ("momentum", "betas"):
        if cycles and any(o.startswith(f"optimizer.{key}=") for o in task_overrides):
            log.warning(
                "optimizer.%s is set, but scheduler=1cycle cycles the momentum itself (between "
                "scheduler.max_momentum and base_momentum, 0.95 and 0.85 by default): set "
                "+scheduler.cycle_momentum=false to keep optimizer.%s.",
                key,
                key,
            )


def trainer_extras(
    trainer_args: dict[str, Any], output_dir: Path
) -> tuple[Path, list[Any] | None, list[Any]]:
    """Pops the ``trainer`` keys the app merges with its own: ``default_root_dir`` (relative to
    the run's folder: where ``tensorboard/`` and ``checkpoints/`` go), ``logger`` (false: none;
    configs with ``_target_``: extra loggers beside the app's TensorBoard one) and ``callbacks``
    (configs with ``_target_``, run after the app's). Returns (folder, loggers or None for no
    logger, callbacks)."""
    from pytorch_lightning import Callback
    from pytorch_lightning.loggers import Logger

    root = output_dir / str(trainer_args.pop("default_root_dir", None) or ".")
    if in_sweep() and not root.resolve().is_relative_to(output_dir.resolve()):
        raise ValueError(
            f"trainer.default_root_dir={str(root)!r}: every job of the sweep would write its "
            "tensorboard/ and checkpoints/ there. Allowed in a sweep: a folder inside the job's "
            "own (e.g. '.', or a path relative to it)."
        )
    logger = trainer_args.pop("logger", True)
    loggers = None if logger is False else _instantiated("logger", logger, Logger, output_dir)
    callbacks = _instantiated(
        "callbacks", trainer_args.pop("callbacks", None), Callback, output_dir
    )
    return root, loggers, callbacks


# Folder arguments of loggers (save_dir) and callbacks (ModelCheckpoint's dirpath).
_FOLDER_KEYS = ("save_dir", "dirpath")


def _local_relative(path: str) -> bool:
    """A relative local path: not absolute, and no URL (``s3://...``, which loggers take)."""
    return "://" not in path and not Path(path).is_absolute()


def _check_own_folder(what: str, path: str, root: Path) -> None:
    """In a sweep, a callback's folder (``ModelCheckpoint``'s ``dirpath``) outside the job's own
    is shared by every trial: checkpoints of parallel trials overwrite each other, and
    ``save_top_k`` deletes another trial's. (Loggers add a version folder of their own per run.)"""
    if "://" in path or not Path(path).resolve().is_relative_to(root.resolve()):
        raise ValueError(
            f"{what}={path!r}: outside the job's folder, where every trial of the sweep would "
            "write its checkpoints over the others' and delete them (save_top_k). Allowed in a "
            "sweep: a folder inside the job's own (e.g. 'checkpoints'); to put the checkpoints "
            "elsewhere, move the whole sweep (hydra.sweep.dir)."
        )


def _instantiated(key: str, given: Any, kind: type, root: Path | None = None) -> list[Any]:
    """``trainer.<key>``: none (null, true, []), one config with ``_target_``, or a list of them
    or a mapping of names to them (as in a callbacks/ config group), each made a ``kind``; a
    relative folder (a logger's ``save_dir``, a ``ModelCheckpoint``'s ``dirpath``) is taken from
    ``root`` (the run's folder, as for the app's own logs), so parallel trials keep theirs apart."""
    from hydra.utils import instantiate

    if given is None or given is True:
        return []
    configs = list(given.values()) if isinstance(given, dict) and "_target_" not in given else given
    configs = configs if isinstance(configs, list) else [configs]
    wanted = f"a pytorch_lightning {kind.__name__}"
    made = []
    for config in configs:
        if not isinstance(config, dict) or "_target_" not in config:
            raise ValueError(
                f"trainer.{key}={given!r}: allowed: a config with _target_ ({wanted} class) or "
                + (
                    "a list of them, true, or false for no logger."
                    if key == "logger"
                    else "a list of them."
                )
            )
        for path_key in _FOLDER_KEYS:
            path = config.get(path_key)
            if root is None or not isinstance(path, str):
                continue
            if _local_relative(path):
                config = {**config, path_key: str(root / path)}
            if path_key == "dirpath" and in_sweep():
                what = f"trainer.{key}: {config['_target_']}'s {path_key}"
                _check_own_folder(what, config[path_key], root)
        made.append(instantiate(config))
        if not isinstance(made[-1], kind):
            raise ValueError(
                f"trainer.{key}: _target_={config['_target_']} made a {type(made[-1]).__name__}, "
                f"not {wanted}."
            )
    return made


def train(cfg: DictConfig) -> float | list[float]:
    """Train and validate once; the Lightning logs go to ``<job folder>/tensorboard``."""
    import pytorch_lightning as pl

    from hannah_ray import in_trial

    from .data import ClassificationData
    from .event_logger import OneEventFileLogger
    from .models import build_model
    from .module import ClassifierModule

    names = monitored(cfg)
    check_sweep_direction(names)
    warn_of_overrides_1cycle_ignores(cfg)
    trainer_args: dict[str, Any] = OmegaConf.to_container(cfg.trainer, resolve=True)
    check_validation_runs(trainer_args, names)
    if in_trial():
        check_devices_fit_the_trial(trainer_args)
    else:
        check_one_process(trainer_args)
    pl.seed_everything(training_seed(cfg.seed), workers=True, verbose=False)
    data = ClassificationData(cfg.dataset, cfg.module)
    data.setup()
    tests = bool(trainer_args.get("limit_test_batches", 1.0)) and len(data.splits["test"]) > 0
    batches = {
        split: data.batches(split) for split in ("train", "val", "test") if split != "test" or tests
    }
    check_batch_limits(trainer_args, batches)
    train_batches = limited_batches(batches["train"], trainer_args.get("limit_train_batches"))
    check_validation_before_max_steps(trainer_args, train_batches, names)
    check_validation_within_epochs(trainer_args, train_batches, names)
    warn_of_unvalidated_training(trainer_args, train_batches)
    model = build_model(cfg.model, data.input_shape, data.num_classes)
    module = ClassifierModule(model, cfg.optimizer, cfg.scheduler, hyperparameters(cfg))
    output_dir, extra_loggers, extra_callbacks = trainer_extras(trainer_args, _output_dir())
    # No bars or summaries from the jobs of a sweep (any launcher): they may run side by side.
    if trainer_args.get("enable_progress_bar") is None:
        trainer_args["enable_progress_bar"] = not in_sweep()
    trainer_args.setdefault("enable_model_summary", not in_sweep())
    best, checkpoint, callbacks = _app_callbacks(names, trainer_args, output_dir)
    logger = None
    if extra_loggers is not None:
        logger = OneEventFileLogger(save_dir=str(output_dir), name="tensorboard", version="")
    trainer = pl.Trainer(
        **trainer_args,
        logger=[logger, *extra_loggers] if logger is not None else False,
        callbacks=[*callbacks, *extra_callbacks],
        default_root_dir=str(output_dir),
    )
    try:
        trainer.fit(module, datamodule=data)
        log.info("Trained on %s", trainer.strategy.root_device)
        values = best.values(trainer.callback_metrics, trainer_args)
        log.info("Validation: %s", dict(zip(names, values, strict=True)))
        log.info(
            "Best epochs (counted from 1, as the reports; checkpoint names count from 0): %s",
            best.best_epoch,
        )
        if tests:
            # Like hannah: test the best checkpoint, not the last epoch's weights.
            best_path = "best" if checkpoint is not None and checkpoint.best_model_path else None
            tested = trainer.test(module, datamodule=data, verbose=False, ckpt_path=best_path)
            log.info("Test: %s", tested[0] if tested else {})
    finally:
        if logger is not None:
            logger.close()
    # Like hannah: one metric, even as a one-element list, returns a number (the stock Optuna
    # sweeper refuses a list for one direction).
    return values[0] if len(values) == 1 else values


def _app_callbacks(names: list[str], trainer_args: dict[str, Any], output_dir: Path) -> Any:
    """(best values, checkpoint or None, all the app's callbacks): reports to a sweep, the best
    value per monitored metric, and the best checkpoint by the first one."""
    from pytorch_lightning.callbacks import ModelCheckpoint

    from hannah_ray.lightning import ReportCallback

    from .best import BestValidation
    from .module import HIGHER_IS_BETTER

    best = BestValidation(names, HIGHER_IS_BETTER)
    callbacks = [ReportCallback(monitor=names), best]
    checkpoint = None
    if trainer_args.get("enable_checkpointing", True):
        mode = "max" if names[0] in HIGHER_IS_BETTER else "min"
        checkpoint = ModelCheckpoint(
            dirpath=output_dir / "checkpoints", monitor=names[0], mode=mode
        )
        callbacks.append(checkpoint)
    return best, checkpoint, callbacks


def hyperparameters(cfg: DictConfig) -> dict[str, Any]:
    """The flat config a run is compared by in TensorBoard's HPARAMS tab."""
    chosen = {
        key: OmegaConf.to_container(cfg[key], resolve=True)
        for key in ("model", "optimizer", "scheduler", "module", "dataset")
    }
    trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
    # Every plain trainer key (max_epochs, max_steps, accumulate_grad_batches...): any may be swept.
    chosen["trainer"] = {
        key: value for key, value in trainer.items() if not isinstance(value, dict | list)
    }
    chosen["monitor"] = ",".join(monitored(cfg))
    chosen["seed"] = training_seed(cfg.seed)
    return _flatten(chosen)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = str(value) if isinstance(value, list) else value
    return flat


def _output_dir() -> Path:
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path(os.getcwd())


@hydra.main(config_path=config_dir(), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | list[float]:
    return train(cfg)


if __name__ == "__main__":
    main()
