"""Time to accuracy: the same 24-trial search of ``hannah-ray-train`` on the embedded digits data,
up to 15 epochs, 2 trials at a time:

  (a) hydra/sweeper=ray_optuna with ASHA early stopping,
  (b) hydra/sweeper=ray_optuna without a scheduler,
  (c) the stock hydra/sweeper=optuna with hydra/launcher=joblib (its own venv: it pins optuna<3),
  (a') (a) joining a Ray instance that is already up (``ray start --head``), as on a cluster.

Prints each one's wall time (the whole command), best validation error, and when its best trial
completed. Target: (a) reaches a best error within 0.5 points of (b) and (c) in at most a third of
their wall time (measured from the start of (a)'s command to the completion of its first trial that
good); the whole-command ratio is printed too.

    python benchmarks/time_to_accuracy.py
    python benchmarks/time_to_accuracy.py --trials 6 --epochs 3    # a quick look
    python benchmarks/time_to_accuracy.py --seeds 3                # sampler seeds 0, 1, 2
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from overhead import start_ray_cluster, stock_python, stop_ray_cluster  # noqa: E402

RAY_RUNNING = "(a') (a), Ray running"
STOCK_APP_PACKAGES = ["torch==2.13.0", "pytorch-lightning", "scikit-learn", "tensorboardX"]


def search(trials: int, epochs: int, jobs: int, seed: int) -> list[str]:
    return [
        "model=convnet",
        "scheduler.max_lr=tag(log, interval(0.0003, 0.3))",
        "optimizer.weight_decay=tag(log, interval(0.00001, 0.01))",
        f"trainer.max_epochs={epochs}",
        "trainer.limit_test_batches=0",
        f"hydra.sweeper.n_trials={trials}",
        f"hydra.sweeper.n_jobs={jobs}",
        f"hydra.sweeper.sampler.seed={seed}",
    ]


def variants(trials: int, epochs: int, jobs: int, seed: int) -> dict[str, list[str]]:
    space = search(trials, epochs, jobs, seed)
    ours = [sys.executable, "-m", "hannah_ray.train.app", "-m", "hydra/sweeper=ray_optuna"]
    ours += [*space, f"hydra.sweeper.ray.num_cpus={jobs}"]
    stock = [stock_python(), "-m", "hannah_ray.train.app", "-m", "hydra/sweeper=optuna"]
    stock += ["hydra/launcher=joblib", *space, f"hydra.launcher.n_jobs={jobs}"]
    asha = ["hydra/sweeper/scheduler=asha", f"hydra.sweeper.scheduler.max_t={epochs}"]
    return {
        "(a) ray_optuna + ASHA": [*ours, *asha],
        "(b) ray_optuna, no scheduler": ours,
        "(c) stock optuna + joblib": stock,
        # (a) joining a Ray instance that is already up (a cluster, or a second sweep).
        RAY_RUNNING: [*ours[:-1], *asha, "hydra.sweeper.ray.address=auto"],
    }


@dataclass
class Outcome:
    wall_s: float
    best: float
    pruned: int
    # (seconds since the command started, value) of each COMPLETE trial, from ray_optuna's
    # progress lines; the stock sweeper prints none.
    completions: list[tuple[float, float]]

    def first_within(self, target: float) -> float | None:
        """Seconds until a COMPLETE trial first reached ``target`` or better (values are logged
        with 6 significant digits)."""
        return next((t for t, value in self.completions if value <= target + 1e-6), None)


_COMPLETE = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]\[HYDRA\] Trial \d+ COMPLETE value (\S+)"
)


def run(command: list[str]) -> Outcome:
    workdir = Path(tempfile.mkdtemp(prefix="hannah-ray-tta-"))
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        started = time.time()
        done = subprocess.run(
            [*command, f"hydra.sweep.dir={workdir}/sweep"],
            cwd=workdir,
            env=environment,
            capture_output=True,
            text=True,
        )
        elapsed = time.time() - started
        if done.returncode != 0:
            sys.exit(f"failed: {' '.join(command)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        results = yaml.safe_load((workdir / "sweep" / "optimization_results.yaml").read_text())
        output = done.stdout + done.stderr
        completions = []
        for line in output.splitlines():
            if match := _COMPLETE.match(line):
                stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                completions.append((stamp - started, float(match.group(2))))
        return Outcome(elapsed, float(results["best_value"]), output.count(" PRUNED "), completions)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def compare(label: str, asha: Outcome, name: str, other: Outcome) -> str:
    reached = asha.first_within(other.best + 0.005)
    reached_text = (
        f"{reached:.1f} s = {reached / other.wall_s:.2f} of its wall time"
        if reached is not None
        else "never"
    )
    return (
        f"{label} vs {name[:3]}: best error {100 * (asha.best - other.best):+.2f} points "
        f"(target <= +0.5); {label} first within 0.5 points of {name[:3]}'s best after "
        f"{reached_text} (target <= 0.33); whole command {asha.wall_s / other.wall_s:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=1, help="sampler seeds 0..N-1, each a run")
    args = parser.parse_args()
    python = stock_python()
    subprocess.run([python, "-m", "pip", "install", "-q", *STOCK_APP_PACKAGES], check=True)
    print(
        f"machine: {os.cpu_count()} CPUs; {args.trials} trials, up to {args.epochs} epochs, "
        f"{args.jobs} at a time; wall = the whole command; t best = when its best trial completed"
    )
    print(
        f"{'seed':>4} {'variant':<30} {'wall s':>7} {'t best s':>8} {'best error':>10} {'pruned':>6}"
    )
    for seed in range(args.seeds):
        outcomes: dict[str, Outcome] = {}
        for name, command in variants(args.trials, args.epochs, args.jobs, seed).items():
            if name == RAY_RUNNING:
                os.environ["RAY_AUTH_MODE"] = "token"
                start_ray_cluster(args.jobs)
                try:
                    outcome = outcomes[name] = run(command)
                finally:
                    stop_ray_cluster()
            else:
                outcome = outcomes[name] = run(command)
            t_best = outcome.first_within(outcome.best)
            print(
                f"{seed:>4} {name:<30} {outcome.wall_s:>7.1f} "
                f"{'-' if t_best is None else f'{t_best:.1f}':>8} {outcome.best * 100:>9.2f}% "
                f"{outcome.pruned:>6}",
                flush=True,
            )
        for asha_name in ("(a) ray_optuna + ASHA", RAY_RUNNING):
            for name in ("(b) ray_optuna, no scheduler", "(c) stock optuna + joblib"):
                label = asha_name.split()[0]
                print(
                    f"     {compare(label, outcomes[asha_name], name, outcomes[name])}", flush=True
                )


if __name__ == "__main__":
    main()
