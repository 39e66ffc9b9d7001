"""The trial config composer gives exactly what Hydra's ``load_sweep_config`` gives."""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from hannah_ray.compose import SweepConfigComposer

CONF = Path(__file__).resolve().parent / "apps" / "conf"
SWEEP_OVERRIDES = [
    "hydra/sweeper=ray_optuna",
    "hydra.sweeper.n_trials=3",
    "hydra.job.config.override_dirname.exclude_keys=[seed]",
    "+x=interval(0, 1)",
    "db=alpha,beta,gamma",
]
TRIALS = [
    ["+x=0.5", "db=alpha"],
    ["+x=0.25", "db=beta", "db.name=renamed"],
    ["db=gamma", "++y=3", "+x=0.125", "+seed=7"],
    ["+x=[1, 2]", "+nested.deep.value=abc", "db=beta"],
    ["+x=0.5", "db=alpha", "+label=${db.name}_copy"],
    ["+x=0.5", "hydra.job.name=custom", "db=beta"],
    ["+x=0.75", "db=beta", "~db.name"],  # a deletion: Hydra composes it
    ["+x=0.5", "x=0.6", "db=alpha"],  # repeated keys apply in order
]


@pytest.fixture
def loader_and_master(
    hydra_restore_singletons: object,
) -> Iterator[tuple[object, DictConfig]]:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration("config", SWEEP_OVERRIDES, RunMode.MULTIRUN)
        yield loader, master


def _same(fast: DictConfig, slow: DictConfig) -> None:
    assert OmegaConf.to_yaml(fast) == OmegaConf.to_yaml(slow)
    assert OmegaConf.is_struct(fast) == OmegaConf.is_struct(slow)
    assert OmegaConf.is_readonly(fast.hydra) == OmegaConf.is_readonly(slow.hydra)
    assert OmegaConf.get_type(fast, "hydra") == OmegaConf.get_type(slow, "hydra")


def test_every_trial_config_matches_hydras_own(loader_and_master) -> None:
    loader, master = loader_and_master
    composer = SweepConfigComposer(loader, master)
    for _ in range(2):  # the second round composes from cached bases: they must not change
        for overrides in TRIALS:
            _same(composer.compose(overrides), loader.load_sweep_config(master, overrides))


def _hydra_compositions(loader: object, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The overrides of each composition Hydra makes from now on (recorded, still made)."""
    calls: list[list[str]] = []
    compose_with_hydra = loader.load_sweep_config

    def counted(config: DictConfig, overrides: list[str]) -> DictConfig:
        calls.append(overrides)
        return compose_with_hydra(config, overrides)

    monkeypatch.setattr(loader, "load_sweep_config", counted)
    return calls


def test_value_only_trials_reuse_one_composition(loader_and_master, monkeypatch) -> None:
    loader, master = loader_and_master
    composer = SweepConfigComposer(loader, master)
    calls = _hydra_compositions(loader, monkeypatch)
    for value in (0.1, 0.2, 0.3):
        assert composer.compose([f"+x={value}", "db=beta"]).x == value
    composer.compose(["+x=0.4", "db=gamma"])
    assert calls == [["db=beta"], ["db=gamma"]]


def test_a_worker_starts_from_the_drivers_compositions(loader_and_master, monkeypatch) -> None:
    """The driver's compositions travel to the workers pickled (in the payload); a composer given
    them composes what Hydra composes without composing those again."""
    loader, master = loader_and_master
    driver = SweepConfigComposer(loader, master)
    for overrides in TRIALS:
        driver.compose(overrides)
    shipped = pickle.loads(pickle.dumps(driver.bases()))
    expected = {
        tuple(o): loader.load_sweep_config(master, o)
        for o in (["+x=0.3", "db=beta"], ["db=gamma", "+x=0.9"], ["+x=0.1", "db=alpha"])
    }
    calls = _hydra_compositions(loader, monkeypatch)
    worker = SweepConfigComposer(loader, master, bases=shipped)
    for overrides, composed_by_hydra in expected.items():
        _same(worker.compose(list(overrides)), composed_by_hydra)
    assert calls == []


def test_a_bad_override_fails_as_hydra_fails(loader_and_master) -> None:
    loader, master = loader_and_master
    composer = SweepConfigComposer(loader, master)
    for overrides in (["+db.name=again"], ["missing_key=1"], ["db=delta"]):
        with pytest.raises(ConfigCompositionException) as hydra_error:
            loader.load_sweep_config(master, overrides)
        with pytest.raises(type(hydra_error.value)):
            composer.compose(overrides)


def test_env_copy_takes_the_environment_of_each_trial(loader_and_master, monkeypatch) -> None:
    """Hydra copies hydra.job.env_copy variables at each composition; a cached base must not keep
    the first trial's (Ray sets CUDA_VISIBLE_DEVICES for each trial of a worker)."""
    loader, _ = loader_and_master
    monkeypatch.setenv("HANNAH_RAY_TEST_COPIED", "at the start")
    copied = "hydra.job.env_copy=[HANNAH_RAY_TEST_COPIED]"
    master = loader.load_configuration("config", [*SWEEP_OVERRIDES, copied], RunMode.MULTIRUN)
    composer = SweepConfigComposer(loader, master)
    for value in ("first", "second"):
        monkeypatch.setenv("HANNAH_RAY_TEST_COPIED", value)
        trial = [f"+x={len(value)}", "db=beta"]
        fast = composer.compose(trial)
        _same(fast, loader.load_sweep_config(master, trial))
        assert value == fast.hydra.job.env_set.HANNAH_RAY_TEST_COPIED


def test_env_copy_falls_back_to_the_launching_environment(loader_and_master, monkeypatch) -> None:
    """A trial worker on another node of a Ray cluster lacks a variable of the shell the sweep
    was started from (an API key): it gets the value the sweep started with, as with a launcher
    that composes in the launching process; a value the worker has wins."""
    loader, _ = loader_and_master
    monkeypatch.setenv("HANNAH_RAY_TEST_COPIED", "from the shell")
    copied = "hydra.job.env_copy=[HANNAH_RAY_TEST_COPIED]"
    master = loader.load_configuration("config", [*SWEEP_OVERRIDES, copied], RunMode.MULTIRUN)
    composer = SweepConfigComposer(loader, master)
    monkeypatch.delenv("HANNAH_RAY_TEST_COPIED")
    for trial in (["+x=1", "db=beta"], ["+x=2", "db=gamma"], ["~db"]):  # cached, new, by Hydra
        config = composer.compose(trial)
        assert config.hydra.job.env_set.HANNAH_RAY_TEST_COPIED == "from the shell"
    assert "HANNAH_RAY_TEST_COPIED" not in os.environ  # only while composing
    monkeypatch.setenv("HANNAH_RAY_TEST_COPIED", "the worker's")
    config = composer.compose(["+x=3", "db=beta"])
    assert config.hydra.job.env_set.HANNAH_RAY_TEST_COPIED == "the worker's"


@pytest.mark.parametrize("where", ["primary config", "command line", "trial"])
def test_config_groups_found_through_hydra_searchpath_are_groups(
    tmp_path: Path, hydra_restore_singletons: object, where: str
) -> None:
    """Hydra adds ``hydra.searchpath`` to a per-composition copy of its repository only; a group
    that exists only there must still be composed as a group, not set as a string."""
    conf, extra = tmp_path / "conf", tmp_path / "extra"
    (extra / "model").mkdir(parents=True)
    conf.mkdir()
    (extra / "model" / "small.yaml").write_text("width: 8\n")
    (extra / "model" / "big.yaml").write_text("width: 512\n")
    searchpath = f"[file://{extra}]"
    primary = "defaults:\n  - model: small\n  - _self_\nlr: 0.1\n"
    overrides = ["hydra/sweeper=ray_optuna", "hydra.sweeper.n_trials=2", "model=small,big"]
    trials: list[list[str]] = [["model=big"], ["model=big", "lr=0.5"], ["model=small"]]
    if where == "primary config":
        primary += f"hydra:\n  searchpath: {searchpath}\n"
    elif where == "command line":
        overrides.append(f"hydra.searchpath={searchpath}")
    else:  # a trial's own search path: Hydra rebuilds the repository for that composition
        primary = "lr: 0.1\n"
        trials = [[f"hydra.searchpath={searchpath}", f"+{t[0]}", *t[1:]] for t in trials]
    (conf / "config.yaml").write_text(primary)
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration("config", overrides, RunMode.MULTIRUN)
        composer = SweepConfigComposer(loader, master)
        for trial in trials:
            fast = composer.compose(trial)
            _same(fast, loader.load_sweep_config(master, trial))
        assert fast.model.width == 8 and composer.compose(trials[0]).model.width == 512
