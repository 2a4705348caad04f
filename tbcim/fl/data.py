"""Datasets for the BCFL rounds (TBCIM section V-A): scikit-learn's digits and local CIFAR-10.

* ``digits`` (the default): scikit-learn's bundled 8×8 digits, 1,797 images, 10 classes, no
  download. Pixels 0..16 are scaled to [0, 1]; images have shape (1, 8, 8).
* ``cifar10``: read from a user's folder in the standard CIFAR-10 *python* format: files
  ``data_batch_1`` … ``data_batch_5`` and ``test_batch``, each a pickled dict holding ``b'data'``
  (an N×3072 uint8 array, channel-major 32×32 planes) and ``b'labels'`` (N ints in 0..9).
  The files are unpickled with an allow-list (dicts, lists, numpy arrays only), so a tampered
  batch cannot run code. Images are standardised per channel with the training split's mean
  and standard deviation; shape (3, 32, 32).

Splits are seeded and stratified. For digits, train/validation/test are carved from the 1,797
images; for CIFAR-10 the test split is ``test_batch`` and the validation split is carved from
the training batches. The validation split is for choosing hyper-parameters; the test split is
never used for tuning.
"""

from __future__ import annotations

import importlib
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from sklearn.model_selection import train_test_split

from tbcim.errors import ConfigError

CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch"
CIFAR_FILES = (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE)
CIFAR_SHAPE = (3, 32, 32)
CIFAR_CLASSES = 10
DIGITS_SHAPE = (1, 8, 8)
DIGITS_CLASSES = 10

FloatArray = NDArray[np.float32]
LabelArray = NDArray[np.int64]


@dataclass(frozen=True)
class Dataset:
    """Seeded train/validation/test splits of one dataset, as float32 images and int64 labels."""

    name: str
    n_classes: int
    input_shape: tuple[int, ...]
    x_train: FloatArray
    y_train: LabelArray
    x_val: FloatArray
    y_val: LabelArray
    x_test: FloatArray
    y_test: LabelArray

    def __post_init__(self) -> None:
        for split in ("train", "val", "test"):
            x = getattr(self, f"x_{split}")
            y = getattr(self, f"y_{split}")
            if x.shape[0] != y.shape[0] or x.shape[1:] != self.input_shape:
                raise ConfigError(
                    f"dataset.{split}",
                    f"images {x.shape} and labels {y.shape} do not match the input shape "
                    f"{self.input_shape}",
                )


# ------------------------------------------------------------------ splits


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise ConfigError(name, f"must lie strictly between 0 and 1, got {value}")


def split_indices(
    labels: NDArray[np.integer], fraction: float, seed: int, field: str
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Seeded stratified split of ``range(len(labels))``: (kept, held-out ``fraction``)."""
    _check_fraction(field, fraction)
    idx = np.arange(len(labels), dtype=np.int64)
    try:
        kept, held = train_test_split(
            idx, test_size=fraction, random_state=seed, stratify=np.asarray(labels)
        )
    except ValueError as exc:  # too few samples of a class to stratify
        raise ConfigError(field, f"cannot split {len(labels)} samples: {exc}") from exc
    return np.sort(kept), np.sort(held)


# ------------------------------------------------------------------ digits


def load_digits_dataset(
    seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.25
) -> Dataset:
    """scikit-learn's bundled digits (no download), split train/validation/test (seeded)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (np.asarray(bunch.images, dtype=np.float32) / 16.0).reshape(-1, *DIGITS_SHAPE)
    y = np.asarray(bunch.target, dtype=np.int64)
    rest, test = split_indices(y, test_fraction, seed, "fl.test_fraction")
    train_rel, val_rel = split_indices(y[rest], val_fraction, seed + 1, "fl.val_fraction")
    train, val = rest[train_rel], rest[val_rel]
    return Dataset(
        "digits", DIGITS_CLASSES, DIGITS_SHAPE, x[train], y[train], x[val], y[val], x[test], y[test]
    )


# ------------------------------------------------------------------ CIFAR-10


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR batch, refusing every global but numpy's array reconstruction."""

    _ALLOWED: ClassVar[dict[tuple[str, str], tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"): ("numpy", "ndarray"),
        ("numpy", "dtype"): ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str) -> Any:
        target = self._ALLOWED.get((module, name))
        if target is None:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return getattr(importlib.import_module(target[0]), target[1])


def _expected_files_text(folder: Path) -> str:
    return (
        f"expected the CIFAR-10 python batches {', '.join(CIFAR_FILES)} in {folder} "
        "(pickled dicts with b'data' (N×3072 uint8) and b'labels')"
    )


def read_cifar_batch(path: Path) -> tuple[NDArray[np.uint8], LabelArray]:
    """One CIFAR-10 python batch as (N, 3, 32, 32) uint8 images and int64 labels."""
    field = f"cifar10 batch {path}"
    try:
        with path.open("rb") as fh:
            batch = _BatchUnpickler(fh, encoding="bytes").load()
    except FileNotFoundError as exc:
        raise ConfigError(field, f"is missing; {_expected_files_text(path.parent)}") from exc
    except Exception as exc:  # pickle raises many types on corrupt input
        raise ConfigError(field, f"is corrupt or not a CIFAR-10 python batch ({exc})") from exc
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise ConfigError(field, "is not a dict with the keys b'data' and b'labels'")
    data = batch[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise ConfigError(field, "b'data' must be an N×3072 uint8 array")
    if data.shape[1] != int(np.prod(CIFAR_SHAPE)):
        raise ConfigError(field, f"b'data' has {data.shape[1]} columns, expected 3072")
    try:
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(field, "b'labels' must be a list of integers") from exc
    if labels.shape != (data.shape[0],):
        raise ConfigError(
            field, f"has {data.shape[0]} images but b'labels' has shape {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= CIFAR_CLASSES):
        raise ConfigError(field, f"labels must lie in 0..{CIFAR_CLASSES - 1}")
    return data.reshape(-1, *CIFAR_SHAPE), labels


def read_cifar10(
    folder: str | Path,
) -> tuple[NDArray[np.uint8], LabelArray, NDArray[np.uint8], LabelArray]:
    """The raw CIFAR-10 train (batches 1–5) and test batches from a local folder."""
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(
            "fl.data_dir", f"folder {root} does not exist; {_expected_files_text(root)}"
        )
    missing = [name for name in CIFAR_FILES if not (root / name).is_file()]
    if missing:
        raise ConfigError(
            "fl.data_dir", f"missing {', '.join(missing)} in {root}; {_expected_files_text(root)}"
        )
    train = [read_cifar_batch(root / name) for name in CIFAR_TRAIN_FILES]
    x_test, y_test = read_cifar_batch(root / CIFAR_TEST_FILE)
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return x_train, y_train, x_test, y_test


def load_cifar10_dataset(
    folder: str | Path | None, seed: int = 0, val_fraction: float = 0.1
) -> Dataset:
    """CIFAR-10 from ``folder``: validation carved from the training batches, test = test_batch."""
    if folder is None:
        raise ConfigError(
            "fl.data_dir",
            f"cifar10 needs a local folder; {_expected_files_text(Path('<data_dir>'))}",
        )
    x_all, y_all, x_test_raw, y_test = read_cifar10(folder)
    train, val = split_indices(y_all, val_fraction, seed, "fl.val_fraction")
    x_train = x_all[train].astype(np.float32) / 255.0
    mean = x_train.mean(axis=(0, 2, 3), keepdims=True)
    std = x_train.std(axis=(0, 2, 3), keepdims=True) + 1e-6

    def standardise(x: NDArray[np.uint8]) -> FloatArray:
        return ((x.astype(np.float32) / 255.0 - mean) / std).astype(np.float32)

    return Dataset(
        "cifar10",
        CIFAR_CLASSES,
        CIFAR_SHAPE,
        ((x_train - mean) / std).astype(np.float32),
        y_all[train],
        standardise(x_all[val]),
        y_all[val],
        standardise(x_test_raw),
        y_test,
    )


# ------------------------------------------------------------------ registry


def _digits(
    data_dir: str | Path | None, seed: int, val_fraction: float, test_fraction: float
) -> Dataset:
    return load_digits_dataset(seed, val_fraction, test_fraction)


def _cifar10(
    data_dir: str | Path | None, seed: int, val_fraction: float, test_fraction: float
) -> Dataset:
    return load_cifar10_dataset(data_dir, seed, val_fraction)


DATASETS: dict[str, Callable[[str | Path | None, int, float, float], Dataset]] = {
    "digits": _digits,
    "cifar10": _cifar10,
}


def load_dataset(
    name: str = "digits",
    data_dir: str | Path | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.25,
) -> Dataset:
    """Load a dataset by name (``digits`` or ``cifar10``); ``test_fraction`` is digits only."""
    loader = DATASETS.get(name)
    if loader is None:
        raise ConfigError("fl.dataset", f"unknown dataset {name!r}; known: {sorted(DATASETS)}")
    return loader(data_dir, seed, val_fraction, test_fraction)
