"""Benchmark of the second paper's mechanisms against the issue's goals (PASS/FAIL each).

    python scripts/bench_matching.py --json results/bench_matching.json [--seed 0]

Rows: buyers, data_sellers, uav_sellers, method, seconds (mean over the instances), max_seconds,
revenue (mean). Opt includes its VCG payments and Subopt its critical payments, as in Table II.
Goals:
  1. Opt ≤ 1 s at every Table II size (the slowest instance);
  2. Subopt ≤ 5 ms at every Table II size (mean) and ≤ 1 s at 100/100/100 (mean);
  3. Subopt's total revenue within 3 % of Opt's on average at 6/8/10 (paper: 2.25 % below).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tbcim.matching.experiments import PAPER_TABLE2, paper_size
from tbcim.matching.methods import METHODS, run_method
from tbcim.matching.model import MatchingMarket
from tbcim.matching.scenario import generate
from tbcim.results import write_json
from tbcim.seeding import seed_everything

MACHINE = "2-core CPU, no GPU (shared)"


def measure(method: str, markets: list[MatchingMarket], rng: np.random.Generator) -> dict:
    seconds, revenue = [], []
    for market in markets:
        start = time.perf_counter()
        matching = run_method(method, market, rng)
        seconds.append(time.perf_counter() - start)
        revenue.append(matching.revenue)
    L, M, N = markets[0].shape
    return {
        "buyers": L,
        "data_sellers": M,
        "uav_sellers": N,
        "method": method,
        "instances": len(markets),
        "seconds": float(np.mean(seconds)),
        "max_seconds": float(np.max(seconds)),
        "revenue": float(np.mean(revenue)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True, help="output JSON path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--instances", type=int, default=10, help="markets per Table II size")
    parser.add_argument("--gap-instances", type=int, default=200, help="markets at 6/8/10")
    parser.add_argument("--large-repeats", type=int, default=5, help="markets at 100/100/100")
    args = parser.parse_args(argv)
    if min(args.instances, args.gap_instances, args.large_repeats) < 1:
        parser.error("instance counts must be positive")
    rng = seed_everything(args.seed)
    rows = []
    for label in tqdm(PAPER_TABLE2, desc="Table II sizes"):
        markets = [generate(*paper_size(label), rng) for _ in range(args.instances)]
        for method in METHODS:
            rows.append({"size": label, **measure(method, markets, rng)})
    large = [generate(100, 100, 100, rng) for _ in range(args.large_repeats)]
    rows.append({"size": "100/100/100", **measure("Subopt", large, rng)})
    gap_markets = [generate(*paper_size("6/8/10"), rng) for _ in range(args.gap_instances)]
    gap_rows = {m: measure(m, gap_markets, rng) for m in ("Opt", "Subopt")}
    rows += [{"size": "6/8/10", **row} for row in gap_rows.values()]

    paper_rows = [r for r in rows if r["size"] in PAPER_TABLE2]
    opt_worst = max(r["max_seconds"] for r in paper_rows if r["method"] == "Opt")
    sub_worst = max(r["seconds"] for r in paper_rows if r["method"] == "Subopt")
    large_mean = rows[-3]["seconds"]
    gap = 100.0 * (1.0 - gap_rows["Subopt"]["revenue"] / gap_rows["Opt"]["revenue"])
    goals = [
        ("Opt+VCG <= 1 s at every Table II size (slowest instance)", opt_worst, 1.0),
        ("Subopt <= 5 ms at every Table II size (mean)", sub_worst, 0.005),
        ("Subopt <= 1 s at 100/100/100 (mean)", large_mean, 1.0),
        ("Subopt revenue within 3 % of Opt at 6/8/10 (mean gap, %)", gap, 3.0),
    ]
    goal_rows = [
        {"goal": name, "value": value, "target": target, "pass": bool(value <= target)}
        for name, value, target in goals
    ]
    payload = {
        "machine": MACHINE,
        "seed": args.seed,
        "command": " ".join(["python", "scripts/bench_matching.py", *sys.argv[1:]]),
        "rows": rows,
        "goals": goal_rows,
    }
    write_json(args.json, payload)
    print(f"{'size':>12} {'method':>7} {'seconds':>10} {'paper s':>10} {'revenue':>10}")
    for r in rows:
        paper = PAPER_TABLE2.get(r["size"], {}).get(r["method"], float("nan"))
        print(
            f"{r['size']:>12} {r['method']:>7} {r['seconds']:10.5f} {paper:10.4g}"
            f" {r['revenue']:10.3f}"
        )
    for g in goal_rows:
        verdict = "PASS" if g["pass"] else "FAIL"
        print(f"{verdict}: {g['goal']}: {g['value']:.6g} (target {g['target']})")
    print(f"written to {args.json}")
    return 0 if all(g["pass"] for g in goal_rows) else 1


if __name__ == "__main__":
    sys.exit(main())
