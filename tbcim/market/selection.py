"""Who trains: the worker-selection strategies of Fig. 11, on the FL task's real partition.

The FL side (:mod:`tbcim.fl`) knows who holds what; the lower level (:mod:`tbcim.lower`) selects
and prices EDs from plain arrays. This module joins them, one way: the partition's per-ES layout
(:func:`tbcim.fl.partitions.server_table`) becomes the lower level's :class:`EDArrays`, with θ
(26) computed from the EDs' real label counts against the task's P_a, so EMD selection reads
exactly the data the EDs train on.

Strategies (TBCIM section V-B.6, Fig. 11):

- ``ideal``: every candidate ED trains (the run is also given no attackers by its caller);
- ``ours``: Algorithm 2 (EMD selection) then each ES's exact Stackelberg equilibrium (33)–(37);
  the workers are the EDs hired at the equilibrium price;
- ``no_im``: no incentive mechanism: each ED joins at random with probability ``join_rate``
  (the paper's 0.5, as in Fig. 5);
- ``greedy``: selection by bid only: each ES hires the ``join_rate`` share of its candidates
  with the lowest asks (their reservation prices r_i, the least an ED accepts per unit of
  compute), whatever their data.

No-IM and Greedy hire the same share of each ES's EDs, so they differ only in *whom* they hire.

The cost columns the lower level needs (γ, β, P, R, φ) are not properties of the data; they are
drawn from the scenario's ranges (section V-A). Digits EDs hold 20–150 images where the paper's
EDs hold 1,000–6,000 samples, and the quality curve (27) is fitted to the latter, so the data
sizes the lower level sees are the image counts times ``data_scale`` (default 100).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tbcim.errors import ConfigError
from tbcim.fl.partitions import ServerTable
from tbcim.lower.costs import EDArrays, make_ed_arrays
from tbcim.lower.emd import emd_from_counts
from tbcim.lower.pricing import price_market
from tbcim.lower.scenario import UNIFORM_RANGES, ScenarioConfig
from tbcim.lower.stackelberg import reservation_price

STRATEGIES = ("ideal", "ours", "no_im", "greedy")


@dataclass(frozen=True)
class SelectionConfig:
    """The ``[selection]`` table: the strategy and its two constants."""

    strategy: str = "ours"
    join_rate: float = 0.5
    data_scale: float = 100.0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ConfigError(
                "selection.strategy", f"unknown strategy {self.strategy!r}; known: {STRATEGIES}"
            )
        if not (np.isfinite(self.join_rate) and 0 < self.join_rate <= 1):
            raise ConfigError("selection.join_rate", f"must lie in (0, 1], got {self.join_rate}")
        if not (np.isfinite(self.data_scale) and self.data_scale > 0):
            raise ConfigError("selection.data_scale", f"must be > 0, got {self.data_scale}")


@dataclass(frozen=True)
class Selection:
    """The EDs that train (indices into the task's EDs, ascending) and the lower level's view."""

    workers: tuple[int, ...]
    eds: EDArrays
    table: ServerTable
    price: NDArray[np.float64] | None = None  # p_t* per ES (``ours`` only)


def lower_level_eds(
    table: ServerTable,
    reference: NDArray[np.float64],
    rng: np.random.Generator,
    scenario: ScenarioConfig,
    data_scale: float,
) -> EDArrays:
    """The candidate EDs as the lower level reads them: θ (26) from the real label counts, d_i
    = images × ``data_scale``, cost columns drawn from the scenario's ranges."""
    present = table.present
    theta = np.zeros(present.shape)
    theta[present] = emd_from_counts(table.label_counts[present], reference)
    costs: dict[str, NDArray[np.float64]] = {}
    for name in UNIFORM_RANGES:
        if name != "data_size":
            low, high = getattr(scenario, name)
            costs[name] = rng.uniform(low, high, present.shape)
    sizes = np.where(present, table.data_size * data_scale, 1.0)
    return make_ed_arrays(present, data_size=sizes, theta=theta, **costs)


def _indices(table: ServerTable, mask: NDArray[np.bool_]) -> tuple[int, ...]:
    return tuple(sorted(int(ed) for ed in table.layout[mask & table.present]))


def select_workers(
    config: SelectionConfig,
    table: ServerTable,
    reference: NDArray[np.float64],
    rng: np.random.Generator,
    scenario: ScenarioConfig | None = None,
    g_e: float | None = None,
) -> Selection:
    """The workers of one task under ``config.strategy`` (see the module docstring)."""
    sc = ScenarioConfig() if scenario is None else scenario
    eds = lower_level_eds(table, reference, rng, sc, config.data_scale)
    if config.strategy == "ideal":
        return Selection(_indices(table, table.present), eds, table)
    if config.strategy == "ours":
        priced = price_market(eds, sc, g_e)
        workers = _indices(table, priced.solution.workers)
        return Selection(workers, eds, table, priced.solution.price)
    if config.strategy == "greedy":
        ask = np.where(eds.present, reservation_price(eds, sc.market), np.inf)
        return Selection(_indices(table, _lowest(ask, eds.present, config.join_rate)), eds, table)
    joins = (rng.random(table.present.shape) < config.join_rate) & table.present
    return Selection(_indices(table, joins), eds, table)


def _lowest(
    ask: NDArray[np.float64], present: NDArray[np.bool_], share: float
) -> NDArray[np.bool_]:
    """Per ES, the ``share`` of its candidates (rounded, at least one) with the lowest ask."""
    order = np.argsort(ask, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(order.shape[1])[None, :].repeat(len(order), 0), 1)
    quota = np.maximum(1, np.rint(share * present.sum(axis=1))).astype(np.int64)
    return (rank < quota[:, None]) & present


def owners_of(table: ServerTable) -> list[int]:
    """ES index of every ED (in ED order)."""
    owners = np.full(int(table.present.sum()), -1, dtype=np.int64)
    for s, row in enumerate(table.layout):
        owners[row[row >= 0]] = s
    return [int(o) for o in owners]


def eds_per_server(rng: np.random.Generator, servers: int, low: int, high: int) -> Sequence[int]:
    """How many candidate EDs each ES has: uniform in [low, high] (the paper's 3 to 10)."""
    if not 1 <= low <= high:
        raise ConfigError("market.min_eds", f"need 1 <= min_eds <= max_eds, got {low}, {high}")
    return [int(k) for k in rng.integers(low, high + 1, size=servers)]
