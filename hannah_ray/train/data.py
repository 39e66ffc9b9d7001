"""Datasets of the training app: scikit-learn's digits (shipped inside scikit-learn, no download)
or the user's own ``.npz`` / ``.csv`` file; split train/val/test with a fixed seed."""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

from .checks import smallest_fraction

log = logging.getLogger("hannah_ray.train")


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
    from hydra.utils import to_absolute_path

    # Relative to the folder the command ran in, also under hydra.job.chdir=true.
    path = Path(to_absolute_path(str(Path(str(dataset.path)).expanduser())))
    if not path.is_file():
        raise FileNotFoundError(f"dataset.path={str(dataset.path)!r}: no such file.")
    if path.suffix.lower() == ".npz":
        features, labels = read_npz(path)
    elif path.suffix.lower() == ".csv":
        features, labels = read_csv(path, str(dataset.label_column))
    else:
        raise ValueError(f"dataset.path={str(path)!r}: allowed: an .npz or .csv file.")
    labels = class_ids(labels, f"dataset.path={str(path)!r}")
    if dataset.get("image_shape"):
        features = reshape_samples(features, list(dataset.image_shape))
    _warn_if_channels_last(features, path)
    return Arrays(features, labels)


def _warn_if_channels_last(features: np.ndarray, path: Path) -> None:
    """Images as numpy, PIL and Keras store them, (height, width, channels), would train as
    height channels of width x channels images."""
    if features.ndim == 4 and features.shape[3] in (1, 3, 4) and features.shape[1] not in (1, 3, 4):
        log.warning(
            "dataset.path=%r: x has shape %s, which looks like images stored channels last; the "
            "models take (samples, channels, height, width): save x.transpose(0, 3, 1, 2).",
            str(path),
            features.shape,
        )


def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Arrays ``x`` (one row per sample, finite numbers) and ``y`` (one label per sample)."""
    where = f"dataset.path={str(path)!r}"
    with np.load(path) as stored:  # no pickles: a data file runs no code
        missing = {"x", "y"} - set(stored.files)
        if missing:
            raise ValueError(
                f"{where}: an .npz file needs arrays 'x' and 'y'; it has {sorted(stored.files)}."
            )
        try:
            features, labels = stored["x"], stored["y"]
        except ValueError as error:  # an object array, e.g. a pandas column of class names
            raise ValueError(
                f"{where}: {error}. Allowed: numeric x, and y of numbers or strings; save class "
                "names from pandas as y=column.to_numpy(dtype=str)."
            ) from None
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(
            f"{where}: y has shape {labels.shape}. Allowed: one class id or name per sample, "
            "shape (samples,) or (samples, 1); for one-hot labels save y.argmax(axis=1)."
        )
    if features.ndim == 0 or len(features) != len(labels):
        raise ValueError(
            f"{where}: x has shape {features.shape} but y has {len(labels)} labels. Allowed: "
            "one row of x per label (len(x) == len(y))."
        )
    if features.dtype == np.bool_:
        features = features.astype(np.float32)
    if not np.issubdtype(features.dtype, np.number) or np.issubdtype(
        features.dtype, np.complexfloating
    ):
        raise ValueError(f"{where}: x holds {features.dtype} values. Allowed: real numbers.")
    features = features.astype(np.float32)
    bad = np.argwhere(~np.isfinite(features))
    if len(bad):
        raise ValueError(
            f"{where}: x holds {len(bad)} non-finite value(s) (NaN or inf), the first at "
            f"x[{', '.join(map(str, bad[0]))}]. Allowed: finite numbers only."
        )
    return (features[:, None] if features.ndim == 1 else features), labels


def class_ids(labels: np.ndarray, where: str) -> np.ndarray:
    """Labels (integer class ids or class names) as indices 0..n_classes-1, in sorted order."""
    if len(labels) == 0:
        raise ValueError(f"{where}: no samples. Allowed: a file with one sample per row.")
    if labels.dtype.kind == "f":
        fractional = labels[~np.isfinite(labels) | (labels != np.round(labels))]
        if len(fractional):
            raise ValueError(
                f"{where}: the labels hold non-integer numbers (e.g. {float(fractional[0])}). Allowed: "
                "integer class ids or class names (this app classifies; it does no regression)."
            )
    elif labels.dtype.kind not in "iubUS":
        raise ValueError(
            f"{where}: labels of type {labels.dtype}. Allowed: integer class ids or class names."
        )
    _, indices = np.unique(labels, return_inverse=True)
    return indices.reshape(-1).astype(np.int64)


def reshape_samples(features: np.ndarray, image_shape: Sequence[int]) -> np.ndarray:
    """Each sample reshaped to ``dataset.image_shape``; an error naming it when the sizes differ."""
    sample_size = math.prod(features.shape[1:])
    if math.prod(image_shape) != sample_size or any(int(n) < 1 for n in image_shape):
        raise ValueError(
            f"dataset.image_shape={list(image_shape)} holds {math.prod(image_shape)} values, but "
            f"each sample has shape {list(features.shape[1:])} ({sample_size} values). Allowed: "
            f"positive sizes whose product is {sample_size}, e.g. [1, {sample_size}], or null."
        )
    return features.reshape(len(features), *image_shape)


def read_csv(path: Path, label: str) -> tuple[np.ndarray, np.ndarray]:
    """Numeric feature columns and a label column that may hold numbers or text (class names).

    A first column without a name (the row index ``pandas.DataFrame.to_csv`` writes by default) is
    dropped: it is no feature, and in a file sorted by class it would give the label away.
    """
    where = f"dataset.path={str(path)!r}"
    with open(path, newline="", encoding="utf-8-sig") as table:  # -sig: a BOM is no column name
        reader = csv.reader(table)
        columns = [name.strip() for name in next(reader, [])]
        rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    if label not in columns:
        raise ValueError(
            f"dataset.label_column={label!r} is not a column of {where}; columns: {columns}."
        )
    if not rows:
        raise ValueError(
            f"{where}: a header and no data rows. Allowed: one row per sample below the header."
        )
    skip = 1 if columns[0] == "" and label != "" else 0
    if skip:
        log.info("%s: dropping the first column, which has no name (a row index).", where)
    at = columns.index(label)
    feature_names = columns[skip:at] + columns[at + 1 :]
    features = np.empty((len(rows), len(feature_names)), dtype=np.float32)
    labels: list[str] = []
    for index, (line, row) in enumerate(rows):
        here = f"{where}, line {line}"
        if len(row) != len(columns):
            raise ValueError(f"{here}: {len(row)} values, the header has {len(columns)} columns.")
        cells = row[skip:at] + row[at + 1 :]
        bad = next((i for i, cell in enumerate(cells) if not _is_feature(cell)), None)
        if bad is not None:
            raise ValueError(
                f"{here}, column {feature_names[bad]!r}: {cells[bad]!r} is not a finite number "
                f"of the features' float32 (|x| <= {_FLOAT32_MAX:.4g}). Allowed: such numbers in "
                f"every column but the label column {label!r}."
            )
        features[index] = [float(cell) for cell in cells]
        value = row[at].strip()
        if not value or (_is_number(value) and not _is_finite_number(value)):
            raise ValueError(
                f"{here}, label column {label!r}: {row[at]!r}. Allowed: a number or a class name."
            )
        labels.append(value)
    if all(_is_number(value) for value in labels):
        return features, np.array([float(value) for value in labels])
    return features, np.array(labels)  # class names, sorted into indices by the caller


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _is_feature(text: str) -> bool:
    """A number that stays finite as the features' float32 (1e39 would become inf)."""
    return _is_finite_number(text) and abs(float(text)) <= _FLOAT32_MAX


def _is_finite_number(text: str) -> bool:
    return _is_number(text) and math.isfinite(float(text))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_fractions(val_fraction: Any, test_fraction: Any) -> tuple[float, float]:
    """``dataset.val_fraction`` and ``dataset.test_fraction`` as numbers, checked against the rules
    0 < val_fraction, 0 <= test_fraction (0: no test run), val_fraction + test_fraction < 1."""
    val = _fraction("dataset.val_fraction", val_fraction)
    test = _fraction("dataset.test_fraction", test_fraction)
    if not 0 < val < 1:
        raise ValueError(f"dataset.val_fraction={val_fraction!r}: allowed: 0 < val_fraction < 1.")
    if not 0 <= test < 1:
        raise ValueError(
            f"dataset.test_fraction={test_fraction!r}: allowed: 0 <= test_fraction < 1 "
            "(0: no test run)."
        )
    if val + test >= 1:
        raise ValueError(
            f"dataset.val_fraction={val_fraction!r} + dataset.test_fraction={test_fraction!r} "
            f"= {val + test:g} leaves no training data. Allowed: val_fraction + test_fraction < 1."
        )
    return val, test


def split_sizes(samples: int, val_fraction: Any, test_fraction: Any) -> tuple[int, int]:
    """The validation and test split sizes of ``samples`` (the rest trains): at least one sample
    each for validation and training, and for testing unless ``test_fraction`` is 0."""
    val, test = check_fractions(val_fraction, test_fraction)
    n_val, n_test = int(samples * val), int(samples * test)
    smallest = smallest_fraction(samples) if samples else 1
    if n_val == 0:
        raise ValueError(
            f"dataset.val_fraction={val_fraction!r} of {samples} samples is no sample. "
            f"Allowed: at least {smallest} (one sample)."
        )
    if n_test == 0 and test > 0:
        raise ValueError(
            f"dataset.test_fraction={test_fraction!r} of {samples} samples is no sample. "
            f"Allowed: at least {smallest} (one sample), or 0 for no test run."
        )
    if samples - n_val - n_test < 1:
        raise ValueError(
            f"dataset.val_fraction={val_fraction!r} and dataset.test_fraction={test_fraction!r} "
            f"leave none of {samples} samples to train on. Allowed: smaller fractions."
        )
    return n_val, n_test


def _fraction(key: str, given: Any) -> float:
    try:
        return float(given)
    except (TypeError, ValueError):
        raise ValueError(f"{key}={given!r}: allowed: a number between 0 and 1.") from None


def standardise(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std of the training split; a constant feature (std exactly 0) keeps
    scale 1: it is centred, not blown up. Computed in float64, where a constant column's std is 0."""
    wide = train.astype(np.float64)
    mean, std = wide.mean(axis=0), wide.std(axis=0)
    std[std == 0] = 1.0
    return mean, std


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
        self._shuffle: torch.Generator | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        config = self.dataset_config
        check_fractions(config.val_fraction, config.test_fraction)  # before loading a file
        arrays = load_arrays(config)
        order = np.random.default_rng(int(config.split_seed)).permutation(len(arrays.labels))
        n_val, n_test = split_sizes(len(order), config.val_fraction, config.test_fraction)
        parts = {
            "val": order[:n_val],
            "test": order[n_val : n_val + n_test],
            "train": order[n_val + n_test :],
        }
        mean, std = standardise(arrays.features[parts["train"]])
        for name, index in parts.items():
            features = ((arrays.features[index] - mean) / std).astype(np.float32)
            self.splits[name] = TensorDataset(
                torch.from_numpy(features), torch.from_numpy(arrays.labels[index])
            )
        self.input_shape = tuple(arrays.features.shape[1:])
        self.num_classes = int(arrays.labels.max()) + 1

    def batches(self, split: str) -> int:
        """Batches in one pass over ``split`` (the last one may be short)."""
        return -(-len(self.splits[split]) // self.batch_size)

    def train_dataloader(self) -> DataLoader:
        # Shuffled from a generator of its own, seeded like the run: the order, and the global RNG
        # the model draws dropout from, do not depend on module.num_workers (a loader with
        # persistent workers draws from its generator once, one without at every epoch).
        if self._shuffle is None:
            self._shuffle = torch.Generator().manual_seed(torch.initial_seed())
        return self._loader("train", RandomSampler(self.splits["train"], generator=self._shuffle))

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def _loader(self, split: str, sampler: RandomSampler | None = None) -> DataLoader:
        extra: dict[str, Any] = {"persistent_workers": True} if self.num_workers > 0 else {}
        return DataLoader(
            self.splits[split],
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            # The workers' seeds: drawn from here, not from the global RNG.
            generator=torch.Generator().manual_seed(torch.initial_seed()),
            **extra,
        )
