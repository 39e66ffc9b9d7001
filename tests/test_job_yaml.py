"""``YamlPieces`` writes each config exactly as ``OmegaConf.to_yaml`` does, job after job."""

from __future__ import annotations

import random
from typing import Any

import pytest
from omegaconf import OmegaConf

from hannah_ray.job_yaml import YamlPieces, identical

# Values whose YAML text is tricky: quoting, multi-line strings (with and without trailing line
# breaks), folding of long lines, look-alikes of other types, special floats.
SCALARS: list[Any] = [
    0, 1, -7, True, False, 1.0, 0.0, -0.0, 1e-12, float("inf"), float("-inf"), float("nan"),
    None, "", "plain", "true", "no", "1", "1.5", "null", "~", "???", "${a.b}", "${oc.env:HOME}",
    "a: b", "- x", "#c", "quote's", 'say "hi"', "tab\there", "ünïcödé ✓", "line\nbreak",
    "trailing\n", "two trailing\n\n", "\nleading", "  spaces  ", "x" * 100,
    " ".join(["word"] * 40), "${hydra:runtime.output_dir}/logs", "%(asctime)s %(message)s",
]  # fmt: skip
KEYS = ["a", "b", "job", "runtime", "help", "true", "1", "x y", "ü", "key_with_a_long_name"]


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.random()
    if depth < 3 and kind < 0.2:
        return {rng.choice(KEYS): _value(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    if depth < 3 and kind < 0.3:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return rng.choice(SCALARS)


def _change(rng: random.Random, items: dict[str, Any]) -> None:
    """What changes from one job to the next: a value or two, now and then a key or the order."""
    for _ in range(rng.randint(0, 2)):
        items[rng.choice(KEYS)] = _value(rng)
    if items and rng.random() < 0.1:
        del items[rng.choice(list(items))]
    if rng.random() < 0.05:
        keys = list(items)
        rng.shuffle(keys)
        items_copy = {key: items[key] for key in keys}
        items.clear()
        items.update(items_copy)


@pytest.mark.parametrize("depth", [1, 2])
def test_jobs_in_a_row_get_to_yamls_text(depth: int) -> None:
    rng = random.Random(depth)
    pieces = YamlPieces(depth=depth)
    items: dict[str, Any] = {key: _value(rng) for key in KEYS[:6]}
    for _ in range(400):
        _change(rng, items)
        container = {"hydra": items} if depth == 2 else items
        cfg = OmegaConf.create(container)
        assert pieces.text(cfg) == OmegaConf.to_yaml(cfg)


@pytest.mark.parametrize(
    "container",
    [
        {},
        {"hydra": {}},
        {"hydra": {"a": 1}, "other": 2},  # not one outer mapping: written whole
        {"hydra": {"a": 1, "last": "trailing line breaks\n\n"}},  # quoted over several lines
        {"hydra": {"first": "trailing line breaks\n\n", "b": 1}},
        {"true": {"a": 1}},  # an outer key YAML quotes
    ],
)
def test_odd_configs_get_to_yamls_text(container: dict[str, Any]) -> None:
    pieces = YamlPieces(depth=2)
    for _ in range(2):  # the second time from what the first one kept
        cfg = OmegaConf.create(container)
        assert pieces.text(cfg) == OmegaConf.to_yaml(cfg)


class Point:
    def __init__(self, x: int) -> None:
        self.x = x


def test_keys_that_python_finds_equal_and_objects_met_twice_get_to_yamls_text() -> None:
    pieces = YamlPieces(depth=1)
    for container in ({0.0: 1, "a": 2}, {-0.0: 1, "a": 2}, {1: "x"}, {True: "x"}, {1.0: "x"}):
        cfg = OmegaConf.create(container)
        assert pieces.text(cfg) == OmegaConf.to_yaml(cfg)
    point = Point(1)  # one object in two places: PyYAML anchors it across the whole document
    cfg = OmegaConf.create({"a": point, "b": point}, flags={"allow_objects": True})
    assert "&id001" in OmegaConf.to_yaml(cfg)
    for _ in range(2):
        assert pieces.text(cfg) == OmegaConf.to_yaml(cfg)


def test_identical_tells_apart_what_yaml_writes_apart() -> None:
    assert identical({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]})
    for a, b in [(1, True), (1, 1.0), (0.0, -0.0), ({"a": 1, "b": 2}, {"b": 2, "a": 1})]:
        assert not identical(a, b)
    assert not identical(float("nan"), float("nan"))  # written again; no harm
