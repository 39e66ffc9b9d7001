"""Trial workers on one node import Ray Tune and the trial runner a few at a time.

A sweep asks Ray for all its trial workers at once. Each must import Ray Tune (with pandas and Ray
Data), Hydra and our trial runner before it can take a trial: 1.5-3 CPU-seconds. When a node has
fewer cores than workers, all of them share the cores and none is ready until nearly all are.
Taking turns, as many at once as the node has cores, costs the same CPU but readies the first
workers sooner, and they run trials while the others still import (8 workers on 2 cores: the first
trial starts ~4 s sooner). Ray's own start-up limit does not cover this: a worker counts as started
once it registers, before it loads its actor.

The turns are taken in a Ray ``worker_process_setup_hook``, which runs in each of the job's worker
processes after it registers and before it runs anything. The task's own module is not imported
there: Ray has not yet set the trial's GPUs (``CUDA_VISIBLE_DEVICES``) nor put the driver's folders
on ``sys.path``.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SETUP_HOOK = f"{__name__}.import_in_turn"
# What every trial worker imports before its first trial (the actor class lives in Ray Tune).
MODULES = ("ray.tune.trainable.function_trainable", "hannah_ray.trial_runner")
# Where Ray keeps a job's setup hook (a job submitted with `ray job submit` may bring its own).
_RAY_HOOK_VARIABLE = "__RAY_WORKER_PROCESS_SETUP_HOOK_ENV_VAR"
_RAY_JOB_CONFIG_VARIABLE = "RAY_JOB_CONFIG_JSON_ENV_VAR"
# A worker whose turn never comes (another stuck in an import) imports without one after this.
_MAX_WAIT_S = 60.0
_POLL_S = 0.02
# Whether this process took a turn, and what it imported in it (for the curious, and for tests).
took_turn = False
imported_in_turn: list[str] = []


def runtime_env_with_turns(
    runtime_env: Mapping[str, Any] | None, address: str | None
) -> Mapping[str, Any] | None:
    """``runtime_env`` for ``ray.init`` with the turn-taking hook added; unchanged where the job
    already has a ``worker_process_setup_hook`` (Ray takes one per job), for a Ray Client address
    (``ray://``: the client does not pass setup hooks on) and where file locks are not available."""
    given = runtime_env or {}
    address = address or os.environ.get("RAY_ADDRESS") or ""
    if (
        os.name != "posix"
        or "://" in address
        or given.get("worker_process_setup_hook")
        or _RAY_HOOK_VARIABLE in (given.get("env_vars") or {})
        or "worker_process_setup_hook" in os.environ.get(_RAY_JOB_CONFIG_VARIABLE, "")
    ):
        return runtime_env
    return {**given, "worker_process_setup_hook": SETUP_HOOK}


def import_in_turn() -> None:
    """Import ``MODULES`` while holding one of the node's turns. Never fails the worker (Ray would
    end it): whatever does not work here happens again in the trial, with the trial's context."""
    global took_turn
    try:
        with _turn(_turn_dir(), _core_count()) as took_turn:
            for name in MODULES:
                importlib.import_module(name)
                imported_in_turn.append(name)
    except Exception as error:  # noqa: BLE001 - see the docstring
        log.debug("hannah-ray: importing before the first trial failed: %s", error)


@contextmanager
def _turn(folder: Path, turns: int, max_wait_s: float = _MAX_WAIT_S) -> Iterator[bool]:
    """Hold one of ``turns`` node-wide locks (files in ``folder``), waiting at most
    ``max_wait_s``; yields whether one was taken. The kernel frees a lock when its holder exits."""
    handles: list[int] = []
    held: int | None = None
    try:
        _own_folder(folder)
        for i in range(turns):
            handles.append(os.open(folder / str(i), os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600))
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


def _own_folder(folder: Path) -> None:
    """Create ``folder`` (private to this user), or check that the existing one is this user's
    own folder and not a link: another user must not hold our turns or redirect our files."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path in (folder, folder.parent):
        info = os.lstat(path)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            raise PermissionError(f"{path} is not a folder of this user")


def _try_lock(fd: int) -> bool:
    import fcntl  # POSIX only; runtime_env_with_turns adds the hook only there

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _turn_dir() -> Path:
    """One folder per user and node, shared by every sweep there: they share the cores too. The
    host name keeps nodes apart where the temp folder is on a shared file system."""
    user_dir = Path(tempfile.gettempdir()) / f"hannah-ray-{os.getuid()}"
    return user_dir / f"import-turns-{socket.gethostname()}"


def _core_count(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """The cores this process may run on (its affinity where the system tells it), at most its
    container's CPU quota (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``; Ray reads the same
    files to count a node's CPUs), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:
        cores = os.cpu_count() or 1
    quota = _cpu_quota(cgroup_root)
    if quota is not None:
        cores = min(cores, int(quota))
    return max(1, cores)


def _cpu_quota(cgroup_root: Path) -> float | None:
    """The CPUs a container's quota allows, or None where none is set or readable."""
    try:
        v2 = cgroup_root / "cpu.max"
        if v2.exists():
            quota, period = v2.read_text().split()[:2]
        else:
            v1 = cgroup_root / "cpu"
            quota = (v1 / "cpu.cfs_quota_us").read_text().strip()
            period = (v1 / "cpu.cfs_period_us").read_text().strip()
        allowed = float(quota) / float(period)  # "max" (v2, no quota) raises ValueError
    except (OSError, ValueError, ZeroDivisionError):
        return None
    return allowed if allowed > 0 else None  # -1 (v1): no quota
