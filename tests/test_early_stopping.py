"""Intermediate reports, schedulers (ASHA) and the trial states they leave in the study; GPU
visibility per trial. Real sweeps on the session's Ray instance."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from apps import tasks
from optuna.trial import TrialState

from hannah_ray import in_trial, report
from hannah_ray.errors import SweepConfigError
from hannah_ray.schedulers import build_scheduler

ASHA = [
    "hydra/sweeper/scheduler=asha",
    "hydra.sweeper.scheduler.max_t=4",
    "hydra.sweeper.scheduler.reduction_factor=2",
]


def _reporting_sweep(run_sweep, storage: str, scheduler: list[str]) -> None:
    run_sweep(
        tasks.reports_every_epoch,
        [
            "+x=range(0, 8)",
            "+epochs=4",
            "+epoch_s=0.05",
            "hydra/sweeper/sampler=grid",
            "hydra.sweeper.metric=loss",
            "hydra.sweeper.n_trials=8",
            "hydra.sweeper.n_jobs=2",
            f"hydra.sweeper.storage={storage}",
            "hydra.sweeper.study_name=asha",
            *scheduler,
        ],
    )


def test_a_metric_named_like_a_tune_key_changes_nothing(run_sweep, tmp_path: Path) -> None:
    """A reported "done" would end the trial at its first report: it goes as reported.done."""
    run = run_sweep(
        tasks.reports_every_epoch,
        ["+x=0,1", "+epochs=3", "+epoch_s=0", "+report_done=true", "hydra/sweeper/sampler=grid",
         "hydra.sweeper.metric=loss"],
    )  # fmt: skip
    assert [row["state"] for row in run.trials_table()] == ["COMPLETE", "COMPLETE"]
    for progress in (run.sweep_dir / "ray_tune").glob("*/progress.csv"):
        header, *rows = progress.read_text().splitlines()
        assert "reported.done" in header.split(",") and len(rows) >= 3  # every epoch's report


def test_asha_prunes_bad_trials_and_the_study_tells_the_truth(run_sweep, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path}/asha.db"
    _reporting_sweep(run_sweep, storage, ASHA)
    study = optuna.load_study(study_name="asha", storage=storage)
    assert len(study.trials) == 8
    by_state = {state: [t for t in study.trials if t.state == state] for state in TrialState}
    assert by_state[TrialState.PRUNED], "ASHA stopped no trial"
    assert by_state[TrialState.COMPLETE]
    assert not by_state[TrialState.FAIL] and not by_state[TrialState.RUNNING]
    for trial in by_state[TrialState.PRUNED]:
        epochs = sorted(trial.intermediate_values)
        assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) < 4
        # A pruned trial's value is its last intermediate value, not a finished one.
        assert trial.value == pytest.approx(trial.intermediate_values[epochs[-1]])
        assert trial.user_attrs["pruned_at_epoch"] == epochs[-1]
        assert Path(trial.user_attrs["job_dir"]).is_dir()
    for trial in by_state[TrialState.COMPLETE]:
        assert sorted(trial.intermediate_values) == [1, 2, 3, 4]
        assert trial.value == pytest.approx(trial.params["+x"] + 0.25)
    # The best trials are never the ones stopped: x=0 has the lowest loss at every epoch.
    assert study.best_trial.params["+x"] == 0


def test_a_stopped_trial_winds_down_before_the_sweep_ends(stored_sweep) -> None:
    """The last trials run when nothing is queued, so Tune ends their workers after stopping them
    (none is kept for a next trial): each stopped task still finishes its wind-down first."""
    grid = ["+x=range(0, 6)", "hydra/sweeper/sampler=grid", "hydra.sweeper.n_trials=6"]
    task = ["+epochs=4", "+epoch_s=0.05", "+wind_down_s=2", "hydra.sweeper.n_jobs=2"]
    trials = stored_sweep(tasks.reports_then_winds_down, [*grid, *task, *ASHA])
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert pruned, "ASHA stopped no trial"
    for trial in trials:
        assert (Path(trial.user_attrs["job_dir"]) / "wound_down").read_text() == "ok"


def test_a_trial_stopped_with_the_sweep_ends_at_its_next_report(stored_sweep, tmp_path) -> None:
    """The failure rate stops the sweep while another trial is inside an epoch: Tune stops that
    trial once its current epoch's report arrives (its worker runs one call at a time), and the
    trial ends there, stored FAIL, instead of training all its epochs."""
    with pytest.raises(RuntimeError, match="trial x=0 fails"):
        stored_sweep(
            tasks.fails_or_trains,
            [
                "+x=range(0, 2)",
                "hydra/sweeper/sampler=grid",
                "hydra.sweeper.n_trials=2",
                "hydra.sweeper.n_jobs=2",
                "+fail_after_s=1.5",
                "+epochs=8",
                "+epoch_s=1",
                "+check_batches=true",
            ],
        )
    study = optuna.load_study(study_name="study", storage=f"sqlite:///{tmp_path}/study.db")
    stopped = next(t for t in study.trials if t.params["+x"] == 1)
    assert stopped.state == TrialState.FAIL
    assert "Stopped before the task finished" in stopped.user_attrs["fail_reason"]
    begun = int((Path(stopped.user_attrs["job_dir"]) / "epochs_begun").read_text())
    assert 1 <= begun < 5  # 8 epochs of 1 s had it run on


def test_an_app_that_reports_only_once_runs_under_asha(run_sweep) -> None:
    run = run_sweep(
        tasks.sphere,
        [
            "+x=interval(-2, 2)",
            "+y=0",
            "hydra/sweeper/scheduler=asha",
            "hydra.sweeper.n_trials=4",
            "hydra.sweeper.tune_logs=[tensorboard]",
        ],
    )
    assert [row["state"] for row in run.trials_table()] == ["COMPLETE"] * 4
    # Only the result writers asked for: TensorBoard events, no result.json.
    tune_dir = run.sweep_dir / "ray_tune"
    assert len(list(tune_dir.glob("*/events.out.tfevents.*"))) == 4
    assert not list(tune_dir.glob("*/result.json"))


def test_a_report_marked_last_is_never_cut(stored_sweep) -> None:
    """ASHA's first rung is at epoch 1, where a worse-than-median trial would be cut: a report
    marked last (the task's work is done) keeps it, and it ends COMPLETE with its return."""
    asha = ["hydra/sweeper/scheduler=asha", "hydra.sweeper.scheduler.reduction_factor=2"]
    grid = ["+x=range(0, 6)", "hydra/sweeper/sampler=grid", "hydra.sweeper.n_trials=6"]
    trials = stored_sweep(tasks.reports_once, [*grid, *asha, "hydra.sweeper.n_jobs=1"])
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 6
    for trial in trials:
        assert trial.value == trial.params["+x"] and trial.intermediate_values == {1: trial.value}


def test_a_report_after_the_last_one_does_not_break_the_median_rule(stored_sweep) -> None:
    median = ["hydra/sweeper/scheduler=median", "hydra.sweeper.scheduler.min_samples_required=1"]
    grid = ["+x=range(0, 6)", "hydra/sweeper/sampler=grid", "hydra.sweeper.sampler.seed=0"]
    trials = stored_sweep(
        tasks.reports_last_then_again,
        [*grid, *median, "hydra.sweeper.n_trials=6", "hydra.sweeper.n_jobs=1"],
    )
    states = [t.state for t in trials]
    # The rule stopped some trial at its report marked last (kept running) and again at the next.
    assert TrialState.PRUNED in states and set(states) <= {TrialState.COMPLETE, TrialState.PRUNED}


def test_median_stopping_runs(run_sweep, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path}/median.db"
    _reporting_sweep(
        run_sweep,
        storage,
        ["hydra/sweeper/scheduler=median", "hydra.sweeper.scheduler.min_samples_required=2"],
    )
    states = {t.state for t in optuna.load_study(study_name="asha", storage=storage).trials}
    assert states <= {TrialState.COMPLETE, TrialState.PRUNED} and TrialState.COMPLETE in states


@pytest.mark.parametrize(
    ("config", "directions", "message"),
    [
        ({"_target_": "ray.tune.schedulers.ASHAScheduler", "speed": 2}, ["minimize"], "no argument(s) ['speed']"),
        ({"_target_": "ray.tune.schedulers.ASHAScheduler", "grace_period": 0}, ["minimize"], "grace_period=0"),
        ({"_target_": "ray.tune.schedulers.ASHAScheduler", "max_t": 4, "grace_period": 8}, ["minimize"], "<= max_t"),
        ({"_target_": "ray.tune.schedulers.ASHAScheduler", "reduction_factor": 1}, ["minimize"], "a number > 1"),
        ({"_target_": "ray.tune.schedulers.ASHAScheduler"}, ["minimize", "maximize"], "hydra/sweeper/scheduler=none"),
        ({"_target_": "optuna.samplers.TPESampler"}, ["minimize"], "is not a ray.tune.schedulers.TrialScheduler"),
        ({"_target_": "no.such.Scheduler"}, ["minimize"], "cannot be imported"),
        ({"_target_": "ray.tune.schedulers.HyperBandScheduler"}, ["minimize"], "pause trials"),
        ({"_target_": "hannah_ray.schedulers.MedianStoppingRule", "hard_stop": False}, ["minimize"], "hard_stop=False"),
    ],
)  # fmt: skip
def test_bad_scheduler_config_names_the_key(config: dict, directions: list, message: str) -> None:
    with pytest.raises(
        SweepConfigError, match="hydra.sweeper.scheduler|hydra/sweeper/scheduler"
    ) as error:
        build_scheduler(config, directions)
    assert message in str(error.value)


def test_asha_with_multi_objective_fails_before_any_trial(run_sweep, tmp_path: Path) -> None:
    with pytest.raises(SweepConfigError, match="one objective"):
        run_sweep(
            tasks.two_objectives,
            [
                "+x=interval(0, 2)",
                "+y=interval(0, 2)",
                "hydra/sweeper/scheduler=asha",
                "hydra.sweeper.direction=[minimize,minimize]",
            ],
        )
    assert not list((tmp_path / "sweep").glob("[0-9]*"))


def test_report_is_a_no_op_outside_a_trial() -> None:
    assert not in_trial()
    report({"loss": 1.0})  # nothing to report to, and no error


@pytest.mark.parametrize(("gpu", "visible"), [(0, ""), (0.5, "0")])
def test_trials_see_only_the_gpu_ray_assigned(run_sweep, gpu: float, visible: str) -> None:
    # The session's Ray instance declares one logical GPU (there is no physical one here): Ray
    # assigns it and sets CUDA_VISIBLE_DEVICES exactly as it would for a real device.
    run = run_sweep(
        tasks.gpu_probe,
        [
            "+x=0,1",
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.metric=objective",
            f"hydra.sweeper.resources_per_trial.gpu={gpu}",
        ],
    )
    probes = [job.return_value for job in run.returns]
    assert [p["cuda_visible_devices"] for p in probes] == [visible, visible]
    assert [p["ray_gpu_ids"] for p in probes] == [visible, visible]


def test_the_lightning_callback_is_one_attribute_away_but_imported_only_on_use() -> None:
    import subprocess
    import sys

    code = (
        "import sys, hannah_ray\n"
        "print('lightning imported:', 'pytorch_lightning' in sys.modules)\n"
        "print(hannah_ray.lightning.ReportCallback(monitor='val_loss').__class__.__name__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.splitlines() == ["lightning imported: False", "ReportCallback"]


def test_a_diverged_trial_counts_as_the_worst_and_asha_stops_it(stored_sweep) -> None:
    trials = stored_sweep(
        tasks.reports_every_epoch,
        [
            "+x=range(0, 4)", "+epochs=4", "+epoch_s=0.01", "+diverge_above=2.5",
            "hydra/sweeper/sampler=grid", "hydra.sweeper.metric=loss", "hydra.sweeper.n_jobs=1",
            "hydra.sweeper.max_failure_rate=1.0", *ASHA,
        ],
    )  # fmt: skip
    diverged = next(t for t in trials if t.params["+x"] == 3)
    # Trials 0-2 set the cut-off at epoch 1; NaN used to compare as never worse than it.
    assert diverged.state == TrialState.PRUNED
    assert diverged.user_attrs["pruned_at_epoch"] == 1
