"""Errors a user can act on: each names the key, what was given and what is allowed."""

from hydra.errors import CompactHydraException


class SweepConfigError(CompactHydraException, ValueError):
    """Bad sweep input, found before any trial starts. Hydra prints its message alone, without a
    traceback (``HYDRA_FULL_ERROR=1`` shows one)."""


class InvalidReturnError(ValueError):
    """A task returned something that is not an objective value."""


class SweepInterrupted(CompactHydraException, RuntimeError):
    """The sweep ended before its trials were done (e.g. Ctrl-C); finished trials are stored.
    Hydra prints its message alone, without a traceback."""


class TrialStopped(RuntimeError):
    """The scheduler (e.g. ASHA) stopped the trial early; it is stored PRUNED, not FAIL."""
