"""Client for ``contracts/FLAggregator.sol``: one FL task's rounds on chain, shared by its ESs.

The winning ESs of a task share one aggregator (TBCIM section II-A: the ESs "cooperatively train
a single FL model"). Each ES registers its own EDs; the publisher (the requester) publishes the
initial model; any ES opens rounds. EDs commit to their updates (optional commit-reveal), then
submit them in whole chunks; the contract verifies each complete update and, after the deadline,
anyone entitled aggregates chunk by chunk, reading the submitted chunks back from their
``UpdateChunks`` logs. Everyone reads the global model and the reference (the last mean update)
from the ``GlobalChunk`` logs and checks them against the hashes the contract stores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from eth_utils import keccak
from numpy.typing import ArrayLike
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from tbcim.blockchain.codec import (
    MAX_UNIT_SCALE,
    PPM,
    WORD_BYTES,
    FixedPointCodec,
    HistoryState,
    IntArray,
    Verdict,
    chunk_spans,
    chunked_hash,
    commitment,
    norm_hint,
    num_words,
    pack_update,
    unpack_update,
)
from tbcim.errors import ConfigError, TbcimError

if TYPE_CHECKING:
    from chain_node.node import ChainNode

CONTRACT_NAME = "FLAggregator"
#: geth's and reth's transaction pool limit, and EIP-7825's per-transaction gas cap.
MAX_TX_BYTES = 131_072
MAX_TX_GAS = 2**24
MAX_PARAMS = 2**18
TX_OVERHEAD_BYTES = 1024


def tx_bounds(chunk_words: int, workers: int) -> tuple[int, int, int, int]:
    """The contract's ``txBounds``: upper bounds on the bytes and gas of the largest submit
    (one chunk) and aggregate (one chunk of ``workers`` submitters) transactions."""
    submit_bytes = TX_OVERHEAD_BYTES + WORD_BYTES * (4 * chunk_words + 12)
    submit_gas = 21_000 + 40 * submit_bytes + 6_000 * chunk_words + 400_000
    aggregate_bytes = TX_OVERHEAD_BYTES + WORD_BYTES * (
        chunk_words * (workers + 1) + 3 * workers + 8
    )
    aggregate_gas = (
        21_000
        + 40 * aggregate_bytes
        + (400 * chunk_words + 30_000) * (workers + 1)
        + 400_000
        + 400 * workers * workers  # the first call sorts the accepted norms
    )
    return submit_bytes, submit_gas, aggregate_bytes, aggregate_gas


def submit_gas_bound(chunk_words: int, chunks: int) -> int:
    """Upper bound on the gas of one submit carrying ``chunks`` chunks of ``chunk_words`` words:
    tx_bounds for their words, plus a fixed cost per chunk (its chain slot, hash chains and
    checks: about 37k measured, 60k counted)."""
    return tx_bounds(chunk_words * chunks, 1)[1] + 60_000 * chunks


def submission_blocks(config: AggregatorConfig, submitters: int, block_gas_limit: int) -> int:
    """Blocks that ``submitters`` EDs' submissions can need at most (the client sends each ED's
    k-th transaction in the same block(s), one layer after the other): the least submission
    window (``round_blocks``) that never closes on an honest ED."""
    words = config.words_per_chunk
    chunks = len(config.spans)
    per_tx = chunks_per_submit(words, chunks)
    blocks = 0
    for first in range(0, chunks, per_tx):
        bound = submit_gas_bound(words, min(per_tx, chunks - first))
        fit = max(1, block_gas_limit // bound)
        blocks += -(-submitters // fit)
    return blocks


def chunks_per_submit(words: int, chunks: int) -> int:
    """Chunks of ``words`` words that fit one submit transaction (see :func:`submit_gas_bound`)."""
    k = 1
    while k < chunks:
        submit_bytes = tx_bounds((k + 1) * words, 1)[0]
        if submit_bytes > MAX_TX_BYTES or submit_gas_bound(words, k + 1) > MAX_TX_GAS:
            break
        k += 1
    return k


def fits_limits(chunk_words: int, workers: int) -> bool:
    sb, sg, ab, ag = tx_bounds(chunk_words, workers)
    return max(sb, ab) <= MAX_TX_BYTES and max(sg, ag) <= MAX_TX_GAS


def largest_chunk_words(num_params: int, workers: int) -> int:
    """The largest chunk (in words, at most the whole model) whose transactions fit the limits
    with ``workers`` submitters; raises if not even one word fits."""
    words = num_words(num_params)
    if not fits_limits(1, workers):
        raise ConfigError(
            "max_workers",
            f"{workers} submitters cannot fit one aggregation transaction under "
            f"{MAX_TX_BYTES} bytes and {MAX_TX_GAS} gas",
        )
    low, high = 1, words
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits_limits(mid, workers) else (low, mid - 1)
    return low


@dataclass(frozen=True)
class AggregatorConfig:
    """Deployment parameters of one task's aggregator (the contract's ``Settings``).

    - ``reference_epsilon``: an update is accepted only if its cosine with the last global
      update (the mean accepted update of the previous round) is at least this.
    - ``history_epsilon`` / ``history_window``: the paper's rule, the mean cosine with the ED's
      own past accepted updates in a window of ``history_window`` (0 = rule off).
    - ``norm_bound``: k: an update with |w| > k * the round's data-weighted median accepted |w|
      is left out of FedAvg; ``clip``: c: the others are scaled down to at most c * that median
      before averaging (norm clipping; 0 = off), which bounds what a minority can do to the
      mean and so to the next reference.
    - ``commit_blocks``: commit window of commit-reveal (0 = off); ``round_blocks``: submission
      window; ``grace_blocks``: after the deadline plus grace anyone may aggregate.
    - ``chunk_words``: words per chunk (0 = the largest that fits the transaction limits for
      ``max_workers`` submitters); ``unit_scale``: the history's unit length.
    """

    num_params: int
    frac_bits: int = 12
    chunk_words: int = 0
    max_workers: int = 32
    commit_blocks: int = 2
    round_blocks: int = 5
    grace_blocks: int = 10
    history_window: int = 20
    history_epsilon: float = 0.05
    reference_epsilon: float = 0.05
    norm_bound: float = 3.0
    clip: float = 1.0
    unit_scale: int = 2**12

    def __post_init__(self) -> None:
        if not 1 <= self.num_params <= MAX_PARAMS:
            raise ConfigError("num_params", f"must be in [1, 2^18], got {self.num_params}")
        FixedPointCodec(self.frac_bits)  # validates frac_bits
        for name in ("commit_blocks", "round_blocks", "grace_blocks", "history_window"):
            value = getattr(self, name)
            low = 0 if name in ("commit_blocks", "history_window") else 1
            if not low <= value <= 2**32 - 1:
                raise ConfigError(name, f"must be in [{low}, 2^32 - 1], got {value}")
        for name in ("history_epsilon", "reference_epsilon"):
            if not -1.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(name, f"must be in [-1, 1], got {getattr(self, name)}")
        if not 1.0 <= self.norm_bound <= 4000.0:
            raise ConfigError("norm_bound", f"must be in [1, 4000], got {self.norm_bound}")
        if not (self.clip == 0.0 or 1.0 <= self.clip <= 4000.0):
            raise ConfigError("clip", f"must be 0 (off) or in [1, 4000], got {self.clip}")
        if not 1 <= self.unit_scale <= MAX_UNIT_SCALE:
            raise ConfigError("unit_scale", f"must be in [1, 2^24], got {self.unit_scale}")
        if self.history_window > (2**31 - 1) // self.unit_scale:
            raise ConfigError(
                "history_window",
                f"must be at most {(2**31 - 1) // self.unit_scale} with unit_scale "
                f"{self.unit_scale} (int32 history lanes), got {self.history_window}",
            )
        if self.max_workers < 1:
            raise ConfigError("max_workers", f"must be at least 1, got {self.max_workers}")
        largest = largest_chunk_words(self.num_params, self.max_workers)
        if self.chunk_words < 0 or self.chunk_words > max(largest, 0):
            raise ConfigError(
                "chunk_words",
                f"must be in [0, {largest}] (0 = largest) so every transaction fits "
                f"{MAX_TX_BYTES} bytes and {MAX_TX_GAS} gas with {self.max_workers} workers, "
                f"got {self.chunk_words}",
            )

    @property
    def words_per_chunk(self) -> int:
        words = num_words(self.num_params)
        chosen = self.chunk_words or largest_chunk_words(self.num_params, self.max_workers)
        return min(chosen, words)

    @property
    def spans(self) -> list[tuple[int, int]]:
        return chunk_spans(self.num_params, self.words_per_chunk)

    def settings(self) -> tuple[int, ...]:
        """The ``Settings`` tuple for the constructor."""
        return (
            self.num_params,
            self.words_per_chunk,
            self.max_workers,
            self.commit_blocks,
            self.round_blocks,
            self.grace_blocks,
            self.history_window,
            round(self.history_epsilon * PPM),
            round(self.reference_epsilon * PPM),
            round(self.norm_bound * PPM),
            round(self.clip * PPM),
            self.unit_scale,
        )


@dataclass(frozen=True)
class Submission:
    """The outcome of one ED's update, as the contract logged it."""

    device: str
    round: int
    verdict: Verdict
    norm_squared: int
    history_dot: int
    reference_dot: int
    update_hash: bytes
    receipts: list[TxReceipt]

    @property
    def accepted(self) -> bool:
        return self.verdict == Verdict.ACCEPTED

    @property
    def gas_used(self) -> int:
        """Gas of every transaction of this submission (commit and chunks)."""
        return sum(int(r["gasUsed"]) for r in self.receipts)


@dataclass(frozen=True)
class Aggregation:
    """One round's aggregation: its receipts and who was left out by the norm bound."""

    round: int
    receipts: list[TxReceipt]
    excluded: list[str]

    @property
    def gas_used(self) -> int:
        return sum(int(r["gasUsed"]) for r in self.receipts)


@dataclass(frozen=True)
class GlobalModel:
    """A global model and the mean update that produced it, read from ``GlobalChunk`` logs."""

    round: int
    values: IntArray
    reference: IntArray | None
    model_hash: bytes


@dataclass
class UpdatePlan:
    """One ED's submission of a round: the packed update and its transactions' chunk groups
    (:meth:`AggregatorClient.plan`)."""

    device: str
    values: IntArray
    packed: bytes
    update_hash: bytes
    history: bytes
    reference: bytes
    groups: list[tuple[int, int]] = field(default_factory=list)  # (first chunk, end chunk)
    receipts: list[TxReceipt] = field(default_factory=list)


class AggregatorClient:
    """Typed wrapper around one deployed FLAggregator on a :class:`chain_node.node.ChainNode`.

    The client mirrors each ED's history window off chain (the contract stores only its hash)
    and checks the mirror against the on-chain commitment before every submission.
    """

    def __init__(
        self, node: ChainNode, contract: Contract, config: AggregatorConfig, since_block: int = 0
    ) -> None:
        self.node = node
        self.contract = contract
        self.config = config
        self.codec = FixedPointCodec(config.frac_bits)
        self.spans = config.spans
        self.histories: dict[str, HistoryState] = {}
        self._opened: dict[int, int] = {}  # round -> block it opened in (where its logs start)
        self._latest: GlobalModel | None = None  # re-verified against the chain on every read
        # No log of this contract precedes its deployment block: every log query starts there
        # at the earliest (eth-tester scans every block of a range, so a market's later tasks
        # would otherwise re-read all earlier tasks' blocks).
        self.since_block = since_block
        self._scan_from = since_block  # block of the latest GlobalModel log seen

    @classmethod
    def deploy(
        cls,
        node: ChainNode,
        config: AggregatorConfig,
        servers: Sequence[str],
        declared_data: Sequence[int],
        *,
        publisher: str | None = None,
    ) -> AggregatorClient:
        """Deploy a task's aggregator shared by ``servers`` (the winning ESs) with the data
        sizes they declared; ``publisher`` (default: the first ES) publishes the initial model.
        """
        publisher = publisher or servers[0]
        contract = node.deploy(
            CONTRACT_NAME,
            config.settings(),
            publisher,
            list(servers),
            [int(d) for d in declared_data],
            sender=publisher,
        )
        return cls(node, contract, config, node.block_number)

    # ------------------------------------------------------------------ views
    @property
    def num_chunks(self) -> int:
        return len(self.spans)

    def round_info(self, round_: int) -> dict[str, Any]:
        fields = [
            "commitDeadline",
            "deadline",
            "accepted",
            "included",
            "nextChunk",
            "saturated",
            "aggregating",
            "closed",
            "includedData",
            "normThreshold16",
            "clipNorm16",
            "referenceRejected",
            "lastProgress",
            "clippedWeight",
            "meanNormSquared",
        ]
        return dict(zip(fields, self.contract.functions.rounds(round_).call(), strict=True))

    def worker(self, device: str) -> dict[str, int]:
        fields = [
            "dataSize",
            "server",
            "startedRound",
            "nextChunk",
            "acceptedRound",
            "historyCount",
            "norm16",
        ]
        return dict(zip(fields, self.contract.functions.workers(device).call(), strict=True))

    def wait_until_after(self, block: int) -> None:
        """Mine empty blocks until the chain is past ``block``."""
        missing = block + 1 - self.node.block_number
        if missing > 0:
            self.node.advance_blocks(missing)

    def wait_for_deadline(self, round_: int) -> None:
        self.wait_until_after(int(self.round_info(round_)["deadline"]))

    # ------------------------------------------------------------------ ES / publisher
    def register_worker(self, server: str, device: str, data_size: int) -> TxReceipt:
        return self.node.transact(
            self.contract.functions.registerWorker(device, int(data_size)), sender=server, role="es"
        )

    def publish_initial_model(
        self, model: ArrayLike, reference: ArrayLike | None = None, *, publisher: str
    ) -> list[TxReceipt]:
        """Publish the initial global model (and optionally an initial reference direction),
        one chunk per transaction."""
        packed = self._pack(model)
        ref = b"" if reference is None else self._pack(reference)
        receipts = []
        for j, (start, end) in enumerate(self.spans):
            fn = self.contract.functions.publishInitialChunk(
                j, packed[start:end], ref[start:end] if ref else b""
            )
            receipts.append(self.node.transact(fn, sender=publisher, role="requester"))
        return receipts

    def open_round(self, sender: str) -> int:
        """Open the next round; returns its number."""
        receipt = self.node.transact(self.contract.functions.openRound(), sender=sender, role="es")
        (event,) = self.contract.events.RoundOpened().process_receipt(receipt, errors=DISCARD)
        self._opened[int(event.args.round)] = int(receipt["blockNumber"])
        return int(event.args.round)

    def submitted_chunks(self, round_: int) -> list[list[tuple[str, bytes]]]:
        """Per chunk index, the (worker, chunk bytes) linked into the round's chain, in order,
        read from the ``UpdateChunks`` logs."""
        logs = self.contract.events.UpdateChunks().get_logs(
            from_block=self._opened.get(round_, self.since_block),
            argument_filters={"round": round_},
        )
        logs = sorted(logs, key=lambda log: (log.blockNumber, log.logIndex))
        per_chunk: list[list[tuple[str, bytes]]] = [[] for _ in self.spans]
        for log in logs:
            data = bytes(log.args.data)
            j = int(log.args.firstChunk)
            at = 0
            while at < len(data):
                start, end = self.spans[j]
                per_chunk[j].append((log.args.worker, data[at : at + end - start]))
                at += end - start
                j += 1
        return per_chunk

    def aggregate(self, round_: int, sender: str) -> Aggregation:
        """FedAvg of the round's accepted updates on chain, chunk by chunk (after the deadline)."""
        previous = pack_update(self.global_model().values)
        per_chunk = self.submitted_chunks(round_)
        receipts = []
        for j, (start, end) in enumerate(self.spans):
            entries = per_chunk[j]
            fn = self.contract.functions.aggregateChunk(
                round_,
                j,
                previous[start:end],
                [w for w, _ in entries],
                [c for _, c in entries],
            )
            receipts.append(self.node.transact(fn, sender=sender, role="es", round=round_))
        excluded = [
            str(e.args.worker)
            for e in self.contract.events.UpdateExcluded().process_receipt(
                receipts[0], errors=DISCARD
            )
        ]
        return Aggregation(round_, receipts, excluded)

    # ------------------------------------------------------------------ ED
    def history(self, device: str) -> HistoryState:
        return self.histories.setdefault(
            device, HistoryState(self.config.num_params, self.config.history_window)
        )

    def _plan(self, device: str, values: IntArray, reference: bytes) -> UpdatePlan:
        state = self.history(device)
        onchain = bytes(self.contract.functions.historyHash(device).call())
        if onchain != state.commitment(self.spans):
            raise TbcimError(f"history mirror of {device} does not match its on-chain commitment")
        packed = pack_update(values)
        plan = UpdatePlan(
            device, values, packed, chunked_hash(packed, self.spans), state.packed(), reference
        )
        per_tx = max(1, self._chunks_per_submit())
        plan.groups = [
            (j, min(j + per_tx, self.num_chunks)) for j in range(0, self.num_chunks, per_tx)
        ]
        return plan

    def plan(self, device: str, values: ArrayLike) -> UpdatePlan:
        """One ED's submission of ``values`` (int16 lanes) against the reference in force, read
        from the chain; checks the ED's history mirror against its on-chain commitment. An ED
        that sends its own transactions (a worker process) sends :meth:`commit_call` in the
        commit window, then :meth:`submit_calls` in order."""
        return self._plan(device, self._values(values), self._reference_bytes())

    def _reference_bytes(self) -> bytes:
        current = self.global_model()
        return b"" if current.reference is None else pack_update(current.reference)

    def commit_call(self, round_: int, plan: UpdatePlan) -> Any:
        """The commit-reveal commitment of ``plan`` for ``round_`` (a contract call to send)."""
        c = commitment(plan.device, round_, plan.update_hash)
        return self.contract.functions.commit(round_, c)

    def submit_calls(self, round_: int, plan: UpdatePlan) -> list[Any]:
        """The submit transactions of ``plan``, one per chunk group, to send in this order."""
        return [self._submit_fn(round_, plan, first, end) for first, end in plan.groups]

    def verdicts(self, round_: int) -> dict[str, Verdict]:
        """Each worker's verdict in ``round_`` (device → verdict), from the round's
        ``UpdateAccepted`` and ``UpdateRejected`` logs; workers that finished no submission
        are absent."""
        start = self._opened.get(round_, self.since_block)
        found: dict[str, Verdict] = {}
        for event in (self.contract.events.UpdateAccepted, self.contract.events.UpdateRejected):
            for log in event().get_logs(from_block=start, argument_filters={"round": round_}):
                verdict = log.args.get("verdict", Verdict.ACCEPTED)
                found[str(log.args.worker)] = Verdict(verdict)
        return found

    def _chunks_per_submit(self) -> int:
        return chunks_per_submit(self.config.words_per_chunk, self.num_chunks)

    def _submit_fn(self, round_: int, plan: UpdatePlan, first: int, end: int) -> Any:
        start, stop = self.spans[first][0], self.spans[end - 1][1]
        history = plan.history[2 * start : 2 * stop] if plan.history else b""
        reference = plan.reference[start:stop] if plan.reference else b""
        return self.contract.functions.submit(
            round_, first, plan.packed[start:stop], history, reference, norm_hint(plan.values)
        )

    def submit_round(self, round_: int, updates: Mapping[str, ArrayLike]) -> list[Submission]:
        """Every ED's update for ``round_``: commitments in one block (with commit-reveal), then
        the chunked submissions, each ED's first transaction in one block, its second in the
        next, and so on. Returns one outcome per ED that finished submitting."""
        needed = submission_blocks(self.config, len(updates), self.node.block_gas_limit)
        if needed > self.config.round_blocks:
            raise ConfigError(
                "round_blocks",
                f"{len(updates)} submissions can need {needed} blocks of "
                f"{self.node.block_gas_limit:,} gas, but the submission window is "
                f"{self.config.round_blocks}; deploy with round_blocks >= {needed}",
            )
        reference = self._reference_bytes()
        plans = [self._plan(d, self._values(v), reference) for d, v in updates.items()]
        info = self.round_info(round_)
        if self.config.commit_blocks:
            for plan in plans:
                self.node.send(
                    self.commit_call(round_, plan), sender=plan.device, role="ed", round=round_
                )
            for plan, receipt in zip(plans, self.node.mine(), strict=True):
                plan.receipts.append(receipt)
        self.wait_until_after(int(info["commitDeadline"]))
        depth = max(len(p.groups) for p in plans)
        for layer in range(depth):
            active = [p for p in plans if layer < len(p.groups)]
            for plan in active:
                first, end = plan.groups[layer]
                self.node.send(
                    self._submit_fn(round_, plan, first, end),
                    sender=plan.device,
                    role="ed",
                    round=round_,
                )
            for plan, receipt in zip(active, self.node.mine(), strict=True):
                plan.receipts.append(receipt)
        return [self._outcome(round_, plan) for plan in plans]

    def _outcome(self, round_: int, plan: UpdatePlan) -> Submission:
        receipt = plan.receipts[-1]
        accepted = self.contract.events.UpdateAccepted().process_receipt(receipt, errors=DISCARD)
        if accepted:
            args = accepted[0].args
            state = self.history(plan.device)
            state.accept(plan.values, self.config.unit_scale)
            expected = state.commitment(self.spans) if self.config.history_window else bytes(32)
            if self.config.history_window and expected != bytes(args.newHistoryHash):
                raise TbcimError(f"history mirror of {plan.device} diverged from the contract")
            verdict = Verdict.ACCEPTED
        else:
            (rejected,) = self.contract.events.UpdateRejected().process_receipt(
                receipt, errors=DISCARD
            )
            args = rejected.args
            verdict = Verdict(args.verdict)
        return Submission(
            plan.device,
            round_,
            verdict,
            int(args.normSquared),
            int(args.historyDot),
            int(args.referenceDot),
            bytes(args.updateHash),
            plan.receipts,
        )

    # ------------------------------------------------------------------ everyone
    def global_model(self, round_: int | None = None) -> GlobalModel:
        """The global model of ``round_`` (default: the latest) and the reference that goes with
        it, from the ``GlobalChunk`` logs; the latest is checked against the hashes the contract
        stores (the model's and the reference's chunk hashes).

        The latest model read is kept, but every call re-hashes it and compares with the hashes
        the contract stores: a copy changed off chain is never served (it is read again)."""
        if round_ is not None:
            return self._read_model(round_, 0)
        stored = bytes(self.contract.functions.globalModelHash().call())
        stored_ref = bytes(self.contract.functions.referenceHash().call())
        kept = self._latest
        if kept is not None and self._matches(kept, stored, stored_ref):
            return self._copy(kept)
        model = self._read_model(None, self._scan_from)
        if not self._matches(model, stored, stored_ref):
            raise TbcimError(
                "the latest global model or reference does not match the stored hashes"
            )
        for j, (start, end) in enumerate(self.spans):
            model_chunk, ref_chunk = self.contract.functions.chunkHashes(j).call()
            packed = pack_update(model.values)[start:end]
            if keccak(packed) != bytes(model_chunk):
                raise TbcimError(f"model chunk {j} does not match the stored hash")
            ref = None if model.reference is None else pack_update(model.reference)[start:end]
            if ref is not None and keccak(ref) != bytes(ref_chunk):
                raise TbcimError(f"reference chunk {j} does not match the stored hash")
        self._latest = self._copy(model)
        return model

    def _matches(self, model: GlobalModel, stored: bytes, stored_ref: bytes) -> bool:
        """Whether ``model`` (re-hashed now) and its reference are the ones the chain stores."""
        if chunked_hash(pack_update(model.values), self.spans) != stored:
            return False
        if model.reference is None:
            return stored_ref == bytes(32)
        return chunked_hash(pack_update(model.reference), self.spans) == stored_ref

    @staticmethod
    def _copy(model: GlobalModel) -> GlobalModel:
        reference = None if model.reference is None else model.reference.copy()
        return GlobalModel(model.round, model.values.copy(), reference, model.model_hash)

    def _round_chunks(self, round_: int, to_block: int) -> tuple[bytes, list[bytes]]:
        """The model bytes and reference chunks of a completed round from its GlobalChunk logs
        (a round aggregated again after an abandoned attempt: the last chunks count)."""
        logs = self.contract.events.GlobalChunk().get_logs(
            from_block=self._opened.get(round_, self.since_block),
            to_block=to_block,
            argument_filters={"round": round_},
        )
        chunks: dict[int, Any] = {}
        for log in sorted(logs, key=lambda e: (e.blockNumber, e.logIndex)):
            chunks[int(log.args.chunk)] = log.args
        if sorted(chunks) != list(range(self.num_chunks)):
            raise TbcimError(f"GlobalChunk logs of round {round_} are incomplete")
        model = b"".join(bytes(chunks[j].model) for j in range(self.num_chunks))
        return model, [bytes(chunks[j].ref) for j in range(self.num_chunks)]

    def _read_model(self, round_: int | None, from_block: int) -> GlobalModel:
        done = self.contract.events.GlobalModel().get_logs(from_block=from_block)
        if not done:
            raise TbcimError("no global model on chain yet: publish the initial model first")
        done = sorted(done, key=lambda e: (e.blockNumber, e.logIndex))
        wanted = int(done[-1].args.round) if round_ is None else round_
        finished = [e for e in done if int(e.args.round) == wanted]
        if not finished:
            raise TbcimError(f"no global model on chain for round {round_}")
        last = finished[-1]
        if round_ is None:
            self._scan_from = int(last.blockNumber)
        model, refs = self._round_chunks(wanted, int(last.blockNumber))
        model_hash = chunked_hash(model, self.spans)
        if model_hash != bytes(last.args.modelHash):
            raise TbcimError(f"GlobalChunk logs of round {wanted} do not match their model hash")
        cleared = round_ is None and not bool(self.contract.functions.hasReference().call())
        reference = None if cleared else self._reference(wanted, refs)
        return GlobalModel(
            wanted, unpack_update(model, self.config.num_params), reference, model_hash
        )

    def _reference(self, round_: int, refs: list[bytes]) -> IntArray | None:
        """The reference in force after ``round_``: its mean update, or, if that rounded to
        zero (the contract then keeps the previous reference), the latest earlier non-zero one
        since the reference was last cleared (``ReferenceCleared``: none in force)."""
        values = self._nonzero(refs)
        if values is not None or round_ == 0:
            return values
        cleared = self.contract.events.ReferenceCleared().get_logs(from_block=self.since_block)
        after = max((int(e.args.round) for e in cleared), default=-1)
        earlier = self.contract.events.GlobalModel().get_logs(from_block=self.since_block)
        for event in sorted(earlier, key=lambda e: (e.blockNumber, e.logIndex), reverse=True):
            r = int(event.args.round)
            if after < r < round_:
                values = self._nonzero(self._round_chunks(r, int(event.blockNumber))[1])
                if values is not None:
                    return values
        return None

    def _nonzero(self, refs: list[bytes]) -> IntArray | None:
        """The reference chunks as values, or None if absent or all zero (no direction)."""
        if not all(refs):
            return None
        values = unpack_update(b"".join(refs), self.config.num_params)
        return values if np.any(values) else None

    def _values(self, values: ArrayLike) -> IntArray:
        arr = np.asarray(values)
        if arr.shape != (self.config.num_params,):
            raise ConfigError(
                "update", f"expected {self.config.num_params} values, got shape {arr.shape}"
            )
        return unpack_update(pack_update(arr), self.config.num_params)

    def _pack(self, values: ArrayLike) -> bytes:
        return pack_update(self._values(values))
