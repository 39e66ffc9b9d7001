"""Return-value rules: what becomes an objective value and what fails a trial."""

from __future__ import annotations

import math

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
