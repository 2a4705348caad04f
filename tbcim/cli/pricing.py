"""`tbcim pricing`: EMD selection and the exact Stackelberg equilibrium of a lower-level market."""

from __future__ import annotations

import argparse

from tbcim.errors import ConfigError
from tbcim.lower.config import load_config
from tbcim.lower.gas import resolve_g_e
from tbcim.lower.plot import plot_profit_curves
from tbcim.lower.pricing import price_market
from tbcim.lower.report import build_report, format_report
from tbcim.lower.scenario import draw_eds, draw_reference
from tbcim.results import write_json
from tbcim.seeding import seed_everything


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pricing",
        help="select EDs by EMD and price them at the exact Stackelberg equilibrium",
        description="Section IV of TBCIM: Algorithm 2 (EMD selection) and the ES-ED "
        "Stackelberg game, solved exactly. Without --config a default random market is drawn.",
    )
    parser.add_argument("--config", help="TOML or JSON configuration (see docs/pricing.md)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--gas-ledger",
        help="JSON from `scripts/deploy_local.py --json FILE`: use its measured g_e",
    )
    parser.add_argument("--json", dest="json_out", help="write the full report as JSON here")
    parser.add_argument("--png", dest="png_out", help="plot every ES's profit π_s(p_t) here")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.seed < 0:
        raise ConfigError("seed", f"must be a non-negative integer, got {args.seed}")
    config = load_config(args.config)  # validated before any work
    scenario = config.scenario
    g_e, source = resolve_g_e(args.gas_ledger, scenario.market)
    rng = seed_everything(args.seed)
    if config.eds is None:
        reference = draw_reference(rng, scenario)  # one task for the whole market
        eds = draw_eds(rng, reference.repeat(scenario.n_servers, axis=0), scenario)
    else:
        eds = config.eds
    market = price_market(eds, scenario, g_e)
    report = build_report(market, scenario, g_e, source, args.seed)
    print(format_report(report))
    if args.json_out:
        print(f"\nwrote {write_json(args.json_out, report)}")
    if args.png_out:
        print(f"wrote {plot_profit_curves(market, scenario, g_e, args.png_out)}")
    return 0
