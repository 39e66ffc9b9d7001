"""Through the real command line: plugin discovery (normal and editable installs), lazy imports,
and a seeded sphere sweep whose results agree with the stored study."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import optuna
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SPHERE = REPO / "examples" / "sphere" / "sphere.py"


def _run(args: list[str], cwd: Path, python: str = sys.executable, **env: str) -> str:
    environment = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    environment.pop("PYTHONPATH", None)
    environment.update(env)
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
        "from hydra.plugins.launcher import Launcher\n"
        "names = [p.__name__ for p in Plugins.instance().discover(Sweeper)]\n"
        "assert 'RayOptunaSweeper' in names, names\n"
        "# hydra-ray-launcher (a dev dependency) shares the hydra_plugins namespace package\n"
        "launchers = [p.__name__ for p in Plugins.instance().discover(Launcher)]\n"
        "assert 'RayLauncher' in launchers, launchers\n"
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


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_stops_the_sweep_keeps_finished_trials_and_exits_non_zero(
    tmp_path: Path, ray_address: str, signal_name: str
) -> None:
    """Ctrl-C, or SIGTERM as a cluster's job scheduler sends it."""
    import signal
    import time

    environment = {**os.environ, "RAY_AUTH_MODE": "token"}
    environment.pop("PYTHONPATH", None)
    command = [
        sys.executable, str(REPO / "tests" / "apps" / "slow_app.py"), "-m",
        "+x=interval(0, 1)", "+seconds=60", "hydra/sweeper=ray_optuna", "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=0", "hydra.sweeper.n_trials=50", "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.storage=sqlite:///study.db", "hydra.sweeper.study_name=slow",
        f"hydra.sweeper.ray.address={ray_address}", "hydra.sweep.dir=sweep",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=tmp_path, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    output = []
    deadline = time.time() + 120
    assert process.stdout is not None
    for line in process.stdout:  # wait until trials are running: a quick one has finished
        output.append(line)
        if "Trial 1 COMPLETE" in line or "Trial 0 COMPLETE" in line or time.time() > deadline:
            break
    time.sleep(2)
    process.send_signal(getattr(signal, signal_name))
    rest, _ = process.communicate(timeout=120)
    text = "".join(output) + rest
    assert process.returncode != 0, text
    assert "rerun the same command to continue" in text
    # One message, no traceback; not Tune's own resume hint (Tuner.restore), which does not apply.
    assert "Traceback" not in text and "Tuner.restore" not in text, text
    study = optuna.load_study(study_name="slow", storage=f"sqlite:///{tmp_path}/study.db")
    states = [t.state.name for t in study.trials]
    assert "COMPLETE" in states and len(study.trials) < 50
    stopped = [t for t in study.trials if t.state.name == "FAIL"]
    assert stopped and all(
        "Stopped before the task finished" in t.user_attrs["fail_reason"] for t in stopped
    )
    assert "RUNNING" not in states
    assert (tmp_path / "sweep" / "optimization_results.yaml").is_file()


def test_bad_input_prints_one_clear_line_and_no_traceback(tmp_path: Path) -> None:
    environment = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYDRA_FULL_ERROR")
    }
    done = subprocess.run(
        [sys.executable, str(SPHERE), "-m", "x=interval(5, 1)", "y=0"],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert (
        "Invalid search space for key 'x': 'x=interval(5, 1)': low must be <= high" in done.stderr
    )
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.glob("multirun/*/*/0"))


def test_a_sweep_that_starts_ray_stops_it_and_exits_without_a_final_collection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also: the Ray instance starts no worker that no trial uses (Ray would prestart idle ones
    for the first driver, which Tune's trial actors never take)."""
    # The sweep runs in a script, so that the script can look at Ray and the heap afterwards.
    script = tmp_path / "sweep_then_check.py"
    script.write_text(
        "import atexit, gc, os, sys\n"
        # Registered first, so it runs last at exit, after the sweep's own exit hook.
        "atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count() > 0))\n"
        "import runpy, ray\n"
        f"runpy.run_path({str(SPHERE)!r}, run_name='__main__')\n"
        "print('Ray initialised after the sweep:', ray.is_initialized())\n"
        "print('frozen before exit:', gc.get_freeze_count() > 0)\n"
        "print('prestart setting left:', 'RAY_prestart_worker_first_driver' in os.environ)\n"
    )
    monkeypatch.delenv("RAY_prestart_worker_first_driver", raising=False)
    # Ray's session folder holds unix sockets, whose paths must stay short.
    ray_dir = Path(tempfile.mkdtemp(prefix="hr-", dir="/tmp"))
    try:
        _sweep_in_a_script_that_checks_after(script, tmp_path, ray_dir)
        raylet_log = ray_dir / "session_latest" / "logs" / "raylet.out"
        # One trial worker, reused by the second trial; nothing else.
        assert raylet_log.read_text().count("Started worker process") == 1
        # Every process of that Ray instance has ended (the sweep ends the autoscaler monitor
        # itself, before ray.shutdown ends the rest).
        assert _processes_naming(ray_dir) == []
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)


def _processes_naming(folder: Path) -> list[str]:
    """The command lines of the live processes that name ``folder`` (Ray's session folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if str(folder) in command and state != "Z":
            found.append(command)
    return found


def _sweep_in_a_script_that_checks_after(script: Path, tmp_path: Path, ray_dir: Path) -> None:
    out = _run(
        [
            str(script),
            "-m",
            "x=interval(-1, 1)",
            "y=0",
            "hydra/sweeper=ray_optuna",
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.ray.address=local",
            "hydra.sweeper.ray.num_cpus=1",
            "hydra.sweeper.ray.include_dashboard=false",
            f"+hydra.sweeper.ray._temp_dir={ray_dir}",
            "hydra.sweep.dir=sweep",
        ],  # fmt: skip
        cwd=tmp_path,
    )
    assert "Best: trial" in out
    assert "Ray initialised after the sweep: False" in out
    assert "frozen before exit: False" in out
    assert "frozen at exit: True" in out
    assert "prestart setting left: False" in out


def test_ray_init_arguments_ray_refuses_name_the_key(tmp_path: Path, ray_address: str) -> None:
    environment = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYDRA_FULL_ERROR")
    }
    done = subprocess.run(
        [
            sys.executable, str(SPHERE), "-m", "x=interval(-1, 1)", "y=0",
            "hydra/sweeper=ray_optuna", "hydra.sweeper.n_trials=2",
            f"hydra.sweeper.ray.address={ray_address}", "hydra.sweeper.ray.num_cpus=1",
        ],
        cwd=tmp_path, env={**environment, "RAY_AUTH_MODE": "token"}, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert "hydra.sweeper.ray: ray.init with ['address', " in done.stderr
    assert "'num_cpus'] failed: When connecting to an existing cluster, num_cpus" in done.stderr
    assert "hydra.sweeper.ray.address=local" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("import_turns", [True, False])
def test_trial_workers_import_in_turns_before_their_first_trial(
    tmp_path: Path, import_turns: bool
) -> None:
    """A sweep that starts Ray has its trial workers import Ray Tune and the trial runner in the
    node's import turns, unless told not to."""
    (tmp_path / "config.yaml").write_text("x: 0\n")
    (tmp_path / "turn_probe.py").write_text(
        "import hydra\n"
        "from hydra.core.hydra_config import HydraConfig\n"
        "from hannah_ray import worker_start\n"
        "@hydra.main(version_base='1.3', config_path='.', config_name='config')\n"
        "def task(cfg):\n"
        "    folder = HydraConfig.get().runtime.output_dir\n"
        "    with open(f'{folder}/turn.txt', 'w') as out:\n"
        "        out.write(f'{worker_start.took_turn} {worker_start.imported_in_turn}')\n"
        "    return float(cfg.x) ** 2\n"
        "task()\n"
    )
    ray_dir = Path(tempfile.mkdtemp(prefix="hr-", dir="/tmp"))
    try:
        _run(
            [
                "turn_probe.py",
                "-m",
                "x=interval(-1, 1)",
                "hydra/sweeper=ray_optuna",
                "hydra.sweeper.n_trials=1",
                "hydra.sweeper.ray.address=local",
                "hydra.sweeper.ray.num_cpus=1",
                "hydra.sweeper.ray.include_dashboard=false",
                f"+hydra.sweeper.ray._temp_dir={ray_dir}",
                "hydra.sweep.dir=sweep",
                f"hydra.sweeper.import_turns={str(import_turns).lower()}",
            ],  # fmt: skip
            cwd=tmp_path,
            TMPDIR=str(tmp_path),  # the turns' folder (Ray's own is _temp_dir)
        )
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)
    expected = "True ['ray.tune.trainable.function_trainable', 'hannah_ray.trial_runner']"
    assert (tmp_path / "sweep" / "0" / "turn.txt").read_text() == (
        expected if import_turns else "False []"
    )
