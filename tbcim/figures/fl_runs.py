"""The FL strategy runs behind TBCIM Figs. 5, 11 and 12 (and ``scripts/bench_fl.py``).

Each run changes one thing from a base :class:`TrainingConfig` (:data:`RUNS`): ``ideal`` (every
candidate ED, no attackers, every verification rule off: plain FedAvg on chain), ``ours`` (EMD
selection + Stackelberg pricing, the base's attackers), ``no_im`` and ``greedy`` (same
attackers), ``ours`` under each attack and with none, ``ours`` with 20 % of the ESs down in
rounds [0.15 δg, 0.30 δg) (the paper's rounds 15-30 of 100), and No-IM without attackers on
non-IID and IID data (Fig. 5).

A run executes on a fresh anvil node (a real EVM; the same contract calls and global-model hashes
as the embedded py-evm chain, ``tests/fl/test_onchain.py``, several times faster) and is
summarised as plain data (:func:`run_summary`), so runs can go to a process pool.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from tbcim.figures.core import in_processes
from tbcim.fl.onchain import rejection_counts
from tbcim.market.config import REPO_ROOT
from tbcim.market.training import TrainingConfig, TrainingRun, run_training

#: The benchmark's setting (digits, Dirichlet α = 0.5, 5 ESs, 20 % sign-flippers): the base of
#: every run here.
BENCH_CONFIG = REPO_ROOT / "configs" / "bench" / "fl.toml"
#: Ideal is plain FedAvg of everyone: no attackers, so no verification to lose honest updates to.
NO_DEFENCE = {
    "chain.reference_epsilon": -1.0,
    "chain.history_epsilon": -1.0,
    "chain.norm_bound": 4000.0,
    "chain.clip": 0.0,
}
#: run name -> dotted overrides of the config.
RUNS: dict[str, dict[str, Any]] = {
    "ideal": {"selection.strategy": "ideal", "fl.attack": "none", **NO_DEFENCE},
    "ours": {},
    "no_im": {"selection.strategy": "no_im"},
    "greedy": {"selection.strategy": "greedy"},
    "ours_no_attack": {"fl.attack": "none"},
    "ours_scaling": {"fl.attack": "scaling"},
    "ours_noise": {"fl.attack": "noise"},
    "ours_copy": {"fl.attack": "copy"},
    "ours_label_flip": {"fl.attack": "label_flip"},
    "ours_failure": {},  # + the failure window, set from δg in run_config
    "non_iid": {"selection.strategy": "no_im", "fl.attack": "none"},
    "iid": {"selection.strategy": "no_im", "fl.attack": "none", "fl.partition": "iid"},
}
FAILED_SHARE = 0.2  # of the ESs, in rounds [0.15 δg, 0.30 δg)


def failure_window(rounds: int) -> tuple[int, int]:
    """Rounds [start, end) in which the failed ESs are down: the paper's 15-30 of 100, scaled."""
    return round(0.15 * rounds), round(0.30 * rounds)


def run_config(base: TrainingConfig, name: str, seed: int) -> TrainingConfig:
    """The config of run ``name`` at ``seed``."""
    config = base.replace(**{**RUNS[name], "fl.seed": seed})
    if name == "ours_failure":
        servers = config.run.chain.servers
        down = max(1, round(FAILED_SHARE * servers))
        failed = np.random.default_rng(seed).choice(servers, size=down, replace=False)
        start, end = failure_window(config.run.fl.global_rounds)
        config = config.replace(
            **{
                "failure.servers": tuple(sorted(int(s) for s in failed)),
                "failure.start": start,
                "failure.end": end,
            }
        )
    return config


def one_run(config: TrainingConfig, label: str) -> dict[str, Any]:
    """One run on a fresh anvil node, a line per round; the record of every round, as data."""
    from chain_node.anvil import running_anvil
    from chain_node.node import ChainNode

    servers, seed = config.run.chain.servers, config.run.fl.seed

    def progress(rec: Any) -> None:
        print(
            f"[{label}] round {rec.round + 1:>3}: acc {rec.accuracy:.4f} "
            f"included {len(rec.accepted)}/{len(rec.participants)} "
            f"train {rec.train_seconds:.1f}s chain {rec.chain_seconds:.1f}s",
            flush=True,
        )

    with running_anvil("--gas-limit", "30000000", accounts=1 + servers + 60) as url:
        run = run_training(
            config,
            lambda n: ChainNode.connect(url, n_servers=servers, n_devices=n, seed=seed),
            progress,
        )
    return run_summary(run)


def run_summary(run: TrainingRun) -> dict[str, Any]:
    """A run's figures; a round's seconds are its training plus its chain work (no setup)."""
    records = run.records
    attackers = set(run.attackers)
    reasons: dict[str, dict[str, int]] = {"malicious": {}, "honest": {}}
    for r in records:
        for ed, why in r.rejected.items():
            side = reasons["malicious" if ed in attackers else "honest"]
            side[why] = side.get(why, 0) + 1
    return {
        "candidates": run.candidates,
        "workers": list(run.workers),
        "attackers": list(run.attackers),
        "accuracy": [r.accuracy for r in records],
        "final_accuracy": records[-1].accuracy,
        "final_model_hash": records[-1].model_hash,
        "malicious": list(rejection_counts(records, attackers, malicious=True)),
        "honest": list(rejection_counts(records, attackers, malicious=False)),
        "rejected_reasons": reasons,
        "gas_per_round": float(np.mean([r.gas for r in records])),
        "train_s_per_round": float(np.mean([r.train_seconds for r in records])),
        "chain_s_per_round": float(np.mean([r.chain_seconds for r in records])),
        "s_per_round": float(np.mean([r.train_seconds + r.chain_seconds for r in records])),
    }


def _job(args: tuple[TrainingConfig, str]) -> dict[str, Any]:
    return one_run(*args)


def run_all(jobs: Sequence[tuple[TrainingConfig, str]], workers: int) -> list[dict[str, Any]]:
    """``one_run`` of every (config, label), ``workers`` at a time (one anvil each)."""
    return in_processes(_job, jobs, workers)


def central_accuracy(config: TrainingConfig) -> list[float]:
    """Central training on all training data, one epoch per round: the ceiling, per round."""
    from tbcim.fl.central import train_central
    from tbcim.fl.task import build_task

    fl = dataclasses.replace(config.run.fl, attack="none")
    task = build_task(fl, n_eds=config.run.chain.servers * config.min_eds)
    return [float(a) for a in train_central(task, fl.global_rounds).accuracy]
