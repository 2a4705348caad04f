"""Proof-of-stake producer election (section II-A) against its exact distribution."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from chain_node.consensus import ProofOfStake, election_probabilities, revenue_shares
from chain_node.node import ChainNode
from tbcim.errors import ConfigError


def _monte_carlo_probabilities(shares: np.ndarray, draws: int, seed: int) -> np.ndarray:
    """Independent oracle: simulate the paper's rule directly with numpy."""
    rng = np.random.default_rng(seed)
    counts = np.zeros(shares.size)
    done = 0
    while done < draws:
        r = rng.random()
        eligible = np.flatnonzero(shares > r)
        if eligible.size:
            counts[rng.choice(eligible)] += 1
            done += 1
    return counts / draws


@given(st.lists(st.floats(0.05, 10.0), min_size=1, max_size=6))
@settings(max_examples=30, deadline=None)
def test_exact_probabilities_sum_to_one_and_follow_revenue_order(revenues: list[float]) -> None:
    probs = election_probabilities(revenues)
    shares = revenue_shares(revenues)
    assert probs.sum() == pytest.approx(1.0)
    order = np.argsort(shares)
    assert np.all(np.diff(probs[order]) >= -1e-12)  # more revenue, never less likely


def test_exact_probabilities_match_simulation_of_the_rule() -> None:
    shares = revenue_shares([5.0, 3.0, 2.0, 0.5])
    assert election_probabilities(shares) == pytest.approx(
        _monte_carlo_probabilities(shares, 40_000, seed=3), abs=0.01
    )


def test_elected_producers_follow_revenue_shares() -> None:
    revenues = [6.0, 3.0, 1.0]
    pos = ProofOfStake(revenues, seed=11)
    n = 6000
    counts = np.bincount([pos.elect() for _ in range(n)], minlength=3)
    expected = election_probabilities(revenues) * n
    assert stats.chisquare(counts, expected).pvalue > 1e-3
    assert counts[0] > counts[1] > counts[2]


def test_chain_blocks_are_produced_by_revenue_share() -> None:
    node = ChainNode.embedded(n_servers=3, n_devices=0, revenues=[6.0, 3.0, 1.0], seed=5)
    node.advance_blocks(150)
    miners = [node.w3.eth.get_block(n)["miner"] for n in range(1, node.block_number + 1)]
    counts = np.array([miners.count(s) for s in node.servers])
    assert counts.sum() == 150
    expected = election_probabilities([6.0, 3.0, 1.0]) * 150
    assert stats.chisquare(counts, expected).pvalue > 1e-3


def test_same_seed_same_producers() -> None:
    a, b = ProofOfStake([1, 2, 3], seed=9), ProofOfStake([1, 2, 3], seed=9)
    assert [a.elect() for _ in range(50)] == [b.elect() for _ in range(50)]


def test_update_revenues_changes_stakes() -> None:
    pos = ProofOfStake([1.0, 1.0], seed=0)
    pos.update_revenues([0.0, 1.0])
    assert {pos.elect() for _ in range(50)} == {1}
    with pytest.raises(ConfigError, match="expected 2 ESs"):
        pos.update_revenues([1.0, 1.0, 1.0])


@pytest.mark.parametrize(
    ("revenues", "message"),
    [
        ([], "non-empty"),
        ([1.0, -1.0], "non-negative"),
        ([0.0, 0.0], "positive revenue"),
        ([1.0, float("nan")], "finite"),
    ],
)
def test_bad_revenues_are_rejected(revenues: list[float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ProofOfStake(revenues)
