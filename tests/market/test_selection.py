"""Worker selection on the FL task's real partition (Fig. 11 strategies), against numpy oracles."""

from __future__ import annotations

import numpy as np
import pytest

from tbcim.errors import ConfigError
from tbcim.fl.data import Dataset, load_digits_dataset
from tbcim.fl.partitions import dirichlet_partition, draw_reference, server_table
from tbcim.lower.scenario import ScenarioConfig
from tbcim.lower.stackelberg import reservation_price
from tbcim.market.selection import (
    SelectionConfig,
    eds_per_server,
    lower_level_eds,
    owners_of,
    select_workers,
)
from tbcim.market.training import TrainingConfig

COUNTS = [7, 3, 10, 5, 4]


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_digits_dataset(seed=0)


@pytest.fixture(scope="module")
def setup(digits: Dataset) -> tuple:
    """(the per-ES table, P_a, each ED's training labels)."""
    rng = np.random.default_rng(4)
    partition = dirichlet_partition(digits.y_train, sum(COUNTS), 0.5, rng, 10, 10)
    reference = draw_reference(rng, 10, 2.0, 0.5)
    labels = [digits.y_train[idx] for idx in partition.indices]
    return server_table(partition, COUNTS), reference, labels


def test_theta_is_the_l1_distance_of_each_eds_real_labels_to_the_task(setup: tuple) -> None:
    """θ (26) recomputed from the labels each ED actually holds; d_i = images × data_scale."""
    table, reference, labels = setup
    eds = lower_level_eds(table, reference, np.random.default_rng(0), ScenarioConfig(), 100.0)
    for s, row in enumerate(table.layout):
        for n, ed in enumerate(row):
            if ed < 0:
                assert not eds.present[s, n]
                continue
            counts = np.bincount(labels[ed], minlength=10)
            expected = np.abs(counts / counts.sum() - reference).sum()
            assert eds.theta[s, n] == pytest.approx(expected, abs=1e-12)
            assert eds.data_size[s, n] == 100.0 * counts.sum()


def test_ours_hires_only_eds_no_worse_than_their_servers_mean_emd(setup: tuple) -> None:
    """Algorithm 2 keeps θ ≤ θ̄_s; the Stackelberg price may hire fewer, never others."""
    table, reference, _ = setup
    sel = select_workers(SelectionConfig("ours"), table, reference, np.random.default_rng(1))
    assert sel.workers and sel.price is not None
    theta = sel.eds.theta
    for s, row in enumerate(table.layout):
        real = row >= 0
        mean = theta[s, real].mean()
        for n in np.flatnonzero(real):
            if int(row[n]) in sel.workers:
                assert theta[s, n] <= mean + 1e-12


def test_greedy_hires_the_cheapest_half_of_each_server_by_ask(setup: tuple) -> None:
    table, reference, _ = setup
    rng = np.random.default_rng(2)
    sel = select_workers(SelectionConfig("greedy"), table, reference, rng)
    ask = reservation_price(sel.eds, ScenarioConfig().market)
    expected: set[int] = set()
    for s, row in enumerate(table.layout):
        real = np.flatnonzero(row >= 0)
        k = max(1, round(0.5 * real.size))
        cheapest = sorted(real, key=lambda n: (ask[s, n], n))[:k]  # brute force
        expected |= {int(row[n]) for n in cheapest}
    assert set(sel.workers) == expected


def test_no_im_joins_at_the_rate_and_ideal_takes_everyone(setup: tuple) -> None:
    table, reference, _ = setup
    everyone = tuple(range(sum(COUNTS)))
    ideal = select_workers(SelectionConfig("ideal"), table, reference, np.random.default_rng(0))
    assert ideal.workers == everyone
    shares = [
        len(
            select_workers(
                SelectionConfig("no_im"), table, reference, np.random.default_rng(s)
            ).workers
        )
        / len(everyone)
        for s in range(100)
    ]
    assert abs(np.mean(shares) - 0.5) < 0.03  # 100 × 29 Bernoulli(0.5): sd of the mean ≈ 0.009
    again = select_workers(SelectionConfig("no_im"), table, reference, np.random.default_rng(7))
    same = select_workers(SelectionConfig("no_im"), table, reference, np.random.default_rng(7))
    assert again.workers == same.workers


def test_owners_follow_the_layout_and_candidate_counts_stay_in_range() -> None:
    counts = eds_per_server(np.random.default_rng(0), 200, 3, 10)
    assert min(counts) == 3 and max(counts) == 10
    layout_owners = owners_of(
        server_table(
            dirichlet_partition(np.repeat(np.arange(10), 30), 6, 1.0, np.random.default_rng(0), 5),
            [2, 4],
        )
    )
    assert layout_owners == [0, 0, 1, 1, 1, 1]


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ({"strategy": "best"}, "selection.strategy"),
        ({"join_rate": 0.0}, "selection.join_rate"),
        ({"join_rate": 1.5}, "selection.join_rate"),
        ({"data_scale": -1.0}, "selection.data_scale"),
        ({"min_eds": 5, "max_eds": 3}, "selection.min_eds"),
        ({"strategi": "ours"}, "selection.strategi"),
    ],
)
def test_bad_selection_tables_are_named(table: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        TrainingConfig.from_dict({"selection": table})
    assert err.value.field == field


def test_an_unknown_table_is_named() -> None:
    with pytest.raises(ConfigError) as err:
        TrainingConfig.from_dict({"market": {}})
    assert "market" in str(err.value)
