"""Through the real command line: plugin discovery (normal and editable installs), lazy imports,
and a seeded sphere sweep whose results agree with the stored study."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import optuna
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SPHERE = REPO / "examples" / "sphere" / "sphere.py"


def _run(args: list[str], cwd: Path, python: str = sys.executable, **env: str) -> str:
    environment = {**os.environ, "HYDRA_FULL_ERROR": "1", **env}
    environment.pop("PYTHONPATH", None)
    done = subprocess.run(
        [python, *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_plugin_discovery_imports_no_heavy_module(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from hydra.core.plugins import Plugins\n"
        "from hydra.plugins.sweeper import Sweeper\n"
        "names = [p.__name__ for p in Plugins.instance().discover(Sweeper)]\n"
        "assert 'RayOptunaSweeper' in names, names\n"
        "heavy = [m for m in ('ray', 'optuna', 'torch', 'hannah_ray.sweep') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print('ok')\n"
    )
    assert "ok" in _run(["-c", code], cwd=tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("editable", [False, True], ids=["wheel", "editable"])
def test_hydra_finds_the_sweeper_after_install(tmp_path: Path, editable: bool) -> None:
    """A fresh venv that borrows the dependencies, with hannah-ray installed into it alone."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    python = str(venv / "bin" / "python")
    install = [
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--no-deps",
        "--no-build-isolation",
        "-q",
    ]
    _run([*install, *(["-e"] if editable else []), str(REPO)], cwd=tmp_path)
    where = _run(
        ["-c", "import hannah_ray; print(hannah_ray.__file__)"], cwd=tmp_path, python=python
    )
    assert (str(REPO) in where) == editable
    out = _run([str(SPHERE), "--info", "plugins"], cwd=tmp_path, python=python)
    assert "RayOptunaSweeper" in out
    config = _run(
        [str(SPHERE), "--cfg", "hydra", "-p", "hydra.sweeper"], cwd=tmp_path, python=python
    )
    assert "n_trials: 40" in config and "TPESampler" in config


def test_sphere_sweep_from_the_command_line(tmp_path: Path, ray_address: str) -> None:
    out = _run(
        [
            str(SPHERE),
            "-m",
            "x=interval(-5.5, 5.5)",
            "y=choice(-5, 0, 5)",
            "hydra.sweeper.n_trials=40",
            "hydra.sweeper.storage=sqlite:///sphere.db",
            "hydra.sweeper.study_name=sphere",
            f"hydra.sweeper.ray.address={ray_address}",
            "hydra.sweep.dir=sweep",
        ],
        cwd=tmp_path,
        RAY_AUTH_MODE="token",
    )
    assert "Trial 39" in out or "Trial 38" in out
    study = optuna.load_study(study_name="sphere", storage=f"sqlite:///{tmp_path}/sphere.db")
    results = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert len(study.trials) == 40
    assert results["best_value"] == pytest.approx(study.best_value)
    assert results["best_params"] == study.best_params
    assert study.best_value < 0.5
    assert results["best_params"]["y"] == 0
