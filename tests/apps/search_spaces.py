"""custom_search_space functions for the tests."""

from typing import Any


def add_y(cfg: Any, trial: Any) -> None:
    """Define-by-run: y's range depends on x, which the override grammar cannot say."""
    x = trial.params["+x"]
    trial.suggest_float("+y", x - 1.0, x + 1.0)


def adds_a_key_the_config_lacks(cfg: Any, trial: Any) -> None:
    """Suggests ``z``, which the app's config does not have (it would need ``+z``)."""
    trial.suggest_float("z", 0.0, 1.0)


def port_for_alpha_only(cfg: Any, trial: Any) -> None:
    """Only the alpha database has a port (tests/apps/conf/db): a parameter that depends on a
    config-group choice."""
    if trial.params["db"] == "alpha":
        trial.suggest_int("db.port", 5432, 5434)
