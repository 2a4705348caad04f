"""Client for ``contracts/FLMarket.sol``: the TBCIM service market on chain (section II-A, 1-9).

A task goes: publish with escrow (step 1) → sealed bids, commit then reveal (step 2) → the
mechanism's outcome, final when a majority of the revealers vote for it (step 3) → the requester
names the task's FLAggregator and each winner accepts, recording its EDs' amounts V_i as a Merkle
root (steps 4-5) → training (6-7) → the requester attests the final global model's accuracy, or
forfeits by silence (step 8) → winners withdraw, EDs claim their V_i with a proof (step 9).

The pure functions here mirror the contract's hashing with ``eth_abi`` and ``keccak``:
:func:`bid_commitment`, :func:`outcome_seed`, :func:`outcome_hash` and :func:`device_tree`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from eth_abi import encode
from eth_utils import keccak, to_checksum_address
from web3.contract import Contract
from web3.types import TxReceipt

from tbcim.blockchain.codec import PPM
from tbcim.errors import ConfigError

if TYPE_CHECKING:
    from chain_node.node import ChainNode

CONTRACT_NAME = "FLMarket"
#: Names of the six deadlines, in the order they must increase.
DEADLINES = ("commit", "reveal", "award", "accept", "training", "attest")


class TaskStatus(enum.IntEnum):
    """The contract's ``Status`` enum."""

    NONE = 0
    OPEN = 1
    AWARDED = 2
    TRAINING = 3
    COMPLETED = 4
    FAILED = 5
    CANCELLED = 6


def _ppm(value: float, field: str) -> int:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(field, f"must be in [0, 1], got {value}")
    return round(value * PPM)


def _bytes32(value: bytes, field: str) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != 32:
        raise ConfigError(field, f"must be 32 bytes, got {value!r}")
    return bytes(value)


def _uint(value: int, bits: int, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**bits:
        raise ConfigError(field, f"must be an integer in [0, 2^{bits}), got {value!r}")
    return value


@dataclass(frozen=True)
class TaskTerms:
    """A task's terms (the contract's ``TaskTerms``). Money in wei, deadlines absolute blocks.

    Values that cannot be encoded raise :class:`ConfigError` naming the field; the contract checks
    the rest at publication (``InvalidTerms(field)``): min_bidders ≥ 1, 0 < bid_high,
    bid_low ≤ bid_high, and deadlines strictly increasing with the first in the future.
    """

    spec: bytes  # keccak of the canonical task JSON
    mechanism: bytes  # keccak of the mechanism's name and model-file hash
    eval_set: bytes  # hash of the evaluation set
    target_accuracy: float  # in [0, 1]; stored in ppm
    min_bidders: int
    bid_low: int
    bid_high: int
    commit_deadline: int
    reveal_deadline: int
    award_deadline: int
    accept_deadline: int
    training_deadline: int
    attest_deadline: int

    def __post_init__(self) -> None:
        for name in ("spec", "mechanism", "eval_set"):
            _bytes32(getattr(self, name), name)
        _ppm(self.target_accuracy, "target_accuracy")
        _uint(self.min_bidders, 16, "min_bidders")
        _uint(self.bid_low, 128, "bid_low")
        _uint(self.bid_high, 128, "bid_high")
        for name in DEADLINES:
            _uint(getattr(self, f"{name}_deadline"), 64, f"{name}_deadline")

    @classmethod
    def schedule(cls, start_block: int, windows: Sequence[int], **terms: Any) -> TaskTerms:
        """Terms whose deadlines follow ``start_block`` by the given window lengths (blocks):
        commit, reveal, award, accept, training, attest, in that order."""
        if len(windows) != len(DEADLINES) or any(w < 1 for w in windows):
            raise ConfigError("windows", f"need {len(DEADLINES)} lengths >= 1, got {windows}")
        block, deadlines = start_block, dict(terms)
        for name, length in zip(DEADLINES, windows, strict=True):
            block += length
            deadlines[f"{name}_deadline"] = block
        return cls(**deadlines)

    @property
    def target_accuracy_ppm(self) -> int:
        return _ppm(self.target_accuracy, "target_accuracy")

    def as_tuple(self) -> tuple[Any, ...]:
        """The ABI tuple, in the contract struct's field order."""
        values = [getattr(self, f.name) for f in fields(self)]
        values[3] = self.target_accuracy_ppm
        return tuple(values)

    @classmethod
    def from_chain(cls, raw: Sequence[Any]) -> TaskTerms:
        values = list(raw)
        values[3] = int(values[3]) / PPM
        values[:3] = [bytes(v) for v in values[:3]]
        return cls(*values)


@dataclass(frozen=True)
class Task:
    """Everything ``getTask`` returns; ``payments`` align with ``winners``."""

    task_id: int
    requester: str
    status: TaskStatus
    escrow: int
    terms: TaskTerms
    aggregator: str
    seed: int
    outcome: bytes  # outcome_hash(winners, payments) once final, else 32 zero bytes
    total_payment: int
    winners: tuple[str, ...]
    payments: tuple[int, ...]
    revealed: int  # number of revealers
    accepted: int  # winners that accepted


@dataclass(frozen=True)
class RevealedBid:
    """One revealed bid: the ES's cost (wei) and its public data d_s and θ_s·1e6."""

    bidder: str
    bid: int
    data_size: int
    emd_ppm: int

    @property
    def emd(self) -> float:
        """θ_s, the EMD of the ES's data distribution."""
        return self.emd_ppm / PPM


# ------------------------------------------------------------------ mirrors of the contract


def bid_commitment(
    task_id: int, bidder: str, bid: int, data_size: int, emd_ppm: int, salt: bytes
) -> bytes:
    """keccak256(abi.encode(taskId, bidder, bid, dataSize, emdPpm, salt)), the sealed bid."""
    types = ["uint256", "address", "uint256", "uint256", "uint256", "bytes32"]
    values = [task_id, to_checksum_address(bidder), bid, data_size, emd_ppm, _bytes32(salt, "salt")]
    return keccak(encode(types, values))


def outcome_seed(reveals: Sequence[tuple[str, bytes]]) -> int:
    """The task's seed after these (bidder, salt) reveals: the XOR of
    uint256(keccak256(abi.encode(bidder, salt))), as ``revealBid`` folds it (order-free)."""
    seed = 0
    for bidder, salt in reveals:
        digest = keccak(encode(["address", "bytes32"], [to_checksum_address(bidder), salt]))
        seed ^= int.from_bytes(digest, "big")
    return seed


def outcome_hash(winners: Sequence[str], payments: Sequence[int]) -> bytes:
    """keccak256(abi.encode(winners, payments)), the hash revealers vote for."""
    checksummed = [to_checksum_address(w) for w in winners]
    return keccak(encode(["address[]", "uint256[]"], [checksummed, [int(p) for p in payments]]))


def _device_leaf(device: str, amount: int) -> bytes:
    return keccak(keccak(encode(["address", "uint256"], [device, amount])))


def _hash_pair(a: bytes, b: bytes) -> bytes:
    return keccak(min(a, b) + max(a, b))


def _sorted_devices(devices: Sequence[str], amounts: Sequence[int]) -> list[tuple[str, int]]:
    """(device, amount) pairs ascending by address, as ``acceptAward`` requires; bad lists
    raise ConfigError naming the problem."""
    if len(devices) != len(amounts):
        raise ConfigError("amounts", f"{len(amounts)} amounts for {len(devices)} devices")
    if not devices:
        raise ConfigError("devices", "the list is empty")
    pairs: list[tuple[str, int]] = sorted(
        ((str(to_checksum_address(d)), int(a)) for d, a in zip(devices, amounts, strict=True)),
        key=lambda pair: int(pair[0], 16),
    )
    for i, (d, a) in enumerate(pairs):
        if i and pairs[i - 1][0] == d:
            raise ConfigError("devices", f"{d} is listed twice")
        if int(d, 16) == 0:
            raise ConfigError("devices", "the zero address is not a device")
        if a <= 0:
            raise ConfigError("amounts", f"the amount for {d} must be positive, got {a}")
    return pairs


@dataclass(frozen=True)
class DeviceTree:
    """The Merkle tree ``acceptAward`` builds over a winner's (ED, V_i) list: leaves
    keccak(keccak(abi.encode(device, amount))) in ascending device order, sorted-pair hashing,
    an odd last node carried up unchanged."""

    devices: tuple[str, ...]
    amounts: tuple[int, ...]
    levels: tuple[tuple[bytes, ...], ...]  # levels[0] = leaves, levels[-1] = (root,)

    @property
    def root(self) -> bytes:
        return self.levels[-1][0]

    @property
    def total(self) -> int:
        return sum(self.amounts)

    def amount(self, device: str) -> int:
        return self.amounts[self._index(device)]

    def proof(self, device: str) -> list[bytes]:
        """Sibling hashes from the device's leaf to the root (none where a node is carried)."""
        index, proof = self._index(device), []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                proof.append(level[sibling])
            index //= 2
        return proof

    def _index(self, device: str) -> int:
        address = to_checksum_address(device)
        if address not in self.devices:
            raise ConfigError("device", f"{address} is not in this tree")
        return self.devices.index(address)


def device_tree(devices: Sequence[str], amounts: Sequence[int]) -> DeviceTree:
    """The tree of a winner's (ED, V_i) list, sorted ascending by address as the contract
    requires; its root equals the one ``acceptAward`` computes on chain."""
    pairs = _sorted_devices(devices, amounts)
    level = tuple(_device_leaf(d, a) for d, a in pairs)
    levels = [level]
    while len(level) > 1:
        paired = [_hash_pair(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = tuple(paired)
        levels.append(level)
    return DeviceTree(
        devices=tuple(d for d, _ in pairs),
        amounts=tuple(a for _, a in pairs),
        levels=tuple(levels),
    )


# ------------------------------------------------------------------ the client


class FLMarketClient:
    """Typed wrapper around a deployed FLMarket on a :class:`chain_node.node.ChainNode`. Each
    transaction method sends one transaction and mines it (``ChainNode.transact``); a revert
    raises :class:`chain_node.errors.ContractRevert` with the custom error and changes nothing."""

    def __init__(self, node: ChainNode, contract: Contract) -> None:
        self.node = node
        self.contract = contract

    @classmethod
    def deploy(
        cls, node: ChainNode, sender: str, servers: Sequence[str] | None = None
    ) -> FLMarketClient:
        """Deploy the market; ``servers`` (default: the node's ESs) are the only bidders."""
        eligible = list(node.servers if servers is None else servers)
        return cls(node, node.deploy(CONTRACT_NAME, eligible, sender=sender))

    def wait_until_after(self, block: int) -> None:
        """Mine empty blocks until the chain's latest block is past ``block``, so the next
        transaction is past it on both backends (a JSON-RPC node estimates gas, and so checks
        deadlines, at the latest block; the embedded chain at the next one)."""
        missing = block + 1 - self.node.block_number
        if missing > 0:
            self.node.advance_blocks(missing)

    def _send(self, fn: Any, sender: str, role: str | None = None, value: int = 0) -> TxReceipt:
        return self.node.transact(
            fn, sender=sender, role=role or self.node.role_of(sender), value=value
        )

    # ------------------------------------------------------------------ step 1
    def publish_task(self, requester: str, reward_wei: int, terms: TaskTerms) -> int:
        """Publish a task with ``reward_wei`` in escrow; returns the task id."""
        receipt = self._send(
            self.contract.functions.publishTask(terms.as_tuple()),
            requester,
            "requester",
            value=int(reward_wei),
        )
        (event,) = self.contract.events.TaskPublished().process_receipt(receipt)
        return int(event.args.taskId)

    def cancel_task(self, requester: str, task_id: int) -> TxReceipt:
        """The requester cancels an Open task; the escrow returns to its balance."""
        return self._send(self.contract.functions.cancelTask(task_id), requester, "requester")

    def expire_task(self, caller: str, task_id: int) -> TxReceipt:
        """Anyone expires a task past its award (Open) or acceptance (Awarded) deadline."""
        return self._send(self.contract.functions.expireTask(task_id), caller)

    # ------------------------------------------------------------------ step 2
    def commit_bid(self, server: str, task_id: int, commitment: bytes) -> TxReceipt:
        """Seal a bid: ``commitment`` = :func:`bid_commitment` of the bid to reveal."""
        fn = self.contract.functions.commitBid(task_id, _bytes32(commitment, "commitment"))
        return self._send(fn, server, "es")

    def reveal_bid(
        self, server: str, task_id: int, bid: int, data_size: int, emd_ppm: int, salt: bytes
    ) -> TxReceipt:
        """Open the sealed bid (cost in wei, d_s, θ_s·1e6, the commitment's salt)."""
        fn = self.contract.functions.revealBid(
            task_id, int(bid), int(data_size), int(emd_ppm), _bytes32(salt, "salt")
        )
        return self._send(fn, server, "es")

    # ------------------------------------------------------------------ step 3
    def submit_outcome(
        self, server: str, task_id: int, winners: Sequence[str], payments: Sequence[int]
    ) -> TxReceipt:
        """Vote for the mechanism's outcome; ``winners`` must be ascending by address."""
        fn = self.contract.functions.submitOutcome(
            task_id, [to_checksum_address(w) for w in winners], [int(p) for p in payments]
        )
        return self._send(fn, server, "es")

    # ------------------------------------------------------------------ steps 4-6
    def set_aggregator(self, requester: str, task_id: int, aggregator: str) -> TxReceipt:
        fn = self.contract.functions.setAggregator(task_id, to_checksum_address(aggregator))
        return self._send(fn, requester, "requester")

    def accept_award(
        self,
        server: str,
        task_id: int,
        aggregator: str,
        devices: Sequence[str],
        amounts: Sequence[int],
    ) -> TxReceipt:
        """Accept the award and record the EDs' amounts V_i (sorted by device here)."""
        pairs = _sorted_devices(devices, amounts)
        fn = self.contract.functions.acceptAward(
            task_id,
            to_checksum_address(aggregator),
            [d for d, _ in pairs],
            [a for _, a in pairs],
        )
        return self._send(fn, server, "es")

    # ------------------------------------------------------------------ step 8
    def attest(self, requester: str, task_id: int, model_hash: bytes, accuracy: float) -> TxReceipt:
        """Attest ``accuracy`` (in [0, 1]) of the aggregator's global model ``model_hash``."""
        fn = self.contract.functions.attest(
            task_id, _bytes32(model_hash, "model_hash"), _ppm(accuracy, "accuracy")
        )
        return self._send(fn, requester, "requester")

    def settle_unattested(self, caller: str, task_id: int) -> TxReceipt:
        """Past the attestation deadline without an attestation: the requester forfeits."""
        return self._send(self.contract.functions.settleUnattested(task_id), caller)

    # ------------------------------------------------------------------ step 9
    def claim_device_pay(
        self, device: str, task_id: int, server: str, amount: int, proof: Sequence[bytes]
    ) -> TxReceipt:
        """An ED claims its V_i from ``server``'s list (``DeviceTree.proof``)."""
        fn = self.contract.functions.claimDevicePay(
            task_id, to_checksum_address(server), int(amount), [bytes(p) for p in proof]
        )
        return self._send(fn, device, "ed")

    def withdraw(self, account: str, amount_wei: int) -> TxReceipt:
        return self._send(self.contract.functions.withdraw(int(amount_wei)), account)

    # ------------------------------------------------------------------ views
    def balance_of(self, account: str) -> int:
        return int(self.node.call(self.contract.functions.balanceOf(account)))

    def task(self, task_id: int) -> Task:
        raw = self.node.call(self.contract.functions.getTask(task_id))
        (requester, status, escrow, terms, aggregator, seed, outcome, total) = raw[:8]
        winners, payments, revealed, accepted = raw[8:]
        return Task(
            task_id=task_id,
            requester=requester,
            status=TaskStatus(status),
            escrow=int(escrow),
            terms=TaskTerms.from_chain(terms),
            aggregator=aggregator,
            seed=int(seed),
            outcome=bytes(outcome),
            total_payment=int(total),
            winners=tuple(winners),
            payments=tuple(int(p) for p in payments),
            revealed=int(revealed),
            accepted=int(accepted),
        )

    def bid_of(self, task_id: int, bidder: str) -> tuple[bool, bool, int, int, int]:
        """(committed, revealed, bid, dataSize, emdPpm)."""
        committed, revealed, bid, size, emd = self.node.call(
            self.contract.functions.bidOf(task_id, to_checksum_address(bidder))
        )
        return bool(committed), bool(revealed), int(bid), int(size), int(emd)

    def revealed_bids(self, task_id: int) -> list[RevealedBid]:
        """The revealed bids in reveal order."""
        bidders = self.node.call(self.contract.functions.revealers(task_id))
        bids = []
        for bidder in bidders:
            _, _, bid, size, emd = self.bid_of(task_id, bidder)
            bids.append(RevealedBid(bidder, bid, size, emd))
        return bids

    def reveal_salts(self, task_id: int) -> list[tuple[str, bytes]]:
        """(bidder, salt) of every reveal, from the ``BidRevealed`` logs: with
        :func:`outcome_seed` anyone recomputes the task's seed from chain data alone."""
        logs = self.contract.events.BidRevealed().get_logs(
            from_block=0, argument_filters={"taskId": task_id}
        )
        return [(log.args.bidder, bytes(log.args.salt)) for log in logs]

    def accepted_devices(self, task_id: int, server: str) -> tuple[list[str], list[int]]:
        """The (devices, amounts) ``server`` recorded when it accepted (``AwardAccepted`` log):
        an ED rebuilds the tree from them and checks its own leaf."""
        logs = self.contract.events.AwardAccepted().get_logs(
            from_block=0,
            argument_filters={"taskId": task_id, "server": to_checksum_address(server)},
        )
        if not logs:
            raise ConfigError("server", f"{server} has not accepted task {task_id}")
        return list(logs[0].args.devices), [int(a) for a in logs[0].args.amounts]

    def device_root(self, task_id: int, server: str) -> bytes:
        return bytes(self.node.call(self.contract.functions.deviceRoot(task_id, server)))

    def device_pool(self, task_id: int, server: str) -> int:
        return int(self.node.call(self.contract.functions.devicePool(task_id, server)))

    def claimed(self, task_id: int, server: str, device: str) -> bool:
        return bool(self.node.call(self.contract.functions.claimed(task_id, server, device)))
