"""Splitting a pair's payment P between its data-seller and UAV-seller (Algorithm 2, line 18).

p^d = (b^d / J)·P and p^u = (b^u / J)·P with J = b^d + b^u. When J = 0 (both bids zero) the
payment is split equally. Since P ≥ J for every winner, each seller gets at least its bid
(individual rationality, Corollary 3) — but not truthfulness: a seller that raises its own bid
while the pair keeps winning raises its share (docs/matching.md).
"""

from __future__ import annotations

import numpy as np

from tbcim.matching.model import FloatArray, IntArray, MatchingMarket


def proportional_split(
    market: MatchingMarket, triples: IntArray, pair_payments: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Per-seller payments (data (M,), UAV (N,)) from pair payments, in proportion to bids."""
    _, M, N = market.shape
    data_pay, uav_pay = np.zeros(M), np.zeros(N)
    for (buyer, m, n), pay in zip(triples.tolist(), pair_payments.tolist(), strict=True):
        bid_d, bid_u = market.data_bids[buyer, m], market.uav_bids[buyer, m, n]
        joint = bid_d + bid_u
        share = 0.5 if joint == 0 else bid_d / joint
        data_pay[m] = share * pay
        uav_pay[n] = pay - data_pay[m]
    return data_pay, uav_pay
