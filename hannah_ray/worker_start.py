"""Trial workers on one node import Ray Tune, the runner and the task a few at a time.

A sweep asks Ray for all its trial workers at once. Each must import Ray Tune (with pandas and Ray
Data), Hydra, our trial runner and the task: seconds of CPU. When a node has fewer cores than
workers, all of them share the cores and none is ready until nearly all are. Taking turns, as many
at once as the node has cores, costs the same CPU but readies the first workers seconds sooner,
and they run trials while the others still import (8 workers on 2 cores: the first trial starts
after ~6 s instead of ~13 s). Ray's own start-up limit does not cover this: a worker counts as
started once it registers, before it loads its actor.

The turns are taken in a Ray ``worker_process_setup_hook``, which runs in each of the sweep's worker
processes after it registers and before it runs anything.
"""

from __future__ import annotations

import fcntl
import importlib
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SETUP_HOOK = f"{__name__}.import_in_turn"
MODULES_VARIABLE = "HANNAH_RAY_WORKER_IMPORTS"
# What every trial worker imports before its first trial (the actor class lives in Ray Tune).
_ALWAYS = ("ray.tune.trainable.function_trainable", "hannah_ray.trial_runner")
# A worker whose turn never comes (another stuck in an import) imports without one after this.
_MAX_WAIT_S = 60.0
_POLL_S = 0.02
# The modules this process imported in its turn (for the curious, and for tests).
imported_in_turn: list[str] = []


def runtime_env_with_turns(
    runtime_env: Mapping[str, Any] | None, task_module: str | None
) -> dict[str, Any] | None:
    """``runtime_env`` for ``ray.init`` with the turn-taking hook added, or unchanged where it
    already names a ``worker_process_setup_hook`` (Ray takes one per job)."""
    given = dict(runtime_env or {})
    if given.get("worker_process_setup_hook"):
        return given
    modules = [*_ALWAYS]
    if task_module and task_module != "__main__":  # a script's functions are shipped by value
        modules.append(task_module)
    env_vars = {**(given.get("env_vars") or {}), MODULES_VARIABLE: ",".join(modules)}
    return {**given, "worker_process_setup_hook": SETUP_HOOK, "env_vars": env_vars}


def import_in_turn() -> None:
    """Import the modules named in ``HANNAH_RAY_WORKER_IMPORTS`` while holding one of the node's
    turns. Never fails the worker: a module that does not import here fails later, in its trial,
    with the trial's context."""
    modules = [name for name in os.environ.get(MODULES_VARIABLE, "").split(",") if name]
    with _turn(_turn_dir(), _core_count()):
        for name in modules:
            try:
                importlib.import_module(name)
                imported_in_turn.append(name)
            except Exception as error:  # noqa: BLE001 - reported by the trial that imports it
                log.debug("hannah-ray: %s does not import before the first trial: %s", name, error)


@contextmanager
def _turn(folder: Path, turns: int, max_wait_s: float = _MAX_WAIT_S) -> Iterator[bool]:
    """Hold one of ``turns`` node-wide locks (files in ``folder``), waiting at most
    ``max_wait_s``; yields whether one was taken. The kernel frees a lock when its holder exits."""
    handles: list[int] = []
    held: int | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handles = [os.open(folder / str(i), os.O_CREAT | os.O_RDWR, 0o600) for i in range(turns)]
        deadline = time.monotonic() + max_wait_s
        while held is None and time.monotonic() < deadline:
            held = next((fd for fd in handles if _try_lock(fd)), None)
            if held is None:
                time.sleep(_POLL_S)
    except OSError as error:  # e.g. a read-only temp folder: import without a turn
        log.debug("hannah-ray: no import turn: %s", error)
    try:
        yield held is not None
    finally:
        for fd in handles:
            os.close(fd)  # closing the locked file releases its lock


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _turn_dir() -> Path:
    """One folder per user and node, shared by every sweep there: they share the cores too."""
    return Path(tempfile.gettempdir()) / f"hannah-ray-{os.getuid()}" / "import-turns"


def _core_count() -> int:
    """The cores this process may run on (its affinity where the system tells it), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1
