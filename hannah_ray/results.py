"""Sweep results on disk: ``optimization_results.yaml`` and a table of every trial (``trials.csv``)."""

from __future__ import annotations

import csv
import os
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from .queued import queued_params

RESULTS_FILE = "optimization_results.yaml"
TRIALS_FILE = "trials.csv"
# The study's user attributes the sweeper writes itself (the task's extra returns are the rest).
SWEEPER_ATTRS = ("ray_trial_id", "job_dir", "fail_reason", "stale_epochs", "requeued_from_trial")
# Of those, the ones the trials table shows in columns of their own, or not at all.
OWN_COLUMNS = ("ray_trial_id", "job_dir", "fail_reason")


def write_results(study: optuna.Study, sweep_dir: str, storage_label: str) -> dict[str, Any]:
    """Write both files into ``sweep_dir`` and return what went into the YAML file."""
    os.makedirs(sweep_dir, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    summary: dict[str, Any] = {
        "name": "ray_optuna",
        "study_name": study.study_name,
        "storage": storage_label,
        "directions": [d.name.lower() for d in study.directions],
        "n_trials": {
            state.name.lower(): sum(t.state == state for t in trials)
            for state in (
                TrialState.COMPLETE,
                TrialState.PRUNED,
                TrialState.FAIL,
                TrialState.RUNNING,
                TrialState.WAITING,  # queued points (a grid rerun's, orphans') not run yet
            )
        },
    }
    if any(t.state == TrialState.COMPLETE for t in trials):
        if len(study.directions) == 1:
            best = study.best_trial
            summary.update(
                best_params=best.params,
                best_value=best.value,
                best_trial={"number": best.number, "job_dir": best.user_attrs.get("job_dir")},
            )
        else:
            summary["solutions"] = [
                {
                    "number": t.number,
                    "params": t.params,
                    "values": t.values,
                    "job_dir": t.user_attrs.get("job_dir"),
                }
                for t in study.best_trials
            ]
    with open(os.path.join(sweep_dir, RESULTS_FILE), "w") as out:
        yaml.safe_dump(summary, out, sort_keys=False)
    write_trials_table(trials, len(study.directions), os.path.join(sweep_dir, TRIALS_FILE))
    return summary


def describe_results(summary: dict[str, Any]) -> str:
    """The sweep's outcome in one line for the console."""
    counts = ", ".join(f"{n} {state}" for state, n in summary["n_trials"].items() if n)
    counts = counts or "no trials"
    if "best_value" in summary:
        best = summary["best_trial"]
        return (
            f"Best: trial {best['number']}, value {summary['best_value']:.6g}, params "
            f"{summary['best_params']} ({counts}; job folder {best['job_dir']})"
        )
    if "solutions" in summary:
        front = "; ".join(
            f"trial {s['number']}: values {[float(f'{v:.6g}') for v in s['values']]}"
            for s in summary["solutions"][:5]
        )
        more = (
            f"; and {len(summary['solutions']) - 5} more" if len(summary["solutions"]) > 5 else ""
        )
        return f"Pareto front of {len(summary['solutions'])} trial(s): {front}{more} ({counts})"
    return f"No COMPLETE trial, so no best one ({counts})"


def write_trials_table(
    trials: list[optuna.trial.FrozenTrial], n_objectives: int, path: str
) -> None:
    """One row per trial: number, job folder, state, values, duration, params, user attributes."""
    params = {t.number: _params(t) for t in trials}
    param_names = sorted({name for t in trials for name in params[t.number]})
    attr_names = sorted({name for t in trials for name in t.user_attrs} - set(OWN_COLUMNS))
    value_names = ["value"] if n_objectives == 1 else [f"value_{i}" for i in range(n_objectives)]
    header = ["number", "job_dir", "state", *value_names, "duration_s", "datetime_start"]
    header += [f"params.{p}" for p in param_names] + [f"user_attrs.{a}" for a in attr_names]
    header += ["fail_reason"]
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        for t in sorted(trials, key=lambda trial: trial.number):
            values = list(t.values) if t.values else [None] * n_objectives
            duration = t.duration.total_seconds() if t.duration is not None else None
            writer.writerow(
                [t.number, t.user_attrs.get("job_dir"), t.state.name, *values, duration]
                + [t.datetime_start.isoformat() if t.datetime_start else None]
                + [params[t.number].get(p) for p in param_names]
                + [t.user_attrs.get(a) for a in attr_names]
                + [t.user_attrs.get("fail_reason")]
            )


def _params(trial: optuna.trial.FrozenTrial) -> dict:
    """A trial's parameters; a queued (WAITING) trial's are the ones it was queued with."""
    return queued_params(trial) if trial.state == TrialState.WAITING else trial.params
