"""The ``hannah-ray-train`` Lightning app: alone, in an ASHA sweep, and the hannah doc's commands."""

from __future__ import annotations

import ast
import csv
import os
import re
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from hannah_ray.train.app import train

REPO = Path(__file__).resolve().parents[1]
TRAIN = Path(sys.executable).parent / "hannah-ray-train"
TINY = [
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=0",
]


def _scalars(event_file: Path, tag: str) -> list[tuple[int, float]]:
    """(step, value) of one scalar in a TensorBoard event file (TFRecord framing: length, CRC,
    data, CRC), read with tensorboardX's protobuf classes."""
    from tensorboardX.proto.event_pb2 import Event

    data = event_file.read_bytes()
    values, offset = [], 0
    while offset < len(data):
        (length,) = struct.unpack_from("<Q", data, offset)
        event = Event.FromString(data[offset + 12 : offset + 12 + length])
        offset += 12 + length + 4
        values += [(event.step, v.simple_value) for v in event.summary.value if v.tag == tag]
    return values


def _app_config(overrides: list[str]) -> Any:
    """The app's config composed from ``conf/`` with ``overrides``, without a Hydra run."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("config", ["trainer.enable_progress_bar=false", *overrides])


def _train_cli(args: list[str], cwd: Path, ray_address: str | None = None) -> str:
    environment = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    environment.pop("PYTHONPATH", None)
    environment["RAY_AUTH_MODE"] = "token"  # to join the session's Ray instance
    if ray_address:
        args = [*args, f"hydra.sweeper.ray.address={ray_address}"]
    done = subprocess.run(
        [str(TRAIN), *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=400
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_the_app_trains_once_on_the_embedded_data(tmp_path: Path) -> None:
    _train_cli(["trainer.max_epochs=5", "experiment_id=alone"], cwd=tmp_path)
    (run_dir,) = (tmp_path / "trained_models" / "alone").iterdir()
    log = (run_dir / "app.log").read_text()
    validation = ast.literal_eval(re.search(r"Validation: (\{.*\})", log).group(1))
    assert validation["val_error"] < 0.15  # 10 classes: chance is 0.9
    # Like hannah, the app returns the best epoch's value, not the last one's.
    event_files = sorted((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    curve = [value for events in event_files for _, value in _scalars(events, "val_error")]
    # TensorBoard's HPARAMS tab shows the last hp_metric written (Lightning writes a placeholder
    # -1 with the hyperparameters, at fit's start; test must not write another): the value returned.
    hp_metric = [value for events in event_files for value in _scalars(events, "hp_metric")]
    assert hp_metric[-1][1] == pytest.approx(validation["val_error"], abs=1e-6)
    assert [value for _, value in hp_metric].count(-1) == 1
    assert len(curve) == 5
    assert validation["val_error"] == pytest.approx(min(curve), abs=1e-6)
    best_epochs = ast.literal_eval(re.search(r"Best epochs[^:]*: (\{.*\})", log).group(1))
    assert curve[best_epochs["val_error"] - 1] == pytest.approx(min(curve), abs=1e-6)
    test = ast.literal_eval(re.search(r"Test: (\{.*\})", log).group(1))
    assert test["test_error"] < 0.2
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert list((run_dir / "checkpoints").glob("*.ckpt"))


def test_an_asha_sweep_of_the_app_prunes_trials_and_logs_each_to_tensorboard(
    run_sweep, tmp_path: Path
) -> None:
    storage = f"sqlite:///{tmp_path}/digits.db"
    run = run_sweep(
        train,
        [
            "scheduler.max_lr=tag(log, interval(0.00001, 0.5))",
            "trainer.max_epochs=4",
            *TINY,
            "hydra/sweeper/sampler=random",
            "hydra.sweeper.sampler.seed=3",
            # max_t stays 100: ASHA's rungs (1, 2, 4, ...) include the last epoch, where the
            # callback's last report keeps a trial that trained all its epochs from being cut.
            "hydra/sweeper/scheduler=asha",
            "hydra.sweeper.scheduler.reduction_factor=2",
            "hydra.sweeper.n_trials=8",
            f"hydra.sweeper.storage={storage}",
            "hydra.sweeper.study_name=digits",
        ],
        config_path=str(REPO / "conf"),
        config_name="config",
    )
    study = optuna.load_study(study_name="digits", storage=storage)
    assert len(study.trials) == 8 and len(run.returns) == 8
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert pruned and complete and len(pruned) + len(complete) == 8
    for trial in pruned:
        assert 1 <= len(trial.intermediate_values) < 4
    for trial in complete:
        assert sorted(trial.intermediate_values) == [1, 2, 3, 4]
        # Like hannah's: the best epoch's val_error (each epoch's one validation reported).
        assert trial.value == pytest.approx(min(trial.intermediate_values.values()))
    # One TensorBoard run per trial (pruned ones included) under the sweep folder, with hparams,
    # as `tensorboard --logdir <sweep dir>` reads them.
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    board = EventMultiplexer().AddRunsFromDirectory(str(run.sweep_dir))
    board.Reload()
    trial_runs = {f"{trial.number}/tensorboard" for trial in study.trials}
    assert trial_runs <= set(board.Runs())
    assert trial_runs <= set(board.PluginRunToTagToContent("hparams"))
    for name in trial_runs:
        assert "val_error" in board.Runs()[name]["scalars"]
        assert "scheduler.max_lr" in (run.sweep_dir / name / "hparams.yaml").read_text()
    # Ray Tune's own per-trial results are kept as well (JSON and CSV by default).
    assert len(list((run.sweep_dir / "ray_tune").glob("*/result.json"))) == 8
    assert len(list((run.sweep_dir / "ray_tune").glob("*/progress.csv"))) == 8
    assert not list((run.sweep_dir / "ray_tune").glob("*/events.out.tfevents.*"))


@pytest.mark.parametrize(
    ("batches", "epochs"),
    [
        (4, ["0.5", "1", "1.5", "2"]),
        # Validations every 2 batches of 5: none at an epoch's end; each epoch's last one counts.
        (5, ["0.4", "0.8", "1.4", "1.8"]),
    ],
)
def test_validations_inside_an_epoch_count_as_fractions_and_the_study_keeps_epoch_ends(
    run_sweep, tmp_path: Path, batches: int, epochs: list[str]
) -> None:
    storage = f"sqlite:///{tmp_path}/halves.db"
    run = run_sweep(
        train,
        [
            "trainer.max_epochs=2",
            "+trainer.val_check_interval=0.5",
            f"trainer.limit_train_batches={batches}",
            "trainer.limit_val_batches=2",
            "trainer.limit_test_batches=0",
            "hydra.sweeper.n_trials=1",
            # A rung at epoch 1.0 (not at the first validation, half-way through epoch 1).
            "hydra/sweeper/scheduler=asha",
            "hydra.sweeper.scheduler.max_t=2",
            f"hydra.sweeper.storage={storage}",
            "hydra.sweeper.study_name=halves",
        ],
        config_path=str(REPO / "conf"),
        config_name="config",
    )
    (trial,) = optuna.load_study(study_name="halves", storage=storage).trials
    assert trial.state == TrialState.COMPLETE
    (events,) = (run.sweep_dir / "0" / "tensorboard").glob("events.out.tfevents.*")
    curve = [value for _, value in _scalars(events, "val_error")]
    assert len(curve) == 4  # after 0.5, 1, 1.5 and 2 epochs (or 0.4, 0.8, 1.4, 1.8)
    assert trial.intermediate_values == {1: pytest.approx(curve[1]), 2: pytest.approx(curve[3])}
    progress = (run.sweep_dir / "ray_tune").glob("*/progress.csv")
    reported = [row["epoch"] for row in csv.DictReader(next(progress).open())]
    assert [str(round(float(e), 4)).removesuffix(".0") for e in reported[:4]] == epochs


def test_the_hannah_doc_commands_run(tmp_path: Path, ray_address: str) -> None:
    out = _train_cli(
        [
            "-m", "hydra/sweeper=ray_optuna", "scheduler.max_lr=interval(0.0001, 0.1)",
            "optimizer.weight_decay=tag(log, interval(0.00001, 0.001))",
            "hydra.sweeper.n_trials=2", "trainer.max_epochs=15", *TINY,
        ],
        cwd=tmp_path,
        ray_address=ray_address,
    )  # fmt: skip
    assert "Trial 1 COMPLETE" in out and "tensorboard --logdir" in out
    # Progress lines, and none of the trials' own output (Lightning's bars, per-step logs).
    assert "[running " in out and "done 2/2" in out
    assert "it/s" not in out and "Epoch " not in out and "GPU available" not in out
    resume = [
        "experiment_id=test_optuna_resume", "hydra/sweeper=ray_optuna",
        "hydra.sweeper.study_name=${experiment_id}",
        "hydra.sweeper.storage=sqlite:///${experiment_id}.sqlite", "trainer.max_epochs=15",
        "scheduler.max_lr=interval(0.0001, 0.1)", "module.num_workers=4", "-m",
    ]  # fmt: skip
    tiny = ["hydra.sweeper.n_trials=2", *TINY, f"hydra.sweeper.ray.address={ray_address}"]
    _train_cli([*tiny, *resume], cwd=tmp_path, ray_address="")
    study = optuna.load_study(
        study_name="test_optuna_resume", storage=f"sqlite:///{tmp_path}/test_optuna_resume.sqlite"
    )
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert all(0.0 <= t.value <= 1.0 for t in study.trials)
    # hannah's parallel-launcher command, with hydra.launcher.n_jobs -> hydra.sweeper.n_jobs.
    parallel = [
        "--multirun", "hydra/sweeper=ray_optuna", "optimizer.lr=interval(0.0001,0.1)",
        "optimizer.weight_decay=interval(0, 0.1)", "hydra.sweeper.n_jobs=5",
        "experiment_id=parallel",
    ]  # fmt: skip
    _train_cli([*parallel, *tiny, "trainer.max_epochs=1"], cwd=tmp_path, ray_address="")
    (trial_log,) = (tmp_path / "trained_models" / "parallel").glob("sweep_*/0/*.log")
    # With the default scheduler=1cycle, optimizer.lr does nothing: the trial says so.
    assert "scheduler=1cycle sets the learning rate itself" in trial_log.read_text()


@pytest.mark.parametrize("kind", ["npz", "csv", "csv_with_class_names"])
def test_the_app_trains_on_the_users_own_file(tmp_path: Path, monkeypatch, kind: str) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    extra: list[str] = []
    labels = rng.integers(0, 2, 400)
    features = rng.normal(size=(400, 6)) + labels[:, None] * 2.0  # two separable blobs
    if kind == "npz":
        path = tmp_path / "data.npz"
        np.savez(path, x=features, y=labels)
    elif kind == "csv":
        path = tmp_path / "data.csv"
        header = ",".join([f"f{i}" for i in range(6)] + ["label"])
        np.savetxt(
            path, np.column_stack([features, labels]), delimiter=",", header=header, comments=""
        )
    else:  # the label first, named with a dash, holding class names
        path = tmp_path / "data.csv"
        names = np.array(["cat", "dog"])[labels]
        lines = [",".join(["class-id"] + [f"f{i}" for i in range(6)])]
        lines += [",".join([n, *map(str, row)]) for n, row in zip(names, features, strict=True)]
        path.write_text("\n".join(lines) + "\n")
        extra.append("dataset.label_column=class-id")
    monkeypatch.chdir(tmp_path)
    cfg = _app_config(["dataset=files", f"dataset.path={path}", "trainer.max_epochs=3", *extra])
    assert train(cfg) < 0.1


def test_a_relative_data_file_is_the_launch_folders_also_when_jobs_change_folder(
    tmp_path: Path,
) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=rng.normal(size=(60, 4)), y=rng.integers(0, 2, 60))
    args = ["dataset=files", "dataset.path=data.npz", "hydra.job.chdir=true"]
    out = _train_cli([*args, "trainer.max_epochs=1", "experiment_id=files"], cwd=tmp_path)
    assert "Validation: {'val_error'" in out


def test_bad_csv_cells_are_named_with_their_line(tmp_path: Path) -> None:
    from hannah_ray.train.data import read_csv

    path = tmp_path / "bad.csv"
    path.write_text("a,b,label\n1,2,x\n\n3,oops,y\n")  # a blank line is skipped, not miscounted
    with pytest.raises(ValueError, match=r"line 4, column 'b': 'oops' is not a finite number"):
        read_csv(path, "label")
    path.write_text("a,b,label\n1,2,x\n3,4,\n")
    with pytest.raises(ValueError, match=r"line 3, label column 'label': ''. Allowed: a number"):
        read_csv(path, "label")
    path.write_text("a,b,label\n1,2,10\n3,4,2\n5,6,nan\n")
    with pytest.raises(ValueError, match=r"line 4, label column 'label': 'nan'"):
        read_csv(path, "label")
    path.write_text("a,b,label\n1,2,x\n1e39,4,y\n")  # finite, but inf as a float32 feature
    with pytest.raises(ValueError, match=r"line 3, column 'a': '1e39' is not a finite number of"):
        read_csv(path, "label")
    path.write_text("a,b,label\n1,2,10\n3,4,2\n")
    assert read_csv(path, "label")[1].tolist() == [10.0, 2.0]  # numbers, not text sorted '10' < '2'


def test_a_bad_monitor_or_data_file_names_the_key(tmp_path: Path) -> None:
    bad_monitor = _app_config(["monitor=val_acc"])
    missing_file = _app_config(["dataset=files", f"dataset.path={tmp_path}/none.npz"])
    with pytest.raises(ValueError, match="monitor='val_acc': allowed: one of"):
        train(bad_monitor)
    with pytest.raises(FileNotFoundError, match="dataset.path="):
        train(missing_file)


@pytest.mark.parametrize(
    ("gpu", "trainer", "message"),
    [
        (0, ["trainer.accelerator=gpu"], r"trainer.accelerator=gpu, but this trial holds no GPU"),
        (0.5, ["trainer.devices=2"], r"trainer.devices=2, but this trial holds 1 GPU\(s\)"),
    ],
)
def test_trainer_devices_must_fit_the_trials_gpu_share(
    run_sweep, gpu: float, trainer: list[str], message: str
) -> None:
    # The session's Ray instance declares one logical GPU (none is real here); the check comes
    # before Lightning looks for a device.
    with pytest.raises(ValueError, match=message):
        run_sweep(
            train,
            [*trainer, f"hydra.sweeper.resources_per_trial.gpu={gpu}", *TINY,
             "trainer.max_epochs=1", "hydra.sweeper.n_trials=1"],
            config_path=str(REPO / "conf"),
            config_name="config",
        )  # fmt: skip


def test_hparams_hold_every_plain_trainer_key_and_the_monitor() -> None:
    from hannah_ray.train.app import hyperparameters

    cfg = _app_config(
        ["~trainer.max_epochs", "+trainer.max_steps=40", "monitor=[val_error,val_loss]"]
    )
    hparams = hyperparameters(cfg)
    assert hparams["trainer.max_steps"] == 40 and "trainer.max_epochs" not in hparams
    assert hparams["monitor"] == "val_error,val_loss"


def test_seed_may_be_hannahs_one_element_list() -> None:
    from omegaconf import ListConfig

    from hannah_ray.train.app import hyperparameters, training_seed

    assert training_seed(ListConfig([1234])) == training_seed(1234) == 1234
    assert hyperparameters(_app_config(["seed=[7]"]))["seed"] == 7
    with pytest.raises(ValueError, match=r"seed=\[1, 2\]: .* -m seed=choice\(1, 2\)"):
        training_seed(ListConfig([1, 2]))


def test_a_list_of_monitors_returns_each_ones_best(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = _app_config(
        ["monitor=[val_error,val_accuracy,val_loss]", "trainer.max_epochs=3", *TINY[2:]]
    )
    error, accuracy, loss = train(cfg)
    assert 0.0 <= error < 0.5 and loss > 0.0
    # Lowest error and highest accuracy come from the same epoch.
    assert accuracy == pytest.approx(1.0 - error, abs=1e-6)


def test_a_short_training_keeps_its_curves_beside_the_test_results(
    tmp_path: Path, monkeypatch
) -> None:
    """Training and testing within one second: tensorboardX (Lightning's writer where the
    tensorboard package is missing) names event files by the second, so a test writer reopened
    then would overwrite the training curves."""
    monkeypatch.chdir(tmp_path)
    limits = ["limit_train_batches", "limit_val_batches", "limit_test_batches"]
    train(_app_config(["trainer.max_epochs=2", *[f"trainer.{limit}=1" for limit in limits]]))
    event_files = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    scalars = {
        tag: [value for events in event_files for value in _scalars(events, tag)]
        for tag in ("val_error", "test_error")
    }
    assert len(scalars["val_error"]) == 2 and len(scalars["test_error"]) == 1


def test_a_sweep_minimising_accuracy_stops_with_a_clear_error(run_sweep) -> None:
    with pytest.raises(
        ValueError,
        match=r"hydra.sweeper.direction=minimize: the sweep would .*\.direction=maximize\.",
    ):
        run_sweep(
            train,
            ["monitor=val_accuracy", "trainer.max_epochs=1", *TINY, "hydra.sweeper.n_trials=1"],
            config_path=str(REPO / "conf"),
            config_name="config",
        )
    with pytest.raises(ValueError, match=r"gives 2 objective\(s\), but .* has 1"):
        run_sweep(
            train,
            ["monitor=[val_error,val_loss]", "trainer.max_epochs=1", *TINY,
             "hydra.sweeper.n_trials=1"],
            config_path=str(REPO / "conf"),
            config_name="config",
        )  # fmt: skip
    # With the right direction, in any case (as the sweeper takes it), the same sweep runs.
    run = run_sweep(
        train,
        [
            "monitor=val_accuracy",
            "hydra.sweeper.direction=MAXIMIZE",
            "trainer.max_epochs=1",
            *TINY,
            "hydra.sweeper.n_trials=1",
        ],
        config_path=str(REPO / "conf"),
        config_name="config",
    )
    assert 0.0 < run.results()["best_value"] <= 1.0


def test_data_loader_workers_change_no_result(tmp_path: Path, monkeypatch) -> None:
    """A trial of the hannah doc's command (module.num_workers=4) must reproduce with the default 0."""
    monkeypatch.chdir(tmp_path)
    tiny = ["trainer.max_epochs=2", "trainer.limit_train_batches=5", "trainer.limit_val_batches=2",
            "dataset.test_fraction=0", "+trainer.logger=false", "trainer.enable_checkpointing=false",
            "model.dropout=0.3"]  # fmt: skip
    values = [train(_app_config([*tiny, f"module.num_workers={workers}"])) for workers in (0, 2)]
    assert values[0] == values[1]
