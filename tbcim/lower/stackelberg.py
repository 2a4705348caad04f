"""The ES–ED Stackelberg game (33)–(37), solved exactly (docs/pricing.md derives every step).

Follower i, paid V_i = p_t·C_i·d_i/(κ·θ_i) (33), maximises (34)

    π_i(C) = p_t·C·d_i/(κθ_i) − c^m_i − c^d_i − d_i·w_i·C²,     w_i = δ1·δg·M·β_i,

which is strictly concave in C, so the best response is (36)

    C_i* = p_t / (2·w_i·κ·θ_i)                                                  (36)

(d_i cancels). At C_i*: V_i* = A_i·p_t² with A_i = d_i/(2·w_i·κ²·θ_i²), the compute cost is
V_i*/2, and π_i* = A_i·p_t²/2 − F_i with F_i = c^d_i + c^m_i. ED i therefore joins exactly when
p_t ≥ r_i, its reservation price

    r_i = sqrt(2·F_i / A_i) = 2·κ·θ_i·sqrt(w_i·F_i/d_i).

Leader. Printed (37) drops participation, so U(W_s) does not depend on p_t and (37) is maximised
at p_t = 0. With participation the ES maximises

    π_s(p) = U_d(W(p)) − p²·Σ_{i∈W(p)} A_i − c^b(|W(p)|),  W(p) = {selected i : r_i ≤ p}.

W(p) is constant between consecutive reservation prices and π_s falls in p there, so the optimum
is p = 0 with W = ∅ (π_s = 0) or one of the r_i. Sorting the r_i and taking prefix sums evaluates
every candidate: O(N log N) per ES, vectorised over a batch of ESs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tbcim.lower.costs import (
    Array,
    EDArrays,
    MarketParams,
    blockchain_cost,
    comm_cost,
    compute_cost,
    compute_weight,
    data_cost,
)
from tbcim.lower.quality import QualityParams, data_utility

DEFAULT_MARKET = MarketParams()
DEFAULT_QUALITY = QualityParams()


def pricing_emd(eds: EDArrays, market: MarketParams) -> Array:
    """θ as used in (33) and (36): floored at ``market.emd_floor`` to keep the divisions finite."""
    return np.maximum(eds.theta, market.emd_floor)


def best_response(price: ArrayLike, eds: EDArrays, market: MarketParams) -> Array:
    """C_i* = p_t/(2·δ1·δg·M·β_i·κ·θ_i) (36); ``price`` broadcasts against the (S, N) arrays."""
    p = np.asarray(price, dtype=np.float64)
    return p / (2.0 * compute_weight(eds, market) * market.kappa * pricing_emd(eds, market))


def payment(price: ArrayLike, compute: ArrayLike, eds: EDArrays, market: MarketParams) -> Array:
    """V_i = p_t·C_i·d_i/(κ·θ_i), the ES's fee to worker i (33)."""
    p = np.asarray(price, dtype=np.float64)
    c = np.asarray(compute, dtype=np.float64)
    return p * c * eds.data_size / (market.kappa * pricing_emd(eds, market))


def ed_profit(price: ArrayLike, compute: ArrayLike, eds: EDArrays, market: MarketParams) -> Array:
    """π_i = V_i − c^m_i − c^d_i − c^c_i (34)."""
    return (
        payment(price, compute, eds, market)
        - comm_cost(eds, market)
        - data_cost(eds)
        - compute_cost(eds, compute, market)
    )


def payment_coefficient(eds: EDArrays, market: MarketParams) -> Array:
    """A_i with V_i(C_i*) = A_i·p_t²: A_i = d_i/(2·w_i·κ²·θ_i²)."""
    theta = pricing_emd(eds, market)
    return eds.data_size / (2.0 * compute_weight(eds, market) * (market.kappa * theta) ** 2)


def reservation_price(eds: EDArrays, market: MarketParams) -> Array:
    """r_i = sqrt(2·F_i/A_i), the lowest p_t at which π_i(C_i*) ≥ 0 (F_i = c^d_i + c^m_i)."""
    fixed = data_cost(eds) + comm_cost(eds, market)
    return np.sqrt(2.0 * fixed / payment_coefficient(eds, market))


@dataclass(frozen=True)
class LeaderSolution:
    """The Stackelberg equilibrium of S ESs; per-ES arrays have shape (S,), per-ED (S, N)."""

    price: Array  # p_t* (0 when the ES hires nobody)
    workers: NDArray[np.bool_]  # W_s(p_t*)
    reservation: Array  # r_i (inf for EDs that were not EMD-selected or are padding)
    compute: Array  # C_i* at p_t* (0 for non-workers)
    payments: Array  # V_i* (0 for non-workers)
    ed_profit: Array  # π_i at C_i* (0 for non-workers)
    utility: Array  # U_d(W_s) (28)
    blockchain_cost: Array  # c^b_s (32)
    profit: Array  # π_s (33)
    n_workers: NDArray[np.int64]
    data_size: Array  # D(W_s)
    mean_emd: Array  # θ̄(W_s) (0 for W = ∅)

    @property
    def cost(self) -> Array:
        """Σ V_i* + c^b_s: what serving the task costs the ES, in the money units of U_d."""
        return self.payments.sum(axis=1) + self.blockchain_cost


def solve_leader(
    eds: EDArrays,
    selected: NDArray[np.bool_],
    market: MarketParams = DEFAULT_MARKET,
    quality: QualityParams = DEFAULT_QUALITY,
    g_e: float | None = None,
) -> LeaderSolution:
    """Exact leader optimum p_t* over the EMD-selected EDs of every ES (the module docstring).

    Ties: EDs with equal r_i join together; among equally profitable prices the lowest wins.
    """
    n_rows, n_cols = eds.shape
    candidate = selected & eds.present
    reservation = np.where(candidate, reservation_price(eds, market), np.inf)
    order = np.argsort(reservation, axis=1, kind="stable")
    r_sorted = np.take_along_axis(reservation, order, axis=1)

    def prefix(values: Array) -> Array:
        return np.cumsum(np.take_along_axis(np.where(candidate, values, 0.0), order, 1), axis=1)

    size_k = prefix(eds.data_size)
    theta_k = prefix(eds.theta)
    coeff_k = prefix(payment_coefficient(eds, market))
    k = np.arange(1, n_cols + 1, dtype=np.float64)
    finite = np.isfinite(r_sorted)
    r_safe = np.where(finite, r_sorted, 0.0)
    gross = data_utility(size_k, theta_k / k, quality) - r_safe**2 * coeff_k
    profit_k = gross - blockchain_cost(k, market, g_e)
    # Hiring the first k (sorted) EDs is a reachable set only at the end of a tie group.
    next_r = np.concatenate([r_sorted[:, 1:], np.full((n_rows, 1), np.inf)], axis=1)
    feasible = finite & (next_r > r_sorted)
    profit_k = np.where(feasible, profit_k, -np.inf)
    all_profits = np.concatenate([np.zeros((n_rows, 1)), profit_k], axis=1)
    best = np.argmax(all_profits, axis=1)  # first maximiser: the lowest price
    rows = np.arange(n_rows)
    price = np.where(best > 0, r_safe[rows, np.maximum(best - 1, 0)], 0.0)

    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(n_cols)[None, :].repeat(n_rows, 0), axis=1)
    workers = candidate & (rank < best[:, None])
    return evaluate_leader(price, workers, eds, market, quality, g_e, reservation)


def evaluate_leader(
    price: Array,
    workers: NDArray[np.bool_],
    eds: EDArrays,
    market: MarketParams,
    quality: QualityParams,
    g_e: float | None,
    reservation: Array,
) -> LeaderSolution:
    """Every quantity of the equilibrium at a given price and worker set, from (29)–(36)."""
    p = price[:, None]
    compute = np.where(workers, best_response(p, eds, market), 0.0)
    payments = np.where(workers, payment(p, compute, eds, market), 0.0)
    profits = np.where(workers, ed_profit(p, compute, eds, market), 0.0)
    n_workers = workers.sum(axis=1)
    size = np.where(workers, eds.data_size, 0.0).sum(axis=1)
    theta_sum = np.where(workers, eds.theta, 0.0).sum(axis=1)
    mean_emd = theta_sum / np.maximum(n_workers, 1)
    utility = data_utility(size, mean_emd, quality)
    chain = blockchain_cost(n_workers, market, g_e)
    return LeaderSolution(
        price=price,
        workers=workers,
        reservation=reservation,
        compute=compute,
        payments=payments,
        ed_profit=profits,
        utility=utility,
        blockchain_cost=chain,
        profit=utility - payments.sum(axis=1) - chain,
        n_workers=n_workers.astype(np.int64),
        data_size=size,
        mean_emd=mean_emd,
    )
