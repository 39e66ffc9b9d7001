"""The LightningModule: cross-entropy classification with the configured optimizer and LR schedule."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn
from torch.nn import functional

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
        name = self.scheduler_config.name
        if name == "none":
            return optimizer
        if name == "1cycle":
            schedule = torch.optim.lr_scheduler.OneCycleLR(
                optimizer,
                max_lr=float(self.scheduler_config.max_lr),
                total_steps=int(self.trainer.estimated_stepping_batches),
                pct_start=float(self.scheduler_config.pct_start),
                anneal_strategy=str(self.scheduler_config.anneal_strategy),
                div_factor=float(self.scheduler_config.div_factor),
                final_div_factor=float(self.scheduler_config.final_div_factor),
            )
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": schedule, "interval": "step"},
            }
        if name == "cosine":
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer,
                T_max=max(1, int(self.trainer.max_epochs or 1)),
                eta_min=float(self.scheduler_config.eta_min),
            )
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": schedule, "interval": "epoch"},
            }
        raise ValueError(f"scheduler.name={name!r}: allowed: '1cycle', 'cosine' or 'none'.")
