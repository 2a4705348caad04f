"""Clients: reproducible local updates, label poisoning, and the gate before the chain."""

from __future__ import annotations

import numpy as np
import pytest

from tbcim.blockchain.codec import FixedPointCodec
from tbcim.errors import ConfigError
from tbcim.fl.client import (
    Client,
    LocalTraining,
    UpdateError,
    screen_updates,
    validate_update,
)
from tbcim.fl.data import Dataset
from tbcim.fl.model import build_model, get_params, set_params, to_tensors, train
from tbcim.fl.streams import LOCAL_TRAINING, derive_seed, torch_generator

TRAINING = LocalTraining(epochs=2, lr=0.05, batch_size=10)


def _client(digits: Dataset, ed: int, rows: slice, **kw: object) -> Client:
    return Client(
        ed,
        digits.x_train[rows],
        digits.y_train[rows],
        "mlp",
        (1, 8, 8),
        10,
        TRAINING,
        seed=3,
        **kw,  # type: ignore[arg-type]
    )


def test_local_update_is_the_delta_of_seeded_sgd(digits: Dataset) -> None:
    client = _client(digits, 4, slice(0, 40))
    w0 = get_params(build_model("mlp", (1, 8, 8), 10, 99))
    delta = client.local_update(w0, round=2)
    assert delta.shape == (2410,) and delta.dtype == np.float64 and np.any(delta != 0)
    # Oracle: train a separate model by hand with the same stream.
    model = build_model("mlp", (1, 8, 8), 10, 0)
    set_params(model, w0)
    x, y = to_tensors(digits.x_train[:40], digits.y_train[:40])
    train(model, x, y, 2, 0.05, 10, torch_generator(LOCAL_TRAINING, 3, 4, 2))
    np.testing.assert_array_equal(delta, get_params(model) - w0.astype(np.float32))


def test_updates_do_not_depend_on_call_order(digits: Dataset) -> None:
    w0 = get_params(build_model("mlp", (1, 8, 8), 10, 1))
    a, b = _client(digits, 0, slice(0, 30)), _client(digits, 1, slice(30, 60))
    forward = [a.local_update(w0, 0), b.local_update(w0, 0), a.local_update(w0, 1)]
    a2, b2 = _client(digits, 0, slice(0, 30)), _client(digits, 1, slice(30, 60))
    backward = [a2.local_update(w0, 1), b2.local_update(w0, 0), a2.local_update(w0, 0)]
    np.testing.assert_array_equal(forward[0], backward[2])
    np.testing.assert_array_equal(forward[1], backward[1])
    np.testing.assert_array_equal(forward[2], backward[0])
    assert not np.array_equal(forward[0], forward[2])  # a new round, a new batch order


def test_streams_differ_by_every_key() -> None:
    seeds = {derive_seed(1, s, e, r) for s in range(3) for e in range(3) for r in range(3)}
    assert len(seeds) == 27
    with pytest.raises(ValueError, match=r"non-negative"):
        derive_seed(1, -2)


def test_label_flipper_trains_on_flipped_labels_from_its_start_round(digits: Dataset) -> None:
    client = _client(digits, 2, slice(0, 30), attack="label_flip", attack_start_round=2)
    np.testing.assert_array_equal(client.labels_at(1), digits.y_train[:30])
    np.testing.assert_array_equal(client.labels_at(2), 9 - digits.y_train[:30])
    honest = _client(digits, 2, slice(0, 30))
    w0 = get_params(build_model("mlp", (1, 8, 8), 10, 1))
    np.testing.assert_array_equal(client.local_update(w0, 1), honest.local_update(w0, 1))
    assert not np.array_equal(client.local_update(w0, 2), honest.local_update(w0, 2))
    assert honest.data_size == 30 and honest.num_params == 2410


def test_client_data_errors(digits: Dataset) -> None:
    with pytest.raises(ConfigError, match=r"ED 7 data"):
        Client(7, np.zeros((0, 1, 8, 8)), np.zeros(0), "mlp", (1, 8, 8), 10)
    with pytest.raises(ConfigError, match=r"ED 7 data"):
        Client(7, np.zeros((3, 1, 8, 8)), np.zeros(2), "mlp", (1, 8, 8), 10)
    with pytest.raises(ConfigError, match=r"ED 7 data"):
        Client(7, np.zeros((3, 64)), np.zeros(3), "mlp", (1, 8, 8), 10)
    with pytest.raises(ConfigError, match=r"ED 7 data: labels must lie in 0..9"):
        Client(7, np.zeros((2, 1, 8, 8)), np.array([0, 10]), "mlp", (1, 8, 8), 10)
    with pytest.raises(ConfigError, match=r"fl.attack"):
        _client(digits, 0, slice(0, 5), attack="bogus")


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"epochs": 0}, "fl.local_epochs"),
        ({"batch_size": 1.5}, "fl.batch_size"),
        ({"lr": 0.0}, "fl.lr"),
        ({"lr": float("nan")}, "fl.lr"),
    ],
)
def test_local_training_errors(kw: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        LocalTraining(**kw)


CODEC = FixedPointCodec(12)  # range ±8


@pytest.mark.parametrize(
    ("update", "problem"),
    [
        ([0.0] * 4, "must be a numpy array, got list"),
        (np.zeros(4, dtype=np.int64), "float dtype, got int64"),
        (np.zeros(4, dtype=object), "float dtype, got object"),
        (np.zeros(5), r"shape \(4,\), got \(5,\)"),
        (np.zeros((2, 2)), r"got \(2, 2\)"),
        (np.array([0.0, np.nan, 1.0, np.nan]), "2 non-finite value\\(s\\), first nan at 1"),
        (np.array([0.0, 0.0, -np.inf, 1.0]), "first -inf at 2"),
        (np.array([0.0, 9.0, 0.0, 0.0]), "does not fit the codec: value 9.0 at index 1 is outside"),
    ],
)
def test_validate_update_names_the_ed_and_the_problem(update: object, problem: str) -> None:
    with pytest.raises(UpdateError, match=problem) as err:
        validate_update(update, 4, ed=6, codec=CODEC)
    assert err.value.ed == 6 and "update from ED 6" in str(err.value)


def test_validate_update_rounding_at_the_edge_of_the_codec() -> None:
    # The codec rounds to the nearest step: a quarter step past the top rounds back in, and
    # 0.6 of a step past it rounds to 2^15, outside int16.
    validate_update(np.array([CODEC.max_value + CODEC.step / 4, 0.0]), 2, ed=1, codec=CODEC)
    with pytest.raises(UpdateError, match=r"update from ED 1: does not fit the codec"):
        validate_update(np.array([CODEC.max_value + 0.6 * CODEC.step, 0.0]), 2, ed=1, codec=CODEC)
    ok = validate_update(np.array([CODEC.min_value, 1.0], dtype=np.float32), 2, 1, CODEC)
    assert ok.dtype == np.float64


def test_one_bad_ed_does_not_stop_the_others() -> None:
    updates = {0: np.ones(3), 1: np.array([np.nan, 0, 0]), 2: np.zeros(4), 3: -np.ones(3)}
    screened = screen_updates(updates, 3)
    assert sorted(screened.valid) == [0, 3]
    assert sorted(screened.rejected) == [1, 2]
    assert "ED 1" in screened.rejected[1] and "non-finite" in screened.rejected[1]
    assert "ED 2" in screened.rejected[2] and "shape" in screened.rejected[2]
    np.testing.assert_array_equal(screened.valid[3], -np.ones(3))
