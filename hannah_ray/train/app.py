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

log = logging.getLogger("hannah_ray.train")


def config_dir() -> str:
    """The app's config tree: packaged inside the wheel, or the repository's ``conf/``."""
    packaged = Path(__file__).parent / "conf"
    return str(packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "conf")


def monitored(cfg: DictConfig) -> list[str]:
    """The ``monitor`` names, checked against what the module logs (before any training)."""
    from .module import MONITORABLE

    names = [cfg.monitor] if isinstance(cfg.monitor, str) else list(cfg.monitor)
    unknown = [n for n in names if n not in MONITORABLE]
    if not names or unknown:
        raise ValueError(
            f"monitor={OmegaConf.to_container(cfg, resolve=True)['monitor']!r}: allowed: one of "
            f"{list(MONITORABLE)} or a list of them."
        )
    return names


def check_sweep_direction(names: list[str]) -> None:
    """In a sweep, each monitored metric must be optimised in its own direction: minimising
    ``val_accuracy`` would search for the worst model."""
    from hydra.types import RunMode

    from hannah_ray import in_trial

    from .module import HIGHER_IS_BETTER

    if not HydraConfig.initialized():
        return
    if not in_trial() and HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    direction = HydraConfig.get().sweeper.get("direction")
    if direction is None:
        return
    given = list(direction) if isinstance(direction, ListConfig | list | tuple) else [direction]
    given = [getattr(d, "name", str(d)) for d in given]  # the sweepers' Direction enums
    wanted = ["maximize" if name in HIGHER_IS_BETTER else "minimize" for name in names]
    if len(given) != len(wanted):
        raise ValueError(
            f"monitor={names} gives {len(wanted)} objective(s), but hydra.sweeper.direction="
            f"{given} has {len(given)}. Set hydra.sweeper.direction={wanted}, or monitor one "
            "metric per direction."
        )
    if given != wanted:
        raise ValueError(
            f"monitor={names} is best at {wanted}, but hydra.sweeper.direction={given}: the sweep "
            f"would look for the worst model. Set hydra.sweeper.direction={wanted}."
        )


def check_devices_fit_the_trial(trainer_args: dict[str, Any]) -> None:
    """In a sweep trial, ``trainer.accelerator`` / ``trainer.devices`` must fit the GPUs Ray gave
    the trial (``hydra.sweeper.resources_per_trial.gpu``): it sees only those."""
    visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d]
    accelerator = str(trainer_args.get("accelerator", "auto")).lower()
    devices = trainer_args.get("devices", "auto")
    share = "hydra.sweeper.resources_per_trial.gpu"
    if accelerator in ("gpu", "cuda") and not visible:
        raise ValueError(
            f"trainer.accelerator={accelerator}, but this trial holds no GPU ({share}=0). Allowed: "
            f"{share}=0.25 (a share) or more, or trainer.accelerator=auto or cpu."
        )
    gpus = accelerator in ("gpu", "cuda", "auto")
    if visible and gpus and isinstance(devices, int) and devices > len(visible):
        raise ValueError(
            f"trainer.devices={devices}, but this trial holds {len(visible)} GPU(s) "
            f"({share}). Allowed: trainer.devices<={len(visible)}, or a larger {share}."
        )
    if visible and accelerator == "cpu":
        log.warning(
            "This trial holds a GPU (%s) but trains on the CPU (trainer.accelerator=cpu).", share
        )


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


def warn_if_lr_is_overridden(cfg: DictConfig) -> None:
    """``scheduler=1cycle`` sets the learning rate itself: an ``optimizer.lr`` override does nothing."""
    if cfg.scheduler.get("name") != "1cycle" or not HydraConfig.initialized():
        return
    task_overrides = HydraConfig.get().overrides.task
    if any(o.lstrip("+").startswith("optimizer.lr=") for o in task_overrides):
        log.warning(
            "optimizer.lr is set, but scheduler=1cycle sets the learning rate itself (from "
            "scheduler.max_lr): sweep scheduler.max_lr, or use scheduler=cosine or none."
        )


def train(cfg: DictConfig) -> float | list[float]:
    """Train and validate once; the Lightning logs go to ``<job folder>/tensorboard``."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint

    from hannah_ray import in_trial
    from hannah_ray.lightning import ReportCallback

    from .best import BestValidation
    from .data import ClassificationData
    from .event_logger import OneEventFileLogger
    from .models import build_model
    from .module import HIGHER_IS_BETTER, ClassifierModule

    names = monitored(cfg)
    check_sweep_direction(names)
    warn_if_lr_is_overridden(cfg)
    pl.seed_everything(training_seed(cfg.seed), workers=True, verbose=False)
    data = ClassificationData(cfg.dataset, cfg.module)
    data.setup()
    model = build_model(cfg.model, data.input_shape, data.num_classes)
    module = ClassifierModule(model, cfg.optimizer, cfg.scheduler, hyperparameters(cfg))
    output_dir = _output_dir()
    trainer_args: dict[str, Any] = OmegaConf.to_container(cfg.trainer, resolve=True)
    if in_trial():
        check_devices_fit_the_trial(trainer_args)
    if trainer_args.get("enable_progress_bar") is None:
        trainer_args["enable_progress_bar"] = not in_trial()  # no bars from parallel trials
    trainer_args.setdefault("enable_model_summary", not in_trial())
    best = BestValidation(names, HIGHER_IS_BETTER)
    callbacks: list[pl.Callback] = [ReportCallback(monitor=names), best]
    checkpoint = None
    if trainer_args.get("enable_checkpointing", True):
        mode = "max" if names[0] in HIGHER_IS_BETTER else "min"
        checkpoint = ModelCheckpoint(
            dirpath=output_dir / "checkpoints", monitor=names[0], mode=mode
        )
        callbacks.append(checkpoint)
    logger = OneEventFileLogger(save_dir=str(output_dir), name="tensorboard", version="")
    trainer = pl.Trainer(
        **trainer_args, logger=logger, callbacks=callbacks, default_root_dir=str(output_dir)
    )
    try:
        trainer.fit(module, datamodule=data)
        log.info("Trained on %s", trainer.strategy.root_device)
        values = best.values(trainer.callback_metrics)
        log.info("Validation: %s", dict(zip(names, values, strict=True)))
        log.info("Best epochs: %s", best.best_epoch)
        if trainer_args.get("limit_test_batches", 1.0):
            # Like hannah: test the best checkpoint, not the last epoch's weights.
            best_path = "best" if checkpoint is not None and checkpoint.best_model_path else None
            tested = trainer.test(module, datamodule=data, verbose=False, ckpt_path=best_path)
            log.info("Test: %s", tested[0] if tested else {})
    finally:
        logger.close()
    return values[0] if len(values) == 1 else values


def hyperparameters(cfg: DictConfig) -> dict[str, Any]:
    """The flat config a run is compared by in TensorBoard's HPARAMS tab."""
    chosen = {
        key: OmegaConf.to_container(cfg[key], resolve=True)
        for key in ("model", "optimizer", "scheduler", "module", "dataset")
    }
    chosen["trainer"] = {"max_epochs": cfg.trainer.max_epochs}
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
