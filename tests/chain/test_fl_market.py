"""FLMarket on the embedded chain: the settlement flow, conservation of the escrow, and every
bad input (revert with its custom error, no state change)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from chain_node.compiler import compile_contracts
from chain_node.errors import ContractRevert
from chain_node.node import ChainNode
from tbcim.blockchain.fl_market import FLMarketClient, TaskStatus
from tbcim.errors import ConfigError

SPEC = bytes(range(32))
REWARD = 10**18


@pytest.fixture
def node() -> ChainNode:
    return ChainNode.embedded(n_servers=2, n_devices=3, seed=5)


@pytest.fixture
def market(node: ChainNode) -> FLMarketClient:
    return FLMarketClient.deploy(node, node.requester)


def snapshot(market: FLMarketClient, task_ids: range = range(1, 3)) -> tuple:
    node, f = market.node, market.contract.functions
    accounts = [node.requester, *node.servers, *node.devices]
    tasks = []
    for t in task_ids:
        try:
            tasks.append(market.task(t))
        except ContractRevert:
            tasks.append(None)
    return (
        f.taskCount().call(),
        tuple(tasks),
        tuple(market.balance_of(a) for a in accounts),
        tuple(f.paymentOf(t, s).call() for t in task_ids for s in node.servers),
        tuple(f.devicesPaid(t, s).call() for t in task_ids for s in node.servers),
        node.w3.eth.get_balance(market.contract.address),
        node.block_number,
    )


def assert_reverts(market: FLMarketClient, action: Callable[[], object], error: str) -> tuple:
    before = snapshot(market)
    with pytest.raises(ContractRevert) as info:
        action()
    assert info.value.error_name == error
    assert snapshot(market) == before
    return info.value.error_args


def awarded(market: FLMarketClient, payments: tuple[int, int] = (4 * 10**17, 3 * 10**17)) -> int:
    node = market.node
    task = market.publish_task(node.requester, REWARD, SPEC, target_accuracy=0.8)
    market.record_auction(node.requester, task, node.servers, payments)
    return task


def test_successful_task_pays_winners_devices_and_refunds_the_rest(
    node: ChainNode, market: FLMarketClient
) -> None:
    task = awarded(market)
    t = market.task(task)
    assert (t.status, t.escrow, t.total_payment) == (TaskStatus.AWARDED, REWARD, 7 * 10**17)
    assert t.winners == tuple(node.servers) and t.spec == SPEC and t.target_accuracy == 0.8
    market.attest_accuracy(node.requester, task, 0.85)
    assert market.task(task).status == TaskStatus.COMPLETED
    es0, es1 = node.servers
    assert market.balance_of(es0) == 4 * 10**17
    assert market.balance_of(es1) == 3 * 10**17
    assert market.balance_of(node.requester) == 3 * 10**17  # unspent escrow
    market.pay_devices(es0, task, node.devices[:2], [10**17, 2 * 10**17])
    assert market.balance_of(es0) == 10**17
    assert [market.balance_of(d) for d in node.devices[:2]] == [10**17, 2 * 10**17]
    # pull payment: the device's ether balance rises by the amount minus its gas
    device = node.devices[1]
    before = node.w3.eth.get_balance(device)
    receipt = market.withdraw(device, 2 * 10**17)
    fee = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert node.w3.eth.get_balance(device) == before + 2 * 10**17 - fee
    assert market.balance_of(device) == 0
    # conservation: the contract holds exactly the sum of the balances still owed
    owed = sum(market.balance_of(a) for a in [node.requester, *node.servers, *node.devices])
    assert node.w3.eth.get_balance(market.contract.address) == owed == REWARD - 2 * 10**17
    events = market.contract.events
    assert len(events.PaymentReleased().get_logs(from_block=0)) == 2
    assert events.EscrowRefunded().get_logs(from_block=0)[0].args.amount == 3 * 10**17


def test_missed_target_refunds_the_whole_escrow(node: ChainNode, market: FLMarketClient) -> None:
    task = awarded(market)
    market.attest_accuracy(node.requester, task, 0.5)
    assert market.task(task).status == TaskStatus.FAILED
    assert market.balance_of(node.requester) == REWARD
    assert all(market.balance_of(s) == 0 for s in node.servers)
    (log,) = market.contract.events.AccuracyAttested().get_logs(from_block=0)
    assert (log.args.accuracyPpm, log.args.targetMet) == (500_000, False)


def test_publish_and_auction_errors(node: ChainNode, market: FLMarketClient) -> None:
    req, (es0, es1) = node.requester, node.servers
    fns = market.contract.functions
    assert_reverts(market, lambda: market.publish_task(req, 0, SPEC, 0.8), "NoEscrow")
    assert_reverts(
        market,
        lambda: node.transact(fns.publishTask(SPEC, 10**6 + 1), sender=req, value=1),
        "InvalidAccuracy",
    )
    with pytest.raises(ConfigError, match="target_accuracy"):
        market.publish_task(req, 1, SPEC, 1.5)
    with pytest.raises(ConfigError, match="spec"):
        market.publish_task(req, 1, b"short", 0.5)
    task = market.publish_task(req, REWARD, SPEC, 0.8)
    record = market.record_auction
    assert_reverts(market, lambda: record(es0, task, [es0], [1]), "NotRequester")
    assert_reverts(market, lambda: record(req, 99, [es0], [1]), "UnknownTask")
    assert_reverts(market, lambda: record(req, task, [es0, es1], [1]), "WrongLength")
    assert_reverts(market, lambda: record(req, task, [], []), "WrongLength")
    assert_reverts(market, lambda: record(req, task, [es0, es0], [1, 1]), "InvalidRecipient")
    zero = "0x" + "00" * 20
    assert_reverts(market, lambda: record(req, task, [zero], [1]), "InvalidRecipient")
    assert_reverts(market, lambda: record(req, task, [es0], [0]), "InvalidRecipient")
    args = assert_reverts(
        market, lambda: record(req, task, [es0, es1], [REWARD, 1]), "PaymentsExceedEscrow"
    )
    assert args == (REWARD + 1, REWARD)
    assert_reverts(market, lambda: market.attest_accuracy(req, task, 0.9), "WrongStatus")
    record(req, task, [es0], [REWARD])
    assert_reverts(market, lambda: record(req, task, [es1], [1]), "WrongStatus")


def test_payout_errors(node: ChainNode, market: FLMarketClient) -> None:
    req, (es0, es1) = node.requester, node.servers
    d0, d1, _ = node.devices
    task = awarded(market)
    assert_reverts(market, lambda: market.pay_devices(es0, task, [d0], [1]), "WrongStatus")
    assert_reverts(market, lambda: market.attest_accuracy(es0, task, 0.9), "NotRequester")
    attest = market.contract.functions.attestAccuracy(task, 10**6 + 1)
    assert_reverts(market, lambda: node.transact(attest, sender=req), "InvalidAccuracy")
    market.attest_accuracy(req, task, 0.9)
    # paying out twice: a second attestation and a second ED payment both revert
    assert_reverts(market, lambda: market.attest_accuracy(req, task, 0.9), "WrongStatus")
    assert_reverts(market, lambda: market.pay_devices(d0, task, [d1], [1]), "NothingReceived")
    assert_reverts(market, lambda: market.pay_devices(es0, task, [d0], [1, 2]), "WrongLength")
    assert_reverts(
        market, lambda: market.pay_devices(es0, task, [d0, d0], [1, 1]), "InvalidRecipient"
    )
    assert_reverts(market, lambda: market.pay_devices(es0, task, [es0], [1]), "InvalidRecipient")
    assert_reverts(
        market, lambda: market.pay_devices(es0, task, [d0], [4 * 10**17 + 1]), "ExceedsPayment"
    )
    market.withdraw(es0, 4 * 10**17 - 5)
    assert_reverts(market, lambda: market.pay_devices(es0, task, [d0], [6]), "InsufficientBalance")
    market.pay_devices(es0, task, [d0], [5])
    assert_reverts(market, lambda: market.pay_devices(es0, task, [d1], [0]), "AlreadyPaid")
    # withdrawing more than owed, or nothing
    args = assert_reverts(market, lambda: market.withdraw(d0, 6), "InsufficientBalance")
    assert args == (5, 6)
    assert_reverts(market, lambda: market.withdraw(d0, 0), "ZeroAmount")
    assert_reverts(market, lambda: market.withdraw(es1, 3 * 10**17 + 1), "InsufficientBalance")
    market.withdraw(d0, 5)
    assert_reverts(market, lambda: market.withdraw(d0, 1), "InsufficientBalance")
    # views revert too (ChainNode.call does not decode eth-tester's eth_call revert data yet,
    # so only the revert itself is asserted here)
    with pytest.raises(ContractRevert):
        market.task(7)


PAYEE = """// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

interface IMarket {
    function withdraw(uint256 amount) external;
}

/// A winner that cannot receive ether (no receive or fallback function).
contract RejectingPayee {
    function pull(IMarket market, uint256 amount) external {
        market.withdraw(amount);
    }
}
"""


def test_withdrawal_to_an_account_that_rejects_ether_reverts(
    node: ChainNode, market: FLMarketClient, tmp_path: Path
) -> None:
    (tmp_path / "RejectingPayee.sol").write_text(PAYEE)
    node.use_artifacts({**compile_contracts(), **compile_contracts(tmp_path)})
    payee = node.deploy("RejectingPayee", sender=node.requester)
    task = market.publish_task(node.requester, REWARD, SPEC, 0.5)
    market.record_auction(node.requester, task, [payee.address], [REWARD])
    market.attest_accuracy(node.requester, task, 0.6)
    assert market.balance_of(payee.address) == REWARD
    pull = payee.functions.pull(market.contract.address, REWARD)
    args = assert_reverts(
        market, lambda: node.transact(pull, sender=node.requester), "TransferFailed"
    )
    assert (args[0].lower(), args[1]) == (payee.address.lower(), REWARD)
    assert market.balance_of(payee.address) == REWARD
