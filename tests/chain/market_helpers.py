"""Shared by the FLMarket tests: a task driven phase by phase, a state snapshot that every revert
must leave unchanged, and the escrow conservation check."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from eth_utils import is_address, keccak, to_checksum_address

from chain_node.compiler import ContractArtifact, compile_contracts
from chain_node.errors import ContractRevert
from chain_node.node import ChainNode
from tbcim.blockchain.fl_market import (
    DeviceTree,
    FLMarketClient,
    TaskStatus,
    TaskTerms,
    bid_commitment,
    device_tree,
)

FIXTURES = Path(__file__).parent / "fixtures"
REWARD = 10**18
BID_LOW, BID_HIGH = 10**15, 3 * 10**17
#: Window lengths in blocks: commit, reveal, award, accept, training, attest.
WINDOWS = (10, 10, 10, 20, 10, 10)
HELD = (TaskStatus.OPEN, TaskStatus.AWARDED, TaskStatus.TRAINING)


@functools.cache
def artifacts() -> dict[str, ContractArtifact]:
    """The contracts and the test fixtures (the stub aggregator, FLMarketV1, ...)."""
    return {**compile_contracts(), **compile_contracts(FIXTURES)}


def make_terms(node: ChainNode, windows: Sequence[int] = WINDOWS, **overrides: object) -> TaskTerms:
    fields_ = {
        "spec": keccak(b"task spec"),
        "mechanism": keccak(b"ranet" + bytes(32)),
        "eval_set": keccak(b"eval set"),
        "target_accuracy": 0.8,
        "min_bidders": 2,
        "bid_low": BID_LOW,
        "bid_high": BID_HIGH,
        **overrides,
    }
    return TaskTerms.schedule(node.block_number, windows, **fields_)  # type: ignore[arg-type]


def advance_past(node: ChainNode, deadline: int) -> None:
    """Mine empty blocks until the next transaction's block is past ``deadline``."""
    node.advance_blocks(max(0, deadline - node.block_number))


def advance_to(node: ChainNode, deadline: int) -> None:
    """Mine empty blocks until the next transaction's block is exactly ``deadline``."""
    assert node.block_number < deadline
    node.advance_blocks(deadline - 1 - node.block_number)


@dataclass
class Sealed:
    """One ES's bid: cost (wei), d_s, θ_s·1e6, salt."""

    server: str
    bid: int
    data_size: int
    emd_ppm: int
    salt: bytes

    def commitment(self, task_id: int) -> bytes:
        return bid_commitment(
            task_id, self.server, self.bid, self.data_size, self.emd_ppm, self.salt
        )


@dataclass
class MarketRun:
    """One task through FLMarket, phase by phase; each method checks escrow conservation."""

    market: FLMarketClient
    bids: list[Sealed]
    reward: int = REWARD
    min_bidders: int = 2
    windows: Sequence[int] = WINDOWS
    task_id: int = 0
    trees: dict[str, DeviceTree] = field(default_factory=dict)

    @property
    def node(self) -> ChainNode:
        return self.market.node

    @property
    def terms(self) -> TaskTerms:
        return self.market.task(self.task_id).terms

    def publish(self) -> MarketRun:
        terms = make_terms(self.node, self.windows, min_bidders=self.min_bidders)
        self.task_id = self.market.publish_task(self.node.requester, self.reward, terms)
        assert_conserved(self.market)
        return self

    def commit(self) -> MarketRun:
        for b in self.bids:
            self.market.commit_bid(b.server, self.task_id, b.commitment(self.task_id))
        advance_past(self.node, self.terms.commit_deadline)
        return self

    def reveal(self) -> MarketRun:
        for b in self.bids:
            self.market.reveal_bid(b.server, self.task_id, b.bid, b.data_size, b.emd_ppm, b.salt)
        advance_past(self.node, self.terms.reveal_deadline)
        return self

    def award(self, winners: Sequence[str], payments: Sequence[int]) -> MarketRun:
        """Every revealer votes for (winners, payments) until the outcome is final."""
        for b in self.bids:
            if self.market.task(self.task_id).status != TaskStatus.OPEN:
                break
            self.market.submit_outcome(b.server, self.task_id, winners, payments)
        assert_conserved(self.market)
        return self

    def set_aggregator(self, aggregator: str) -> MarketRun:
        self.market.set_aggregator(self.node.requester, self.task_id, aggregator)
        return self

    def accept(self, devices: dict[str, tuple[list[str], list[int]]]) -> MarketRun:
        aggregator = self.market.task(self.task_id).aggregator
        for server, (eds, amounts) in devices.items():
            self.market.accept_award(server, self.task_id, aggregator, eds, amounts)
            self.trees[server] = device_tree(eds, amounts)
        assert_conserved(self.market)
        return self


def stub_aggregator(node: ChainNode, model: bytes = keccak(b"final model")) -> str:
    """A ModelHashStub holding ``model`` as its globalModelHash."""
    stub = node.deploy("ModelHashStub", sender=node.requester)
    node.transact(stub.functions.setModel(model), sender=node.requester)
    return str(stub.address)


def accounts(node: ChainNode, extra: Sequence[str] = ()) -> list[str]:
    return [node.requester, *node.servers, *node.devices, *extra]


def held(market: FLMarketClient, extra: Sequence[str] = ()) -> int:
    """What the contract owes: balances, escrows of tasks still running, the EDs' unclaimed
    pools of completed tasks."""
    f = market.contract.functions
    owed = sum(market.balance_of(a) for a in accounts(market.node, extra))
    for task_id in range(1, f.taskCount().call() + 1):
        task = market.task(task_id)
        if task.status in HELD:
            owed += task.escrow
        elif task.status == TaskStatus.COMPLETED:
            owed += sum(market.device_pool(task_id, w) for w in task.winners)
    return owed


def assert_conserved(market: FLMarketClient, extra: Sequence[str] = ()) -> None:
    """The contract's ether equals what it owes, to the wei."""
    address = market.contract.address
    assert market.node.w3.eth.get_balance(address) == held(market, extra)


def snapshot(market: FLMarketClient) -> tuple[object, ...]:
    """The world state (the open block's state root: every account's balance and every
    contract's storage), the chain's head, and FLMarket's tasks and ether, read back."""
    node, f = market.node, market.contract.functions
    pending = node.w3.eth.get_block("pending")
    latest = node.w3.eth.get_block("latest")
    count = f.taskCount().call()
    return (
        bytes(pending["stateRoot"]),
        len(pending["transactions"]),
        bytes(latest["hash"]),
        count,
        tuple(market.task(t) for t in range(1, count + 1)),
        node.w3.eth.get_balance(market.contract.address),
    )


def assert_reverts(
    market: FLMarketClient, action: Callable[[], object], error: str
) -> tuple[object, ...]:
    """``action`` reverts with custom error ``error`` and changes no state; returns its args
    (addresses checksummed)."""
    before = snapshot(market)
    with pytest.raises(ContractRevert) as info:
        action()
    assert info.value.error_name == error, info.value
    assert snapshot(market) == before
    return tuple(
        to_checksum_address(a) if isinstance(a, str) and is_address(a) else a
        for a in info.value.error_args
    )


def ascending(addresses: Sequence[str]) -> list[str]:
    return sorted(addresses, key=lambda a: int(a, 16))
