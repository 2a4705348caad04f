"""The node sends from accounts whose keys it is given (issue 13: in a market on the Flower
engine the EDs' accounts are their own keys, and the market process sends their calibration
and claim transactions): ``ChainNode.add_signers`` and ``ChainNode.connect(device_keys=...)``,
on anvil. The oracle is the chain: the mined transaction's ``from`` and the contract's state."""

from __future__ import annotations

import pytest
from eth_account import Account

from chain_node.compiler import ContractArtifact
from chain_node.errors import ChainError
from chain_node.node import ChainNode

from .conftest import running_anvil

pytestmark = pytest.mark.anvil


def test_a_key_the_node_does_not_hold_sends_once_given_and_not_before(
    counter_artifacts: dict[str, ContractArtifact],
) -> None:
    keys = [Account.create() for _ in range(2)]
    with running_anvil(accounts=3) as url:
        node = ChainNode.connect(url, n_servers=2, n_devices=0, seed=3)
        node.use_artifacts(counter_artifacts)
        counter = node.deploy("Counter", sender=node.servers[0])
        node.fund([k.address for k in keys], 10**18)
        assert keys[0].address not in node.w3.eth.accounts

        # Not given: a clear error naming the account, and nothing queued or sent.
        nonce = node.w3.eth.get_transaction_count(keys[0].address, "pending")
        with pytest.raises(ChainError, match=f"from {keys[0].address}: neither the node nor"):
            node.send(counter.functions.bump(3), sender=keys[0].address)
        assert node.w3.eth.get_transaction_count(keys[0].address, "pending") == nonce
        assert node.mine() == []  # the failed send left nothing for the block

        node.add_signers(keys[:1])
        node.add_signers(keys[1:])  # a second call adds to the first
        # Two in one block from one key (its nonce counted over the pool), one from the other.
        node.send(counter.functions.bump(3), sender=keys[0].address)
        node.send(counter.functions.bump(4), sender=keys[0].address)
        node.send(counter.functions.bump(2), sender=keys[1].address)
        receipts = node.mine()
        assert [r["from"] for r in receipts] == [keys[0].address] * 2 + [keys[1].address]
        assert len({int(r["blockNumber"]) for r in receipts}) == 1
        assert node.call(counter.functions.count()) == 9
        entries = node.ledger.select(function="bump")
        assert [e.sender for e in entries] == [r["from"] for r in receipts]
        # The node's own accounts still send as before, through the signing layer.
        receipt = node.transact(counter.functions.bump(1), sender=node.servers[1])
        assert receipt["from"] == node.servers[1] and node.call(counter.functions.count()) == 10


def test_device_keys_make_the_eds_the_keys_accounts(
    counter_artifacts: dict[str, ContractArtifact],
) -> None:
    keys = [Account.create() for _ in range(3)]
    with running_anvil(accounts=2) as url:
        node = ChainNode.connect(url, n_servers=1, n_devices=3, seed=0, device_keys=keys)
        own = list(node.w3.eth.accounts)
        assert [node.requester, *node.servers] == own
        assert node.devices == [k.address for k in keys]
        assert {node.role_of(k.address) for k in keys} == {"ed"}
        node.use_artifacts(counter_artifacts)
        counter = node.deploy("Counter", sender=node.servers[0])
        node.fund(node.devices, 10**18)
        receipt = node.transact(counter.functions.bump(5), sender=node.devices[2])
        assert receipt["from"] == keys[2].address
        assert node.ledger.select(function="bump")[0].role == "ed"
        with pytest.raises(ChainError, match="2 device keys given for 3 EDs"):
            ChainNode.connect(url, n_servers=1, n_devices=3, device_keys=keys[:2])


def test_the_embedded_chain_refuses_signers() -> None:
    node = ChainNode.embedded(n_servers=1, n_devices=0)
    with pytest.raises(ChainError, match="signers need a JSON-RPC node"):
        node.add_signers([Account.create()])
