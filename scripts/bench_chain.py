#!/usr/bin/env python
"""Gas and wall time of FL rounds on the embedded py-evm chain, per model size.

    python scripts/bench_chain.py --sizes 1000,10000,50000 --out results/bench_chain.json

For each size, one ES with 10 EDs runs ``--rounds`` rounds (the first has no history; later
rounds verify against it). Reported per size, from the last round (steady state):

- ``gas_per_param``: gas of one accepted update (its submit receipt) plus its share of the
  round's aggregation receipt, per parameter;
- ``calldata_floor_gas_per_param``: 16 gas per non-zero byte × 2 bytes (int16 encoding);
- ``mgas_per_s``: executed gas of the round over the wall time of the round;
- ``s_per_submission``: wall time of the submissions (send + mine) per ED;
- ``s_per_round``: one whole round: 10 submissions, verification, aggregation, reading the global
  model back.

Goals at 10,000 parameters (issue 2): gas_per_param ≤ 5 × the calldata floor; s_per_round ≤ 5 s.
"""

from __future__ import annotations

import argparse
import platform
import sys
from datetime import UTC, datetime
from typing import Any

import numpy as np
from tqdm import tqdm

from chain_node.node import ChainNode
from tbcim.blockchain.smoke import (
    SubsystemOnChain,
    calldata_floor_gas_per_param,
    seeded_data_sizes,
)
from tbcim.results import write_json

GOAL_PARAMS = 10_000
GOAL_FLOOR_MULTIPLE = 5.0
GOAL_SECONDS_PER_ROUND = 5.0


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"--sizes must be comma-separated integers: {text}"
        ) from err
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"--sizes must be positive integers: {text}")
    return sizes


def bench_size(params: int, devices: int, rounds: int, seed: int) -> dict[str, Any]:
    node = ChainNode.embedded(n_servers=3, n_devices=devices, seed=seed)
    sizes = seeded_data_sizes(devices, seed)
    subsystem = SubsystemOnChain(node, params, node.devices, sizes, seed=seed)
    measurements = [subsystem.run_round() for _ in range(rounds)]
    last = measurements[-1]
    executed = sum(last.submit_gas) + last.aggregate_gas
    return {
        "params": params,
        "devices": devices,
        "round": last.round,
        "accepted": last.accepted,
        "gas_per_param": last.gas_per_accepted_update / params,
        "gas_per_param_first_round": measurements[0].gas_per_accepted_update / params,
        "calldata_floor_gas_per_param": calldata_floor_gas_per_param(),
        "submit_gas_mean": float(np.mean(last.submit_gas)),
        "aggregate_gas": last.aggregate_gas,
        "mgas_per_s": executed / last.seconds_round / 1e6,
        "s_per_submission": last.seconds_submissions / last.submitted,
        "s_per_round": last.seconds_round,
        "fedavg_max_abs_error": last.fedavg_max_abs_error,
    }


def goals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    row = next((r for r in rows if r["params"] == GOAL_PARAMS), None)
    if row is None:
        return {}
    multiple = row["gas_per_param"] / row["calldata_floor_gas_per_param"]
    return {
        "gas_per_param_floor_multiple": multiple,
        "gas_goal_met": multiple <= GOAL_FLOOR_MULTIPLE,
        "round_seconds_goal_met": row["s_per_round"] <= GOAL_SECONDS_PER_ROUND,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--sizes", type=parse_sizes, default=parse_sizes("1000,10000,50000"))
    parser.add_argument("--devices", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the rows as JSON")
    args = parser.parse_args(argv)
    if args.devices < 1 or args.rounds < 1:
        parser.error("--devices and --rounds must be at least 1")
    rows = []
    for params in tqdm(args.sizes, desc="model sizes", unit="size"):
        row = bench_size(params, args.devices, args.rounds, args.seed)
        rows.append(row)
        tqdm.write(
            f"{params:>7} params: {row['gas_per_param']:.1f} gas/param "
            f"(floor {row['calldata_floor_gas_per_param']}), "
            f"{row['mgas_per_s']:.2f} Mgas/s, {row['s_per_submission']:.3f} s/submission, "
            f"{row['s_per_round']:.2f} s/round"
        )
    report = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
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
