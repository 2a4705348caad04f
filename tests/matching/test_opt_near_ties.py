"""Opt at near-ties: welfare and VCG payments equal exhaustive enumeration (issue 11, item 4).

Near-tie markets start from ``generate()`` (section VI-A's valuations and bid levels) and give
every seller pair of a buyer the same joint bid up to a noise of at most 1e-7, so the best
matchings differ by about 1e-8..1e-7, below HiGHS's default absolute MIP gap (1e-6).

Tolerance: 1e-9 absolute. The welfare is ≈ 70–300 here, so that is ≈ 1e-11 of the welfare
scale: far above float summation noise (≈ 1e-13) and ten times below the smallest gaps that
the noise creates (≈ 1e-8), which a tolerance of 1e-9 *relative* (≈ 3e-7) would hide.
"""

from __future__ import annotations

import numpy as np
import pytest

from tbcim.matching.model import IntArray, MatchingMarket
from tbcim.matching.opt import opt
from tbcim.matching.scenario import generate

from .oracles import brute_force_best

TOL = 1e-9
NOISE = 1e-7


def near_tie_market(seed: int, size: tuple[int, int, int], noise: float = NOISE) -> MatchingMarket:
    """``generate()``'s market with each buyer's bids flattened to its first bid, plus noise."""
    rng = np.random.default_rng(seed)
    L, M, N = size
    base = generate(L, M, N, rng)
    data = base.data_bids[:, :1] + rng.uniform(0.0, noise, size=(L, M))
    uav = base.uav_bids[:, :1, :1] + rng.uniform(0.0, noise, size=(L, M, N))
    return MatchingMarket(base.valuations, data, uav)


def brute_force_pair_payments(market: MatchingMarket, triples: IntArray) -> np.ndarray:
    """P = J + F* − F*_{−(m,n)} for each winning triple, every optimum by enumeration."""
    prefs = market.preferences
    best = brute_force_best(prefs)
    payments = []
    for buyer, m, n in triples.tolist():
        without = prefs.copy()
        without[:, m, n] = -1.0  # the pair (m, n) withdrawn; m and n stay for other partners
        payments.append(market.joint_bids[buyer, m, n] + best - brute_force_best(without))
    return np.array(payments)


def assert_opt_matches_enumeration(market: MatchingMarket) -> None:
    outcome = opt(market)
    best = brute_force_best(market.preferences)
    assert outcome.matching.revenue == pytest.approx(best, abs=TOL)
    expected = brute_force_pair_payments(market, outcome.matching.triples)
    np.testing.assert_allclose(outcome.pair_payments, expected, rtol=0.0, atol=TOL)


@pytest.mark.xfail(
    strict=True, raises=AssertionError, reason="HiGHS's absolute MIP gap of 1e-6 (issue 11, item 4)"
)
def test_opt_equals_enumeration_on_near_tie_markets() -> None:
    for seed in range(30):
        assert_opt_matches_enumeration(near_tie_market(seed, (3, 3, 3)))
