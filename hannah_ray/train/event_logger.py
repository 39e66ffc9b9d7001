"""The app's TensorBoard logger: one event file per run, for ``fit`` and ``test`` together."""

from __future__ import annotations

from argparse import Namespace
from typing import Any

from pytorch_lightning.loggers import TensorBoardLogger


class OneEventFileLogger(TensorBoardLogger):
    """A ``TensorBoardLogger`` that stays open between ``fit`` and ``test``; call ``close`` at the end.

    Lightning closes the writer after ``fit`` and ``test`` reopens it. tensorboardX names an event
    file by the second and the host only, so a test run starting within the same second as
    ``fit`` (short training) would truncate ``fit``'s file and lose its curves.
    """

    _hparams_written = False

    def log_hyperparams(
        self,
        params: dict[str, Any] | Namespace,
        metrics: dict[str, Any] | None = None,
        step: int | None = None,
    ) -> None:
        """Once per file: ``test`` logs the hyperparameters again, and the placeholder
        ``hp_metric=-1`` that comes with them would be the last value, the one TensorBoard's
        HPARAMS tab shows."""
        if self._hparams_written:
            return
        super().log_hyperparams(params, metrics, step)
        self._hparams_written = True

    def finalize(self, status: str) -> None:
        if self._experiment is not None:
            self._experiment.flush()
        if status == "success":
            self.save()  # hparams.yaml, as the stock logger does

    def close(self) -> None:
        if self._experiment is not None:
            self._experiment.close()
