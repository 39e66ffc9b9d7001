"""``run_job_lean`` does what Hydra's own ``run_job`` does: same files, same ``JobReturn``, same
view from inside the task, same callbacks, same state afterwards."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, run_job, setup_globals
from hydra.experimental.callback import Callback
from hydra.types import HydraContext, RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from hannah_ray.compose import SweepConfigComposer
from hannah_ray.hydra_job import run_job_lean, run_job_like_hydra

CONF = Path(__file__).resolve().parent / "apps" / "conf"
SEEN: list[tuple[str, Any]] = []


class Recorder(Callback):
    """Records what Hydra's callbacks are given (configured through ``hydra.callbacks``)."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        SEEN.append(("start", OmegaConf.to_yaml(config)))

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        SEEN.append(("end", (job_return.status, OmegaConf.to_yaml(job_return.hydra_cfg))))


def look_inside(cfg: DictConfig) -> dict[str, Any]:
    """The task: everything a task can see of its job."""
    logging.getLogger("task").info("inside the task")
    if cfg.get("fail"):
        raise ValueError("the task failed")
    return {
        "cwd": os.getcwd(),
        "hydra": OmegaConf.to_yaml(HydraConfig.get()),
        "cfg": OmegaConf.to_yaml(cfg, resolve=True),
        "env": os.environ.get("HANNAH_RAY_TEST_ENV"),
        "num": HydraConfig.get().job.num,
    }


SWEEP_OVERRIDES = [
    "hydra/sweeper=ray_optuna",
    "+x=interval(0, 1)",
    "+hydra.job.env_set.HANNAH_RAY_TEST_ENV=${hydra.job.num}",
    f"+hydra.callbacks.recorder._target_={__name__}.Recorder",
]
TRIAL_OVERRIDES = [
    "+x=0.5",
    "db=beta",
    "+job_folder=${hydra:runtime.output_dir}",
    "+choice=${hydra:runtime.choices.db}",
]
CASES = {
    "plain": [],
    "chdir": ["hydra.job.chdir=true"],
    "no .hydra folder": ["hydra.output_subdir=null"],
    "subdir from job name": ["hydra.sweep.subdir=${hydra.job.name}_${hydra.job.num}"],
    "failing task": ["+fail=true"],
}


@pytest.fixture
def loader(hydra_restore_singletons: object) -> Iterator[Any]:
    setup_globals()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        yield GlobalHydra.instance().config_loader()


def _sweep(loader: Any, sweep: list[str]) -> tuple[HydraContext, DictConfig]:
    """The sweep's context and master config, as the sweeper has them."""
    from hydra._internal.callbacks import Callbacks

    master = loader.load_configuration("config", [*SWEEP_OVERRIDES, *sweep], RunMode.MULTIRUN)
    HydraConfig.instance().set_config(master)
    return HydraContext(config_loader=loader, callbacks=Callbacks(master)), master


def _numbered(config: DictConfig, num: int) -> DictConfig:
    with open_dict(config):
        config.hydra.job.num = num
        config.hydra.job.id = f"id{num}"
    return config


@pytest.fixture
def compose(
    loader: Any,
) -> Callable[[list[str], list[str], int], tuple[HydraContext, DictConfig]]:
    def make(sweep: list[str], trial: list[str], num: int) -> tuple[HydraContext, DictConfig]:
        context, master = _sweep(loader, sweep)
        return context, _numbered(SweepConfigComposer(loader, master).compose(trial), num)

    return make


def _files(folder: Path, root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): re.sub(
            r"^\[[\d:, -]+\]", "[time]", path.read_text().replace(str(root), "<root>"), flags=re.M
        )
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _run(runner: Callable, compose: Callable, case: list[str], root: Path) -> dict[str, Any]:
    sweep_dir = root / "sweep"
    context, config = compose([f"hydra.sweep.dir={sweep_dir}", *case], TRIAL_OVERRIDES, 7)
    return _job(runner, context, config, sweep_dir, root)


def _job(
    runner: Callable, context: HydraContext, config: DictConfig, sweep_dir: Path, root: Path
) -> dict[str, Any]:
    """Runs one job; everything about it that the task, callbacks and files show."""
    SEEN.clear()
    before = (os.getcwd(), HydraConfig.instance().cfg)
    job = runner(
        hydra_context=context,
        task_function=look_inside,
        config=config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
    after = (os.getcwd(), HydraConfig.instance().cfg)
    logging.getLogger().handlers.clear()  # close the job's log file before reading it

    def relative(text: str) -> str:
        return text.replace(str(root), "<root>")

    value = job.return_value if job.status == JobStatus.COMPLETED else repr(job._return_value)  # noqa: SLF001
    return {
        "status": job.status,
        "value": {k: relative(str(v)) for k, v in value.items()}
        if isinstance(value, dict)
        else value,
        "overrides": job.overrides,
        "task_name": job.task_name,
        "working_dir": relative(job.working_dir),
        "cfg": OmegaConf.to_yaml(job.cfg),
        "hydra_cfg": relative(OmegaConf.to_yaml(job.hydra_cfg)),
        # Hydra's is a detached copy (a callback may keep or pickle it), not the task's node.
        "hydra_cfg detached": job.hydra_cfg.hydra._get_parent() is job.hydra_cfg,  # noqa: SLF001
        "callbacks": [(kind, relative(str(seen))) for kind, seen in SEEN],
        "files": _files(sweep_dir, root),
        "state restored": before == after,
    }


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_lean_run_job_matches_hydras(compose, tmp_path: Path, case: list[str]) -> None:
    os.chdir(tmp_path)
    (tmp_path / "hydra").mkdir()
    (tmp_path / "lean").mkdir()
    hydras = _run(run_job, compose, case, tmp_path / "hydra")
    lean = _run(run_job_lean, compose, case, tmp_path / "lean")
    assert lean == hydras
    assert hydras["state restored"]
    assert hydras["files"], "the job wrote no files"
    assert [kind for kind, _ in hydras["callbacks"]] == ["start", "end"]
    if "+fail=true" not in case:
        seen = hydras["value"]
        assert seen["env"] == "7" and seen["num"] == "7"
        assert "choice: beta" in seen["cfg"]
        assert (
            f"job_folder: {hydras['working_dir'] if 'chdir' in str(case) else '<root>'}"
            in seen["cfg"]
        )
        assert seen["cwd"] == hydras["working_dir"]
        assert "inside the task" in "".join(hydras["files"].values())


# One worker's trials one after the other: two bases (db=beta, db=alpha), a failing job between.
TRIALS_IN_A_ROW = [
    ["+x=0.5", "db=beta", "+job_folder=${hydra:runtime.output_dir}"],
    ["+x=0.25", "db=beta", "+choice=${hydra:runtime.choices.db}"],
    ["+x=0.75", "db=alpha", "+choice=${hydra:runtime.choices.db}"],
    ["+x=0.125", "db=beta", "+fail=true"],
    ["+x=1.0", "db=beta", "+job_folder=${hydra:runtime.output_dir}"],
    ["+x=0.375", "db=alpha"],
]


@pytest.mark.parametrize("case", [[], ["hydra.job.chdir=true"]], ids=["plain", "chdir"])
def test_jobs_in_a_row_sharing_one_hydra_node_match_hydras(
    loader, tmp_path: Path, case: list[str]
) -> None:
    """A trial worker's composer shares one ``hydra`` node between the jobs it composes from one
    base: each job must still be what Hydra's own composition and ``run_job`` make of it."""
    os.chdir(tmp_path)
    seen: dict[str, list[dict[str, Any]]] = {"hydra": [], "lean": []}
    for name in seen:
        root = tmp_path / name
        root.mkdir()
        sweep_dir = root / "sweep"
        context, master = _sweep(loader, [f"hydra.sweep.dir={sweep_dir}", *case])
        composer = SweepConfigComposer(loader, master, share_hydra=True)
        hydra_nodes = []
        for num, trial in enumerate(TRIALS_IN_A_ROW):
            if name == "hydra":
                config = _numbered(loader.load_sweep_config(master, trial), num)
                seen[name].append(_job(run_job, context, config, sweep_dir, root))
            else:
                config = _numbered(composer.compose(trial), num)
                hydra_nodes.append(config._get_node("hydra"))  # noqa: SLF001
                seen[name].append(_job(run_job_lean, context, config, sweep_dir, root))
    for hydras, lean in zip(seen["hydra"], seen["lean"], strict=True):
        assert lean == hydras
    assert [job["status"] for job in seen["hydra"]].count(JobStatus.FAILED) == 1
    assert len({id(node) for node in hydra_nodes}) == 2  # one per base: shared, not copied


def test_an_unset_chdir_before_hydra_1_2_takes_hydras_own_path(compose, tmp_path, monkeypatch):
    """Old version_base semantics (chdir unset = chdir, with a warning) run Hydra's run_job."""
    import hannah_ray.hydra_job as hydra_job

    calls: list[str] = []
    monkeypatch.setattr(hydra_job, "run_job", lambda **kw: calls.append("hydra"))
    monkeypatch.setattr(hydra_job, "run_job_lean", lambda **kw: calls.append("lean"))
    monkeypatch.setattr(hydra_job.version, "base_at_least", lambda v: False)
    context, config = compose([f"hydra.sweep.dir={tmp_path}"], ["+x=0.5"], 1)
    arguments = dict(task_function=look_inside, job_dir_key="hydra.sweep.dir", job_subdir_key=None)
    run_job_like_hydra(hydra_context=context, config=config, **arguments)
    with open_dict(config):
        config.hydra.job.chdir = False
    run_job_like_hydra(hydra_context=context, config=config, **arguments)
    assert calls == ["hydra", "lean"]
