"""Issue 10's market benchmark: wall time of each phase and gas per task by contract function.

    python scripts/bench_market.py --config configs/market/default.toml --seeds 0 \
        --json results/bench_market.json [--tasks N] [--rounds N] [--keep DIR]

**Run.** For each seed, the whole market of the config (``tbcim market run``'s
:func:`tbcim.market.run.run_market`, on the embedded py-evm chain) runs into a run folder: a
temporary one, or ``DIR/seed-<s>`` with ``--keep DIR`` (then ``tbcim market verify`` can check it).
``--tasks`` and ``--rounds`` override ``market.tasks`` and ``fl.global_rounds``; the seed
overrides ``fl.seed``. Every config is validated, and the mechanism loaded, before any run.

**Numbers.** Per seed, from the run's ``summary.json``:

- ``seconds_by_phase``: ``calibration`` (once per run: the synthetic round that measures g_e
  before task 1), then per task ``pricing``, ``publish``, ``bidding`` (commit and reveal),
  ``auction`` (outcome votes), ``accept`` (aggregator deployment and acceptances), ``round k``
  (that BCFL round's local training plus its chain work), ``training`` (all rounds, with their
  set-up), ``attest``, ``settlement`` (claims, withdrawals, reconciliation) and ``task``
  (the task's phases but the rounds, which ``training`` holds), each the mean over the run's
  tasks that reached it (``*_per_task`` lists every task's value);
- ``gas_by_function``: gas and calls per task of each ``Contract.function``, the mean over the
  run's tasks (a function a task did not call counts 0), and ``gas_per_task``, their sum;
- ``accuracy`` (the attested accuracy of each task's final model), ``reconciled`` (every task's
  balances reconciled to the wei) and ``run_seconds`` (the whole run, chain set-up and result
  files included).

``aggregate`` gives the mean and sample standard deviation over seeds of each of these (std 0
for one seed). Wall times are of a shared machine: ``machine`` records its cores and load.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tbcim.configfile import check_seeds, int_list, provenance
from tbcim.errors import ConfigError, TbcimError
from tbcim.results import write_json

if TYPE_CHECKING:
    from tbcim.market.config import MarketConfig

#: Phases of a task in the order the market runs them (``round k`` go between accept and
#: training); ``calibration`` happens once per run.
TASK_PHASES = ("pricing", "publish", "bidding", "auction", "accept")
AFTER_ROUNDS = ("training", "attest", "settlement")
ROUND = re.compile(r"^round (\d+)$")


def positive(text: str) -> int:
    """An argparse type: an integer >= 1 (argparse names the flag)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def seeds(text: str) -> tuple[int, ...]:
    """``--seeds 0,1,2`` (argparse reports a malformed list with the flag)."""
    try:
        return int_list(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"comma-separated integers, e.g. 0,1,2, got {text!r}"
        ) from None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench_market.py", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--config", type=Path, default=Path("configs/market/default.toml"))
    parser.add_argument("--json", type=Path, required=True, help="where to write the results")
    parser.add_argument("--seeds", type=seeds, default=(0,), help="e.g. 0 or 0,1,2")
    parser.add_argument("--tasks", type=positive, help="overrides market.tasks")
    parser.add_argument("--rounds", type=positive, help="overrides fl.global_rounds")
    parser.add_argument("--keep", type=Path, help="keep the run folders in DIR/seed-<s>")
    args = parser.parse_args(argv)
    check_seeds(tuple(args.seeds), "--seeds")
    if args.json.suffix != ".json":
        raise ConfigError("--json", f"name a .json file, got {str(args.json)!r}")
    if args.keep is not None:
        taken = [s for s in args.seeds if (args.keep / f"seed-{s}").exists()]
        if taken:
            raise ConfigError(
                "--keep", f"{args.keep} already holds seed-{taken[0]}; choose another DIR"
            )
    return args


def seed_config(
    base: MarketConfig, seed: int, tasks: int | None, rounds: int | None
) -> MarketConfig:
    """The config of the run at ``seed`` with the flags' overrides."""
    changes: dict[str, Any] = {"fl.seed": seed}
    if rounds is not None:
        changes["fl.global_rounds"] = rounds
    from tbcim.market.config import MarketConfig

    terms = base.terms if tasks is None else dataclasses.replace(base.terms, tasks=tasks)
    return MarketConfig(terms, base.training.replace(**changes))


def load_configs(args: argparse.Namespace) -> tuple[MarketConfig, dict[int, MarketConfig]]:
    """The file's config and each seed's, validated with their mechanism before any run."""
    from tbcim.market.config import MarketConfig
    from tbcim.market.outcome import load_mechanism

    base = MarketConfig.load(args.config)
    configs = {s: seed_config(base, s, args.tasks, args.rounds) for s in args.seeds}
    load_mechanism(base.terms.mechanism, base.model_path(), base.servers)
    return base, configs


def _round_number(phase: str) -> int | None:
    match = ROUND.match(phase)
    return int(match.group(1)) if match else None


def phase_order(phases: Sequence[str]) -> list[str]:
    """``phases`` in market order: calibration, the task phases, round 1..N, the rest, task."""
    rounds = sorted((n, p) for p in phases if (n := _round_number(p)) is not None)
    known = ["calibration", *TASK_PHASES, *(p for _, p in rounds), *AFTER_ROUNDS, "task"]
    return [p for p in known if p in phases] + sorted(set(phases) - set(known))


def seed_record(summary: dict[str, Any], run_seconds: float) -> dict[str, Any]:
    """One seed's figures from its run's summary.json (see the module docstring)."""
    tasks = summary["tasks"]
    if not tasks:
        raise ValueError("the summary holds no task")
    per_task: dict[str, list[float]] = {}
    for t in tasks:
        phases = dict(t["seconds_by_phase"])
        phases["task"] = sum(v for k, v in phases.items() if _round_number(k) is None)
        for phase, seconds in phases.items():
            per_task.setdefault(phase, []).append(float(seconds))
    functions = sorted({f for t in tasks for f in t["gas_by_function"]})
    gas = {
        f: [int(t["gas_by_function"].get(f, {}).get("gas", 0)) for t in tasks] for f in functions
    }
    calls = {
        f: [int(t["gas_by_function"].get(f, {}).get("calls", 0)) for t in tasks] for f in functions
    }
    seconds = {p: float(np.mean(v)) for p, v in per_task.items()}
    seconds["calibration"] = float(summary["seconds_by_phase"].get("calibration", 0.0))
    return {
        "seconds_by_phase": {p: seconds[p] for p in phase_order(list(seconds))},
        "seconds_by_phase_per_task": {p: per_task[p] for p in phase_order(list(per_task))},
        "gas_by_function": {
            f: {"gas": float(np.mean(gas[f])), "calls": float(np.mean(calls[f]))} for f in functions
        },
        "gas_by_function_per_task": {f: gas[f] for f in functions},
        "gas_per_task": float(
            np.mean([sum(g[i] for g in gas.values()) for i in range(len(tasks))])
        ),
        "accuracy": [t["final_accuracy"] for t in tasks],
        "status": [t["status"] for t in tasks],
        "winners": [t["winners"] for t in tasks],
        "reconciled": bool(summary["reconciled"]),
        "tasks": len(tasks),
        "run_seconds": run_seconds,
    }


def _stats(values: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return {"mean": float(arr.mean()), "std": std, "n": int(arr.size)}


def aggregate(records: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample std over seeds of each seed's figures (a phase or function missing in a
    seed's run is left out of that seed's values; ``n`` says how many seeds have it)."""
    if not records:
        raise ValueError("no seed to aggregate")
    rows = list(records.values())
    phases = phase_order(sorted({p for r in rows for p in r["seconds_by_phase"]}))
    functions = sorted({f for r in rows for f in r["gas_by_function"]})
    n_tasks = max(r["tasks"] for r in rows)
    accuracy = [
        [r["accuracy"][i] for r in rows if i < len(r["accuracy"]) and r["accuracy"][i] is not None]
        for i in range(n_tasks)
    ]
    return {
        "seeds": sorted(records),
        "seconds_by_phase": {
            p: _stats([r["seconds_by_phase"][p] for r in rows if p in r["seconds_by_phase"]])
            for p in phases
        },
        "gas_by_function": {
            f: {
                "gas": _stats(
                    [r["gas_by_function"][f]["gas"] for r in rows if f in r["gas_by_function"]]
                ),
                "calls": _stats(
                    [r["gas_by_function"][f]["calls"] for r in rows if f in r["gas_by_function"]]
                ),
            }
            for f in functions
        },
        "gas_per_task": _stats([r["gas_per_task"] for r in rows]),
        "accuracy": [_stats(a) if a else None for a in accuracy],
        "reconciled": all(r["reconciled"] for r in rows),
        "run_seconds": _stats([r["run_seconds"] for r in rows]),
    }


def markdown(out: dict[str, Any]) -> str:
    """The README's two tables: phase -> seconds, function -> gas per task."""
    agg = out["aggregate"]
    multi = len(agg["seeds"]) > 1

    def cell(stats: dict[str, float], fmt: str) -> str:
        text = format(stats["mean"], fmt)
        return text + (f" ± {format(stats['std'], fmt)}" if multi else "")

    lines = ["| phase | seconds |", "|---|---:|"]
    for phase, stats in agg["seconds_by_phase"].items():
        label = {
            "calibration": "calibration (once per run)",
            "training": "training (all rounds)",
            "task": "task (all phases)",
        }.get(phase, phase)
        lines.append(f"| {label} | {cell(stats, '.3f')} |")
    lines.append(f"| whole run (chain set-up, files) | {cell(agg['run_seconds'], '.1f')} |")
    lines += ["", "| function | calls per task | gas per task |", "|---|---:|---:|"]
    for function, row in sorted(
        agg["gas_by_function"].items(), key=lambda kv: -kv[1]["gas"]["mean"]
    ):
        lines.append(f"| `{function}` | {cell(row['calls'], '.1f')} | {cell(row['gas'], ',.0f')} |")
    lines.append(f"| **total** | | {cell(agg['gas_per_task'], ',.0f')} |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """Cores, architecture (``uname -m``), GPU and load: wall times depend on all four."""
    try:
        import torch

        gpu = bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover - torch is a dependency
        gpu = False
    return {
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "system": platform.system(),
        "python": platform.python_version(),
        "gpu": gpu,
        "load_average_before": list(os.getloadavg()),
    }


def run_seed(config: MarketConfig, folder_path: Path, source: Path | None) -> dict[str, Any]:
    """One market run into ``folder_path``; its seed record."""
    from tbcim.market.folder import RunFolder
    from tbcim.market.run import run_market

    folder = RunFolder.create(
        folder_path, config.to_dict(), config.seed, None if source is None else str(source)
    )
    started = time.perf_counter()
    summary = run_market(
        config, folder, None, log=lambda line: print(f"[seed {config.seed}] {line}", flush=True)
    )
    return seed_record(summary, time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    base, configs = load_configs(args)
    info = machine()
    overridden = args.tasks is not None or args.rounds is not None
    records: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_market-") as tmp:
        root = args.keep if args.keep is not None else Path(tmp)
        for seed, config in configs.items():
            same_file = not overridden and seed == base.seed
            records[seed] = run_seed(
                config, root / f"seed-{seed}", args.config if same_file else None
            )
    info["load_average_after"] = list(os.getloadavg())
    resolved = configs[args.seeds[0]]
    out: dict[str, Any] = {
        "aggregate": aggregate(records),
        "per_seed": {str(s): r for s, r in records.items()},
        "machine": info,
        "backend": "embedded py-evm (one block per transaction)",
        "kept_in": None if args.keep is None else str(args.keep),
        "notes": [
            "wall-clock seconds on a machine shared with other jobs; machine.load_average_* "
            "are the 1/5/15-minute load averages before and after the runs",
            "calibration runs once per market run (before task 1); every other phase is the mean "
            "over the run's tasks that reached it",
            "round k = that round's local training plus its chain work; 'training' also holds "
            "the rounds' set-up; 'task' sums a task's phases except the rounds",
            "gas per task by function is the mean over the run's tasks, counting 0 for a "
            "function a task did not call; gas is from the receipts",
        ],
    }
    out.update(
        provenance(
            "scripts/bench_market.py",
            argv,
            args.config,
            config={**resolved.to_dict(), "seeds": list(args.seeds)},
        )
    )
    write_json(args.json, out)
    print()
    print(markdown(out))
    print(f"\nreconciled to the wei: {out['aggregate']['reconciled']}; -> {args.json}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except TbcimError as err:
        print(f"bench_market.py: error: {err}", file=sys.stderr)
        sys.exit(2)
