"""The leader's profit π_s(p_t) of the well-posed game (33 with 36), drawn per ES (averaged
over seeds when several markets are given).

The curve jumps at each reservation price r_i (an ED joins) and falls between them; the exact
optimum p_t* sits at the left end of one piece (docs/pricing.md §5).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from tbcim.lower.pricing import PricedMarket
from tbcim.lower.scenario import ScenarioConfig
from tbcim.lower.stackelberg import evaluate_leader
from tbcim.results import new_figure, save_figure


def profit_curve(
    market: PricedMarket, config: ScenarioConfig, g_e: float, prices: NDArray[np.float64]
) -> NDArray[np.float64]:
    """π_s(p) for every ES (rows) at every price (columns), workers W(p) = {r_i ≤ p}."""
    sol = market.solution
    curve = np.empty((sol.price.size, prices.size))
    for j, p in enumerate(prices):
        price = np.full(sol.price.size, p)
        workers = market.selected & market.eds.present & (sol.reservation <= p)
        at_p = evaluate_leader(
            price, workers, market.eds, config.market, config.quality, g_e, sol.reservation
        )
        curve[:, j] = at_p.profit
    return curve


def plot_profit_curves(
    markets: Sequence[PricedMarket], config: ScenarioConfig, g_e: float, path: str | Path
) -> Path:
    """One panel per ES: π_s(p_t), the reservation prices and the exact optimum.

    Several markets (one per seed, the same ESs' count): each panel draws the mean of the seeds'
    curves on one price grid with a band of ±1 sample std, and every seed's exact optimum.
    """
    reservation = np.concatenate([m.solution.reservation.ravel() for m in markets])
    finite = reservation[np.isfinite(reservation)]
    top = 1.3 * float(finite.max()) if finite.size else 1.0
    prices = np.unique(np.concatenate([np.linspace(0.0, top, 600), finite, finite * (1 + 1e-9)]))
    curves = np.stack([profit_curve(m, config, g_e, prices) for m in markets])
    several = len(markets) > 1
    n = markets[0].solution.price.size
    fig, axes = new_figure(n, 1, figsize=(7, 2.2 * n), sharex=True, squeeze=False)
    for s, ax in enumerate(axes[:, 0]):
        mean = curves[:, s].mean(axis=0)
        ax.plot(
            prices, mean, lw=1.2, label=f"mean of {len(markets)} seeds" if several else "π_s(p_t)"
        )
        if several:
            std = curves[:, s].std(axis=0, ddof=1)
            ax.fill_between(prices, mean - std, mean + std, alpha=0.2, lw=0, label="±1 std")
        else:
            r = markets[0].solution.reservation[s]
            for value in r[np.isfinite(r)]:
                ax.axvline(value, color="grey", lw=0.5, ls=":")
        optima = [(m.solution.price[s], m.solution.profit[s]) for m in markets]
        ax.plot(*zip(*optima, strict=True), "o", color="C3", label="exact p_t*")
        ax.set_ylabel(f"ES {s}")
    axes[0, 0].legend(loc="lower left", fontsize=8)
    axes[0, 0].set_title(
        "ES profit vs unit price (one dot per seed)"
        if several
        else "ES profit vs unit price (dotted: reservation prices r_i)"
    )
    axes[-1, 0].set_xlabel("unit price p_t")
    return save_figure(fig, path)
