"""FL rounds on chain (TBCIM section II-A, Fig. 3): every update travels as a transaction.

Each round, every live ED reads the global model **from the chain** (the ``GlobalChunk`` logs,
checked against the chunk hashes the contract stores), trains from it (the task's
:class:`~tbcim.fl.task.UpdateSource`), and its update is screened
(:func:`~tbcim.fl.client.screen_updates`: NaN, ±inf or out-of-range updates are set aside with
the ED named, the rest go on), quantised with the shared codec, committed and submitted. After
the deadline a live ES aggregates chunk by chunk; the next round trains from the model read back
from the chain. No Python copy of the model is carried between rounds.

The requester publishes the initial model with a bootstrap reference (its own update on its
validation set, :meth:`~tbcim.fl.task.FLTask.bootstrap_reference`), so the reference rule
screens updates from the first round; ``bootstrap=False`` leaves round 1 unscreened.

Failed ESs (section V, Fig. 12): while ES s is down it has no stake in the proof-of-stake
election (so it produces no blocks), it neither opens nor aggregates rounds, and its EDs cannot
reach the chain, so they sit the round out and rejoin afterwards.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
from numpy.typing import NDArray

from tbcim.blockchain.aggregator import AggregatorClient, AggregatorConfig, submission_blocks
from tbcim.blockchain.codec import Verdict
from tbcim.errors import ConfigError
from tbcim.fl.client import screen_updates
from tbcim.fl.model import Evaluation

if TYPE_CHECKING:
    from chain_node.node import ChainNode

Vector = NDArray[np.float64]


class ChainTask(Protocol):
    """What the on-chain loop needs from a task: updates to submit and a test to score on."""

    @property
    def num_params(self) -> int: ...

    @property
    def data_sizes(self) -> NDArray[np.int64]: ...

    @property
    def initial_params(self) -> Vector: ...

    def submissions(
        self, params: Vector, round: int, participants: Collection[int]
    ) -> dict[int, Vector]: ...

    def evaluate(self, params: Vector) -> Evaluation: ...

    def bootstrap_reference(self) -> Vector: ...


@dataclass(frozen=True)
class Failure:
    """ESs ``servers`` are down in FL rounds [start, end) (0-based)."""

    servers: tuple[int, ...]
    start: int
    end: int

    def down(self, round: int) -> set[int]:
        return set(self.servers) if self.start <= round < self.end else set()


@dataclass(frozen=True)
class ChainRound:
    """One FL round on chain, as the run folder records it."""

    round: int  # FL round, 0-based
    chain_round: int  # the aggregator's round number (1-based)
    accuracy: float
    loss: float
    participants: tuple[int, ...]
    accepted: tuple[int, ...]  # included in FedAvg
    rejected: dict[int, str]  # ED -> why (screening, a verdict, or the norm bound)
    failed_servers: tuple[int, ...]
    gas: int  # every transaction of the round
    ed_gas: dict[int, int]  # each participant's gas (commitment and chunks)
    train_seconds: float
    chain_seconds: float
    model_hash: str


@dataclass(frozen=True)
class RoundStart:
    """Who takes part in an FL round: its ESs down and live, and the participating EDs."""

    round: int
    down: tuple[int, ...]
    live: list[int]
    participants: tuple[int, ...]


def rejection_counts(
    records: Sequence[ChainRound], attackers: Collection[int], *, malicious: bool
) -> tuple[int, int]:
    """(submitted, not included) updates of the attackers (or honest EDs) over ``records``."""
    submitted = rejected = 0
    for r in records:
        for ed in r.participants:
            if (ed in attackers) == malicious:
                submitted += 1
                rejected += ed not in r.accepted
    return submitted, rejected


@dataclass
class OnChainFL:
    """A task's FL on one aggregator shared by ``n_servers`` ESs; ED i belongs to ES
    ``owners[i]``. EDs are the node's device accounts, ESs its server accounts. Only the EDs in
    ``workers`` (those the ESs hired) register and train."""

    node: ChainNode
    task: ChainTask
    owners: Sequence[int]
    config: AggregatorConfig | None = None
    bootstrap: bool = True  # publish the task's bootstrap reference with the initial model
    workers: Sequence[int] | None = None  # the EDs that take part (default: all)
    #: The ES accounts, by ES index (default: the node's first ones); a market passes its
    #: task's winners.
    server_accounts: Sequence[str] | None = None
    #: The ED accounts, by ED index (default: the node's device accounts); the Flower engine
    #: passes the addresses of the EDs' own keys (:mod:`tbcim.fl.flower`).
    device_accounts: Sequence[str] | None = None
    client: AggregatorClient = field(init=False)

    def __post_init__(self) -> None:
        n_eds = len(self.task.data_sizes)
        if len(self.owners) != n_eds:
            raise ConfigError("owners", f"need one ES per ED ({n_eds}), got {len(self.owners)}")
        devices = list(self.node.devices if self.device_accounts is None else self.device_accounts)
        if n_eds > len(devices):
            raise ConfigError("eds", f"{n_eds} EDs but the chain has {len(devices)}")
        n_servers = max(self.owners) + 1
        accounts = list(self.node.servers if self.server_accounts is None else self.server_accounts)
        if min(self.owners) < 0 or n_servers > len(accounts):
            raise ConfigError("owners", f"ES indices must lie in [0, {len(accounts)})")
        workers = sorted(set(range(n_eds) if self.workers is None else self.workers))
        if not workers or not 0 <= workers[0] <= workers[-1] < n_eds:
            raise ConfigError("workers", f"need at least one ED index in [0, {n_eds})")
        config = self.config or AggregatorConfig(
            num_params=self.task.num_params, max_workers=len(workers)
        )
        # Widen the submission window to what the workers' submissions can need in this
        # chain's blocks, so that a block boundary never shuts an honest ED out.
        self.registered: list[int] = workers  # the EDs that take part, ascending
        needed = submission_blocks(config, len(workers), self.node.block_gas_limit)
        config = dataclasses.replace(config, round_blocks=max(config.round_blocks, needed))
        if config.num_params != self.task.num_params:
            raise ConfigError(
                "num_params",
                f"the aggregator has {config.num_params}, the model {self.task.num_params}",
            )
        sizes = [int(n) for n in self.task.data_sizes]
        self.servers = accounts[:n_servers]
        declared = [
            sum(sizes[ed] for ed in workers if self.owners[ed] == s) for s in range(n_servers)
        ]
        self.client = AggregatorClient.deploy(
            self.node,
            config,
            self.servers,
            [max(d, 1) for d in declared],
            publisher=self.node.requester,
        )
        self.devices: list[str] = [str(d) for d in devices[:n_eds]]
        for ed in workers:
            self.client.register_worker(self.servers[self.owners[ed]], self.devices[ed], sizes[ed])
        codec = self.client.codec
        initial = codec.quantize(self.task.initial_params, "initial model")
        reference = (
            codec.quantize(self.task.bootstrap_reference(), "bootstrap reference")
            if self.bootstrap
            else None
        )
        self.client.publish_initial_model(initial, reference, publisher=self.node.requester)
        self._stakes = [float(w) for w in self.node.pos.shares]  # the election's when FL starts

    def global_params(self) -> Vector:
        """The current global model, read from the chain and dequantised."""
        return self.client.codec.dequantize(self.client.global_model().values)

    def run_round(self, round: int, down: Collection[int] = ()) -> ChainRound:
        """One FL round with ESs ``down`` failed (see the module docstring)."""
        live, participants = self.begin_round(round, down)
        params = self.global_params()
        started = time.perf_counter()
        raw = self.task.submissions(params, round, participants)
        train_seconds = time.perf_counter() - started
        codec = self.client.codec
        screened = screen_updates(raw, self.task.num_params, codec)
        chain_started = time.perf_counter()
        ledger_start = len(self.node.ledger.entries)
        chain_round = self.client.open_round(self.servers[live[0]])
        quantised = {
            self.devices[ed]: codec.quantize(u, f"update of ED {ed}")
            for ed, u in screened.valid.items()
        }
        subs = self.client.submit_round(chain_round, quantised) if quantised else []
        self.client.wait_for_deadline(chain_round)
        ed_of = self.ed_of()
        verdicts = {ed_of[s.device]: s.verdict for s in subs}
        return self.close_round(
            RoundStart(round, tuple(sorted(down)), live, tuple(participants)),
            chain_round,
            verdicts,
            dict(screened.rejected),
            train_seconds,
            chain_started,
            ledger_start,
        )

    def ed_of(self) -> dict[str, int]:
        """ED index of each device address."""
        return {device: ed for ed, device in enumerate(self.devices)}

    def begin_round(self, round: int, down: Collection[int] = ()) -> tuple[list[int], list[int]]:
        """The live ESs and the participating EDs (those of live ESs) of ``round``; the failed
        ESs leave the proof-of-stake election for the round."""
        live = [s for s in range(len(self.servers)) if s not in down]
        if not live:
            raise ConfigError("failures", f"every ES is down in round {round}")
        self.node.set_stakes(self._stakes_without({self.servers[s] for s in down}))
        return live, [ed for ed in self.registered if self.owners[ed] not in down]

    def close_round(
        self,
        start: RoundStart,
        chain_round: int,
        verdicts: dict[int, Verdict],
        rejected: dict[int, str],
        train_seconds: float,
        chain_started: float,
        ledger_start: int,
    ) -> ChainRound:
        """After the deadline: the last live ES aggregates (if any update was accepted), the
        new model is read back from the chain and scored; ``verdicts`` are the contract's per
        ED, ``rejected`` the reasons of EDs that sent nothing (screening, a dropped ED)."""
        rejected = dict(rejected)
        for ed, verdict in verdicts.items():
            if verdict != Verdict.ACCEPTED:
                rejected[ed] = verdict.name
        ed_of = self.ed_of()
        if any(v == Verdict.ACCEPTED for v in verdicts.values()):
            aggregation = self.client.aggregate(chain_round, self.servers[start.live[-1]])
            for device in aggregation.excluded:
                rejected[ed_of[device]] = Verdict.NORM_BOUND.name
        accepted = tuple(
            sorted(ed for ed, v in verdicts.items() if v == Verdict.ACCEPTED and ed not in rejected)
        )
        model = self.client.global_model()
        chain_seconds = time.perf_counter() - chain_started
        entries = self.node.ledger.entries[ledger_start:]
        ed_gas: dict[int, int] = {}
        for e in entries:
            if e.role == "ed" and e.sender in ed_of:
                ed_gas[ed_of[e.sender]] = ed_gas.get(ed_of[e.sender], 0) + e.gas_used
        evaluation = self.task.evaluate(self.client.codec.dequantize(model.values))
        return ChainRound(
            round=start.round,
            chain_round=chain_round,
            accuracy=evaluation.accuracy,
            loss=evaluation.loss,
            participants=start.participants,
            accepted=accepted,
            rejected=dict(sorted(rejected.items())),
            failed_servers=start.down,
            gas=sum(e.gas_used for e in entries),
            ed_gas=ed_gas,
            train_seconds=train_seconds,
            chain_seconds=chain_seconds,
            model_hash="0x" + model.model_hash.hex(),
        )

    def _stakes_without(self, down: Collection[str]) -> list[float]:
        """The stakes with the failed ESs' set to 0 (a failed ES produces no blocks); if no
        live ES holds stake, the live ones share the election equally."""
        pairs = zip(self.node.servers, self._stakes, strict=True)
        stakes = [0.0 if a in down else w for a, w in pairs]
        if sum(stakes) > 0:
            return stakes
        return [0.0 if a in down else 1.0 for a in self.node.servers]

    def run(
        self,
        rounds: int,
        failures: Sequence[Failure] = (),
        on_round: Callable[[ChainRound], None] | None = None,
    ) -> list[ChainRound]:
        """``rounds`` FL rounds; ``on_round`` sees each as it completes (progress lines)."""
        records = []
        for r in range(rounds):
            down = set().union(*(f.down(r) for f in failures)) if failures else set()
            record = self.run_round(r, down)
            records.append(record)
            if on_round is not None:
                on_round(record)
        return records


def split_population(
    node: ChainNode,
    task: ChainTask,
    owners: Sequence[int],
    config: AggregatorConfig,
    n_tasks: int,
    *,
    bootstrap: bool = True,
    device_accounts: Sequence[str] | None = None,
) -> list[OnChainFL]:
    """One population of EDs shared out over ``n_tasks`` aggregator tasks on ``node``: ED ``i``
    trains in task ``i mod n_tasks``, so every task has EDs of every ES. For a population
    larger than one aggregator takes per round (its aggregation transaction carries a chunk of
    every submitter's update and must fit the per-transaction caps,
    :func:`tbcim.blockchain.aggregator.fits_limits`). Each task is its own contract (with
    ``max_workers`` = its EDs) and its own global model, from the same initial model."""
    n_eds = len(owners)
    if isinstance(n_tasks, bool) or not 1 <= n_tasks <= n_eds:
        raise ConfigError(
            "tasks", f"must lie in [1, {n_eds}] (one ED each at least), got {n_tasks}"
        )
    shares = [list(range(k, n_eds, n_tasks)) for k in range(n_tasks)]
    return [
        OnChainFL(
            node,
            task,
            owners,
            dataclasses.replace(config, max_workers=len(eds)),
            bootstrap,
            eds,
            device_accounts=device_accounts,
        )
        for eds in shares
    ]
