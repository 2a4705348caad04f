"""``tbcim fl run``: a whole BCFL task on chain, from a TOML config to a run folder.

The config has three tables, each parsed through the shared reader (unknown keys, wrong types
and out-of-range values are reported by dotted key before any work starts):

- ``[fl]``: :class:`~tbcim.fl.config.FLConfig` (data, model, δ1, η, δg, attacks, seed);
- ``[chain]``: :class:`ChainConfig` (ESs, EDs per ES, the aggregator's thresholds and windows);
- ``[failure]``: :class:`FailureConfig` (ESs down in rounds [start, end); the paper's setting is
  20 % of the ESs in rounds 15-30 of δg).

The run folder holds ``config.json`` (the resolved config and seed), ``rounds.json`` and
``rounds.csv`` (per round: accuracy, loss, included and rejected EDs with reasons, gas, seconds
split between training and chain), ``ledger.json`` (every receipt), ``summary.json`` and
``accuracy.png``.
"""

from __future__ import annotations

import csv
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tbcim.blockchain.aggregator import AggregatorConfig
from tbcim.configfile import check_table, dataclass_from_table, read_config
from tbcim.errors import ConfigError
from tbcim.fl.config import FLConfig
from tbcim.fl.onchain import ChainRound, Failure, OnChainFL, rejection_counts
from tbcim.results import write_json

if TYPE_CHECKING:
    from chain_node.node import ChainNode
    from tbcim.fl.flower.engine import FlowerOptions


@dataclass(frozen=True)
class ChainConfig:
    """The ``[chain]`` table: the ESs, their EDs, the aggregator settings (docs/contracts.md)."""

    servers: int = 5
    eds_per_server: int = 2
    commit_blocks: int = 1
    round_blocks: int = 2
    grace_blocks: int = 10
    history_window: int = 20
    history_epsilon: float = 0.05
    reference_epsilon: float = 0.05
    norm_bound: float = 3.0
    clip: float = 1.0
    bootstrap_reference: bool = True

    def __post_init__(self) -> None:
        for name in ("servers", "eds_per_server", "round_blocks", "grace_blocks"):
            value = getattr(self, name)
            if isinstance(value, bool) or value < 1:
                raise ConfigError(f"chain.{name}", f"must be a positive integer, got {value!r}")
        try:
            self.aggregator(1)
        except ConfigError as err:
            raise ConfigError(f"chain.{err.field}", err.problem) from err

    @property
    def eds(self) -> int:
        return self.servers * self.eds_per_server

    def aggregator(self, num_params: int, max_workers: int | None = None) -> AggregatorConfig:
        """The ``[chain]`` table's aggregator settings for a model of ``num_params``, taking
        ``max_workers`` EDs (default: every ED of the table)."""
        return AggregatorConfig(
            num_params=num_params,
            max_workers=self.eds if max_workers is None else max_workers,
            commit_blocks=self.commit_blocks,
            round_blocks=self.round_blocks,
            grace_blocks=self.grace_blocks,
            history_window=self.history_window,
            history_epsilon=self.history_epsilon,
            reference_epsilon=self.reference_epsilon,
            norm_bound=self.norm_bound,
            clip=self.clip,
        )


@dataclass(frozen=True)
class FailureConfig:
    """The ``[failure]`` table: ESs ``servers`` (indices) are down in rounds [start, end)."""

    servers: tuple[int, ...] = ()
    start: int = 0
    end: int = 0

    def __post_init__(self) -> None:
        if self.start < 0 or self.end < self.start:
            raise ConfigError(
                "failure.end", f"need 0 <= start <= end, got [{self.start}, {self.end})"
            )
        if len(set(self.servers)) != len(self.servers):
            raise ConfigError("failure.servers", f"lists an ES twice: {self.servers}")


@dataclass(frozen=True)
class FLRunConfig:
    fl: FLConfig = field(default_factory=FLConfig)
    chain: ChainConfig = field(default_factory=ChainConfig)
    failure: FailureConfig = field(default_factory=FailureConfig)

    def __post_init__(self) -> None:
        bad = [s for s in self.failure.servers if not 0 <= s < self.chain.servers]
        if bad:
            raise ConfigError(
                "failure.servers", f"ES indices {bad} outside [0, {self.chain.servers})"
            )
        if (
            len(self.failure.servers) >= self.chain.servers
            and self.failure.end > self.failure.start
        ):
            raise ConfigError("failure.servers", "at least one ES must stay up")

    @classmethod
    def from_dict(cls, raw: Any) -> FLRunConfig:
        top = check_table(raw, "", ("fl", "chain", "failure"))
        return cls(
            fl=FLConfig.from_dict(top.get("fl")),
            chain=dataclass_from_table(ChainConfig, top.get("chain") or {}, "chain"),
            failure=dataclass_from_table(FailureConfig, top.get("failure") or {}, "failure"),
        )

    @classmethod
    def load(cls, path: str | Path | None) -> FLRunConfig:
        return cls() if path is None else cls.from_dict(read_config(path, "--config"))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def run_fl(
    config: FLRunConfig,
    node: ChainNode,
    out: str | Path,
    on_round: Callable[[ChainRound], None] | None = None,
    *,
    flower: FlowerOptions | None = None,
) -> dict[str, Any]:
    """Build the task, run δg rounds on ``node`` and write the run folder; returns the summary.

    With ``flower`` the rounds run on the Flower engine (:mod:`tbcim.fl.flower`: the EDs as
    Flower clients with their own keys, ``node`` a JSON-RPC node); else in this process."""
    from tbcim.fl.task import build_task

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "config.json", config.to_dict())
    c = config.chain
    devices = None
    if flower is not None:
        from tbcim.fl.flower.engine import check_flower_config, flower_devices

        check_flower_config(config.fl.attack)
        devices = flower_devices(config.fl.seed, c.eds)
    task = build_task(config.fl, n_eds=c.eds)
    owners = [ed // c.eds_per_server for ed in range(c.eds)]
    fl = OnChainFL(
        node,
        task,
        owners,
        c.aggregator(task.num_params),
        c.bootstrap_reference,
        device_accounts=devices,
    )
    failures = [Failure(tuple(config.failure.servers), config.failure.start, config.failure.end)]
    start = time.perf_counter()
    if flower is None:
        records = fl.run(config.fl.global_rounds, failures, on_round)
    else:
        from tbcim.fl.flower.engine import run_flower_rounds

        records = run_flower_rounds(fl, config.fl.global_rounds, failures, on_round, flower)
    seconds = time.perf_counter() - start
    rows = [dataclasses.asdict(r) for r in records]
    write_json(out_dir / "rounds.json", rows)
    _write_csv(out_dir / "rounds.csv", records)
    node.ledger.save(out_dir / "ledger.json")
    summary = {
        "rounds": len(records),
        "params": task.num_params,
        "eds": c.eds,
        "servers": c.servers,
        "attackers": sorted(int(ed) for ed in task.adversaries),
        "final_accuracy": records[-1].accuracy,
        "final_model_hash": records[-1].model_hash,
        "malicious_rejected_rate": _rate(records, set(task.adversaries), rejected=True),
        "honest_rejected_rate": _rate(records, set(task.adversaries), rejected=False),
        "gas_per_round": sum(r.gas for r in records) / len(records),
        "g_e": node.ledger.g_e(),
        "train_s_per_round": sum(r.train_seconds for r in records) / len(records),
        "chain_s_per_round": sum(r.chain_seconds for r in records) / len(records),
        "s_per_round": seconds / len(records),
        "backend": node.backend,
        "engine": "local" if flower is None else "flower",
    }
    write_json(out_dir / "summary.json", summary)
    _plot(out_dir / "accuracy.png", records, config)
    return summary


def _rate(records: list[ChainRound], attackers: set[int], *, rejected: bool) -> float | None:
    """Share of submitted updates from attackers (or honest EDs) that were not included."""
    total, hits = rejection_counts(records, attackers, malicious=rejected)
    return hits / total if total else None


def _write_csv(path: Path, records: list[ChainRound]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "round",
                "accuracy",
                "loss",
                "included",
                "rejected",
                "failed_servers",
                "gas",
                "train_seconds",
                "chain_seconds",
                "model_hash",
            ]
        )
        for r in records:
            writer.writerow(
                [
                    r.round,
                    f"{r.accuracy:.6f}",
                    f"{r.loss:.6f}",
                    " ".join(map(str, r.accepted)),
                    "; ".join(f"{ed}:{why}" for ed, why in r.rejected.items()),
                    " ".join(map(str, r.failed_servers)),
                    r.gas,
                    f"{r.train_seconds:.3f}",
                    f"{r.chain_seconds:.3f}",
                    r.model_hash,
                ]
            )


def _plot(path: Path, records: list[ChainRound], config: FLRunConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r.round + 1 for r in records], [r.accuracy for r in records], marker=".")
    f = config.failure
    if f.servers and f.end > f.start:
        ax.axvspan(
            f.start + 0.5, f.end + 0.5, color="grey", alpha=0.2, label=f"ESs {f.servers} down"
        )
        ax.legend()
    ax.set_xlabel("global round")
    ax.set_ylabel("task test accuracy")
    ax.set_title(f"BCFL on chain: {config.fl.dataset}, attack {config.fl.attack}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
