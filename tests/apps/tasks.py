"""Task functions used by the in-process integration tests (importable by Ray workers)."""

from __future__ import annotations

import math
import os
import time
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_original_cwd, to_absolute_path
from omegaconf import DictConfig


def sphere(cfg: DictConfig) -> float:
    return float(cfg.x) ** 2 + float(cfg.y) ** 2


def two_objectives(cfg: DictConfig) -> tuple[float, float]:
    x, y = float(cfg.x), float(cfg.y)
    return x**2 + y**2, (x - 2) ** 2 + (y - 2) ** 2


def dict_return(cfg: DictConfig) -> dict[str, Any]:
    return {"loss": float(cfg.x) ** 2, "accuracy": 1.0 - abs(float(cfg.x)) / 10, "note": "ok"}


def fails_when_negative(cfg: DictConfig) -> float:
    if cfg.x < 0:
        raise ValueError(f"x must not be negative, got {cfg.x}")
    return float(cfg.x)


class DataError(Exception):
    """Pickles, but does not load: ``__init__`` takes other arguments than ``args``."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")


def raises_an_error_that_does_not_unpickle(cfg: DictConfig) -> float:
    raise DataError("data/train.csv", f"no such file (x={cfg.x})")


def returns_bad_value(cfg: DictConfig) -> Any:
    values = {"none": None, "notanumber": math.nan, "infinite": math.inf, "text": "abc", "ok": 1.0}
    return values[cfg.kind]


def timed(cfg: DictConfig) -> dict[str, float]:
    """Job 0 is slow, the rest quick: shows whether quick trials wait for the slow one."""
    start = time.time()
    time.sleep(cfg.slow_s if HydraConfig.get().job.num == 0 else cfg.quick_s)
    return {"objective": float(cfg.x), "start": start, "end": time.time(), "pid": os.getpid()}


def hydra_context_probe(cfg: DictConfig) -> dict[str, Any]:
    hydra_cfg = HydraConfig.get()
    return {
        "objective": float(cfg.x),
        "num": hydra_cfg.job.num,
        "output_dir": hydra_cfg.runtime.output_dir,
        "runtime_cwd": cfg.runtime_cwd,
        "original_cwd": get_original_cwd(),
        "absolute": to_absolute_path("data.txt"),
        "cwd": os.getcwd(),
    }


def config_group_score(cfg: DictConfig) -> float:
    return {"alpha": 3.0, "beta": 1.0, "gamma": 2.0}[cfg.db.name]


def compositions_probe(cfg: DictConfig) -> dict[str, Any]:
    """Which config-group choices this worker's trial composer holds compositions of."""
    from hannah_ray.trial_runner import _prepared

    [payload] = _prepared.values()
    choices = sorted(" ".join(structure) for structure in payload.composer.bases())
    return {"objective": config_group_score(cfg), "choices": choices}


def dies_once_then_works(cfg: DictConfig) -> float:
    """Kills its own worker process (as the OOM killer would) on the first attempt of a job."""
    marker = os.path.join(cfg.marker_dir, f"attempted-{HydraConfig.get().job.num}")
    if cfg.x < 0 and (cfg.always_die or not os.path.exists(marker)):
        open(marker, "w").close()
        os.kill(os.getpid(), 9)
    return float(cfg.x)


def reports_every_epoch(cfg: DictConfig) -> float:
    """A non-Lightning app: reports a loss that falls with each epoch, slower for larger x."""
    import hannah_ray

    loss = 0.0
    for epoch in range(1, int(cfg.epochs) + 1):
        loss = float(cfg.x) + 1.0 / epoch
        if cfg.get("diverge_above") is not None and cfg.x > cfg.diverge_above:
            loss = math.nan
        reported = {"loss": loss, "note": "not a number"}
        if cfg.get("report_done"):  # a metric named like Tune's own "done"
            reported["done"] = 1
        hannah_ray.report(reported, epoch=epoch)
        time.sleep(float(cfg.epoch_s))
    return loss


def reports_then_winds_down(cfg: DictConfig) -> float:
    """Reports every epoch; however it ends (a scheduler's stop too), it then takes
    ``wind_down_s`` to write ``wound_down`` into its job folder, as a logger closing its files."""
    import hannah_ray

    try:
        for epoch in range(1, int(cfg.epochs) + 1):
            hannah_ray.report({"loss": float(cfg.x) + 1.0 / epoch}, epoch=epoch)
            time.sleep(float(cfg.epoch_s))
        return float(cfg.x)
    finally:
        time.sleep(float(cfg.wind_down_s))
        output_dir = HydraConfig.get().runtime.output_dir
        with open(os.path.join(output_dir, "wound_down"), "w") as marker:
            marker.write("ok")


def registers_a_resolver(cfg: DictConfig) -> float:
    """Registers an OmegaConf resolver, as some apps' main functions do; without ``replace=True``
    a second registration in one process fails."""
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("twice", lambda value: 2 * float(value))
    return float(OmegaConf.create({"y": f"${{twice:{cfg.x}}}"}).y)


def reports_once(cfg: DictConfig) -> float:
    """A non-Lightning app that reports its result once, at its end, marked last."""
    import hannah_ray

    hannah_ray.report(float(cfg.x), last=True)
    return float(cfg.x)


def reports_last_then_again(cfg: DictConfig) -> float:
    """Marks a report last, then reports once more (e.g. a second ``fit`` stage)."""
    import hannah_ray

    hannah_ray.report(float(cfg.x), epoch=1, last=True)
    hannah_ray.report(float(cfg.x), epoch=2)
    return float(cfg.x)


def gpu_probe(cfg: DictConfig) -> dict[str, Any]:
    """What a trial sees of the GPUs: the visible devices and the ids Ray assigned."""
    import ray

    return {
        "objective": float(cfg.x),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"),
        "ray_gpu_ids": ",".join(str(i) for i in ray.get_gpu_ids()),
    }


def hangs_when_negative(cfg: DictConfig) -> float:
    """A task that hangs (as a deadlocked data loader would) for x < 0."""
    if cfg.x < 0:
        time.sleep(3600)
    return float(cfg.x)


def cuda_probe(cfg: DictConfig) -> dict[str, Any]:
    """What torch sees of the GPUs inside a trial; GPU trials hold a tensor for ``cfg.hold_s``."""
    import torch

    started = time.time()
    probe: dict[str, Any] = {
        "objective": float(cfg.x),
        "cuda_available": torch.cuda.is_available(),
        "device_count": torch.cuda.device_count(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"),
    }
    if probe["cuda_available"]:
        held = torch.ones(1024, 1024, device="cuda")
        probe["device"] = str(held.device)
        probe["gpu_uuid"] = str(torch.cuda.get_device_properties(0).uuid)
        time.sleep(float(cfg.hold_s))
        probe["sum"] = float(held.sum())
    probe["started"], probe["ended"] = started, time.time()
    return probe


def environment_probe(cfg: DictConfig) -> dict[str, Any]:
    """Whether the worker running the job sees the environment variable ``cfg.variable``."""
    return {"objective": float(cfg.x), "sees_variable": cfg.variable in os.environ}


def fails_or_trains(cfg: DictConfig) -> float:
    """Trial ``x=0`` fails after ``fail_after_s``; the others train ``epochs`` epochs of ``epoch_s``
    in 10 batches, reporting each epoch and, with ``check_batches``, checking for a stop every
    batch (as the Lightning callback does). Each writes how many epochs it began into its job
    folder, however it ends."""
    import hannah_ray
    from hannah_ray.reporting import stop_if_requested

    if int(cfg.x) == 0:
        time.sleep(float(cfg.fail_after_s))
        raise RuntimeError("trial x=0 fails")
    begun = 0
    try:
        for epoch in range(1, int(cfg.epochs) + 1):
            begun = epoch
            for _batch in range(10):
                if cfg.check_batches:
                    stop_if_requested()
                time.sleep(float(cfg.epoch_s) / 10)
            hannah_ray.report({"loss": 1.0 / epoch}, epoch=epoch)
        return float(cfg.x)
    finally:
        with open(os.path.join(HydraConfig.get().runtime.output_dir, "epochs_begun"), "w") as out:
            out.write(str(begun))


def sleeps(cfg: DictConfig) -> float:
    time.sleep(float(cfg.sleep_s))
    return float(cfg.x)
