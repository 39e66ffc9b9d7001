"""Trial workers take turns importing Ray Tune, the runner and the task (``worker_start``)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from hannah_ray import worker_start
from hannah_ray.worker_start import SETUP_HOOK, runtime_env_with_turns


def test_the_hook_joins_the_users_runtime_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    given = {"env_vars": {"A": "1"}, "pip": ["x"]}
    env = runtime_env_with_turns(given, None)
    assert env == {"env_vars": {"A": "1"}, "pip": ["x"], "worker_process_setup_hook": SETUP_HOOK}
    assert given == {"env_vars": {"A": "1"}, "pip": ["x"]}  # not changed in place
    assert runtime_env_with_turns(None, "auto") == {"worker_process_setup_hook": SETUP_HOOK}


@pytest.mark.parametrize(
    ("runtime_env", "address", "environment"),
    [
        # the user's own hook (Ray takes one per job)
        ({"worker_process_setup_hook": "mine.setup"}, None, {}),
        ({"env_vars": {"__RAY_WORKER_PROCESS_SETUP_HOOK_ENV_VAR": "mine.setup"}}, None, {}),
        # a job submitted with its own hook (`ray job submit --runtime-env-json ...`)
        (None, None, {"RAY_JOB_CONFIG_JSON_ENV_VAR": '{"runtime_env": {"worker_process_setup_hook": "m.f"}}'}),
        # Ray Client, which does not pass setup hooks on
        (None, "ray://head:10001", {}),
        (None, None, {"RAY_ADDRESS": "ray://head:10001"}),
    ],
)  # fmt: skip
def test_the_hook_is_left_out_where_ray_would_not_take_it(
    runtime_env: dict | None,
    address: str | None,
    environment: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("RAY_ADDRESS", "RAY_JOB_CONFIG_JSON_ENV_VAR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert runtime_env_with_turns(runtime_env, address) == runtime_env


def test_a_failing_import_does_not_fail_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(worker_start, "MODULES", ("json", "no_such_module_for_hannah_ray", "csv"))
    monkeypatch.setattr(worker_start, "imported_in_turn", [])
    worker_start.import_in_turn()  # Ray would end the worker if this raised
    assert worker_start.imported_in_turn == ["json"]
    assert worker_start.took_turn


def test_turns_are_not_taken_in_a_folder_of_another_user(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "turns").symlink_to(tmp_path / "elsewhere")
    with worker_start._turn(tmp_path / "turns", 1) as took:
        assert not took
    assert not list((tmp_path / "elsewhere").iterdir())


def test_a_worker_waits_while_the_turns_are_taken(tmp_path: Path) -> None:
    with (
        worker_start._turn(tmp_path, 1) as first,
        worker_start._turn(tmp_path, 1, max_wait_s=0.1) as second,
    ):
        assert (first, second) == (True, False)
    with worker_start._turn(tmp_path, 1) as again:
        assert again


def test_workers_on_a_one_core_node_import_one_after_another(tmp_path: Path) -> None:
    """Two processes, each allowed one core, import a module that takes 1 s: the second starts
    its import only after the first has finished."""
    (tmp_path / "slow_import.py").write_text(
        "import os, time\n"
        "start = time.time(); time.sleep(1.0)\n"
        "with open(os.environ['LOG'], 'a') as log:\n"
        "    log.write(f'{start} {time.time()}\\n')\n"
    )
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "from hannah_ray import worker_start\n"
        "worker_start.MODULES = ('slow_import',)\n"
        "worker_start.import_in_turn()\n"
        "assert worker_start.took_turn and worker_start.imported_in_turn == ['slow_import']\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        "TMPDIR": str(tmp_path),
        "LOG": str(tmp_path / "log"),
    }
    workers = [subprocess.Popen([sys.executable, "-c", code], env=env) for _ in range(2)]
    assert [w.wait(timeout=60) for w in workers] == [0, 0]
    (a_start, a_end), (b_start, b_end) = sorted(
        tuple(map(float, line.split())) for line in (tmp_path / "log").read_text().splitlines()
    )
    assert b_start >= a_end


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({}, None),  # no cgroup files: the affinity alone
        ({"cpu.max": "max 100000\n"}, None),  # cgroup v2, no quota
        ({"cpu.max": "150000 100000\n"}, 1),  # 1.5 CPUs: one turn
        ({"cpu.max": "50000 100000\n"}, 1),  # half a CPU: still one turn
        ({"cpu.max": "400000 100000\n"}, 4),  # no more than the affinity either
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),  # v1
        ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1),
    ],
)
def test_a_containers_cpu_quota_caps_the_turns(
    tmp_path: Path, files: dict[str, str], expected: int | None
) -> None:
    """A container sees the host's cores but may use only its CPU quota (docker --cpus, a
    Kubernetes CPU limit): as many turns as the quota allows."""
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    affinity = len(os.sched_getaffinity(0))
    assert worker_start._core_count(tmp_path) == min(affinity, expected or affinity)
