"""Unilateral misreports: a seller pair's joint bid or one seller's bid, swept over a grid.

The true market holds the costs; a mechanism runs on the reported market; utilities are payment
minus true cost (27). Used by the truthfulness tests and by the Fig. 5 experiment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from tbcim.matching.model import MatchingMarket, Outcome, SellerRef

Mechanism = Callable[[MatchingMarket], Outcome]
_HUGE_FACTOR = 10.0


def pair_utility(outcome: Outcome, true_market: MatchingMarket, data: int, uav: int) -> float:
    """Utility of the pair (data, uav) summed over its trades (it trades at most once)."""
    t = outcome.matching.triples
    rows = np.flatnonzero((t[:, 1] == data) & (t[:, 2] == uav))
    true_joint = true_market.joint_bids[t[rows, 0], data, uav]
    return float((outcome.pair_payments[rows] - true_joint).sum())


def sweep_joint_bid(
    mechanism: Mechanism,
    true_market: MatchingMarket,
    triple: tuple[int, int, int],
    grid: Iterable[float],
) -> list[dict[str, float]]:
    """Rows (joint_bid, won, pair_utility) when the pair of ``triple`` reports each joint bid."""
    buyer, m, n = triple
    rows = []
    for bid in grid:
        outcome = mechanism(true_market.with_joint_bid(triple, float(bid)))
        won = outcome.matching.pair_of(buyer) == (m, n)
        rows.append(
            {
                "joint_bid": float(bid),
                "won": float(won),
                "pair_utility": pair_utility(outcome, true_market, m, n),
            }
        )
    return rows


def sweep_seller_bid(
    mechanism: Mechanism,
    true_market: MatchingMarket,
    buyer: int,
    movers: list[tuple[SellerRef, float]],
    shifts: Iterable[float],
) -> list[dict[str, float]]:
    """Rows per shift s: each mover (seller, factor) adds factor·s to its bids to ``buyer``.

    A row holds the shift, each mover's utility (key ``data3`` / ``uav7``), the pair the first
    mover trades in (``partner``, -1 if it does not trade) and that pair's utility.
    """
    first, _ = movers[0]
    axis = 1 if first.kind == "data" else 2
    rows = []
    for shift in shifts:
        market = true_market
        for seller, factor in movers:
            market = market.with_seller_shift(seller, buyer, factor * float(shift))
        outcome = mechanism(market)
        t = outcome.matching.triples
        mine = np.flatnonzero(t[:, axis] == first.index)
        partner, pair_u = -1, 0.0
        if mine.size:
            _, m, n = t[mine[0]].tolist()
            partner = n if first.kind == "data" else m
            pair_u = pair_utility(outcome, true_market, m, n)
        row = {"shift": float(shift), "partner": float(partner), "pair_utility": pair_u}
        for seller, _ in movers:
            row[f"{seller.kind}{seller.index}"] = outcome.seller_utility(seller, true_market)
        rows.append(row)
    return rows


def single_minded(market: MatchingMarket, triple: tuple[int, int, int], who: str) -> MatchingMarket:
    """``market`` where the pair (``who`` = "pair") or one seller ("data"/"uav") of ``triple``
    can serve only that triple's buyer: its bids to every other buyer exceed their valuations.

    Greedy mechanisms with critical payments are truthful only for such single-minded bidders
    (Lehmann, O'Callaghan and Shoham, 2002); docs/matching.md shows the multi-buyer failure.
    """
    buyer, m, n = triple
    huge = _HUGE_FACTOR * (1.0 + market.valuations.max())
    data, uav = market.data_bids.copy(), market.uav_bids.copy()
    others = np.arange(market.shape[0]) != buyer
    if who == "pair":
        uav[others, m, n] = huge
    elif who == "data":
        data[others, m] = huge
    else:
        uav[others, :, n] = huge
    return MatchingMarket(market.valuations, data, uav)


def best_pair_deviation(
    mechanism: Mechanism,
    true_market: MatchingMarket,
    triple: tuple[int, int, int],
    grid: Iterable[float],
) -> tuple[float, float]:
    """(gain, joint bid): the pair's best utility over ``grid`` minus its truthful utility (27).

    Theorem 4 says the gain is ≤ 0 for a truthful pair payment; docs/matching.md §3 measures it.
    """
    _, m, n = triple
    truthful = pair_utility(mechanism(true_market), true_market, m, n)
    rows = sweep_joint_bid(mechanism, true_market, triple, grid)
    best = max(rows, key=lambda r: r["pair_utility"])
    return best["pair_utility"] - truthful, best["joint_bid"]


def best_seller_deviation(
    mechanism: Mechanism,
    true_market: MatchingMarket,
    triple: tuple[int, int, int],
    kind: str,
    shifts: Iterable[float],
) -> tuple[float, float]:
    """(gain, shift): the best utility of ``triple``'s ``kind`` seller over ``shifts`` of all its
    bids to that buyer, minus its truthful utility (Corollary 3; docs/matching.md §4)."""
    seller = SellerRef(kind, triple[1] if kind == "data" else triple[2])
    truthful = mechanism(true_market).seller_utility(seller, true_market)
    rows = sweep_seller_bid(mechanism, true_market, triple[0], [(seller, 1.0)], shifts)
    key = f"{seller.kind}{seller.index}"
    best = max(rows, key=lambda r: r[key])
    return best[key] - truthful, best["shift"]
