"""`tbcim pricing`: EMD selection and the exact Stackelberg equilibrium of a lower-level market."""

from __future__ import annotations

import argparse

from tbcim.cli.flags import seeds_flag
from tbcim.configfile import check_seeds
from tbcim.errors import ConfigError
from tbcim.lower.config import PricingConfig, load_config
from tbcim.lower.costs import EDArrays
from tbcim.lower.gas import resolve_g_e
from tbcim.lower.plot import plot_profit_curves
from tbcim.lower.pricing import price_market
from tbcim.lower.report import build_report, format_report, format_seeds_report, seeds_report
from tbcim.lower.scenario import draw_eds, draw_reference
from tbcim.results import write_json
from tbcim.seeding import seed_everything


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pricing",
        help="select EDs by EMD and price them at the exact Stackelberg equilibrium",
        description="Section IV of TBCIM: Algorithm 2 (EMD selection) and the ES-ED "
        "Stackelberg game, solved exactly. Without --config a default random market is drawn; "
        "several --seeds draw one market each and report the mean and sample std over them.",
    )
    parser.add_argument("--config", help="TOML or JSON configuration (see docs/pricing.md)")
    seeds_flag(parser)
    parser.add_argument(
        "--gas-ledger",
        help="JSON from `scripts/deploy_local.py --json FILE`: use its measured g_e",
    )
    parser.add_argument("--json", dest="json_out", help="write the full report as JSON here")
    parser.add_argument("--png", dest="png_out", help="plot every ES's profit π_s(p_t) here")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    check_seeds(args.seeds)
    config = load_config(args.config)  # validated before any work
    if config.eds is not None and len(args.seeds) > 1:
        raise ConfigError("seeds", "the config fixes the EDs, so every seed prices one market")
    scenario = config.scenario
    g_e, source = resolve_g_e(args.gas_ledger, scenario.market)
    markets = [price_market(_eds(config, seed), scenario, g_e) for seed in args.seeds]
    reports = [
        build_report(market, scenario, g_e, source, seed)
        for seed, market in zip(args.seeds, markets, strict=True)
    ]
    report = reports[0] if len(reports) == 1 else seeds_report(reports)
    print(format_report(report) if len(reports) == 1 else format_seeds_report(report))
    if args.json_out:
        print(f"\nwrote {write_json(args.json_out, report)}")
    if args.png_out:
        print(f"wrote {plot_profit_curves(markets, scenario, g_e, args.png_out)}")
    return 0


def _eds(config: PricingConfig, seed: int) -> EDArrays:
    """The config's EDs, or the market that ``seed`` draws."""
    if config.eds is not None:
        return config.eds
    scenario = config.scenario
    rng = seed_everything(seed)
    reference = draw_reference(rng, scenario)  # one task for the whole market
    return draw_eds(rng, reference.repeat(scenario.n_servers, axis=0), scenario)
