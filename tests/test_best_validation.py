"""``BestValidation``: the value the training app returns is each monitored metric's best epoch."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from hannah_ray.train.best import BestValidation


def _epoch(callback: BestValidation, epoch: int, fn: str = "fit", sanity: bool = False, **metrics):
    # The callback reads only these attributes of the Trainer.
    trainer = SimpleNamespace(
        sanity_checking=sanity,
        state=SimpleNamespace(fn=fn),
        callback_metrics=metrics,
        current_epoch=epoch - 1,
    )
    callback.on_validation_end(trainer, None)


def test_each_metric_keeps_its_own_best_in_its_direction() -> None:
    best = BestValidation(["val_error", "val_accuracy"], higher_is_better=["val_accuracy"])
    _epoch(best, 1, val_error=0.3, val_accuracy=0.7)
    _epoch(best, 2, val_error=0.1, val_accuracy=0.85)
    _epoch(best, 3, val_error=0.2, val_accuracy=0.9)
    assert best.values({"val_error": 0.2, "val_accuracy": 0.9}) == [0.1, 0.9]
    assert best.best_epoch == {"val_error": 2, "val_accuracy": 3}


def test_sanity_checks_validate_runs_and_nan_epochs_never_count() -> None:
    best = BestValidation(["val_error"])
    _epoch(best, 1, sanity=True, val_error=0.0)
    _epoch(best, 1, val_error=float("nan"))
    _epoch(best, 2, val_error=0.4)
    _epoch(best, 2, fn="validate", val_error=0.0)
    assert best.values({"val_error": 0.0}) == [0.4]


def test_without_a_valid_epoch_the_last_value_is_returned() -> None:
    best = BestValidation(["val_error"])
    _epoch(best, 1, val_error=float("nan"))
    (value,) = best.values({"val_error": float("nan")})
    assert math.isnan(value)  # the sweeper then fails the trial, saying NaN was returned


def test_a_metric_never_logged_is_named() -> None:
    best = BestValidation(["val_f1"])
    _epoch(best, 1, val_error=0.1)
    with pytest.raises(KeyError, match=r"no \['val_f1'\].*val_error"):
        best.values({"val_error": 0.1})


def test_a_fit_that_never_validated_says_so() -> None:
    best = BestValidation(["val_error"])
    _epoch(best, 1, sanity=True, val_error=0.5)  # the sanity check is no validation of fit
    with pytest.raises(ValueError, match=r"no validation ran during training.*trainer.max_steps"):
        best.values({"val_error": 0.5})
    with pytest.raises(ValueError, match=r"given trainer.max_time='00:00:00:01'\.$"):
        best.values({"val_error": 0.5}, {"max_time": "00:00:00:01", "max_epochs": 3})
