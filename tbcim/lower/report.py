"""The `tbcim pricing` report: per ES its candidates, workers, p_t*, costs and profit; over
several seeds, every seed's report and the mean and sample std of the totals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from tbcim.lower.pricing import PricedMarket
from tbcim.lower.scenario import ScenarioConfig
from tbcim.seeding import numbers_over_seeds


def build_report(
    market: PricedMarket, config: ScenarioConfig, g_e: float, g_e_source: str, seed: int
) -> dict[str, Any]:
    """A JSON-ready report; totals count EMD-selected EDs that the equilibrium priced out."""
    eds, sol = market.eds, market.solution
    servers = [
        _server(market, s, g_e, g_e_source, config.market.gas_price) for s in range(eds.shape[0])
    ]
    selected = int(market.selected.sum())
    workers = int(sol.workers.sum())
    return {
        "seed": seed,
        "g_e": g_e,
        "g_e_source": g_e_source,
        "gas_price": config.market.gas_price,
        "totals": {
            "servers": len(servers),
            "candidates": int(eds.present.sum()),
            "selected": selected,
            "workers": workers,
            "priced_out": selected - workers,
            "es_profit": float(sol.profit.sum()),
        },
        "config": {
            "market": asdict(config.market),
            "quality": asdict(config.quality),
            "selection": asdict(config.selection),
        },
        "servers": servers,
    }


def _server(
    market: PricedMarket, s: int, g_e: float, g_e_source: str, gas_price: float
) -> dict[str, Any]:
    eds, sol = market.eds, market.solution
    present = np.flatnonzero(eds.present[s])
    candidates = [
        {
            "ed": int(n),
            "data_size": float(eds.data_size[s, n]),
            "emd": float(eds.theta[s, n]),
            "selected": bool(market.selected[s, n]),
            "reservation_price": (float(sol.reservation[s, n]) if market.selected[s, n] else None),
        }
        for n in present
    ]
    workers = [
        {
            "ed": int(n),
            "data_size": float(eds.data_size[s, n]),
            "emd": float(eds.theta[s, n]),
            "compute": float(sol.compute[s, n]),
            "payment": float(sol.payments[s, n]),
            "profit": float(sol.ed_profit[s, n]),
        }
        for n in present
        if sol.workers[s, n]
    ]
    priced_out = [int(n) for n in present if market.selected[s, n] and not sol.workers[s, n]]
    return {
        "server": s,
        "candidates": candidates,
        "workers": workers,
        "priced_out": priced_out,
        "price": float(sol.price[s]),
        "utility": float(sol.utility[s]),
        "payments": float(sol.payments[s].sum()),
        "blockchain_cost": float(sol.blockchain_cost[s]),
        "profit": float(sol.profit[s]),
        "data_size": float(sol.data_size[s]),
        "mean_emd": float(sol.mean_emd[s]),
        "g_e": g_e,
        "g_e_source": g_e_source,
        "gas_price": gas_price,
    }


def format_report(report: dict[str, Any]) -> str:
    """Human-readable text of :func:`build_report`'s output."""
    lines = [
        f"g_e = {report['g_e']:.6g} gas per ED invocation ({report['g_e_source']}), "
        f"gas price p_g = {report['gas_price']:.6g}"
    ]
    for srv in report["servers"]:
        lines.append(
            f"\nES {srv['server']}: {len(srv['candidates'])} candidates, "
            f"{sum(c['selected'] for c in srv['candidates'])} EMD-selected, "
            f"{len(srv['workers'])} workers, {len(srv['priced_out'])} priced out"
        )
        for c in srv["candidates"]:
            r = c["reservation_price"]
            tag = "not selected" if r is None else f"r_i = {r:.6g}"
            lines.append(
                f"  candidate ED {c['ed']}: d = {c['data_size']:.0f}, θ = {c['emd']:.4f}, {tag}"
            )
        lines.append(f"  p_t* = {srv['price']:.6g}")
        for w in srv["workers"]:
            lines.append(
                f"  worker ED {w['ed']}: C* = {w['compute']:.6g}, V = {w['payment']:.6g}, "
                f"profit = {w['profit']:.6g}"
            )
        lines.append(
            f"  U_d = {srv['utility']:.6g}, ΣV = {srv['payments']:.6g}, "
            f"c_s^b = {srv['blockchain_cost']:.6g}, ES profit π_s = {srv['profit']:.6g}"
        )
    t = report["totals"]
    lines.append(
        f"\nTotal: {t['candidates']} candidate EDs, {t['selected']} EMD-selected, "
        f"{t['workers']} workers, {t['priced_out']} selected EDs priced out; "
        f"ES profit {t['es_profit']:.6g}"
    )
    return "\n".join(lines)


def seeds_report(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Several seeds' reports: ``seeds``, the mean and sample std of each total over the seeds
    (``totals_mean``, ``totals_std``) and every seed's report (``per_seed``)."""
    totals = numbers_over_seeds([r["totals"] for r in reports])
    return {
        "seeds": [r["seed"] for r in reports],
        "totals_mean": totals["mean"],
        "totals_std": totals["std"],
        "per_seed": list(reports),
    }


def format_seeds_report(report: dict[str, Any]) -> str:
    """Human-readable text of :func:`seeds_report`'s output: each seed's report, then the totals'
    mean ± sample std over the seeds."""
    parts = [f"=== seed {r['seed']} ===\n{format_report(r)}" for r in report["per_seed"]]
    mean, std = report["totals_mean"], report["totals_std"]
    totals = ", ".join(f"{key} {mean[key]:.6g} ± {std[key]:.2g}" for key in mean)
    seeds = ",".join(map(str, report["seeds"]))
    parts.append(f"Over seeds {seeds} (mean ± sample std): {totals}")
    return "\n\n".join(parts)
