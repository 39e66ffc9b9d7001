"""``hannah-ray-train``: a Hydra + PyTorch Lightning classification app whose config keys mirror
the hannah framework's ``hannah-train`` (``scheduler.max_lr``, ``optimizer.weight_decay``,
``trainer.max_epochs``, ``module.num_workers``, ``experiment_id``)."""
