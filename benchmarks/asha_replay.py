"""ASHA replayed on recorded learning curves: how often does a 24-trial ASHA search on the embedded
digits data reach a best error within 0.5 points of the best of 24 full trainings, and how soon?

``time_to_accuracy.py`` measures one search per seed, and whether ASHA reaches the baselines' best
comes down to one or two validation images; a few runs cannot tell a setting that misses 1 time in
10 from one that misses 1 in 20. This script trains a pool of trials to the end once (random
sampler, the same search space and model as ``time_to_accuracy.py``), reads each trial's
per-epoch ``val_error`` and ``val_loss`` from its TensorBoard events, then replays Ray Tune's ASHA
rules (its rungs, its cut-off percentile, its random choice of bracket, a report marked last never
cut) on thousands of random 24-trial draws from the pool, 2 trials at a time, every epoch taking
the same time. A draw's baseline is its best trial trained to the end. Not modelled: the sampler's
adaptivity (TPE in the real search) and fixed start-up costs.

    python benchmarks/asha_replay.py                       # trains the pool first (~4 min)
    python benchmarks/asha_replay.py --pool-dir DIR        # replays a pool trained before
"""

from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SEARCH = [
    "model=convnet",
    "scheduler.max_lr=tag(log, interval(0.0003, 0.3))",
    "optimizer.weight_decay=tag(log, interval(0.00001, 0.01))",
    "trainer.limit_test_batches=0",
]
# Within this many points of the baseline's best (the target of time_to_accuracy.py).
MARGIN = 0.005
# When the best must be reached, as fractions of the baseline's training time (its epochs / 2).
DEADLINES = (0.15, 0.2, 0.25, 1 / 3, math.inf)


@dataclass(frozen=True)
class Setting:
    label: str
    rung_metric: str = "val_error"  # what ASHA compares at its rungs
    grace_period: int = 1
    reduction_factor: float = 4
    brackets: int = 1


SETTINGS = [
    Setting("grace 1, factor 4 (time_to_accuracy.py)"),
    Setting("grace 1, factor 3", reduction_factor=3),
    Setting("grace 2, factor 4", grace_period=2),
    Setting("grace 1, factor 4, 2 brackets", brackets=2),
    Setting("grace 1, factor 3, 2 brackets", reduction_factor=3, brackets=2),
    Setting("val_loss at the rungs", rung_metric="val_loss"),
    Setting("val_loss at the rungs, factor 3", rung_metric="val_loss", reduction_factor=3),
]


def train_pool(pool_dir: Path, trials: int, epochs: int, seed: int) -> None:
    command = [
        sys.executable, "-m", "hannah_ray.train.app", "-m", "hydra/sweeper=ray_optuna",
        "hydra/sweeper/sampler=random", f"hydra.sweeper.sampler.seed={seed}", *SEARCH,
        f"trainer.max_epochs={epochs}", f"hydra.sweeper.n_trials={trials}",
        "hydra.sweeper.n_jobs=2", "hydra.sweeper.ray.num_cpus=2", f"hydra.sweep.dir={pool_dir}",
    ]  # fmt: skip
    print(f"training a pool of {trials} trials in {pool_dir} ...", flush=True)
    subprocess.run(command, check=True, capture_output=True)


def load_curves(pool_dir: Path, epochs: int) -> list[dict[str, list[float]]]:
    """Each trained trial's per-epoch validation metrics (cached in ``curves.json``)."""
    cache = pool_dir / "curves.json"
    if cache.exists():
        return json.loads(cache.read_text())
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    curves = []
    for job in sorted(pool_dir.glob("[0-9]*/tensorboard")):
        events = EventAccumulator(str(job))
        events.Reload()
        curve = {}
        for tag in ("val_error", "val_loss"):
            points = sorted(events.Scalars(tag), key=lambda point: point.step)
            curve[tag] = [point.value for point in points]
        if len(curve["val_error"]) >= epochs:
            curves.append(curve)
    cache.write_text(json.dumps(curves))
    return curves


def replay(
    curves: list[dict], setting: Setting, max_t: int, rng: random.Random
) -> tuple[list[tuple[float, float]], float]:
    """One ASHA search over ``curves`` in their order, 2 at a time: (end time, best error) of each
    trial that trained to ``max_t``, and when the search ended; times in epochs."""
    rf, grace = setting.reduction_factor, setting.grace_period
    brackets = []
    for s in range(setting.brackets):
        n_rungs = int(math.log(max_t / grace) / math.log(rf) - s + 1)
        brackets.append([(grace * rf ** (k + s), {}) for k in reversed(range(n_rungs))])
    weights = [math.e ** (len(b) - max(len(b) for b in brackets)) for b in brackets]
    queue = list(range(len(curves)))
    running = []  # [trial, start, epochs done, rungs]

    def start(now: float) -> None:
        if queue:
            rungs = rng.choices(brackets, weights)[0]
            running.append([queue.pop(0), now, 0, rungs])

    start(0.0)
    start(0.0)
    completed = []
    now = 0.0
    while running:
        running.sort(key=lambda run: run[1] + run[2])
        run = running[0]
        run[2] += 1
        trial, began, epoch, rungs = run
        now = began + epoch
        reward = -curves[trial][setting.rung_metric][epoch - 1]
        stop = False
        if epoch < max_t:  # the last report is never cut (a trial that has done its work)
            for milestone, recorded in rungs:
                if epoch >= milestone and trial in recorded:
                    break
                if epoch < milestone:
                    continue
                if recorded:
                    cutoff = np.nanpercentile(list(recorded.values()), (1 - 1 / rf) * 100)
                    stop = reward < cutoff
                recorded[trial] = reward
                break
        if stop or epoch >= max_t:
            running.pop(0)
            if not stop:
                completed.append((now, min(curves[trial]["val_error"][:max_t])))
            start(now)
    return completed, now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool-dir", type=Path, help="a pool trained before (or to train into)")
    parser.add_argument("--pool-trials", type=int, default=48)
    parser.add_argument("--trials", type=int, default=24, help="trials per replayed search")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--draws", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    pool_dir = args.pool_dir or Path(tempfile.mkdtemp(prefix="asha-pool-"))
    if not (pool_dir / "curves.json").exists() and not list(pool_dir.glob("[0-9]*")):
        train_pool(pool_dir, args.pool_trials, args.epochs, args.seed)
    curves = load_curves(pool_dir, args.epochs)
    finals = sorted(min(curve["val_error"]) for curve in curves)
    print(f"pool: {len(curves)} trials in {pool_dir}; best errors " + ", ".join(
        f"{value:.2%}" for value in finals[:8]) + " ...")  # fmt: skip
    draw_rng = random.Random(args.seed)
    draws = [draw_rng.sample(curves, args.trials) for _ in range(args.draws)]
    baseline_time = args.trials * args.epochs / 2
    header = "".join(f"{f'<={d:.2f}T' if d < math.inf else 'ever':>9}" for d in DEADLINES)
    print(f"share of {args.draws} draws within {MARGIN:.1%} of their best of {args.trials}, by")
    print(f"{'setting':<42}{header}{'completed':>11}{'ends':>8}")
    for setting in SETTINGS:
        rng = random.Random(args.seed)
        reached, n_completed, ends = [], [], []
        for draw in draws:
            target = min(min(curve["val_error"][: args.epochs]) for curve in draw) + MARGIN
            completed, end = replay(draw, setting, args.epochs, rng)
            times = [t for t, best in completed if best <= target + 1e-9]
            reached.append(min(times) / baseline_time if times else None)
            n_completed.append(len(completed))
            ends.append(end / baseline_time)
        shares = "".join(
            f"{sum(r is not None and r <= d for r in reached) / len(reached):>9.3f}"
            for d in DEADLINES
        )
        print(
            f"{setting.label:<42}{shares}{np.mean(n_completed):>11.1f}{np.mean(ends):>7.2f}T",
            flush=True,
        )


if __name__ == "__main__":
    main()
