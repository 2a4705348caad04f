"""`tbcim fl run`: BCFL on chain (TBCIM section II-A, Fig. 3) with PyTorch clients."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import TYPE_CHECKING

from tbcim.cli.flags import engine_chain, engine_flags, flower_options
from tbcim.errors import ConfigError

if TYPE_CHECKING:
    from tbcim.fl.flower.engine import FlowerOptions
    from tbcim.fl.onchain import ChainRound
    from tbcim.fl.runner import FLRunConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fl", help="federated learning on chain", description="Federated learning on chain."
    )
    verbs = parser.add_subparsers(dest="verb", required=True)
    run_parser = verbs.add_parser(
        "run",
        help="train a task with every update through the aggregator contract",
        description="EDs train on their partitions, submit every update as a transaction, the "
        "contract verifies and aggregates, and the next round trains from the model read back "
        "from the chain. Writes a run folder (see tbcim/fl/runner.py).",
    )
    run_parser.add_argument("--config", help="TOML or JSON with [fl], [chain], [failure] tables")
    run_parser.add_argument("--rpc-url", help="Ethereum JSON-RPC node (default: embedded py-evm)")
    run_parser.add_argument(
        "--rounds", type=int, help="global rounds δg (overrides fl.global_rounds)"
    )
    run_parser.add_argument("--seed", type=int, help="seed (overrides fl.seed)")
    engine_flags(run_parser)
    run_parser.add_argument("--out", required=True, help="run folder to write")
    run_parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tbcim.fl.runner import FLRunConfig

    config = FLRunConfig.load(args.config)  # validated before any work
    overrides = {}
    if args.rounds is not None:
        overrides["global_rounds"] = args.rounds
    if args.seed is not None:
        overrides["seed"] = args.seed
    if overrides:
        try:
            fl = dataclasses.replace(config.fl, **overrides)
        except ConfigError as err:
            flag = "--rounds" if "global_rounds" in err.field else "--seed"
            raise ConfigError(flag, err.problem) from err
        config = dataclasses.replace(config, fl=fl)
    flower = flower_options(args.engine, args.workers, config.fl.attack)  # before any work
    with engine_chain(args.rpc_url, flower is not None, config.chain.servers) as url:
        return _run(args, config, url, flower)


def _run(
    args: argparse.Namespace, config: FLRunConfig, rpc_url: str | None, flower: FlowerOptions | None
) -> int:
    from chain_node.node import ChainNode
    from tbcim.fl.runner import run_fl

    c = config.chain
    eds = 0 if flower is not None else c.eds  # Flower's EDs hold their own keys
    node = (
        ChainNode.connect(rpc_url, n_servers=c.servers, n_devices=eds, seed=config.fl.seed)
        if rpc_url
        else ChainNode.embedded(n_servers=c.servers, n_devices=eds, seed=config.fl.seed)
    )
    print(
        f"BCFL on {node.backend} ({args.engine} engine): {c.servers} ESs x {c.eds_per_server} EDs, "
        f"{config.fl.dataset}, attack {config.fl.attack}, {config.fl.global_rounds} rounds"
    )

    def progress(rec: ChainRound) -> None:
        rejected = ", ".join(f"{ed}:{why}" for ed, why in rec.rejected.items()) or "-"
        print(
            f"round {rec.round + 1:>3}: acc {rec.accuracy:.4f} loss {rec.loss:.4f} "
            f"included {len(rec.accepted)}/{len(rec.participants)} rejected [{rejected}] "
            f"gas {rec.gas:,} train {rec.train_seconds:.1f}s chain {rec.chain_seconds:.1f}s",
            flush=True,
        )

    summary = run_fl(config, node, args.out, progress, flower=flower)
    print(
        f"\nfinal accuracy {summary['final_accuracy']:.4f}, malicious rejected "
        f"{summary['malicious_rejected_rate']}, honest rejected {summary['honest_rejected_rate']}, "
        f"gas/round {summary['gas_per_round']:,.0f}, g_e {summary['g_e']:,.0f}, "
        f"{summary['s_per_round']:.1f} s/round"
    )
    print(
        f"results in {args.out}/ (summary.json, rounds.json, rounds.csv, ledger.json, accuracy.png)"
    )
    sys.stdout.flush()
    return 0
