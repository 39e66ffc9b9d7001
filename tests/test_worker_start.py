"""Trial workers take turns importing Ray Tune, the runner and the task (``worker_start``)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from hannah_ray import worker_start
from hannah_ray.worker_start import MODULES_VARIABLE, SETUP_HOOK, runtime_env_with_turns


def test_the_hook_joins_the_users_runtime_env() -> None:
    given = {"env_vars": {"A": "1"}, "pip": ["x"]}
    env = runtime_env_with_turns(given, "my_app.tasks")
    assert env == {
        "pip": ["x"],
        "worker_process_setup_hook": SETUP_HOOK,
        "env_vars": {
            "A": "1",
            MODULES_VARIABLE: "ray.tune.trainable.function_trainable,hannah_ray.trial_runner,"
            "my_app.tasks",
        },
    }
    assert given == {"env_vars": {"A": "1"}, "pip": ["x"]}  # not changed in place


def test_a_scripts_task_is_not_imported_by_name() -> None:
    env = runtime_env_with_turns(None, "__main__")
    assert env is not None
    assert (
        env["env_vars"][MODULES_VARIABLE]
        == "ray.tune.trainable.function_trainable,hannah_ray.trial_runner"
    )


def test_a_users_own_setup_hook_is_left_alone() -> None:
    given = {"worker_process_setup_hook": "mine.setup"}
    assert runtime_env_with_turns(given, "my_app") == given


def test_a_module_that_does_not_import_does_not_fail_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv(MODULES_VARIABLE, "no_such_module_for_hannah_ray,json")
    monkeypatch.setattr(worker_start, "imported_in_turn", [])
    worker_start.import_in_turn()
    assert worker_start.imported_in_turn == ["json"]


def test_a_worker_waits_while_the_turns_are_taken(tmp_path: Path) -> None:
    with (
        worker_start._turn(tmp_path, 1) as first,
        worker_start._turn(tmp_path, 1, max_wait_s=0.1) as second,
    ):
        assert (first, second) == (True, False)
    with worker_start._turn(tmp_path, 1) as again:
        assert again


def test_workers_on_a_one_core_node_import_one_after_another(tmp_path: Path) -> None:
    """Two processes, each allowed one core, import a module that takes 0.5 s: the second
    starts its import only after the first has finished."""
    (tmp_path / "slow_import.py").write_text(
        "import os, time\n"
        "start = time.time(); time.sleep(0.5)\n"
        "with open(os.environ['LOG'], 'a') as log:\n"
        "    log.write(f'{start} {time.time()}\\n')\n"
    )
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "from hannah_ray.worker_start import import_in_turn, imported_in_turn\n"
        "import_in_turn(); assert imported_in_turn == ['slow_import'], imported_in_turn\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        "TMPDIR": str(tmp_path),
        "LOG": str(tmp_path / "log"),
        MODULES_VARIABLE: "slow_import",
    }
    workers = [subprocess.Popen([sys.executable, "-c", code], env=env) for _ in range(2)]
    assert [w.wait(timeout=60) for w in workers] == [0, 0]
    (a_start, a_end), (b_start, b_end) = sorted(
        tuple(map(float, line.split())) for line in (tmp_path / "log").read_text().splitlines()
    )
    assert b_start >= a_end
