"""Datasets of the training app: scikit-learn's digits (shipped inside scikit-learn, no download)
or the user's own ``.npz`` / ``.csv`` file; split train/val/test with a fixed seed."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, TensorDataset


@dataclass
class Arrays:
    features: np.ndarray  # (samples, *input_shape), float32
    labels: np.ndarray  # (samples,), int64 class indices


def load_arrays(dataset: DictConfig) -> Arrays:
    """The whole dataset named by ``dataset.name``."""
    if dataset.name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        return Arrays(digits.images[:, None].astype(np.float32), digits.target.astype(np.int64))
    if dataset.name == "files":
        return _load_file(dataset)
    raise ValueError(f"dataset.name={dataset.name!r}: allowed: 'digits' or 'files'.")


def _load_file(dataset: DictConfig) -> Arrays:
    path = Path(str(dataset.path)).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"dataset.path={str(dataset.path)!r}: no such file.")
    if path.suffix == ".npz":
        with np.load(path) as stored:
            missing = {"x", "y"} - set(stored.files)
            if missing:
                raise ValueError(
                    f"dataset.path={str(path)!r}: an .npz file needs arrays 'x' and 'y'; "
                    f"it has {sorted(stored.files)}."
                )
            features, labels = stored["x"], stored["y"]
    elif path.suffix == ".csv":
        features, labels = read_csv(path, str(dataset.label_column))
    else:
        raise ValueError(f"dataset.path={str(path)!r}: allowed: an .npz or .csv file.")
    features = features.astype(np.float32)
    if dataset.get("image_shape"):
        features = features.reshape(len(features), *dataset.image_shape)
    _, labels = np.unique(labels, return_inverse=True)  # any labels -> 0..n_classes-1
    return Arrays(features, labels.astype(np.int64))


def read_csv(path: Path, label: str) -> tuple[np.ndarray, np.ndarray]:
    """Numeric feature columns and a label column that may hold numbers or text (class names)."""
    with open(path, newline="", encoding="utf-8-sig") as table:  # -sig: a BOM is no column name
        reader = csv.reader(table)
        columns = [name.strip() for name in next(reader, [])]
        rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    if label not in columns:
        raise ValueError(
            f"dataset.label_column={label!r} is not a column of {str(path)!r}; columns: {columns}."
        )
    at = columns.index(label)
    feature_names = columns[:at] + columns[at + 1 :]
    features = np.empty((len(rows), len(feature_names)), dtype=np.float32)
    labels: list[str] = []
    for index, (line, row) in enumerate(rows):
        where = f"dataset.path={str(path)!r}, line {line}"
        if len(row) != len(columns):
            raise ValueError(f"{where}: {len(row)} values, the header has {len(columns)} columns.")
        cells = row[:at] + row[at + 1 :]
        bad = next((i for i, cell in enumerate(cells) if not _is_finite_number(cell)), None)
        if bad is not None:
            raise ValueError(
                f"{where}, column {feature_names[bad]!r}: {cells[bad]!r} is not a finite number. "
                f"Allowed: numbers in every column but the label column {label!r}."
            )
        features[index] = [float(cell) for cell in cells]
        value = row[at].strip()
        if not value or (_is_number(value) and not _is_finite_number(value)):
            raise ValueError(
                f"{where}, label column {label!r}: {row[at]!r}. Allowed: a number or a class name."
            )
        labels.append(value)
    if all(_is_number(value) for value in labels):
        return features, np.array([float(value) for value in labels])
    return features, np.array(labels)  # class names, sorted into indices by the caller


def _is_finite_number(text: str) -> bool:
    return _is_number(text) and math.isfinite(float(text))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class ClassificationData(pl.LightningDataModule):
    """Fixed-seed train/val/test split; features standardised with the training split's statistics."""

    def __init__(self, dataset: DictConfig, module: DictConfig) -> None:
        super().__init__()
        self.dataset_config = dataset
        self.batch_size = int(module.batch_size)
        self.num_workers = int(module.num_workers)
        self.splits: dict[str, TensorDataset] = {}
        self.input_shape: tuple[int, ...] = ()
        self.num_classes = 0

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        arrays = load_arrays(self.dataset_config)
        order = np.random.default_rng(int(self.dataset_config.split_seed)).permutation(
            len(arrays.labels)
        )
        n_val = int(len(order) * float(self.dataset_config.val_fraction))
        n_test = int(len(order) * float(self.dataset_config.test_fraction))
        parts = {
            "val": order[:n_val],
            "test": order[n_val : n_val + n_test],
            "train": order[n_val + n_test :],
        }
        train = arrays.features[parts["train"]]
        mean, std = train.mean(axis=0), train.std(axis=0)
        std[std < 1e-3] = 1.0  # a (nearly) constant feature: centre it, do not blow it up
        for name, index in parts.items():
            features = torch.from_numpy((arrays.features[index] - mean) / std)
            self.splits[name] = TensorDataset(features, torch.from_numpy(arrays.labels[index]))
        self.input_shape = tuple(arrays.features.shape[1:])
        self.num_classes = int(arrays.labels.max()) + 1

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        extra: dict[str, Any] = {"persistent_workers": True} if self.num_workers > 0 else {}
        return DataLoader(
            self.splits[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            **extra,
        )
