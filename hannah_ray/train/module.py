"""The LightningModule: cross-entropy classification with the configured optimizer and LR schedule."""

from __future__ import annotations

import inspect
import math
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.nn import functional
from torch.optim.lr_scheduler import CosineAnnealingLR, OneCycleLR

# What the module logs after each validation epoch; `monitor` must name some of these.
MONITORABLE = ("val_error", "val_loss", "val_accuracy")
HIGHER_IS_BETTER = ("val_accuracy",)


class ClassifierModule(pl.LightningModule):
    def __init__(
        self,
        model: nn.Module,
        optimizer: DictConfig,
        scheduler: DictConfig,
        hparams: dict[str, Any],
    ) -> None:
        super().__init__()
        self.model = model
        self.optimizer_config = optimizer
        self.scheduler_config = scheduler
        # Shown in TensorBoard's HPARAMS tab next to hp_metric (= the best val_error so far, which
        # is what the app returns).
        self.save_hyperparameters(hparams)
        self._epoch_wrong: torch.Tensor | float = 0.0
        self._epoch_seen = 0
        self._best_val_error = float("inf")

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.model(features)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        features, labels = batch
        loss = functional.cross_entropy(self(features), labels)
        self.log("train_loss", loss, on_step=True, on_epoch=True, batch_size=len(labels))
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        loss, error = self._evaluate(batch)
        size = len(batch[1])
        self.log("val_loss", loss, batch_size=size)
        self.log("val_error", error, batch_size=size, prog_bar=True)
        self.log("val_accuracy", 1.0 - error, batch_size=size)
        self._epoch_wrong = self._epoch_wrong + error.detach() * size  # no device sync per batch
        self._epoch_seen += size

    def on_validation_epoch_start(self) -> None:
        self._epoch_wrong, self._epoch_seen = 0.0, 0

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or not self._epoch_seen:
            return
        epoch_error = float(self._epoch_wrong) / self._epoch_seen
        self._best_val_error = min(self._best_val_error, epoch_error)
        self.log("hp_metric", self._best_val_error)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        loss, error = self._evaluate(batch)
        self.log("test_loss", loss, batch_size=len(batch[1]))
        self.log("test_error", error, batch_size=len(batch[1]))

    def _evaluate(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        features, labels = batch
        logits = self(features)
        loss = functional.cross_entropy(logits, labels)
        error = (logits.argmax(dim=1) != labels).float().mean()
        return loss, error

    def configure_optimizers(self) -> Any:
        optimizer = instantiate(self.optimizer_config, params=self.parameters())
        if self.scheduler_config.name == "none":
            return optimizer
        steps = training_steps(self.trainer)
        schedule, interval = build_scheduler(optimizer, self.scheduler_config, steps)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": schedule, "interval": interval},
        }


# OneCycleLR arguments the app sets from the trainer, so the schedule ends with training.
_ONE_CYCLE_FROM_TRAINER = ("total_steps", "epochs", "steps_per_epoch")


def training_steps(trainer: pl.Trainer) -> tuple[int, int | None]:
    """The optimizer steps of ``fit`` and, where ``trainer.max_epochs`` alone bounds them, the
    epochs; an error naming the keys where training has no known end (``max_time`` only)."""
    estimated = trainer.estimated_stepping_batches
    if not math.isfinite(estimated):
        raise ValueError(
            f"trainer.max_epochs={trainer.max_epochs} and trainer.max_steps={trainer.max_steps} "
            "leave the length of training open (trainer.max_time alone does not tell the "
            "learning-rate schedule when it ends). Allowed: a positive trainer.max_epochs or "
            "trainer.max_steps, or scheduler=none."
        )
    epochs = trainer.max_epochs if trainer.max_steps == -1 and trainer.max_epochs > 0 else None
    return max(1, int(estimated)), epochs


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: DictConfig, steps: tuple[int, int | None]
) -> tuple[torch.optim.lr_scheduler.LRScheduler, str]:
    """The ``scheduler`` config's schedule over ``steps`` = (optimizer steps, epochs or None), and
    whether Lightning steps it per ``step`` or per ``epoch``."""
    total_steps, epochs = steps
    if config.name == "1cycle":
        arguments = one_cycle_arguments(config, optimizer)
        return OneCycleLR(optimizer, total_steps=total_steps, **arguments), "step"
    if config.name == "cosine":
        # Per epoch over max_epochs; per step where max_steps (or no max_epochs) bounds training.
        span, interval = (epochs, "epoch") if epochs else (total_steps, "step")
        return CosineAnnealingLR(optimizer, T_max=span, eta_min=float(config.eta_min)), interval
    raise ValueError(f"scheduler.name={config.name!r}: allowed: '1cycle', 'cosine' or 'none'.")


def one_cycle_arguments(config: DictConfig, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Every ``scheduler`` key but ``name`` as a ``OneCycleLR`` argument. ``cycle_momentum``
    defaults to on where the optimizer uses ``betas`` or a ``momentum`` above 0 and off elsewhere
    (Adagrad, SGD or RMSprop without momentum...); set to true for an optimizer with neither key,
    it is an error."""
    arguments = dict(OmegaConf.to_container(config, resolve=True))
    arguments.pop("name", None)
    allowed = set(inspect.signature(OneCycleLR).parameters) - {"optimizer", "last_epoch"}
    allowed -= set(_ONE_CYCLE_FROM_TRAINER)
    unknown = sorted(set(arguments) - allowed)
    if unknown:
        raise ValueError(
            f"scheduler.{unknown[0]}={arguments[unknown[0]]!r}: not a key of scheduler=1cycle"
            + (
                " (the app sets it from trainer.max_epochs / trainer.max_steps)"
                if unknown[0] in _ONE_CYCLE_FROM_TRAINER
                else ""
            )
            + f". Allowed: {sorted(allowed)}."
        )
    can_cycle = bool({"momentum", "betas"} & set(optimizer.defaults))
    # SGD and RMSprop have a momentum key at 0 by default: cycling would switch it on unasked.
    in_use = "betas" in optimizer.defaults or bool(optimizer.defaults.get("momentum"))
    cycle = arguments.setdefault("cycle_momentum", in_use)
    if cycle is True and not can_cycle:
        raise ValueError(
            f"scheduler.cycle_momentum=true, but optimizer {type(optimizer).__name__} has no "
            "momentum or betas to cycle. Allowed: scheduler.cycle_momentum=false, or an "
            "optimizer with momentum (sgd) or betas (adamw)."
        )
    if not isinstance(cycle, bool):
        raise ValueError(f"scheduler.cycle_momentum={cycle!r}: allowed: true or false.")
    return arguments
