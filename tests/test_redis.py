"""A sweep on a real Redis server through Optuna's journal backend (.ci/run starts one and sets
HANNAH_RAY_TEST_REDIS_URL)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import optuna
import pytest
from apps import tasks
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from hannah_ray.storage import create_storage

REDIS_URL = os.environ.get("HANNAH_RAY_TEST_REDIS_URL")

pytestmark = pytest.mark.skipif(
    not REDIS_URL, reason="no Redis server: .ci/run starts one and sets HANNAH_RAY_TEST_REDIS_URL"
)


def test_redis_journal_sweep_keeps_every_report_and_never_writes_the_password(
    run_sweep, capfd, caplog
) -> None:
    password = make_url(REDIS_URL).password
    assert password, "the test URL must carry a password"
    study_name = f"redis-{uuid.uuid4().hex[:8]}"
    run = run_sweep(
        tasks.reports_every_epoch,
        [
            "+x=interval(0, 1)",
            "+epochs=5",
            "+epoch_s=0",
            "hydra.sweeper.metric=loss",
            "hydra.sweeper.n_trials=6",
            "hydra.sweeper.n_jobs=2",
            f"hydra.sweeper.storage={REDIS_URL}",
            f"hydra.sweeper.study_name={study_name}",
        ],
    )
    study = optuna.load_study(study_name=study_name, storage=create_storage(REDIS_URL))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 6
    assert all(sorted(t.intermediate_values) == [1, 2, 3, 4, 5] for t in study.trials)
    assert run.results()["best_value"] == pytest.approx(study.best_value)
    written = [p for p in Path(run.sweep_dir).rglob("*") if p.is_file()]
    assert [str(p) for p in written if password.encode() in p.read_bytes()] == []
    out, err = capfd.readouterr()
    assert password not in out + err + caplog.text
