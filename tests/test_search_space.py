"""The grammar table: each Hydra override form and the Optuna distribution it becomes."""

from __future__ import annotations

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hannah_ray.errors import SweepConfigError
from hannah_ray.legacy_search_space import legacy_distributions
from hannah_ray.search_space import format_override, parse_search_space


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("x=a,b,c", CategoricalDistribution(["a", "b", "c"])),
        ("x=choice(2, 2.5, 'three', true)", CategoricalDistribution([2, 2.5, "three", True])),
        ("x=shuffle(choice(1, 2))", CategoricalDistribution([1, 2])),
        ("x=range(1, 10)", IntDistribution(1, 9)),
        ("x=range(0, 10, 3)", IntDistribution(0, 9, step=3)),
        ("x=range(5, 0, -2)", IntDistribution(1, 5, step=2)),
        ("x=range(0.1, 1.0, 0.3)", FloatDistribution(0.1, 0.7, step=0.3)),
        ("x=shuffle(range(3))", IntDistribution(0, 2)),
        ("x=interval(-5.5, 5.5)", FloatDistribution(-5.5, 5.5)),
        ("x=interval(1, 2)", FloatDistribution(1.0, 2.0)),
        ("x=int(interval(1, 64))", IntDistribution(1, 64)),
        ("x=tag(log, interval(0.0001, 0.1))", FloatDistribution(0.0001, 0.1, log=True)),
        ("x=tag(log, int(interval(1, 64)))", IntDistribution(1, 64, log=True)),
        ("x=tag(log, range(1, 100))", IntDistribution(1, 99, log=True)),
    ],
)
def test_grammar_table(override: str, expected: object) -> None:
    space = parse_search_space([override])
    assert space.distributions == {"x": expected}
    assert space.fixed == {}


def test_plain_values_and_deletions_are_fixed_and_keys_keep_prefix_and_package() -> None:
    space = parse_search_space(
        ["+a=5", "~b", "db@pkg=choice(x, y)", "++c=interval(0, 1)", "d=text"]
    )
    assert space.fixed == {"+a": "+a=5", "~b": "~b", "d": "d=text"}
    assert set(space.distributions) == {"db@pkg", "++c"}


def test_glob_expands_against_the_config_loader() -> None:
    class Loader:
        def get_group_options(self, group: str, *args: object, **kwargs: object) -> list[str]:
            assert group == "db"
            return ["mysql", "postgresql", "sqlite"]

    space = parse_search_space(["db=glob(*sql*, exclude=sqlite)"], config_loader=Loader())
    assert space.distributions["db"] == CategoricalDistribution(["mysql", "postgresql"])


def test_command_line_wins_over_config_params() -> None:
    space = parse_search_space(
        ["x=interval(0, 1)", "z=3"],
        {"x": "choice(1, 2)", "y": "range(1, 4)", "z": "interval(0, 1)"},
    )
    assert space.distributions == {"x": FloatDistribution(0, 1), "y": IntDistribution(1, 3)}
    assert space.fixed == {"z": "z=3"}


def test_nested_config_params_are_dotted_keys() -> None:
    # +hydra.sweeper.params.model.lr=... on the command line writes this nested form.
    params = OmegaConf.create({"model": {"lr": "interval(0.1, 1)", "depth": "choice(1, 2)"}})
    space = parse_search_space(["model.depth=4"], params)
    assert space.distributions == {"model.lr": FloatDistribution(0.1, 1)}
    assert space.fixed == {"model.depth": "model.depth=4"}


@pytest.mark.parametrize("line", ["++x=5", "+x=5", "~x"])
def test_command_line_wins_over_config_params_whatever_its_prefix(line: str) -> None:
    space = parse_search_space([line], {"x": "choice(1, 2)", "y": None})
    assert space.distributions == {}
    # A null in hydra.sweeper.params is YAML's null, not the string 'None'.
    assert space.trial_overrides({}) == ["y=null", line]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("x=interval(2, 1)", "low must be <= high"),
        ("x=tag(log, interval(0, 1))", "log scale needs bounds > 0"),
        ("x=tag(log, interval(-1, 1))", "log scale needs bounds > 0"),
        ("x=range(3, 3)", "the range is empty"),
        ("x=range(1, 5, -1)", "the range is empty"),
        ("x=tag(log, range(1, 10, 2))", "step 1"),
        ("x=tag(log, range(0.5, 2.0, 0.5))", "log scale cannot have a float step"),
        ("x=tag(log, choice(1, 2))", "applies to interval and range"),
        ("x=choice([1, 2], [3])", "non-scalar"),
        ("x=choice({a: 1}, {a: 2})", "non-scalar"),
        ("x=1,1,2", "repeat"),
        ("x=choice()", "Cannot parse"),
        ("x=interval(-inf, 1)", "low=-inf is not a finite number"),
        ("x=tag(log, interval(1, inf))", "high=inf is not a finite number"),
        ("x=range(0, inf)", "stop=inf is not a finite number"),
        ("x=choice(1, true)", "1 and True are equal in Python"),
        ("x=0,false", "0 and False are equal"),
        ("x=choice(1, 1.0)", "1 and 1.0 are equal"),
        ("x=choice(nan, 1)", "nan cannot be a choice"),
        ("x=tag(lg, interval(1, 2))", r"unknown tag\(s\) \['lg'\]; allowed: \['log'\]"),
    ],
)
def test_invalid_forms_name_key_value_and_rule(override: str, message: str) -> None:
    with pytest.raises(SweepConfigError, match=message) as error:
        parse_search_space([override])
    assert "'x" in str(error.value)


@pytest.mark.parametrize(
    "value", ["plain", "with space", "1", "true", "null", "a,b", "it's", "back\\slash", "x=y", 3, 0.1,
              1e-05, True, None, -2,
              # Quoted with backslashes: only those before a quote or the end are escapes.
              "\\d{1,3}", "C:\\dir\\x, y", "ends\\", "two\\\\", "q\\'uote", "'"],
)  # fmt: skip
def test_format_override_round_trips_through_hydras_parser(value: object) -> None:
    line = format_override("key", value)
    parsed = OverridesParser.create().parse_override(line)
    assert parsed.value() == value
    assert type(parsed.value()) is type(value)


def test_trial_overrides_put_fixed_first() -> None:
    space = parse_search_space(["x=interval(0, 1)", "+y=2"])
    assert space.trial_overrides({"x": 0.5}) == ["+y=2", "x=0.5"]


def test_the_stock_sweepers_deprecated_search_space_reads_as_it_did_there() -> None:
    assert legacy_distributions(
        {
            "lr": {"type": "float", "low": 0.0001, "high": 0.1, "log": True},
            "drop": {"type": "float", "low": 0, "high": 0.5, "step": 0.1},
            "layers": {"type": "int", "low": 1, "high": 4},
            "width": {"type": "int", "low": 16, "high": 64, "step": 16},
            "act": {"type": "categorical", "choices": ["relu", "tanh"]},
        }
    ) == {
        "lr": FloatDistribution(0.0001, 0.1, log=True),
        "drop": FloatDistribution(0.0, 0.5, step=0.1),
        "layers": IntDistribution(1, 4),
        "width": IntDistribution(16, 64, step=16),
        "act": CategoricalDistribution(["relu", "tanh"]),
    }


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"type": "normal", "low": 0, "high": 1},
            r"search_space.x.type='normal': allowed: int, float, categorical",
        ),
        ({"type": "float", "low": 1, "high": 0}, r"search_space.x=.*'low' must be <= 'high'"),
        (
            {"type": "float", "low": 0, "high": 1, "log": True},
            r"search_space.x=.*log scale needs bounds > 0",
        ),
        ({"type": "int", "low": 0}, r"search_space.x=.*needs 'low' and 'high'"),
        (
            {"type": "float", "low": "a", "high": 1},
            r"search_space.x=.*'low' must be a finite number, got 'a'",
        ),
        ({"type": "categorical", "choices": []}, r"search_space.x=.*non-empty list of 'choices'"),
        (  # as in params: Optuna would store True as 1
            {"type": "categorical", "choices": [1, True]},
            r"search_space.x=.*the choices 1 and True are equal in Python",
        ),
        ({"type": "categorical", "choices": [1, 1]}, r"search_space.x=.*repeat a value"),
        ({"type": "float", "lo": 0, "high": 1}, r"search_space.x: unknown field\(s\) \['lo'\]"),
        ("interval(0, 1)", r"search_space.x='interval\(0, 1\)': allowed: a mapping"),
    ],
)
def test_an_invalid_deprecated_search_space_entry_names_the_key(entry, message: str) -> None:
    with pytest.raises(SweepConfigError, match=message):
        legacy_distributions({"x": entry})


def test_the_deprecated_search_space_is_ignored_beside_params(caplog) -> None:
    from hannah_ray.settings import SweepSettings

    legacy = {"x": {"type": "float", "low": 0, "high": 1}}
    assert SweepSettings.from_config({"search_space": legacy}).legacy_search_space == legacy
    assert "deprecated" in caplog.text
    with_params = {"search_space": legacy, "params": {"x": "interval(0, 2)"}}
    assert SweepSettings.from_config(with_params).legacy_search_space is None
    assert "search_space is ignored" in caplog.text
