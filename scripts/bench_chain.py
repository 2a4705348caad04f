#!/usr/bin/env python
"""Gas, size and wall time of FL rounds of the task-level aggregator on the embedded py-evm chain.

    python scripts/bench_chain.py --config configs/bench/chain.toml \
        --json results/bench_chain.json [--sizes 10000,50000] [--eds 10,30] [--rounds 2] \
        [--seeds 0] [--history-window N] [--commit-blocks N]

**Config.** Every reported row comes from a checked-in file (``configs/bench/chain.toml``; the
commit-reveal-off row from ``configs/bench/chain-no-commit.toml``), read with the shared reader:
``[bench]`` sets ``sizes``, ``eds``, ``rounds`` and ``seeds``; the optional ``[aggregator]`` sets
any :class:`AggregatorConfig` field but ``num_params``. A flag overrides the file
(``--history-window`` and ``--commit-blocks`` the ``[aggregator]`` keys). The output records the
config file and the resolved config.

For each model size, ED count and seed, three ESs share one aggregator (EDs registered
round-robin) and run ``rounds`` rounds with synthetic updates drawn from the seed (the first
round has no reference and no history; later rounds check both). Reported per row, from the last
round (steady state):

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
import dataclasses
import os
import platform
import sys
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from chain_node.node import ChainNode
from tbcim.blockchain.aggregator import MAX_TX_BYTES, MAX_TX_GAS, AggregatorConfig
from tbcim.blockchain.smoke import TaskOnChain, seeded_data_sizes
from tbcim.configfile import (
    check_counts,
    check_seeds,
    check_types,
    config_with_flags,
    dataclass_from_table,
    int_list,
    provenance,
)
from tbcim.errors import TbcimError
from tbcim.results import write_json

GOAL_PARAMS, GOAL_EDS = 10_000, 10
GOAL_GAS_PER_PARAM = 200.0
GOAL_SECONDS_PER_ROUND = 5.0
DEFAULT_CONFIG = "configs/bench/chain.toml"
#: The ``[aggregator]`` keys: every AggregatorConfig field but the per-row model size.
AGGREGATOR_KEYS = {
    f.name: typing.get_type_hints(AggregatorConfig)[f.name]
    for f in dataclasses.fields(AggregatorConfig)
    if f.name != "num_params"
}


@dataclass(frozen=True)
class ChainBench:
    """The ``[bench]`` table: one row per (size, ED count, seed)."""

    sizes: tuple[int, ...] = (10_000, 50_000)
    eds: tuple[int, ...] = (10, 30)
    rounds: int = 2
    seeds: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        check_counts(self, "sizes", "eds", "rounds")
        check_seeds(self.seeds)


def aggregator_settings(
    raw: Any, flags: Mapping[str, int | None], sizes: tuple[int, ...]
) -> dict[str, Any]:
    """The ``[aggregator]`` keys the file and flags set, validated for every size."""
    settings = check_types(raw, "aggregator", AGGREGATOR_KEYS)
    settings.update({key: value for key, value in flags.items() if value is not None})
    for params in sizes:
        dataclass_from_table(AggregatorConfig, settings, "aggregator", num_params=params)
    return settings


def load_config(path: str | None, flags: Mapping[str, Any]) -> tuple[ChainBench, dict[str, Any]]:
    """The ``[bench]`` table and the ``[aggregator]`` settings of ``path``, with ``flags`` on top.

    ``flags`` may hold the ``[bench]`` fields and ``history_window``/``commit_blocks``; a value
    of None is a flag not given.
    """
    bench_flags = {k: v for k, v in flags.items() if k not in ("history_window", "commit_blocks")}
    bench, tables = config_with_flags(ChainBench, path, "bench", bench_flags, ["aggregator"])
    aggregator_flags = {k: flags.get(k) for k in ("history_window", "commit_blocks")}
    return bench, aggregator_settings(tables.get("aggregator"), aggregator_flags, bench.sizes)


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
        "seed": seed,
        "settings": {**task.client.config.__dict__},
    }


def goals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    limits = all(r["max_tx_gas"] <= MAX_TX_GAS and r["max_tx_bytes"] <= MAX_TX_BYTES for r in rows)
    out: dict[str, Any] = {"every_tx_within_limits": limits}
    at_goal = [r for r in rows if (r["params"], r["eds"]) == (GOAL_PARAMS, GOAL_EDS)]
    if at_goal:  # every seed's row must meet it
        out["gas_goal_met"] = all(r["gas_per_param"] <= GOAL_GAS_PER_PARAM for r in at_goal)
        out["round_seconds_goal_met"] = all(
            r["s_per_round"] <= GOAL_SECONDS_PER_ROUND for r in at_goal
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[1])
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="TOML/JSON: [bench], [aggregator]")
    parser.add_argument("--sizes", type=int_list, help="model sizes, e.g. 10000,50000")
    parser.add_argument("--eds", type=int_list, help="ED counts, e.g. 10,30")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--seeds", "--seed", type=int_list, help="e.g. 0,1,2: one row per seed")
    parser.add_argument(
        "--history-window", type=int, default=None, help="0 turns the paper's own-history rule off"
    )
    parser.add_argument("--commit-blocks", type=int, default=None, help="0 turns commit-reveal off")
    parser.add_argument("--json", help="write the rows as JSON")
    parser.add_argument("--out", dest="out_deprecated", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.out_deprecated:
        print("bench_chain: --out is deprecated, use --json FILE", file=sys.stderr)
        args.json = args.json or args.out_deprecated
    keys = ("sizes", "eds", "rounds", "seeds", "history_window", "commit_blocks")
    try:
        bench, settings = load_config(args.config, {key: getattr(args, key) for key in keys})
    except TbcimError as err:
        print(f"bench_chain: error: {err}", file=sys.stderr)
        return 2
    rows: list[dict[str, Any]] = []
    report = {
        **provenance("scripts/bench_chain.py", argv, args.config, bench=bench, aggregator=settings),
        "seeds": list(bench.seeds),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "complete": False,
        "rows": rows,
    }
    grid = [(p, e, s) for p in bench.sizes for e in bench.eds for s in bench.seeds]
    for params, eds, seed in tqdm(grid, desc="sizes x EDs x seeds", unit="row"):
        row = bench_row(params, eds, bench.rounds, seed, **settings)
        rows.append(row)
        if args.json:  # after every row, so a long run keeps what it has
            write_json(args.json, {**report, "goals": goals(rows)})
        tqdm.write(
            f"{params:>7} params x {eds:>3} EDs, seed {seed}: {row['gas_per_param']:.1f} gas/param "
            f"(calldata {row['calldata_floor_gas_per_param_standard']:.1f} / "
            f"{row['calldata_floor_gas_per_param_eip7623']:.1f}), max tx {row['max_tx_gas']:,} gas "
            f"{row['max_tx_bytes']:,} B, {row['s_per_round']:.2f} s/round, "
            f"{row['mgas_per_s']:.2f} Mgas/s"
        )
    report.update(complete=True, goals=goals(rows))
    print(report["goals"])
    if args.json:
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
