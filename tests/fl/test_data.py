"""Datasets: digits splits, and the CIFAR-10 python-format loader on a fixture it writes."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from tbcim.errors import ConfigError
from tbcim.fl.data import (
    CIFAR_FILES,
    CIFAR_TRAIN_FILES,
    Dataset,
    load_cifar10_dataset,
    load_dataset,
    load_digits_dataset,
    read_cifar10,
)

PER_BATCH = 20


def _write_batch(path: Path, data: np.ndarray, labels: list[int]) -> None:
    with path.open("wb") as fh:
        pickle.dump({b"batch_label": b"fixture", b"data": data, b"labels": labels}, fh)


def _fixture(folder: Path, seed: int = 0) -> dict[str, tuple[np.ndarray, list[int]]]:
    """CIFAR-10 in the standard python format: N×3072 uint8 b'data', list b'labels'."""
    rng = np.random.default_rng(seed)
    written = {}
    for name in CIFAR_FILES:
        data = rng.integers(0, 256, size=(PER_BATCH, 3072), dtype=np.uint8)
        labels = [int(v) for v in np.arange(PER_BATCH) % 10]  # every class twice per batch
        _write_batch(folder / name, data, labels)
        written[name] = (data, labels)
    return written


def test_cifar_loader_round_trips_its_fixture(tmp_path: Path) -> None:
    written = _fixture(tmp_path)
    x_train, y_train, x_test, y_test = read_cifar10(tmp_path)
    expect_x = np.concatenate([written[n][0] for n in CIFAR_TRAIN_FILES])
    expect_y = np.concatenate([written[n][1] for n in CIFAR_TRAIN_FILES])
    assert x_train.shape == (5 * PER_BATCH, 3, 32, 32) and x_train.dtype == np.uint8
    np.testing.assert_array_equal(x_train.reshape(-1, 3072), expect_x)
    np.testing.assert_array_equal(y_train, expect_y)
    np.testing.assert_array_equal(x_test.reshape(-1, 3072), written["test_batch"][0])
    np.testing.assert_array_equal(y_test, written["test_batch"][1])
    # Channel-major planes: the first 1024 bytes of a row are the red 32×32 plane.
    np.testing.assert_array_equal(x_train[3, 0].reshape(-1), expect_x[3, :1024])
    np.testing.assert_array_equal(x_train[3, 2].reshape(-1), expect_x[3, 2048:])


def test_cifar_dataset_splits_and_standardises(tmp_path: Path) -> None:
    _fixture(tmp_path)
    ds = load_cifar10_dataset(tmp_path, seed=0, val_fraction=0.2)
    assert isinstance(ds, Dataset) and ds.input_shape == (3, 32, 32) and ds.n_classes == 10
    assert ds.x_train.shape[0] == 80 and ds.x_val.shape[0] == 20 and ds.x_test.shape[0] == 20
    assert ds.x_train.dtype == np.float32
    np.testing.assert_allclose(ds.x_train.mean(axis=(0, 2, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(ds.x_train.std(axis=(0, 2, 3)), 1.0, atol=1e-3)
    assert np.bincount(ds.y_val).tolist() == [2] * 10  # stratified
    again = load_dataset("cifar10", tmp_path, seed=0, val_fraction=0.2)
    np.testing.assert_array_equal(ds.y_train, again.y_train)
    np.testing.assert_array_equal(ds.x_val, again.x_val)


def test_missing_folder_names_it_and_the_expected_files(tmp_path: Path) -> None:
    folder = tmp_path / "nowhere"
    with pytest.raises(ConfigError, match=r"does not exist") as err:
        read_cifar10(folder)
    assert str(folder) in str(err.value) and "data_batch_1" in str(err.value)
    assert "test_batch" in str(err.value) and err.value.field == "fl.data_dir"


def test_missing_batch_is_named(tmp_path: Path) -> None:
    _fixture(tmp_path)
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(ConfigError, match=r"missing data_batch_3 in") as err:
        read_cifar10(tmp_path)
    assert str(tmp_path) in str(err.value)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"not a pickle at all", "corrupt"),
        (pickle.dumps([1, 2, 3]), "b'data' and b'labels'"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}), "uint8"),
        (pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}), "3072"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}), "2 images"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}), "0..9"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": ["a", "b"]}), "integers"),
    ],
)
def test_corrupt_batch_is_named(tmp_path: Path, content: bytes, problem: str) -> None:
    _fixture(tmp_path)
    (tmp_path / "data_batch_2").write_bytes(content)
    with pytest.raises(ConfigError, match=problem) as err:
        read_cifar10(tmp_path)
    assert "data_batch_2" in err.value.field


class _Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pwned",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path: Path, capsys) -> None:
    _fixture(tmp_path)
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": _Exploit(), b"labels": []}))
    with pytest.raises(ConfigError, match=r"refusing to load builtins.print"):
        read_cifar10(tmp_path)
    assert "pwned" not in capsys.readouterr().out


def test_cifar_without_a_folder_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"needs a local folder"):
        load_dataset("cifar10", None)


def test_unknown_dataset_lists_the_known_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown dataset 'mnist'; known: \['cifar10', 'digits'\]"
    ):
        load_dataset("mnist")


def test_digits_splits_are_seeded_disjoint_and_complete(digits: Dataset) -> None:
    n = digits.x_train.shape[0] + digits.x_val.shape[0] + digits.x_test.shape[0]
    assert n == 1797 and digits.input_shape == (1, 8, 8) and digits.n_classes == 10
    assert digits.x_train.min() >= 0.0 and digits.x_train.max() <= 1.0
    rows = np.concatenate([digits.x_train, digits.x_val, digits.x_test]).reshape(n, -1)
    # digits has a few duplicate images, so compare against the raw set, not pairwise
    from sklearn.datasets import load_digits

    raw = np.asarray(load_digits().data, dtype=np.float32) / 16.0
    assert sorted(map(bytes, rows)) == sorted(map(bytes, raw))
    again = load_digits_dataset(seed=0)
    np.testing.assert_array_equal(digits.y_test, again.y_test)
    other = load_digits_dataset(seed=1)
    assert not np.array_equal(digits.y_test, other.y_test)
    share = np.bincount(digits.y_test, minlength=10) / digits.y_test.size
    np.testing.assert_allclose(share, 0.1, atol=0.02)  # stratified, digits is near-balanced


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_bad_split_fractions_are_named(fraction: float) -> None:
    with pytest.raises(ConfigError, match=r"fl.test_fraction"):
        load_digits_dataset(test_fraction=fraction)


def test_a_class_too_small_to_stratify_is_named() -> None:
    from tbcim.fl.data import split_indices

    with pytest.raises(ConfigError, match=r"fl.val_fraction: cannot split 5 samples"):
        split_indices(np.array([0, 0, 0, 0, 1]), 0.4, 0, "fl.val_fraction")


def test_dataset_rejects_mismatched_splits() -> None:
    x = np.zeros((3, 1, 8, 8), dtype=np.float32)
    y = np.zeros(3, dtype=np.int64)
    with pytest.raises(ConfigError, match=r"dataset.val: images \(3, 1, 8, 8\) and labels \(2,\)"):
        Dataset("d", 10, (1, 8, 8), x, y, x, y[:2], x, y)
    with pytest.raises(ConfigError, match=r"dataset.train"):
        Dataset("d", 10, (1, 4, 4), x, y, x, y, x, y)
