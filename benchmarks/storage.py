"""Stored studies under load: 200 short trials, 4 at a time, each reporting 10 intermediate values,
against SQLite, an Optuna journal file and PostgreSQL, with the in-memory study as the baseline.

Prints, per storage: wall time of the whole command, trials lost (finished trials missing from the
study, or without all 10 intermediate values; must be 0) and errors (FAIL trials and "database is
locked" messages; must be 0). PostgreSQL runs when HANNAH_RAY_BENCH_POSTGRES_URL (or
HANNAH_RAY_TEST_POSTGRES_URL, which .ci/run sets) names a server, Redis likewise with
HANNAH_RAY_BENCH_REDIS_URL (or HANNAH_RAY_TEST_REDIS_URL).

    python benchmarks/storage.py
    python benchmarks/storage.py --trials 50
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import optuna
from optuna.trial import TrialState

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from overhead import start_ray_cluster, stop_ray_cluster  # noqa: E402

from hannah_ray.storage import create_storage, mask_url  # noqa: E402

APP = REPO / "benchmarks" / "app" / "reporting.py"
JOBS = 4


def storages(workdir: Path) -> dict[str, str | None]:
    found = {
        "in memory (baseline)": None,
        "SQLite": f"sqlite:///{workdir}/bench.db",
        "journal file": f"journal:///{workdir}/bench.journal",
    }
    postgres = os.environ.get("HANNAH_RAY_BENCH_POSTGRES_URL") or os.environ.get(
        "HANNAH_RAY_TEST_POSTGRES_URL"
    )
    if postgres:
        found["PostgreSQL"] = postgres
    redis = os.environ.get("HANNAH_RAY_BENCH_REDIS_URL") or os.environ.get(
        "HANNAH_RAY_TEST_REDIS_URL"
    )
    if redis:
        found["Redis journal"] = redis
    return found


def run(storage: str | None, trials: int, workdir: Path) -> tuple[float, int, int]:
    study_name = f"bench-{uuid.uuid4().hex[:8]}"
    command = [
        sys.executable, str(APP), "-m", "+x=interval(-1, 1)", "hydra/sweeper=ray_optuna",
        f"hydra.sweeper.n_trials={trials}", f"hydra.sweeper.n_jobs={JOBS}",
        "hydra.sweeper.resources_per_trial.cpu=1", f"hydra.sweeper.study_name={study_name}",
        "hydra.sweeper.ray.address=auto", f"hydra.sweep.dir={workdir}/sweep-{study_name}",
        f"hydra.sweeper.storage={'null' if storage is None else storage}",
    ]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True)
    wall = time.perf_counter() - start
    output = done.stdout + done.stderr
    errors = output.count("database is locked") + (done.returncode != 0)
    if storage is None:  # the study is gone with the process: count from the sweep's log
        complete = output.count(" COMPLETE ")
        failed = output.count(" FAIL:")
        return wall, trials - complete, errors + failed
    study = optuna.load_study(study_name=study_name, storage=create_storage(storage))
    kept = [
        t
        for t in study.trials
        if t.state == TrialState.COMPLETE and sorted(t.intermediate_values) == list(range(1, 11))
    ]
    failed = sum(t.state == TrialState.FAIL for t in study.trials)
    return wall, trials - len(kept), errors + failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    args = parser.parse_args()
    os.environ["RAY_AUTH_MODE"] = "token"
    workdir = Path(tempfile.mkdtemp(prefix="hannah-ray-storage-"))
    start_ray_cluster(JOBS)
    try:
        print(
            f"machine: {os.cpu_count()} CPUs; {args.trials} trials, {JOBS} at a time, 10 reports "
            "each; one Ray instance shared by the runs; wall time of the whole command"
        )
        print(f"{'storage':<22} {'wall s':>8} {'ms/trial':>9} {'lost':>5} {'errors':>7}  url")
        for name, storage in storages(workdir).items():
            wall, lost, errors = run(storage, args.trials, workdir)
            print(
                f"{name:<22} {wall:>8.1f} {wall / args.trials * 1000:>9.0f} {lost:>5} "
                f"{errors:>7}  {mask_url(storage)}",
                flush=True,
            )
    finally:
        stop_ray_cluster()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
