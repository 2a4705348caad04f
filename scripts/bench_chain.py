#!/usr/bin/env python
"""Gas, size and wall time of FL rounds of the task-level aggregator on the embedded py-evm chain.

    python scripts/bench_chain.py --sizes 10000,50000 --eds 10,30 --out results/bench_chain.json

For each model size and ED count, three ESs share one aggregator (EDs registered round-robin)
and run ``--rounds`` rounds with seeded synthetic updates (the first round has no reference and
no history; later rounds check both). Reported per row, from the last round (steady state):

- ``gas_per_param``: one ED's gas in the round (its commitment and chunk transactions) plus its
  share of the round's aggregation transactions, per parameter;
- ``max_tx_gas`` / ``max_tx_bytes``: the largest transaction of the round (gasUsed from its
  receipt; the signed transaction's input size), against EIP-7825's 16,777,216 gas and the
  131,072-byte pool limit of geth and reth;
- ``calldata_floor_gas_per_param``: the calldata gas of those same transactions, computed from
  the bytes actually sent, at 4/16 gas per zero/non-zero byte (``..._standard``) and at EIP-7623's
  10/40 (``..._eip7623``); ``calldata_floor_gas_per_param`` is the standard one;
- ``s_per_round``: one whole round (commitments, submissions, verification, aggregation, the
  model read back); ``mgas_per_s``: executed gas of the round over that time.

Goals at 10,000 parameters and 10 EDs (issue 8): gas_per_param <= 200; s_per_round <= 5 s; every
transaction within the limits.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from datetime import UTC, datetime
from typing import Any

from tqdm import tqdm

from chain_node.node import ChainNode
from tbcim.blockchain.aggregator import MAX_TX_BYTES, MAX_TX_GAS
from tbcim.blockchain.smoke import TaskOnChain, seeded_data_sizes
from tbcim.results import write_json

GOAL_PARAMS, GOAL_EDS = 10_000, 10
GOAL_GAS_PER_PARAM = 200.0
GOAL_SECONDS_PER_ROUND = 5.0


def parse_ints(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers: {text}") from err
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers: {text}")
    return values


def bench_row(params: int, eds: int, rounds: int, seed: int, **settings: Any) -> dict[str, Any]:
    node = ChainNode.embedded(n_servers=3, n_devices=eds, seed=seed)
    task = TaskOnChain(
        node, params, node.devices, seeded_data_sizes(eds, seed), seed=seed, **settings
    )
    measurements = [task.run_round() for _ in range(rounds)]
    last = measurements[-1]
    executed = sum(last.submit_gas) + last.aggregate_gas
    standard, eip7623 = last.calldata_gas_per_update
    return {
        "params": params,
        "eds": eds,
        "round": last.round,
        "accepted": last.accepted,
        "included": last.included,
        "chunk_words": task.client.config.words_per_chunk,
        "chunks": task.client.num_chunks,
        "gas_per_param": last.gas_per_accepted_update / params,
        "gas_per_param_first_round": measurements[0].gas_per_accepted_update / params,
        "max_tx_gas": last.max_tx_gas,
        "max_tx_bytes": last.max_tx_bytes,
        "calldata_floor_gas_per_param": standard / params,
        "calldata_floor_gas_per_param_standard": standard / params,
        "calldata_floor_gas_per_param_eip7623": eip7623 / params,
        "ed_gas_per_round_mean": sum(last.submit_gas) / len(last.submit_gas),
        "aggregate_gas": last.aggregate_gas,
        "s_per_round": last.seconds_round,
        "mgas_per_s": executed / last.seconds_round / 1e6,
        "fedavg_max_abs_error": last.fedavg_max_abs_error,
        "settings": {**task.client.config.__dict__},
    }


def goals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    limits = all(r["max_tx_gas"] <= MAX_TX_GAS and r["max_tx_bytes"] <= MAX_TX_BYTES for r in rows)
    out: dict[str, Any] = {"every_tx_within_limits": limits}
    row = next((r for r in rows if (r["params"], r["eds"]) == (GOAL_PARAMS, GOAL_EDS)), None)
    if row is not None:
        out["gas_goal_met"] = row["gas_per_param"] <= GOAL_GAS_PER_PARAM
        out["round_seconds_goal_met"] = row["s_per_round"] <= GOAL_SECONDS_PER_ROUND
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--sizes", type=parse_ints, default=parse_ints("10000,50000"))
    parser.add_argument("--eds", type=parse_ints, default=parse_ints("10,30"))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--history-window", type=int, default=None, help="0 turns the paper's own-history rule off"
    )
    parser.add_argument("--commit-blocks", type=int, default=None, help="0 turns commit-reveal off")
    parser.add_argument("--out", help="write the rows as JSON")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    settings = {
        key: value
        for key, value in (
            ("history_window", args.history_window),
            ("commit_blocks", args.commit_blocks),
        )
        if value is not None
    }
    rows = []
    grid = [(p, e) for p in args.sizes for e in args.eds]
    for params, eds in tqdm(grid, desc="sizes x EDs", unit="row"):
        row = bench_row(params, eds, args.rounds, args.seed, **settings)
        rows.append(row)
        tqdm.write(
            f"{params:>7} params x {eds:>3} EDs: {row['gas_per_param']:.1f} gas/param "
            f"(calldata {row['calldata_floor_gas_per_param_standard']:.1f} / "
            f"{row['calldata_floor_gas_per_param_eip7623']:.1f}), max tx {row['max_tx_gas']:,} gas "
            f"{row['max_tx_bytes']:,} B, {row['s_per_round']:.2f} s/round, "
            f"{row['mgas_per_s']:.2f} Mgas/s"
        )
    report = {
        "command": "python scripts/bench_chain.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "date": datetime.now(UTC).date().isoformat(),
        "rows": rows,
        "goals": goals(rows),
    }
    print(report["goals"])
    if args.out:
        write_json(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
