"""``hannah-ray-train``'s checks before training: each refuses a config that could not give the
run a value, or would break a sweep, with an error naming the key, the value and what is allowed."""

from __future__ import annotations

import logging
import math
import os
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig, OmegaConf

log = logging.getLogger("hannah_ray.train")


def monitored(cfg: DictConfig) -> list[str]:
    """The ``monitor`` names, checked against what the module logs (before any training)."""
    from .module import MONITORABLE

    given = cfg.monitor
    names = [given] if isinstance(given, str) else list(given) if _is_list(given) else None
    if not names or any(n not in MONITORABLE for n in names):
        shown = OmegaConf.to_container(given, resolve=True) if _is_list(given) else given
        raise ValueError(
            f"monitor={shown!r}: allowed: one of {list(MONITORABLE)} or a list of them."
        )
    return names


def _is_list(value: Any) -> bool:
    return isinstance(value, ListConfig | list | tuple)


def check_validation_runs(trainer_args: dict[str, Any], names: list[str]) -> None:
    """The app returns what validation measures: a trainer that never validates would train in
    vain and end without a value, so it is refused before training."""
    limit = trainer_args.get("limit_val_batches", 1.0)
    if limit is not None and limit == 0:
        raise ValueError(
            f"trainer.limit_val_batches={limit}: no validation, so monitor={names} is never "
            "measured and the run has no value to return. Allowed: trainer.limit_val_batches > 0 "
            "(a fraction of the validation batches, or a number of them)."
        )
    every = trainer_args.get("check_val_every_n_epoch", 1)
    epochs = trainer_args.get("max_epochs")
    # max_steps and max_time can only end training sooner.
    if isinstance(every, int) and isinstance(epochs, int) and 0 < epochs < every:
        raise ValueError(
            f"trainer.check_val_every_n_epoch={every} with trainer.max_epochs={epochs}: no "
            f"validation, so monitor={names} is never measured. Allowed: "
            f"trainer.check_val_every_n_epoch <= trainer.max_epochs."
        )


def warn_of_unvalidated_training(trainer_args: dict[str, Any], train_batches: int) -> None:
    """Training after the last validation counts for nothing: the value returned and the
    checkpoint tested are the last validated ones (under 1cycle, before its lowest rates)."""
    every = trainer_args.get("check_val_every_n_epoch", 1)
    epochs = trainer_args.get("max_epochs")
    if isinstance(every, int) and isinstance(epochs, int) and every > 0 and epochs % every:
        log.warning(
            "trainer.check_val_every_n_epoch=%d with trainer.max_epochs=%d: the last %d epoch(s) "
            "are never validated, so they count for nothing. Make max_epochs a multiple of it.",
            every, epochs, epochs % every,
        )  # fmt: skip
    interval = trainer_args.get("val_check_interval")
    if isinstance(interval, float) and 0 < interval < 1:
        between = int(train_batches * interval)  # as Lightning counts it
        if between > 0 and train_batches % between:
            log.warning(
                "trainer.val_check_interval=%g of %d training batches validates every %d: the "
                "last %d batch(es) of each epoch, the last epoch's included, are never validated, "
                "so they count for nothing. Pick a fraction that validates every n batches with n "
                "dividing %d.",
                interval, train_batches, between, train_batches % between, train_batches,
            )  # fmt: skip


def check_sweep_direction(names: list[str]) -> None:
    """In a sweep, each monitored metric must be optimised in its own direction: minimising
    ``val_accuracy`` would search for the worst model."""
    from .module import HIGHER_IS_BETTER

    if not HydraConfig.initialized() or not in_sweep():
        return
    direction = HydraConfig.get().sweeper.get("direction")
    if direction is None:
        return
    given = list(direction) if _is_list(direction) else [direction]
    # The sweepers' Direction enums, or strings in any case (as Optuna and the sweepers take them).
    given = [str(getattr(d, "name", d)).lower() for d in given]
    wanted = ["maximize" if name in HIGHER_IS_BETTER else "minimize" for name in names]
    if len(given) != len(wanted):
        raise ValueError(
            f"monitor={names} gives {len(wanted)} objective(s), but hydra.sweeper.direction="
            f"{given} has {len(given)}. Set hydra.sweeper.direction={wanted}, or monitor one "
            "metric per direction."
        )
    if given != wanted:
        raise ValueError(
            f"monitor={_one_or_all(names)} is best at {_one_or_all(wanted)}, but "
            f"hydra.sweeper.direction={_one_or_all(given)}: the sweep would look for the worst "
            f"model. Set hydra.sweeper.direction={_one_or_all(wanted)}."
        )


def _one_or_all(items: list[str]) -> str:
    """``x`` for one item, ``[x,y]`` (as Hydra's command line takes it) for several."""
    return items[0] if len(items) == 1 else f"[{','.join(items)}]"


def check_devices_fit_the_trial(trainer_args: dict[str, Any]) -> None:
    """In a sweep trial, ``trainer.accelerator`` / ``trainer.devices`` must fit the GPUs Ray gave
    the trial (``hydra.sweeper.resources_per_trial.gpu``): it sees only those, numbered from 0."""
    visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d]
    accelerator = str(trainer_args.get("accelerator", "auto")).lower()
    devices = trainer_args.get("devices", "auto")
    share = "hydra.sweeper.resources_per_trial.gpu"
    if accelerator in ("gpu", "cuda") and not visible:
        raise ValueError(
            f"trainer.accelerator={accelerator}, but this trial holds no GPU ({share}=0). Allowed: "
            f"{share}=0.25 (a share) or more, or trainer.accelerator=auto or cpu."
        )
    wanted = requested_gpus(devices)
    gpus = accelerator in ("gpu", "cuda", "auto")
    if visible and gpus and wanted is not None and max(wanted, default=-1) >= len(visible):
        indices = list(range(len(visible)))
        raise ValueError(
            f"trainer.devices={devices!r}, but this trial holds {len(visible)} GPU(s) ({share}), "
            f"numbered {indices}, and that asks for GPU(s) {wanted}. Allowed in a trial (one "
            f"process, one device): trainer.devices=1, or one index in {indices} as a list, "
            "e.g. trainer.devices=[0]."
        )
    if visible and accelerator == "cpu":
        log.warning(
            "This trial holds a GPU (%s) but trains on the CPU (trainer.accelerator=cpu).", share
        )
    processes = len(visible) if visible and gpus and wanted is None else max(1, len(wanted or []))
    _check_one_process(
        trainer_args,
        processes,
        "a trial is one Ray worker process: DDP relaunches the script (a Ray worker's, not the "
        "app's), and spawned processes cannot report to the trial",
        f"run more trials side by side instead (hydra.sweeper.n_jobs, {share})",
    )


def check_one_process(trainer_args: dict[str, Any]) -> None:
    """Outside a trial too, the app trains in one process: its metrics (the returned best epoch,
    ``hp_metric``, the checkpoint it tests) are not gathered across DDP processes, each of which
    would validate on its own shard of the data."""
    accelerator = str(trainer_args.get("accelerator", "auto")).lower()
    wanted = requested_gpus(trainer_args.get("devices", "auto"))
    if wanted is None and accelerator in ("gpu", "cuda", "auto"):
        import torch

        processes = torch.cuda.device_count() or 1  # -1 or auto: every GPU there is
    else:
        processes = max(1, len(wanted or []))
    _check_one_process(
        trainer_args,
        processes,
        "the app measures val_error, hp_metric and the best epoch in one process (under DDP "
        "each process would validate on its own shard)",
        "sweep with more trials side by side instead",
    )


def _check_one_process(
    trainer_args: dict[str, Any], processes: int, because: str, instead: str
) -> None:
    strategy = str(trainer_args.get("strategy", "auto")).lower()
    nodes = trainer_args.get("num_nodes", 1)
    spawns = any(word in strategy for word in ("spawn", "fork", "notebook"))
    if processes > 1 or nodes != 1 or spawns:
        devices = trainer_args.get("devices", "auto")
        raise ValueError(
            f"trainer.devices={devices!r}, trainer.strategy={strategy}, trainer.num_nodes={nodes}: "
            f"Lightning would train in {processes * (nodes if isinstance(nodes, int) else 1)} "
            f"process(es) or spawn one, but {because}. Allowed: one device in one process "
            f"(trainer.devices=1, trainer.num_nodes=1, a strategy that spawns nothing); {instead}."
        )


def requested_gpus(devices: Any) -> list[int] | None:
    """The GPU indices ``trainer.devices`` asks for, read as Lightning reads it (a count, a list
    of indices, or a string of either); None for all of them (``-1``, ``"auto"``) or none."""
    if isinstance(devices, str):
        text = devices.strip()
        if text in ("auto", "-1", ""):
            return None
        if "," in text:
            return [int(part) for part in text.split(",") if part.strip()]
        devices = int(text) if text.lstrip("-").isdigit() else None
    if isinstance(devices, bool) or devices is None:
        return None
    if isinstance(devices, int):
        return list(range(devices)) if devices > 0 else None
    if _is_list(devices):
        return [int(index) for index in devices]
    return None


def in_sweep() -> bool:
    """A job of a sweep: a ray_optuna trial, or a job of any Hydra multirun."""
    from hydra.types import RunMode

    from hannah_ray import in_trial

    return in_trial() or (HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN)


def check_batch_limits(trainer_args: dict[str, Any], batches: dict[str, int]) -> None:
    """A fractional ``trainer.limit_<split>_batches`` must leave at least one of the split's
    ``batches``; Lightning finds out only when the split's loop starts (for the test split, after
    all the training)."""
    for split, count in batches.items():
        key = f"trainer.limit_{split}_batches"
        limit = trainer_args.get(f"limit_{split}_batches")
        if isinstance(limit, float) and 0 < limit < 1 and int(count * limit) == 0:
            raise ValueError(
                f"{key}={limit} of the {count} {split} batch(es) is no batch. Allowed: a fraction "
                f"of at least {smallest_fraction(count)}, or a number of batches (e.g. {key}=1)."
            )


def smallest_fraction(count: int) -> float:
    """The smallest fraction of ``count`` items, to three significant digits, that Lightning and
    the data split (``int(count * fraction)``) turn into at least one item."""
    scale = 10 ** (2 - math.floor(math.log10(1 / count)))
    fraction = math.ceil(round(scale / count, 6)) / scale
    while int(count * fraction) == 0:  # float rounding
        fraction += 1 / scale
    return fraction


def limited_batches(count: int, limit: Any) -> int:
    """Batches per epoch under a ``limit_*_batches`` (a number of batches, or a fraction)."""
    if limit is None or isinstance(limit, bool):
        return count
    if isinstance(limit, float):
        return int(count * limit) if limit < 1 else count
    return min(count, int(limit))


def check_validation_within_epochs(
    trainer_args: dict[str, Any], train_batches: int, names: list[str]
) -> None:
    """With ``check_val_every_n_epoch=null``, a whole-number ``val_check_interval`` counts training
    batches across epochs: it must come within all of them (Lightning notices only after)."""
    every = trainer_args.get("check_val_every_n_epoch", 1)
    interval = trainer_args.get("val_check_interval")
    epochs = trainer_args.get("max_epochs")
    counts = all(isinstance(v, int) and not isinstance(v, bool) for v in (interval, epochs))
    if every is not None or not counts or interval < 1 or epochs < 1:
        return
    if interval > train_batches * epochs:
        raise ValueError(
            f"trainer.val_check_interval={interval} with trainer.check_val_every_n_epoch=null: "
            f"validation after every {interval} training batches, but training has "
            f"{train_batches * epochs} ({train_batches} per epoch, trainer.max_epochs={epochs}), "
            f"so monitor={names} is never measured. Allowed: trainer.val_check_interval <= "
            f"{train_batches * epochs}, or more epochs."
        )


def check_validation_before_max_steps(
    trainer_args: dict[str, Any], train_batches: int, names: list[str]
) -> None:
    """``trainer.max_steps`` must let training reach its first validation, at the end of epoch
    ``check_val_every_n_epoch`` or at ``val_check_interval`` within it: counted in optimizer
    steps, ``accumulate_grad_batches`` batches each (and one for an epoch's last batches)."""
    max_steps = trainer_args.get("max_steps", -1)
    every = trainer_args.get("check_val_every_n_epoch", 1)
    interval = trainer_args.get("val_check_interval")
    accumulate = trainer_args.get("accumulate_grad_batches", 1)
    plain_ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (max_steps, every))
    if not plain_ints or max_steps < 0 or every < 1 or train_batches < 1:
        return  # no step limit, validation counted over epochs' ends (None), or no batches
    if not isinstance(accumulate, int) or accumulate < 1:
        return  # Lightning refuses it itself
    if interval is None or (isinstance(interval, float) and interval >= 1):
        first = train_batches
    elif isinstance(interval, float) and interval > 0:
        first = max(1, int(train_batches * interval))
    elif isinstance(interval, int) and 0 < interval <= train_batches:
        first = interval
    else:
        return  # a time interval or one Lightning refuses
    steps_per_epoch = -(-train_batches // accumulate)
    steps_before = (every - 1) * steps_per_epoch + (first - 1) // accumulate
    if steps_before >= max_steps:
        raise ValueError(
            f"trainer.max_steps={max_steps} ends training before the first validation (in step "
            f"{steps_before + 1}: {train_batches} training batches per epoch, "
            f"trainer.check_val_every_n_epoch={every}, trainer.val_check_interval={interval}, "
            f"trainer.accumulate_grad_batches={accumulate}), so monitor={names} is never "
            f"measured. Allowed: trainer.max_steps >= {steps_before + 1}, or an earlier "
            "validation (trainer.val_check_interval)."
        )
