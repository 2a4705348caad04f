"""The learning-rate choice behind configs/bench/fl.toml, on VALIDATION seeds and data only.

    python scripts/fl_lr_sweep.py --seeds 101,102,103 --lrs 0.05,0.2,0.4 \
        --json results/fl/lr_sweep.json

For each η and validation seed: the benchmark's candidates and task (configs/bench/fl.toml, no
attackers), the workers of Ideal, Ours and No-IM, 20 rounds of plain FedAvg off chain, and the
accuracy on the requester's validation set after rounds 10 and 20. The benchmark's test seeds
(0, 1, 2) and the test set are never used here.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from tbcim.configfile import check_seeds, int_list, provenance
from tbcim.fl.offchain import fedavg
from tbcim.fl.partitions import server_table
from tbcim.fl.streams import derive_seed
from tbcim.fl.task import build_task
from tbcim.market.selection import SelectionConfig, eds_per_server, select_workers
from tbcim.market.training import CANDIDATES, SELECTION, TrainingConfig
from tbcim.results import write_json


def sweep(base: TrainingConfig, lrs: list[float], seeds: list[int], rounds: int) -> list[dict]:
    rows = []
    for lr in lrs:
        for seed in seeds:
            fl = dataclasses.replace(base.run.fl, seed=seed, attack="none", lr=lr)
            rng = np.random.default_rng(derive_seed(CANDIDATES, seed))
            counts = eds_per_server(rng, base.run.chain.servers, base.min_eds, base.max_eds)
            task = build_task(fl, sum(counts))
            table = server_table(task.partition, counts)
            sizes = {ed: float(n) for ed, n in enumerate(task.data_sizes)}
            for strategy in ("ideal", "ours", "no_im"):
                chosen = np.random.default_rng(derive_seed(SELECTION, seed))
                workers = select_workers(
                    SelectionConfig(strategy), table, task.reference, chosen
                ).workers
                w = task.initial_params.copy()
                curve = []
                for r in range(rounds):
                    w = fedavg(w, task.submissions(w, r, workers), sizes)
                    curve.append(task.evaluate_validation(w).accuracy)
                row = {"lr": lr, "seed": seed, "strategy": strategy, "validation_accuracy": curve}
                rows.append(row)
                print(
                    f"lr {lr} seed {seed} {strategy:6s} round {rounds // 2}: "
                    f"{curve[rounds // 2 - 1]:.3f}  round {rounds}: {curve[-1]:.3f}",
                    flush=True,
                )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("configs/bench/fl.toml"))
    parser.add_argument("--seeds", type=int_list, default=(101, 102, 103))
    parser.add_argument(
        "--lrs", type=lambda t: [float(x) for x in t.split(",")], default=[0.05, 0.2, 0.4]
    )
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    check_seeds(tuple(args.seeds), "--seeds")
    base = TrainingConfig.load(args.config)
    rows = sweep(base, args.lrs, list(args.seeds), args.rounds)
    write_json(args.json, {"rows": rows, **provenance("scripts/fl_lr_sweep.py", argv, args.config)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
