"""The EDs' pay tree: ``device_tree`` against an independent recursive construction and proof
verifier, the contract's own root and claims for every leaf, and acceptAward at 500 EDs."""

from __future__ import annotations

import random

from eth_utils import keccak, to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain_node.node import ChainNode
from tbcim.blockchain.aggregator import MAX_TX_BYTES, MAX_TX_GAS
from tbcim.blockchain.fl_market import FLMarketClient, TaskStatus, device_tree

from .market_helpers import MarketRun, Sealed, advance_past, artifacts, ascending, stub_aggregator


def oracle_leaf(device: str, amount: int) -> bytes:
    """keccak(keccak(abi.encode(address, uint256))), laid out by hand."""
    return keccak(keccak(bytes(12) + bytes.fromhex(device[2:]) + amount.to_bytes(32, "big")))


def oracle_root(nodes: list[bytes]) -> bytes:
    """The same tree defined top down: the left subtree holds the largest power of two
    strictly below n leaves (a level-by-level build that carries odd nodes up gives exactly
    this shape), the right one the rest; pairs are hashed sorted."""
    if len(nodes) == 1:
        return nodes[0]
    split = 1 << ((len(nodes) - 1).bit_length() - 1)
    left, right = oracle_root(nodes[:split]), oracle_root(nodes[split:])
    return keccak(b"".join(sorted([left, right])))


def oracle_verify(leaf: bytes, proof: list[bytes], root: bytes) -> bool:
    """OpenZeppelin's MerkleProof.verify: fold the proof with commutative (sorted) hashing."""
    node = leaf
    for sibling in proof:
        node = keccak(b"".join(sorted([node, sibling])))
    return node == root


addresses = st.binary(min_size=20, max_size=20).map(lambda b: to_checksum_address(b))
amounts = st.integers(min_value=1, max_value=2**128)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    entries=st.lists(
        st.tuples(addresses, amounts), min_size=1, max_size=70, unique_by=lambda e: e[0]
    ),
    seed=st.integers(0, 2**32),
)
def test_device_tree_matches_the_recursive_oracle(
    entries: list[tuple[str, int]], seed: int
) -> None:
    entries = [(d, a) for d, a in entries if int(d, 16) != 0]
    if not entries:
        return
    shuffled = entries[:]
    random.Random(seed).shuffle(shuffled)
    tree = device_tree([d for d, _ in shuffled], [a for _, a in shuffled])
    ordered = sorted(entries, key=lambda e: int(e[0], 16))
    assert list(tree.devices) == [d for d, _ in ordered]
    assert tree.total == sum(a for _, a in entries)
    assert tree.root == oracle_root([oracle_leaf(d, a) for d, a in ordered])
    for device, amount in entries:
        proof = tree.proof(device)
        assert len(proof) <= (len(entries) - 1).bit_length()
        assert oracle_verify(oracle_leaf(device, amount), proof, tree.root)
        assert not oracle_verify(oracle_leaf(device, amount + 1), proof, tree.root)


def test_every_leaf_of_odd_trees_verifies_on_chain() -> None:
    """13 EDs (levels of 13, 7, 4, 2, 1: odd nodes carried twice) under one winner and a single
    ED (the root is the leaf, the proof empty) under the other: the contract's roots equal
    device_tree's and every ED's claim with its proof pays it."""
    node = ChainNode.embedded(n_servers=2, n_devices=13, seed=2)
    node.use_artifacts(artifacts())
    market = FLMarketClient.deploy(node, node.requester)
    bids = [Sealed(s, 10**16, 500, 0, keccak(s.encode())) for s in node.servers]
    w0, w1 = ascending(node.servers)
    run = MarketRun(market, bids).publish().commit().reveal().award([w0, w1], [10**17, 10**17])
    run.set_aggregator(stub_aggregator(node))
    amounts = [10**15 + 7 * i for i in range(13)]
    run.accept({w0: (node.devices, amounts), w1: ([node.devices[5]], [10**16])})
    for w in (w0, w1):
        assert market.device_root(run.task_id, w) == run.trees[w].root
    assert run.trees[w1].proof(node.devices[5]) == []
    assert run.trees[w1].root == oracle_leaf(node.devices[5], 10**16)
    advance_past(node, run.terms.training_deadline)
    market.attest(node.requester, run.task_id, keccak(b"final model"), 0.9)
    for w in (w0, w1):
        tree = run.trees[w]
        for d in tree.devices:
            market.claim_device_pay(d, run.task_id, w, tree.amount(d), tree.proof(d))
        assert market.device_pool(run.task_id, w) == 0
    assert node.w3.eth.get_balance(market.contract.address) == sum(
        market.balance_of(a) for a in [node.requester, w0, w1]
    )


def test_accept_award_with_500_eds_fits_a_transaction() -> None:
    """The O(n) on-chain tree at 500 EDs: gas under 2^24 (EIP-7825's cap) and input under
    128 KiB (the tx-pool limit), measured from the receipt and the sent transaction; three of
    the EDs then claim their pay with their proofs."""
    node = ChainNode.embedded(n_servers=2, n_devices=3, seed=3)
    node.use_artifacts(artifacts())
    market = FLMarketClient.deploy(node, node.requester)
    bids = [Sealed(s, 10**16, 500, 0, keccak(s.encode())) for s in node.servers]
    w0, w1 = ascending(node.servers)
    run = MarketRun(market, bids).publish().commit().reveal().award([w0, w1], [10**17, 10**17])
    run.set_aggregator(stub_aggregator(node))
    others = [to_checksum_address(keccak(b"ed %d" % i)[12:]) for i in range(497)]
    devices = [*others, *node.devices]
    amounts = [10**12 + i for i in range(500)]
    receipt = market.accept_award(
        w0, run.task_id, market.task(run.task_id).aggregator, devices, amounts
    )
    sent = node.w3.eth.get_transaction(receipt["transactionHash"])
    print(f"acceptAward, 500 EDs: gas {receipt['gasUsed']:,}, input {len(sent['input']):,} bytes")
    assert receipt["gasUsed"] < MAX_TX_GAS == 2**24
    assert len(sent["input"]) < MAX_TX_BYTES == 128 * 1024
    tree = device_tree(devices, amounts)
    assert market.device_root(run.task_id, w0) == tree.root
    assert market.device_pool(run.task_id, w0) == sum(amounts)
    run.accept({w1: ([node.devices[0]], [1])})
    advance_past(node, run.terms.training_deadline)
    market.attest(node.requester, run.task_id, keccak(b"final model"), 0.9)
    assert market.task(run.task_id).status == TaskStatus.COMPLETED
    for d in node.devices:
        market.claim_device_pay(d, run.task_id, w0, tree.amount(d), tree.proof(d))
        assert market.claimed(run.task_id, w0, d)
    owed = sum(amounts) - sum(tree.amount(d) for d in node.devices)
    assert market.device_pool(run.task_id, w0) == owed
