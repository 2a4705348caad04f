"""What each candidate ES bids for a task: its EMD selection and Stackelberg cost (section IV).

For a task with reference P_a, every ES selects its EDs by EMD (Algorithm 2) on their real
label counts, prices them at its exact Stackelberg equilibrium (33)–(37), and bids its cost

    c_s = Σ_{i ∈ W_s} V_i* + c_s^b,      c_s^b = a6·(g_e/gas_unit)·p_g·|W_s|   (32)

with g_e as measured on this chain. Its public data are d_s = D(W_s) and θ_s = θ̄(W_s). The EDs'
cost columns (γ, β, P, R, φ) are properties of the EDs, drawn once per market (the same stream
for every task); only θ changes from task to task, with P_a.

An ES that hires nobody, or whose cost lies above the bid space's reserve b̄, cannot serve the
task at a price the mechanism may pay and does not bid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tbcim.fl.partitions import ServerTable
from tbcim.lower.pricing import price_market
from tbcim.lower.scenario import ScenarioConfig
from tbcim.market.selection import lower_level_eds

PPM = 1_000_000


@dataclass(frozen=True)
class ServerBid:
    """One ES's bid for one task and the lower-level outcome behind it (money units of U_d)."""

    server: int  # ES index
    cost: float  # Σ V_i* + c_s^b: the truthful bid
    data_size: int  # d_s = D(W_s), in the lower level's units (images × data_scale)
    emd_ppm: int  # θ_s = θ̄(W_s), in ppm
    price: float  # p_t*
    blockchain_cost: float  # c_s^b (32)
    workers: tuple[int, ...]  # the hired EDs (task-wide indices, ascending)
    ed_payments: tuple[float, ...]  # V_i* of each worker, aligned with ``workers``
    ed_profits: tuple[float, ...]  # π_i (34) of each worker at p_t*
    bids: bool  # False: hires nobody or costs more than the reserve b̄

    def bid_wei(self, wei_per_unit: int) -> int:
        return round(self.cost * wei_per_unit)

    def ed_payments_wei(self, wei_per_unit: int) -> tuple[int, ...]:
        """V_i* in wei, rounded down (what the ES promises, never more than it priced)."""
        return tuple(int(np.floor(v * wei_per_unit)) for v in self.ed_payments)


def server_bids(
    table: ServerTable,
    reference: NDArray[np.float64],
    cost_seed: int,
    scenario: ScenarioConfig,
    data_scale: float,
    g_e: float,
    bid_high: float,
) -> list[ServerBid]:
    """Every ES's bid for the task with reference ``reference`` (see the module docstring)."""
    eds = lower_level_eds(table, reference, np.random.default_rng(cost_seed), scenario, data_scale)
    solution = price_market(eds, scenario, g_e).solution
    bids = []
    for s in range(table.present.shape[0]):
        hired = solution.workers[s] & table.present[s]
        workers = [int(ed) for ed in table.layout[s][hired]]
        order = np.argsort(workers)
        cost = float(solution.cost[s])
        bids.append(
            ServerBid(
                server=s,
                cost=cost,
                data_size=round(solution.data_size[s]),
                emd_ppm=round(solution.mean_emd[s] * PPM),
                price=float(solution.price[s]),
                blockchain_cost=float(solution.blockchain_cost[s]),
                workers=tuple(workers[i] for i in order),
                ed_payments=tuple(float(solution.payments[s][hired][i]) for i in order),
                ed_profits=tuple(float(solution.ed_profit[s][hired][i]) for i in order),
                bids=bool(workers) and cost <= bid_high,
            )
        )
    return bids
