"""Deploy the market's contracts and run FL rounds and one market settlement on a ChainNode.

Used by ``scripts/deploy_local.py`` (one smoke round), ``scripts/bench_chain.py`` (gas and wall
time per round at several model sizes) and the anvil test. Updates here are seeded synthetic
deltas (a shared direction plus per-ED noise, so the cosine rule accepts them); real training
updates come from the FL clients.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from tbcim.blockchain.aggregator import AggregatorClient, AggregatorConfig
from tbcim.blockchain.codec import FixedPointCodec
from tbcim.blockchain.market import MarketClient
from tbcim.errors import ConfigError

if TYPE_CHECKING:
    from chain_node.node import ChainNode

#: Calldata costs 16 gas per non-zero byte; an int16 parameter is 2 bytes.
CALLDATA_GAS_PER_NONZERO_BYTE = 16
BYTES_PER_PARAM = 2
UPDATE_SCALE = 0.02  # typical magnitude of one local update (delta) per parameter


@dataclass(frozen=True)
class RoundMeasurement:
    """One FL round on chain: submissions, verification, aggregation, global model read back."""

    round: int
    accepted: int
    submitted: int
    submit_gas: list[int]
    aggregate_gas: int
    seconds_submissions: float
    seconds_round: float
    fedavg_max_abs_error: float
    quantisation_step: float

    @property
    def gas_per_accepted_update(self) -> float:
        """Mean submit gas plus this update's share of the aggregation."""
        return float(np.mean(self.submit_gas)) + self.aggregate_gas / self.accepted


def calldata_floor_gas_per_param() -> int:
    """16 gas per non-zero calldata byte times the encoding's 2 bytes per parameter."""
    return CALLDATA_GAS_PER_NONZERO_BYTE * BYTES_PER_PARAM


class SyntheticUpdates:
    """Seeded ED updates: a direction shared by all EDs plus per-ED noise, fresh each round."""

    def __init__(self, num_params: int, seed: int) -> None:
        self.num_params = num_params
        self.rng = np.random.default_rng(seed)
        self.direction = self.rng.normal(0.0, UPDATE_SCALE, num_params)

    def round(self, devices: list[str]) -> dict[str, NDArray[np.float64]]:
        drift = self.rng.normal(0.0, UPDATE_SCALE / 4, self.num_params)
        return {
            d: self.direction + drift + self.rng.normal(0.0, UPDATE_SCALE / 2, self.num_params)
            for d in devices
        }


def seeded_data_sizes(devices: int, seed: int) -> list[int]:
    """The EDs' data sizes (FedAvg weights) of the smoke and benchmark rounds: U{100..999}."""
    return [int(s) for s in np.random.default_rng(seed).integers(100, 1000, devices)]


def numpy_fedavg(
    previous: NDArray[np.float64],
    updates: list[NDArray[np.float64]],
    weights: list[int],
) -> NDArray[np.float64]:
    """Reference FedAvg on the decoded vectors: w ← w + Σ n_i·Δ_i / Σ n_i."""
    n = np.asarray(weights, dtype=np.float64)
    return previous + (n[:, None] * np.stack(updates)).sum(axis=0) / n.sum()


class SubsystemOnChain:
    """One edge subsystem (an ES and its EDs) running FL rounds through its FLAggregator."""

    def __init__(
        self,
        node: ChainNode,
        num_params: int,
        devices: Sequence[str],
        data_sizes: Sequence[int],
        *,
        server: str | None = None,
        seed: int = 0,
        round_blocks: int = 2,
    ) -> None:
        if len(devices) != len(data_sizes) or not devices:
            raise ConfigError("devices", "need one data size per device and at least one device")
        self.node = node
        self.devices = list(devices)
        self.data_sizes = dict(zip(devices, data_sizes, strict=True))
        config = AggregatorConfig(num_params=num_params, round_blocks=round_blocks)
        self.client = AggregatorClient.deploy(node, config, server or node.servers[0])
        self.codec = FixedPointCodec(config.frac_bits)
        self.updates = SyntheticUpdates(num_params, seed)
        for device, size in self.data_sizes.items():
            self.client.register_worker(device, size)
        initial = np.random.default_rng(seed + 1).normal(0.0, 0.1, num_params)
        self.client.publish_initial_model(self.codec.quantize(initial, "initial model"))

    def run_round(self) -> RoundMeasurement:
        """Open a round, submit every ED's update in one block, aggregate, read the model back."""
        start = time.perf_counter()
        previous = self.codec.dequantize(self.client.global_model().values)
        round_ = self.client.open_round()
        raw = self.updates.round(self.devices)
        quantised = {d: self.codec.quantize(v, f"update of {d}") for d, v in raw.items()}
        submitted = time.perf_counter()
        submissions = self.client.submit_round(round_, quantised)
        seconds_submissions = time.perf_counter() - submitted
        accepted = [s.device for s in submissions if s.accepted]
        self.client.wait_for_deadline(round_)
        receipt = self.client.aggregate(round_)
        model = self.client.global_model(round_)
        seconds_round = time.perf_counter() - start
        reference = numpy_fedavg(
            previous,
            [self.codec.dequantize(quantised[d]) for d in accepted],
            [self.data_sizes[d] for d in accepted],
        )
        error = float(np.max(np.abs(self.codec.dequantize(model.values) - reference)))
        return RoundMeasurement(
            round=round_,
            accepted=len(accepted),
            submitted=len(submissions),
            submit_gas=[int(s.receipt["gasUsed"]) for s in submissions],
            aggregate_gas=int(receipt["gasUsed"]),
            seconds_submissions=seconds_submissions,
            seconds_round=seconds_round,
            fedavg_max_abs_error=error,
            quantisation_step=self.codec.step,
        )


def settle_market(node: ChainNode, market: MarketClient, devices: Sequence[str]) -> dict[str, Any]:
    """One task through the market contract: escrow, auction record, attestation, ES→ED pay,
    pull withdrawals. Returns the task id and the amounts moved (wei)."""
    reward = 10**18
    server = node.servers[0]
    task_id = market.publish_task(node.requester, reward, b"\x01" * 32, target_accuracy=0.8)
    market.record_auction(node.requester, task_id, [server], [reward * 3 // 4])
    market.attest_accuracy(node.requester, task_id, accuracy=0.9)
    share = reward // 4 // len(devices)
    market.pay_devices(server, task_id, devices, [share] * len(devices))
    for account in [server, *devices]:
        owed = market.balance_of(account)
        if owed:
            market.withdraw(account, owed)
    return {"task_id": task_id, "reward_wei": reward, "paid_to_each_device_wei": share}
