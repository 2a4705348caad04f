"""Partitions, the task's reference mixture and test set, and the adapter to the lower level."""

from __future__ import annotations

import numpy as np
import pytest

from tbcim.errors import ConfigError
from tbcim.fl.data import Dataset
from tbcim.fl.partitions import (
    Partition,
    dirichlet_partition,
    draw_reference,
    iid_partition,
    largest_remainder,
    make_partition,
    server_layout,
    server_table,
    task_test_indices,
)
from tbcim.lower.costs import EDArrays, make_ed_arrays
from tbcim.lower.emd import SelectionRule, emd_from_counts, select
from tbcim.lower.scenario import UNIFORM_RANGES, ScenarioConfig
from tbcim.lower.stackelberg import solve_leader


def emd_of(p: Partition, reference: np.ndarray) -> np.ndarray:
    return emd_from_counts(p.label_counts, reference)


def lower_inputs(
    p: Partition, per_server: list[int], reference: np.ndarray, rng: np.random.Generator
) -> EDArrays:
    """The composition docs/fl.md describes: θ from the table's counts, costs from the scenario."""
    table = server_table(p, per_server)
    theta = np.zeros(table.present.shape)
    theta[table.present] = emd_from_counts(table.label_counts[table.present], reference)
    scenario = ScenarioConfig()
    costs = {
        name: rng.uniform(
            getattr(scenario, name)[0], getattr(scenario, name)[1], table.present.shape
        )
        for name in UNIFORM_RANGES
        if name != "data_size"
    }
    return make_ed_arrays(table.present, data_size=table.data_size, theta=theta, **costs)


def _check_exact_cover(p: Partition, labels: np.ndarray) -> None:
    """Every sample goes to exactly one ED, and the counts are the histogram of its indices."""
    allidx = np.concatenate(p.indices)
    assert np.array_equal(np.sort(allidx), np.arange(labels.size))
    for idx, row in zip(p.indices, p.label_counts, strict=True):
        assert row.tolist() == [int(np.sum(labels[idx] == c)) for c in range(row.size)]
    assert p.label_counts.sum() == labels.size
    np.testing.assert_array_equal(p.label_counts.sum(axis=0), np.bincount(labels, minlength=10))


@pytest.mark.parametrize(("n_eds", "alpha"), [(5, 0.1), (30, 0.5), (50, 0.5), (12, 100.0)])
def test_dirichlet_partition_covers_the_data_and_respects_min_samples(
    digits: Dataset, n_eds: int, alpha: float
) -> None:
    p = dirichlet_partition(digits.y_train, n_eds, alpha, np.random.default_rng(0), min_samples=10)
    assert p.n_eds == n_eds and p.data_sizes.min() >= 10
    _check_exact_cover(p, digits.y_train)
    np.testing.assert_allclose(p.label_distributions().sum(axis=1), 1.0)


def test_dirichlet_is_reproducible_with_its_seed(digits: Dataset) -> None:
    def draw(seed: int) -> Partition:
        return dirichlet_partition(digits.y_train, 20, 0.5, np.random.default_rng(seed), 5)

    a, b, c = draw(7), draw(7), draw(8)
    assert all(np.array_equal(x, y) for x, y in zip(a.indices, b.indices, strict=True))
    assert not np.array_equal(a.label_counts, c.label_counts)


def test_large_alpha_approaches_iid_and_small_alpha_is_skewed(digits: Dataset) -> None:
    overall = np.bincount(digits.y_train) / digits.y_train.size
    rng = np.random.default_rng(0)
    iidish = emd_of(dirichlet_partition(digits.y_train, 10, 1e4, rng, 10), overall)
    iid = emd_of(iid_partition(digits.y_train, 10, rng), overall)
    skewed = emd_of(dirichlet_partition(digits.y_train, 10, 0.1, rng, 10), overall)
    assert iidish.max() < 0.1 and iid.max() < 0.5  # shards of ~120: sampling noise
    assert skewed.mean() > 1.0


def test_iid_partition_has_near_equal_shards(digits: Dataset) -> None:
    p = iid_partition(digits.y_train, 7, np.random.default_rng(3))
    assert p.data_sizes.max() - p.data_sizes.min() <= 1
    _check_exact_cover(p, digits.y_train)


def test_make_partition_by_name(digits: Dataset) -> None:
    rng = np.random.default_rng(0)
    assert make_partition("iid", digits.y_train, 4, rng).n_eds == 4
    assert make_partition("dirichlet", digits.y_train, 4, rng, 0.3, 5).data_sizes.min() >= 5
    with pytest.raises(ConfigError, match=r"unknown partition 'pathological'; known"):
        make_partition("pathological", digits.y_train, 4, rng)


@pytest.mark.parametrize("alpha", [0.0, -1.0, float("nan"), float("inf")])
def test_non_positive_alpha_is_rejected(alpha: float) -> None:
    with pytest.raises(ConfigError, match=r"fl.alpha"):
        dirichlet_partition(np.arange(20) % 2, 2, alpha, np.random.default_rng(0))


def test_more_eds_than_samples_is_rejected() -> None:
    labels = np.array([0, 1, 1, 0, 1])
    with pytest.raises(ConfigError, match=r"6 EDs but only 5 training samples"):
        iid_partition(labels, 6, np.random.default_rng(0))
    with pytest.raises(ConfigError, match=r"fl.n_eds"):
        dirichlet_partition(labels, 6, 1.0, np.random.default_rng(0))
    with pytest.raises(ConfigError, match=r"2 EDs × 3 samples exceeds the 5"):
        dirichlet_partition(labels, 2, 1.0, np.random.default_rng(0), min_samples=3)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n_eds": 0}, "fl.n_eds"),
        ({"n_eds": True}, "fl.n_eds"),
        ({"min_samples": 0}, "fl.min_samples"),
        ({"min_samples": 2.5}, "fl.min_samples"),
    ],
)
def test_bad_ed_counts_are_named(kwargs: dict, field: str) -> None:
    args = {"n_eds": 2, "min_samples": 1} | kwargs
    with pytest.raises(ConfigError, match=field):
        dirichlet_partition(np.arange(20) % 2, alpha=1.0, rng=np.random.default_rng(0), **args)


def test_unreachable_min_samples_gives_up_with_a_named_error(digits: Dataset) -> None:
    with pytest.raises(ConfigError, match=r"lower fl.min_samples or raise fl.alpha"):
        dirichlet_partition(
            digits.y_train, 100, 0.01, np.random.default_rng(0), min_samples=12, max_tries=5
        )


@pytest.mark.parametrize(
    "labels", [np.array([], dtype=int), np.array([0.5, 1.0]), np.array([[0, 1]]), np.array([-1, 0])]
)
def test_bad_labels_are_rejected(labels: np.ndarray) -> None:
    with pytest.raises(ConfigError, match=r"labels"):
        iid_partition(labels, 1, np.random.default_rng(0))


def test_labels_beyond_n_classes_are_rejected() -> None:
    with pytest.raises(ConfigError, match=r"hold class 3 but n_classes is 3"):
        iid_partition(np.array([0, 3]), 1, np.random.default_rng(0), n_classes=3)


def test_reference_is_a_mixture_with_a_uniform_floor() -> None:
    rng = np.random.default_rng(0)
    refs = np.stack([draw_reference(rng, 10, 2.0, 0.4) for _ in range(200)])
    np.testing.assert_allclose(refs.sum(axis=1), 1.0)
    assert refs.min() >= 0.04 - 1e-12  # w/L
    np.testing.assert_allclose(refs.mean(axis=0), 0.1, atol=0.01)  # E[Dir] is uniform
    # w = 1 is uniform; w = 0 is a pure Dirichlet draw (same stream, same draw)
    np.testing.assert_allclose(draw_reference(np.random.default_rng(1), 4, 2.0, 1.0), 0.25)
    pure = draw_reference(np.random.default_rng(2), 4, 2.0, 0.0)
    np.testing.assert_allclose(pure, np.random.default_rng(2).dirichlet(np.full(4, 2.0)))


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((10, 0.0, 0.5), "fl.task_concentration"),
        ((10, 2.0, 1.5), "fl.reference_uniform_weight"),
        ((0, 2.0, 0.5), "n_classes"),
    ],
)
def test_bad_reference_parameters_are_named(args: tuple, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        draw_reference(np.random.default_rng(0), *args)


def test_largest_remainder_matches_brute_force() -> None:
    rng = np.random.default_rng(5)
    for _ in range(50):
        ref = rng.dirichlet(np.ones(4))
        total = int(rng.integers(1, 12))
        counts = largest_remainder(ref, total)
        assert counts.sum() == total
        # brute force: the compositions of total into 4 parts closest in max-abs error
        best = min(
            max(
                abs(a - total * ref[0]),
                abs(b - total * ref[1]),
                abs(c - total * ref[2]),
                abs(total - a - b - c - total * ref[3]),
            )
            for a in range(total + 1)
            for b in range(total + 1 - a)
            for c in range(total + 1 - a - b)
        )
        assert np.max(np.abs(counts - total * ref)) <= best + 1e-9 or best < 1


def test_task_test_set_follows_the_reference(digits: Dataset) -> None:
    ref = draw_reference(np.random.default_rng(3), 10, 1.0, 0.3)
    idx = task_test_indices(digits.y_test, ref, np.random.default_rng(4))
    assert np.unique(idx).size == idx.size and idx.max() < digits.y_test.size
    counts = np.bincount(digits.y_test[idx], minlength=10)
    assert np.all(np.abs(counts - idx.size * ref) < 1.0)
    # maximal: one more sample would need a class that is exhausted
    available = np.bincount(digits.y_test, minlength=10)
    assert np.any(largest_remainder(ref, idx.size + 1) > available)
    again = task_test_indices(digits.y_test, ref, np.random.default_rng(4))
    np.testing.assert_array_equal(idx, again)


def test_task_test_set_errors() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match=r"no sample of a class"):
        task_test_indices(np.array([0, 0, 1]), np.array([0.2, 0.3, 0.5]), rng, n_classes=3)
    with pytest.raises(ConfigError, match=r"sum to one"):
        task_test_indices(np.array([0, 1]), np.array([0.2, 0.3]), rng)
    with pytest.raises(ConfigError, match=r"2 non-negative"):
        task_test_indices(np.array([0, 1]), np.array([1.0]), rng)


def test_label_counts_are_exactly_what_the_lower_level_reads(digits: Dataset) -> None:
    """θ fed to Algorithm 2 is (26) computed by hand on each ED's labels; d_i is its size."""
    rng = np.random.default_rng(0)
    p = dirichlet_partition(digits.y_train, 12, 0.5, rng, min_samples=10)
    ref = draw_reference(rng, 10)
    theta_by_hand = np.array(
        [
            np.abs(np.bincount(digits.y_train[idx], minlength=10) / idx.size - ref).sum()
            for idx in p.indices
        ]
    )
    np.testing.assert_allclose(emd_of(p, ref), theta_by_hand, rtol=1e-12)
    per_server = [3, 5, 4]
    table = server_table(p, per_server)
    layout = server_layout(per_server)
    np.testing.assert_array_equal(table.layout, layout)
    assert table.present.shape == (3, 5) and table.present.sum() == 12
    for s, row in enumerate(layout):
        for n, ed in enumerate(row):
            if ed < 0:
                assert not table.present[s, n] and table.data_size[s, n] == 0
                assert not table.label_counts[s, n].any()
                continue
            assert table.data_size[s, n] == p.indices[ed].size
            np.testing.assert_array_equal(
                table.label_counts[s, n], np.bincount(digits.y_train[p.indices[ed]], minlength=10)
            )
    # The lower level runs on it unchanged: θ (26), selection (Algorithm 2), Stackelberg pricing.
    eds = lower_inputs(p, per_server, ref, np.random.default_rng(1))
    np.testing.assert_allclose(eds.theta[table.present], theta_by_hand, rtol=1e-12)
    keep = select(eds.theta, eds.present, SelectionRule())
    assert keep.any(axis=1).all()
    solution = solve_leader(eds, keep, ScenarioConfig().market, ScenarioConfig().quality)
    assert solution.workers.shape == (3, 5)
    assert not np.any(solution.workers & ~keep)  # workers come from the selected EDs


def test_server_layout_and_its_errors(digits: Dataset) -> None:
    np.testing.assert_array_equal(server_layout([2, 1]), [[0, 1], [2, -1]])
    with pytest.raises(ConfigError, match=r"at least one ED"):
        server_layout([2, 0])
    with pytest.raises(ConfigError, match=r"at least one ED"):
        server_layout([])
    p = iid_partition(digits.y_train, 4, np.random.default_rng(0))
    with pytest.raises(ConfigError, match=r"places 3 EDs but the partition has 4"):
        server_table(p, [2, 1])


def test_partition_rejects_mismatched_rows() -> None:
    with pytest.raises(ConfigError, match=r"one label-count row per ED"):
        Partition(indices=(np.arange(2),), label_counts=np.zeros((2, 3), dtype=np.int64))
