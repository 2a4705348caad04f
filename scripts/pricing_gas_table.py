"""The default lower-level market at several gas prices: docs/pricing.md §6's table (Fig. 8).

    python scripts/pricing_gas_table.py --json results/pricing_gas_table.json \
        [--servers 5000] [--seed 0] [--gas-prices 1e-9,1e-2,2e-2,4e-2,8e-2]

One market of ``--servers`` ESs is drawn from the default scenario (3–10 candidate EDs each,
:mod:`tbcim.lower.scenario`) with ``numpy.random.default_rng(seed)``; the same EDs are then priced
at each gas price p_g by Algorithm 2 + the exact Stackelberg equilibrium
(:func:`tbcim.lower.pricing.price_market`, (29)–(37)). g_e is the paper's default. Per gas price,
one row (:func:`gas_row`):

* ``selected_per_es``: EMD-selected EDs per ES (the same at every p_g);
* ``workers_per_es``: EDs hired at p_t* per ES;
* ``priced_out_share``: the share of the EMD-selected EDs not hired, 1 − workers / selected
  (the README's "priced-out shares");
* ``idle_es_share``: the share of ESs that hire nobody;
* ``utility``, ``payments``, ``blockchain_cost``, ``profit``: the mean over all ESs of U_d (28),
  Σ V_i*, c^b_s (32) and π_s (33) (an ES hiring nobody counts with zeros).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

import numpy as np

from tbcim.configfile import provenance
from tbcim.lower.pricing import PricedMarket, price_market
from tbcim.lower.scenario import ScenarioConfig, draw_eds, draw_reference
from tbcim.results import machine_label, write_json

GAS_PRICES = (1e-9, 1e-2, 2e-2, 4e-2, 8e-2)


def gas_row(market: PricedMarket, gas_price: float) -> dict[str, float]:
    """The table's row for one priced market (see the module docstring)."""
    sol = market.solution
    servers = market.selected.shape[0]
    selected = int(market.selected.sum())
    workers = int(sol.workers.sum())
    return {
        "gas_price": gas_price,
        "selected_per_es": selected / servers,
        "workers_per_es": workers / servers,
        "priced_out_share": 1.0 - workers / selected if selected else 0.0,
        "idle_es_share": float(np.mean(sol.n_workers == 0)),
        "utility": float(sol.utility.mean()),
        "payments": float(sol.payments.sum(axis=1).mean()),
        "blockchain_cost": float(sol.blockchain_cost.mean()),
        "profit": float(sol.profit.mean()),
    }


def gas_table(
    servers: int, seed: int, gas_prices: tuple[float, ...], config: ScenarioConfig | None = None
) -> list[dict[str, float]]:
    """One row per gas price for the same market of ``servers`` ESs drawn with ``seed``."""
    base = ScenarioConfig() if config is None else config
    rng = np.random.default_rng(seed)
    eds = draw_eds(rng, draw_reference(rng, base, servers), base)
    rows = []
    for gas_price in gas_prices:
        priced = replace(base, market=replace(base.market, gas_price=gas_price))
        rows.append(gas_row(price_market(eds, priced), gas_price))
    return rows


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(","))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--json", dest="json_out", required=True, help="write results here")
    parser.add_argument("--servers", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gas-prices", type=_floats, default=GAS_PRICES)
    args = parser.parse_args(argv)
    if args.servers < 1 or not all(p > 0 for p in args.gas_prices):
        parser.error("--servers must be >= 1 and every gas price > 0")
    rows = gas_table(args.servers, args.seed, args.gas_prices)
    print("p_g      sel/ES  work/ES  priced-out  idle-ES  U_d     ΣV      c^b     π_s")
    for r in rows:
        print(
            f"{r['gas_price']:<8.0e} {r['selected_per_es']:6.2f}  {r['workers_per_es']:6.2f}  "
            f"{r['priced_out_share']:9.1%}  {r['idle_es_share']:6.1%}  {r['utility']:.4f}  "
            f"{r['payments']:.4f}  {r['blockchain_cost']:.4f}  {r['profit']:.4f}"
        )
    report: dict[str, Any] = {
        "rows": rows,
        "servers": args.servers,
        "seed": args.seed,
        "machine": machine_label(),
        **provenance("scripts/pricing_gas_table.py", argv, None, scenario=ScenarioConfig()),
    }
    write_json(args.json_out, report)
    print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
