"""The app's models: a small MLP and a small convnet, sized from the data."""

from __future__ import annotations

import math

from omegaconf import DictConfig
from torch import nn


def build_model(model: DictConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    if model.name == "mlp":
        return mlp(input_shape, num_classes, list(model.hidden_sizes), float(model.dropout))
    if model.name == "convnet":
        if len(input_shape) != 3:
            raise ValueError(
                f"model=convnet needs image data (channels, height, width); the dataset gives "
                f"samples of shape {input_shape}. Set dataset.image_shape or use model=mlp."
            )
        return convnet(
            input_shape, num_classes, list(model.channels), int(model.kernel_size),
            float(model.dropout),
        )  # fmt: skip
    raise ValueError(f"model.name={model.name!r}: allowed: 'mlp' or 'convnet'.")


def mlp(
    input_shape: tuple[int, ...], num_classes: int, hidden_sizes: list[int], dropout: float
) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for hidden in hidden_sizes:
        layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
        width = hidden
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def convnet(
    input_shape: tuple[int, ...],
    num_classes: int,
    channels: list[int],
    kernel_size: int,
    dropout: float,
) -> nn.Module:
    layers: list[nn.Module] = []
    in_channels = input_shape[0]
    for out_channels in channels:
        layers += [
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        ]
        in_channels = out_channels
    layers += [
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(in_channels * 4, num_classes),
    ]
    return nn.Sequential(*layers)
