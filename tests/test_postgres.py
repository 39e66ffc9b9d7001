"""A sweep on a real PostgreSQL server (.ci/run starts one and sets HANNAH_RAY_TEST_POSTGRES_URL)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import optuna
import pytest
from apps import tasks
from sqlalchemy.engine import make_url
from test_faults import four_at_once

POSTGRES_URL = os.environ.get("HANNAH_RAY_TEST_POSTGRES_URL")

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
