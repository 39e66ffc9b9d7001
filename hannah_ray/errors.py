"""Errors a user can act on: each names the key, what was given and what is allowed."""


class SweepConfigError(ValueError):
    """Bad sweep input, found before any trial starts."""


class InvalidReturnError(ValueError):
    """A task returned something that is not an objective value."""


class SweepInterrupted(RuntimeError):
    """The sweep ended before its trials were done (e.g. Ctrl-C); finished trials are stored."""


class TrialStopped(RuntimeError):
    """The scheduler (e.g. ASHA) stopped the trial early; it is stored PRUNED, not FAIL."""
