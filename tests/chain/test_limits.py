"""Real chains' limits (issue 8 item 3): every transaction of a round fits EIP-7825's
2^24 = 16,777,216 gas and the 131,072-byte pool limit of geth and reth, for 65,536 parameters and
30 EDs, on anvil started with 30M-gas blocks; and the constructor rejects what cannot fit.

The old contract needed 27.7M gas and 1.10 MB of calldata to aggregate 10 updates at 50k
parameters, a 300 KB submit at 50k, and accepted MAX_PARAMS = 2^20 (6 MiB per submit)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from chain_node.errors import ContractRevert
from chain_node.node import ChainNode
from tbcim.blockchain.aggregator import (
    MAX_TX_BYTES,
    MAX_TX_GAS,
    AggregatorClient,
    AggregatorConfig,
    largest_chunk_words,
    submission_blocks,
    tx_bounds,
)
from tbcim.blockchain.codec import aggregation_weights, fedavg, norm_hint
from tbcim.errors import ConfigError

from .conftest import running_anvil

PARAMS, EDS = 65_536, 30


def raw_size(node: ChainNode, tx_hash: bytes) -> int:
    """Bytes of the signed transaction as a node's pool receives it."""
    raw = node.w3.provider.make_request("eth_getRawTransactionByHash", ["0x" + tx_hash.hex()])
    return (len(raw["result"]) - 2) // 2


def test_the_constructor_rejects_what_cannot_fit() -> None:
    """A chunk one word larger than the largest that fits 30 submitters is rejected, by the
    config (naming chunk_words) and by the contract (ExceedsTxBytes naming the transaction)."""
    words = largest_chunk_words(PARAMS, EDS)
    assert tx_bounds(words, EDS)[2] <= MAX_TX_BYTES < tx_bounds(words + 1, EDS)[2]
    with pytest.raises(ConfigError, match="chunk_words"):
        AggregatorConfig(num_params=PARAMS, max_workers=EDS, chunk_words=words + 1)
    with pytest.raises(ConfigError, match="max_workers"):
        AggregatorConfig(num_params=PARAMS, max_workers=5_000)
    with pytest.raises(ConfigError, match="num_params"):
        AggregatorConfig(num_params=2**18 + 1)
    node = ChainNode.embedded(n_servers=1, n_devices=0)
    ok = AggregatorConfig(num_params=PARAMS, max_workers=EDS)

    def deploy(changes: dict[int, int]) -> object:
        """Deploy with the default settings, fields (by index) replaced by ``changes``."""
        settings = list(ok.settings())
        for index, value in changes.items():
            settings[index] = value
        return node.deploy(
            "FLAggregator",
            tuple(settings),
            node.requester,
            node.servers,
            [1],
            sender=node.requester,
        )

    deploy({})
    clip_at = ok.settings().index(round(ok.clip * 1e6))
    with pytest.raises(ContractRevert) as info:  # clipping below the median
        deploy({clip_at: 500_000})
    assert info.value.error_args == ("clipPpm",)
    with pytest.raises(ContractRevert) as info:  # field 1 is chunkWords
        deploy({1: words + 1})
    assert info.value.error_name == "ExceedsTxBytes"
    assert info.value.error_args[0] == "aggregate"


@pytest.mark.anvil
def test_every_transaction_of_a_large_round_fits_on_anvil_with_30m_blocks() -> None:
    """65,536 parameters, 30 EDs of 3 ESs, two rounds (the second checks the reference and the
    histories): every receipt <= 2^24 gas, every signed transaction <= 131,072 bytes, and the
    model is FedAvg of the accepted updates bit for bit."""
    with running_anvil("--gas-limit", "30000000", accounts=1 + 3 + EDS) as url:
        node = ChainNode.connect(url, n_servers=3, n_devices=EDS, seed=0)
        sized = AggregatorConfig(num_params=PARAMS, max_workers=EDS, commit_blocks=2)
        # The submission window that the client's conservative gas bound asks for (70 blocks,
        # more than the round uses).
        window = submission_blocks(sized, EDS, node.block_gas_limit)
        config = dataclasses.replace(sized, round_blocks=window)
        sizes = [100 + 7 * i for i in range(EDS)]
        declared = [sum(sizes[i] for i in range(EDS) if i % 3 == s) for s in range(3)]
        client = AggregatorClient.deploy(
            node, config, node.servers, declared, publisher=node.requester
        )
        for i, device in enumerate(node.devices):
            client.register_worker(node.servers[i % 3], device, sizes[i])
        rng = np.random.default_rng(0)
        client.publish_initial_model(rng.integers(-3000, 3000, PARAMS), publisher=node.requester)
        direction = rng.normal(0, 300, PARAMS)
        receipts = []
        for _ in range(2):
            previous = client.global_model().values
            round_ = client.open_round(node.servers[0])
            updates = {
                d: np.rint(direction + rng.normal(0, 200, PARAMS)).astype(np.int64)
                for d in node.devices
            }
            subs = client.submit_round(round_, updates)
            client.wait_for_deadline(round_)
            aggregation = client.aggregate(round_, node.servers[1])
            receipts += [r for s in subs for r in s.receipts] + aggregation.receipts
            accepted = [s.device for s in subs if s.accepted]
            assert len(accepted) == EDS and not aggregation.excluded
            weights, total = aggregation_weights(
                [norm_hint(updates[d]) for d in accepted],
                [sizes[node.devices.index(d)] for d in accepted],
                round(config.norm_bound * 1e6),
                round(config.clip * 1e6),
            )
            model, _, _ = fedavg(previous, [updates[d] for d in accepted], weights, total)
            assert np.array_equal(client.global_model().values, model)
        assert max(int(r["gasUsed"]) for r in receipts) <= MAX_TX_GAS
        assert max(raw_size(node, bytes(r["transactionHash"])) for r in receipts) <= MAX_TX_BYTES
