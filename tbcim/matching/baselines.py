"""The heuristic baselines of section VI: HVPM, LCPM and RSBM (no payments; winners only).

All respect the constraints (10b)–(10e) and only use feasible triples (R ≥ 0); a buyer left
without a free feasible pair stays unmatched.

* HVPM (high valuation preferred): buyers in order of valuation v_l (highest first); each takes
  a seller pair uniformly at random among its free feasible pairs — the valuation (5) is the
  buyer's, so it does not rank the pairs of one buyer.
* LCPM (low cost preferred): triples in order of joint bid J (lowest first), taken greedily.
* RSBM (random sampling): buyers in random order, each takes a random free feasible pair.
"""

from __future__ import annotations

import numpy as np

from tbcim.matching.greedy import greedy_positions, positions_to_triples, sort_triples
from tbcim.matching.model import IntArray, Matching, MatchingMarket, make_matching


def _sequential_random(
    market: MatchingMarket, buyer_order: IntArray, rng: np.random.Generator
) -> Matching:
    feasible = market.preferences >= 0
    _, M, N = market.shape
    free_m, free_n = np.ones(M, dtype=bool), np.ones(N, dtype=bool)
    chosen = []
    for buyer in buyer_order.tolist():
        options = np.flatnonzero(feasible[buyer] & free_m[:, None] & free_n[None, :])
        if options.size == 0:
            continue
        m, n = divmod(int(rng.choice(options)), N)
        free_m[m] = free_n[n] = False
        chosen.append((buyer, m, n))
    return make_matching(chosen, market)


def hvpm(market: MatchingMarket, rng: np.random.Generator) -> Matching:
    """High Valuation Preferred Method."""
    order = np.argsort(-market.valuations, kind="stable")
    return _sequential_random(market, order, rng)


def rsbm(market: MatchingMarket, rng: np.random.Generator) -> Matching:
    """Random Sampling-Based Method."""
    return _sequential_random(market, rng.permutation(market.shape[0]), rng)


def lcpm(market: MatchingMarket, rng: np.random.Generator | None = None) -> Matching:
    """Low Cost Preferred Method (deterministic; ``rng`` is accepted for a uniform signature)."""
    triples = sort_triples(market.preferences, priority=-market.joint_bids)
    return make_matching(positions_to_triples(triples, greedy_positions(triples)), market)
