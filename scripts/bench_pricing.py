"""Benchmark the lower level: EMD selection + exact Stackelberg pricing (docs/pricing.md).

    python scripts/bench_pricing.py --config configs/bench/pricing.toml \
        --json results/bench_pricing.json [--seeds 0,1,2] [--repeat 15] [--number 100]

**Config.** The reported rows come from a checked-in file (``configs/bench/pricing.toml``) read
with the shared reader: ``[bench]`` sets ``seeds``, ``repeat`` and ``number``; the optional
``[scenario]``, ``[market]``, ``[quality]`` and ``[selection]`` tables are the random market's, as
in ``tbcim pricing --config`` (:mod:`tbcim.lower.config`). A flag overrides the file. The output
records the config file and the resolved config.

Timings are timeit-style: each repeat runs the call ``number`` times and keeps the mean. Each
seed draws its own markets; the report gives the median over the repeats of every seed (the
headline keys), the best repeat, and each seed's median.

* ``one_es_1000_eds_ms``: Algorithm 2 and the leader optimum for one ES with 1,000 candidate EDs
  (EDs drawn beforehand). Goal ≤ 5 ms.
* ``market_10_es_ms``: a whole 10-ES market (3–10 EDs each): draw the task and the EDs with
  their label histograms, EMD (26), selection, pricing. Goal ≤ 50 ms.
* ``server_types_20000_ms``: :func:`server_types` for 20,000 ESs (the upper level's input;
  ``number`` 1 and a fifth of the repeats, at least 3).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import timeit
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from tqdm import tqdm

from tbcim.configfile import check_counts, check_seeds, config_with_flags, int_list, provenance
from tbcim.errors import TbcimError
from tbcim.lower.config import parse_config
from tbcim.lower.pricing import price_market, server_types
from tbcim.lower.scenario import ScenarioConfig, draw_eds, draw_reference
from tbcim.results import write_json

DEFAULT_CONFIG = "configs/bench/pricing.toml"
#: The market's tables, parsed by tbcim.lower.config.
MARKET_TABLES = ("scenario", "market", "quality", "selection")
CASES = ("one_es_1000_eds", "market_10_es", "server_types_20000")


@dataclass(frozen=True)
class PricingBench:
    """The ``[bench]`` table."""

    seeds: tuple[int, ...] = (0,)
    repeat: int = 15
    number: int = 100

    def __post_init__(self) -> None:
        check_counts(self, "repeat", "number")
        check_seeds(self.seeds)


def load_config(path: str | None, flags: Mapping[str, Any]) -> tuple[PricingBench, ScenarioConfig]:
    """The ``[bench]`` table of ``path`` with ``flags`` on top (None: not given), and its market."""
    bench, tables = config_with_flags(PricingBench, path, "bench", flags, MARKET_TABLES)
    return bench, parse_config(tables).scenario


def seed_cases(
    seed: int, config: ScenarioConfig, bench: PricingBench
) -> dict[str, tuple[Callable[[], object], int, int]]:
    """Each case's call, ``number`` and ``repeat`` on the markets of ``seed``."""
    rng = np.random.default_rng(seed)
    wide = replace(config, min_eds=1000, max_eds=1000)
    one_es = draw_eds(rng, draw_reference(rng, wide, 1), wide)

    def whole_market() -> object:
        local = np.random.default_rng(seed)
        reference = draw_reference(local, config).repeat(10, axis=0)
        return price_market(draw_eds(local, reference, config), config)

    return {
        "one_es_1000_eds": (lambda: price_market(one_es, config), bench.number, bench.repeat),
        "market_10_es": (whole_market, bench.number, bench.repeat),
        "server_types_20000": (
            lambda: server_types(np.random.default_rng(seed), 20_000),
            1,
            max(3, bench.repeat // 5),
        ),
    }


def measure(call: Callable[[], object], number: int, repeat: int) -> list[float]:
    """``repeat`` means over ``number`` calls, in milliseconds (after one warm-up call)."""
    call()
    return [t / number * 1e3 for t in timeit.repeat(call, number=number, repeat=repeat)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="TOML/JSON: [bench], market")
    parser.add_argument("--json", dest="json_out", required=True, help="write results here")
    parser.add_argument("--seeds", "--seed", type=int_list, help="e.g. 0,1,2")
    parser.add_argument("--repeat", type=int)
    parser.add_argument("--number", type=int, help="calls per repeat (not server_types)")
    args = parser.parse_args(argv)
    flags = {key: getattr(args, key) for key in ("seeds", "repeat", "number")}
    try:
        bench, config = load_config(args.config, flags)
    except TbcimError as err:
        print(f"bench_pricing: error: {err}", file=sys.stderr)
        return 2

    times: dict[str, list[float]] = {name: [] for name in CASES}
    per_seed: dict[str, list[float]] = {name: [] for name in CASES}
    for seed in tqdm(bench.seeds, desc="bench_pricing seeds"):
        for name, (call, number, repeat) in seed_cases(seed, config, bench).items():
            seed_times = measure(call, number, repeat)
            times[name] += seed_times
            per_seed[name].append(statistics.median(seed_times))
    timings = {
        name: {
            "median_ms": statistics.median(times[name]),
            "best_ms": min(times[name]),
            "per_seed_median_ms": per_seed[name],
        }
        for name in CASES
    }
    for name, timing in timings.items():
        print(f"{name}: median {timing['median_ms']:.3f} ms, best {timing['best_ms']:.3f} ms")
    report = {
        "one_es_1000_eds_ms": timings["one_es_1000_eds"]["median_ms"],
        "market_10_es_ms": timings["market_10_es"]["median_ms"],
        "server_types_20000_ms": timings["server_types_20000"]["median_ms"],
        "goals_ms": {"one_es_1000_eds": 5.0, "market_10_es": 50.0},
        "timings": timings,
        "machine": f"{platform.processor() or platform.machine()}, numpy {np.__version__}",
        **provenance("scripts/bench_pricing.py", argv, args.config, bench=bench, scenario=config),
        "seeds": list(bench.seeds),
    }
    write_json(args.json_out, report)
    print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
