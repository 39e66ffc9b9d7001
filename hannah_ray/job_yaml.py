"""A job's ``.hydra/*.yaml`` files with the text ``OmegaConf.to_yaml`` gives, written faster.

Emitting YAML is most of what a short trial costs its worker (``hydra.yaml`` alone ~15 ms of
~30 ms), yet from one job to the next only a few parts of the config change (``hydra.job``,
``hydra.runtime``, ``hydra.overrides``, the swept values). PyYAML writes a block mapping one item
after the other, each from the same indentation, so the file is the concatenation of its items'
texts. ``YamlPieces`` keeps each item's text with the value it was written from and writes again
only the items whose value changed. ``tests/test_job_yaml.py`` compares it with ``to_yaml``.
"""

from __future__ import annotations

import math
from pathlib import Path, PurePath
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf._utils import get_omega_conf_dumper

# Values written the same wherever they are. Anything else (objects under OmegaConf's
# ``allow_objects``) makes the whole file be written at once: PyYAML numbers anchors for an object
# met twice across the whole document.
_PLAIN = (str, int, float, bool, type(None), bytes, PurePath)
# PyYAML ends a document this way where its last scalar is a block that keeps its trailing line
# breaks (``|+``); OmegaConf's dumper quotes multi-line strings instead, but a piece that ends so
# would not join up.
_OPEN_END = "...\n"


class YamlPieces:
    """``OmegaConf.to_yaml(cfg)`` for configs written one after the other (one job at a time:
    the ``.hydra`` files of a worker's trials), reusing the text of unchanged items.

    ``depth`` 1 splits the config's own items (``config.yaml``); 2 splits the items of its one
    top-level mapping (``hydra.yaml``: ``hydra: {run: ..., sweep: ..., ...}``)."""

    def __init__(self, depth: int = 1) -> None:
        self._depth = depth
        # (outer keys, key type, key repr) -> (the item's value, its text): 1, 1.0 and True are
        # one dict key, and so are 0.0 and -0.0.
        self._pieces: dict[tuple[tuple[str, ...], type, str], tuple[Any, str]] = {}

    def text(self, cfg: DictConfig) -> str:
        container = OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)
        prefix, items = _outer_and_items(container, self._depth)
        if items is None or not _plain(items):
            return _dump(container)
        head = "".join(f"{'  ' * level}{name}:\n" for level, name in enumerate(prefix))
        texts = []
        for key, value in items.items():
            slot = (tuple(prefix), type(key), repr(key))
            cached = self._pieces.get(slot)
            if cached is None or not identical(cached[0], value):
                piece = _dump(_nest(prefix, {key: value}))
                if not piece.startswith(head) or piece.endswith(_OPEN_END):
                    return _dump(container)  # a piece that does not join up: the whole at once
                cached = self._pieces[slot] = (value, piece[len(head) :])
            texts.append(cached[1])
        return head + "".join(texts)

    def save(self, cfg: DictConfig, filename: str, output_dir: Path) -> None:
        """As Hydra's ``_save_config`` writes ``cfg``."""
        output_dir.mkdir(parents=True, exist_ok=True)
        with open(str(output_dir / filename), "w", encoding="utf-8") as file:
            file.write(self.text(cfg))


def _outer_and_items(container: Any, depth: int) -> tuple[list[str], dict | None]:
    """The keys leading to the mapping whose items are cached, and that mapping (None: emit the
    whole, e.g. an empty mapping, written in flow style as ``{}``)."""
    prefix: list[str] = []
    items = container
    for _ in range(depth - 1):
        if not isinstance(items, dict) or len(items) != 1:
            return prefix, None
        ((name, items),) = items.items()
        if not isinstance(name, str) or not name.isidentifier():
            return prefix, None  # a key YAML would quote: keep to the plain case
        prefix.append(name)
    if not isinstance(items, dict) or not items:
        return prefix, None
    return prefix, items


def _plain(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_plain(key) and _plain(item) for key, item in value.items())
    if isinstance(value, list):
        return all(_plain(item) for item in value)
    return isinstance(value, _PLAIN)


def _nest(prefix: list[str], items: dict) -> dict:
    for name in reversed(prefix):
        items = {name: items}
    return items


def _dump(container: Any) -> str:
    return yaml.dump(  # as OmegaConf.to_yaml
        container,
        default_flow_style=False,
        allow_unicode=True,
        sort_keys=False,
        Dumper=get_omega_conf_dumper(),
    )


def identical(a: Any, b: Any) -> bool:
    """Same YAML text: equal values of the same types, mapping keys in the same order
    (``1 == 1.0 == True`` and ``0.0 == -0.0``, but each is written differently)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            identical(key_a, key_b) and identical(a[key_a], b[key_b])
            for key_a, key_b in zip(a, b, strict=True)
        )
    if isinstance(a, list):
        return len(a) == len(b) and all(identical(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return bool(a == b)
