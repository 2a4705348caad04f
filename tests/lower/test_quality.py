"""Quality (27) and utility (28') against closed forms."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tbcim.errors import ConfigError
from tbcim.lower.quality import QualityParams, alpha, data_utility, data_utility_torch, quality


def test_quality_matches_closed_form_at_paper_constants() -> None:
    p = QualityParams()
    d, theta = 50_000.0, 0.4
    a = math.exp(-((theta / p.a4 + p.a3) ** 2))
    expected = a - p.a1 * math.exp(-((p.a2 * d) ** a))
    empty = math.exp(-(p.a3**2)) - p.a1
    assert quality(d, theta) == pytest.approx(expected, rel=1e-12)
    assert data_utility(d, theta) == pytest.approx(p.a5 * (expected - empty), rel=1e-12)


def test_empty_set_is_worth_nothing_and_utility_is_continuous_at_zero_data() -> None:
    p = QualityParams()
    assert p.empty_quality == pytest.approx(0.113242, abs=1e-6)  # about chance accuracy
    assert data_utility(0.0, 0.0) == pytest.approx(0.0, abs=1e-15)
    assert data_utility(1e-9, 0.0) == pytest.approx(0.0, abs=1e-6)


def test_utility_increases_with_data() -> None:
    u = data_utility(np.array([0.0, 1e3, 1e4, 1e5, 1e6]), 0.3)
    assert np.all(np.diff(u) > 0)


def test_alpha_decreases_with_emd_and_stays_below_one() -> None:
    a = alpha(np.linspace(0, 2, 11), QualityParams(a4=1.0))
    assert np.all(a < 1) and np.all(np.diff(a) < 0)


@given(st.floats(0.0, 1e7), st.floats(0.0, 2.0))
@settings(max_examples=50, deadline=None)
def test_torch_utility_equals_numpy(size: float, theta: float) -> None:
    params = QualityParams(a4=2.0)
    as64 = {"dtype": torch.float64}
    got = data_utility_torch(torch.tensor(size, **as64), torch.tensor(theta, **as64), params)
    assert float(got) == pytest.approx(float(data_utility(size, theta, params)), abs=1e-12)


def test_torch_gradient_is_finite_at_zero_data() -> None:
    size = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    data_utility_torch(size, torch.zeros(3, dtype=torch.float64)).sum().backward()
    assert size.grad is not None and torch.all(torch.isfinite(size.grad))


@pytest.mark.parametrize("field", ["a1", "a2", "a3", "a4", "a5"])
def test_non_positive_constant_names_the_field(field: str) -> None:
    with pytest.raises(ConfigError, match=f"quality.{field}"):
        QualityParams(**{field: 0.0})


def test_negative_data_size_is_rejected() -> None:
    with pytest.raises(ConfigError, match="data_size"):
        quality(-1.0, 0.1)


def test_negative_emd_is_rejected() -> None:
    with pytest.raises(ConfigError, match="theta_bar"):
        quality(1.0, -0.1)
