"""What ray_optuna makes of hydra/launcher: hydra-ray-launcher's settings are taken where the
sweeper's own keep their defaults; other launchers are not used, and say so."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from apps.sweep_settings import sweep_settings
from omegaconf import OmegaConf

from hannah_ray.errors import SweepConfigError
from hannah_ray.launchers import RAY_AWS_LAUNCHER, RAY_LAUNCHER, apply_launcher


def _ray_launcher(init: dict, remote: dict) -> object:
    """hydra/launcher=ray as Hydra composes it (hydra-ray-launcher's RayLauncherConf)."""
    return OmegaConf.create({"_target_": RAY_LAUNCHER, "ray": {"init": init, "remote": remote}})


def test_the_ray_launchers_init_and_remote_fill_what_the_sweeper_leaves_at_its_defaults(
    caplog,
) -> None:
    settings = sweep_settings()
    launcher = _ray_launcher(
        {"address": "auto", "num_cpus": None, "_system_config": {"a": 1}},
        {"num_cpus": 2, "num_gpus": 0.5, "max_calls": 1},
    )
    with caplog.at_level(logging.INFO, logger="hannah_ray.sweep"):
        apply_launcher(settings, launcher)
    assert settings.ray_init == {
        "log_to_driver": False,
        "address": "auto",
        "_system_config": {"a": 1},
    }
    assert type(settings.ray_init["_system_config"]) is dict  # ray.init takes no DictConfig
    assert (settings.cpu_per_trial, settings.gpu_per_trial) == (2.0, 0.5)
    assert "hydra.launcher.ray.remote options ['max_calls'] are not used" in caplog.text


def test_the_sweepers_own_settings_win_over_the_ray_launchers() -> None:
    settings = sweep_settings(**{"ray.address": "ray://head:10001", "resources_per_trial.gpu": 1})
    apply_launcher(settings, _ray_launcher({"address": "auto"}, {"num_gpus": 0.25}))
    assert settings.ray_init["address"] == "ray://head:10001"
    assert settings.gpu_per_trial == 1.0


@pytest.mark.parametrize(
    ("init", "remote", "message"),
    [
        (
            {"adress": "auto"},
            {},
            r"hydra.launcher.ray.init: ray.init has no argument\(s\) \['adress'\]",
        ),
        ({}, {"num_gpus": 1.5}, r"hydra.launcher.ray.remote.num_gpus=1.5: allowed: a fraction"),
        (
            {},
            {"num_cpus": 0},
            r"hydra.launcher.ray.remote.num_cpus/num_gpus give a trial cpu=0 and gpu=0: allowed",
        ),
    ],
)
def test_bad_ray_launcher_settings_name_the_key(init: dict, remote: dict, message: str) -> None:
    with pytest.raises(SweepConfigError, match=message):
        apply_launcher(sweep_settings(), _ray_launcher(init, remote))


def test_the_aws_launcher_is_refused_before_any_trial() -> None:
    launcher = OmegaConf.create({"_target_": RAY_AWS_LAUNCHER, "ray": {"cluster": {}}})
    with pytest.raises(SweepConfigError, match=r"hydra/launcher=ray_aws: .* `ray up"):
        apply_launcher(sweep_settings(), launcher)


def test_another_launcher_is_not_used_and_says_so(caplog) -> None:
    joblib = {"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"}
    settings = sweep_settings()
    apply_launcher(settings, OmegaConf.create({**joblib, "n_jobs": 4}))
    assert "JoblibLauncher is not used" in caplog.text
    assert "hydra.launcher.n_jobs=4 -> hydra.sweeper.n_jobs=4" in caplog.text
    apply_launcher(settings, OmegaConf.create({**joblib, "n_jobs": -1}))  # joblib: every core
    assert "hydra.launcher.n_jobs=-1 -> hydra.sweeper.n_jobs=null" in caplog.text
    assert settings.n_jobs is None  # nothing taken from it
    caplog.clear()
    basic = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
    apply_launcher(settings, OmegaConf.create({"_target_": basic}))
    assert caplog.text == ""


# --- hydra-ray-launcher installed alongside (a dev dependency), through the real command line ---

REPO = Path(__file__).resolve().parents[1]
SPHERE = REPO / "examples" / "sphere" / "sphere.py"
TRAIN = Path(sys.executable).parent / "hannah-ray-train"


def _run(args: list[str], cwd: Path) -> str:
    environment = {**os.environ, "HYDRA_FULL_ERROR": "1", "RAY_AUTH_MODE": "token"}
    environment.pop("PYTHONPATH", None)
    done = subprocess.run(
        args, cwd=cwd, env=environment, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_a_ray_optuna_sweep_with_hydra_ray_launchers_config(
    ray_address: str, tmp_path: Path
) -> None:
    """``hydra/launcher=ray`` as a hydra-ray-launcher user has it: its ray.init joins the running
    Ray, its remote num_cpus is what each trial holds."""
    out = _run(
        [sys.executable, str(SPHERE), "-m", "hydra/launcher=ray",
         f"+hydra.launcher.ray.init.address={ray_address}",
         "+hydra.launcher.ray.remote.num_cpus=0.5", "x=interval(-1, 1)", "y=0",
         "hydra.sweeper.n_trials=4", f"hydra.sweep.dir={tmp_path}/sweep"],
        cwd=tmp_path,
    )  # fmt: skip
    assert f"ray.init takes {{'address': '{ray_address}'}} from hydra.launcher.ray.init" in out
    assert "Each trial holds cpu=0.5, from hydra.launcher.ray.remote.num_cpus" in out
    assert "Started a local Ray instance" not in out  # it joined the session's
    results = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert results["n_trials"]["complete"] == 4


def test_hydra_ray_launcher_runs_the_training_app_beside_the_plugin(tmp_path: Path) -> None:
    """The other way round: hydra-ray-launcher's own jobs (basic sweeper) run the training app,
    whose report callback is a no-op outside a ray_optuna trial, with no progress bars."""
    out = _run(
        [str(TRAIN), "-m", "hydra/launcher=ray", "+hydra.launcher.ray.init.num_cpus=2",
         "+hydra.launcher.ray.init.include_dashboard=false", "scheduler.max_lr=0.01,0.02",
         "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
         "trainer.limit_test_batches=0", "experiment_id=launched"],
        cwd=tmp_path,
    )  # fmt: skip
    assert "it/s" not in out  # no progress bars from the jobs of a sweep
    logs = sorted((tmp_path / "trained_models" / "launched").glob("sweep_*/*/app.log"))
    assert len(logs) == 2
    assert all("Validation: {'val_error'" in log.read_text() for log in logs)
