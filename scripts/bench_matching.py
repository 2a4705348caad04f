"""Benchmark of the second paper's mechanisms against the issue's goals (PASS/FAIL each).

    python scripts/bench_matching.py --config configs/bench/matching.toml \
        --json results/matching/bench_matching.json [--seeds 0] [--instances 10] \
        [--gap-instances 200] [--large-repeats 5]

**Config.** The reported rows come from a checked-in file (``configs/bench/matching.toml``) read
with the shared reader: ``[bench]`` sets ``seeds``, ``instances``, ``gap_instances`` and
``large_repeats``; the optional ``[scenario]`` sets the market generator's ranges
(:class:`tbcim.matching.scenario.ScenarioConfig`). A flag overrides the file. Each seed draws its
own markets (the counts are per seed) and the rows pool every seed's markets. The output records
the config file, the resolved config and the seeds.

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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from tbcim.configfile import (
    check_counts,
    check_seeds,
    config_with_flags,
    dataclass_from_table,
    int_list,
    provenance,
)
from tbcim.errors import TbcimError
from tbcim.matching.experiments import PAPER_TABLE2, paper_size
from tbcim.matching.methods import METHODS, run_method
from tbcim.matching.model import MatchingMarket
from tbcim.matching.scenario import ScenarioConfig, generate
from tbcim.results import write_json
from tbcim.seeding import seed_everything

MACHINE = "2-core CPU, no GPU (shared)"
DEFAULT_CONFIG = "configs/bench/matching.toml"
#: (size label, method) -> (seconds, revenue) per market, pooled over the seeds.
Samples = dict[tuple[str, str], tuple[list[float], list[float]]]


@dataclass(frozen=True)
class MatchingBench:
    """The ``[bench]`` table; the market counts are per seed."""

    seeds: tuple[int, ...] = (0,)
    instances: int = 10
    gap_instances: int = 200
    large_repeats: int = 5

    def __post_init__(self) -> None:
        check_counts(self, "instances", "gap_instances", "large_repeats")
        check_seeds(self.seeds)


def load_config(
    path: str | Path | None, flags: Mapping[str, Any]
) -> tuple[MatchingBench, ScenarioConfig]:
    """The ``[bench]`` table of ``path`` with ``flags`` on top (None: not given), and its market."""
    bench, tables = config_with_flags(MatchingBench, path, "bench", flags, ["scenario"])
    return bench, dataclass_from_table(ScenarioConfig, tables.get("scenario"), "scenario")


def measure(
    samples: Samples,
    label: str,
    method: str,
    markets: list[MatchingMarket],
    rng: np.random.Generator,
) -> None:
    """Add each market's seconds and revenue under ``method`` to ``samples[label, method]``."""
    seconds, revenue = samples.setdefault((label, method), ([], []))
    for market in markets:
        start = time.perf_counter()
        matching = run_method(method, market, rng)
        seconds.append(time.perf_counter() - start)
        revenue.append(matching.revenue)


def seed_samples(
    samples: Samples, seed: int, bench: MatchingBench, scenario: ScenarioConfig
) -> None:
    """One seed's markets (Table II sizes, 100/100/100, the gap markets at 6/8/10), measured."""
    rng = seed_everything(seed)
    for label in PAPER_TABLE2:
        markets = [generate(*paper_size(label), rng, scenario) for _ in range(bench.instances)]
        for method in METHODS:
            measure(samples, label, method, markets, rng)
    large = [generate(100, 100, 100, rng, scenario) for _ in range(bench.large_repeats)]
    measure(samples, "100/100/100", "Subopt", large, rng)
    gap = [generate(*paper_size("6/8/10"), rng, scenario) for _ in range(bench.gap_instances)]
    for method in ("Opt", "Subopt"):
        measure(samples, "6/8/10", method, gap, rng)


def row(label: str, method: str, seconds: list[float], revenue: list[float]) -> dict:
    L, M, N = paper_size(label)
    return {
        "size": label,
        "buyers": L,
        "data_sellers": M,
        "uav_sellers": N,
        "method": method,
        "instances": len(seconds),
        "seconds": float(np.mean(seconds)),
        "max_seconds": float(np.max(seconds)),
        "revenue": float(np.mean(revenue)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="TOML/JSON: [bench], [scenario]")
    parser.add_argument("--json", type=Path, required=True, help="output JSON path")
    parser.add_argument("--seeds", "--seed", type=int_list, help="e.g. 0,1,2")
    parser.add_argument("--instances", type=int, help="markets per Table II size and seed")
    parser.add_argument("--gap-instances", type=int, help="markets at 6/8/10 per seed")
    parser.add_argument("--large-repeats", type=int, help="markets at 100/100/100 per seed")
    args = parser.parse_args(argv)
    keys = ("seeds", "instances", "gap_instances", "large_repeats")
    try:
        bench, scenario = load_config(args.config, {k: getattr(args, k) for k in keys})
    except TbcimError as err:
        print(f"bench_matching: error: {err}", file=sys.stderr)
        return 2
    samples: Samples = {}
    for seed in tqdm(bench.seeds, desc="seeds"):
        seed_samples(samples, seed, bench, scenario)
    rows = [row(label, method, *values) for (label, method), values in samples.items()]
    gap_rows = {r["method"]: r for r in rows if r["size"] == "6/8/10"}

    paper_rows = [r for r in rows if r["size"] in PAPER_TABLE2]
    opt_worst = max(r["max_seconds"] for r in paper_rows if r["method"] == "Opt")
    sub_worst = max(r["seconds"] for r in paper_rows if r["method"] == "Subopt")
    large_mean = next(r["seconds"] for r in rows if r["size"] == "100/100/100")
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
        **provenance(
            "scripts/bench_matching.py", argv, args.config, bench=bench, scenario=scenario
        ),
        "seeds": list(bench.seeds),
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
