"""EMD (26) and Algorithm 2's selection."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tbcim.errors import ConfigError
from tbcim.lower.emd import SelectionRule, emd, emd_from_counts, select


def _distribution(n: int) -> st.SearchStrategy[np.ndarray]:
    return (
        st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n)
        .filter(sum)
        .map(lambda w: np.asarray(w) / sum(w))
    )


def test_emd_is_zero_for_identical_and_two_for_disjoint_distributions() -> None:
    p = np.array([0.2, 0.3, 0.5, 0.0])
    assert emd(p, p) == 0.0
    assert emd([0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.25, 0.75]) == pytest.approx(2.0)


def test_emd_matches_a_hand_computed_value_and_counts_agree() -> None:
    ref = np.array([0.25, 0.25, 0.5])
    assert emd([0.5, 0.25, 0.25], ref) == pytest.approx(0.25 + 0.0 + 0.25)
    assert emd_from_counts([20, 10, 10], ref) == pytest.approx(0.5)


@settings(max_examples=50, deadline=None)
@given(p=_distribution(5), q=_distribution(5), r=_distribution(5))
def test_emd_is_a_metric_bounded_by_two(p, q, r) -> None:
    assert 0.0 <= emd(p, q) <= 2.0 + 1e-12
    assert emd(p, q) == pytest.approx(emd(q, p))
    assert emd(p, r) <= emd(p, q) + emd(q, r) + 1e-12


def test_emd_vectorises_over_eds_and_per_es_references() -> None:
    dists = np.array([[[1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [0.25, 0.75]]])
    refs = np.array([[1.0, 0.0], [0.0, 1.0]])[:, None, :]
    assert np.allclose(emd(dists, refs), [[0.0, 1.0], [0.0, 0.5]])


@pytest.mark.parametrize(
    ("dist", "ref", "field", "message"),
    [
        ([0.5, 0.4], [0.5, 0.5], "label_distribution", "sum to one"),
        ([0.5, 0.5], [0.7, 0.7], "reference", "sum to one"),
        ([0.5, 0.5], [0.2, 0.3, 0.5], "reference", "3 classes"),
        ([1.5, -0.5], [0.5, 0.5], "label_distribution", "non-negative"),
        ([], [], "reference", "at least one class"),
    ],
)
def test_bad_distributions_name_the_field(dist, ref, field, message) -> None:
    with pytest.raises(ConfigError, match=field) as err:
        emd(dist, ref)
    assert message in str(err.value)


def test_emd_of_an_ed_with_no_data_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"label_counts.*no data"):
        emd_from_counts([[3, 1], [0, 0]], [0.5, 0.5])
    with pytest.raises(ConfigError, match="label_counts"):
        emd_from_counts([3, -1], [0.5, 0.5])


def test_selection_keeps_eds_at_or_below_the_mean_emd() -> None:
    theta = np.array([0.1, 0.4, 0.3, 0.8])  # mean 0.4
    assert select(theta).tolist() == [True, True, True, False]
    printed = select(theta, rule=SelectionRule("paper-printed"))
    assert printed.tolist() == [False, True, False, True]  # the typo keeps the worst EDs


def test_selection_rules_and_padding() -> None:
    theta = np.array([[0.1, 0.2, 0.9, 5.0], [0.6, 0.6, 0.6, 0.0]])
    present = np.array([[True, True, True, False], [True, True, True, False]])
    assert select(theta, present).tolist() == [
        [True, True, False, False],
        [True, True, True, False],
    ]
    median = select(theta, present, SelectionRule("median"))
    assert median.tolist() == [[True, True, False, False], [True, True, True, False]]
    fixed = select(theta, present, SelectionRule("fixed", threshold=0.15))
    assert fixed.tolist() == [[True, False, False, False], [False, False, False, False]]
    assert select(theta, present, SelectionRule("all")).tolist() == present.tolist()
    loose = select(theta, present, SelectionRule("mean", scale=2.0))
    assert loose[0].tolist() == [True, True, False, False]  # 0.9 > 2 × 0.4 = 0.8


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.0, 2.0), min_size=1, max_size=12))
def test_mean_rule_always_keeps_the_best_ed(theta) -> None:
    keep = select(np.asarray(theta))
    assert keep[int(np.argmin(theta))]
    assert np.all(np.asarray(theta)[keep] <= np.mean(theta) + 1e-9)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"rule": "best"}, "selection.rule"),
        ({"scale": 0.0}, "selection.scale"),
        ({"threshold": -1.0}, "selection.threshold"),
    ],
)
def test_bad_selection_rule_names_the_field(kwargs, field) -> None:
    with pytest.raises(ConfigError, match=field):
        SelectionRule(**kwargs)


def test_selection_needs_candidates() -> None:
    with pytest.raises(ConfigError, match="eds"):
        select(np.array([[0.1, 0.2]]), np.array([[False, False]]))
    with pytest.raises(ConfigError, match="present"):
        select(np.array([[0.1, 0.2]]), np.array([[True]]))
