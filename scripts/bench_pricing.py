"""Benchmark the lower level: EMD selection + exact Stackelberg pricing (docs/pricing.md).

    python scripts/bench_pricing.py --json results/bench_pricing.json

Timings are timeit-style: each repeat runs the call ``number`` times and keeps the mean; the
report gives the median over repeats (the headline keys) and the best repeat.

* ``one_es_1000_eds_ms``: Algorithm 2 and the leader optimum for one ES with 1,000 candidate EDs
  (EDs drawn beforehand). Goal ≤ 5 ms.
* ``market_10_es_ms``: a whole 10-ES market (3–10 EDs each): draw the task and the EDs with
  their label histograms, EMD (26), selection, pricing. Goal ≤ 50 ms.
* ``server_types_20000_ms``: :func:`server_types` for 20,000 ESs (the upper level's input).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import timeit
from collections.abc import Callable
from dataclasses import replace

import numpy as np
from tqdm import tqdm

from tbcim.lower.pricing import price_market, server_types
from tbcim.lower.scenario import ScenarioConfig, draw_eds, draw_reference
from tbcim.results import write_json


def measure(call: Callable[[], object], number: int, repeat: int) -> dict[str, float]:
    """Median and best of ``repeat`` means over ``number`` calls, in milliseconds."""
    call()  # warm-up
    times = [t / number * 1e3 for t in timeit.repeat(call, number=number, repeat=repeat)]
    return {"median_ms": statistics.median(times), "best_ms": min(times)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", dest="json_out", required=True, help="write results here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    config = ScenarioConfig()
    wide = replace(config, min_eds=1000, max_eds=1000)
    one_es = draw_eds(rng, draw_reference(rng, wide, 1), wide)

    def whole_market() -> object:
        local = np.random.default_rng(args.seed)
        reference = draw_reference(local, config).repeat(10, axis=0)
        return price_market(draw_eds(local, reference, config), config)

    cases: dict[str, tuple[Callable[[], object], int, int]] = {
        "one_es_1000_eds": (lambda: price_market(one_es, config), 100, args.repeat),
        "market_10_es": (whole_market, 100, args.repeat),
        "server_types_20000": (
            lambda: server_types(np.random.default_rng(args.seed), 20_000),
            1,
            max(3, args.repeat // 5),
        ),
    }
    timings = {}
    for name, (call, number, repeat) in tqdm(cases.items(), desc="bench_pricing"):
        timings[name] = measure(call, number, repeat)
        tqdm.write(
            f"{name}: median {timings[name]['median_ms']:.3f} ms, "
            f"best {timings[name]['best_ms']:.3f} ms"
        )
    report = {
        "one_es_1000_eds_ms": timings["one_es_1000_eds"]["median_ms"],
        "market_10_es_ms": timings["market_10_es"]["median_ms"],
        "server_types_20000_ms": timings["server_types_20000"]["median_ms"],
        "goals_ms": {"one_es_1000_eds": 5.0, "market_10_es": 50.0},
        "timings": timings,
        "machine": f"{platform.processor() or platform.machine()}, numpy {np.__version__}",
        "seed": args.seed,
    }
    write_json(args.json_out, report)
    print(f"wrote {args.json_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
