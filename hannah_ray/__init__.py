"""hannah-ray: Hydra sweeps searched by Optuna and run on Ray Tune."""

__version__ = "0.1.0"
