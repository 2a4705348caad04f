"""Subopt (Algorithm 2): allocation, critical payments, splits, IR and truthfulness."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tbcim.matching.deviations import pair_utility, single_minded, sweep_joint_bid
from tbcim.matching.model import MatchingMarket, SellerRef
from tbcim.matching.opt import opt
from tbcim.matching.scenario import generate
from tbcim.matching.subopt import subopt

from .oracles import best_seller_gain, bisect_sup, plain_greedy, random_market

SEEDS = st.integers(0, 2**32 - 1)
FAST = settings(max_examples=25, deadline=None)


def assert_valid_matching(market: MatchingMarket, triples: np.ndarray) -> None:
    """Each buyer, data-seller and UAV-seller at most once; every triple has R ≥ 0."""
    for axis in range(3):
        assert len(set(triples[:, axis].tolist())) == len(triples)
    prefs = market.preferences
    assert all(prefs[tuple(t)] >= 0 for t in triples.tolist())


@FAST
@given(SEEDS)
def test_allocation_equals_plain_python_greedy(seed: int) -> None:
    market = random_market(seed)
    outcome = subopt(market)
    taken = {tuple(t) for t in outcome.matching.triples.tolist()}
    assert taken == plain_greedy(market.preferences)
    assert_valid_matching(market, outcome.matching.triples)


def test_allocation_matches_oracle_on_a_large_market_with_ties() -> None:
    market = generate(12, 15, 14, np.random.default_rng(3))
    rounded = MatchingMarket(market.valuations.round(0), market.data_bids.round(0), market.uav_bids)
    for mk in (market, rounded):
        taken = {tuple(t) for t in subopt(mk).matching.triples.tolist()}
        assert taken == plain_greedy(mk.preferences)


@FAST
@given(SEEDS)
def test_critical_pair_payment_is_the_largest_winning_joint_bid(seed: int) -> None:
    market = random_market(seed)
    outcome = subopt(market)
    for i, triple in enumerate(map(tuple, outcome.matching.triples.tolist())):

        def wins(bid: float, triple: tuple[int, int, int] = triple) -> bool:
            return triple in plain_greedy(market.with_joint_bid(triple, bid).preferences)

        joint = market.joint_bids[triple]
        sup = bisect_sup(wins, joint, market.valuations[triple[0]] + 1.0)
        assert outcome.pair_payments[i] == pytest.approx(sup, abs=1e-7)


@FAST
@given(SEEDS)
def test_critical_split_pays_each_seller_its_largest_winning_bid(seed: int) -> None:
    market = random_market(seed)
    outcome = subopt(market, split="critical")
    for buyer, m, n in outcome.matching.triples.tolist():
        for seller, own_bid in (
            (SellerRef("data", m), market.data_bids[buyer, m]),
            (SellerRef("uav", n), market.uav_bids[buyer, m, n]),
        ):
            axis = 1 if seller.kind == "data" else 2

            def sells(
                shift: float, seller: SellerRef = seller, axis: int = axis, buyer: int = buyer
            ) -> bool:
                shifted = market.with_seller_shift(seller, buyer, shift)
                return any(
                    t[0] == buyer and t[axis] == seller.index
                    for t in plain_greedy(shifted.preferences)
                )

            sup = bisect_sup(sells, 0.0, market.valuations[buyer] + 1.0)
            paid = (outcome.data_payments if seller.kind == "data" else outcome.uav_payments)[
                seller.index
            ]
            assert paid == pytest.approx(own_bid + sup, abs=1e-7)


@FAST
@given(SEEDS, st.sampled_from(["critical", "paper"]), st.sampled_from(["proportional", "critical"]))
def test_individual_rationality_of_pairs_and_sellers(seed: int, payment: str, split: str) -> None:
    """Theorem 5 and Corollary 3 (IR): every winning pair and every seller has utility ≥ 0."""
    market = random_market(seed)
    outcome = subopt(market, payment=payment, split=split)
    assert np.all(outcome.pair_utilities(market) >= -1e-9)
    for kind, count in (("data", market.shape[1]), ("uav", market.shape[2])):
        for index in range(count):
            assert outcome.seller_utility(SellerRef(kind, index), market) >= -1e-9
    losers_paid = np.delete(outcome.data_payments, outcome.matching.triples[:, 1])
    assert np.all(losers_paid == 0)


@settings(max_examples=15, deadline=None)
@given(SEEDS)
def test_no_single_minded_pair_gains_by_misreporting_its_joint_bid(seed: int) -> None:
    """Theorem 4 with the critical payment, on a joint-bid grid, for a winner and a random pair."""
    rng = np.random.default_rng(seed)
    base = random_market(seed)
    candidates = [tuple(t) for t in subopt(base).matching.triples.tolist()]
    candidates.append(tuple(int(rng.integers(s)) for s in base.shape))
    grid = np.linspace(0.0, 12.0, 25)
    for triple in candidates:
        market = single_minded(base, triple, "pair")
        truthful = pair_utility(subopt(market), market, triple[1], triple[2])
        best = max(r["pair_utility"] for r in sweep_joint_bid(subopt, market, triple, grid))
        assert best <= truthful + 1e-9


def _pair_market(
    joint: dict[tuple[int, int, int], float], valuations: list[float]
) -> MatchingMarket:
    """A market where only the listed triples are feasible, with the given joint bids."""
    L, M, N = (max(t[ax] for t in joint) + 1 for ax in range(3))
    uav = np.full((L, M, N), 100.0)
    for triple, bid in joint.items():
        uav[triple] = bid - 1.0
    return MatchingMarket(np.array(valuations), np.ones((L, M)), uav)


def test_paper_rule_25_rewards_an_underbid() -> None:
    """The paper's (25) lets a losing pair win by underbidding and profit (docs/matching.md)."""
    market = _pair_market({(0, 0, 0): 5.5, (0, 1, 1): 6.0, (1, 0, 1): 5.0}, [10.0, 10.0])
    paper = functools.partial(subopt, payment="paper")
    assert (0, 0, 0) not in {tuple(t) for t in paper(market).matching.triples.tolist()}
    lied = paper(market.with_joint_bid((0, 0, 0), 4.0))
    assert pair_utility(lied, market, 0, 0) == pytest.approx(0.5)  # pays 6 for a cost of 5.5
    assert pair_utility(subopt(market.with_joint_bid((0, 0, 0), 4.0)), market, 0, 0) < 0


def test_paper_rule_25_rewards_an_overbid() -> None:
    """(25) prices a winner by a next pair that is already blocked; overbidding past it pays."""
    market = _pair_market({(1, 1, 2): 3.0, (0, 0, 0): 4.0, (0, 1, 1): 5.0}, [10.0, 10.0])
    paper = functools.partial(subopt, payment="paper")
    assert pair_utility(paper(market), market, 0, 0) == pytest.approx(1.0)
    lied = paper(market.with_joint_bid((0, 0, 0), 7.0))
    assert pair_utility(lied, market, 0, 0) == pytest.approx(6.0)
    assert pair_utility(subopt(market), market, 0, 0) == pytest.approx(6.0)  # critical: 10 − 4


def test_multi_minded_pair_can_gain_under_the_critical_payment() -> None:
    """Greedy + critical value is truthful only for single-minded bidders (LOS 2002): a pair
    that can serve two buyers raises its bid to one buyer and wins the other at a better price."""
    market = _pair_market({(0, 0, 0): 2.0, (1, 0, 0): 4.0}, [10.0, 10.0])
    assert pair_utility(subopt(market), market, 0, 0) == pytest.approx(2.0)
    lied = subopt(market.with_joint_bid((0, 0, 0), 10.0))
    assert lied.matching.pair_of(1) == (0, 0)
    assert pair_utility(lied, market, 0, 0) == pytest.approx(6.0)


def test_proportional_split_rewards_a_unilateral_overbid() -> None:
    """Corollary 3 fails for line 18: a seller that raises its own bid raises its share."""
    market = MatchingMarket(np.array([10.0]), np.array([[2.0]]), np.array([[[2.0]]]))
    seller = SellerRef("data", 0)
    truthful = subopt(market).seller_utility(seller, market)
    lied = subopt(market.with_seller_shift(seller, 0, 3.0)).seller_utility(seller, market)
    assert truthful == pytest.approx(3.0)  # P = 10, share 2/4
    assert lied == pytest.approx(10 * 5 / 7 - 2)  # share 5/7 of the same P
    crit = functools.partial(subopt, split="critical")
    assert crit(market.with_seller_shift(seller, 0, 3.0)).seller_utility(seller, market) == (
        pytest.approx(crit(market).seller_utility(seller, market))
    )


def test_critical_split_can_pay_more_than_the_buyer_values() -> None:
    """Without competition each seller's critical bid is v minus its partner's bid: the two
    together exceed v, so the per-seller truthful split breaks the buyer's IR."""
    market = MatchingMarket(np.array([10.0]), np.array([[2.0]]), np.array([[[2.0]]]))
    outcome = subopt(market, split="critical")
    assert outcome.data_payments[0] == pytest.approx(8.0)
    assert outcome.uav_payments[0] == pytest.approx(8.0)


@settings(max_examples=12, deadline=None)
@given(SEEDS, st.sampled_from(["data", "uav"]))
def test_critical_split_is_truthful_for_a_single_minded_seller(seed: int, kind: str) -> None:
    base = random_market(seed)
    rng = np.random.default_rng(seed)
    triple = tuple(int(rng.integers(s)) for s in base.shape)
    market = single_minded(base, triple, kind)
    crit = functools.partial(subopt, split="critical")
    assert best_seller_gain(crit, market, triple, kind, np.linspace(-5.0, 10.0, 31)) <= 1e-9


def test_unmatched_buyer_is_reported() -> None:
    """A buyer whose every pair has R < 0 stays unmatched and receives nothing."""
    market = MatchingMarket(np.array([10.0, 1.0]), np.full((2, 2), 2.0), np.full((2, 2, 2), 1.0))
    outcome = subopt(market)
    assert outcome.matching.unmatched_buyers == [1]
    assert outcome.matching.pair_of(1) is None
    assert outcome.matching.revenue == pytest.approx(7.0)


def test_a_sellers_shared_bid_moves_its_own_competitor_in_pair_level_payments() -> None:
    """A data-seller's bid to a buyer is in all its pairs with that buyer; when its other pair is
    the critical competitor, raising the bid raises the pair's payment one for one (Subopt and
    pair-level VCG alike). Seller-level VCG prices the seller against markets without it."""
    market = MatchingMarket(np.array([10.0]), np.array([[1.0]]), np.array([[[1.0, 1.5]]]))
    seller = SellerRef("data", 0)
    lied = market.with_seller_shift(seller, 0, 5.0)
    for mechanism in (subopt, opt):
        assert pair_utility(mechanism(market), market, 0, 0) == pytest.approx(0.5)
        assert pair_utility(mechanism(lied), market, 0, 0) == pytest.approx(5.5)
    per_seller = functools.partial(opt, split="vcg_seller")
    truthful = per_seller(market).seller_utility(seller, market)
    assert per_seller(lied).seller_utility(seller, market) == pytest.approx(truthful)
    assert per_seller(market).uav_payments[0] + per_seller(market).data_payments[0] > 10.0
