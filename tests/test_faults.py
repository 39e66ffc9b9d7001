"""Faults that must lose nothing: a killed driver (real SIGKILL, then the same command again),
trials it left RUNNING, hung trials, and many concurrent trials writing to one stored study."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from apps import tasks
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from hannah_ray.storage import create_storage

REPO = Path(__file__).resolve().parents[1]
SLOW_APP = REPO / "tests" / "apps" / "slow_app.py"


def _sweep_command(ray_address: str) -> list[str]:
    return [
        sys.executable, str(SLOW_APP), "-m", "+x=interval(0, 1)", "+seconds=1.5",
        "hydra/sweeper=ray_optuna", "hydra/sweeper/sampler=random", "hydra.sweeper.sampler.seed=0",
        "hydra.sweeper.n_trials=8", "hydra.sweeper.n_jobs=2", "hydra.sweeper.storage=sqlite:///study.db",
        "hydra.sweeper.study_name=killed", "hydra.sweeper.heartbeat_interval_s=0.5",
        "hydra.sweeper.orphan_grace_s=1.5", f"hydra.sweeper.ray.address={ray_address}",
        "hydra.sweep.dir=sweep",
    ]  # fmt: skip


def test_a_sweep_killed_with_sigkill_finishes_when_rerun(tmp_path: Path, ray_address: str) -> None:
    environment = {**os.environ, "RAY_AUTH_MODE": "token"}
    environment.pop("PYTHONPATH", None)
    command = _sweep_command(ray_address)
    driver = subprocess.Popen(
        command, cwd=tmp_path, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    assert driver.stdout is not None
    deadline = time.time() + 120
    for line in driver.stdout:  # kill it once trials have finished and others are running
        if "Trial 3 started" in line or time.time() > deadline:
            break
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)
    # A RUNNING trial whose heartbeat is younger than orphan_grace_s (1.5 s) may belong to a live
    # sweep and is left alone; on a fast machine the rerun reaches that check sooner than that.
    time.sleep(1.5)
    storage = f"sqlite:///{tmp_path}/study.db"
    before = optuna.load_study(study_name="killed", storage=storage).trials
    finished_before = {t.number: t.value for t in before if t.state == TrialState.COMPLETE}
    orphans = {t.number: t.params for t in before if t.state == TrialState.RUNNING}
    assert finished_before and orphans

    rerun = subprocess.run(
        command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    trials = optuna.load_study(study_name="killed", storage=storage).trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 8  # n_trials is the study's total: only the missing ones ran
    for number, value in finished_before.items():  # finished work is kept, not run again
        assert trials[number].state == TrialState.COMPLETE and trials[number].value == value
    for number, params in orphans.items():
        assert trials[number].state == TrialState.FAIL
        assert trials[number].user_attrs["fail_reason"].startswith("Orphaned")
        (requeued,) = [t for t in trials if t.user_attrs.get("requeued_from_trial") == number]
        assert requeued.state == TrialState.COMPLETE and requeued.params == params
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    # Job numbering continued: one folder per trial, none overwritten.
    job_dirs = [t.user_attrs["job_dir"] for t in complete]
    assert len(set(job_dirs)) == 8
    assert all(Path(d).name == str(t.number) for d, t in zip(job_dirs, complete, strict=True))


@pytest.mark.parametrize("retries", [0, 1])
def test_a_hung_trial_is_stopped_after_trial_timeout_s(
    run_sweep, tmp_path: Path, caplog, retries: int
) -> None:
    storage = f"sqlite:///{tmp_path}/hang.db"
    caplog.set_level(logging.INFO, logger="hannah_ray")
    run_sweep(
        tasks.hangs_when_negative,
        [
            "+x=-1,1",
            "hydra/sweeper/sampler=grid",
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.trial_timeout_s=3",
            f"hydra.sweeper.max_retries={retries}",
            "hydra.sweeper.max_failure_rate=0.5",
            f"hydra.sweeper.storage={storage}",
            "hydra.sweeper.study_name=hang",
        ],
    )
    trials = {
        t.params["+x"]: t for t in optuna.load_study(study_name="hang", storage=storage).trials
    }
    assert trials[1].state == TrialState.COMPLETE
    assert trials[-1].state == TrialState.FAIL
    reason = trials[-1].user_attrs["fail_reason"]
    assert "trial_timeout_s=3" in reason
    # A retry runs the trial again, with the full timeout; the time counts per attempt.
    number = trials[-1].number
    assert caplog.text.count(f"Trial {number} started") == 1 + retries
    assert int(re.search(r"ran (\d+) s", reason).group(1)) < 6
    # It never reported, yet the study points to its job folder (its log shows the hang).
    job_dir = Path(trials[-1].user_attrs["job_dir"])
    assert job_dir.is_dir() and job_dir.name == str(number)


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_four_concurrent_trials_reporting_lose_nothing(
    run_sweep, tmp_path: Path, kind: str
) -> None:
    storage = (
        f"sqlite:///{tmp_path}/many.db"
        if kind == "sqlite"
        else f"journal:///{tmp_path}/many.journal"
    )
    four_at_once(run_sweep, storage)


def four_at_once(run_sweep, storage: str, study_name: str = "many", n_trials: int = 100) -> None:
    """100 trials, 4 at a time, each reporting 10 intermediate values: none lost, none FAIL."""
    run_sweep(
        tasks.reports_every_epoch,
        [
            "+x=interval(0, 1)",
            "+epochs=10",
            "+epoch_s=0",
            "hydra/sweeper/sampler=random",
            "hydra.sweeper.metric=loss",
            f"hydra.sweeper.n_trials={n_trials}",
            "hydra.sweeper.n_jobs=4",
            "hydra.sweeper.resources_per_trial.cpu=0.5",
            f"hydra.sweeper.storage={storage}",
            f"hydra.sweeper.study_name={study_name}",
            "hydra.sweeper.tune_logs=false",
        ],
    )
    trials = optuna.load_study(study_name=study_name, storage=create_storage(storage)).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * n_trials
    assert all(sorted(t.intermediate_values) == list(range(1, 11)) for t in trials)


@pytest.mark.parametrize(
    ("sampler", "message"),
    [
        ("FailsInAsk", "the sampler broke in ask"),
        ("FailsInSuggest", "the sampler broke in suggest"),
    ],
)
def test_a_sampler_error_stops_the_sweep_without_leaving_a_trial_running(
    run_sweep, tmp_path: Path, sampler: str, message: str
) -> None:
    storage = f"sqlite:///{tmp_path}/sampler.db"
    # Another tool's trial, RUNNING in the same study: the failed sampling must not touch it.
    optuna.create_study(study_name="broken", storage=storage).ask({"+x": FloatDistribution(-1, 1)})
    with pytest.raises(Exception, match=message):
        run_sweep(
            tasks.sphere,
            [
                "+x=interval(-1, 1)",
                "+y=0",
                "hydra/sweeper/sampler=random",
                f"hydra.sweeper.sampler._target_=apps.samplers.{sampler}",
                "hydra.sweeper.n_trials=4",
                "hydra.sweeper.n_jobs=1",
                f"hydra.sweeper.storage={storage}",
                "hydra.sweeper.study_name=broken",
            ],
        )
    trials = optuna.load_study(study_name="broken", storage=storage).trials
    assert [t.state for t in trials] == [TrialState.RUNNING, TrialState.COMPLETE, TrialState.FAIL]
    assert message in trials[2].user_attrs["fail_reason"]
