"""hannah-ray: Hydra sweeps searched by Optuna and run on Ray Tune.

``hannah_ray.report(...)`` sends intermediate metrics of a running trial to the sweep (a no-op
outside one; ``last=True`` on the report after the last epoch); Lightning apps add
``hannah_ray.lightning.ReportCallback`` instead, which marks the last epoch itself.
"""

from .reporting import in_trial, report

__all__ = ["in_trial", "report"]
__version__ = "0.1.0"
