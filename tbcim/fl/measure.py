"""Off-chain measurements behind docs/fl.md: ``python -m tbcim.fl.measure --json OUT``.

Runs the task of an ``[fl]`` config (default: the paper's δ1 = 5, η = 0.01 on digits, Dirichlet
α = 0.5) with plain FedAvg and no chain, and the central ceiling for as many epochs as there are
rounds. Writes, per round, the task test accuracy and loss, the wall time split into training and
the rest, and the size of the EDs' deltas against the codec's quantisation step: the share of
delta entries smaller than half a step (which quantise to 0) and the largest |delta| and |w|.
No number here is used to choose anything on the test set.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from tbcim.blockchain.codec import FixedPointCodec
from tbcim.blockchain.codec import fedavg as fixed_point_fedavg
from tbcim.configfile import read_config
from tbcim.errors import ConfigError
from tbcim.fl.central import train_central
from tbcim.fl.client import validate_update
from tbcim.fl.config import FLConfig
from tbcim.fl.model import chain_words
from tbcim.fl.offchain import fedavg
from tbcim.fl.task import build_task


def measure(
    config: FLConfig,
    n_eds: int,
    rounds: int,
    frac_bits: list[int],
    quantize_bits: int | None = None,
) -> dict:
    """The run behind docs/fl.md; ``quantize_bits`` runs FedAvg as the contract does."""
    task = build_task(config, n_eds)
    sizes = {ed: float(c.data_size) for ed, c in enumerate(task.clients)}
    codec = None if quantize_bits is None else FixedPointCodec(quantize_bits)
    w = task.initial_params.copy() if codec is None else _on_grid(codec, task.initial_params)
    per_round = []
    for r in range(rounds):
        t0 = time.perf_counter()
        subs = task.submissions(w, r, range(n_eds))
        t1 = time.perf_counter()
        w = fedavg(w, subs, sizes) if codec is None else _fixed_point_round(codec, w, subs, sizes)
        ev = task.evaluate(w)
        t2 = time.perf_counter()
        deltas = np.stack(list(subs.values()))
        per_round.append(
            {
                "round": r,
                "accuracy": ev.accuracy,
                "loss": ev.loss,
                "train_s": t1 - t0,
                "other_s": t2 - t1,
                "max_abs_delta": float(np.abs(deltas).max()),
                "mean_delta_norm": float(np.linalg.norm(deltas, axis=1).mean()),
                "max_abs_param": float(np.abs(w).max()),
                "below_half_step": {
                    str(b): float(np.mean(np.abs(deltas) < 2.0 ** -(b + 1))) for b in frac_bits
                },
            }
        )
        print(f"round {r:3d}  acc {ev.accuracy:.4f}  loss {ev.loss:.4f}  train {t1 - t0:.2f}s")
    t0 = time.perf_counter()
    central = train_central(task, rounds)
    central_s = time.perf_counter() - t0
    return {
        "config": {k: getattr(config, k) for k in config.__dataclass_fields__},
        "n_eds": n_eds,
        "quantize_bits": quantize_bits,
        "rounds": rounds,
        "num_params": task.num_params,
        "chain_words": chain_words(task.num_params),
        "data_sizes": task.partition.data_sizes.tolist(),
        "task_test_size": int(task.test_indices.size),
        "reference": task.reference.tolist(),
        "final_accuracy": per_round[-1]["accuracy"],
        "central_final_accuracy": central.accuracy[-1],
        "central_accuracy": list(central.accuracy),
        "central_s": central_s,
        "train_s_per_round": float(np.mean([p["train_s"] for p in per_round])),
        "per_round": per_round,
        "machine": f"{platform.machine()} {platform.processor() or platform.system()}",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
    }


def _on_grid(codec: FixedPointCodec, params: np.ndarray) -> np.ndarray:
    return codec.dequantize(codec.quantize(params, "initial model"))


def _fixed_point_round(
    codec: FixedPointCodec, w: np.ndarray, subs: dict[int, np.ndarray], sizes: dict[int, float]
) -> np.ndarray:
    """The contract's FedAvg (the codec's integer mirror) on the quantised updates."""
    eds = sorted(subs)
    updates = [codec.quantize(validate_update(subs[ed], w.size, ed, codec)) for ed in eds]
    prev = codec.quantize(w, "global model")
    # The new model is the first item (the codec's return tuple is growing with issue 8).
    new = fixed_point_fedavg(prev, updates, [int(sizes[ed]) for ed in eds])[0]
    return codec.dequantize(new)


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


def parse_overrides(items: list[str]) -> dict[str, object]:
    """``["attack=sign_flip", "alpha=0.1"]`` → ``{"attack": "sign_flip", "alpha": 0.1}``."""
    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError("--set", f"expected KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="a .toml/.json file with an [fl] table")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one [fl] key (VALUE is a TOML literal; a bare word is a string)",
    )
    parser.add_argument("--n-eds", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=None, help="default: fl.global_rounds")
    parser.add_argument("--frac-bits", type=int, nargs="+", default=[8, 10, 12])
    parser.add_argument(
        "--quantize-bits",
        type=int,
        default=None,
        help="aggregate as the contract does: int16 fixed point with this many fractional bits",
    )
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    raw = dict(read_config(args.config).get("fl") or {}) if args.config else {}
    raw.update(parse_overrides(args.set))
    config = FLConfig.from_dict(raw)
    rounds = config.global_rounds if args.rounds is None else args.rounds
    result = measure(config, args.n_eds, rounds, args.frac_bits, args.quantize_bits)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    print(
        f"final {result['final_accuracy']:.4f}  central {result['central_final_accuracy']:.4f}  "
        f"train {result['train_s_per_round']:.2f} s/round  -> {args.json}"
    )


if __name__ == "__main__":
    main()
