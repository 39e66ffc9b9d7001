"""Storage URLs, credential masking, sampler building and sweeper settings (no Ray needed)."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import optuna
import pytest
from apps.sweep_settings import sweep_settings
from hydra.utils import instantiate  # noqa: F401  (Hydra importable alongside)
from omegaconf import OmegaConf

from hannah_ray.errors import SweepConfigError
from hannah_ray.samplers import build_sampler, grid_from_distributions
from hannah_ray.schedulers import build_scheduler
from hannah_ray.search_space import parse_search_space
from hannah_ray.storage import create_storage, mask_url, resolve_storage_url
from hydra_plugins.hannah_ray_sweeper.config import _SAMPLERS, _SCHEDULERS, RayOptunaSweeperConf


def test_mask_url_hides_the_password() -> None:
    assert (
        mask_url("postgresql://user:s3cret@db:5432/optuna")
        == "postgresql://user:***@db:5432/optuna"
    )
    assert "s3cret" not in mask_url("mysql+pymysql://u:s3cret@h/db")
    assert mask_url(None) == "memory (not stored)"


def test_relative_file_storages_resolve_against_the_launch_folder() -> None:
    assert resolve_storage_url("sqlite:///a.db", "/work") == "sqlite:////work/a.db"
    assert resolve_storage_url("sqlite:////abs/a.db", "/work") == "sqlite:////abs/a.db"
    assert resolve_storage_url("journal:///j.log", "/work") == "journal:////work/j.log"
    assert resolve_storage_url("postgresql://h/db", "/work") == "postgresql://h/db"


def test_sqlite_storage_uses_wal(tmp_path: Path) -> None:
    storage = create_storage(f"sqlite:///{tmp_path}/s.db")
    optuna.create_study(storage=storage, study_name="s")
    mode = sqlite3.connect(tmp_path / "s.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_journal_storage_round_trips(tmp_path: Path) -> None:
    storage = create_storage(f"journal:///{tmp_path}/j.journal")
    study = optuna.create_study(storage=storage, study_name="j")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    again = optuna.load_study(
        study_name="j", storage=create_storage(f"journal:///{tmp_path}/j.journal")
    )
    assert len(again.trials) == 2


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("notaurl", "is not a storage URL"),
        ("sqlite:////no/such/dir/x.db", "does not exist"),
        ("journal:////no/such/dir/x.journal", "does not exist"),
        ("postgresql://user:s3cret@127.0.0.1:1/db", "Cannot open"),
        ("redis://:s3cret@127.0.0.1:1/0", "Cannot open hydra.sweeper.storage='redis://:...@127"),
    ],
)
def test_bad_storages_fail_fast_without_leaking_the_password(url: str, message: str) -> None:
    with pytest.raises(SweepConfigError, match=message) as error:
        create_storage(url)
    assert "s3cret" not in str(error.value)


@pytest.mark.parametrize("name", sorted(_SAMPLERS))
def test_every_sampler_config_builds_its_optuna_sampler(name: str) -> None:
    config = OmegaConf.to_container(OmegaConf.structured(_SAMPLERS[name]))
    space = parse_search_space(["x=choice(1, 2)", "y=range(0, 3)"])
    sampler = build_sampler(config, space.distributions)
    assert type(sampler).__name__ == config["_target_"].rsplit(".", 1)[1]


def test_a_sampler_whose_package_is_missing_fails_before_any_trial(monkeypatch) -> None:
    # cmaes is installed here: hide it, as on a machine without it.
    import hannah_ray.samplers as samplers

    real = samplers.find_spec
    monkeypatch.setattr(samplers, "find_spec", lambda name: None if name == "cmaes" else real(name))
    with pytest.raises(
        SweepConfigError, match=r"CmaEsSampler needs .*\['cmaes'\].*pip install cmaes"
    ):
        build_sampler({"_target_": "optuna.samplers.CmaEsSampler"}, {})


def test_a_null_sampler_argument_means_the_samplers_own_default() -> None:
    # Our TPE config says null for defaults Optuna 5 spells None; older Optuna reads None as off.
    config = {"_target_": "apps.samplers.DefaultsLikeOldOptuna", "consider_prior": None}
    sampler = build_sampler({**config, "prior_weight": None, "seed": None}, {})
    assert (sampler.consider_prior, sampler.prior_weight) == (True, 1.0)
    assert build_sampler({**config, "prior_weight": 2.0}, {}).prior_weight == 2.0


def test_unknown_sampler_argument_names_what_is_allowed() -> None:
    with pytest.raises(SweepConfigError, match="no argument\\(s\\) \\['speed'\\].*Allowed"):
        build_sampler({"_target_": "optuna.samplers.RandomSampler", "speed": 1}, {})


def test_seed_is_shifted_on_resume() -> None:
    sampler = build_sampler(
        {"_target_": "optuna.samplers.RandomSampler", "seed": 3}, {}, seed_offset=4
    )
    fresh = optuna.samplers.RandomSampler(seed=7)
    assert sampler._rng.rng.random() == fresh._rng.rng.random()


def test_grid_needs_discrete_parameters() -> None:
    space = parse_search_space(["x=interval(0, 1)"])
    with pytest.raises(SweepConfigError, match="key 'x'"):
        grid_from_distributions(space.distributions)
    grid = grid_from_distributions(parse_search_space(["x=range(0.0, 1.0, 0.25)"]).distributions)
    assert grid == {"x": [0.0, 0.25, 0.5, 0.75]}


def test_defaultsweep_settings() -> None:
    settings = sweep_settings()
    assert settings.directions == ["minimize"]
    assert settings.n_jobs is None and settings.reuse_actors and settings.import_turns
    assert settings.cpu_per_trial == 1.0 and settings.gpu_per_trial == 0.0
    assert settings.tune_logs == ("json", "csv")
    # Unset ray.init arguments are left to Ray (the dashboard starts by Ray's own default).
    assert settings.ray_init == {"log_to_driver": False}


def test_the_dashboard_is_a_key_of_its_own_and_goes_to_ray_init_when_set() -> None:
    # hydra.sweeper.ray.include_dashboard=false works without a "+".
    assert "include_dashboard" in OmegaConf.structured(RayOptunaSweeperConf).ray
    settings = sweep_settings(**{"ray.include_dashboard": False, "ray.num_cpus": 4})
    assert settings.ray_init == {"include_dashboard": False, "num_cpus": 4, "log_to_driver": False}


@pytest.mark.parametrize(
    ("value", "writers"),
    [
        (True, ("json", "csv", "tensorboard")),
        (False, ()),
        (["tensorboard"], ("tensorboard",)),
        (["csv", "json", "csv"], ("csv", "json")),
    ],
)
def test_tune_logs_name_tunes_result_writers(value: object, writers: tuple[str, ...]) -> None:
    assert sweep_settings(tune_logs=value).tune_logs == writers


def test_multi_objectivesweep_settings() -> None:
    settings = sweep_settings(direction=["minimize", "maximize"], metric=["loss", "acc"])
    assert settings.directions == ["minimize", "maximize"]
    assert settings.metric == ["loss", "acc"]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("direction", "down", "hydra.sweeper.direction='down'"),
        ("direction", [], "hydra.sweeper.direction"),
        ("n_trials", -1, "hydra.sweeper.n_trials=-1"),
        ("n_jobs", 0, "hydra.sweeper.n_jobs=0"),
        ("max_failure_rate", 1.5, "max_failure_rate=1.5"),
        ("metric", ["a", "b"], "one key name per direction"),
        ("resources_per_trial.gpu", -1, "resources_per_trial.gpu=-1"),
        ("resources_per_trial.gpu", 1.5, "gpu=1.5: allowed: a fraction up to 1"),
        ("ray.num_cpu", 2, "ray.init has no argument"),
        ("trial_timeout_s", 0, "trial_timeout_s=0.0: allowed: a number of seconds > 0"),
        ("heartbeat_interval_s", -1, "heartbeat_interval_s=-1.0"),
        ("orphan_grace_s", 5, "orphan_grace_s=5.0 must be larger than"),
        ("tune_logs", ["json", "tbx"], r"tune_logs=\['json', 'tbx'\]: allowed: true, false"),
    ],
)
def test_bad_settings_name_key_value_and_what_is_allowed(
    key: str, value: object, message: str
) -> None:
    with pytest.raises(SweepConfigError, match=message):
        sweep_settings(**{key: value})


def test_storage_password_is_masked_in_the_config_hydra_writes() -> None:
    from hannah_ray.storage import mask_storage_secrets, storage_secrets

    url = "postgresql://user:s3cret@db/optuna"
    config = OmegaConf.create(
        {
            "hydra": {
                "sweeper": {"storage": url},
                "overrides": {"hydra": [f"hydra.sweeper.storage={url}"], "task": ["x=1"]},
            }
        }
    )
    OmegaConf.set_readonly(config.hydra, True)
    mask_storage_secrets(config, storage_secrets(config))
    text = OmegaConf.to_yaml(config)
    assert "s3cret" not in text
    assert "postgresql://user:***@db/optuna" in text


@pytest.mark.parametrize(
    ("url", "written", "decoded"),
    [
        # Percent-encoded, as a password with '@', '/', ':' or '#' must be written.
        ("postgresql://bob:p%40ss%2Fw0rd@db/optuna", "p%40ss%2Fw0rd", "p@ss/w0rd"),
        # An unencoded '@': everything up to the authority's last '@' is the password.
        ("postgresql+psycopg://bob:s@cr@t@db/optuna", "s@cr@t", "s@cr@t"),
        # As a query parameter, which the PostgreSQL and MySQL drivers accept.
        ("postgresql://bob@db/optuna?sslmode=off&password=s%3Dcret", "s%3Dcret", "s=cret"),
        ("redis://:s3cret@localhost:6379/0", "s3cret", "s3cret"),
    ],
)
def test_every_written_form_of_a_storage_password_is_masked(
    url: str, written: str, decoded: str
) -> None:
    from hannah_ray.storage import mask_storage_secrets, storage_secrets

    config = OmegaConf.create(
        {
            "hydra": {
                "sweeper": {"storage": url},
                "overrides": {"hydra": [f"hydra.sweeper.storage={url}"], "task": ["x=1"]},
            }
        }
    )
    mask_storage_secrets(config, storage_secrets(config))
    text = OmegaConf.to_yaml(config)
    for shown in (text, mask_url(url)):
        assert written not in shown and decoded not in shown
        assert "***" in shown and "bob" in shown or url.startswith("redis")


def test_storage_from_an_environment_variable_stays_an_interpolation(monkeypatch) -> None:
    from hannah_ray.storage import mask_storage_secrets, storage_secrets

    monkeypatch.setenv("OPTUNA_STORAGE", "postgresql://user:s3cret@db/optuna")
    config = OmegaConf.create(
        {
            "hydra": {
                "sweeper": {"storage": "${oc.env:OPTUNA_STORAGE}"},
                "overrides": {"hydra": [], "task": []},
            }
        }
    )
    assert "s3cret" in storage_secrets(config)
    mask_storage_secrets(config, storage_secrets(config))
    assert "s3cret" not in OmegaConf.to_yaml(config)
    assert config.hydra.sweeper.storage == "postgresql://user:s3cret@db/optuna"  # still usable


def test_orphans_of_a_killed_sweep_are_failed_and_requeued_live_ones_left_alone() -> None:
    import time

    import optuna
    from optuna.trial import TrialState

    from hannah_ray.heartbeat import HEARTBEAT_ATTR, reclaim_orphans

    study = optuna.create_study()
    storage = study._storage
    stale, fresh, foreign = (
        study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}) for _ in range(3)
    )
    storage.set_trial_system_attr(stale._trial_id, HEARTBEAT_ATTR, time.time() - 120)
    storage.set_trial_system_attr(fresh._trial_id, HEARTBEAT_ATTR, time.time())
    assert reclaim_orphans(study, grace_s=60, requeue=True) == 1
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAIL, TrialState.RUNNING, TrialState.RUNNING, TrialState.WAITING]
    assert study.trials[0].user_attrs["fail_reason"].startswith("Orphaned")
    assert study.trials[3].params == {"x": stale.params["x"]} or study.trials[3].system_attrs[
        "fixed_params"
    ] == {"x": stale.params["x"]}
    assert study.trials[3].user_attrs == {"requeued_from_trial": 0}
    del foreign


@pytest.mark.parametrize(
    ("space", "queued"),
    [
        ({"x": optuna.distributions.IntDistribution(0, 5)}, True),
        ({"x": optuna.distributions.IntDistribution(3, 5)}, False),  # the rerun narrowed x
        ({"x": optuna.distributions.CategoricalDistribution([0, 1])}, False),
        ({"y": optuna.distributions.IntDistribution(0, 1)}, True),  # x no longer swept
    ],
)
def test_an_orphan_is_queued_again_only_where_its_parameters_fit_the_rerun(
    space, queued: bool
) -> None:
    import time

    from optuna.trial import TrialState

    from hannah_ray.heartbeat import HEARTBEAT_ATTR, reclaim_orphans

    study = optuna.create_study()
    study.enqueue_trial({"x": 2})
    orphan = study.ask({"x": optuna.distributions.IntDistribution(0, 2)})  # x=2, left RUNNING
    study._storage.set_trial_system_attr(orphan._trial_id, HEARTBEAT_ATTR, time.time() - 600)
    assert reclaim_orphans(study, grace_s=60, requeue=True, space=space) == 1
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == int(queued)


def test_a_queued_trial_the_rerun_cannot_take_is_set_aside_before_any_trial() -> None:
    """An earlier run requeued an orphan and was killed before running it; this run narrows the
    range. Optuna would run the queued point anyway (with only a warning)."""
    from optuna.distributions import IntDistribution
    from optuna.trial import TrialState

    from hannah_ray.queued import set_aside_unfit_queued

    study = optuna.create_study()
    study.enqueue_trial({"x": 2}, user_attrs={"requeued_from_trial": 0})  # out of the new range
    study.enqueue_trial({"x": 4}, user_attrs={"requeued_from_trial": 1})  # in it
    study.enqueue_trial({"x": 1})  # the user's own: run as given, as Optuna does
    assert set_aside_unfit_queued(study, {"x": IntDistribution(3, 5)}) == 1
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAIL, TrialState.WAITING, TrialState.WAITING]
    assert study.trials[0].user_attrs["fail_reason"] == (
        "Queued, but not in this run's search space: x=2 is not in "
        "IntDistribution(high=5, log=False, low=3, step=1)."
    )


def test_in_a_grid_sweep_a_queued_point_off_the_grid_is_set_aside() -> None:
    """Within the swept range but no grid point: it would take a missing point's turn."""
    from optuna.distributions import IntDistribution
    from optuna.trial import TrialState

    from hannah_ray.queued import set_aside_unfit_queued

    study = optuna.create_study()
    study.enqueue_trial({"x": 3})  # the user's, in range(0, 11), not in the grid [0, 5, 10]
    study.enqueue_trial({"x": 5})
    grid = [{"x": 0}, {"x": 5}, {"x": 10}]
    assert set_aside_unfit_queued(study, {"x": IntDistribution(0, 10)}, grid) == 1
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.WAITING]
    assert study.trials[0].user_attrs["fail_reason"] == (
        "Queued, but not a point of this run's grid: x=3 is none of the grid's [0, 5, 10]."
    )


def test_a_queued_trial_another_sweep_starts_meanwhile_is_left_to_it() -> None:
    from optuna.distributions import IntDistribution
    from optuna.trial import TrialState

    from hannah_ray.queued import _fail_waiting

    study = optuna.create_study()
    study.enqueue_trial({"x": 2}, user_attrs={"requeued_from_trial": 0})
    (seen_waiting,) = study.get_trials(states=(TrialState.WAITING,))
    study.ask({"x": IntDistribution(0, 5)})  # another sweep pops it: RUNNING
    assert not _fail_waiting(study, seen_waiting, "set aside")
    assert study.trials[0].state == TrialState.RUNNING
    assert "fail_reason" not in study.trials[0].user_attrs


def test_a_trial_of_a_sweep_with_a_slower_heartbeat_is_not_taken_for_an_orphan() -> None:
    import time

    import optuna
    from optuna.trial import TrialState

    from hannah_ray.heartbeat import reclaim_orphans, stamp

    study = optuna.create_study()
    slow, dead = (study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}) for _ in range(2))
    # A live sweep beating every 300 s, last beat 200 s ago; a dead one that beat every 10 s.
    stamp(study._storage, slow._trial_id, interval_s=300)
    stamp(study._storage, dead._trial_id, interval_s=10)
    for trial in (slow, dead):
        study._storage.set_trial_system_attr(
            trial._trial_id, "hannah_ray:heartbeat", time.time() - 200
        )
    assert reclaim_orphans(study, grace_s=120, requeue=False) == 1
    assert [t.state for t in study.trials] == [TrialState.RUNNING, TrialState.FAIL]


def test_storage_writes_are_retried_while_sqlite_is_locked() -> None:
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import OperationalError

    from hannah_ray.storage import retry_when_locked

    calls = []

    def locked_twice() -> str:
        calls.append(1)
        if len(calls) < 3:
            try:
                raise OperationalError("UPDATE trials", {}, Exception("database is locked"))
            except OperationalError as error:  # what Optuna's RDBStorage raises instead
                raise StorageInternalError("An exception is raised during the commit.") from error
        return "stored"

    assert retry_when_locked(locked_twice, "test", first_delay_s=0) == "stored"
    assert len(calls) == 3

    def broken() -> None:
        calls.append(1)
        raise OperationalError("UPDATE trials", {}, Exception("no such table: trials"))

    calls.clear()
    with pytest.raises(OperationalError, match="no such table"):
        retry_when_locked(broken, "test", first_delay_s=0)
    assert len(calls) == 1  # only a locked database is worth another try


@pytest.mark.parametrize(
    ("url", "connect_args"),
    [
        ("sqlite:///study.db", {"timeout": 60}),
        ("postgresql://user:pw@db/optuna", {"connect_timeout": 10}),  # psycopg 3
        ("postgresql+psycopg2://user:pw@db/optuna", {"connect_timeout": 10}),
        ("postgresql+pg8000://user:pw@db/optuna", None),  # its timeout bounds every read
        ("mysql://user:pw@db/optuna", {"connect_timeout": 10}),  # mysqlclient
        ("mysql+pymysql://user:pw@db/optuna", {"connect_timeout": 10}),
        ("mysql+mysqlconnector://user:pw@db/optuna", None),
        ("postgresql+asyncpg://user:pw@db/optuna", None),
    ],
)
def test_each_driver_gets_its_own_connect_timeout_argument(
    url: str, connect_args: dict | None
) -> None:
    from sqlalchemy.engine import make_url

    from hannah_ray.storage import engine_kwargs

    kwargs = engine_kwargs(make_url(url))
    assert kwargs.get("connect_args") == connect_args  # a driver we do not know gets none
    assert kwargs["pool_pre_ping"] is True


def test_queued_trials_are_counted_in_the_results(tmp_path: Path) -> None:
    import yaml

    from hannah_ray.results import write_results

    study = optuna.create_study()
    study.enqueue_trial({"x": 1})
    study.tell(study.ask({"x": optuna.distributions.IntDistribution(0, 2)}), 1.0)
    study.enqueue_trial({"x": 2})  # a point queued for a later run
    write_results(study, str(tmp_path), "memory")
    counts = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())["n_trials"]
    assert counts == {"complete": 1, "pruned": 0, "fail": 0, "running": 0, "waiting": 1}
    with open(tmp_path / "trials.csv") as table:
        rows = list(csv.DictReader(table))
    assert [(row["state"], row["params.x"]) for row in rows] == [
        ("COMPLETE", "1"),
        ("WAITING", "2"),
    ]


def test_the_console_summary_says_when_no_trial_completed() -> None:
    from hannah_ray.results import describe_results

    counts = {"complete": 0, "pruned": 0, "fail": 3, "running": 0}
    assert describe_results({"n_trials": counts}) == "No COMPLETE trial, so no best one (3 fail)"


def test_a_grid_rerun_runs_failed_and_unrun_points_not_running_or_queued_ones() -> None:
    from optuna.distributions import IntDistribution
    from optuna.trial import TrialState, create_trial

    from hannah_ray.study import grid_points_to_run

    grid = [{"x": x} for x in range(5)]
    states = [TrialState.COMPLETE, TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]
    trials = [
        create_trial(
            state=state,
            params={"x": x},
            distributions={"x": IntDistribution(0, 4)},
            value=0.0 if state == TrialState.COMPLETE else None,
        )
        for x, state in enumerate(states)
    ]
    missing, to_queue = grid_points_to_run(grid, trials)
    assert missing == [{"x": 1}, {"x": 3}, {"x": 4}]
    assert to_queue == [{"x": 1}, {"x": 4}]


def test_ray_inits_hidden_options_are_allowed() -> None:
    # ray.init takes these from **kwargs: its signature does not list them.
    settings = sweep_settings(**{"ray._temp_dir": "/scratch/ray", "ray._system_config": {"a": 1}})
    assert settings.ray_init["_temp_dir"] == "/scratch/ray"
    assert settings.ray_init["_system_config"] == {"a": 1}
    with pytest.raises(SweepConfigError, match=r"no argument\(s\) \['_tmp_dir'\].*'_temp_dir'"):
        sweep_settings(**{"ray._tmp_dir": "/scratch/ray"})


def test_directions_in_any_case_as_optuna_takes_them() -> None:
    assert sweep_settings(direction=["MAXIMIZE", "Minimize"]).directions == ["maximize", "minimize"]


def test_asha_rungs_may_be_fractions_of_an_epoch() -> None:
    # val_check_interval < 1 reports at epochs 0.5, 1, 1.5, ...
    config = OmegaConf.merge(
        OmegaConf.structured(_SCHEDULERS["asha"]), {"grace_period": 0.5, "max_t": 2.5}
    )
    scheduler = build_scheduler(OmegaConf.to_container(config), ["minimize"])
    assert (scheduler._brackets[0]._rungs[-1][0], scheduler._max_t) == (0.5, 2.5)
    default = OmegaConf.to_container(OmegaConf.structured(_SCHEDULERS["asha"]))
    scheduler = build_scheduler(default, ["minimize"])
    assert scheduler._brackets[0]._rungs[-1][0] == 1 and isinstance(scheduler._max_t, int)


def test_qmc_and_grid_seeds_are_not_shifted_on_resume() -> None:
    # QMC continues its sequence from the study; a shifted seed would start another sequence.
    config = {"_target_": "optuna.samplers.QMCSampler", "seed": 3, "scramble": True}
    assert build_sampler(config, {}, seed_offset=4)._seed == 3


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"y": [1, 2]}, r"grids \['y'\], but the sweep's parameters are \['x'\]"),
        ({"x": [1, 7]}, r"search_space.x: \[7\] outside the swept IntDistribution"),
        ({"x": []}, r"search_space.x=\[\]: allowed: a non-empty list"),
    ],
)
def test_a_given_grid_must_fit_the_swept_keys(grid: dict, message: str) -> None:
    space = parse_search_space(["x=range(1, 4)"])
    with pytest.raises(SweepConfigError, match=message):
        build_sampler(
            {"_target_": "optuna.samplers.GridSampler", "search_space": grid}, space.distributions
        )


def test_a_log_int_range_can_be_gridded() -> None:
    space = parse_search_space(["x=tag(log, range(1, 5))"])
    assert grid_from_distributions(space.distributions) == {"x": [1, 2, 3, 4]}


def test_a_grid_lists_what_a_custom_search_space_adds() -> None:
    space = parse_search_space(["x=range(1, 4)"])
    grid = {"_target_": "optuna.samplers.GridSampler", "search_space": None}
    with pytest.raises(
        SweepConfigError, match=r"search_space=null grids the swept keys only.*\['z'\]"
    ):
        build_sampler(grid, space.distributions, custom_keys={"z"})
    listed = {**grid, "search_space": {"x": [1, 2], "z": [0.5], "w": [1]}}
    build_sampler(listed, space.distributions, custom_keys={"z"})  # w: a branch not yet seen
    with pytest.raises(SweepConfigError, match=r"grids \['w', 'x', 'z'\], but the sweep's"):
        build_sampler(listed, space.distributions)  # no custom_search_space: z and w are wrong
    with pytest.raises(SweepConfigError, match=r"parameters are \['x', 'z'\]"):
        build_sampler({**grid, "search_space": {"x": [1]}}, space.distributions, custom_keys={"z"})


def test_asha_numbers_given_as_strings_are_numbers() -> None:
    # ${oc.env:MAX_EPOCHS} or max_t='10' give a string, which the config makes a number.
    config = OmegaConf.merge(OmegaConf.structured(_SCHEDULERS["asha"]), {"max_t": "10"})
    scheduler = build_scheduler(OmegaConf.to_container(config), ["minimize"])
    assert scheduler._max_t == 10 and isinstance(scheduler._max_t, int)


def test_trials_fit_per_node_not_by_the_clusters_totals() -> None:
    from hannah_ray.sweep import trials_that_fit

    # Shaped as ray.nodes() lists them; a two-node cluster cannot run here.
    nodes = [
        {"Alive": True, "Resources": {"CPU": 8.0, "GPU": 1.0}},
        {"Alive": True, "Resources": {"CPU": 8.0, "GPU": 1.0}},
        {"Alive": False, "Resources": {"CPU": 8.0, "GPU": 4.0}},
    ]
    assert trials_that_fit(nodes, {"CPU": 1.0, "GPU": 2.0}) == 0  # 2 GPUs in all, 1 per node
    assert trials_that_fit(nodes, {"CPU": 1.0, "GPU": 0.25}) == 8
    assert trials_that_fit(nodes, {"CPU": 3.0}) == 4


def test_a_grid_point_a_custom_key_does_not_apply_to_is_held_without_it() -> None:
    from optuna.distributions import CategoricalDistribution, IntDistribution
    from optuna.trial import TrialState, create_trial

    from hannah_ray.study import grid_points_to_run

    # A custom search space suggests db.port for alpha only.
    grid = [{"db": db, "db.port": port} for db in ("alpha", "beta") for port in (1, 2)]
    db = CategoricalDistribution(["alpha", "beta"])
    finished = [
        create_trial(params={"db": "beta"}, distributions={"db": db}, value=1.0),
        create_trial(
            params={"db": "alpha", "db.port": 1},
            distributions={"db": db, "db.port": IntDistribution(1, 2)},
            value=1.0,
        ),
        create_trial(state=TrialState.RUNNING),  # not sampled yet: holds no point
    ]
    missing, _ = grid_points_to_run(grid, finished, optional={"db.port"})
    assert missing == [{"db": "alpha", "db.port": 2}]
    # Without a custom search space, db.port is a swept key the beta trial lacks (new to the
    # grid): it holds nothing.
    missing, _ = grid_points_to_run(grid, finished)
    assert missing == [point for point in grid if point != {"db": "alpha", "db.port": 1}]
