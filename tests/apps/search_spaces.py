"""custom_search_space functions for the tests."""

from typing import Any


def add_y(cfg: Any, trial: Any) -> None:
    """Define-by-run: y's range depends on x, which the override grammar cannot say."""
    x = trial.params["+x"]
    trial.suggest_float("+y", x - 1.0, x + 1.0)
