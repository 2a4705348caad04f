#!/usr/bin/env python
"""Compile the contracts, deploy them to the chain, and run one smoke round.

    python scripts/deploy_local.py [--rpc-url URL] [--params N] [--devices N] [--seed S]
                                   [--json FILE]

Without ``--rpc-url`` the chain is the embedded eth-tester/py-evm node. The smoke round: the
task's three ESs share one aggregator and each registers its own EDs; the EDs commit to and
submit one update each, the contract verifies them and aggregates chunk by chunk after the
deadline, the global model is read back from the chain and compared with numpy FedAvg; then one
task goes through the market contract (sealed bids, the voted outcome, acceptances with the EDs'
amounts, the attestation of that aggregator's model, ED claims and withdrawals). Gas comes from
the receipts; g_e is the mean gas an ED spent on the aggregator in the round.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from chain_node.compiler import compile_contracts
from chain_node.gas_ledger import GasLedger
from chain_node.node import ChainNode
from tbcim.blockchain.fl_market import FLMarketClient
from tbcim.blockchain.smoke import TaskOnChain, seeded_data_sizes, settle_market
from tbcim.errors import TbcimError
from tbcim.results import write_json


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--rpc-url", help="Ethereum JSON-RPC endpoint (default: embedded py-evm)")
    parser.add_argument("--params", type=int, default=1000, help="model size (default 1000)")
    parser.add_argument("--devices", type=int, default=3, help="EDs in the smoke round")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the deployment report as JSON")
    parser.add_argument("--out", dest="out_deprecated", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.out_deprecated:
        print("deploy_local: --out is deprecated, use --json FILE", file=sys.stderr)
        args.json = args.json or args.out_deprecated
    if args.params < 1:
        parser.error("--params must be at least 1")
    if args.devices < 1:
        parser.error("--devices must be at least 1")
    if args.seed < 0:
        parser.error("--seed must be non-negative")
    return args


def deploy_and_smoke(node: ChainNode, *, params: int, devices: int, seed: int) -> dict[str, Any]:
    """Deploy both contracts, run the smoke round and a market settlement; the JSON report."""
    artifacts = node.artifacts()
    eds = node.devices[:devices]
    sizes = seeded_data_sizes(devices, seed)
    market = FLMarketClient.deploy(node, sender=node.requester)
    task = TaskOnChain(node, params, eds, sizes, seed=seed)
    measurement = task.run_round()
    settlement = settle_market(node, market, task.client, eds, seed=seed)
    ledger: GasLedger = node.ledger
    deploys = {e.contract: e for e in ledger.select(function="deploy")}
    addresses = {
        "FLMarket": market.contract.address,
        "FLAggregator": task.client.contract.address,
    }
    return {
        "compiler": next(iter(artifacts.values())).compiler_version,
        "backend": node.backend,
        "contracts": {
            name: {"address": address, "deploy_gas": deploys[name].gas_used}
            for name, address in addresses.items()
        },
        "gas": ledger.summary(),
        "g_e": ledger.g_e(),
        "smoke": {
            "params": params,
            "devices": devices,
            "data_sizes": sizes,
            "accepted": measurement.accepted,
            "included": measurement.included,
            "fedavg_max_abs_error": measurement.fedavg_max_abs_error,
            "quantisation_step": measurement.quantisation_step,
            "gas_per_param": measurement.gas_per_accepted_update / params,
            "seconds_round": measurement.seconds_round,
            "market": settlement,
        },
        "producers": {s: node.producers.count(s) for s in node.servers},
        "ledger": ledger.to_json()["entries"],
    }


def print_gas_table(report: dict[str, Any]) -> None:
    print(f"compiler {report['compiler']}, backend {report['backend']}")
    for name, info in report["contracts"].items():
        print(f"  {name:<13} {info['address']}  deploy gas {info['deploy_gas']:,}")
    print(f"\n{'Contract.function':<32}{'calls':>6}{'mean gas':>12}{'min':>12}{'max':>12}")
    for key, row in report["gas"].items():
        print(f"{key:<32}{row['calls']:>6}{row['mean']:>12,.0f}{row['min']:>12,}{row['max']:>12,}")
    smoke = report["smoke"]
    print(
        f"\nsmoke round: {smoke['accepted']}/{smoke['devices']} updates accepted, "
        f"{smoke['params']} params, FedAvg max |error| {smoke['fedavg_max_abs_error']:.3g} "
        f"(quantisation step {smoke['quantisation_step']:.3g}), "
        f"{smoke['gas_per_param']:.1f} gas/param, g_e = {report['g_e']:,.0f}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        compile_contracts()  # fail fast on a missing compiler, before any chain work
        node = (
            ChainNode.connect(args.rpc_url, n_servers=3, n_devices=args.devices, seed=args.seed)
            if args.rpc_url
            else ChainNode.embedded(n_servers=3, n_devices=args.devices, seed=args.seed)
        )
        report = deploy_and_smoke(node, params=args.params, devices=args.devices, seed=args.seed)
    except TbcimError as err:
        print(f"deploy_local: error: {err}", file=sys.stderr)
        return 2
    print_gas_table(report)
    if args.json:
        write_json(args.json, report)
        print(f"report written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
