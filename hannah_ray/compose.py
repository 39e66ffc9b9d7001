"""Each trial's Hydra config, composed as ``ConfigLoader.load_sweep_config`` does, only faster.

Hydra composes every job's config from scratch (defaults tree, config files, merges): about 130 ms
of one core for a small app, most of what a short trial costs. Trials of a sweep usually differ only
in plain values (``lr=0.01``), and a plain value never changes the defaults tree. So the config is
composed by Hydra once per distinct set of config-group choices and Hydra overrides, and each trial
applies its value overrides to a copy with Hydra's own override code. Anything else (deletions,
dict values, ``key@package``, sweeps) is composed by Hydra itself, as before.
"""

from __future__ import annotations

import copy
import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from hydra.core.config_loader import ConfigLoader
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from omegaconf import DictConfig, OmegaConf, open_dict

try:  # Hydra's own override and folder-name code; without it, Hydra composes every trial.
    from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
except ImportError:  # pragma: no cover - a Hydra that moved them
    ConfigLoaderImpl = None  # type: ignore[assignment,misc]
    get_overrides_dirname = None  # type: ignore[assignment]

_VALUE_TYPES = (OverrideType.CHANGE, OverrideType.ADD, OverrideType.FORCE_ADD)


class SweepConfigComposer:
    """``compose(overrides)`` returns what ``load_sweep_config(master, overrides)`` would."""

    def __init__(
        self,
        loader: ConfigLoader,
        master: DictConfig,
        max_cached: int = 8,
        bases: Mapping[tuple[str, ...], DictConfig] | None = None,
        share_hydra: bool = False,
    ) -> None:
        """``bases``: compositions another composer of the same sweep made (``bases()``), e.g.
        the driver's, so that a trial worker starts without composing them again.
        ``share_hydra``: the configs composed from one base share one copy of its ``hydra`` node
        (the largest part of a config), set anew by each ``compose``, instead of a copy each; for
        one job at a time, as in a trial worker: a config holds only until the next ``compose``
        (a callback or task thread that keeps ``HydraConfig.get()`` past its job sees the next
        job's values; Hydra's ``JobReturn.hydra_cfg`` is a copy)."""
        self._loader = loader
        self._master = master
        # As Hydra reads them: unresolved (an override may hold ${...} for the job to resolve).
        hydra_overrides = OmegaConf.to_container(master.hydra.overrides.hydra, resolve=False)
        self._parser = OverridesParser.create()
        # Parsed once: the same for every trial (the parser takes ~0.5 ms a line).
        self._hydra_overrides = self._parser.parse_overrides(
            [str(line) for line in hydra_overrides or []]
        )
        self._bases: OrderedDict[tuple[str, ...], DictConfig] = OrderedDict(bases or {})
        self._max_cached = max_cached
        self._share_hydra = share_hydra
        self._shared_hydra: dict[tuple[str, ...], DictConfig] = {}
        while len(self._bases) > max_cached:
            self._bases.popitem(last=False)
        self._groups: dict[str, bool] = {}
        self._launch_env = _copied_environment(master)
        self._group_exists = self._groups_as_hydra_sees_them(loader, master)
        self._usable = self._group_exists is not None

    def _groups_as_hydra_sees_them(self, loader: ConfigLoader, master: DictConfig) -> Any:
        """``group_exists`` of the config repository Hydra composes from: the loader's, plus the
        ``hydra.searchpath`` entries (from the primary config or the command line), which Hydra
        adds to a per-composition copy only. None: let Hydra compose every trial."""
        if ConfigLoaderImpl is None or not isinstance(loader, ConfigLoaderImpl):
            return None
        try:
            from hydra._internal.config_repository import CachingConfigRepository

            repository = CachingConfigRepository(loader.repository)
            config_name = OmegaConf.select(master, "hydra.job.config_name", default=None)
            loader._process_config_searchpath(  # noqa: SLF001
                config_name, list(self._hydra_overrides), repository
            )
            return repository.group_exists
        except Exception:  # a Hydra whose internals moved: compose every trial with Hydra
            return None

    def bases(self) -> dict[tuple[str, ...], DictConfig]:
        """The compositions cached so far, keyed by their structural overrides (read-only use)."""
        return dict(self._bases)

    def compose(self, overrides: list[str]) -> DictConfig:
        with _environment_with(self._launch_env):
            return self._compose(overrides)

    def _compose(self, overrides: list[str]) -> DictConfig:
        split = self._split(overrides) if self._usable else None
        if split is None:
            return self._loader.load_sweep_config(self._master, list(overrides))
        structural, values, parsed = split
        config = self._copy_of_base(tuple(structural))
        ConfigLoaderImpl._apply_overrides_to_config(values, config)  # noqa: SLF001
        self._record_overrides(config, parsed)
        OmegaConf.copy_cache(from_config=self._master, to_config=config)
        return config

    def _split(
        self, overrides: list[str]
    ) -> tuple[list[str], list[Override], list[Override]] | None:
        """(structural override lines, value overrides, all parsed); None: let Hydra compose."""
        trial_parsed = self._parser.parse_overrides(list(overrides))
        parsed = [*self._hydra_overrides, *trial_parsed]
        structural: list[str] = []
        values: list[Override] = []
        for override in trial_parsed:
            # A trial's own search path changes which groups exist: Hydra rebuilds the repository.
            if override.is_sweep_override() or override.key_or_group == "hydra.searchpath":
                return None
            if self._is_value_override(override):
                values.append(override)
            elif override.is_hydra_override() or self._is_group_choice(override):
                structural.append(override.input_line or "")
            else:
                return None
        return structural, values, parsed

    def _is_value_override(self, override: Override) -> bool:
        return (
            override.type in _VALUE_TYPES
            and override.package is None
            and not override.is_hydra_override()
            and not isinstance(override.value(), dict)
            and not self._is_group(override.key_or_group)
        )

    def _is_group_choice(self, override: Override) -> bool:
        return (
            override.type == OverrideType.CHANGE
            and self._is_group(override.key_or_group)
            and isinstance(override.value(), str)
        )

    def _is_group(self, key: str) -> bool:
        if key not in self._groups:
            self._groups[key] = bool(self._group_exists(key))
        return self._groups[key]

    def _copy_of_base(self, key: tuple[str, ...]) -> DictConfig:
        base = self._base(key)
        if not self._share_hydra or "hydra" not in base:
            return copy.deepcopy(base)
        base_hydra = base._get_node("hydra")  # noqa: SLF001
        hydra = self._shared_hydra.get(key)
        if hydra is None:
            hydra = self._shared_hydra[key] = copy.deepcopy(base_hydra)
        else:  # the last job made it read-only (HydraConfig does): as in the base again
            # (setting a flag also drops the flags its nodes cached under the last job's config)
            hydra._set_flag("readonly", base_hydra._get_node_flag("readonly"))  # noqa: SLF001
        config = copy.deepcopy(base, memo={id(base_hydra): hydra})
        hydra._set_parent(config)  # noqa: SLF001
        return config

    def _base(self, key: tuple[str, ...]) -> DictConfig:
        if key in self._bases:
            self._bases.move_to_end(key)
        else:
            self._bases[key] = self._loader.load_sweep_config(self._master, list(key))
            if len(self._bases) > self._max_cached:
                evicted, _ = self._bases.popitem(last=False)
                self._shared_hydra.pop(evicted, None)
        return self._bases[key]

    @staticmethod
    def _record_overrides(config: DictConfig, parsed: list[Override]) -> None:
        """``hydra.overrides``, ``hydra.job.override_dirname`` and the ``env_copy`` variables'
        current values (the environment changes between trials of a worker: Ray sets
        ``CUDA_VISIBLE_DEVICES`` for each) as Hydra records them."""
        task = [o for o in parsed if not o.is_hydra_override()]
        config.hydra.overrides.task = [o.input_line for o in task]
        naming: Any = config.hydra.job.config.override_dirname
        config.hydra.job.override_dirname = get_overrides_dirname(
            overrides=task,
            kv_sep=naming.kv_sep,
            item_sep=naming.item_sep,
            exclude_keys=naming.exclude_keys,
        )
        config.hydra.runtime.cwd = os.getcwd()
        with open_dict(config.hydra):
            for key in config.hydra.job.env_copy:
                config.hydra.job.env_set[key] = os.environ[key]


def _copied_environment(master: DictConfig) -> dict[str, str]:
    """The ``hydra.job.env_copy`` variables as the launching process had them (Hydra copied them
    into the master config's ``env_set``)."""
    job = master.hydra.job
    copied = {}
    for key in job.get("env_copy") or []:
        try:
            copied[str(key)] = str(job.env_set[key])
        except Exception:  # noqa: BLE001 - not copied there: composing fails as Hydra's would
            continue
    return copied


@contextmanager
def _environment_with(variables: Mapping[str, str]) -> Iterator[None]:
    """``variables`` that this process's environment lacks, set while the block runs. A trial
    worker on another node of a Ray cluster has that node's environment, not the shell the sweep
    was started from; a value the worker has (``CUDA_VISIBLE_DEVICES``, set by Ray) wins."""
    missing = {key: value for key, value in variables.items() if key not in os.environ}
    os.environ.update(missing)
    try:
        yield
    finally:
        for key in missing:
            os.environ.pop(key, None)
