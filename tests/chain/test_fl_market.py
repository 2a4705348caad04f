"""FLMarket on the embedded chain: a task end to end with a real FLAggregator, the escrow
reconciled to the wei at every step, and the Python mirrors of the contract's hashing."""

from __future__ import annotations

import dataclasses

import pytest
from eth_abi import encode
from eth_utils import keccak, to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3.contract import Contract
from web3.types import TxReceipt

from chain_node.errors import ContractRevert
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
    BID_HIGH,
    BID_LOW,
    REWARD,
    MarketRun,
    Sealed,
    advance_past,
    advance_to,
    artifacts,
    ascending,
    assert_conserved,
    assert_reverts,
    held,
    make_terms,
    stub_aggregator,
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


# ---------------------------------------------------------------------- every revert


ZERO = "0x" + "00" * 20


def forwarder(node: ChainNode) -> Contract:
    return node.deploy("RejectingAccount", sender=node.requester)


def via(
    node: ChainNode,
    account: Contract,
    market: FLMarketClient,
    fn: str,
    *args: object,
    value: int = 0,
) -> object:
    """Call ``market.fn(*args)`` from the RejectingAccount contract ``account``."""
    data = market.contract.encode_abi(fn, args=list(args))
    call = account.functions.forward(market.contract.address, data)
    return node.transact(call, sender=node.requester, value=value)


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("minBidders", {4: 0}),
        ("bidHigh", {5: 0, 6: 0}),
        ("bidLow", {5: BID_HIGH + 1}),
        ("commitDeadline", {7: "now"}),
        ("revealDeadline", {8: "prev"}),
        ("awardDeadline", {9: "prev"}),
        ("acceptDeadline", {10: "prev"}),
        ("trainingDeadline", {11: "prev"}),
        ("attestDeadline", {12: "prev"}),
    ],
)
def test_publish_rejects_each_bad_term_by_name(
    node: ChainNode, market: FLMarketClient, field: str, change: dict[int, object]
) -> None:
    terms = list(make_terms(node).as_tuple())
    for index, value in change.items():
        if value == "now":  # the publishing transaction's own block
            value = node.block_number + 1
        elif value == "prev":
            value = terms[index - 1]
        terms[index] = value
    publish = market.contract.functions.publishTask(tuple(terms))
    send = lambda: node.transact(publish, sender=node.requester, value=REWARD)  # noqa: E731
    assert assert_reverts(market, send, "InvalidTerms") == (field,)
    # one block later the same deadline is fine: the check is exactly "in the future"
    if field == "commitDeadline":
        terms[7] = node.block_number + 2
        node.transact(
            market.contract.functions.publishTask(tuple(terms)), sender=node.requester, value=1
        )


def test_publish_needs_escrow_and_a_valid_target(node: ChainNode, market: FLMarketClient) -> None:
    req = node.requester
    terms = make_terms(node)
    assert_reverts(market, lambda: market.publish_task(req, 0, terms), "NoEscrow")
    raw = list(terms.as_tuple())
    raw[3] = 10**6 + 1
    publish = market.contract.functions.publishTask(tuple(raw))
    args = assert_reverts(
        market, lambda: node.transact(publish, sender=req, value=1), "InvalidAccuracy"
    )
    assert args == (10**6 + 1,)
    for fn in (market.contract.functions.cancelTask(99), market.contract.functions.expireTask(99)):
        assert assert_reverts(
            market, lambda fn=fn: node.transact(fn, sender=req), "UnknownTask"
        ) == (99,)
    with pytest.raises(ContractRevert, match="UnknownTask"):
        market.task(99)


def test_cancel_and_expire(node: ChainNode, market: FLMarketClient) -> None:
    req, es, d = node.requester, node.servers, node.devices
    bids = sealed_bids(node)[:2]
    # cancel: requester only, while Open; refund in full
    run = MarketRun(market, bids).publish()
    assert_reverts(market, lambda: market.cancel_task(es[0], run.task_id), "NotRequester")
    args = assert_reverts(market, lambda: market.expire_task(d[0], run.task_id), "TooEarly")
    assert args == (node.block_number + 1, run.terms.award_deadline)
    market.cancel_task(req, run.task_id)
    assert market.task(run.task_id).status == TaskStatus.CANCELLED
    assert market.balance_of(req) == REWARD
    assert_conserved(market)
    for action in (
        lambda: market.cancel_task(req, run.task_id),
        lambda: market.expire_task(d[0], run.task_id),
        lambda: market.commit_bid(es[0], run.task_id, bids[0].commitment(run.task_id)),
    ):
        args = assert_reverts(market, action, "WrongStatus")
        assert args == (run.task_id, TaskStatus.CANCELLED)
    # expire, Open: no majority by the award deadline (anyone may call it)
    run = MarketRun(market, bids).publish().commit().reveal()
    market.submit_outcome(es[0], run.task_id, [es[0]], [10**17])  # 1 of 2 is no majority
    advance_past(node, run.terms.award_deadline)
    market.expire_task(d[0], run.task_id)
    assert market.task(run.task_id).status == TaskStatus.CANCELLED
    assert market.balance_of(req) == 2 * REWARD
    # expire, Awarded: a winner did not accept by the acceptance deadline
    run = MarketRun(market, bids).publish().commit().reveal()
    winners = ascending(es[:2])
    run.award(winners, [10**17, 10**17]).set_aggregator(stub_aggregator(node))
    assert_reverts(market, lambda: market.cancel_task(req, run.task_id), "WrongStatus")
    run.accept({winners[0]: ([d[0]], [10**16])})
    args = assert_reverts(market, lambda: market.expire_task(d[0], run.task_id), "TooEarly")
    assert args == (node.block_number + 1, run.terms.accept_deadline)
    advance_past(node, run.terms.accept_deadline)
    aggregator = market.task(run.task_id).aggregator
    args = assert_reverts(
        market,
        lambda: market.accept_award(winners[1], run.task_id, aggregator, [d[1]], [1]),
        "TooLate",
    )
    assert args == (node.block_number + 1, run.terms.accept_deadline)
    market.expire_task(es[1], run.task_id)
    assert market.task(run.task_id).status == TaskStatus.CANCELLED
    assert market.balance_of(req) == 3 * REWARD
    assert_conserved(market)
    # a task in training neither cancels nor expires
    run = MarketRun(market, bids).publish().commit().reveal()
    run.award([winners[0]], [10**17]).set_aggregator(stub_aggregator(node))
    run.accept({winners[0]: ([d[0]], [10**16])})
    advance_past(node, run.terms.attest_deadline)
    for action in (
        lambda: market.cancel_task(req, run.task_id),
        lambda: market.expire_task(req, run.task_id),
    ):
        assert assert_reverts(market, action, "WrongStatus") == (run.task_id, TaskStatus.TRAINING)


def test_bidding_reverts(node: ChainNode) -> None:
    es, d = node.servers, node.devices
    # the ESs and five more accounts may bid (the bad bids below); d[5] may not
    market = FLMarketClient.deploy(node, node.requester, [*es, *d[:5]])
    run = MarketRun(market, sealed_bids(node)[:2]).publish()
    task = run.task_id
    b0 = run.bids[0]
    args = assert_reverts(market, lambda: market.commit_bid(d[5], task, keccak(b"z")), "NotServer")
    assert args == (d[5],)
    assert_reverts(market, lambda: market.commit_bid(es[0], task, bytes(32)), "InvalidCommitment")
    market.commit_bid(es[0], task, b0.commitment(task))
    args = assert_reverts(
        market, lambda: market.commit_bid(es[0], task, b0.commitment(task)), "AlreadyCommitted"
    )
    assert args == (es[0],)
    reveal = market.reveal_bid
    args = assert_reverts(
        market, lambda: reveal(es[0], task, b0.bid, b0.data_size, b0.emd_ppm, b0.salt), "WrongPhase"
    )
    assert args == (node.block_number + 1, run.terms.commit_deadline, run.terms.reveal_deadline)
    # bidders whose sealed bids are out of the bid space or unusable
    bad = [
        Sealed(d[0], BID_LOW - 1, 100, 0, keccak(b"a")),
        Sealed(d[1], BID_HIGH + 1, 100, 0, keccak(b"b")),
        Sealed(d[2], BID_LOW, 0, 0, keccak(b"c")),
        Sealed(d[3], BID_LOW, 100, 2 * 10**6 + 1, keccak(b"d")),  # θ ≤ 2
        Sealed(d[4], BID_LOW, 2**64, 0, keccak(b"e")),  # stored as a uint64
    ]
    for b in bad:
        market.commit_bid(b.server, task, b.commitment(task))
    advance_past(node, run.terms.commit_deadline)
    args = assert_reverts(
        market, lambda: market.commit_bid(es[1], task, keccak(b"x")), "WrongPhase"
    )
    assert args == (node.block_number + 1, 0, run.terms.commit_deadline)
    assert assert_reverts(
        market, lambda: reveal(es[1], task, 1, 1, 1, keccak(b"x")), "NotCommitted"
    ) == (es[1],)
    # a reveal that does not match the commitment: another bid, another salt
    wrong = keccak(b"wrong salt")
    args = assert_reverts(
        market,
        lambda: reveal(es[0], task, b0.bid + 1, b0.data_size, b0.emd_ppm, b0.salt),
        "RevealMismatch",
    )
    assert args[0] == b0.commitment(task)
    assert args[1] == bid_commitment(task, es[0], b0.bid + 1, b0.data_size, b0.emd_ppm, b0.salt)
    assert_reverts(
        market,
        lambda: reveal(es[0], task, b0.bid, b0.data_size, b0.emd_ppm, wrong),
        "RevealMismatch",
    )
    for b, error, expected in [
        (bad[0], "BidOutOfRange", (BID_LOW - 1, BID_LOW, BID_HIGH)),
        (bad[1], "BidOutOfRange", (BID_HIGH + 1, BID_LOW, BID_HIGH)),
        (bad[2], "InvalidBid", (0, 0)),
        (bad[3], "InvalidBid", (100, 2 * 10**6 + 1)),
        (bad[4], "InvalidBid", (2**64, 0)),
    ]:
        args = assert_reverts(
            market, lambda b=b: reveal(b.server, task, b.bid, b.data_size, b.emd_ppm, b.salt), error
        )
        assert args == expected
    reveal(es[0], task, b0.bid, b0.data_size, b0.emd_ppm, b0.salt)
    assert_reverts(
        market,
        lambda: reveal(es[0], task, b0.bid, b0.data_size, b0.emd_ppm, b0.salt),
        "AlreadyRevealed",
    )
    assert market.bid_of(task, d[0])[:2] == (True, False)  # its failed reveal left no trace
    advance_past(node, run.terms.reveal_deadline)
    args = assert_reverts(
        market, lambda: reveal(es[0], task, b0.bid, b0.data_size, b0.emd_ppm, b0.salt), "WrongPhase"
    )
    assert args[1:] == (run.terms.commit_deadline, run.terms.reveal_deadline)
    with pytest.raises(ConfigError, match="salt"):
        market.reveal_bid(es[0], task, 1, 1, 1, b"short")
    with pytest.raises(ConfigError, match="commitment"):
        market.commit_bid(es[0], task, b"short")


def test_outcome_reverts(node: ChainNode, market: FLMarketClient) -> None:
    es, d = node.servers, node.devices
    bids = sealed_bids(node)  # es[3] commits but never reveals
    run = MarketRun(market, bids[:3], min_bidders=2).publish()
    market.commit_bid(es[3], run.task_id, bids[3].commitment(run.task_id))
    run.commit()
    vote = market.submit_outcome
    task = run.task_id
    args = assert_reverts(market, lambda: vote(es[0], task, [es[0]], [1]), "WrongPhase")
    assert args == (node.block_number + 1, run.terms.reveal_deadline, run.terms.award_deadline)
    run.reveal()
    a, b, _ = ascending(es[:3])
    assert assert_reverts(market, lambda: vote(es[3], task, [a], [1]), "NotBidder") == (es[3],)
    assert assert_reverts(market, lambda: vote(d[0], task, [a], [1]), "NotBidder") == (d[0],)
    assert assert_reverts(market, lambda: vote(a, task, [a, b], [1]), "WrongLength") == (2, 1)
    assert assert_reverts(market, lambda: vote(a, task, [b, a], [1, 1]), "InvalidRecipient") == (a,)
    assert assert_reverts(market, lambda: vote(a, task, [a, a], [1, 1]), "InvalidRecipient") == (a,)
    assert assert_reverts(market, lambda: vote(a, task, [ZERO], [1]), "InvalidRecipient") == (ZERO,)
    with_loser = ascending([a, es[3]])  # es[3] committed but did not reveal
    assert assert_reverts(market, lambda: vote(a, task, with_loser, [1, 1]), "NotBidder") == (
        es[3],
    )
    assert assert_reverts(market, lambda: vote(a, task, [a, b], [1, 0]), "ZeroPayment") == (b,)
    args = assert_reverts(
        market, lambda: vote(a, task, [a, b], [REWARD, 1]), "PaymentsExceedEscrow"
    )
    assert args == (REWARD + 1, REWARD)
    vote(a, task, [a, b], [REWARD - 1, 1])  # exactly the escrow is fine
    assert assert_reverts(market, lambda: vote(a, task, [a], [1]), "AlreadyVoted") == (a,)
    assert market.task(task).status == TaskStatus.OPEN  # 1 of 3
    advance_past(node, run.terms.award_deadline)
    args = assert_reverts(market, lambda: vote(b, task, [a, b], [REWARD - 1, 1]), "WrongPhase")
    assert args == (node.block_number + 1, run.terms.reveal_deadline, run.terms.award_deadline)
    # fewer reveals than the task needs: no outcome can be voted
    run = MarketRun(market, bids[:2], min_bidders=3).publish().commit().reveal()
    args = assert_reverts(market, lambda: vote(es[0], run.task_id, [es[0]], [1]), "TooFewBidders")
    assert args == (2, 3)


def awarded(
    node: ChainNode, market: FLMarketClient, payments: tuple[int, int] = (3 * 10**17, 2 * 10**17)
) -> tuple[MarketRun, list[str]]:
    """A task awarded to the two lowest-address ESs of three bidders."""
    run = MarketRun(market, sealed_bids(node)[:3]).publish().commit().reveal()
    winners = ascending(node.servers[:3])[:2]
    return run.award(winners, list(payments)), winners


def test_acceptance_reverts(node: ChainNode, market: FLMarketClient) -> None:
    req, d = node.requester, node.devices
    run, (w0, w1) = awarded(node, market)
    loser = ascending(node.servers[:3])[2]
    task = run.task_id
    stub = stub_aggregator(node)
    accept = market.contract.functions.acceptAward  # raw: the client sorts and checks lists

    def send(server: str, devices: list[str], amounts: list[int], agg: str = stub) -> object:
        return node.transact(accept(task, agg, devices, amounts), sender=server)

    eds = ascending(d[:3])
    args = assert_reverts(market, lambda: send(w0, eds, [1, 1, 1]), "AggregatorMismatch")
    assert args == (stub, ZERO)  # not set yet
    assert_reverts(market, lambda: market.set_aggregator(w0, task, stub), "NotRequester")
    assert assert_reverts(
        market, lambda: market.set_aggregator(req, task, ZERO), "InvalidRecipient"
    ) == (ZERO,)
    market.set_aggregator(req, task, stub)
    args = assert_reverts(
        market, lambda: market.set_aggregator(req, task, d[0]), "AggregatorAlreadySet"
    )
    assert args == (stub,)
    assert assert_reverts(market, lambda: send(loser, eds, [1, 1, 1]), "NotWinner") == (loser,)
    assert assert_reverts(market, lambda: send(d[0], eds[1:], [1, 1]), "NotWinner") == (d[0],)
    assert assert_reverts(market, lambda: send(w0, eds, [1, 1, 1], d[0]), "AggregatorMismatch") == (
        d[0],
        stub,
    )
    assert assert_reverts(market, lambda: send(w0, [], []), "WrongLength") == (0, 0)
    assert assert_reverts(market, lambda: send(w0, eds, [1, 1]), "WrongLength") == (3, 2)
    assert assert_reverts(market, lambda: send(w0, eds[::-1], [1, 1, 1]), "InvalidRecipient") == (
        eds[1],
    )
    assert assert_reverts(
        market, lambda: send(w0, [eds[0], eds[0]], [1, 1]), "InvalidRecipient"
    ) == (eds[0],)
    assert assert_reverts(
        market, lambda: send(w0, [ZERO, *eds], [1, 1, 1, 1]), "InvalidRecipient"
    ) == (ZERO,)
    with_self = ascending([*eds, w0])
    assert assert_reverts(market, lambda: send(w0, with_self, [1] * 4), "InvalidRecipient") == (w0,)
    assert assert_reverts(market, lambda: send(w0, eds, [1, 0, 1]), "ZeroPayment") == (eds[1],)
    over = [10**17, 10**17, 10**17 + 1]
    assert assert_reverts(market, lambda: send(w0, eds, over), "ExceedsPayment") == (
        3 * 10**17 + 1,
        3 * 10**17,
    )
    market.accept_award(w0, task, stub, eds, [10**17, 10**17, 10**17])  # exactly its payment
    assert assert_reverts(market, lambda: send(w0, eds, [1, 1, 1]), "AlreadyAccepted") == (w0,)
    assert market.task(task).status == TaskStatus.AWARDED  # one of two winners
    # the client sorts, and refuses lists the contract would refuse, naming the problem
    cases: list[tuple[list[str], list[int], str]] = [
        ([d[0], d[0]], [1, 1], "listed twice"),
        ([], [], "empty"),
        ([d[0]], [0], "positive"),
        ([d[0]], [1, 2], "2 amounts for 1 devices"),
        ([ZERO], [1], "zero address"),
    ]
    for devices, amounts, problem in cases:
        with pytest.raises(ConfigError, match=problem):
            market.accept_award(w1, task, stub, devices, amounts)
    market.accept_award(w1, task, stub, d[3:][::-1], [1, 2, 3][: len(d[3:])])
    assert market.task(task).status == TaskStatus.TRAINING
    assert_reverts(market, lambda: market.set_aggregator(req, task, stub), "WrongStatus")
    # too late to name an aggregator
    run2, _ = awarded(node, market)
    advance_past(node, run2.terms.accept_deadline)
    args = assert_reverts(market, lambda: market.set_aggregator(req, run2.task_id, stub), "TooLate")
    assert args == (node.block_number + 1, run2.terms.accept_deadline)


def in_training(node: ChainNode, market: FLMarketClient, stub: str) -> tuple[MarketRun, list[str]]:
    run, winners = awarded(node, market)
    run.set_aggregator(stub)
    d = node.devices
    run.accept(
        {
            winners[0]: (d[:3], [4 * 10**16, 5 * 10**16, 6 * 10**16]),
            winners[1]: (d[2:5], [10**16, 2 * 10**16, 3 * 10**16]),
        }
    )
    return run, winners


def test_attestation_reverts_and_forfeit(node: ChainNode, market: FLMarketClient) -> None:
    req = node.requester
    model = keccak(b"final model")
    stub = node.deploy("ModelHashStub", sender=req)
    node.transact(stub.functions.setModel(model), sender=req)
    # before training: neither attestation nor forfeit
    run, winners = awarded(node, market)
    assert_reverts(market, lambda: market.attest(req, run.task_id, model, 0.9), "WrongStatus")
    assert_reverts(market, lambda: market.settle_unattested(req, run.task_id), "WrongStatus")
    run, winners = in_training(node, market, stub.address)
    task = run.task_id
    assert assert_reverts(
        market, lambda: market.attest(winners[0], task, model, 0.9), "NotRequester"
    ) == (winners[0],)
    args = assert_reverts(market, lambda: market.attest(req, task, model, 0.9), "TooEarly")
    assert args == (node.block_number + 1, run.terms.training_deadline)
    advance_to(node, run.terms.training_deadline)  # the deadline itself is still too early
    assert (
        assert_reverts(market, lambda: market.attest(req, task, model, 0.9), "TooEarly")[1]
        == run.terms.training_deadline
    )
    node.advance_blocks(1)
    attest = market.contract.functions.attest(task, model, 10**6 + 1)
    assert assert_reverts(market, lambda: node.transact(attest, sender=req), "InvalidAccuracy") == (
        10**6 + 1,
    )
    other = keccak(b"some other model")
    assert assert_reverts(market, lambda: market.attest(req, task, other, 0.9), "WrongModel") == (
        other,
        model,
    )
    node.transact(
        stub.functions.setModel(other), sender=req
    )  # a later round: the old hash is stale
    assert assert_reverts(market, lambda: market.attest(req, task, model, 0.9), "WrongModel") == (
        model,
        other,
    )
    with pytest.raises(ConfigError, match="accuracy"):
        market.attest(req, task, other, 1.01)
    with pytest.raises(ConfigError, match="model_hash"):
        market.attest(req, task, b"short", 0.9)
    args = assert_reverts(market, lambda: market.settle_unattested(winners[0], task), "TooEarly")
    assert args == (node.block_number + 1, run.terms.attest_deadline)
    advance_past(node, run.terms.attest_deadline)
    args = assert_reverts(market, lambda: market.attest(req, task, other, 0.9), "TooLate")
    assert args == (node.block_number + 1, run.terms.attest_deadline)
    # silence past the deadline: anyone settles, as if the target was met
    market.settle_unattested(node.devices[0], task)
    assert market.task(task).status == TaskStatus.COMPLETED
    assert len(market.contract.events.Forfeited().get_logs(from_block=0)) == 1
    assert market.balance_of(winners[0]) == 3 * 10**17 - 15 * 10**16
    assert market.balance_of(winners[1]) == 2 * 10**17 - 6 * 10**16
    assert market.balance_of(req) == REWARD - 5 * 10**17
    assert_conserved(market)
    assert_reverts(market, lambda: market.settle_unattested(req, task), "WrongStatus")
    assert_reverts(market, lambda: market.attest(req, task, other, 0.9), "WrongStatus")


def test_claim_and_withdraw_reverts(node: ChainNode, market: FLMarketClient) -> None:
    req, d = node.requester, node.devices
    rejecting = forwarder(node)
    stub = stub_aggregator(node)
    run, (w0, w1) = awarded(node, market)
    run.set_aggregator(stub)
    task = run.task_id
    run.accept(
        {
            w0: ([d[0], d[1], rejecting.address], [10**16, 2 * 10**16, 3 * 10**16]),
            w1: ([d[1], d[2]], [4 * 10**16, 5 * 10**16]),
        }
    )
    t0, t1 = run.trees[w0], run.trees[w1]
    claim = market.claim_device_pay
    assert_reverts(market, lambda: claim(d[0], task, w0, 10**16, t0.proof(d[0])), "WrongStatus")
    advance_past(node, run.terms.training_deadline)
    market.attest(req, task, keccak(b"final model"), 0.95)
    extra = [rejecting.address]
    assert_conserved(market, extra)
    # an ED owed nothing: amount 0, or not in the list, or not in this ES's list
    assert assert_reverts(market, lambda: claim(d[0], task, w0, 0, []), "NothingOwed") == (d[0],)
    assert assert_reverts(
        market, lambda: claim(d[4], task, w0, 0, t0.proof(d[0])), "NothingOwed"
    ) == (d[4],)
    args = assert_reverts(
        market, lambda: claim(d[4], task, w0, 10**16, t0.proof(d[0])), "InvalidProof"
    )
    assert args == (d[4], 10**16)
    assert_reverts(market, lambda: claim(d[0], task, w1, 10**16, t0.proof(d[0])), "InvalidProof")
    assert_reverts(
        market, lambda: claim(d[0], task, w0, 10**16 + 1, t0.proof(d[0])), "InvalidProof"
    )
    assert_reverts(market, lambda: claim(d[0], task, w0, 10**16, t0.proof(d[1])), "InvalidProof")
    assert_reverts(
        market, lambda: claim(d[1], task, w0, 4 * 10**16, t1.proof(d[1])), "InvalidProof"
    )
    claim(d[0], task, w0, 10**16, t0.proof(d[0]))
    assert assert_reverts(
        market, lambda: claim(d[0], task, w0, 10**16, t0.proof(d[0])), "AlreadyClaimed"
    ) == (d[0],)
    claim(d[1], task, w0, 2 * 10**16, t0.proof(d[1]))  # one ED, two ESs: both claims stand
    claim(d[1], task, w1, 4 * 10**16, t1.proof(d[1]))
    # an ED that cannot take ether: the claim reverts and stays open
    args = assert_reverts(
        market,
        lambda: via(
            node,
            rejecting,
            market,
            "claimDevicePay",
            task,
            w0,
            3 * 10**16,
            t0.proof(rejecting.address),
        ),
        "TransferFailed",
    )
    assert args == (rejecting.address, 3 * 10**16)
    assert not market.claimed(task, w0, rejecting.address)
    assert market.device_pool(task, w0) == 3 * 10**16
    assert_conserved(market, extra)
    # withdrawals: nothing, more than the balance, and the ES's balance excludes its EDs' pay
    assert_reverts(market, lambda: market.withdraw(w0, 0), "ZeroAmount")
    args = assert_reverts(market, lambda: market.withdraw(w0, 3 * 10**17), "InsufficientBalance")
    assert args == (3 * 10**17 - 6 * 10**16, 3 * 10**17)
    market.withdraw(w0, 3 * 10**17 - 6 * 10**16)
    assert_reverts(market, lambda: market.withdraw(w0, 1), "InsufficientBalance")
    assert_reverts(market, lambda: market.withdraw(d[3], 1), "InsufficientBalance")
    assert_conserved(market, extra)


def test_a_requester_that_rejects_ether_keeps_its_refund(
    node: ChainNode, market: FLMarketClient
) -> None:
    rejecting = forwarder(node)
    via(node, rejecting, market, "publishTask", make_terms(node).as_tuple(), value=REWARD)
    via(node, rejecting, market, "cancelTask", 1)
    assert market.balance_of(rejecting.address) == REWARD
    args = assert_reverts(
        market, lambda: via(node, rejecting, market, "withdraw", REWARD), "TransferFailed"
    )
    assert args == (rejecting.address, REWARD)
    assert market.balance_of(rejecting.address) == REWARD
    assert_conserved(market, [rejecting.address])


def test_gas_of_every_function_from_the_receipts(node: ChainNode, market: FLMarketClient) -> None:
    """Every state-changing FLMarket function once or more, at a 5-bidder, 2-winner, 3-ED-each
    task; the gas comes from the receipts (the node's ledger). Run with -s for the table."""
    es = node.servers
    bids = sealed_bids(node)
    run = MarketRun(market, bids).publish().commit().reveal()
    winners = ascending(es[:2])
    run.award(winners, [2 * 10**17, 2 * 10**17]).set_aggregator(stub_aggregator(node))
    d = node.devices
    run.accept({winners[0]: (d[:3], [10**16] * 3), winners[1]: (d[3:6], [10**16] * 3)})
    advance_past(node, run.terms.training_deadline)
    market.attest(node.requester, run.task_id, keccak(b"final model"), 0.9)
    tree = run.trees[winners[0]]
    market.claim_device_pay(d[0], run.task_id, winners[0], 10**16, tree.proof(d[0]))
    market.withdraw(winners[0], market.balance_of(winners[0]))
    market.cancel_task(node.requester, MarketRun(market, []).publish().task_id)
    expiring = MarketRun(market, []).publish()
    advance_past(node, expiring.terms.award_deadline)
    market.expire_task(d[0], expiring.task_id)
    silent, _ = awarded(node, market)
    silent.set_aggregator(stub_aggregator(node))
    silent.accept({w: ([d[0]], [1]) for w in market.task(silent.task_id).winners})
    advance_past(node, silent.terms.attest_deadline)
    market.settle_unattested(d[0], silent.task_id)
    rows = {
        key.split(".", 1)[1]: row
        for key, row in node.ledger.summary().items()
        if key.startswith("FLMarket.")
    }
    mutating = {
        item["name"]
        for item in market.contract.abi
        if item["type"] == "function" and item["stateMutability"] not in ("view", "pure")
    }
    assert mutating | {"deploy"} == set(rows)
    print(f"\n{'FLMarket.function':<20}{'calls':>6}{'mean gas':>12}{'max':>12}")
    for name, row in rows.items():
        print(f"{name:<20}{row['calls']:>6}{row['mean']:>12,.0f}{row['max']:>12,}")
    assert all(row["max"] < 1_000_000 for name, row in rows.items() if name != "deploy")
    size = len(artifacts()["FLMarket"].deployed_bytecode) // 2 - 1
    print(f"FLMarket runtime size: {size:,} bytes (EIP-170: 24,576)")
    assert size <= 24_576


def test_a_reentrant_ed_is_paid_once(node: ChainNode, market: FLMarketClient) -> None:
    """An ED contract re-claims from inside the transfer: the claim is already marked, so the
    inner call reverts with AlreadyClaimed and the ED is paid exactly once."""
    claimer = node.deploy("ReentrantClaimer", sender=node.requester)
    run, (w0, _) = awarded(node, market)
    run.set_aggregator(stub_aggregator(node))
    amount = 3 * 10**16
    run.accept({w0: ([claimer.address, node.devices[0]], [amount, 10**16])})
    run.accept({run.market.task(run.task_id).winners[1]: ([node.devices[1]], [1])})
    advance_past(node, run.terms.training_deadline)
    market.attest(node.requester, run.task_id, keccak(b"final model"), 0.9)
    proof = run.trees[w0].proof(claimer.address)
    call = claimer.functions.claim(market.contract.address, run.task_id, w0, amount, proof)
    node.transact(call, sender=node.requester)
    error = bytes(claimer.functions.reentryError().call())
    selector = keccak(b"AlreadyClaimed(address)")[:4]
    assert error[:4] == selector and claimer.functions.payments().call() == 1
    assert ether(node, claimer.address) == amount
    assert market.device_pool(run.task_id, w0) == 10**16
    assert_conserved(market, [claimer.address])


ENDINGS = ("met", "missed", "forfeit", "unaccepted", "no_aggregator", "cancelled")


def split(data: st.DataObject, total: int, parts: int) -> list[int]:
    """``parts`` positive integers whose sum is at most ``total`` (total >= parts)."""
    return [data.draw(st.integers(1, total // parts)) for _ in range(parts)]


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_random_tasks_pay_out_exactly_what_the_story_says(data: st.DataObject) -> None:
    """Random rewards, bidders, outcomes, ED lists and endings (target met or missed, forfeit,
    a winner that never accepts, a requester that never names the aggregator, a cancelled
    task); claims and withdrawals in random order and amounts. The contract stays solvent to
    the wei after every phase, and each account's payout (its Withdrawn and DevicePaid logs)
    is what the story computes in Python."""
    node = ChainNode.embedded(n_servers=4, n_devices=6, seed=data.draw(st.integers(0, 9)))
    node.use_artifacts(artifacts())
    market = FLMarketClient.deploy(node, node.requester)
    reward = data.draw(st.integers(10**4, 10**18))
    n_bidders = data.draw(st.integers(1, 4))
    bids = [
        Sealed(s, data.draw(st.integers(BID_LOW, BID_HIGH)), 100 + i, i, keccak(b"%d" % i))
        for i, s in enumerate(node.servers[:n_bidders])
    ]
    ending = data.draw(st.sampled_from(ENDINGS))
    expected: dict[str, int] = {}

    def owe(account: str, amount: int) -> None:
        expected[account] = expected.get(account, 0) + amount

    run = MarketRun(market, bids, reward=reward, min_bidders=1).publish()
    if ending == "cancelled":
        market.cancel_task(node.requester, run.task_id)
        owe(node.requester, reward)
    else:
        run.commit().reveal()
        revealers = [b.server for b in bids]
        n_winners = data.draw(st.integers(1, len(revealers)))
        winners = ascending(data.draw(st.permutations(revealers))[:n_winners])
        payments = split(data, min(reward, 10**17), n_winners)
        run.award(winners, payments)
        if ending == "no_aggregator":  # the requester walks away: 10 % of each award is owed
            advance_past(node, run.terms.accept_deadline)
            market.expire_task(node.devices[0], run.task_id)
            fees = [p // 10 for p in payments]
            for w, fee in zip(winners, fees, strict=True):
                owe(w, fee)
            owe(node.requester, reward - sum(fees))
            payments, winners = [], []
        else:
            run.set_aggregator(stub_aggregator(node))
        accepting = winners[:-1] if ending == "unaccepted" else winners
        for w, p in zip(winners, payments, strict=True):
            if w not in accepting:
                continue
            eds = data.draw(st.permutations(node.devices))[: data.draw(st.integers(1, min(6, p)))]
            run.accept({w: (list(eds), split(data, p, len(eds)))})
        assert_conserved(market)
        if ending == "no_aggregator":
            pass
        elif ending == "unaccepted":
            advance_past(node, run.terms.accept_deadline)
            market.expire_task(node.devices[0], run.task_id)
            owe(node.requester, reward)
        else:
            advance_past(node, run.terms.training_deadline)
            if ending == "forfeit":
                advance_past(node, run.terms.attest_deadline)
                market.settle_unattested(node.devices[0], run.task_id)
            else:
                accuracy = 0.9 if ending == "met" else 0.1
                market.attest(node.requester, run.task_id, keccak(b"final model"), accuracy)
            if ending == "missed":
                owe(node.requester, reward)
            else:
                owe(node.requester, reward - sum(payments))
                for w, p in zip(winners, payments, strict=True):
                    tree = run.trees[w]
                    owe(w, p - tree.total)
                    for d in tree.devices:
                        owe(d, tree.amount(d))
                assert_conserved(market)
                claims = [(w, d) for w, tree in run.trees.items() for d in tree.devices]
                for w, d in data.draw(st.permutations(claims)):
                    tree = run.trees[w]
                    market.claim_device_pay(d, run.task_id, w, tree.amount(d), tree.proof(d))
    assert_conserved(market)
    for account in data.draw(st.permutations([node.requester, *node.servers])):
        balance = market.balance_of(account)
        if balance:
            part = data.draw(st.integers(1, balance))
            market.withdraw(account, part)
            if part < balance:
                market.withdraw(account, balance - part)
    paid: dict[str, int] = {}
    events = market.contract.events
    for log in events.Withdrawn().get_logs(from_block=0):
        paid[log.args.account] = paid.get(log.args.account, 0) + log.args.amount
    for log in events.DevicePaid().get_logs(from_block=0):
        paid[log.args.device] = paid.get(log.args.device, 0) + log.args.amount
    assert paid == {a: v for a, v in expected.items() if v}
    assert sum(paid.values()) == reward
    assert node.w3.eth.get_balance(market.contract.address) == 0
