"""ChainNode on the embedded py-evm chain: deploy, transact, batch mining, reverts, gas ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from chain_node.compiler import ContractArtifact
from chain_node.errors import ChainError, ContractRevert
from chain_node.gas_ledger import GasEntry, GasLedger, read_g_e
from chain_node.node import ChainNode
from tbcim.errors import ConfigError


def test_deploy_and_transact_records_gas_from_receipts(counter_node: ChainNode) -> None:
    counter = counter_node.deploy("Counter", sender=counter_node.servers[0])
    receipt = counter_node.transact(
        counter.functions.bump(3), sender=counter_node.devices[0], round=1
    )
    assert receipt["status"] == 1
    assert counter_node.call(counter.functions.count()) == 3
    bump = counter_node.ledger.select(function="bump")
    assert [(e.role, e.round, e.gas_used) for e in bump] == [("ed", 1, receipt["gasUsed"])]
    assert counter_node.ledger.summary()["Counter.deploy"]["calls"] == 1


def test_custom_error_and_reason_are_decoded_without_state_change(
    counter_node: ChainNode,
) -> None:
    counter = counter_node.deploy("Counter", sender=counter_node.servers[0])
    height = counter_node.block_number
    with pytest.raises(ContractRevert, match=r"TooBig\(11, 10\)") as too_big:
        counter_node.transact(counter.functions.bump(11), sender=counter_node.devices[0])
    assert too_big.value.error_name == "TooBig" and too_big.value.error_args == (11, 10)
    with pytest.raises(ContractRevert, match="seven is unlucky") as reason:
        counter_node.transact(counter.functions.bump(7), sender=counter_node.devices[0])
    assert reason.value.error_name == "Error"
    assert counter_node.call(counter.functions.count()) == 0
    assert counter_node.block_number == height  # nothing was mined
    assert counter_node.ledger.select(function="bump") == []


def test_eth_call_reverts_are_decoded_too(counter_node: ChainNode) -> None:
    counter = counter_node.deploy("Counter", sender=counter_node.servers[0])
    with pytest.raises(ContractRevert, match=r"TooBig\(11, 10\)") as too_big:
        counter_node.call(counter.functions.bump(11), sender=counter_node.devices[0])
    assert too_big.value.error_name == "TooBig"
    with pytest.raises(ContractRevert, match="seven is unlucky"):
        counter_node.call(counter.functions.bump(7), sender=counter_node.devices[0])


def test_a_round_of_queued_transactions_lands_in_one_block(counter_node: ChainNode) -> None:
    counter = counter_node.deploy("Counter", sender=counter_node.servers[0])
    for device in counter_node.devices:
        counter_node.send(counter.functions.bump(2), sender=device, round=4)
    receipts = counter_node.mine()
    assert len({r["blockNumber"] for r in receipts}) == 1
    assert counter_node.call(counter.functions.count()) == 2 * len(counter_node.devices)
    # one transaction per (ED, round): g_e is their mean
    assert counter_node.ledger.g_e("Counter") == pytest.approx(
        sum(r["gasUsed"] for r in receipts) / len(receipts)
    )


def test_one_sender_can_queue_several_transactions_per_block(counter_node: ChainNode) -> None:
    counter = counter_node.deploy("Counter", sender=counter_node.servers[0])
    for amount in (1, 2, 3):
        counter_node.send(counter.functions.bump(amount), sender=counter_node.devices[0])
    receipts = counter_node.mine()
    assert len({r["blockNumber"] for r in receipts}) == 1
    assert counter_node.call(counter.functions.count()) == 6


def test_a_round_too_big_for_one_block_spans_several(
    counter_artifacts: dict[str, ContractArtifact],
) -> None:
    node = ChainNode.embedded(n_servers=1, n_devices=6, block_gas_limit=150_000)
    node.use_artifacts(counter_artifacts)
    counter = node.deploy("Counter", sender=node.servers[0])
    for device in node.devices:  # 44k + 5 × 27k of gas: more than one block holds
        node.send(counter.functions.bump(1), sender=device, round=1)
    receipts = node.mine()
    assert len(receipts) == len(node.devices)
    assert all(r["status"] == 1 for r in receipts)
    assert len({r["blockNumber"] for r in receipts}) > 1
    assert node.call(counter.functions.count()) == len(node.devices)


def test_block_coinbase_is_the_elected_producer(counter_node: ChainNode) -> None:
    counter_node.advance_blocks(5)
    w3 = counter_node.w3
    head = counter_node.block_number
    miners = [w3.eth.get_block(n)["miner"] for n in range(head - 4, head + 1)]
    assert miners == counter_node.producers[-5:]
    assert set(miners) <= set(counter_node.servers)


def test_transact_refuses_while_transactions_are_queued(counter_node: ChainNode) -> None:
    counter = counter_node.deploy("Counter", sender=counter_node.servers[0])
    counter_node.send(counter.functions.bump(1), sender=counter_node.devices[0])
    with pytest.raises(ChainError, match="queued"):
        counter_node.transact(counter.functions.bump(1), sender=counter_node.devices[1])
    with pytest.raises(ChainError, match="queued"):
        counter_node.advance_blocks(1)


def test_unknown_contract_name_is_an_error(counter_node: ChainNode) -> None:
    with pytest.raises(ChainError, match="no compiled contract named 'Nope'"):
        counter_node.deploy("Nope", sender=counter_node.servers[0])


def test_too_few_accounts_is_an_error() -> None:
    with pytest.raises(ChainError, match="at least one ES"):
        ChainNode.embedded(n_servers=0, n_devices=1)


def test_unreachable_rpc_endpoint_is_a_clear_error() -> None:
    with pytest.raises(ChainError, match="no Ethereum JSON-RPC node answers"):
        ChainNode.connect("http://127.0.0.1:9", timeout=0.5)


def test_ledger_round_trips_and_yields_g_e(counter_node: ChainNode, tmp_path: Path) -> None:
    """g_e (32) is the mean over (ED, round) of the ED's summed gas in that round: ED 0's two
    transactions of round 1 count as one round of work, ED 1's one as another."""
    counter = counter_node.deploy("Counter", sender=counter_node.servers[0])
    a, b = counter_node.devices[:2]
    gas = [
        counter_node.transact(counter.functions.bump(n), sender=dev, round=1)["gasUsed"]
        for n, dev in ((1, a), (3, a), (2, b))
    ]
    counter_node.transact(counter.functions.bump(1), sender=counter_node.servers[0], round=1)
    path = counter_node.ledger.save(tmp_path / "ledger.json")
    loaded = GasLedger.load(path)
    assert loaded.entries == counter_node.ledger.entries
    assert loaded.g_e("Counter") == pytest.approx((gas[0] + gas[1] + gas[2]) / 2)
    with pytest.raises(ConfigError, match="no ED round on FLAggregator"):
        loaded.g_e()  # the default is the aggregator, which this ledger never touched


def test_read_g_e_reads_the_aggregator_rounds_of_a_saved_ledger(tmp_path: Path) -> None:
    def entry(function: str, role: str, sender: str, round_: int | None, gas: int) -> GasEntry:
        contract = "FLMarket" if function == "withdraw" else "FLAggregator"
        return GasEntry(contract, function, role, round_, sender, gas, "0x", 1, "0xp")

    ledger = GasLedger(
        [
            entry("commit", "ed", "0xa", 1, 50_000),
            entry("submit", "ed", "0xa", 1, 300_000),
            entry("submit", "ed", "0xb", 1, 330_000),
            entry("submit", "ed", "0xa", 2, 310_000),
            entry("aggregateChunk", "es", "0xs", 1, 900_000),
            entry("withdraw", "ed", "0xa", None, 30_000),
        ]
    )
    path = ledger.save(tmp_path / "ledger.json")
    assert read_g_e(path) == pytest.approx((350_000 + 330_000 + 310_000) / 3)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"g_e": -5}', "g_e: must be a positive number"),
        ('{"g_e": "big"}', "g_e: must be a positive number"),
        ('{"other": 1}', "neither 'g_e' nor gas ledger 'entries'"),
        ('{"entries": []}', "no ED round on FLAggregator recorded"),
    ],
)
def test_read_g_e_rejects_bad_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        read_g_e(path)


def test_read_g_e_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="gas ledger file not found"):
        read_g_e(tmp_path / "absent.json")
