"""Quality (27)–(28) against closed forms."""

import math

import numpy as np
import pytest

from tbcim.errors import ConfigError
from tbcim.lower.quality import QualityParams, alpha, data_utility, quality


def test_quality_matches_closed_form_at_paper_constants() -> None:
    p = QualityParams()
    d, theta = 50_000.0, 0.4
    a = math.exp(-((theta / p.a4 + p.a3) ** 2))
    expected = a - p.a1 * math.exp(-((p.a2 * d) ** a))
    assert quality(d, theta) == pytest.approx(expected, rel=1e-12)
    assert data_utility(d, theta) == pytest.approx(p.a5 * expected, rel=1e-12)


def test_quality_of_no_data_is_zero_and_increasing_in_data() -> None:
    sizes = np.array([0.0, 1e3, 1e4, 1e5, 1e6])
    q = quality(sizes, 0.3)
    assert q[0] == 0.0
    assert np.all(np.diff(q[1:]) > 0)


def test_alpha_decreases_with_emd_and_stays_below_one() -> None:
    a = alpha(np.linspace(0, 2, 11), QualityParams(a4=1.0))
    assert np.all(a < 1) and np.all(np.diff(a) < 0)


@pytest.mark.parametrize("field", ["a1", "a2", "a3", "a4", "a5"])
def test_non_positive_constant_names_the_field(field: str) -> None:
    with pytest.raises(ConfigError, match=f"quality.{field}"):
        QualityParams(**{field: 0.0})


def test_negative_data_size_is_rejected() -> None:
    with pytest.raises(ConfigError, match="data_size"):
        quality(-1.0, 0.1)
