"""Return-value rules: what becomes an objective value and what fails a trial."""

from __future__ import annotations

import math
from collections import OrderedDict, namedtuple
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch

from hannah_ray.errors import InvalidReturnError
from hannah_ray.objectives import intermediate_objective, objectives_from_return


@pytest.mark.parametrize("value", [3, 2.5, np.float32(1.5), np.int64(4), torch.tensor(0.25)])
def test_a_number_is_the_objective(value: object) -> None:
    assert objectives_from_return(value, 1).values == [pytest.approx(float(value))]


def test_a_list_or_tuple_gives_one_value_per_direction() -> None:
    assert objectives_from_return((1, 2.0), 2).values == [1.0, 2.0]
    assert objectives_from_return([1, 2], 2).values == [1.0, 2.0]


def test_a_dict_is_picked_by_metric_and_the_rest_kept() -> None:
    result = objectives_from_return(
        {"loss": 0.5, "acc": np.float64(0.9), "tag": "x", "arr": [1]}, 1, "loss"
    )
    assert result.values == [0.5]
    assert result.user_attrs == {"acc": 0.9, "tag": "x", "arr": [1]}
    numbers = objectives_from_return({"loss": 1, "steps": [np.int64(1), np.float32(2)]}, 1, "loss")
    assert numbers.user_attrs == {"steps": [1, 2.0]}  # a list, not its repr


def test_extra_returns_named_like_the_sweepers_own_attributes_are_kept_apart() -> None:
    from hannah_ray.ledger import trial_user_attrs
    from hannah_ray.trial_runner import JobOutcome

    returned = {"loss": 0.5, "job_dir": "mine", "fail_reason": None, "note": "ok"}
    returned |= {"stale_epochs": "theirs", "requeued_from_trial": 7}
    outcome = JobOutcome(overrides=[], complete=True, job_dir="/sweep/3")
    outcome.user_attrs = objectives_from_return(returned, 1, "loss").user_attrs
    attrs = trial_user_attrs(outcome, "abc", stale_epochs=[4])
    assert attrs == {
        "ray_trial_id": "abc",
        "job_dir": "/sweep/3",
        "stale_epochs": [4],
        "returned.job_dir": "mine",
        "returned.fail_reason": None,
        "note": "ok",
        "returned.stale_epochs": "theirs",
        "returned.requeued_from_trial": 7,
    }
    assert list(attrs)[:2] == ["ray_trial_id", "job_dir"]  # the sweeper's first


def test_tensors_on_a_gpu_come_back_on_the_cpu() -> None:
    """A task's return travels to the driver, which may have no GPU. No GPU here: a tensor
    subclass stands in for one on cuda:0 (its ``cpu()`` gives a plain tensor)."""
    from hannah_ray.trial_runner import off_devices

    class OnGpu(torch.Tensor):
        device = property(lambda self: torch.device("cuda", 0))

        def cpu(self, *args, **kwargs):
            return self.as_subclass(torch.Tensor)

    on_gpu = torch.tensor(0.5).as_subclass(OnGpu)
    moved = off_devices({"loss": on_gpu, "all": [on_gpu, (on_gpu,)], "n": 3})
    assert type(moved["loss"]) is torch.Tensor and moved["loss"].device.type == "cpu"
    assert type(moved["all"][0]) is torch.Tensor and type(moved["all"][1][0]) is torch.Tensor
    assert moved["n"] == 3
    Pair = namedtuple("Pair", "loss acc")

    @dataclass
    class Metrics:
        loss: Any

    nested = off_devices(OrderedDict(pair=Pair(on_gpu, 1.0), metrics=Metrics(on_gpu)))
    assert type(nested) is OrderedDict and type(nested["pair"]) is Pair
    assert type(nested["pair"].loss) is torch.Tensor and nested["pair"].acc == 1.0
    assert type(nested["metrics"].loss) is torch.Tensor

    class Tagged(dict):  # a subclass apply_to_collection could not rebuild: left as it is
        def __init__(self, tag: str, **items: Any) -> None:
            super().__init__(**items)
            self.tag = tag

    tagged = Tagged("mine", loss=1.0)
    assert off_devices(tagged) is tagged
    plain = torch.tensor(1.0)
    assert off_devices(plain) is plain
    # One that cannot be walked is left for the return-value rules to judge (a FAIL with a
    # reason), not an error that Tune would take for a dead worker.
    cyclic: list[Any] = [on_gpu]
    cyclic.append(cyclic)
    assert off_devices(cyclic) is cyclic

    @dataclass
    class Unset:
        loss: Any = field(init=False)

    unset = Unset()
    assert off_devices(unset) is unset


def test_a_dict_of_one_entry_and_an_array_of_values_need_no_more() -> None:
    assert objectives_from_return({"loss": np.float64(0.5)}, 1).values == [0.5]
    assert objectives_from_return(np.array([1.0, 2.0]), 2).values == [1.0, 2.0]
    assert objectives_from_return(torch.tensor([0.25, 4.0]), 2).values == [0.25, 4.0]


def test_a_dict_for_multi_objective_is_picked_by_names() -> None:
    result = objectives_from_return({"a": 1, "b": 2, "c": 3}, 2, ["b", "a"])
    assert result.values == [2.0, 1.0]
    assert result.user_attrs == {"c": 3}


@pytest.mark.parametrize(
    ("returned", "n", "metric", "message"),
    [
        (None, 1, None, "returned None"),
        (math.nan, 1, None, "returned nan"),
        (math.inf, 1, None, "returned inf"),
        ("0.5", 1, None, "'0.5' \\(str\\).*expected a finite number"),
        (True, 1, None, "True \\(bool\\)"),
        ([1.0], 2, None, "returned 1 values.*expected 2"),
        (1.0, 2, None, "expected a list or dict of 2"),
        ({"loss": 1, "acc": 0.5}, 1, None, "set hydra.sweeper.metric"),
        ({"loss": 1}, 1, "acc", "without the metric key\\(s\\) \\['acc'\\]"),
        ({"loss": None}, 1, "loss", "key 'loss'"),
        ([1.0, math.nan], 2, None, "entry 1"),
        (10**400, 1, None, "\\(int\\) as the return value \\(OverflowError: .*\\), expected"),
    ],
)
def test_invalid_returns_say_what_was_returned_and_what_was_expected(
    returned: object, n: int, metric: str | None, message: str
) -> None:
    with pytest.raises(InvalidReturnError, match=message):
        objectives_from_return(returned, n, metric)


@pytest.mark.parametrize(
    ("reported", "metric", "expected"),
    [
        (0.5, None, 0.5),
        (torch.tensor(0.25), None, 0.25),
        ({"val_error": np.float32(0.125)}, None, 0.125),
        ({"loss": 2.0, "acc": 0.5}, "loss", 2.0),
        (math.nan, None, math.nan),  # the return value, not a report, decides FAIL
    ],
)
def test_the_objective_of_an_intermediate_report(
    reported: object, metric: object, expected: float
) -> None:
    value = intermediate_objective(reported, metric)
    assert value == expected or (math.isnan(value) and math.isnan(expected))


@pytest.mark.parametrize(
    ("reported", "metric", "message"),
    [
        ({"loss": 2.0, "acc": 0.5}, None, "report one value or set hydra.sweeper.metric"),
        ({"acc": 0.5}, "loss", "without hydra.sweeper.metric='loss'"),
        ("high", None, "hannah_ray.report got 'high'"),
    ],
)
def test_bad_intermediate_reports_say_what_is_allowed(
    reported: object, metric: object, message: str
) -> None:
    with pytest.raises(InvalidReturnError, match=message):
        intermediate_objective(reported, metric)


@pytest.mark.parametrize(("failed", "exceeded"), [(29, False), (30, True)])
def test_the_failure_rate_is_exceeded_only_past_it(failed: int, exceeded: bool) -> None:
    """0.29 * 100 is 28.999999999999996 in floating point: 29 failures are within the rate."""
    from hannah_ray.ledger import SweepLedger

    ledger = SweepLedger(0.29, 100, ["minimize"])
    ledger.failed = failed
    assert ledger.failure_rate_exceeded() is exceeded


@pytest.mark.parametrize("epoch", [math.nan, math.inf, -1, "two", True])
def test_a_report_with_an_epoch_that_is_no_epoch_fails_the_trial(epoch: object) -> None:
    """Before anything reaches Ray: in the driver, math.ceil(nan) would end the whole sweep."""
    from hannah_ray.reporting import active_trial, report

    with active_trial(0, 1, None), pytest.raises(ValueError, match=r"report\(epoch=.*allowed: a"):
        report(0.5, epoch=epoch)
