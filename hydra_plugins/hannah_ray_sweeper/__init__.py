"""Hydra sweeper plugin ``hydra/sweeper=ray_optuna`` (the work lives in :mod:`hannah_ray`)."""
