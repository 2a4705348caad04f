"""Transactions signed outside the node (issue 13: the Flower engine's EDs hold their own keys):
``ChainNode.send_signed`` from a non-mining view, ``include`` by the block producer, ``fund``,
``at``; on anvil, the JSON-RPC node the Flower engine needs."""

from __future__ import annotations

import pytest
from eth_account import Account

from chain_node.compiler import ContractArtifact
from chain_node.errors import ChainError, ContractRevert
from chain_node.node import ChainNode

from .conftest import running_anvil

pytestmark = pytest.mark.anvil


def test_an_ed_key_signs_its_own_transactions_and_the_producer_includes_them(
    counter_artifacts: dict[str, ContractArtifact],
) -> None:
    with running_anvil(accounts=3) as url:
        node = ChainNode.connect(url, n_servers=2, n_devices=0, seed=3)
        node.use_artifacts(counter_artifacts)
        counter = node.deploy("Counter", sender=node.servers[0])
        key = Account.create()
        node.fund([key.address], 10**18)
        assert node.w3.eth.get_balance(key.address) == 10**18
        view = ChainNode.connect(url, 2, 0, accounts=[node.requester, *node.servers], mining=False)
        view.use_artifacts(counter_artifacts)
        mine = view.at("Counter", counter.address)
        # Two in a row from one key: its own nonce, counted over the pool.
        hashes = [view.send_signed(mine.functions.bump(n), key) for n in (3, 4)]
        height = node.block_number
        receipts = node.include(hashes, role="ed", round=1, max_blocks=2)
        assert [r["status"] for r in receipts] == [1, 1]
        assert {int(r["blockNumber"]) for r in receipts} == {height + 1}  # one block
        assert node.call(counter.functions.count()) == 7
        entries = node.ledger.select(function="bump")
        assert [(e.sender, e.role, e.round) for e in entries] == [(key.address, "ed", 1)] * 2
        assert [e.gas_used for e in entries] == [int(r["gasUsed"]) for r in receipts]
        assert {e.producer for e in entries} == {node.producers[-1]}  # the elected coinbase
        assert view.ledger.entries == []  # the view sends; the producer records

        with pytest.raises(ContractRevert, match=r"TooBig\(11, 10\)"):
            view.send_signed(mine.functions.bump(11), key)
        assert node.w3.eth.get_transaction_count(key.address, "pending") == 2  # nothing sent
        with pytest.raises(ChainError, match="does not mine"):
            view.mine()
        with pytest.raises(ChainError, match="1 transaction\\(s\\) not mined within 2 blocks"):
            node.include(["0x" + "ab" * 32], role="ed", round=1, max_blocks=2)
        with pytest.raises(ChainError, match="no compiled contract named 'Nope'"):
            view.at("Nope", counter.address)


def test_funding_beyond_the_requesters_balance_is_a_clear_error_before_any_transfer() -> None:
    """Found by scripts/bench_scale.py: anvil's accounts hold 10,000 ether by default, and the
    Flower engine funds each ED with 1,000 ether, so 10 EDs failed with an unclear "1
    transaction(s) not mined within 11 blocks" after 9 transfers had gone out."""
    with running_anvil("--balance", "100", accounts=2) as url:
        node = ChainNode.connect(url, n_servers=1, n_devices=0, seed=0)
        eds = [Account.create().address for _ in range(3)]
        nonce = node.w3.eth.get_transaction_count(node.requester)
        with pytest.raises(ChainError, match=r"funding 3 accounts with 40\.0 ether each"):
            node.fund(eds, 40 * 10**18)  # 120 ether from 100
        assert node.w3.eth.get_transaction_count(node.requester) == nonce  # nothing sent
        assert all(node.w3.eth.get_balance(ed) == 0 for ed in eds)
        node.fund(eds, 30 * 10**18)  # 90 ether (and the transfers' gas) from 100: fine
        assert all(node.w3.eth.get_balance(ed) == 30 * 10**18 for ed in eds)


def test_the_anvil_a_flower_run_starts_can_fund_many_eds() -> None:
    from tbcim.fl.flower.spec import ANVIL_BALANCE_ETHER, ED_FUNDS_WEI

    assert ANVIL_BALANCE_ETHER * 10**18 >= 10_000 * ED_FUNDS_WEI  # 10,000 EDs
