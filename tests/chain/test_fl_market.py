"""FLMarket on the embedded chain: a task end to end with a real FLAggregator, the escrow
reconciled to the wei at every step, and the Python mirrors of the contract's hashing."""

from __future__ import annotations

import dataclasses

import pytest
from eth_abi import encode
from eth_utils import keccak, to_checksum_address
from web3.types import TxReceipt

from chain_node.node import ChainNode
from tbcim.blockchain.fl_market import (
    FLMarketClient,
    RevealedBid,
    TaskStatus,
    TaskTerms,
    bid_commitment,
    outcome_hash,
    outcome_seed,
)
from tbcim.blockchain.smoke import TaskOnChain
from tbcim.errors import ConfigError

from .market_helpers import (
    REWARD,
    MarketRun,
    Sealed,
    advance_past,
    artifacts,
    ascending,
    assert_conserved,
    held,
    make_terms,
)


@pytest.fixture
def node() -> ChainNode:
    node = ChainNode.embedded(n_servers=4, n_devices=6, seed=5)
    node.use_artifacts(artifacts())
    return node


@pytest.fixture
def market(node: ChainNode) -> FLMarketClient:
    return FLMarketClient.deploy(node, node.requester)


def sealed_bids(node: ChainNode) -> list[Sealed]:
    return [
        Sealed(s, (i + 1) * 10**16, 1000 + 100 * i, 50_000 * (i + 1), keccak(b"salt%d" % i))
        for i, s in enumerate(node.servers)
    ]


def ether(node: ChainNode, account: str) -> int:
    return int(node.w3.eth.get_balance(to_checksum_address(account)))


def fee(node: ChainNode, account: str, receipt: TxReceipt) -> int:
    """What ``account`` paid for the transaction: its gas, less the tip when it also produced
    the block (the producers are the ESs)."""
    gas, price = int(receipt["gasUsed"]), int(receipt["effectiveGasPrice"])
    block = node.w3.eth.get_block(receipt["blockNumber"])
    tip = gas * (price - int(block["baseFeePerGas"])) if block["miner"] == account else 0
    return gas * price - tip


def test_a_task_end_to_end_reconciles_to_the_wei(node: ChainNode, market: FLMarketClient) -> None:
    """Publish → 4 sealed bids → reveals → majority vote (one dissent) → a real FLAggregator
    with the winners as servers → acceptances with the EDs' V_i → one FL round → attestation
    of the aggregator's model → ED claims and withdrawals. The escrow splits exactly into the
    requester's refund, the ESs' credits and the EDs' claims, and the contract's ether equals
    what it owes after every step."""
    bids = sealed_bids(node)
    run = MarketRun(market, bids, min_bidders=3, windows=(10, 10, 10, 40, 30, 10))
    run.publish().commit()
    for b in bids:
        assert market.bid_of(run.task_id, b.server)[:2] == (True, False)
    run.reveal()
    task = market.task(run.task_id)
    assert task.revealed == 4 and task.status == TaskStatus.OPEN
    assert market.revealed_bids(run.task_id) == [
        RevealedBid(b.server, b.bid, b.data_size, b.emd_ppm) for b in bids
    ]
    salts = market.reveal_salts(run.task_id)
    assert salts == [(b.server, b.salt) for b in bids]
    # the seed is the XOR of the reveals' hashes, whatever their order
    assert task.seed == outcome_seed(salts) == outcome_seed(salts[::-1])

    winners = ascending([node.servers[0], node.servers[2]])
    payments = [3 * 10**17, 2 * 10**17]
    es = node.servers
    market.submit_outcome(es[0], run.task_id, winners, payments)
    market.submit_outcome(es[1], run.task_id, winners, payments)
    market.submit_outcome(es[2], run.task_id, winners, [3 * 10**17, 10**17])  # dissent
    h = outcome_hash(winners, payments)
    assert market.contract.functions.votes(run.task_id, h).call() == 2
    assert market.task(run.task_id).status == TaskStatus.OPEN  # 2 of 4 is no majority
    market.submit_outcome(es[3], run.task_id, winners, payments)
    task = market.task(run.task_id)
    assert task.status == TaskStatus.AWARDED
    assert (task.winners, task.payments, task.outcome) == (tuple(winners), tuple(payments), h)
    assert task.total_payment == sum(payments)
    (final,) = market.contract.events.AwardFinalized().get_logs(from_block=0)
    assert final.args.seed == task.seed and final.args.outcome == h
    assert_conserved(market)

    # the requester deploys the task's aggregator with the winners as its servers
    eds = node.devices[:5]
    onchain = TaskOnChain(node, 20, eds, [300, 200, 400, 250, 350], servers=winners, seed=3)
    run.set_aggregator(onchain.client.contract.address)
    owner = {d: winners[i % 2] for i, d in enumerate(eds)}  # TaskOnChain's round-robin
    v_i = dict(zip(eds, [4 * 10**16, 3 * 10**16, 5 * 10**16, 10**16, 2 * 10**16], strict=True))
    lists = {
        w: ([d for d in eds if owner[d] == w], [v_i[d] for d in eds if owner[d] == w])
        for w in winners
    }
    run.accept(lists)
    task = market.task(run.task_id)
    assert task.status == TaskStatus.TRAINING and task.accepted == 2
    for w in winners:
        assert market.device_root(run.task_id, w) == run.trees[w].root
        assert market.device_pool(run.task_id, w) == sum(lists[w][1])
        assert market.accepted_devices(run.task_id, w) == (
            list(run.trees[w].devices),
            list(run.trees[w].amounts),
        )

    measurement = onchain.run_round()
    assert measurement.accepted == len(eds)
    advance_past(node, run.terms.training_deadline)
    model = bytes(onchain.client.contract.functions.globalModelHash().call())
    requester_before = market.balance_of(node.requester)
    market.attest(node.requester, run.task_id, model, 0.91)
    assert market.task(run.task_id).status == TaskStatus.COMPLETED
    (log,) = market.contract.events.AccuracyAttested().get_logs(from_block=0)
    assert (log.args.modelHash, log.args.accuracyPpm, log.args.targetMet) == (model, 910_000, True)
    refund = market.balance_of(node.requester) - requester_before
    credit = {w: market.balance_of(w) for w in winners}
    for w, p in zip(winners, payments, strict=True):
        assert credit[w] == p - sum(lists[w][1])  # the EDs' pay is carved out first
    assert_conserved(market)

    claimed = 0
    for w in winners:
        tree = run.trees[w]
        for d in tree.devices:
            before = ether(node, d)
            receipt = market.claim_device_pay(d, run.task_id, w, tree.amount(d), tree.proof(d))
            assert ether(node, d) == before + v_i[d] - fee(node, d, receipt)
            assert market.claimed(run.task_id, w, d)
            claimed += v_i[d]
            assert_conserved(market)
        assert market.device_pool(run.task_id, w) == 0
    # escrow = requester refund + Σ ES credit + Σ ED claims, to the wei
    assert refund + sum(credit.values()) + claimed == REWARD
    assert refund == REWARD - sum(payments)
    for account in [node.requester, *winners]:
        before = ether(node, account)
        owed = market.balance_of(account)
        receipt = market.withdraw(account, owed)
        assert ether(node, account) == before + owed - fee(node, account, receipt)
        assert_conserved(market)
    assert held(market) == 0 == ether(node, market.contract.address)


def test_missed_target_refunds_everything_and_eds_cannot_claim(
    node: ChainNode, market: FLMarketClient
) -> None:
    from .market_helpers import assert_reverts, stub_aggregator

    run = MarketRun(market, sealed_bids(node)[:2]).publish().commit().reveal()
    es0 = run.bids[0].server
    run.award([es0], [10**17]).set_aggregator(stub_aggregator(node))
    run.accept({es0: ([node.devices[0]], [4 * 10**16])})
    advance_past(node, run.terms.training_deadline)
    market.attest(node.requester, run.task_id, keccak(b"final model"), 0.5)
    assert market.task(run.task_id).status == TaskStatus.FAILED
    assert market.balance_of(node.requester) == REWARD
    assert market.balance_of(es0) == 0
    tree = run.trees[es0]
    d = node.devices[0]
    claim = market.claim_device_pay
    assert_reverts(
        market, lambda: claim(d, run.task_id, es0, 4 * 10**16, tree.proof(d)), "WrongStatus"
    )
    assert_conserved(market)


def test_an_empty_outcome_cancels_and_refunds(node: ChainNode, market: FLMarketClient) -> None:
    run = MarketRun(market, sealed_bids(node)[:3]).publish().commit().reveal().award([], [])
    assert market.task(run.task_id).status == TaskStatus.CANCELLED
    assert market.balance_of(node.requester) == REWARD
    (log,) = market.contract.events.AwardFinalized().get_logs(from_block=0)
    assert log.args.outcome == outcome_hash([], [])
    assert_conserved(market)


# ---------------------------------------------------------------------- python mirrors


def test_python_hashes_equal_the_contracts(node: ChainNode, market: FLMarketClient) -> None:
    """bid_commitment (a reveal with it succeeds, the contract recomputes the same), the seed
    and outcome_hash against the values on chain, and against an independent byte layout."""
    bids = sealed_bids(node)
    run = MarketRun(market, bids).publish().commit()
    b = bids[0]
    manual = keccak(
        run.task_id.to_bytes(32, "big")
        + bytes(12)
        + bytes.fromhex(b.server[2:])
        + b.bid.to_bytes(32, "big")
        + b.data_size.to_bytes(32, "big")
        + b.emd_ppm.to_bytes(32, "big")
        + b.salt
    )
    assert bid_commitment(run.task_id, b.server, b.bid, b.data_size, b.emd_ppm, b.salt) == manual
    (event,) = [
        e
        for e in market.contract.events.BidCommitted().get_logs(from_block=0)
        if e.args.bidder == b.server
    ]
    assert event.args.commitment == manual
    run.reveal()
    seed = 0
    for bid in bids:
        seed ^= int.from_bytes(keccak(bytes(12) + bytes.fromhex(bid.server[2:]) + bid.salt), "big")
    assert market.task(run.task_id).seed == seed == outcome_seed([(x.server, x.salt) for x in bids])
    winners = ascending(node.servers[:2])
    run.award(winners, [5, 7])
    assert market.task(run.task_id).outcome == outcome_hash(winners, [5, 7])
    assert outcome_hash(winners, [5, 7]) == keccak(
        encode(["address[]", "uint256[]"], [winners, [5, 7]])
    )


def test_terms_round_trip_and_bad_values_name_their_field(node: ChainNode) -> None:
    terms = make_terms(node)
    assert TaskTerms.from_chain(terms.as_tuple()) == terms
    for field, value in [
        ("spec", b"short"),
        ("target_accuracy", 1.5),
        ("min_bidders", 2**16),
        ("bid_low", -1),
        ("attest_deadline", 2**64),
        ("commit_deadline", 1.5),
    ]:
        with pytest.raises(ConfigError, match=field):
            dataclasses.replace(terms, **{field: value})
    with pytest.raises(ConfigError, match="windows"):
        TaskTerms.schedule(0, (1, 2, 3))
