"""Where g_e of (32) comes from: a real chain run's gas ledger, or the paper's value."""

from __future__ import annotations

from pathlib import Path

from chain_node.gas_ledger import read_g_e
from tbcim.lower.costs import MarketParams


def resolve_g_e(ledger: str | Path | None, market: MarketParams) -> tuple[float, str]:
    """(g_e, source): ``"measured"`` from the ledger of ``scripts/deploy_local.py --json``,
    else ``"default"`` (``market.g_e``, the paper's 7.68e4 unless configured)."""
    if ledger is None:
        return market.g_e, "default"
    return read_g_e(ledger), "measured"
