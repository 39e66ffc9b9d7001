"""Trials on a real GPU: fractional trials share the GPU Ray assigned, CPU-only trials see none.

These tests need a CUDA device and are skipped without one (this project's CI has none; they are
run on a GPU machine, see benchmarks/README.md). The logical-GPU tests in test_early_stopping.py
check the same visibility rules everywhere.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from apps import tasks  # noqa: E402
from test_train_app import TINY, _train_cli  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_quarter_gpu_trials_share_the_assigned_gpu(run_sweep) -> None:
    run = run_sweep(
        tasks.cuda_probe,
        [
            "+x=0,1,2,3",
            "+hold_s=3",
            "hydra.sweeper.n_trials=4",
            "hydra.sweeper.n_jobs=4",
            "hydra.sweeper.metric=objective",
            "hydra.sweeper.resources_per_trial.gpu=0.25",
            "hydra.sweeper.resources_per_trial.cpu=0.5",
        ],
    )
    probes = [job.return_value for job in run.returns]
    assert all(p["cuda_available"] and p["device_count"] == 1 for p in probes), probes
    assert {p["device"] for p in probes} == {"cuda:0"}
    assert len({p["gpu_uuid"] for p in probes}) == 1
    assert all(p["sum"] == 1024 * 1024 for p in probes)
    # The four trials held the one GPU at the same time (each holds it for 3 s).
    latest_start = max(p["started"] for p in probes)
    earliest_end = min(p["ended"] for p in probes)
    assert latest_start < earliest_end, probes


def test_cpu_trials_cannot_reach_the_gpu(run_sweep) -> None:
    run = run_sweep(
        tasks.cuda_probe,
        ["+x=0,1", "+hold_s=0", "hydra.sweeper.n_trials=2", "hydra.sweeper.metric=objective"],
    )
    probes = [job.return_value for job in run.returns]
    assert [(p["cuda_available"], p["device_count"]) for p in probes] == [(False, 0)] * 2


@pytest.mark.parametrize(("gpu", "device"), [("0.25", "cuda:0"), ("0", "cpu")])
def test_the_app_trains_where_ray_placed_the_trial(
    tmp_path: Path, ray_address: str, gpu: str, device: str
) -> None:
    _train_cli(
        [
            "-m",
            "hydra/sweeper=ray_optuna",
            "scheduler.max_lr=interval(0.001, 0.1)",
            "trainer.max_epochs=2",
            *TINY,
            "hydra.sweeper.n_trials=4",
            f"hydra.sweeper.resources_per_trial.gpu={gpu}",
            "hydra.sweeper.resources_per_trial.cpu=0.5",
            "experiment_id=gpu",
        ],
        cwd=tmp_path,
        ray_address=ray_address,
    )
    (sweep,) = (tmp_path / "trained_models" / "gpu").iterdir()
    logs = sorted(sweep.glob("[0-9]*/app.log"))
    assert len(logs) == 4
    for log in logs:
        assert re.search(rf"Trained on {device}\b", log.read_text()), log
