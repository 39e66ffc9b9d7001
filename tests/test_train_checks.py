"""``hannah-ray-train``'s checks before training: data files, split fractions, schedules and
trainer keys, each failing with a message that names the key, the value and what is allowed."""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from hannah_ray.train.app import train, trainer_extras, warn_of_overrides_1cycle_ignores
from hannah_ray.train.checks import (
    check_devices_fit_the_trial,
    check_one_process,
    check_sweep_direction,
    check_validation_before_max_steps,
    check_validation_runs,
    monitored,
    smallest_fraction,
    warn_of_unvalidated_training,
)
from hannah_ray.train.data import ClassificationData, load_arrays, read_csv, split_sizes
from hannah_ray.train.module import build_scheduler, training_steps

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=0",
]


def _app_config(overrides: list[str]) -> Any:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("config", ["trainer.enable_progress_bar=false", *overrides])


def _files(path: Path, **keys: Any) -> Any:
    base = {"name": "files", "path": str(path), "label_column": "label", "image_shape": None}
    return OmegaConf.create(
        {**base, "val_fraction": 0.2, "test_fraction": 0.2, "split_seed": 0, **keys}
    )


def _npz(tmp_path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    np.savez(tmp_path / "data.npz", x=x, y=y)
    return tmp_path / "data.npz"


X = np.random.default_rng(0).normal(size=(20, 3))
Y = np.arange(20) % 3


# --- 1. split fractions, and a run that never validates ---------------------------------------


@pytest.mark.parametrize(
    ("val", "test", "message"),
    [
        (-0.2, 0.2, r"dataset.val_fraction=-0.2: allowed: 0 < val_fraction < 1"),
        (0, 0.2, r"dataset.val_fraction=0: allowed: 0 < val_fraction < 1"),
        (0.2, -0.1, r"dataset.test_fraction=-0.1: allowed: 0 <= test_fraction < 1"),
        (0.6, 0.6, r"val_fraction=0.6 \+ dataset.test_fraction=0.6 = 1.2 leaves no training"),
        ("a", 0.2, r"dataset.val_fraction='a': allowed: a number between 0 and 1"),
        (
            0.01,
            0.2,
            r"dataset.val_fraction=0.01 of 20 samples is no sample. Allowed: at least 0.05",
        ),
        (0.2, 0.01, r"dataset.test_fraction=0.01 of 20 samples is no sample.* or 0 for no test"),
    ],
)
def test_bad_split_fractions_are_refused_with_the_rule(val: Any, test: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_sizes(20, val, test)


def test_a_split_fraction_is_checked_before_the_data_loads(tmp_path: Path) -> None:
    data = ClassificationData(
        _files(tmp_path / "absent.npz", val_fraction=-0.2),
        OmegaConf.create({"batch_size": 4, "num_workers": 0}),
    )
    with pytest.raises(ValueError, match="dataset.val_fraction=-0.2"):
        data.setup()
    assert split_sizes(20, 0.2, 0) == (4, 0)  # test_fraction=0: no test split, no test run


@pytest.mark.parametrize(
    ("trainer", "message"),
    [
        (
            ["trainer.limit_val_batches=0"],
            r"trainer.limit_val_batches=0: no validation, so monitor=\['val_error'\]",
        ),
        (
            ["trainer.max_epochs=2", "+trainer.check_val_every_n_epoch=3"],
            r"trainer.check_val_every_n_epoch=3 with trainer.max_epochs=2: no validation",
        ),
        (  # max_steps only shortens training: it cannot make up for max_epochs
            [
                "trainer.max_epochs=2",
                "+trainer.check_val_every_n_epoch=3",
                "+trainer.max_steps=900",
            ],
            r"trainer.check_val_every_n_epoch=3 with trainer.max_epochs=2: no validation",
        ),
        (  # digits: 1079 training samples, 64 a batch: 17 batches, the first validation in step 17
            ["+trainer.max_steps=5"],
            r"trainer.max_steps=5 ends training before the first validation \(in step 17: 17 "
            r"training batches per epoch.*Allowed: trainer.max_steps >= 17",
        ),
        (  # digits: 17 training batches a epoch, 34 in 2 epochs; Lightning finds out at the end
            [
                "trainer.max_epochs=2",
                "+trainer.check_val_every_n_epoch=null",
                "+trainer.val_check_interval=40",
            ],
            r"trainer.val_check_interval=40 with trainer.check_val_every_n_epoch=null: .* training "
            r"has 34 \(17 per epoch, trainer.max_epochs=2\).*Allowed: trainer.val_check_interval <= 34",
        ),
        (  # Lightning would find out only after training, when it starts testing
            ["trainer.limit_test_batches=0.1"],
            r"trainer.limit_test_batches=0.1 of the 6 test batch\(es\) is no batch. Allowed: a "
            r"fraction of at least 0.167, or a number of batches \(e.g. trainer.limit_test_batches=1\)",
        ),
    ],
)
def test_a_run_that_never_validates_fails_before_training(
    tmp_path: Path, monkeypatch, trainer: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=message):
        train(_app_config(trainer))
    assert not (tmp_path / "checkpoints").exists()
    check_validation_runs(
        {"limit_val_batches": 0.5, "max_epochs": 3, "check_val_every_n_epoch": 3}, ["val_error"]
    )


class _CountsValidations(pl.Callback):
    def __init__(self) -> None:
        self.validations = 0

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.validations += not trainer.sanity_checking


class _Regression(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1])

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


@pytest.mark.parametrize(
    "limits",
    [
        {"max_steps": 4},  # 5 batches an epoch: the first validation is in step 5
        {"max_steps": 5},
        {"max_steps": 2, "accumulate_grad_batches": 2},  # steps 1, 2 and 3 (the epoch's last batch)
        {"max_steps": 3, "accumulate_grad_batches": 2},
        {"max_steps": 5, "check_val_every_n_epoch": 2},
        {"max_steps": 6, "check_val_every_n_epoch": 2},
        {"max_steps": 9, "check_val_every_n_epoch": 2},
        {"max_steps": 1, "val_check_interval": 0.4},  # validates after batch 2, in step 2
        {"max_steps": 2, "val_check_interval": 0.4},
        {"max_steps": 1, "val_check_interval": 3, "accumulate_grad_batches": 2},
        {"max_steps": 2, "val_check_interval": 3, "accumulate_grad_batches": 2},
    ],
)
def test_max_steps_is_refused_exactly_when_lightning_would_never_validate(
    tmp_path: Path, limits: dict[str, Any]
) -> None:
    """The check's step count against a real fit of 5 training batches an epoch."""
    training = DataLoader([(torch.randn(2), torch.randn(1)) for _ in range(10)], batch_size=2)
    validation = DataLoader([(torch.randn(2), torch.randn(1)) for _ in range(2)], batch_size=2)
    counter = _CountsValidations()
    trainer = pl.Trainer(
        max_epochs=10, callbacks=[counter], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
        num_sanity_val_steps=0, **limits,
    )  # fmt: skip
    trainer.fit(_Regression(), training, validation)
    try:
        check_validation_before_max_steps({"max_epochs": 10, **limits}, 5, ["val_loss"])
        refused = False
    except ValueError:
        refused = True
    assert refused == (counter.validations == 0)


# --- 2. the .npz loader checks its arrays as the CSV loader does -------------------------------


def test_npz_labels_of_shape_n_by_1_are_squeezed_and_a_1d_x_is_one_feature(tmp_path: Path) -> None:
    arrays = load_arrays(_files(_npz(tmp_path, X, Y[:, None])))
    assert arrays.labels.shape == (20,) and arrays.labels.tolist() == Y.tolist()
    assert load_arrays(_files(_npz(tmp_path, X[:, 0], Y))).features.shape == (20, 1)
    booleans = load_arrays(_files(_npz(tmp_path, X > 0, Y))).features  # bool x: 0 and 1
    assert booleans.dtype == np.float32 and set(np.unique(booleans)) == {0.0, 1.0}


def test_images_stored_channels_last_get_a_warning(tmp_path: Path, caplog) -> None:
    images = np.zeros((20, 8, 8, 3))  # (samples, height, width, channels), as PIL/Keras store them
    load_arrays(_files(_npz(tmp_path, images, Y)))
    assert "looks like images stored channels last" in caplog.text
    caplog.clear()
    load_arrays(_files(_npz(tmp_path, images.transpose(0, 3, 1, 2), Y)))
    assert "channels last" not in caplog.text


def test_an_npz_of_pickled_objects_is_refused_naming_the_file(tmp_path: Path) -> None:
    names = np.array(["cat", "dog"] * 10, dtype=object)  # a pandas column, saved as is
    path = _npz(tmp_path, X, names)
    with pytest.raises(ValueError, match=r"dataset.path=.*y=column.to_numpy\(dtype=str\)"):
        load_arrays(_files(path))


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (X[:15], Y, r"x has shape \(15, 3\) but y has 20 labels. Allowed: one row of x per label"),
        (
            np.where(np.arange(60).reshape(20, 3) == 4, np.nan, X),
            Y,
            r"1 non-finite value.*x\[1, 1\]",
        ),
        (X, np.eye(3)[Y], r"y has shape \(20, 3\). Allowed: .*for one-hot labels save y.argmax"),
        (X, Y + 0.5, r"labels hold non-integer numbers \(e.g. 0.5\).*no regression"),
        (X[:0], Y[:0], r"no samples"),
    ],
)
def test_bad_npz_arrays_are_refused_naming_the_file(tmp_path: Path, x, y, message: str) -> None:
    path = _npz(tmp_path, x, y)
    with pytest.raises(ValueError, match=message) as error:
        load_arrays(_files(path))
    assert f"dataset.path='{path}'" in str(error.value)


def test_a_wrong_image_shape_and_a_header_only_csv_are_named(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"dataset.image_shape=\[1, 2, 2\] holds 4 values, .* \[3\] \(3 values\)"
    ):
        load_arrays(_files(_npz(tmp_path, X, Y), image_shape=[1, 2, 2]))
    assert load_arrays(_files(tmp_path / "data.npz", image_shape=[1, 3, 1])).features.shape == (
        20,
        1,
        3,
        1,
    )
    (tmp_path / "empty.csv").write_text("a,b,label\n")
    with pytest.raises(ValueError, match=r"empty.csv'\: a header and no data rows"):
        load_arrays(_files(tmp_path / "empty.csv"))
    (tmp_path / "float.csv").write_text("a,label\n1,0.5\n2,1.5\n")
    with pytest.raises(ValueError, match=r"float.csv'.*non-integer numbers"):
        load_arrays(_files(tmp_path / "float.csv"))


def test_a_pandas_index_column_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "pandas.csv"
    path.write_text(",a,label\n0,1.5,x\n1,2.5,y\n")  # DataFrame.to_csv() writes the index first
    features, labels = read_csv(path, "label")
    assert features.tolist() == [[1.5], [2.5]] and labels.tolist() == ["x", "y"]


# --- 6. standardisation ----------------------------------------------------------------------


def test_features_of_small_scale_are_standardised_and_constant_ones_centred(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = np.column_stack([rng.normal(size=200), rng.normal(size=200) * 5e-4, np.full(200, 0.1)])
    data = ClassificationData(
        _files(_npz(tmp_path, x, np.arange(200) % 2)),
        OmegaConf.create({"batch_size": 4, "num_workers": 0}),
    )
    data.setup()
    std = data.splits["train"].tensors[0].numpy().std(axis=0)
    assert std[:2] == pytest.approx([1.0, 1.0], abs=1e-4)
    assert not data.splits["train"].tensors[0][:, 2].any()  # the constant feature is all 0


# --- 3./4. learning-rate schedules -------------------------------------------------------------


def _optimizer(kind: str = "sgd") -> torch.optim.Optimizer:
    params = [torch.nn.Parameter(torch.zeros(1))]
    if kind == "sgd":  # as conf/optimizer/sgd.yaml
        return torch.optim.SGD(params, lr=0.05, momentum=0.9)
    return torch.optim.Adagrad(params, lr=0.01)


def _one_cycle(**keys: Any) -> Any:
    base = {"name": "1cycle", "max_lr": 0.01, "pct_start": 0.3, "anneal_strategy": "cos"}
    return OmegaConf.create({**base, "div_factor": 25.0, "final_div_factor": 1e4, **keys})


def test_every_1cycle_key_reaches_onecyclelr() -> None:
    optimizer = _optimizer()
    schedule, interval = build_scheduler(
        optimizer, _one_cycle(cycle_momentum=False, three_phase=True), (100, 10)
    )
    assert (
        interval == "step" and schedule.total_steps == 100 and len(schedule._schedule_phases) == 3
    )
    assert optimizer.param_groups[0]["momentum"] == 0.9  # kept, not cycled from 0.95
    optimizer = _optimizer()
    build_scheduler(optimizer, _one_cycle(base_momentum=0.5), (100, 10))  # SGD: cycled
    assert optimizer.param_groups[0]["base_momentum"] == 0.5
    with pytest.raises(
        ValueError, match=r"scheduler.max_momemtum=0.9: not a key of scheduler=1cycle. Allowed: \["
    ):
        build_scheduler(_optimizer(), _one_cycle(max_momemtum=0.9), (100, 10))
    with pytest.raises(
        ValueError, match=r"scheduler.total_steps=5: .* sets it from trainer.max_epochs"
    ):
        build_scheduler(_optimizer(), _one_cycle(total_steps=5), (100, 10))


def test_1cycle_cycles_momentum_only_where_the_optimizer_has_it() -> None:
    optimizer = _optimizer("adagrad")
    build_scheduler(optimizer, _one_cycle(), (100, 10))  # default: no momentum to cycle, so off
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01 / 25)
    # RMSprop's momentum is 0 unless given: cycling would switch it on unasked.
    rmsprop = torch.optim.RMSprop([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    build_scheduler(rmsprop, _one_cycle(), (100, 10))
    assert rmsprop.param_groups[0]["momentum"] == 0
    with pytest.raises(
        ValueError, match=r"scheduler.cycle_momentum=true, but optimizer Adagrad has no momentum"
    ):
        build_scheduler(_optimizer("adagrad"), _one_cycle(cycle_momentum=True), (100, 10))


def _trainer(max_epochs: int, max_steps: int, estimated: float) -> Any:
    return SimpleNamespace(
        max_epochs=max_epochs, max_steps=max_steps, estimated_stepping_batches=estimated
    )


def test_a_schedule_without_a_known_end_names_the_trainer_keys() -> None:
    with pytest.raises(
        ValueError, match=r"trainer.max_epochs=-1 and trainer.max_steps=-1 leave the length"
    ):
        training_steps(_trainer(-1, -1, math.inf))


def test_cosine_over_max_steps_anneals_per_step() -> None:
    optimizer = _optimizer()
    cosine = OmegaConf.create({"name": "cosine", "eta_min": 0.0})
    schedule, interval = build_scheduler(optimizer, cosine, training_steps(_trainer(-1, 500, 500)))
    assert interval == "step" and schedule.T_max == 500
    rates = []
    for _ in range(500):
        optimizer.step()
        schedule.step()
        rates.append(optimizer.param_groups[0]["lr"])
    assert all(a >= b for a, b in zip(rates, rates[1:], strict=False)) and rates[
        -1
    ] == pytest.approx(0.0)
    assert (
        build_scheduler(_optimizer(), cosine, training_steps(_trainer(10, -1, 80)))[0].T_max == 10
    )


def test_1cycle_with_only_max_time_fails_before_training(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = _app_config(["trainer.max_epochs=-1", "+trainer.max_time=00:00:00:05", *TINY])
    with pytest.raises(ValueError, match=r"trainer.max_epochs=-1 and trainer.max_steps=-1"):
        train(cfg)


# --- 5./7. trainer keys, monitor, devices ------------------------------------------------------


def test_trainer_logger_root_dir_and_callbacks_are_merged(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    mine = "{_target_:pytorch_lightning.callbacks.ModelCheckpoint,dirpath:mine,save_last:true}"
    cfg = _app_config(
        ["monitor=[val_error]", "trainer.max_epochs=1", *TINY[:2], "dataset.test_fraction=0",
         "+trainer.logger=false",
         "+trainer.default_root_dir=elsewhere", f"+trainer.callbacks=[{mine}]"]
    )  # fmt: skip
    value = train(cfg)
    assert isinstance(value, float)  # like hannah: one metric, even in a list, returns a number
    # default_root_dir is relative to the run's folder (hannah's "." is that folder).
    assert list((tmp_path / "elsewhere" / "checkpoints").glob("*.ckpt"))
    assert (tmp_path / "mine" / "last.ckpt").is_file()  # the user's callback ran too
    assert not list(tmp_path.glob("**/tensorboard"))  # logger=false: no logs


def test_extra_loggers_join_the_apps_and_bad_values_name_the_key(
    tmp_path: Path, monkeypatch
) -> None:
    csv_logger = {"_target_": "pytorch_lightning.loggers.CSVLogger", "save_dir": str(tmp_path)}
    root, loggers, callbacks = trainer_extras(
        {"logger": [csv_logger], "default_root_dir": "/abs"}, tmp_path
    )
    assert root == Path("/abs") and type(loggers[0]).__name__ == "CSVLogger" and callbacks == []
    # A relative save_dir is the run's folder's, as for the app's own logger.
    relative = {**csv_logger, "save_dir": "csvlogs"}
    _, loggers, _ = trainer_extras({"logger": relative, "default_root_dir": "."}, tmp_path)
    assert Path(loggers[0].save_dir) == tmp_path / "csvlogs"
    remote = {**csv_logger, "save_dir": "memory://bucket/logs"}  # a URL (as s3://) stays one
    assert trainer_extras({"logger": remote}, tmp_path)[1][0].save_dir == "memory://bucket/logs"
    # So is a callback's: parallel trials must not share (and prune) each other's checkpoints.
    checkpoint = {"_target_": "pytorch_lightning.callbacks.ModelCheckpoint", "dirpath": "mine"}
    _, _, callbacks = trainer_extras({"callbacks": [checkpoint]}, tmp_path / "run")
    assert Path(callbacks[0].dirpath) == (tmp_path / "run" / "mine").resolve()
    # In a sweep trial an absolute folder would gather every trial's logs and checkpoints.
    monkeypatch.setattr("hannah_ray.in_trial", lambda: True)
    with pytest.raises(ValueError, match=r"trainer.default_root_dir='/abs': every job"):
        trainer_extras({"default_root_dir": "/abs"}, tmp_path)
    # ${hydra:runtime.output_dir}/lightning: absolute, but inside the job's folder.
    root, _, _ = trainer_extras({"default_root_dir": str(tmp_path / "lightning")}, tmp_path)
    assert root == tmp_path / "lightning"
    # A checkpoint folder outside the job's: parallel trials would overwrite and prune each other's.
    for shared, seen in [("/scratch/ckpt",) * 2, ("memory://bucket/ckpt",) * 2,
                         ("../ckpt", str(tmp_path / "../ckpt"))]:  # fmt: skip
        with pytest.raises(
            ValueError,
            match=re.escape(f"trainer.callbacks: pytorch_lightning.callbacks.ModelCheckpoint's "
                            f"dirpath={seen!r}: outside the job's folder"),
        ):  # fmt: skip
            trainer_extras({"callbacks": [{**checkpoint, "dirpath": shared}]}, tmp_path)
    inside = {**checkpoint, "dirpath": str(tmp_path / "ckpt")}
    assert trainer_extras({"callbacks": [inside]}, tmp_path)[2][0].dirpath == str(tmp_path / "ckpt")
    # A logger's absolute folder is allowed: loggers add a version folder per run.
    assert trainer_extras({"logger": csv_logger}, tmp_path)[1][0].save_dir == str(tmp_path)
    with pytest.raises(ValueError, match=r"trainer.logger='csv': allowed: a config with _target_"):
        trainer_extras({"logger": "csv"}, tmp_path)
    with pytest.raises(
        ValueError,
        match=r"trainer.callbacks: _target_=.*CSVLogger made a CSVLogger, not a pytorch_lightning Callback",
    ):
        trainer_extras({"callbacks": {"log": csv_logger}}, tmp_path)


@pytest.mark.parametrize("monitor", [None, 5, []])
def test_a_monitor_that_is_no_name_is_refused(monitor: Any) -> None:
    with pytest.raises(
        ValueError, match=re.escape(f"monitor={monitor!r}: allowed: one of ['val_error'")
    ):
        monitored(OmegaConf.create({"monitor": monitor}))


@pytest.mark.parametrize(
    ("devices", "fits"),
    [
        (1, True),
        ([0], True),
        ("0,", True),
        (-1, True),
        ("auto", True),
        ([1], False),
        ("2", False),
        ("0,1", False),
        (2, False),
    ],
)
def test_trainer_devices_in_any_form_must_fit_the_trials_gpus(
    monkeypatch, devices: Any, fits: bool
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")  # the trial's one GPU, seen as GPU 0
    if fits:
        check_devices_fit_the_trial({"accelerator": "auto", "devices": devices})
        return
    with pytest.raises(
        ValueError,
        match=re.escape(f"trainer.devices={devices!r}, but this trial holds 1 GPU(s)"),
    ) as refused:
        check_devices_fit_the_trial({"accelerator": "auto", "devices": devices})
    assert "trainer.devices=1, or one index in [0] as a list" in str(refused.value)


@pytest.mark.parametrize("count", [1, 3, 6, 7, 9, 11, 12, 13, 14, 17, 19, 21, 359, 1797])
def test_the_smallest_fraction_an_error_suggests_leaves_one_item(count: int) -> None:
    """What the batch-limit and split errors offer as "at least" must itself be allowed, and the
    next smaller value with as many digits must not be."""
    fraction = smallest_fraction(count)
    assert int(count * fraction) == 1
    digits = len(f"{fraction:f}".rstrip("0").split(".")[1])
    assert int(count * (fraction - 10**-digits)) == 0


@pytest.mark.parametrize(
    ("visible", "trainer", "processes"),
    [
        ("3", {"devices": 1}, None),
        ("3,4", {"devices": 1}, None),
        ("", {"accelerator": "auto", "devices": "auto"}, None),
        ("3,4", {"devices": "auto"}, 2),  # gpu: 2 and Lightning's default: DDP over both
        ("3,4", {"devices": [0, 1]}, 2),
        ("", {"accelerator": "cpu", "devices": 2}, 2),  # DDP on the CPU
        ("", {"devices": 1, "num_nodes": 2}, 2),
        ("", {"devices": 1, "strategy": "ddp_spawn"}, 1),
    ],
)
def test_a_trial_trains_in_its_own_process_only(
    monkeypatch, visible: str, trainer: dict[str, Any], processes: int | None
) -> None:
    """DDP would relaunch the Ray worker's script and wait for ranks that never start."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    _one_process(check_devices_fit_the_trial, trainer, processes, "a trial is one Ray worker")


@pytest.mark.parametrize(
    ("trainer", "processes"),
    [
        ({"accelerator": "cpu", "devices": 1}, None),
        ({"accelerator": "auto", "devices": "auto"}, None),  # no GPU here: one CPU process
        ({"accelerator": "cpu", "devices": 2}, 2),  # DDP on the CPU
        ({"devices": 1, "num_nodes": 2}, 2),
        ({"devices": 1, "strategy": "ddp_spawn"}, 1),
    ],
)
def test_the_app_trains_in_one_process_outside_a_trial_too(
    trainer: dict[str, Any], processes: int | None
) -> None:
    """Its val_error, hp_metric and best epoch are not gathered across DDP processes."""
    _one_process(check_one_process, trainer, processes, "the app measures val_error")


def _one_process(check: Any, trainer: dict[str, Any], processes: int | None, why: str) -> None:
    """``check`` passes ``trainer`` (``processes`` None) or refuses it, naming the count."""
    if processes is None:
        check(trainer)
        return
    with pytest.raises(
        ValueError,
        match=rf"Lightning would train in {processes} process\(es\) or spawn one, but {why}.*"
        r"Allowed: one device in one process",
    ):
        check(trainer)


@pytest.mark.parametrize(
    ("overrides", "warns"),
    [
        (["optimizer=sgd", "optimizer.momentum=0"], "optimizer.momentum is set"),
        (["+optimizer.betas=[0.5,0.999]"], "optimizer.betas is set"),
        (["optimizer=sgd", "optimizer.momentum=0", "+scheduler.cycle_momentum=false"], None),
    ],
)
def test_a_momentum_override_that_1cycle_replaces_warns(
    caplog, overrides: list[str], warns: str | None
) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    try:
        warn_of_overrides_1cycle_ignores(cfg)
    finally:
        HydraConfig.instance().cfg = None
    messages = [r.getMessage() for r in caplog.records if "cycles the momentum" in r.getMessage()]
    assert [m[: len(warns)] for m in messages] == ([warns] if warns else [])
    assert all("+scheduler.cycle_momentum=false" in m for m in messages)


@pytest.mark.parametrize(
    ("trainer", "warning"),
    [
        (
            {"max_epochs": 4, "check_val_every_n_epoch": 3},
            "the last 1 epoch(s) are never validated",
        ),
        ({"max_epochs": 6, "check_val_every_n_epoch": 3}, None),
        # digits: 17 training batches; Lightning validates after batches 5, 10 and 15 of each
        ({"max_epochs": 2, "val_check_interval": 0.3}, "validates every 5: the last 2 batch(es)"),
        ({"max_epochs": 2, "val_check_interval": 0.5}, "validates every 8: the last 1 batch(es)"),
        ({"max_epochs": 2, "val_check_interval": 1.0}, None),
    ],
)
def test_training_after_the_last_validation_gets_a_warning(
    caplog, trainer: dict, warning: str | None
) -> None:
    with caplog.at_level(logging.WARNING, logger="hannah_ray.train"):
        warn_of_unvalidated_training(trainer, 17)
    assert (warning in caplog.text) if warning else caplog.text == ""


@pytest.mark.parametrize(
    ("monitor", "direction", "message"),
    [
        (["val_accuracy"], "minimize", "Set hydra.sweeper.direction=maximize."),
        (
            ["val_error", "val_accuracy"],
            "[minimize,minimize]",
            "Set hydra.sweeper.direction=[minimize,maximize].",
        ),
        (["val_error"], "minimize", None),
    ],
)
def test_a_sweep_direction_that_seeks_the_worst_model_is_refused(
    monitor: list[str], direction: str, message: str | None
) -> None:
    """The fix the message offers is one the command line takes as written."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    overrides = ["hydra/sweeper=ray_optuna", f"hydra.sweeper.direction={direction}"]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides, return_hydra_config=True)
    cfg.hydra.mode = RunMode.MULTIRUN
    HydraConfig.instance().set_config(cfg)
    try:
        if message is None:
            check_sweep_direction(monitor)
        else:
            with pytest.raises(ValueError, match=re.escape(message)):
                check_sweep_direction(monitor)
    finally:
        HydraConfig.instance().cfg = None
