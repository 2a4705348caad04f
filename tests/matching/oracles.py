"""Independent oracles for the matching tests: brute-force enumeration and a plain greedy."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from tbcim.matching.model import FloatArray, MatchingMarket, Outcome, SellerRef


def brute_force_best(prefs: FloatArray) -> float:
    """max Σ R over all matchings (each buyer ≤ 1 pair, each seller ≤ once, only R ≥ 0)."""
    L, M, N = prefs.shape

    def best(buyer: int, used_m: frozenset[int], used_n: frozenset[int]) -> float:
        if buyer == L:
            return 0.0
        value = best(buyer + 1, used_m, used_n)  # buyer unmatched (NULL pair)
        for m, n in itertools.product(range(M), range(N)):
            if m not in used_m and n not in used_n and prefs[buyer, m, n] >= 0:
                rest = best(buyer + 1, used_m | {m}, used_n | {n})
                value = max(value, prefs[buyer, m, n] + rest)
        return value

    return best(0, frozenset(), frozenset())


def plain_greedy(prefs: FloatArray) -> set[tuple[int, int, int]]:
    """Algorithm 2 lines 5–14 as a plain Python loop over the sorted list (ties by index)."""
    flat = prefs.ravel()
    taken: set[tuple[int, int, int]] = set()
    used: tuple[set[int], set[int], set[int]] = (set(), set(), set())
    for idx in np.argsort(-flat, kind="stable"):
        if flat[idx] < 0:
            break
        triple = tuple(int(x) for x in np.unravel_index(idx, prefs.shape))
        if all(triple[ax] not in used[ax] for ax in range(3)):
            taken.add(triple)  # type: ignore[arg-type]
            for ax in range(3):
                used[ax].add(triple[ax])
    return taken  # type: ignore[return-value]


def random_market(seed: int, max_size: int = 3) -> MatchingMarket:
    """A small random market with some infeasible triples (R < 0) and unmatched buyers."""
    rng = np.random.default_rng(seed)
    L, M, N = (int(x) for x in rng.integers(1, max_size + 1, size=3))
    return MatchingMarket(
        valuations=rng.uniform(0.0, 10.0, size=L),
        data_bids=rng.uniform(0.0, 5.0, size=(L, M)),
        uav_bids=rng.uniform(0.0, 5.0, size=(L, M, N)),
    )


def bisect_sup(wins: Callable[[float], bool], low: float, high: float, steps: int = 60) -> float:
    """sup{x in [low, high] : wins(x)} for a monotone ``wins`` with wins(low) true."""
    for _ in range(steps):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if wins(mid) else (low, mid)
    return low


def best_seller_gain(
    mechanism: Callable[[MatchingMarket], Outcome],
    market: MatchingMarket,
    triple: tuple[int, int, int],
    kind: str,
    shifts: FloatArray,
) -> float:
    """Largest gain of the ``kind`` seller of ``triple`` from shifting its bids to that buyer."""
    seller = SellerRef(kind, triple[1] if kind == "data" else triple[2])
    truthful = mechanism(market).seller_utility(seller, market)
    lied = [
        mechanism(market.with_seller_shift(seller, triple[0], s)).seller_utility(seller, market)
        for s in shifts
    ]
    return max(lied) - truthful
