"""One task's BCFL with its workers chosen by a strategy (Fig. 11): selection, then rounds on chain.

:func:`run_training` draws each ES's candidate EDs (3 to 10, section V-A), builds the FL task
over all of them (the partition is the one source of truth for who holds what), lets the
strategy of :mod:`tbcim.market.selection` pick the workers, and runs δg rounds of
:class:`~tbcim.fl.onchain.OnChainFL` with only those workers registered. The config is a
:class:`~tbcim.fl.runner.FLRunConfig` (``[fl]``, ``[chain]``, ``[failure]``) plus a
``[selection]`` table; ``chain.eds_per_server`` is not used here (the candidates are drawn).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tbcim.configfile import check_table, dataclass_from_table, read_config
from tbcim.errors import ConfigError
from tbcim.fl.onchain import ChainRound, Failure, OnChainFL
from tbcim.fl.partitions import server_table
from tbcim.fl.runner import FLRunConfig
from tbcim.fl.streams import derive_seed
from tbcim.fl.task import build_task
from tbcim.market.selection import SelectionConfig, eds_per_server, owners_of, select_workers

if TYPE_CHECKING:
    from chain_node.node import ChainNode

#: Stream purposes of this module (after tbcim.fl.streams' 0-7).
CANDIDATES, SELECTION = 100, 101


@dataclass(frozen=True)
class TrainingConfig:
    """``[fl]``, ``[chain]``, ``[failure]`` (:class:`FLRunConfig`) and ``[selection]``."""

    run: FLRunConfig = field(default_factory=FLRunConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    min_eds: int = 3
    max_eds: int = 10

    def __post_init__(self) -> None:
        if not 1 <= self.min_eds <= self.max_eds:
            raise ConfigError(
                "selection.min_eds",
                f"need 1 <= min_eds <= max_eds, got {self.min_eds}, {self.max_eds}",
            )

    @classmethod
    def from_dict(cls, raw: Any) -> TrainingConfig:
        top = check_table(raw, "", ("fl", "chain", "failure", "selection"))
        table = dict(top.get("selection") or {})
        counts = {k: table.pop(k) for k in ("min_eds", "max_eds") if k in table}
        run = FLRunConfig.from_dict({k: v for k, v in top.items() if k != "selection"})
        selection = dataclass_from_table(SelectionConfig, table, "selection")
        return cls(run, selection, **counts)

    @classmethod
    def load(cls, path: str | Path | None) -> TrainingConfig:
        return cls() if path is None else cls.from_dict(read_config(path, "--config"))

    def replace(self, **changes: Any) -> TrainingConfig:
        """A copy with ``fl.``/``chain.``/``failure.``/``selection.`` keys changed (dotted)."""
        tables: dict[str, dict[str, Any]] = {}
        for key, value in changes.items():
            table, _, name = key.partition(".")
            tables.setdefault(table, {})[name] = value
        run = self.run
        for table in ("fl", "chain", "failure"):
            if table in tables:
                run = dataclasses.replace(
                    run, **{table: dataclasses.replace(getattr(run, table), **tables.pop(table))}
                )
        selection = dataclasses.replace(self.selection, **tables.pop("selection", {}))
        if tables:
            raise ConfigError(next(iter(tables)), "unknown table")
        return dataclasses.replace(self, run=run, selection=selection)

    def to_dict(self) -> dict[str, Any]:
        out = self.run.to_dict()
        out["selection"] = {
            **dataclasses.asdict(self.selection),
            "min_eds": self.min_eds,
            "max_eds": self.max_eds,
        }
        return out


@dataclass(frozen=True)
class TrainingRun:
    """What a strategy run produced: who was a candidate, who trained, and every round."""

    candidates: int
    workers: tuple[int, ...]
    attackers: tuple[int, ...]
    owners: tuple[int, ...]
    records: list[ChainRound]
    chain: OnChainFL  # the task's aggregator, its EDs' accounts and the model on chain


def run_training(
    config: TrainingConfig,
    node_for: Callable[[int], ChainNode],
    on_round: Callable[[ChainRound], None] | None = None,
) -> TrainingRun:
    """Draw the candidates, select the workers, and run δg rounds on the node ``node_for(n)``
    returns for n device accounts."""
    fl, chain = config.run.fl, config.run.chain
    candidates_rng = np.random.default_rng(derive_seed(CANDIDATES, fl.seed))
    counts = eds_per_server(candidates_rng, chain.servers, config.min_eds, config.max_eds)
    task = build_task(fl, n_eds=sum(counts))
    table = server_table(task.partition, counts)
    selection = select_workers(
        config.selection,
        table,
        task.reference,
        np.random.default_rng(derive_seed(SELECTION, fl.seed)),
    )
    if not selection.workers:
        raise ConfigError("selection", "the strategy hired no ED at all")
    owners = owners_of(table)
    node = node_for(len(owners))
    onchain = OnChainFL(
        node,
        task,
        owners,
        dataclasses.replace(chain.aggregator(task.num_params), max_workers=len(selection.workers)),
        chain.bootstrap_reference,
        selection.workers,
    )
    f = config.run.failure
    records = onchain.run(fl.global_rounds, [Failure(tuple(f.servers), f.start, f.end)], on_round)
    return TrainingRun(
        candidates=len(owners),
        workers=selection.workers,
        attackers=tuple(sorted(int(ed) for ed in task.adversaries)),
        owners=tuple(owners),
        records=records,
        chain=onchain,
    )
