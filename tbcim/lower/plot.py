"""The leader's profit π_s(p_t) of the well-posed game (33 with 36), drawn per ES.

The curve jumps at each reservation price r_i (an ED joins) and falls between them; the exact
optimum p_t* sits at the left end of one piece (docs/pricing.md §5).
"""

from __future__ import annotations

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
    market: PricedMarket, config: ScenarioConfig, g_e: float, path: str | Path
) -> Path:
    """One panel per ES: π_s(p_t), the reservation prices and the exact optimum."""
    sol = market.solution
    finite = sol.reservation[np.isfinite(sol.reservation)]
    top = 1.3 * float(finite.max()) if finite.size else 1.0
    prices = np.unique(np.concatenate([np.linspace(0.0, top, 600), finite, finite * (1 + 1e-9)]))
    curve = profit_curve(market, config, g_e, prices)
    n = sol.price.size
    fig, axes = new_figure(n, 1, figsize=(7, 2.2 * n), sharex=True, squeeze=False)
    for s, ax in enumerate(axes[:, 0]):
        ax.plot(prices, curve[s], lw=1.2, label="π_s(p_t)")
        r = sol.reservation[s][np.isfinite(sol.reservation[s])]
        for value in r:
            ax.axvline(value, color="grey", lw=0.5, ls=":")
        ax.plot([sol.price[s]], [sol.profit[s]], "o", color="C3", label="exact p_t*")
        ax.set_ylabel(f"ES {s}")
    axes[0, 0].legend(loc="lower left", fontsize=8)
    axes[0, 0].set_title("ES profit vs unit price (dotted: reservation prices r_i)")
    axes[-1, 0].set_xlabel("unit price p_t")
    return save_figure(fig, path)
