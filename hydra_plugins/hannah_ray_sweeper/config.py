"""Typed configs of the ``ray_optuna`` sweeper, registered in Hydra's ConfigStore.

``python app.py --cfg hydra -p hydra.sweeper`` prints them. Names shared with the stock Optuna sweeper
(``sampler``, ``direction``, ``storage``, ``study_name``, ``n_trials``, ``n_jobs``, ``max_failure_rate``,
``params``, ``custom_search_space``) mean the same here, so existing configs keep working.
"""

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


class Direction(Enum):
    minimize = 1
    maximize = 2


@dataclass
class SamplerConfig:
    _target_: str = MISSING


@dataclass
class TPESamplerConfig(SamplerConfig):
    """https://optuna.readthedocs.io/en/stable/reference/samplers/generated/optuna.samplers.TPESampler.html"""

    _target_: str = "optuna.samplers.TPESampler"
    seed: int | None = None
    consider_prior: bool | None = None
    prior_weight: float | None = None
    consider_magic_clip: bool | None = None
    consider_endpoints: bool | None = None
    n_startup_trials: int = 10
    n_ei_candidates: int = 24
    multivariate: bool | None = None
    group: bool = False
    warn_independent_sampling: bool | None = None
    # Asynchronous trials: pretend running trials did badly so that parallel trials spread out.
    constant_liar: bool = True


@dataclass
class RandomSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.RandomSampler"
    seed: int | None = None


@dataclass
class CmaEsSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.CmaEsSampler"
    seed: int | None = None
    x0: dict[str, Any] | None = None
    sigma0: float | None = None
    n_startup_trials: int = 1
    warn_independent_sampling: bool = True
    consider_pruned_trials: bool = False
    restart_strategy: str | None = None
    popsize: int | None = None
    inc_popsize: int = -1
    use_separable_cma: bool = False
    with_margin: bool = False
    lr_adapt: bool = False


@dataclass
class NSGAIISamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.NSGAIISampler"
    seed: int | None = None
    population_size: int = 50
    mutation_prob: float | None = None
    crossover_prob: float = 0.9
    swapping_prob: float = 0.5


@dataclass
class QMCSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.QMCSampler"
    seed: int | None = None
    qmc_type: str = "sobol"
    scramble: bool = False
    warn_asynchronous_seeding: bool = True
    warn_independent_sampling: bool = True


@dataclass
class GPSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.GPSampler"
    seed: int | None = None
    n_startup_trials: int = 10
    deterministic_objective: bool = False
    warn_independent_sampling: bool = True


@dataclass
class GridSamplerConfig(SamplerConfig):
    """``search_space: null`` builds the grid from the swept parameters (they must be discrete)."""

    _target_: str = "optuna.samplers.GridSampler"
    seed: int | None = None
    search_space: dict[str, Any] | None = None


@dataclass
class SchedulerConfig:
    _target_: str = MISSING


@dataclass
class NoSchedulerConfig(SchedulerConfig):
    """No early stopping: every trial runs to its end."""

    _target_: str = "ray.tune.schedulers.FIFOScheduler"


@dataclass
class ASHASchedulerConfig(SchedulerConfig):
    """Asynchronous successive halving. Time is counted in ``time_attr`` units: ``epoch`` = one
    intermediate report (the Lightning callback reports once per validation epoch). Set ``max_t``
    to the most epochs a trial trains; a trial that reaches it is never stopped."""

    _target_: str = "hannah_ray.schedulers.ASHAScheduler"
    time_attr: str = "epoch"
    # Epochs may be fractions (validations inside an epoch report at 0.5, 1, 1.5, ...); whole
    # numbers reach the scheduler as ints.
    max_t: float = 100
    grace_period: float = 1
    reduction_factor: float = 4
    brackets: int = 1
    # false: a trial that reaches max_t trains on to its own end (its return value is the
    # objective) instead of being cut at max_t.
    stop_last_trials: bool = False


@dataclass
class MedianStoppingConfig(SchedulerConfig):
    """Stops a trial whose best result so far is worse than the median of the others at that time."""

    _target_: str = "hannah_ray.schedulers.MedianStoppingRule"
    time_attr: str = "epoch"
    grace_period: float = 1
    min_samples_required: int = 3
    min_time_slice: int = 0
    hard_stop: bool = True


@dataclass
class ResourcesPerTrial:
    """Ray resources one trial holds; fractions share a device (``gpu: 0.25`` = four trials per GPU)."""

    cpu: float = 1.0
    gpu: float = 0.0


@dataclass
class RayOptunaSweeperConf:
    _target_: str = "hydra_plugins.hannah_ray_sweeper.ray_optuna_sweeper.RayOptunaSweeper"
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"scheduler": "none"}])
    # The sweeper builds the sampler itself (to check its arguments and shift its seed on resume).
    _recursive_: bool = False

    sampler: SamplerConfig = MISSING
    # Early stopping of bad trials: hydra/sweeper/scheduler=asha (or median); none by default.
    scheduler: SchedulerConfig = MISSING
    # "minimize" / "maximize", or a list of them for multi-objective search.
    direction: Any = Direction.minimize
    # null (in memory), sqlite:///file.db, any SQLAlchemy URL, or journal:///file.journal.
    storage: Any | None = None
    study_name: str | None = None
    # Total number of finished trials the study should hold; see add_trials.
    n_trials: int = 20
    # true: run n_trials more, whatever the stored study holds already.
    add_trials: bool = False
    # Most trials at once; null = as many as the Ray resources allow.
    n_jobs: int | None = None
    max_failure_rate: float = 0.0
    # Retries of a trial whose Ray worker died (killed, out of memory) before it is stored FAIL.
    max_retries: int = 0
    # Stop a trial that runs longer than this (its worker is ended) and store it FAIL; null: no limit.
    trial_timeout_s: float | None = None
    # The sweep stamps its running trials this often; a later sweep fails (and re-queues, with
    # requeue_orphans) a RUNNING trial whose stamp is older than orphan_grace_s: a killed sweep's.
    heartbeat_interval_s: float = 10.0
    orphan_grace_s: float = 120.0
    requeue_orphans: bool = True
    # Search space in config (the command line wins on the same key). Empty, not null, so that
    # the command line can add to it: '+hydra.sweeper.params.x="interval(0, 1)"'.
    params: dict[str, Any] | None = field(default_factory=dict)
    # Deprecated (as in Hydra's Optuna sweeper): {key: {type: int|float|categorical, low, high,
    # log, step, choices}}, read only where params is empty. Use params.
    search_space: dict[str, Any] | None = None
    # Dotted path to fn(cfg, optuna_trial) that suggests more parameters.
    custom_search_space: str | None = None
    # Which entry (entries, for multi-objective) of a dict return is the objective.
    metric: Any | None = None
    resources_per_trial: ResourcesPerTrial = field(default_factory=ResourcesPerTrial)
    # Keyword arguments for ray.init (ignored when Ray is already initialised in this process).
    # Trials' console output stays in their job folders' logs (log_to_driver: false).
    # include_dashboard: null = Ray's default (on where ray[default] is installed); the dashboard's
    # processes cost ~10 CPU-seconds at start, so false speeds up small sweeps on a few cores.
    ray: dict[str, Any] = field(
        default_factory=lambda: {
            "address": None,
            "num_cpus": None,
            "num_gpus": None,
            "include_dashboard": None,
            "log_to_driver": False,
        }
    )
    reuse_actors: bool = True
    # Trial workers on a node import Ray Tune and the trial runner as many at once as it has cores
    # (a Ray worker_process_setup_hook added to ray.runtime_env, when the sweep calls ray.init):
    # with more workers than cores the first trials start seconds sooner.
    import_turns: bool = True
    # Ray Tune's own per-trial result files under <sweep dir>/ray_tune: a list of json
    # (result.json), csv (progress.csv), tensorboard (events of the reported metrics); true = all
    # three, false = none. tensorboard is opt-in: tensorboardX imports torch into the driver (2-3 s),
    # and Lightning trials log to TensorBoard in their own job folders anyway.
    tune_logs: Any = field(default_factory=lambda: ["json", "csv"])


_SAMPLERS: dict[str, type[SamplerConfig]] = {
    "tpe": TPESamplerConfig,
    "random": RandomSamplerConfig,
    "cmaes": CmaEsSamplerConfig,
    "nsgaii": NSGAIISamplerConfig,
    "qmc": QMCSamplerConfig,
    "gp": GPSamplerConfig,
    "grid": GridSamplerConfig,
}

_store = ConfigStore.instance()
_store.store(
    group="hydra/sweeper", name="ray_optuna", node=RayOptunaSweeperConf, provider="hannah_ray"
)
for _name, _node in _SAMPLERS.items():
    _store.store(group="hydra/sweeper/sampler", name=_name, node=_node, provider="hannah_ray")
_SCHEDULERS: dict[str, type[SchedulerConfig]] = {
    "none": NoSchedulerConfig,
    "asha": ASHASchedulerConfig,
    "median": MedianStoppingConfig,
}
for _name, _node in _SCHEDULERS.items():
    _store.store(group="hydra/sweeper/scheduler", name=_name, node=_node, provider="hannah_ray")
