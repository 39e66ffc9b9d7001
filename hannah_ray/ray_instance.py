"""Starting and stopping the Ray instance a sweep runs on, where the sweep starts it itself."""

from __future__ import annotations

import atexit
import gc
import logging
import os
from typing import Any

import ray

from .errors import SweepConfigError
from .worker_start import SETUP_HOOK, runtime_env_with_turns

log = logging.getLogger(__name__)

# A Ray instance that ray.init starts prestarts idle workers for the first driver. Tune's trial
# actors never get them (they leave once idle), so on a few cores they only slow the start-up down
# (~1.7 CPU-s each, while the dashboard and the trials' own workers start). Set for the raylet
# that ray.init may start; a user's own setting wins.
_RAYLET_ENVIRONMENT = {"RAY_prestart_worker_first_driver": "0"}


def start_ray(ray_init: dict[str, Any], import_turns: bool = True) -> None:
    """``ray.init`` with ``hydra.sweeper.ray`` and, with ``import_turns``, the trial workers taking
    turns to import (see ``worker_start``); Ray's refusals of those arguments name the key."""
    added = {key: value for key, value in _RAYLET_ENVIRONMENT.items() if key not in os.environ}
    os.environ.update(added)
    arguments = dict(ray_init)
    if import_turns:
        runtime_env = runtime_env_with_turns(ray_init.get("runtime_env"), ray_init.get("address"))
        if runtime_env is not None:
            arguments["runtime_env"] = runtime_env
    try:
        ray.init(**arguments)
    except (ValueError, ConnectionError, RuntimeError) as error:
        hint = ""
        if "existing cluster" in str(error):
            hint = (
                " A Ray instance is already running (ray start, RAY_ADDRESS) and ray.init joins "
                "it: leave out the arguments that only a new instance takes, or set "
                "hydra.sweeper.ray.address=local to start a separate instance."
            )
        elif arguments.get("runtime_env") is not ray_init.get("runtime_env"):
            hint = (
                f" (hannah-ray added runtime_env.worker_process_setup_hook={SETUP_HOOK}; "
                "hydra.sweeper.import_turns=false leaves it out)"
            )
        raise SweepConfigError(
            f"hydra.sweeper.ray: ray.init with {sorted(ray_init) or 'no arguments'} failed: "
            f"{error}{hint}"
        ) from error
    finally:
        for key in added:  # only the raylet needed it (it inherits the environment at start)
            os.environ.pop(key, None)


def skip_garbage_collection_at_exit() -> None:
    """Freeze the heap when the interpreter exits, so that its final collections skip the objects
    Ray, Tune, pandas and the study left behind (1.0-1.3 s on 2 cores). Changes nothing before
    exit; whatever ``atexit`` and ``weakref.finalize`` close still closes."""
    atexit.unregister(gc.freeze)  # once, however many sweeps this process runs
    atexit.register(gc.freeze)


def started_ray_here() -> bool:
    """True if this process started its Ray instance (a fixed local one), False if it joined a
    cluster (``address``, ``RAY_ADDRESS``, ``ray job submit``), which may grow."""
    node = getattr(ray._private.worker, "_global_node", None)  # noqa: SLF001
    return node is not None and getattr(node, "ray_init_cluster", False) is True


def stop_ray() -> None:
    """``ray.shutdown``; for an instance this process started, its autoscaler monitor is ended
    first. Ray stops its processes one after another, the GCS before the monitor, whose SIGTERM
    handler then reports to the stopped GCS until Ray kills it a second later (Ray 2.60). Ended
    with SIGKILL first, as Ray ends it after that second anyway: ~0.5 s instead of ~1.4 s."""
    if started_ray_here():
        try:
            ray._private.worker._global_node.kill_monitor(check_alive=False)  # noqa: SLF001
        except Exception as error:  # noqa: BLE001 - ray.shutdown stops it anyway
            log.debug("hannah-ray: ending Ray's autoscaler monitor first failed: %s", error)
    ray.shutdown()
