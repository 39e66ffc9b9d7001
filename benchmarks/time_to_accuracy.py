"""Time to accuracy: the same 24-trial search of ``hannah-ray-train`` on the embedded digits data,
up to 15 epochs, 2 trials at a time:

  (a) hydra/sweeper=ray_optuna with ASHA early stopping,
  (b) hydra/sweeper=ray_optuna without a scheduler,
  (c) the stock hydra/sweeper=optuna with hydra/launcher=joblib (its own venv: it pins optuna<3).

Prints each one's wall time (the whole command) and best validation error. Target: (a) within 0.5
points of (b) and (c) in at most a third of their wall time.

    python benchmarks/time_to_accuracy.py
    python benchmarks/time_to_accuracy.py --trials 6 --epochs 3    # a quick look
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

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from overhead import stock_python  # noqa: E402

STOCK_APP_PACKAGES = ["torch==2.13.0", "pytorch-lightning", "scikit-learn", "tensorboardX"]


def search(trials: int, epochs: int, jobs: int) -> list[str]:
    return [
        "model=convnet",
        "scheduler.max_lr=tag(log, interval(0.0003, 0.3))",
        "optimizer.weight_decay=tag(log, interval(0.00001, 0.01))",
        f"trainer.max_epochs={epochs}",
        "trainer.limit_test_batches=0",
        f"hydra.sweeper.n_trials={trials}",
        f"hydra.sweeper.n_jobs={jobs}",
        "hydra.sweeper.sampler.seed=0",
    ]


def variants(trials: int, epochs: int, jobs: int) -> dict[str, list[str]]:
    ours = [sys.executable, "-m", "hannah_ray.train.app", "-m", "hydra/sweeper=ray_optuna"]
    ours += [*search(trials, epochs, jobs), f"hydra.sweeper.ray.num_cpus={jobs}"]
    stock = [stock_python(), "-m", "hannah_ray.train.app", "-m", "hydra/sweeper=optuna"]
    stock += [
        "hydra/launcher=joblib",
        *search(trials, epochs, jobs),
        f"hydra.launcher.n_jobs={jobs}",
    ]
    return {
        "(a) ray_optuna + ASHA": [
            *ours,
            "hydra/sweeper/scheduler=asha",
            f"hydra.sweeper.scheduler.max_t={epochs}",
        ],
        "(b) ray_optuna, no scheduler": ours,
        "(c) stock optuna + joblib": stock,
    }


def run(command: list[str]) -> tuple[float, float, str]:
    workdir = Path(tempfile.mkdtemp(prefix="hannah-ray-tta-"))
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        start = time.perf_counter()
        done = subprocess.run(
            [*command, f"hydra.sweep.dir={workdir}/sweep"],
            cwd=workdir,
            env=environment,
            capture_output=True,
            text=True,
        )
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"failed: {' '.join(command)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        results = yaml.safe_load((workdir / "sweep" / "optimization_results.yaml").read_text())
        pruned = done.stdout.count(" PRUNED ") + done.stderr.count(" PRUNED ")
        return elapsed, float(results["best_value"]), f"{pruned} pruned" if pruned else ""
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    python = stock_python()
    subprocess.run([python, "-m", "pip", "install", "-q", *STOCK_APP_PACKAGES], check=True)
    print(
        f"machine: {os.cpu_count()} CPUs; {args.trials} trials, up to {args.epochs} epochs, "
        f"{args.jobs} at a time; wall time of the whole command"
    )
    print(f"{'variant':<32} {'wall s':>8} {'best val_error':>15} {'note':>10}")
    figures: dict[str, tuple[float, float]] = {}
    for name, command in variants(args.trials, args.epochs, args.jobs).items():
        wall, best, note = run(command)
        figures[name] = (wall, best)
        print(f"{name:<32} {wall:>8.1f} {best * 100:>14.2f}% {note:>10}", flush=True)
    (asha_wall, asha_best), *others = figures.values()
    for name, (wall, best) in list(figures.items())[1:]:
        print(
            f"(a) vs {name[:3]}: wall ratio {asha_wall / wall:.2f} (target <= 0.33), "
            f"best error {100 * (asha_best - best):+.2f} points (target <= +0.5)"
        )


if __name__ == "__main__":
    main()
