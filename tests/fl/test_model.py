"""Models: parameter counts against closed forms, flatten/unflatten, determinism, train/evaluate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tbcim.errors import ConfigError
from tbcim.fl.data import Dataset
from tbcim.fl.model import (
    build_model,
    chain_words,
    configure_torch,
    count_params,
    evaluate,
    get_params,
    set_params,
    to_tensors,
    train,
)


def _linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def _conv3(c_in: int, c_out: int) -> int:
    return 9 * c_in * c_out + c_out


def test_parameter_counts_match_closed_forms_and_fit_on_chain() -> None:
    mlp = count_params(build_model("mlp", (1, 8, 8), 10, 0))
    assert mlp == _linear(64, 32) + _linear(32, 10) == 2410
    cnn = count_params(build_model("cnn", (3, 32, 32), 10, 0))
    expect = (
        _conv3(3, 16) + _conv3(16, 32) + _conv3(32, 32) + _linear(32 * 4 * 4, 64) + _linear(64, 10)
    )
    assert cnn == expect == 47818
    assert mlp <= 10_000 and cnn <= 65_000
    assert chain_words(mlp) == 151 and chain_words(cnn) == 2989 and chain_words(16) == 1


def test_flatten_unflatten_round_trip() -> None:
    model = build_model("mlp", (1, 8, 8), 10, 0)
    vec = np.random.default_rng(0).normal(size=count_params(model)).astype(np.float32)
    set_params(model, vec)
    np.testing.assert_array_equal(get_params(model), vec.astype(np.float64))
    first = next(model.parameters())
    np.testing.assert_array_equal(first.detach().numpy().reshape(-1), vec[: first.numel()])


def test_set_params_errors() -> None:
    model = build_model("mlp", (1, 8, 8), 10, 0)
    with pytest.raises(ConfigError, match=r"expected a vector of 2410 parameters"):
        set_params(model, np.zeros(10))
    bad = np.zeros(2410)
    bad[7] = np.nan
    with pytest.raises(ConfigError, match=r"finite"):
        set_params(model, bad)


def test_initialisation_is_seeded() -> None:
    a = get_params(build_model("cnn", (3, 32, 32), 10, 5))
    b = get_params(build_model("cnn", (3, 32, 32), 10, 5))
    c = get_params(build_model("cnn", (3, 32, 32), 10, 6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_cnn_runs_on_cifar_shaped_input() -> None:
    model = build_model("cnn", (3, 32, 32), 10, 0)
    x, y = to_tensors(np.zeros((4, 3, 32, 32)), np.arange(4))
    ev = evaluate(model, x, y)
    assert ev.n == 4 and np.isfinite(ev.loss)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("resnet", (1, 8, 8), 10), "unknown model 'resnet'; known: \\['cnn', 'mlp'\\]"),
        (("cnn", (1, 8, 9), 10), "divisible by 8"),
        (("cnn", (64,), 10), "divisible by 8"),
        (("mlp", (1, 8, 8), 1), "at least 2"),
    ],
)
def test_build_model_errors(args: tuple, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        name, shape, n_classes = args
        build_model(name, shape, n_classes, seed=0)


def test_train_lowers_the_loss_and_is_deterministic(digits: Dataset) -> None:
    x, y = to_tensors(digits.x_train[:300], digits.y_train[:300])
    results = []
    for _ in range(2):
        model = build_model("mlp", (1, 8, 8), 10, 0)
        before = evaluate(model, x, y)
        res = train(model, x, y, 3, 0.1, 10, torch.Generator().manual_seed(1))
        after = evaluate(model, x, y)
        assert res.steps == 3 * 30 and after.loss < before.loss
        results.append(get_params(model))
    np.testing.assert_array_equal(results[0], results[1])


def test_evaluate_matches_a_numpy_oracle(digits: Dataset) -> None:
    model = build_model("mlp", (1, 8, 8), 10, 3)
    x, y = to_tensors(digits.x_test, digits.y_test)
    ev = evaluate(model, x, y)
    p = get_params(model)
    w1, b1 = p[:2048].reshape(32, 64), p[2048:2080]
    w2, b2 = p[2080:2400].reshape(10, 32), p[2400:]
    h = np.maximum(digits.x_test.reshape(-1, 64) @ w1.T + b1, 0.0)
    logits = h @ w2.T + b2
    logz = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    nll = (logz - logits[np.arange(y.shape[0]), digits.y_test]).mean()
    assert ev.accuracy == pytest.approx(np.mean(logits.argmax(1) == digits.y_test))
    assert ev.loss == pytest.approx(nll, rel=1e-5)


def test_empty_inputs_and_bad_threads_are_errors() -> None:
    model = build_model("mlp", (1, 8, 8), 10, 0)
    x, y = to_tensors(np.zeros((0, 1, 8, 8)), np.zeros(0))
    with pytest.raises(ConfigError, match=r"no samples"):
        evaluate(model, x, y)
    with pytest.raises(ConfigError, match=r"no training samples"):
        train(model, x, y, 1, 0.1, 4, torch.Generator())
    with pytest.raises(ConfigError, match=r"fl.threads"):
        configure_torch(0)


def test_one_sgd_step_matches_a_numpy_backprop_oracle(digits: Dataset) -> None:
    """w ← w − η∇ of the mean cross-entropy, with the gradient derived by hand in numpy."""
    model = build_model("mlp", (1, 8, 8), 10, 2)
    p = get_params(model)
    xs, ys = digits.x_train[:16].reshape(16, 64).astype(np.float64), digits.y_train[:16]
    w1, b1 = p[:2048].reshape(32, 64), p[2048:2080]
    w2, b2 = p[2080:2400].reshape(10, 32), p[2400:]
    pre = xs @ w1.T + b1
    h = np.maximum(pre, 0.0)
    logits = h @ w2.T + b2
    prob = np.exp(logits - logits.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    dlogits = (prob - np.eye(10)[ys]) / 16
    dw2, db2 = dlogits.T @ h, dlogits.sum(0)
    dpre = (dlogits @ w2) * (pre > 0)
    dw1, db1 = dpre.T @ xs, dpre.sum(0)
    grad = np.concatenate([dw1.ravel(), db1, dw2.ravel(), db2])
    x, y = to_tensors(digits.x_train[:16], ys)
    res = train(model, x, y, 1, 0.5, 16, torch.Generator().manual_seed(0))  # one full batch
    assert res.steps == 1
    np.testing.assert_allclose(get_params(model), p - 0.5 * grad, atol=2e-6)
