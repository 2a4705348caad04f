"""Lower-level pricing end to end: draw ESs, select their EDs (Algorithm 2), price them (33)–(37).

(Formerly ``tbcim.lower.market``; the word "market" is kept for the whole ``tbcim.market``.)

:func:`server_types` is the interface to the upper level (RANet): the types of n independent ESs
at their Stackelberg equilibria.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tbcim.errors import ConfigError
from tbcim.lower.costs import EDArrays
from tbcim.lower.emd import select
from tbcim.lower.scenario import ScenarioConfig, draw_eds, draw_reference
from tbcim.lower.stackelberg import LeaderSolution, solve_leader

MAX_IDLE_ROUNDS = 50  # consecutive redraw rounds without a single hire: a degenerate market
MIN_REDRAW_BATCH = 64
DEFAULT_SCENARIO = ScenarioConfig()


@dataclass(frozen=True)
class PricedMarket:
    """A priced market: the EDs, Algorithm 2's selection and the equilibrium."""

    eds: EDArrays
    selected: NDArray[np.bool_]
    solution: LeaderSolution


def price_market(
    eds: EDArrays, config: ScenarioConfig = DEFAULT_SCENARIO, g_e: float | None = None
) -> PricedMarket:
    """Algorithm 2 (EMD selection) then the exact Stackelberg equilibrium of every ES."""
    selected = select(eds.theta, eds.present, config.selection)
    solution = solve_leader(eds, selected, config.market, config.quality, g_e)
    return PricedMarket(eds=eds, selected=selected, solution=solution)


def server_types(
    rng: np.random.Generator,
    n: int,
    config: ScenarioConfig | None = None,
    g_e: float | None = None,
) -> dict[str, NDArray]:
    """Types of n independent ESs, each priced at its exact Stackelberg equilibrium.

    Each ES gets its own task reference and 3–10 candidate EDs (:mod:`tbcim.lower.scenario`),
    so types are i.i.d. across ESs. An ES whose selected EDs are all priced out would not bid
    (it cannot serve the task); it is redrawn from the same rng (in batches of at least 64)
    until n ESs hire someone. 50 rounds in a row without a hire raise a ConfigError.

    Returns arrays of shape (n,): ``cost`` = Σ V_i* + c^b_s (money units of U_d = a5·q),
    ``data_size`` = Σ d_i over the workers, ``emd`` = the workers' mean θ, ``n_workers``.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ConfigError("n", f"must be a positive integer, got {n!r}")
    if g_e is not None and (not np.isfinite(g_e) or g_e <= 0):
        raise ConfigError("g_e", f"must be positive and finite, got {g_e}")
    cfg = DEFAULT_SCENARIO if config is None else config
    parts: list[LeaderSolution] = []
    missing, batch, idle = int(n), int(n), 0
    while missing:
        eds = draw_eds(rng, draw_reference(rng, cfg, batch), cfg)
        solution = price_market(eds, cfg, g_e).solution
        hired = np.flatnonzero(solution.n_workers > 0)[:missing]
        parts.append(_rows(solution, hired))
        missing -= hired.size
        idle = 0 if hired.size else idle + 1
        if idle == MAX_IDLE_ROUNDS:
            raise ConfigError("scenario", "ESs hire no worker at all: the market is degenerate")
        batch = max(missing, MIN_REDRAW_BATCH)
    return {
        "cost": np.concatenate([p.cost for p in parts]),
        "data_size": np.concatenate([p.data_size for p in parts]),
        "emd": np.concatenate([p.mean_emd for p in parts]),
        "n_workers": np.concatenate([p.n_workers for p in parts]),
    }


def _rows(solution: LeaderSolution, rows: NDArray[np.intp]) -> LeaderSolution:
    return LeaderSolution(**{k: v[rows] for k, v in vars(solution).items()})
