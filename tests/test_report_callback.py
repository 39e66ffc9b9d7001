"""ReportCallback's epochs in a real Lightning fit; its reports are captured where they would go
to the running trial (the sweep path of a report is tested with Ray in test_early_stopping.py)."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, IterableDataset

import hannah_ray.lightning as reporting_callback
from hannah_ray.lightning import ReportCallback


class _Stream(IterableDataset):
    """Endless training data: a loader of unknown length, as for streamed data."""

    def __iter__(self):
        while True:
            yield torch.randn(2), torch.randn(1)


class _FiniteStream(IterableDataset):
    """Four samples per epoch, from a loader that does not know it (no ``__len__``)."""

    def __iter__(self):
        for _ in range(4):
            yield torch.randn(2), torch.randn(1)


class _RegressionSteps:
    """A linear regression's steps, for a module of either Lightning package."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


class _Regression(_RegressionSteps, pl.LightningModule):
    pass


@pytest.fixture
def reports(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, bool]]:
    """(epoch, last) of each report the callback makes, as if inside a trial."""
    made: list[tuple[float, bool]] = []
    monkeypatch.setattr(reporting_callback, "in_trial", lambda: True)
    monkeypatch.setattr(
        reporting_callback, "report", lambda values, epoch, last: made.append((epoch, last))
    )
    return made


def _fit(trainer_class, callback, module, training, tmp_path, **limits) -> None:
    """A quiet fit of ``module`` with ``callback``, validating on four samples."""
    validation = DataLoader([(torch.randn(2), torch.randn(1)) for _ in range(4)], batch_size=2)
    trainer = trainer_class(
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        **limits,
    )
    trainer.fit(module, DataLoader(training, batch_size=2), validation)


def test_an_endless_training_loader_counts_each_validation_as_an_epoch(reports, tmp_path) -> None:
    callback = ReportCallback(monitor="val_loss")
    limits = {"max_steps": 12, "val_check_interval": 4, "check_val_every_n_epoch": None}
    _fit(pl.Trainer, callback, _Regression(), _Stream(), tmp_path, **limits)
    # Before: every report said epoch 1, so ASHA never got past its first rung.
    assert reports == [(1, False), (2, False), (3, True)]


def test_a_finite_loader_of_unknown_length_keeps_lightnings_epochs(reports, tmp_path) -> None:
    callback = ReportCallback(monitor="val_loss")
    limits = {"max_epochs": 6, "check_val_every_n_epoch": 2}
    _fit(pl.Trainer, callback, _Regression(), _FiniteStream(), tmp_path, **limits)
    assert reports == [(2, False), (4, False), (6, True)]


def test_apps_on_the_lightning_package_have_a_callback_of_their_own(reports, tmp_path) -> None:
    import lightning.pytorch as lightning_pl

    from hannah_ray.lightning import LightningReportCallback

    class Regression(_RegressionSteps, lightning_pl.LightningModule):
        pass

    callback = LightningReportCallback(monitor="val_loss")
    _fit(lightning_pl.Trainer, callback, Regression(), _FiniteStream(), tmp_path, max_epochs=2)
    assert reports == [(1, False), (2, True)]


def test_the_report_before_an_early_stop_is_marked_last(reports, tmp_path) -> None:
    """An EarlyStopping that runs after the callback ends fit at the first validation: that
    report was the last (no scheduler may cut a trial whose work is done)."""
    from pytorch_lightning.callbacks import EarlyStopping

    stop = EarlyStopping(monitor="val_loss", stopping_threshold=1e9)  # stops at once
    validation = DataLoader([(torch.randn(2), torch.randn(1)) for _ in range(4)], batch_size=2)
    trainer = pl.Trainer(
        callbacks=[ReportCallback(monitor="val_loss"), stop],
        max_epochs=5,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(_Regression(), DataLoader(_FiniteStream(), batch_size=2), validation)
    assert trainer.current_epoch == 1 and reports == [(1, True)]
