"""hannah-ray: Hydra sweeps searched by Optuna and run on Ray Tune.

``hannah_ray.report(...)`` sends intermediate metrics of a running trial to the sweep (a no-op
outside one; ``last=True`` on the report after the last epoch); Lightning apps add
``hannah_ray.lightning.ReportCallback`` instead, which marks the last epoch itself.
"""

from importlib import import_module
from types import ModuleType

from .reporting import in_trial, report

__all__ = ["in_trial", "report"]
__version__ = "0.1.0"


def __getattr__(name: str) -> ModuleType:
    """``hannah_ray.lightning`` after a plain ``import hannah_ray``, without importing Lightning
    for apps that do not use it."""
    if name == "lightning":
        return import_module(".lightning", __name__)
    raise AttributeError(f"module 'hannah_ray' has no attribute {name!r}")
