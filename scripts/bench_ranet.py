"""Benchmark both learned auctions under the evaluation protocol of issue 12; one JSON row each.

    python scripts/bench_ranet.py --json results/bench_ranet.json \
        [--mechanisms ranet,ranet-exact] [--settings single-3,single-5,tbcim-3,tbcim-5,tbcim-10] \
        [--seeds 1001,1002,1003] [--samples 10000] [--regret-samples 2000] [--train-seed 0] \
        [--configs configs] [--models results] [--reuse-models] [--append] [--threads 1]

**Configs.** Every row is a checked-in file, ``CONFIGS/<mechanism>/<setting>.toml`` (``[train]``
over the learner's ``quick`` preset, optional ``[setting]`` overrides), read with the shared
reader; a missing file is an error, so no row runs on settings nobody can see.

**Protocol.**

* Training draws its training and validation profiles from ``--train-seed``; model selection
  and every tuning decision use those validation profiles only.
* Test figures come from the held-out streams ``[TEST_STREAM, seed]`` of every ``--seeds``
  seed (default 1001, 1002, 1003: never used before issue 12, nor by any tuning since), with
  ``--samples`` profiles per seed. Means pool all test profiles; ``*_ci95`` is 1.96 standard
  errors of that mean (profiles are iid within and across seeds); ``*_per_seed`` lists each
  seed's mean.
* Myerson (single winner) and VCG, uncapped and capped at b̄ (multi-winner), are scored on the
  same profiles. ``myerson_ratio`` = mean learned / mean Myerson buyer utility, its interval by
  the delta method on the paired per-profile values.
* Regret: the project's evaluator (201-point grid, 3 zoom rounds, 20 gradient steps through the
  model's ``torch_outcome``) on the first ``--regret-samples`` profiles of each seed, divided by
  b̄ − b_low; ``regret_mean``/``regret_max`` pool the seeds. IR violations over all profiles.

``--reuse-models`` evaluates an existing model file instead of retraining when its recorded
training config and seed equal the row's (its ``train_seconds`` is the one recorded in it).
Each row is written as soon as it is done; ``--append`` keeps rows of other (mechanism, setting)
pairs already in ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tbcim.auction.evaluate import outcome_metrics, regret_metrics
from tbcim.auction.mechanism import Mechanism, Profiles, check_outcome
from tbcim.auction.myerson import Myerson
from tbcim.auction.ranet.config import read_config_file
from tbcim.auction.ranet.evaluation import held_out_profiles
from tbcim.auction.registry import (
    LEARNED,
    LearnedModel,
    load_learned,
    save_learned,
    train_learned,
    training_config,
)
from tbcim.auction.settings import SETTING_NAMES, AuctionSetting, get_setting, setting_from_dict
from tbcim.auction.vcg import VCG, CappedVCG
from tbcim.configfile import keyed
from tbcim.errors import ConfigError, TbcimError
from tbcim.results import write_json

DEFAULT_SETTINGS = ("single-3", "single-5", "tbcim-3", "tbcim-5", "tbcim-10")
#: Test seeds of issue 12's protocol: never used for training, selection or tuning.
DEFAULT_TEST_SEEDS = (1001, 1002, 1003)
PRESET = "quick"
#: Goals of issue 12 (regret divided by the bid range; training time for S ≤ 5).
REGRET_GOAL = 1e-5
MYERSON_RATIO_GOAL = 0.995
TRAIN_SECONDS_GOAL = 300.0
Z95 = 1.959964


def parse_list(name: str, text: str, allowed: tuple[str, ...] | None = None) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if allowed is not None and t not in allowed]
    if not items or bad:
        raise ConfigError(name, f"unknown {bad or text!r}; choose from {allowed}")
    return items


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(t) for t in text.split(",") if t.strip()]
    except ValueError as err:
        raise ConfigError("seeds", f"a comma-separated list of integers, got {text!r}") from err
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError("seeds", f"needs distinct integers, got {text!r}")
    return seeds


def mean_ci(values: np.ndarray) -> tuple[float, float]:
    """Mean and 1.96 standard errors."""
    return float(values.mean()), float(Z95 * values.std(ddof=1) / np.sqrt(values.size))


def ratio_ci(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """mean(x)/mean(y) and 1.96 delta-method standard errors (paired samples)."""
    ratio = float(x.mean() / y.mean())
    residual = x - ratio * y
    return ratio, float(Z95 * residual.std(ddof=1) / (np.sqrt(x.size) * abs(y.mean())))


def buyer_utilities(mechanism: Mechanism, setting: AuctionSetting, profiles: Profiles) -> Any:
    """Per-profile buyer utility (M2), (B,)."""
    z, p = check_outcome(*mechanism.outcome(profiles), profiles, setting.multi_winner)
    return setting.buyer_value(z, profiles) - p.sum(axis=1)


def load_or_train(
    mechanism: str,
    name: str,
    config_path: Path,
    model_path: Path,
    train_seed: int,
    reuse: bool,
) -> tuple[LearnedModel, float, dict[str, Any], str]:
    """(model, train seconds, training config dict, "trained" | "reused")."""
    setting_overrides, train_options = read_config_file(config_path)
    if "base" in setting_overrides:
        raise ConfigError("setting.base", f"{config_path}: the base setting is the file name")
    spec = {"base": name, **setting_overrides}
    with keyed("setting"):
        setting = setting_from_dict(spec)
    with keyed("train"):
        config = training_config(mechanism, train_options, PRESET)
    if reuse and model_path.is_file():
        model, meta = load_learned(model_path, setting)
        saved = meta["config"]
        if meta.get("seed") == train_seed and saved == config:
            print(f"== {mechanism} {name}: reusing {model_path}", flush=True)
            return model, float(meta["train_seconds"]), config.to_dict(), "reused"
        print(f"== {mechanism} {name}: {model_path} has another config or seed", flush=True)
    print(f"== {mechanism} {name}: training ({config_path})", flush=True)
    result = train_learned(mechanism, setting, config, train_seed)
    save_learned(model_path, result, spec)
    return result.model, result.train_seconds, config.to_dict(), "trained"


def evaluate_row(
    model: LearnedModel, seeds: list[int], samples: int, regret_samples: int
) -> dict[str, Any]:
    """Every figure of the protocol for one trained model over the test seeds."""
    setting = model.setting
    learned, myerson, vcg, capped = [], [], [], []
    metrics: list[dict[str, float]] = []
    regrets: list[dict[str, Any]] = []
    references: dict[str, Mechanism] = {"vcg": VCG(setting)}
    if setting.multi_winner:
        references["capped"] = CappedVCG(setting)
    else:
        references["myerson"] = Myerson(setting)
    for seed in seeds:
        profiles = held_out_profiles(setting, samples, seed)
        z, p = check_outcome(*model.outcome(profiles), profiles, setting.multi_winner)
        metrics.append(outcome_metrics(setting, profiles, z, p))
        learned.append(setting.buyer_value(z, profiles) - p.sum(axis=1))
        vcg.append(buyer_utilities(references["vcg"], setting, profiles))
        if "capped" in references:
            capped.append(buyer_utilities(references["capped"], setting, profiles))
        else:
            myerson.append(buyer_utilities(references["myerson"], setting, profiles))
        subset = profiles.take(slice(0, regret_samples))
        regrets.append(regret_metrics(model, setting, subset, model.torch_outcome))
    ours = np.concatenate(learned)
    mean, ci = mean_ci(ours)
    row: dict[str, Any] = {
        "test_seeds": seeds,
        "samples_per_seed": samples,
        "buyer_utility": mean,
        "buyer_utility_ci95": ci,
        "buyer_utility_per_seed": [float(u.mean()) for u in learned],
        "vcg_buyer_utility": float(np.concatenate(vcg).mean()),
        "regret_samples_per_seed": min(regret_samples, samples),
        # Each seed's scan has the same number of (profile, ES) pairs: the mean of means.
        "regret_mean": float(np.mean([r["regret_mean"] for r in regrets])),
        "regret_max": float(max(r["regret_max"] for r in regrets)),
        "monotone": all(r["monotone"] for r in regrets),
        "monotone_violation_max": float(max(r["monotone_violation_max"] for r in regrets)),
    }
    for key in ("social_welfare", "es_surplus", "expected_winners", "ir_violation_rate"):
        row[key] = float(np.mean([m[key] for m in metrics]))
    if setting.multi_winner:
        row["capped_vcg_buyer_utility"] = float(np.concatenate(capped).mean())
        if all("buyer_utility_realised" in m for m in metrics):
            realised = [m["buyer_utility_realised"] for m in metrics]
            row["buyer_utility_realised"] = float(np.mean(realised))
    else:
        # Single winner: VCG's reserve is already min(V, b̄), so capping changes nothing.
        row["capped_vcg_buyer_utility"] = row["vcg_buyer_utility"]
        theirs = np.concatenate(myerson)
        row["myerson_buyer_utility"], row["myerson_buyer_utility_ci95"] = mean_ci(theirs)
        row["myerson_ratio"], row["myerson_ratio_ci95"] = ratio_ci(ours, theirs)
        row["optimal_buyer_utility"] = setting.optimal_buyer_utility
    return row


def goals(row: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, bool]:
    """Which goals of issue 12 this row meets (tbcim: against the ranet row, when present)."""
    met = {
        "regret_max_le_1e-5": row["regret_max"] <= REGRET_GOAL,
        "no_ir_violation": row["ir_violation_rate"] == 0.0,
    }
    if "myerson_ratio" in row:
        met["myerson_ratio_ge_0.995"] = row["myerson_ratio"] >= MYERSON_RATIO_GOAL
    else:
        met["above_capped_vcg"] = row["buyer_utility"] > row["capped_vcg_buyer_utility"]
        old = [r for r in rows if r["setting"] == row["setting"] and r["mechanism"] == "ranet"]
        if row["mechanism"] == "ranet-exact" and old:
            met["at_least_ranet"] = row["buyer_utility"] >= old[0]["buyer_utility"]
    if get_setting(row["setting"]).n_servers <= 5:
        met["train_le_300s"] = row["train_seconds"] <= TRAIN_SECONDS_GOAL
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--json", required=True)
    parser.add_argument("--mechanisms", default=",".join(LEARNED))
    parser.add_argument("--settings", default=",".join(DEFAULT_SETTINGS))
    parser.add_argument("--seeds", default=",".join(map(str, DEFAULT_TEST_SEEDS)))
    parser.add_argument("--samples", type=int, default=10_000, help="test profiles per seed")
    parser.add_argument("--regret-samples", type=int, default=2_000, help="per seed")
    parser.add_argument("--train-seed", type=int, default=0)
    parser.add_argument("--configs", default="configs", help="folder of <mechanism>/<setting>")
    parser.add_argument("--models", default="results", help="folder of <mechanism>/<setting>.pt")
    parser.add_argument("--reuse-models", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (shared CPU)")
    parser.add_argument("--append", action="store_true", help="keep other rows in --json")
    args = parser.parse_args(argv)
    try:
        mechanisms = parse_list("mechanisms", args.mechanisms, LEARNED)
        names = parse_list("settings", args.settings, SETTING_NAMES)
        seeds = parse_seeds(args.seeds)
        for field in ("samples", "regret_samples", "threads"):
            if getattr(args, field) < 1:
                raise ConfigError(field, "must be a positive integer")
        jobs = []
        for mechanism in mechanisms:
            for name in names:
                config_path = Path(args.configs) / mechanism / f"{name}.toml"
                if not config_path.is_file():
                    raise ConfigError("configs", f"no config file {config_path} for this row")
                jobs.append((mechanism, name, config_path))
    except TbcimError as err:
        print(f"bench_ranet: error: {err}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    out = Path(args.json)
    done = {(m, n) for m, n, _ in jobs}
    rows: list[dict[str, Any]] = []
    if args.append and out.is_file():
        rows = [
            r for r in json.loads(out.read_text()) if (r["mechanism"], r["setting"]) not in done
        ]
    for mechanism, name, config_path in jobs:
        model_path = Path(args.models) / mechanism / f"{name}.pt"
        model, seconds, config, how = load_or_train(
            mechanism, name, config_path, model_path, args.train_seed, args.reuse_models
        )
        start = time.perf_counter()
        row = {
            "setting": name,
            "mechanism": mechanism,
            **evaluate_row(model, seeds, args.samples, args.regret_samples),
            "train_seconds": seconds,
            "model": str(model_path),
            "config": str(config_path),
            "train_seed": args.train_seed,
            "train_config": config,
            "model_source": how,
        }
        row["eval_seconds"] = time.perf_counter() - start
        rows.append(row)
        for done_row in rows:  # a ranet row can arrive after the ranet-exact row it sets a goal for
            done_row["goals"] = goals(done_row, rows)
        shown = ("buyer_utility", "buyer_utility_ci95", "myerson_ratio", "capped_vcg_buyer_utility")
        print(
            f"{mechanism} {name}: "
            + ", ".join(f"{k} {row[k]:.5g}" for k in shown if k in row)
            + f", regret mean {row['regret_mean']:.2e} max {row['regret_max']:.2e}, "
            f"IR {row['ir_violation_rate']:.3g}, train {seconds:.0f} s, goals {row['goals']}",
            flush=True,
        )
        write_json(out, rows)  # after every row, so a long run keeps what it has
    return 0


if __name__ == "__main__":
    sys.exit(main())
