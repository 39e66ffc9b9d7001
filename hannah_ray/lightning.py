"""A Lightning callback that reports validation metrics to the running ``ray_optuna`` trial:
``ReportCallback`` for ``pytorch_lightning`` apps, ``LightningReportCallback`` for apps on the
``lightning`` package (``import lightning.pytorch as pl``), whose Trainer takes only its own
callbacks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl

from .reporting import in_trial, report, stop_if_requested


class _Reports:
    """After every validation of ``fit``, report the ``monitor`` metric(s) to the trial, so that a
    scheduler such as ASHA can stop a bad trial early; a stopped trial ends at its next training
    batch. A validation inside an epoch (``val_check_interval`` < 1) reports at a fractional
    epoch, which ASHA counts as such; the study keeps one value per epoch. A validation's
    report goes out when training goes on (its next batch) or ends: one that training ends right
    after (``max_epochs``, ``max_steps``, early stopping...) is marked last, so that no scheduler
    stops a trial that has done its work. A no-op outside a trial.

    ``monitor``: a logged metric name or a list of them; ``None`` reports every scalar metric
    (then ``hydra.sweeper.metric`` names the objective).
    """

    def __init__(self, monitor: str | Sequence[str] | None = None) -> None:
        super().__init__()
        self.monitor = [monitor] if isinstance(monitor, str) else monitor
        self._validations = 0  # of this fit
        # (metrics, epoch) of the validation not reported yet: whether it was the last one of
        # fit shows only once training goes on or ends (an EarlyStopping after this callback, a
        # max_steps that falls before the next validation...).
        self._pending: tuple[dict[str, Any], float] | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._validations = 0
        self._pending = None

    def on_train_batch_start(self, trainer: pl.Trainer, *args: object) -> None:
        self._send(last=False)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        stop_if_requested()  # a trial the scheduler stopped ends now, not after the epoch

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._send(last=True)

    def _send(self, last: bool) -> None:
        if self._pending is not None:
            metrics, epoch = self._pending
            self._pending = None
            report(metrics, epoch=epoch, last=last)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or not in_trial():
            return
        if trainer.state.fn != "fit":
            return
        logged = trainer.callback_metrics
        names = list(self.monitor) if self.monitor is not None else list(logged)
        missing = [name for name in names if name not in logged]
        if missing:
            raise KeyError(
                f"ReportCallback(monitor={self.monitor!r}): the model logged no {missing}; "
                f"logged metrics: {sorted(logged)}."
            )
        self._validations += 1
        self._send(last=False)
        self._pending = (
            {name: _scalar(logged[name]) for name in names},
            epochs_trained(trainer, self._validations),
        )


class ReportCallback(_Reports, pl.Callback):
    __doc__ = _Reports.__doc__


def __getattr__(name: str) -> Any:
    """``LightningReportCallback``, made on first use: only then is ``lightning`` imported."""
    if name != "LightningReportCallback":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from lightning.pytorch import Callback

    made = type(name, (_Reports, Callback), {"__doc__": _Reports.__doc__, "__module__": __name__})
    globals()[name] = made
    return made


def epochs_trained(trainer: pl.Trainer, validations: int) -> float:
    """Epochs trained so far: whole at an epoch's end, a fraction at a validation inside an epoch
    (``val_check_interval`` < 1), so that ASHA's cut-off at epoch 1 judges a whole epoch. With a
    training loader of unknown length (an ``IterableDataset``), each of the fit's ``validations``
    counts as an epoch where Lightning counts fewer (an endless loader is one endless epoch)."""
    done = trainer.current_epoch + 1
    total = trainer.num_training_batches
    if total == float("inf"):
        return max(validations, done)
    try:
        batches = trainer.fit_loop.epoch_loop.batch_progress.current.ready
    except AttributeError:  # a Lightning without this loop state
        return done
    if not 0 < batches < total:
        return done
    return trainer.current_epoch + batches / total


def _scalar(value: Any) -> Any:
    """A logged tensor's number now, before the next validation logs over it."""
    return value.item() if hasattr(value, "item") else value
