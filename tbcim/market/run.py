"""The market end to end: consecutive tasks through FLMarket and BCFL (TBCIM section II-A).

One task, in the paper's steps:

1. **publish** — the requester puts the reward in escrow; the terms commit to the mechanism
   (name ‖ model-file hash), the evaluation set's hash, the target accuracy and the deadlines;
2. **pricing** — each candidate ES selects its EDs by EMD and prices them at its Stackelberg
   equilibrium; its cost, with c_s^b (32) at the g_e measured on this chain, is its bid
   (:mod:`tbcim.market.bidding`);
3. **bidding** — sealed bids: every ES commits, then reveals;
4. **auction** — every revealing ES computes the mechanism's outcome from the revealed bids and
   the seed of their salts (:mod:`tbcim.market.outcome`) and votes for it; a majority makes
   it final on chain;
5. **accept** — the requester deploys the task's FLAggregator with the winners as its ESs; each
   winner checks it and accepts, recording its EDs' Stackelberg pay V_i;
6. **training** — the winners' EDs run BCFL on that aggregator (:class:`OnChainFL`); the global
   model's hash is on chain. The rounds run in this process, or with the Flower engine
   (issue 13, :mod:`tbcim.fl.flower`) with the EDs as Flower clients on Ray, each signing its
   own transactions; the EDs' accounts are then their own keys, with which this process signs
   their calibration and claim transactions;
7. **attest** — after the training deadline the requester attests the accuracy of that model
   hash on its committed evaluation set (the task's test set);
8. **settlement** — the escrow pays the ESs (their EDs' amounts carved out first), each ED
   claims its V_i with a Merkle proof, everyone withdraws, and the balances are reconciled to
   the wei against the mechanism's payments and the V_i.

Between tasks the ESs' stakes in the block-producer election become their cumulative revenue
(settled payments), and g_e is re-measured from the last task's FL receipts. A task whose ESs
cannot all bid, or whose auction cannot be finalised, expires and refunds the requester.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from eth_utils import keccak
from hexbytes import HexBytes
from numpy.typing import NDArray

from chain_node.errors import ChainError
from chain_node.gas_ledger import GasLedger
from tbcim.blockchain.fl_market import (
    FLMarketClient,
    TaskStatus,
    TaskTerms,
    bid_commitment,
    device_tree,
)
from tbcim.errors import ConfigError, TbcimError
from tbcim.fl.onchain import ChainRound, Failure, OnChainFL
from tbcim.fl.partitions import ServerTable, server_table
from tbcim.fl.streams import derive_seed
from tbcim.fl.task import FLTask, build_task
from tbcim.market.bidding import ServerBid, server_bids
from tbcim.market.config import WEI_PER_UNIT, MarketConfig
from tbcim.market.folder import RunFolder
from tbcim.market.outcome import Award, LoadedMechanism, Reveal, compute_award, load_mechanism
from tbcim.market.report import write_run
from tbcim.market.selection import eds_per_server, owners_of
from tbcim.market.training import CANDIDATES, SELECTION
from tbcim.market.verify import spec_path
from tbcim.results import write_bytes

if TYPE_CHECKING:
    from chain_node.node import ChainNode
    from tbcim.fl.flower.engine import FlowerOptions

#: Stream purposes of this module (after tbcim.market.training's 100-101).
SALTS = 102
#: Extra blocks of the accept window per candidate ED (registration) and fixed.
ACCEPT_BLOCKS_PER_ED, ACCEPT_BLOCKS = 1, 20


class ReconciliationError(TbcimError):
    """On-chain balances differ from the mechanism's payments and the EDs' V_i."""


@dataclass
class TaskResult:
    """What one task produced; ``as_dict`` is its entry in summary.json."""

    task: int
    task_id: int
    status: str
    note: str = ""
    bids: list[ServerBid] = field(default_factory=list)
    award: Award | None = None
    winners: list[int] = field(default_factory=list)  # ES indices
    payments_wei: dict[int, int] = field(default_factory=dict)  # ES -> wei
    ed_payments_wei: dict[int, int] = field(default_factory=dict)  # ED -> wei
    rounds: list[ChainRound] = field(default_factory=list)
    accuracy: float | None = None
    model_hash: str | None = None
    target_met: bool | None = None
    g_e: float = 0.0
    reconciled: bool | None = None
    checks: dict[str, Any] = field(default_factory=dict)
    gas_by_function: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds_by_phase: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        by_es = {b.server: b for b in self.bids}
        es_profit = {
            s: self.payments_wei[s] / WEI_PER_UNIT - by_es[s].cost for s in self.payments_wei
        }
        return {
            "task": self.task,
            "task_id": self.task_id,
            "status": self.status,
            "note": self.note,
            "g_e": self.g_e,
            "bids": [
                {
                    "server": b.server,
                    "bids": b.bids,
                    "cost": b.cost,
                    "bid_wei": str(b.bid_wei(WEI_PER_UNIT)),
                    "data_size": b.data_size,
                    "emd": b.emd_ppm / 1e6,
                    "price": b.price,
                    "blockchain_cost": b.blockchain_cost,
                    "workers": list(b.workers),
                }
                for b in self.bids
            ],
            "award": None if self.award is None else self.award.as_dict(),
            "winners": self.winners,
            "payments": {str(s): str(w) for s, w in self.payments_wei.items()},
            "ed_payments": {str(ed): str(w) for ed, w in self.ed_payments_wei.items()},
            "es_profit": {str(s): v for s, v in es_profit.items()},
            "ed_profit": {
                str(ed): p
                for s in self.winners
                for ed, p in zip(by_es[s].workers, by_es[s].ed_profits, strict=True)
            },
            "final_accuracy": self.accuracy,
            "model_hash": self.model_hash,
            "target_met": self.target_met,
            "reconciled": self.reconciled,
            "reconciliation": self.checks,
            "rounds": [dataclasses.asdict(r) for r in self.rounds],
            "gas_by_function": self.gas_by_function,
            "seconds_by_phase": self.seconds_by_phase,
        }


def gas_by_function(ledger: GasLedger, start: int) -> dict[str, dict[str, int]]:
    """Calls and total gas of the ledger's entries from ``start`` on, per ``Contract.function``
    (:meth:`GasLedger.summary` of that slice)."""
    rows = GasLedger(ledger.entries[start:]).summary()
    return {key: {"calls": int(r["calls"]), "gas": int(r["total"])} for key, r in rows.items()}


def eval_set_hash(task: FLTask) -> bytes:
    """sha256 of the evaluation set the requester commits to (the task's test images and
    labels, as float32 and int64 bytes)."""
    d = task.dataset
    x = np.ascontiguousarray(d.x_test[task.test_indices], dtype=np.float32)
    y = np.ascontiguousarray(d.y_test[task.test_indices], dtype=np.int64)
    return hashlib.sha256(x.tobytes() + y.tobytes()).digest()


def calibrate_g_e(node: ChainNode, config: MarketConfig, task: FLTask) -> float:
    """g_e before the first task: one synthetic round of ``market.calibration_eds`` EDs on an
    aggregator of ``task``'s model size and settings, on ``node`` (later tasks re-measure it
    from their own FL receipts)."""
    from tbcim.blockchain.smoke import TaskOnChain

    k = min(config.terms.calibration_eds, len(node.devices))
    agg = config.training.run.chain.aggregator(task.num_params)
    settings = {
        f.name: getattr(agg, f.name)
        for f in dataclasses.fields(agg)
        if f.name not in ("num_params", "max_workers")
    }
    start = len(node.ledger.entries)
    sizes = [int(n) for n in task.data_sizes[:k]]
    probe = TaskOnChain(
        node, task.num_params, node.devices[:k], sizes, seed=config.seed, **settings
    )
    probe.run_round()
    return GasLedger(node.ledger.entries[start:]).g_e()


@dataclass(frozen=True)
class MarketSetup:
    """What a market needs before its chain: the mechanism, the candidate EDs of every ES and
    their data (the same for every task). Built by :func:`prepare_market`, which checks that
    they can be drawn at all before a run folder or a chain exists."""

    mechanism: LoadedMechanism
    counts: tuple[int, ...]  # candidate EDs per ES
    base_task: FLTask  # task 0: the partition every task shares
    table: ServerTable
    owners: tuple[int, ...]  # ES of every ED


def prepare_market(config: MarketConfig) -> MarketSetup:
    """Load the mechanism and draw the candidates and the partition (ConfigError if the data
    cannot be split so, e.g. too many EDs for ``fl.min_samples``)."""
    c = config
    mechanism = load_mechanism(c.terms.mechanism, c.model_path(), c.servers)
    fl = c.training.run.fl
    rng = np.random.default_rng(derive_seed(CANDIDATES, fl.seed))
    counts = tuple(eds_per_server(rng, c.servers, c.training.min_eds, c.training.max_eds))
    base_task = build_task(fl, n_eds=sum(counts))
    table = server_table(base_task.partition, counts)
    return MarketSetup(mechanism, counts, base_task, table, tuple(owners_of(table)))


def task_bids(
    config: MarketConfig, setup: MarketSetup, reference: NDArray[np.float64], g_e: float
) -> list[ServerBid]:
    """Every candidate ES's bid for a task with reference P_a ``reference``: its Stackelberg
    cost with c_s^b (32) at ``g_e`` (:func:`tbcim.market.bidding.server_bids`)."""
    return server_bids(
        setup.table,
        reference,
        derive_seed(SELECTION, config.seed),
        config.scenario(),
        config.training.selection.data_scale,
        g_e,
        setup.mechanism.setting.bid_high,
    )


@dataclass
class MarketRun:
    """A market of ``config.terms.tasks`` consecutive tasks on ``node`` (module docstring)."""

    config: MarketConfig
    node: ChainNode
    folder: RunFolder
    setup: MarketSetup
    log: Callable[[str], None] = print
    #: The Flower engine's options (None: the local engine trains every ED in this process).
    flower: FlowerOptions | None = None
    #: Whether the EDs' accounts are their own keys (:func:`node_for`), funded here.
    ed_keys: bool = False
    market: FLMarketClient = field(init=False)

    def __post_init__(self) -> None:
        c, setup = self.config, self.setup
        self.mechanism = setup.mechanism
        self.counts = list(setup.counts)
        self.base_task = setup.base_task
        self.table = setup.table
        self.owners = list(setup.owners)
        self.revenue_wei = [0] * c.servers
        self.results: list[TaskResult] = []
        self.seconds: dict[str, float] = {}
        self.g_e = 0.0
        self.market_block = 0  # where the market contract's logs start
        self._phase: tuple[int | None, str] = (None, "setup")

    # ------------------------------------------------------------------ helpers
    @contextlib.contextmanager
    def phase(self, result: TaskResult | None, name: str) -> Iterator[None]:
        """Time a phase (into the task's and the run's seconds_by_phase)."""
        self._phase = (None if result is None else result.task, name)
        started = time.perf_counter()
        yield
        seconds = time.perf_counter() - started
        if result is not None:
            result.seconds_by_phase[name] = result.seconds_by_phase.get(name, 0.0) + seconds
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def _advance_past(self, block: int) -> None:
        if self.node.block_number <= block:
            self.node.advance_blocks(block + 1 - self.node.block_number)

    def _step(self, task: int | None, name: str, check: Any, line: str) -> None:
        replayed = self.folder.step(task, name, check)
        self.log(("  (replayed) " if replayed else "  ") + line)

    # ------------------------------------------------------------------ the run
    def run(self) -> dict[str, Any]:
        """Every task, then the summary; failures are recorded in the folder and re-raised."""
        try:
            return self._run()
        except Exception as err:
            task, phase = self._phase
            self.folder.fail(task, phase, f"{type(err).__name__}: {err}")
            if isinstance(err, TbcimError):
                raise
            raise ChainError(
                f"the run stopped in task {task}, phase {phase}: {type(err).__name__}: {err}. "
                f"{self.folder.path}/progress.json records how far it got; continue with "
                f"`tbcim market run --resume {self.folder.path}`"
            ) from err

    @property
    def engine(self) -> str:
        """The training engine: ``local`` or ``flower``."""
        return "local" if self.flower is None else "flower"

    def _run(self) -> dict[str, Any]:
        c = self.config
        workers = "" if self.flower is None else f" x{self.flower.workers}"
        self.log(
            f"market on {self.node.backend} ({self.engine} engine{workers}): {c.servers} ESs "
            f"with {self.counts} candidate EDs, {c.terms.tasks} tasks, mechanism "
            f"{self.mechanism.name}, seed {c.seed}"
        )
        with self.phase(None, "calibration"):
            if self.ed_keys:  # the EDs' own keys pay their gas from the requester's ether
                from tbcim.fl.flower.spec import ED_FUNDS_WEI

                self.node.fund(self.node.devices, ED_FUNDS_WEI)
            self.node.keep_logs("FLMarket")  # for chain/market_logs.json (verify)
            self.market = FLMarketClient.deploy(self.node, self.node.requester)
            self.market_block = self.node.block_number
            self.g_e = calibrate_g_e(self.node, self.config, self.base_task)
        self._step(None, "calibration", round(self.g_e), f"g_e measured on chain: {self.g_e:,.0f}")
        for t in range(c.terms.tasks):
            self.log(f"task {t + 1}/{c.terms.tasks}")
            self.results.append(self.run_task(t))
        self.folder.complete()
        return self.summary()

    def run_task(self, t: int) -> TaskResult:
        c, node = self.config, self.node
        ledger_start = len(node.ledger.entries)
        task = build_task(c.training.run.fl, sum(self.counts), self.base_task.dataset, t)
        result = TaskResult(task=t, task_id=0, status="open", g_e=self.g_e)
        with self.phase(result, "pricing"):
            g_e = self.g_e if c.terms.blockchain_cost else 0.0
            result.bids = task_bids(c, self.setup, task.reference, g_e)
        bidders = [b for b in result.bids if b.bids]
        self.log(
            f"  pricing: {len(bidders)}/{c.servers} ESs can serve; costs "
            + " ".join(f"{b.cost:.4f}" for b in result.bids)
        )
        with self.phase(result, "publish"):
            terms = self._terms(task, t)
            result.task_id = self.market.publish_task(node.requester, c.terms.reward_wei, terms)
        self._step(t, "publish", result.task_id, f"published task {result.task_id}")
        with self.phase(result, "bidding"):
            self._bid(result, terms, bidders)
        with self.phase(result, "auction"):
            awarded = self._auction(result, terms)
        if awarded:
            with self.phase(result, "accept"):
                onchain = self._accept(result, task, terms)
            if onchain is not None:
                self._train(result, onchain, terms)
                with self.phase(result, "attest"):
                    self._attest(result, task, onchain)
        with self.phase(result, "settlement"):
            self._settle(result, terms)
        result.gas_by_function = gas_by_function(node.ledger, ledger_start)
        fl_gas = GasLedger(node.ledger.entries[ledger_start:])
        if fl_gas.ed_round_gas():
            self.g_e = fl_gas.g_e()
        return result

    def _terms(self, task: FLTask, t: int) -> TaskTerms:
        """The task's terms; its spec JSON, whose keccak the terms commit to, is saved as
        ``specs/task-<t>.json`` (``verify`` checks the commitment)."""
        c, m = self.config, self.mechanism
        chain = c.training.run.chain
        agg = chain.aggregator(task.num_params)
        rounds = c.training.run.fl.global_rounds
        n_eds = sum(self.counts)
        # A round: open, commit window, submission window (widened for the block gas), chunked
        # aggregation and grace, bounded generously; the chain mines one block per transaction.
        per_round = agg.commit_blocks + agg.round_blocks + 4 * n_eds + agg.grace_blocks + 10
        w = c.terms.phase_blocks + c.servers
        windows = [w, w, w, w + ACCEPT_BLOCKS + ACCEPT_BLOCKS_PER_ED * n_eds, rounds * per_round, w]
        eval_hash = eval_set_hash(task)
        low, high = m.setting.bid_low, m.setting.bid_high
        spec = {
            "mechanism": m.name,
            "model_sha256": m.model_sha256,
            "setting": m.setting.name,
            "eval_set_sha256": eval_hash.hex(),
            "dataset": c.training.run.fl.dataset,
            "target_accuracy": c.terms.target_accuracy,
            "global_rounds": rounds,
            "reward_wei": str(c.terms.reward_wei),
            "wei_per_unit": str(WEI_PER_UNIT),
            "windows": windows,
            "reference": [float(v) for v in task.reference],
        }
        spec_bytes = json.dumps(spec, sort_keys=True).encode()
        write_bytes(spec_path(self.folder.path, t), spec_bytes)
        return TaskTerms.schedule(
            self.node.block_number + 1,
            windows,
            spec=keccak(spec_bytes),
            mechanism=m.commitment,
            eval_set=eval_hash,
            target_accuracy=c.terms.target_accuracy,
            min_bidders=m.setting.n_servers,
            bid_low=int(np.ceil(low * WEI_PER_UNIT)),
            bid_high=int(np.floor(high * WEI_PER_UNIT)),
        )

    def _bid(self, result: TaskResult, terms: TaskTerms, bidders: list[ServerBid]) -> None:
        """Sealed bids: each ES commits, then (after the commit deadline) reveals."""
        node, t = self.node, result.task
        salts = {
            b.server: keccak(derive_seed(SALTS, self.config.seed, t, b.server).to_bytes(32, "big"))
            for b in bidders
        }
        for b in bidders:
            es = node.servers[b.server]
            commitment = bid_commitment(
                result.task_id, es, b.bid_wei(WEI_PER_UNIT), b.data_size, b.emd_ppm, salts[b.server]
            )
            self.market.commit_bid(es, result.task_id, commitment)
        self._advance_past(terms.commit_deadline)
        for b in bidders:
            self.market.reveal_bid(
                node.servers[b.server],
                result.task_id,
                b.bid_wei(WEI_PER_UNIT),
                b.data_size,
                b.emd_ppm,
                salts[b.server],
            )
        self._advance_past(terms.reveal_deadline)
        self._step(
            result.task,
            "bidding",
            [b.server for b in bidders],
            f"bidding: {len(bidders)} sealed bids committed and revealed",
        )

    def _auction(self, result: TaskResult, terms: TaskTerms) -> bool:
        """Each revealer computes the outcome and votes until a majority makes it final."""
        reveals = [
            Reveal(r.bidder, r.bid, r.data_size, r.emd_ppm)
            for r in self.market.revealed_bids(result.task_id)
        ]
        seed = self.market.task(result.task_id).seed
        needed = self.mechanism.setting.n_servers
        if len(reveals) < needed:
            return self._expire(
                result, terms.award_deadline, f"only {len(reveals)} of the {needed} bids needed"
            )
        award = compute_award(self.mechanism, reveals, seed, WEI_PER_UNIT)
        result.award = award
        escrow = self.config.terms.reward_wei
        if sum(award.payments_wei) > escrow:
            return self._expire(
                result,
                terms.award_deadline,
                f"the mechanism's payments {sum(award.payments_wei)} wei exceed the escrow "
                f"{escrow} wei (market.reward)",
            )
        for voter in award.bidders:
            if self.market.task(result.task_id).status != TaskStatus.OPEN:
                break
            self.market.submit_outcome(voter, result.task_id, award.winners, award.payments_wei)
        chain = self.market.task(result.task_id)
        index: dict[str, int] = {str(a): s for s, a in enumerate(self.node.servers)}
        result.winners = [index[str(w)] for w in chain.winners]
        result.payments_wei = {
            index[str(w)]: p for w, p in zip(chain.winners, chain.payments, strict=True)
        }
        self._step(
            result.task,
            "auction",
            "0x" + chain.outcome.hex(),
            f"auction: winners ES {result.winners}, payments "
            + ", ".join(f"{p / WEI_PER_UNIT:.4f}" for p in result.payments_wei.values()),
        )
        if chain.status == TaskStatus.CANCELLED:
            result.status, result.note = "cancelled", "the mechanism bought from no ES"
            return False
        return True

    def _expire(self, result: TaskResult, deadline: int, why: str) -> bool:
        """The task cannot be awarded: it expires after ``deadline`` and refunds the escrow."""
        self._advance_past(deadline)
        self.market.expire_task(self.node.requester, result.task_id)
        result.status, result.note = "cancelled", why
        self._step(result.task, "expired", why, f"task expired and refunded: {why}")
        return False

    def _accept(self, result: TaskResult, task: FLTask, terms: TaskTerms) -> OnChainFL | None:
        """Deploy the task's aggregator for the winners; each winner checks it and accepts."""
        node, c = self.node, self.config
        by_es = {b.server: b for b in result.bids}
        winners = result.winners
        slot = {s: i for i, s in enumerate(winners)}
        workers = sorted(ed for s in winners for ed in by_es[s].workers)
        owners = [slot.get(s, 0) for s in self.owners]
        agg = c.training.run.chain.aggregator(task.num_params)
        onchain = OnChainFL(
            node,
            task,
            owners,
            dataclasses.replace(agg, max_workers=len(workers)),
            c.training.run.chain.bootstrap_reference,
            workers,
            server_accounts=[node.servers[s] for s in winners],
        )
        aggregator = onchain.client.contract.address
        self.market.set_aggregator(node.requester, result.task_id, aggregator)
        on_chain_servers = [
            onchain.client.contract.functions.servers(i).call() for i in range(len(winners))
        ]
        if on_chain_servers != [node.servers[s] for s in winners]:
            raise ChainError(f"the aggregator at {aggregator} does not list the winners")
        for s in winners:
            bid = by_es[s]
            amounts = bid.ed_payments_wei(WEI_PER_UNIT)
            if sum(amounts) > result.payments_wei[s]:
                self._expire(result, terms.accept_deadline, f"ES {s}'s EDs cost more than its pay")
                return None
            devices = [node.devices[ed] for ed in bid.workers]
            self.market.accept_award(node.servers[s], result.task_id, aggregator, devices, amounts)
            result.ed_payments_wei.update(dict(zip(bid.workers, amounts, strict=True)))
        result.status = "training"
        self._step(
            result.task,
            "accept",
            aggregator,
            f"accept: aggregator {aggregator}, {len(workers)} EDs of ESs {winners} registered",
        )
        return onchain

    def _train(self, result: TaskResult, onchain: OnChainFL, terms: TaskTerms) -> None:
        rounds = self.config.training.run.fl.global_rounds
        f = self.config.training.run.failure
        winners = result.winners
        down = tuple(winners.index(s) for s in f.servers if s in winners)
        failures = [Failure(down, f.start, f.end)]

        def on_round(r: ChainRound) -> None:
            self._step(
                result.task,
                f"round {r.round + 1}",
                r.model_hash,
                f"round {r.round + 1:>3}/{rounds}: acc {r.accuracy:.4f} included "
                f"{len(r.accepted)}/{len(r.participants)} gas {r.gas:,} "
                f"train {r.train_seconds:.1f}s chain {r.chain_seconds:.1f}s",
            )
            key = f"round {r.round + 1}"
            result.seconds_by_phase[key] = r.train_seconds + r.chain_seconds

        with self.phase(result, "training"):
            if self.flower is None:
                result.rounds = onchain.run(rounds, failures, on_round)
            else:
                from tbcim.fl.flower.engine import run_flower_rounds

                result.rounds = run_flower_rounds(onchain, rounds, failures, on_round, self.flower)
        if self.node.block_number > terms.training_deadline:
            raise ChainError(
                f"training ended at block {self.node.block_number}, after the training "
                f"deadline {terms.training_deadline}: widen the per-round bound"
            )
        self._advance_past(terms.training_deadline)

    def _attest(self, result: TaskResult, task: FLTask, onchain: OnChainFL) -> None:
        """The requester scores the model on chain on its committed evaluation set."""
        model = onchain.client.global_model()
        accuracy = task.evaluate(onchain.global_params()).accuracy
        self.market.attest(self.node.requester, result.task_id, model.model_hash, accuracy)
        chain = self.market.task(result.task_id)
        result.accuracy = accuracy
        result.model_hash = "0x" + model.model_hash.hex()
        result.target_met = chain.status == TaskStatus.COMPLETED
        result.status = "completed" if result.target_met else "failed"
        self._step(
            result.task,
            "attest",
            result.model_hash,
            f"attest: accuracy {accuracy:.4f} of model {result.model_hash[:12]}…, target "
            f"{self.config.terms.target_accuracy} {'met' if result.target_met else 'missed'}",
        )

    def _settle(self, result: TaskResult, terms: TaskTerms) -> None:
        """Claims, withdrawals, reconciliation to the wei, and the new stakes."""
        node, market = self.node, self.market
        paid = result.status == "completed"
        if not paid:
            result.ed_payments_wei, result.payments_wei = {}, {}
        w3 = node.w3
        checks: dict[str, Any] = {}
        by_es = {b.server: b for b in result.bids}
        # EDs claim their V_i (pull payments): their ether grows by it, less the claim's fee.
        ed_ok = True
        for s in result.winners if paid else []:
            bid = by_es[s]
            devices = [node.devices[ed] for ed in bid.workers]
            amounts = [result.ed_payments_wei[ed] for ed in bid.workers]
            tree = device_tree(devices, amounts)
            for device, amount in zip(devices, amounts, strict=True):
                before = w3.eth.get_balance(device)
                receipt = market.claim_device_pay(
                    device, result.task_id, node.servers[s], amount, tree.proof(device)
                )
                ed_ok &= w3.eth.get_balance(device) == before + amount - self._fees(device, receipt)
        checks["eds_received_v_i"] = ed_ok
        # ESs and the requester withdraw what the contract credited them.
        expected = {
            node.servers[s]: p - sum(result.ed_payments_wei[ed] for ed in by_es[s].workers)
            for s, p in result.payments_wei.items()
        }
        spent = sum(result.payments_wei.values())
        expected[node.requester] = self.config.terms.reward_wei - spent
        credited_ok = True
        for account, owed in expected.items():
            credited = market.balance_of(account)
            credited_ok &= credited == owed
            if credited:
                before = w3.eth.get_balance(account)
                receipt = market.withdraw(account, credited)
                fees = self._fees(account, receipt)
                credited_ok &= w3.eth.get_balance(account) == before + credited - fees
        checks["credits_match_payments"] = credited_ok
        checks["contract_holds_nothing"] = w3.eth.get_balance(market.contract.address) == 0
        checks["escrow_conserved"] = (
            sum(expected.values()) + sum(result.ed_payments_wei.values())
            == self.config.terms.reward_wei
        )
        result.checks = checks
        result.reconciled = all(checks.values())
        for s, p in result.payments_wei.items():
            self.revenue_wei[s] += p
        if sum(self.revenue_wei):
            node.set_stakes([float(r) for r in self.revenue_wei])
        self._step(
            result.task,
            "settlement",
            result.reconciled,
            f"settlement: ESs paid {spent / WEI_PER_UNIT:.4f}, EDs "
            f"{sum(result.ed_payments_wei.values()) / WEI_PER_UNIT:.4f}, reconciled to the wei: "
            f"{result.reconciled}; stakes now {self._shares()}",
        )
        if not result.reconciled:
            raise ReconciliationError(f"task {result.task}: balances do not reconcile: {checks}")

    def _fees(self, account: str, receipt: Any) -> int:
        """What ``account`` paid for the block of ``receipt`` (its own transaction's fee), less
        the priority fees it earned if it produced that block (ESs are block producers)."""
        fee = int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])
        block = self.node.w3.eth.get_block(receipt["blockNumber"], full_transactions=False)
        if block["miner"] != account:
            return fee
        base = int(block.get("baseFeePerGas", 0))
        tips = 0
        for tx in block["transactions"]:
            r = self.node.w3.eth.get_transaction_receipt(HexBytes(tx))  # type: ignore[arg-type]
            tips += int(r["gasUsed"]) * (int(r["effectiveGasPrice"]) - base)
        return fee - tips

    def _shares(self) -> str:
        return "[" + " ".join(f"{s:.2f}" for s in self.node.pos.shares) + "]"

    # ------------------------------------------------------------------ the summary
    def summary(self) -> dict[str, Any]:
        tasks = [r.as_dict() for r in self.results]
        payments: dict[str, int] = {}
        ed_payments: dict[str, int] = {}
        for r in self.results:
            for s, w in r.payments_wei.items():
                payments[str(s)] = payments.get(str(s), 0) + w
            for ed, w in r.ed_payments_wei.items():
                ed_payments[str(ed)] = ed_payments.get(str(ed), 0) + w
        done = [r for r in self.results if r.accuracy is not None]
        return {
            "mechanism": self.mechanism.name,
            "model_sha256": self.mechanism.model_sha256,
            "seed": self.config.seed,
            "backend": self.node.backend,
            "engine": self.engine,
            "workers": None if self.flower is None else self.flower.workers,
            "ed_keys": self.ed_keys,  # the EDs' accounts are their own keys (node_for)
            "market_contract": self.market.contract.address,
            "market_block": self.market_block,
            "server_accounts": list(self.node.servers),
            "device_accounts": list(self.node.devices),
            "servers": self.config.servers,
            "candidates": self.counts,
            "tasks": tasks,
            "winners": [r.winners for r in self.results],
            "payments": {k: str(v) for k, v in payments.items()},
            "ed_payments": {k: str(v) for k, v in ed_payments.items()},
            "final_accuracy": done[-1].accuracy if done else None,
            "reconciled": all(r.reconciled for r in self.results),
            "stakes": [float(s) for s in self.node.pos.shares],
            # the whole run: the tasks' and the set-up's (market deployment, g_e calibration)
            "gas_by_function": gas_by_function(self.node.ledger, 0),
            "seconds_by_phase": self.seconds,
        }


def check_engine(config: MarketConfig, rpc_url: str | None, flower: bool, ed_keys: bool) -> None:
    """What the Flower engine (``flower``) or the EDs' own keys need, checked before any work:
    a JSON-RPC node (Ray workers are other processes and cannot see the embedded chain, whose
    accounts are its own keys) and, for the Flower engine, an attack it can run
    (:func:`tbcim.fl.flower.engine.check_flower_config`)."""
    if (flower or ed_keys) and not rpc_url:
        raise ConfigError(
            "--rpc-url",
            "the Flower engine's EDs sign with their own keys and run in other processes: "
            "they need a JSON-RPC node (anvil started by `tbcim market run`, or --rpc-url), "
            "not the embedded chain",
        )
    if flower:
        from tbcim.fl.flower.engine import check_flower_config

        check_flower_config(config.training.run.fl.attack)


def node_for(
    config: MarketConfig, setup: MarketSetup, rpc_url: str | None, ed_keys: bool = False
) -> ChainNode:
    """The chain: an external node at ``rpc_url``, else the embedded py-evm chain. It holds the
    requester, the ESs and one account per candidate ED. With ``ed_keys`` (the Flower engine's
    EDs; a JSON-RPC node only) the EDs' accounts are their own keys
    (:func:`tbcim.fl.flower.spec.ed_account`), with which the node signs their transactions."""
    from chain_node.node import ChainNode

    fl = config.training.run.fl
    n, eds = config.servers, sum(setup.counts)
    check_engine(config, rpc_url, False, ed_keys)
    if rpc_url and ed_keys:
        from tbcim.fl.flower.spec import ed_account

        keys = [ed_account(fl.seed, ed) for ed in range(eds)]
        return ChainNode.connect(
            rpc_url, n_servers=n, n_devices=eds, seed=fl.seed, device_keys=keys
        )
    if rpc_url:
        return ChainNode.connect(rpc_url, n_servers=n, n_devices=eds, seed=fl.seed)
    return ChainNode.embedded(n_servers=n, n_devices=eds, seed=fl.seed)


def run_market(
    config: MarketConfig,
    folder: RunFolder,
    rpc_url: str | None = None,
    log: Callable[[str], None] = print,
    setup: MarketSetup | None = None,
    flower: FlowerOptions | None = None,
    ed_keys: bool = False,
) -> dict[str, Any]:
    """Run the market into ``folder`` and write its results; returns the summary. ``setup``
    (default: :func:`prepare_market`) lets a caller check it before creating the folder.

    ``flower`` trains on the Flower engine (:mod:`tbcim.fl.flower`; ``rpc_url`` required), whose
    EDs hold their own keys. ``ed_keys`` gives the local engine's EDs those keys too: an ED's
    address enters its commit-reveal commitments, so g_e (32), and with it the bids, moves by a
    few gas with the EDs' addresses; with the same keys the two engines differ in nothing
    else (tests/market/test_market_flower.py)."""
    keys = ed_keys or flower is not None
    check_engine(config, rpc_url, flower is not None, keys)
    setup = setup or prepare_market(config)
    node = node_for(config, setup, rpc_url, keys)
    run = MarketRun(config, node, folder, setup, log, flower, keys)
    summary = run.run()
    write_run(folder.path, summary, run.node)
    return summary
