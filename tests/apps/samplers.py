"""Samplers that fail on the third trial, where a broken sampler would (e.g. a missing package)."""

from typing import Any

from optuna.samplers import RandomSampler


class FailsInAsk(RandomSampler):
    """Fails while ``study.ask`` builds the trial (relative sampling), after the trial exists."""

    def sample_relative(self, study: Any, trial: Any, search_space: Any) -> dict:
        if trial.number == 2:
            raise RuntimeError("the sampler broke in ask")
        return super().sample_relative(study, trial, search_space)


class FailsInSuggest(RandomSampler):
    """Fails while sampling one parameter of the trial."""

    def sample_independent(self, study: Any, trial: Any, name: str, distribution: Any) -> Any:
        if trial.number == 2:
            raise OverflowError("the sampler broke in suggest")
        return super().sample_independent(study, trial, name, distribution)


class DefaultsLikeOldOptuna(RandomSampler):
    """Spells its defaults as Optuna before 5 did for TPE (``True``, ``1.0``), not ``None``."""

    def __init__(self, consider_prior: bool = True, prior_weight: float = 1.0, seed: Any = None):
        super().__init__(seed=seed)
        self.consider_prior, self.prior_weight = consider_prior, prior_weight
