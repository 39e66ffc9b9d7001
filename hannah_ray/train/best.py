"""The best value of each monitored validation metric over a run's epochs.

hannah's ``hannah-train`` returns these (its ``HydraOptCallback`` keeps each monitored metric's best
validation value), not the last epoch's: with a 1cycle schedule the last epoch is often not the best.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import pytorch_lightning as pl


class BestValidation(pl.Callback):
    """Records, per monitored metric, its best value over the validation epochs of ``fit`` (the
    highest for names in ``higher_is_better``, else the lowest) and the epoch it came from."""

    def __init__(self, names: Sequence[str], higher_is_better: Collection[str] = ()) -> None:
        super().__init__()
        self.names = list(names)
        self.higher_is_better = set(higher_is_better)
        self.best: dict[str, float] = {}
        self.best_epoch: dict[str, int] = {}
        self.validations = 0  # of fit

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        self.validations += 1
        for name in self.names:
            if name not in trainer.callback_metrics:
                continue
            value = float(trainer.callback_metrics[name])
            if math.isnan(value):
                continue  # a diverged epoch never counts as the best
            if name not in self.best or self._better(name, value, self.best[name]):
                self.best[name] = value
                self.best_epoch[name] = trainer.current_epoch + 1

    def values(
        self, last: Mapping[str, Any], trainer_args: Mapping[str, Any] | None = None
    ) -> list[float]:
        """Each name's best value; the ``last`` logged value where no epoch gave one (NaN, say).
        ``trainer_args``: the ``trainer`` config, quoted when no validation ran."""
        if not self.validations:
            keys = ("max_steps", "max_time", "check_val_every_n_epoch", "val_check_interval")
            given = ", ".join(f"trainer.{k}={(trainer_args or {})[k]!r}" for k in keys
                              if k in (trainer_args or {}))  # fmt: skip
            raise ValueError(
                f"monitor={self.names}: no validation ran during training, so there is no value "
                "to return: training ended (trainer.max_steps, trainer.max_time) before the first "
                "validation (trainer.check_val_every_n_epoch, trainer.val_check_interval)"
                + (f"; given {given}." if given else ".")
            )
        missing = [n for n in self.names if n not in self.best and n not in last]
        if missing:
            raise KeyError(
                f"monitor: the model logged no {missing} during validation; logged metrics: "
                f"{sorted(last)}."
            )
        return [self.best[n] if n in self.best else float(last[n]) for n in self.names]

    def _better(self, name: str, value: float, best: float) -> bool:
        return value > best if name in self.higher_is_better else value < best
