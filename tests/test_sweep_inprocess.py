"""Sweeps run in this process through Hydra's test utilities, on the session's real Ray instance."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import optuna
import pytest
from apps import tasks
from optuna.trial import TrialState

from hannah_ray.errors import SweepConfigError


def _numbered_job_dirs(sweep_dir: Path) -> list[int]:
    return sorted(int(p.name) for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit())


def test_sphere_sweep_writes_results_that_agree_with_the_study(run_sweep, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path}/sphere.db"
    run = run_sweep(
        tasks.sphere,
        [
            "+x=interval(-5.5, 5.5)",
            "+y=choice(-5, 0, 5)",
            "hydra.sweeper.n_trials=30",
            "hydra.sweeper.n_jobs=2",
            "hydra.sweeper.sampler.seed=1",
            f"hydra.sweeper.storage={storage}",
            "hydra.sweeper.study_name=sphere",
        ],
    )
    study = optuna.load_study(study_name="sphere", storage=storage)
    assert len(study.trials) == 30
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert study.best_value < 1.0
    results = run.results()
    assert results["best_value"] == pytest.approx(study.best_value)
    assert results["best_params"] == study.best_params
    assert results["best_trial"]["job_dir"] == str(run.sweep_dir / str(study.best_trial.number))
    assert len(run.returns) == 30
    assert _numbered_job_dirs(run.sweep_dir) == list(range(30))
    table = run.trials_table()
    assert [int(row["number"]) for row in table] == list(range(30))
    best_row = table[study.best_trial.number]
    assert float(best_row["value"]) == pytest.approx(study.best_value)
    assert best_row["state"] == "COMPLETE" and float(best_row["duration_s"]) > 0
    assert float(best_row["params.+x"]) == pytest.approx(study.best_params["+x"])
    # Every trial is a full Hydra job: its own folder with .hydra/ files and a log file.
    job = run.sweep_dir / "7"
    assert (job / ".hydra" / "config.yaml").is_file()
    assert (job / ".hydra" / "overrides.yaml").read_text().count("+x=") == 1
    assert (job / "test_sweep_inprocess.log").is_file() or list(job.glob("*.log"))
    assert (run.sweep_dir / "multirun.yaml").is_file()


def test_multi_objective_pareto_front_is_non_dominated(run_sweep, caplog) -> None:
    caplog.set_level(logging.INFO, logger="hannah_ray")
    run = run_sweep(
        tasks.two_objectives,
        [
            "+x=interval(0, 2)",
            "+y=interval(0, 2)",
            "hydra/sweeper/sampler=nsgaii",
            "hydra.sweeper.sampler.seed=3",
            "hydra.sweeper.sampler.population_size=4",
            "hydra.sweeper.direction=[minimize,minimize]",
            "hydra.sweeper.n_trials=12",
        ],
    )
    solutions = run.results()["solutions"]
    assert solutions
    values = [tuple(s["values"]) for s in solutions]

    def dominates(a: tuple, b: tuple) -> bool:
        return all(x <= y for x, y in zip(a, b, strict=True)) and a != b

    assert not any(dominates(a, b) for a in values for b in values)
    all_values = [tuple(map(float, (r["value_0"], r["value_1"]))) for r in run.trials_table()]
    assert len(all_values) == 12
    for front_point in values:
        assert not any(dominates(other, front_point) for other in all_values)
    assert f"Pareto front of {len(values)} trial(s): trial " in caplog.text


@pytest.mark.parametrize("sampler", ["tpe", "random", "cmaes", "nsgaii", "qmc", "gp", "grid"])
def test_every_sampler_runs_a_sweep(stored_sweep, sampler: str) -> None:
    trials = stored_sweep(
        tasks.sphere,
        [
            "+x=range(-2, 3)",
            "+y=choice(0, 1)",
            f"hydra/sweeper/sampler={sampler}",
            "hydra.sweeper.sampler.seed=0",
            "hydra.sweeper.n_trials=4",
        ],
    )
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4


def test_custom_search_space_adds_parameters(run_sweep) -> None:
    run = run_sweep(
        tasks.sphere,
        [
            "+x=interval(-2, 2)",
            "hydra.sweeper.custom_search_space=apps.search_spaces.add_y",
            "hydra.sweeper.n_trials=5",
        ],
    )
    for row in run.trials_table():
        x, y = float(row["params.+x"]), float(row["params.+y"])
        assert x - 1 <= y <= x + 1
        assert float(row["value"]) == pytest.approx(x**2 + y**2)


def test_dict_return_picks_metric_and_keeps_the_rest(run_sweep) -> None:
    run = run_sweep(
        tasks.dict_return,
        ["+x=choice(-2, 1, 3)", "hydra.sweeper.metric=loss", "hydra.sweeper.n_trials=4"],
    )
    for row in run.trials_table():
        x = float(row["params.+x"])
        assert float(row["value"]) == pytest.approx(x**2)
        assert float(row["user_attrs.accuracy"]) == pytest.approx(1 - abs(x) / 10)
        assert row["user_attrs.note"] == "ok"


def test_dict_return_without_metric_fails_the_trial_with_a_reason(run_sweep) -> None:
    run = run_sweep(
        tasks.dict_return,
        ["+x=choice(1, 2)", "hydra.sweeper.n_trials=2", "hydra.sweeper.max_failure_rate=1.0"],
    )
    rows = run.trials_table()
    assert [r["state"] for r in rows] == ["FAIL", "FAIL"]
    assert "hydra.sweeper.metric" in rows[0]["fail_reason"]
    assert "'loss'" in rows[0]["fail_reason"]


@pytest.mark.parametrize("kind", ["none", "notanumber", "infinite", "text"])
def test_bad_return_values_fail_the_trial_and_the_sweep_goes_on(run_sweep, kind: str) -> None:
    run = run_sweep(
        tasks.returns_bad_value,
        [
            f"+kind=choice({kind}, ok)",
            "hydra/sweeper/sampler=grid",
            "hydra.sweeper.max_failure_rate=1.0",
        ],
    )
    rows = {r["params.+kind"]: r for r in run.trials_table()}
    assert rows["ok"]["state"] == "COMPLETE"
    assert rows[kind]["state"] == "FAIL"
    assert "expected a finite number" in rows[kind]["fail_reason"]


def test_task_exception_is_logged_and_failure_rate_tolerated(run_sweep) -> None:
    run = run_sweep(
        tasks.fails_when_negative,
        [
            "+x=choice(-1, 1, -2, 2)",
            "hydra/sweeper/sampler=grid",
            "hydra.sweeper.max_failure_rate=0.6",
            "hydra.sweeper.n_jobs=1",
        ],
    )
    rows = run.trials_table()
    failed = [r for r in rows if r["state"] == "FAIL"]
    assert len(rows) == 4 and len(failed) == 2
    assert all("ValueError: x must not be negative" in r["fail_reason"] for r in failed)
    log_text = "".join(p.read_text() for p in Path(failed[0]["job_dir"]).glob("*.log"))
    assert "Traceback" in log_text and "x must not be negative" in log_text


def test_a_task_error_that_cannot_be_unpickled_keeps_its_type_and_message(run_sweep) -> None:
    with pytest.raises(RuntimeError, match=r"DataError: data/train.csv: no such file \(x=1\)"):
        run_sweep(
            tasks.raises_an_error_that_does_not_unpickle,
            ["+x=choice(1)", "hydra/sweeper/sampler=grid", "hydra.sweeper.max_failure_rate=0.0"],
        )


def test_failure_rate_exceeded_stops_with_the_task_error_and_keeps_results(
    run_sweep, tmp_path: Path, caplog
) -> None:
    caplog.set_level(logging.ERROR, logger="hannah_ray")
    with pytest.raises(ValueError, match="x must not be negative"):
        run_sweep(
            tasks.fails_when_negative,
            [
                "+x=choice(1, 2, -1, -2, -3, -4, -5, -6)",
                "hydra/sweeper/sampler=grid",
                "hydra.sweeper.sampler.seed=0",
                "hydra.sweeper.n_jobs=1",
                "hydra.sweeper.max_failure_rate=0.0",
            ],
            sweep_dir=tmp_path / "stopped",
        )
    results_file = tmp_path / "stopped" / "optimization_results.yaml"
    assert results_file.is_file()
    import yaml

    counts = yaml.safe_load(results_file.read_text())["n_trials"]
    assert counts["fail"] >= 1
    assert counts["complete"] + counts["fail"] < 8  # stopped before the grid was done
    assert "more than hydra.sweeper.max_failure_rate=0.0 of the 8 this run plans" in caplog.text


def test_results_that_cannot_be_written_do_not_hide_the_sweeps_own_error(
    run_sweep, tmp_path: Path, caplog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The storage going down as the sweep ends (mocked: it cannot be timed here): a sweep ending
    with the task's error still ends with it; one that ran well ends with the storage's."""
    caplog.set_level(logging.ERROR, logger="hannah_ray")

    def storage_down(*args: object, **kwargs: object) -> None:
        raise ConnectionError("server closed the connection unexpectedly")

    monkeypatch.setattr("hannah_ray.sweep.write_results", storage_down)
    with pytest.raises(ValueError, match="x must not be negative"):
        run_sweep(
            tasks.fails_when_negative,
            ["+x=-1", "hydra.sweeper.n_trials=1", "hydra.sweeper.max_failure_rate=0.0"],
            sweep_dir=tmp_path / "failed",
        )
    assert "Could not write the results (optimization_results.yaml, trials.csv)" in caplog.text
    with pytest.raises(ConnectionError, match="server closed the connection"):
        run_sweep(tasks.sphere, ["+x=1", "+y=0"], sweep_dir=tmp_path / "ran")


def test_trials_run_asynchronously_without_a_batch_barrier(run_sweep) -> None:
    run = run_sweep(
        tasks.timed,
        [
            "+x=interval(0, 1)",
            "+slow_s=4.0",
            "+quick_s=0.2",
            "hydra.sweeper.metric=objective",
            "hydra.sweeper.n_jobs=2",
            "hydra.sweeper.n_trials=6",
        ],
    )
    rows = {int(r["number"]): r for r in run.trials_table()}
    slow_end = float(rows[0]["user_attrs.end"])
    quick_ends = [float(rows[n]["user_attrs.end"]) for n in range(1, 6)]
    # With a batch barrier, trials 2.. would start only after trial 0 ended.
    assert sum(end < slow_end for end in quick_ends) >= 4


def _trial_workers_started() -> int:
    """Ray Tune trial workers this Ray instance has started so far (from its worker logs; Ray's
    log monitor moves the logs of ended workers into ``old/`` when it has many files open)."""
    import ray

    logs = Path(ray._private.worker.global_worker.node.get_logs_dir_path())  # noqa: SLF001
    names = {path.name for path in logs.glob("worker-*.out")}
    names |= {path.name for path in (logs / "old").glob("worker-*.out")}
    return sum("HydraJobTrainable" in _worker_log(logs, name) for name in names)


def _worker_log(logs: Path, name: str) -> str:
    for path in (logs / name, logs / "old" / name):  # it may move while being read
        try:
            return path.read_text()
        except FileNotFoundError:
            continue
    return ""


def test_each_concurrent_trial_slot_keeps_one_worker(run_sweep) -> None:
    """Quick trials that end while other workers are still starting: every worker started is kept
    and reused (no worker is started only to be killed), so the sweep uses n_jobs processes."""
    started_before = _trial_workers_started()
    run = run_sweep(
        tasks.timed,
        [
            "+x=interval(0, 1)",
            "+slow_s=0.05",
            "+quick_s=0.05",
            "hydra.sweeper.metric=objective",
            "hydra.sweeper.resources_per_trial.cpu=0.25",
            "hydra.sweeper.n_jobs=8",
            "hydra.sweeper.n_trials=40",
        ],
    )
    rows = run.trials_table()
    assert [row["state"] for row in rows] == ["COMPLETE"] * 40
    assert len({row["user_attrs.pid"] for row in rows}) == 8
    assert _trial_workers_started() - started_before == 8


def test_jobs_see_hydra_config_and_original_cwd(run_sweep, tmp_path: Path) -> None:
    run = run_sweep(
        tasks.hydra_context_probe,
        [
            "+x=choice(1, 2, 3)",
            "+runtime_cwd=${hydra:runtime.cwd}",
            "hydra/sweeper/sampler=grid",
            "hydra.sweeper.metric=objective",
        ],
    )
    returns = sorted((r.return_value for r in run.returns), key=lambda v: v["num"])
    assert [v["num"] for v in returns] == [0, 1, 2]
    for value in returns:
        assert value["output_dir"] == str(run.sweep_dir / str(value["num"]))
        assert value["runtime_cwd"] == value["original_cwd"] == str(Path.cwd())
        assert value["absolute"] == str(Path.cwd() / "data.txt")


def test_each_trial_starts_from_the_sweeps_resolvers(run_sweep) -> None:
    """As with Hydra's joblib launcher, a task that registers an OmegaConf resolver runs again
    on the same worker (Hydra's global state is set per job there)."""
    run = run_sweep(
        tasks.registers_a_resolver,
        ["+x=1,2,3", "hydra/sweeper/sampler=grid", "hydra.sweeper.n_jobs=1"],
    )
    rows = run.trials_table()
    assert [row["state"] for row in rows] == ["COMPLETE"] * 3
    assert sorted(float(row["value"]) for row in rows) == [2.0, 4.0, 6.0]


def test_hydra_callbacks_see_job_returns(run_sweep) -> None:
    run = run_sweep(
        tasks.sphere,
        [
            "+x=choice(1, 2)",
            "+y=0",
            "hydra/sweeper/sampler=grid",
            "+hydra.callbacks.record._target_=apps.callbacks.RecordJobEnd",
        ],
    )
    seen = sorted((run.sweep_dir / str(n) / "job_end.txt").read_text() for n in (0, 1))
    assert seen == ["COMPLETED 1.0", "COMPLETED 4.0"]
    assert sorted(r.return_value for r in run.returns) == [1.0, 4.0]


def test_rerun_continues_the_stored_study(run_sweep, tmp_path: Path, caplog) -> None:
    storage = f"journal:///{tmp_path}/resume.journal"
    common = ["+x=interval(-1, 1)", "+y=0", f"hydra.sweeper.storage={storage}",
              "hydra.sweeper.study_name=resume", "hydra.sweeper.sampler.seed=5"]  # fmt: skip
    first = run_sweep(tasks.sphere, [*common, "hydra.sweeper.n_trials=3"], sweep_dir=tmp_path / "s")
    assert _numbered_job_dirs(first.sweep_dir) == [0, 1, 2]
    first_params = [r["params.+x"] for r in first.trials_table()]
    stored_best = min(float(r["value"]) for r in first.trials_table())
    caplog.set_level(logging.INFO, logger="hannah_ray")
    caplog.clear()
    second = run_sweep(
        tasks.sphere,
        [*common, "hydra.sweeper.n_trials=5", "hydra.sweeper.n_jobs=1"],
        sweep_dir=tmp_path / "s",
    )
    # n_trials is the study's total: only the 2 missing trials ran, numbered after the stored ones.
    assert len(second.returns) == 2
    assert _numbered_job_dirs(second.sweep_dir) == [0, 1, 2, 3, 4]
    rows = second.trials_table()
    assert [r["params.+x"] for r in rows[:3]] == first_params
    assert rows[3]["params.+x"] not in first_params  # the seeded sampler does not replay
    # Progress: the sampled value only, short; the stored trials' best counts from the start.
    started = next(line for line in caplog.messages if line.startswith("Trial 3 started:"))
    assert started == (
        f"Trial 3 started: +x={float(rows[3]['params.+x']):.4g}  "
        f"[running 1, done 0/2, pruned 0, failed 0, best {stored_best:.6g}]"
    )
    third = run_sweep(
        tasks.sphere,
        [*common, "hydra.sweeper.n_trials=2", "hydra.sweeper.add_trials=true"],
        sweep_dir=tmp_path / "s",
    )
    assert len(third.returns) == 2
    assert len(third.trials_table()) == 7
    caplog.clear()
    fourth = run_sweep(
        tasks.sphere, [*common, "hydra.sweeper.n_trials=7"], sweep_dir=tmp_path / "s"
    )
    assert fourth.returns == []
    assert "already holds hydra.sweeper.n_trials=7 finished trials: none to run" in caplog.text
    assert "Best: trial" in caplog.text and "7 complete" in caplog.text
    changed = [c if not c.startswith("+x=") else "+x=choice(-1, 1)" for c in common]
    with pytest.raises(
        SweepConfigError, match=r"sampled key '\+x' from FloatDistribution.*Categorical"
    ):
        run_sweep(tasks.sphere, changed, sweep_dir=tmp_path / "s")
    with pytest.raises(SweepConfigError, match="optimises \\['minimize'\\].*'maximize'"):
        run_sweep(
            tasks.sphere, [*common, "hydra.sweeper.direction=maximize"], sweep_dir=tmp_path / "s"
        )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+x=interval(2, 1)", r"key '\+x'.*low must be <= high"),
        ("+x=tag(log, interval(0, 1))", r"key '\+x'.*log scale needs bounds > 0"),
        ("+x=choice([1, 2], [3])", r"key '\+x'.*non-scalar"),
        ("hydra.sweeper.sampler.n_ei_candidatez=3", "n_ei_candidatez"),
        ("hydra.sweeper.direction=up", "hydra.sweeper.direction='up'"),
        ("hydra.sweeper.max_failure_rate=2", "max_failure_rate=2"),
        ("x=interval(0, 1)", "does not compose"),
        ("+hydra.sweeper.ray.num_cpu=1", "num_cpu"),
        ("hydra.sweeper.custom_search_space=apps.nowhere.fn", "custom_search_space"),
        (
            "hydra.sweeper.custom_search_space=apps.search_spaces.adds_a_key_the_config_lacks",
            r"(?s)does not compose with the overrides \['\+y=1', 'z=.*\['z'\] came from "
            r"hydra.sweeper.custom_search_space=apps.search_spaces.adds_a_key_the_config_lacks: "
            r".*trial.suggest_float\('\+z'",
        ),
        # add_y reads +x, which this command line does not sweep.
        ("hydra.sweeper.custom_search_space=apps.search_spaces.add_y", "failed on a test trial"),
        ("hydra.sweeper.storage=notaurl", "hydra.sweeper.storage"),
        ("hydra.sweeper.resources_per_trial.cpu=0", "cpu=0 and gpu=0: allowed: cpu > 0"),
        # The session's Ray instance has 2 CPUs and 1 (logical) GPU: such a trial never starts.
        ("hydra.sweeper.resources_per_trial.cpu=3", r"cpu=3, gpu=0, but no Ray node.*cpu=2"),
        ("hydra.sweeper.resources_per_trial.gpu=2", r"cpu=1, gpu=2, but no Ray node.*gpu=1"),
    ],
)
def test_bad_input_fails_before_any_trial(
    run_sweep, tmp_path: Path, override: str, message: str
) -> None:
    sweep_dir = tmp_path / "bad"
    with pytest.raises(Exception, match=message):
        run_sweep(tasks.sphere, ["+y=1", override], sweep_dir=sweep_dir)
    assert not sweep_dir.exists() or _numbered_job_dirs(sweep_dir) == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        # Each config-group option is composed, not only the first one written.
        (["db=choice(alpha, nosuch)"], r"\['db=nosuch'\].*nosuch"),
        # beta has no port: caught although alpha, the first choice, has one.
        (["db=choice(alpha, beta)", "db.port=range(5432, 5434)"], r"\['db=beta', 'db.port=5432'\]"),
    ],
)
def test_every_choice_and_bound_is_composed_before_any_trial(
    run_sweep, tmp_path: Path, overrides: list[str], message: str
) -> None:
    sweep_dir = tmp_path / "bad"
    with pytest.raises(SweepConfigError, match=f"does not compose.*{message}"):
        run_sweep(
            tasks.config_group_score,
            overrides,
            config_path="apps/conf",
            config_name="config",
            sweep_dir=sweep_dir,
        )
    assert not sweep_dir.exists() or _numbered_job_dirs(sweep_dir) == []


def test_the_command_line_adds_to_params(run_sweep) -> None:
    """``params`` defaults to empty, so a quoted ``+hydra.sweeper.params.KEY`` adds a key."""
    run = run_sweep(
        tasks.config_group_score,
        ['+hydra.sweeper.params.db="choice(alpha, beta)"', "hydra/sweeper/sampler=grid"],
        config_path="apps/conf",
        config_name="config",
    )
    assert sorted(row["params.db"] for row in run.trials_table()) == ["alpha", "beta"]


def test_trial_workers_start_from_the_compositions_checked_before_the_sweep(run_sweep) -> None:
    """The driver composes each choice before any trial; one trial's worker then holds them all
    (it composed none of them itself: it ran only one choice)."""
    run = run_sweep(
        tasks.compositions_probe,
        [
            "db=choice(alpha, beta, gamma)",
            "hydra.sweeper.n_trials=1",
            "hydra.sweeper.metric=objective",
        ],
        config_path="apps/conf",
        config_name="config",
    )
    [job] = run.returns
    assert job.return_value["choices"] == ["db=alpha", "db=beta", "db=gamma"]


def test_a_custom_search_space_that_depends_on_a_choice_is_checked_per_choice(run_sweep) -> None:
    # beta has no port: the check before any trial runs the function for beta too.
    run = run_sweep(
        tasks.config_group_score,
        [
            "db=choice(alpha, beta)",
            "hydra.sweeper.custom_search_space=apps.search_spaces.port_for_alpha_only",
            "hydra.sweeper.n_trials=4",
            "hydra/sweeper/sampler=random",
            "hydra.sweeper.sampler.seed=1",
        ],
        config_path="apps/conf",
        config_name="config",
    )
    rows = run.trials_table()
    assert {row["state"] for row in rows} == {"COMPLETE"}
    assert {row["params.db"] for row in rows} == {"alpha", "beta"}  # seed 1 draws both
    assert all(
        (row.get("params.db.port", "") != "") == (row["params.db"] == "alpha") for row in rows
    )


def test_a_rerun_that_does_not_fit_the_study_leaves_its_orphans_alone(
    run_sweep, tmp_path: Path
) -> None:
    from hannah_ray.heartbeat import HEARTBEAT_ATTR

    storage = f"sqlite:///{tmp_path}/orphans.db"
    study = optuna.create_study(study_name="orphans", storage=storage)
    space = {"+x": optuna.distributions.FloatDistribution(0, 1)}
    study.tell(study.ask(space), 0.5)
    killed = study.ask(space)  # a killed sweep's
    study._storage.set_trial_system_attr(killed._trial_id, HEARTBEAT_ATTR, time.time() - 3600)
    common = [f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=orphans"]
    with pytest.raises(SweepConfigError, match="sampled key"):
        run_sweep(tasks.sphere, ["+x=choice(1, 2)", *common])  # another distribution for +x
    trials = optuna.load_study(study_name="orphans", storage=storage).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.RUNNING]  # unchanged
    # A fitting command fails the orphan and queues its point for a run with trials to run.
    run_sweep(tasks.sphere, ["+x=interval(0, 1)", "hydra.sweeper.n_trials=1", *common])
    trials = optuna.load_study(study_name="orphans", storage=storage).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.WAITING]


def test_a_grid_rerun_with_a_new_key_runs_every_point_despite_an_orphan(
    run_sweep, tmp_path: Path
) -> None:
    """The orphan's point lacks the new key: queued as it was, GridSampler would refuse it. So
    would it the point an earlier run queued again and never ran: that one is set aside."""
    from hannah_ray.heartbeat import HEARTBEAT_ATTR

    storage = f"sqlite:///{tmp_path}/grid_orphan.db"
    study = optuna.create_study(study_name="grid", storage=storage)
    study.enqueue_trial({"+x": 2})
    killed = study.ask({"+x": optuna.distributions.CategoricalDistribution([1, 2])})
    study._storage.set_trial_system_attr(killed._trial_id, HEARTBEAT_ATTR, time.time() - 3600)
    study.enqueue_trial({"+x": 1}, user_attrs={"requeued_from_trial": 0})  # never ran
    run_sweep(
        tasks.sphere,
        ["+x=choice(1, 2)", "+y=choice(0, 3)", "hydra/sweeper/sampler=grid",
         f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=grid"],
    )  # fmt: skip
    trials = optuna.load_study(study_name="grid", storage=storage).trials
    assert trials[0].state == TrialState.FAIL
    assert trials[1].state == TrialState.FAIL
    assert trials[1].user_attrs["fail_reason"] == (
        "Queued, but not a point of this run's grid: it has no value for ['+y']."
    )
    done = sorted(
        (t.params["+x"], t.params["+y"]) for t in trials if t.state == TrialState.COMPLETE
    )
    assert done == [(1, 0), (1, 3), (2, 0), (2, 3)]


def test_unknown_sampler_is_rejected_by_hydra(run_sweep) -> None:
    with pytest.raises(Exception, match="hydra/sweeper/sampler"):
        run_sweep(tasks.sphere, ["+x=interval(0, 1)", "hydra/sweeper/sampler=annealing"])


def test_sweep_errors_are_sweep_config_errors(run_sweep) -> None:
    with pytest.raises(SweepConfigError):
        run_sweep(tasks.sphere, ["+x=range(3, 3)"])


def test_glob_sweeps_config_group_options(run_sweep) -> None:
    run = run_sweep(
        tasks.config_group_score,
        ["db=glob(*,exclude=gamma)", "hydra/sweeper/sampler=grid"],
        config_path="apps/conf",
        config_name="config",
    )
    rows = run.trials_table()
    assert sorted(r["params.db"] for r in rows) == ["alpha", "beta"]
    assert run.results()["best_params"] == {"db": "beta"}


@pytest.mark.parametrize(("always_die", "retries"), [(False, 1), (True, 1)])
def test_dead_worker_is_retried_then_stored_fail(
    run_sweep, tmp_path: Path, always_die: bool, retries: int
) -> None:
    run = run_sweep(
        tasks.dies_once_then_works,
        [
            "+x=choice(-1, 2, 3)",
            f"+marker_dir={tmp_path}",
            f"+always_die={str(always_die).lower()}",
            "hydra/sweeper/sampler=grid",
            f"hydra.sweeper.max_retries={retries}",
            "hydra.sweeper.max_failure_rate=1.0",
            "hydra.sweeper.n_jobs=1",
        ],
    )
    rows = {r["params.+x"]: r for r in run.trials_table()}
    assert rows["2"]["state"] == rows["3"]["state"] == "COMPLETE"  # the sweep went on
    if always_die:
        assert rows["-1"]["state"] == "FAIL"
        assert "worker died" in rows["-1"]["fail_reason"]
    else:
        assert rows["-1"]["state"] == "COMPLETE" and float(rows["-1"]["value"]) == -1.0


def test_a_rerun_of_a_grid_runs_each_missing_point_once(stored_sweep, caplog) -> None:
    grid = ["+x=choice(-1, 0, 1, 2)", "+y=0", "hydra/sweeper/sampler=grid"]
    first = stored_sweep(tasks.fails_when_negative, [*grid, "hydra.sweeper.max_failure_rate=1.0"])
    assert sorted((t.params["+x"], t.state.name) for t in first) == [
        (-1, "FAIL"), (0, "COMPLETE"), (1, "COMPLETE"), (2, "COMPLETE"),
    ]  # fmt: skip
    # The default n_trials=20 asks for more than the grid holds; only the failed point is missing.
    caplog.set_level(logging.INFO, logger="hannah_ray")
    second = stored_sweep(tasks.sphere, grid)
    assert len(second) == 5
    assert (second[-1].params["+x"], second[-1].state.name) == (-1, "COMPLETE")
    assert "1 of the grid's 4 points have no finished trial yet: running 1" in caplog.text
    third = stored_sweep(tasks.sphere, grid)
    assert len(third) == 5
    assert "Each of the grid's 4 points has a finished trial: none to run." in caplog.text


def test_a_storage_url_from_the_driver_environment_needs_nothing_from_the_workers(
    run_sweep, tmp_path: Path, monkeypatch
) -> None:
    """``storage: ${oc.env:...}``: the driver resolves it. Workers have their raylet's
    environment (a cluster's, or here that of the Ray instance started before the variable)."""
    storage = f"sqlite:///{tmp_path}/from_environment.db"
    monkeypatch.setenv("HANNAH_RAY_TEST_DRIVER_STORAGE", storage)
    run_sweep(
        tasks.environment_probe,
        [
            "+x=interval(0, 1)",
            "+variable=HANNAH_RAY_TEST_DRIVER_STORAGE",
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.metric=objective",
            "hydra.sweeper.storage=${oc.env:HANNAH_RAY_TEST_DRIVER_STORAGE}",
            "hydra.sweeper.study_name=env",
        ],
    )
    trials = optuna.load_study(study_name="env", storage=storage).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert [t.user_attrs["sees_variable"] for t in trials] == [False, False]


def test_the_stock_sweepers_deprecated_search_space_still_defines_the_search(
    run_sweep, tmp_path: Path, caplog
) -> None:
    storage = f"sqlite:///{tmp_path}/legacy.db"
    with caplog.at_level(logging.WARNING, logger="hannah_ray.sweep"):
        run_sweep(
            tasks.sphere,
            [
                "y=3",  # the command line wins, as with params
                "hydra.sweeper.n_trials=3",
                f"hydra.sweeper.storage={storage}",
                "hydra.sweeper.study_name=legacy",
            ],
            config_path="apps/conf",
            config_name="legacy_search_space",
        )
    assert "hydra.sweeper.search_space is deprecated" in caplog.text
    study = optuna.load_study(study_name="legacy", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert {t.distributions["x"] for t in study.trials} == {
        optuna.distributions.FloatDistribution(-1.0, 1.0)
    }
    assert all(t.value == pytest.approx(t.params["x"] ** 2 + 9) for t in study.trials)
