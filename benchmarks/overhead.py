"""Sweep overhead: hydra/sweeper=ray_optuna against the stock optuna sweeper + joblib launcher.

Both sweep the same app over ``x=interval(-5, 5)``; each row is one whole command, timed from start
to exit (Python start-up, Hydra, Ray start-up included). The stock sweeper pins optuna<3, so it runs
from its own virtual environment (.venv-stock), created on first use.

    python benchmarks/overhead.py                # both cases
    python benchmarks/overhead.py --trials 50    # quicker
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "benchmarks" / "app" / "trivial.py"
STOCK_VENV = REPO / ".venv-stock"
STOCK_PACKAGES = [
    "hydra-core==1.3.2",
    "hydra-optuna-sweeper==1.3.0",
    "hydra-joblib-launcher==1.2.0",
    # Optuna 2.10 (pinned by the stock sweeper) crashes on stored studies with newer ones.
    "sqlalchemy<2",
    "alembic<1.14",
]


def stock_python() -> str:
    python = STOCK_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {STOCK_VENV} for the stock sweeper ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(STOCK_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *STOCK_PACKAGES], check=True)
    return str(python)


def timed(command: list[str], cwd: str) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return elapsed


def run_case(name: str, trials: int, jobs: int, vary: bool, ray_address: str | None) -> None:
    common = ["-m", "x=interval(-5, 5)", f"vary_duration={str(vary).lower()}"]
    ours = [
        sys.executable, str(APP), *common, "hydra/sweeper=ray_optuna",
        f"hydra.sweeper.n_trials={trials}", f"hydra.sweeper.n_jobs={jobs}",
        # Like the stock sweeper, keep no per-trial result files beyond the Hydra job folder
        # (Ray Tune's loggers cost ~0.1 s a trial on 2 cores; see benchmarks/README.md).
        "hydra.sweeper.tune_logs=false",
    ]  # fmt: skip
    if ray_address:
        ours.append(f"hydra.sweeper.ray.address={ray_address}")
        name += ", Ray running"
    else:
        # A node runs about as many workers at once as it has (logical) CPUs.
        ours.append(f"hydra.sweeper.ray.num_cpus={_ray_cpus(jobs)}")
    stock = [
        stock_python(), str(APP), *common, "hydra/sweeper=optuna", "hydra/launcher=joblib",
        f"hydra.sweeper.n_trials={trials}", f"hydra.sweeper.n_jobs={jobs}",
        f"hydra.launcher.n_jobs={jobs}",
    ]  # fmt: skip
    times = []
    for command in (ours, stock):
        workdir = tempfile.mkdtemp(prefix="hannah-ray-bench-")
        try:
            times.append(timed(command, workdir))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    ours_s, stock_s = times
    print(
        f"{name:<46} {trials:>6} {jobs:>4} {ours_s:>9.1f} {stock_s:>9.1f} "
        f"{ours_s / trials * 1000:>9.0f} {stock_s / trials * 1000:>9.0f} {ours_s / stock_s:>6.2f}",
        flush=True,
    )


def _ray_cpus(jobs: int) -> int:
    return max(jobs, os.cpu_count() or 1)


def start_ray_cluster(num_cpus: int) -> str:
    """A long-lived local Ray head, as a user with a cluster has (`ray start --head`)."""
    ray = str(Path(sys.executable).parent / "ray")
    subprocess.run([ray, "get-auth-token", "--generate"], capture_output=True)
    subprocess.run(
        [ray, "start", "--head", f"--num-cpus={num_cpus}", "--include-dashboard=false"],
        check=True,
        capture_output=True,
    )
    return "auto"


def stop_ray_cluster() -> None:
    subprocess.run(
        [str(Path(sys.executable).parent / "ray"), "stop", "--force"], capture_output=True
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    args = parser.parse_args()
    stock_python()
    print(f"machine: {os.cpu_count()} CPUs; wall time of the whole command; ratio = ours / stock")
    print(
        f"{'case':<46} {'trials':>6} {'jobs':>4} {'ours s':>9} {'stock s':>9} "
        f"{'ours ms/t':>9} {'stock ms/t':>9} {'ratio':>6}"
    )
    cases = [
        ("trivial task (target <= 1.0)", 2, False),
        ("0.1-1.0 s task (target <= 0.7)", 8, True),
    ]
    for name, jobs, vary in cases:
        run_case(name, args.trials, jobs, vary, ray_address=None)
    # The same, against a Ray instance that is already up (a cluster, or a second sweep).
    os.environ["RAY_AUTH_MODE"] = "token"
    for name, jobs, vary in cases:
        address = start_ray_cluster(_ray_cpus(jobs))
        try:
            run_case(name, args.trials, jobs, vary, ray_address=address)
        finally:
            stop_ray_cluster()


if __name__ == "__main__":
    main()
