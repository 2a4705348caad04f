"""The four fairness holes of issue 10, each reproduced against the old market
(tests/chain/fixtures/FLMarketV1.sol, contracts/FLMarket.sol as of 9ade355) and shown closed on
the new FLMarket; and sealed bids that bind their bidder.

Each test runs the same story on both contracts: the V1 half asserts the hole (it would fail on a
fixed contract), the V2 half asserts the fix (it fails on V1, whose ABI lacks the functions)."""

from __future__ import annotations

from typing import Any

import pytest
from eth_utils import keccak
from web3.contract import Contract

from chain_node.errors import ContractRevert
from chain_node.node import ChainNode
from tbcim.blockchain.fl_market import FLMarketClient, TaskStatus

from .market_helpers import (
    REWARD,
    MarketRun,
    Sealed,
    advance_past,
    artifacts,
    ascending,
    assert_conserved,
    assert_reverts,
    stub_aggregator,
)

SPEC = bytes(range(32))
PAYMENT = 4 * 10**17
V1_FUNCTIONS = {"publishTask", "recordAuction", "attestAccuracy", "payDevices", "withdraw"}


@pytest.fixture
def node() -> ChainNode:
    node = ChainNode.embedded(n_servers=3, n_devices=4, seed=11)
    node.use_artifacts(artifacts())
    return node


@pytest.fixture
def v1(node: ChainNode) -> Contract:
    return node.deploy("FLMarketV1", sender=node.requester)


@pytest.fixture
def market(node: ChainNode) -> FLMarketClient:
    return FLMarketClient.deploy(node, node.requester)


def transacting(node: ChainNode, fn: Any, sender: str, value: int = 0) -> Any:
    return node.transact(fn, sender=sender, value=value)


def v1_reverts(node: ChainNode, fn: Any, sender: str, error: str) -> None:
    with pytest.raises(ContractRevert) as info:
        node.transact(fn, sender=sender)
    assert info.value.error_name == error


def v1_awarded(node: ChainNode, v1: Contract) -> None:
    """V1: task 1 published and its outcome recorded by the requester alone: es0 wins."""
    f, req = v1.functions, node.requester
    transacting(node, f.publishTask(SPEC, 800_000), req, value=REWARD)
    transacting(node, f.recordAuction(1, [node.servers[0]], [PAYMENT]), req)


def mutating_functions(contract: Contract) -> set[str]:
    return {
        item["name"]
        for item in contract.abi
        if item["type"] == "function" and item["stateMutability"] not in ("view", "pure")
    }


def v2_awarded(node: ChainNode, market: FLMarketClient) -> tuple[MarketRun, str]:
    """V2: three sealed bids; es0 (the lowest address) wins by the revealers' majority vote."""
    bids = [Sealed(s, 10**17, 1000, 100_000, keccak(s.encode())) for s in node.servers]
    run = MarketRun(market, bids, min_bidders=2).publish().commit().reveal()
    winner = ascending(node.servers)[0]
    return run.award([winner], [PAYMENT]), winner


def v2_training(
    node: ChainNode, market: FLMarketClient, v_i: tuple[int, int] = (10**17, 5 * 10**16)
) -> tuple[MarketRun, str]:
    run, winner = v2_awarded(node, market)
    run.set_aggregator(stub_aggregator(node))
    run.accept({winner: (node.devices[:2], list(v_i))})
    assert market.task(run.task_id).status == TaskStatus.TRAINING
    return run, winner


def test_hole_1_requester_records_any_outcome_and_fails_the_task_at_once(
    node: ChainNode, v1: Contract, market: FLMarketClient
) -> None:
    """V1: the requester records an outcome of its choosing, attests 0 % in the next block,
    before any model exists, and withdraws the whole escrow. V2: the requester cannot record
    an outcome (only revealers vote), and cannot attest before the training deadline nor for
    any model but the aggregator's."""
    req = node.requester
    v1_awarded(node, v1)
    transacting(node, v1.functions.attestAccuracy(1, 0), req)
    assert v1.functions.balanceOf(req).call() == REWARD
    transacting(node, v1.functions.withdraw(REWARD), req)
    assert node.w3.eth.get_balance(v1.address) == 0  # the hole: escrow back, nothing trained

    bids = [Sealed(s, 10**17, 1000, 100_000, keccak(s.encode())) for s in node.servers]
    run = MarketRun(market, bids).publish().commit().reveal()
    task, winner = run.task_id, ascending(node.servers)[0]
    assert_reverts(market, lambda: market.submit_outcome(req, task, [winner], [1]), "NotBidder")
    model = keccak(b"final model")
    assert_reverts(market, lambda: market.attest(req, task, model, 0.0), "WrongStatus")
    run.award([winner], [PAYMENT]).set_aggregator(stub_aggregator(node, model))
    assert_reverts(market, lambda: market.attest(req, task, model, 0.0), "WrongStatus")
    assert_reverts(market, lambda: market.cancel_task(req, task), "WrongStatus")
    run.accept({winner: (node.devices[:1], [10**16])})
    assert_reverts(market, lambda: market.attest(req, task, model, 0.0), "TooEarly")
    advance_past(node, run.terms.training_deadline)
    fake = keccak(b"no such model")
    assert_reverts(market, lambda: market.attest(req, task, fake, 0.0), "WrongModel")
    assert market.balance_of(req) == 0
    assert node.w3.eth.get_balance(market.contract.address) == REWARD


def test_hole_2_a_silent_requester_locks_the_payment(
    node: ChainNode, v1: Contract, market: FLMarketClient
) -> None:
    """V1: after the award, only the requester's attestation moves the escrow; if it never
    comes, every function the winner can call reverts, forever. V2: past the attestation
    deadline anyone settles the task as if the target was met (the requester forfeits)."""
    es0, f = node.servers[0], v1.functions
    v1_awarded(node, v1)
    node.advance_blocks(100)
    assert mutating_functions(v1) == V1_FUNCTIONS
    v1_reverts(node, f.attestAccuracy(1, 1_000_000), es0, "NotRequester")
    v1_reverts(node, f.payDevices(1, [node.devices[0]], [1]), es0, "WrongStatus")
    v1_reverts(node, f.withdraw(1), es0, "InsufficientBalance")
    v1_reverts(node, f.recordAuction(1, [es0], [1]), es0, "NotRequester")
    assert f.balanceOf(es0).call() == 0
    assert node.w3.eth.get_balance(v1.address) == REWARD  # the hole: locked

    run, winner = v2_training(node, market)
    advance_past(node, run.terms.attest_deadline)
    market.settle_unattested(winner, run.task_id)
    assert market.task(run.task_id).status == TaskStatus.COMPLETED
    assert market.balance_of(winner) == PAYMENT - 15 * 10**16
    market.withdraw(winner, PAYMENT - 15 * 10**16)
    assert market.balance_of(node.requester) == REWARD - PAYMENT
    assert_conserved(market)


def test_hole_3_an_es_pays_its_eds_nothing(
    node: ChainNode, v1: Contract, market: FLMarketClient
) -> None:
    """V1: once credited, the winner withdraws its whole payment without paying its EDs, after
    which it cannot pay them at all. V2: the EDs' amounts V_i, recorded at acceptance, are
    carved out before the winner is credited; it cannot withdraw them and each ED claims its
    own."""
    es0, req, (d0, d1) = node.servers[0], node.requester, node.devices[:2]
    f = v1.functions
    v1_awarded(node, v1)
    transacting(node, f.attestAccuracy(1, 900_000), req)
    transacting(node, f.withdraw(PAYMENT), es0)
    v1_reverts(node, f.payDevices(1, [d0, d1], [10**17, 5 * 10**16]), es0, "InsufficientBalance")
    assert f.balanceOf(d0).call() == f.balanceOf(d1).call() == 0  # the hole: EDs got nothing

    run, winner = v2_training(node, market)
    advance_past(node, run.terms.training_deadline)
    market.attest(req, run.task_id, keccak(b"final model"), 0.9)
    assert_reverts(market, lambda: market.withdraw(winner, PAYMENT), "InsufficientBalance")
    market.withdraw(winner, PAYMENT - 15 * 10**16)
    tree = run.trees[winner]
    for d in (d0, d1):
        market.claim_device_pay(d, run.task_id, winner, tree.amount(d), tree.proof(d))
    claims = market.contract.events.DevicePaid().get_logs(from_block=0)
    assert sorted(e.args.amount for e in claims) == [5 * 10**16, 10**17]
    assert_conserved(market)


def test_hole_4_a_task_can_neither_be_cancelled_nor_expire(
    node: ChainNode, v1: Contract, market: FLMarketClient
) -> None:
    """V1: no function cancels or expires a task; a published task no ES serves holds its
    escrow for ever (short of the requester awarding itself). V2: the requester cancels an
    Open task, and anyone expires one whose outcome never came."""
    req, f = node.requester, v1.functions
    transacting(node, f.publishTask(SPEC, 800_000), req, value=REWARD)
    node.advance_blocks(100)
    assert not {"cancelTask", "expireTask"} & mutating_functions(v1)
    v1_reverts(node, f.withdraw(1), req, "InsufficientBalance")
    v1_reverts(node, f.attestAccuracy(1, 0), req, "WrongStatus")
    assert node.w3.eth.get_balance(v1.address) == REWARD  # the hole: stuck while Open

    run = MarketRun(market, []).publish()
    market.cancel_task(req, run.task_id)
    assert market.balance_of(req) == REWARD
    run = MarketRun(market, []).publish()
    advance_past(node, run.terms.award_deadline)
    market.expire_task(node.devices[0], run.task_id)
    assert market.task(run.task_id).status == TaskStatus.CANCELLED
    market.withdraw(req, 2 * REWARD)
    assert node.w3.eth.get_balance(market.contract.address) == 0


def test_a_sealed_bid_binds_its_bidder(node: ChainNode, market: FLMarketClient) -> None:
    """An ES that copies another's commitment cannot open it, not even once the original is
    revealed and its values are public: the bidder's address is inside the commitment. With no
    commitment of its own a copied reveal is refused too."""
    es0, es1, es2 = node.servers
    honest = Sealed(es0, 10**17, 1000, 100_000, keccak(b"es0's salt"))
    run = MarketRun(market, []).publish()
    task = run.task_id
    market.commit_bid(es0, task, honest.commitment(task))
    market.commit_bid(es1, task, honest.commitment(task))  # copies the sealed bid
    advance_past(node, run.terms.commit_deadline)
    values = (honest.bid, honest.data_size, honest.emd_ppm, honest.salt)
    market.reveal_bid(es0, task, *values)  # es0's values are public from here on
    assert_reverts(market, lambda: market.reveal_bid(es1, task, *values), "RevealMismatch")
    assert_reverts(market, lambda: market.reveal_bid(es2, task, *values), "NotCommitted")
    assert [b.bidder for b in market.revealed_bids(task)] == [es0]
