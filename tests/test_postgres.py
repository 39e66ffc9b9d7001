"""A sweep on a real PostgreSQL server (.ci/run starts one and sets HANNAH_RAY_TEST_POSTGRES_URL)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import optuna
import pytest
from apps import tasks
from sqlalchemy.engine import make_url
from test_faults import four_at_once

POSTGRES_URL = os.environ.get("HANNAH_RAY_TEST_POSTGRES_URL")
# The server's Debian cluster ("15 main"), for a test that stops and starts it (.ci/run sets it).
POSTGRES_CLUSTER = os.environ.get("HANNAH_RAY_TEST_POSTGRES_CLUSTER")

pytestmark = pytest.mark.skipif(
    not POSTGRES_URL,
    reason="no PostgreSQL server: .ci/run starts one and sets HANNAH_RAY_TEST_POSTGRES_URL",
)


def test_postgres_sweep_never_writes_the_password(run_sweep, tmp_path: Path, capfd, caplog) -> None:
    password = make_url(POSTGRES_URL).password
    assert password, "the test URL must carry a password"
    study_name = f"pg-{uuid.uuid4().hex[:8]}"
    run = run_sweep(
        tasks.sphere,
        [
            "+x=interval(-1, 1)",
            "+y=0",
            "hydra.sweeper.n_trials=4",
            f"hydra.sweeper.storage={POSTGRES_URL}",
            f"hydra.sweeper.study_name={study_name}",
        ],
    )
    study = optuna.load_study(study_name=study_name, storage=POSTGRES_URL)
    assert len(study.trials) == 4
    assert run.results()["best_value"] == pytest.approx(study.best_value)
    assert run.results()["storage"] == make_url(POSTGRES_URL).render_as_string(hide_password=True)
    written = [p for p in run.sweep_dir.rglob("*") if p.is_file()]
    assert any(p.name == "hydra.yaml" for p in written) and any(p.suffix == ".pkl" for p in written)
    leaks = [str(p) for p in written if password.encode() in p.read_bytes()]
    assert leaks == []
    out, err = capfd.readouterr()
    assert password not in out + err + caplog.text


def test_four_concurrent_trials_reporting_to_postgres_lose_nothing(run_sweep) -> None:
    four_at_once(run_sweep, POSTGRES_URL, study_name=f"many-{uuid.uuid4().hex[:8]}")


@pytest.mark.skipif(
    not POSTGRES_CLUSTER,
    reason="needs HANNAH_RAY_TEST_POSTGRES_CLUSTER (.ci/run sets it) to stop and start the server",
)
def test_a_sweep_goes_on_through_a_database_restart(run_sweep, tmp_path: Path) -> None:
    """The server goes away for 3 s once the first trial runs (pg_ctlcluster stop, start): trials
    end and new ones are asked for meanwhile. The sweep goes on, and the study has every end."""
    study_name = f"restart-{uuid.uuid4().hex[:8]}"
    sweep_dir = tmp_path / "sweep"
    cluster = POSTGRES_CLUSTER.split()
    outage: list[float] = []

    def restart_once_a_trial_runs() -> None:
        deadline = time.monotonic() + 60
        while not (sweep_dir / "0").is_dir() and time.monotonic() < deadline:
            time.sleep(0.05)
        outage.append(time.monotonic())
        subprocess.run(["pg_ctlcluster", *cluster, "stop", "-m", "fast"], check=True)
        time.sleep(3)
        subprocess.run(["pg_ctlcluster", *cluster, "start"], check=True)
        outage.append(time.monotonic())

    restarter = threading.Thread(target=restart_once_a_trial_runs)
    restarter.start()
    try:
        run = run_sweep(
            tasks.sleeps,
            [
                "+x=range(0, 6)",
                "+sleep_s=1",
                "hydra/sweeper/sampler=grid",
                "hydra.sweeper.n_trials=6",
                "hydra.sweeper.n_jobs=2",
                f"hydra.sweeper.storage={POSTGRES_URL}",
                f"hydra.sweeper.study_name={study_name}",
            ],
            sweep_dir=sweep_dir,
        )
    finally:
        restarter.join()
    assert len(outage) == 2
    study = optuna.load_study(study_name=study_name, storage=POSTGRES_URL)
    assert sorted(t.params["+x"] for t in study.trials) == list(range(6))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 6
    assert run.results()["n_trials"]["complete"] == 6
    # Trials ended during the outage (each takes 1 s, two at a time): their ends were stored later.
    ends = [t.datetime_complete.timestamp() for t in study.trials]
    assert len(ends) == 6
