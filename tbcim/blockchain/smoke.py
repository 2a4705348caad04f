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
from eth_utils import keccak
from numpy.typing import NDArray

from tbcim.blockchain.aggregator import AggregatorClient, AggregatorConfig
from tbcim.blockchain.codec import FixedPointCodec
from tbcim.blockchain.fl_market import (
    FLMarketClient,
    TaskStatus,
    TaskTerms,
    bid_commitment,
    device_tree,
)
from tbcim.errors import ConfigError

if TYPE_CHECKING:
    from chain_node.node import ChainNode

UPDATE_SCALE = 0.02  # typical magnitude of one local update (delta) per parameter


@dataclass(frozen=True)
class RoundMeasurement:
    """One FL round on chain: commitments, submissions, verification, chunked aggregation, the
    global model read back."""

    round: int
    accepted: int
    included: int
    submitted: int
    submit_gas: list[int]  # per ED: its commitment and every chunk transaction
    aggregate_gas: int
    max_tx_gas: int
    max_tx_bytes: int
    calldata_gas_per_update: tuple[float, float]  # (4/16 standard, 10/40 EIP-7623 floor)
    seconds_submissions: float
    seconds_round: float
    fedavg_max_abs_error: float
    quantisation_step: float

    @property
    def gas_per_accepted_update(self) -> float:
        """Mean gas of one ED's update plus its share of the aggregation."""
        return float(np.mean(self.submit_gas)) + self.aggregate_gas / self.included


def calldata_gas(data: bytes) -> tuple[int, int]:
    """Calldata gas of ``data`` under the chain's rules: standard (4 / 16 gas per zero /
    non-zero byte) and the EIP-7623 floor (10 / 40)."""
    zeros = data.count(0)
    return 4 * zeros + 16 * (len(data) - zeros), 10 * zeros + 40 * (len(data) - zeros)


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
    *,
    norm_bound: float = float("inf"),
    clip: float = 0.0,
) -> NDArray[np.float64]:
    """Reference FedAvg in floats, independent of the contract's integer arithmetic:
    with M the data-weighted median of the updates' norms, updates above ``norm_bound · M`` are
    left out and the rest clipped to ``clip · M`` (0 = no clipping), then
    w ← w + Σ n_i·f_i·Δ_i / Σ n_i over the included updates, f_i = min(1, clip·M / |Δ_i|)."""
    n = np.asarray(weights, dtype=np.float64)
    deltas = np.stack(updates)
    norms = np.linalg.norm(deltas, axis=1)
    order = np.argsort(norms, kind="stable")
    cumulative = np.cumsum(n[order])
    median = norms[order][np.searchsorted(cumulative, n.sum() / 2)]
    included = norms <= norm_bound * median
    factor = np.ones_like(norms) if clip == 0 else np.minimum(1.0, clip * median / norms)
    scaled = (n * factor * included)[:, None] * deltas
    return previous + scaled.sum(axis=0) / n[included].sum()


class TaskOnChain:
    """One FL task on chain: the node's ESs share one FLAggregator, each registering its own
    EDs (round-robin), the requester publishes the initial model, and rounds run through it."""

    def __init__(
        self,
        node: ChainNode,
        num_params: int,
        devices: Sequence[str],
        data_sizes: Sequence[int],
        *,
        servers: Sequence[str] | None = None,
        seed: int = 0,
        **settings: Any,
    ) -> None:
        if len(devices) != len(data_sizes) or not devices:
            raise ConfigError("devices", "need one data size per device and at least one device")
        self.node = node
        self.devices = list(devices)
        self.data_sizes = dict(zip(devices, data_sizes, strict=True))
        self.servers = list(servers or node.servers)
        owner = {d: self.servers[i % len(self.servers)] for i, d in enumerate(self.devices)}
        declared = [
            sum(self.data_sizes[d] for d in devices if owner[d] == es) or 1 for es in self.servers
        ]
        settings.setdefault("max_workers", len(self.devices))
        # The submission window must hold every ED's chunk transactions: about 400 gas per
        # parameter and ED, in blocks of at most 30M gas, times two for safety.
        needed = 2 * (400 * num_params * len(self.devices)) // 30_000_000 + 5
        settings.setdefault("round_blocks", max(5, needed))
        config = AggregatorConfig(num_params=num_params, **settings)
        self.client = AggregatorClient.deploy(
            node, config, self.servers, declared, publisher=node.requester
        )
        self.codec = FixedPointCodec(config.frac_bits)
        self.updates = SyntheticUpdates(num_params, seed)
        for device in self.devices:
            self.client.register_worker(owner[device], device, self.data_sizes[device])
        initial = np.random.default_rng(seed + 1).normal(0.0, 0.1, num_params)
        self.client.publish_initial_model(
            self.codec.quantize(initial, "initial model"), publisher=node.requester
        )

    def run_round(self) -> RoundMeasurement:
        """Open a round (first ES), commit and submit every ED's update, aggregate (last ES),
        read the model back and compare it with numpy FedAvg of the included updates."""
        start = time.perf_counter()
        previous = self.codec.dequantize(self.client.global_model().values)
        round_ = self.client.open_round(self.servers[0])
        raw = self.updates.round(self.devices)
        quantised = {d: self.codec.quantize(v, f"update of {d}") for d, v in raw.items()}
        submitted = time.perf_counter()
        submissions = self.client.submit_round(round_, quantised)
        seconds_submissions = time.perf_counter() - submitted
        self.client.wait_for_deadline(round_)
        aggregation = self.client.aggregate(round_, self.servers[-1])
        model = self.client.global_model(round_)
        seconds_round = time.perf_counter() - start
        included = [
            s.device for s in submissions if s.accepted and s.device not in aggregation.excluded
        ]
        accepted = [s.device for s in submissions if s.accepted]
        config = self.client.config
        reference = numpy_fedavg(
            previous,
            [self.codec.dequantize(quantised[d]) for d in accepted],
            [self.data_sizes[d] for d in accepted],
            norm_bound=config.norm_bound,
            clip=config.clip,
        )
        error = float(np.max(np.abs(self.codec.dequantize(model.values) - reference)))
        inputs = {
            bytes(r["transactionHash"]): bytes(
                self.node.w3.eth.get_transaction(r["transactionHash"])["input"]
            )
            for r in [*(r for s in submissions for r in s.receipts), *aggregation.receipts]
        }
        own = [
            calldata_gas(inputs[bytes(r["transactionHash"])])
            for s in submissions
            if s.device in included
            for r in s.receipts
        ]
        shared = [calldata_gas(inputs[bytes(r["transactionHash"])]) for r in aggregation.receipts]
        per_update = tuple(
            (sum(c[k] for c in own) + sum(c[k] for c in shared)) / max(1, len(included))
            for k in (0, 1)
        )
        receipts = [r for s in submissions for r in s.receipts] + aggregation.receipts
        return RoundMeasurement(
            round=round_,
            accepted=sum(s.accepted for s in submissions),
            included=len(included),
            submitted=len(submissions),
            submit_gas=[s.gas_used for s in submissions],
            aggregate_gas=aggregation.gas_used,
            max_tx_gas=max(int(r["gasUsed"]) for r in receipts),
            max_tx_bytes=max(len(data) for data in inputs.values()),
            calldata_gas_per_update=(per_update[0], per_update[1]),
            seconds_submissions=seconds_submissions,
            seconds_round=seconds_round,
            fedavg_max_abs_error=error,
            quantisation_step=self.codec.step,
        )


def settle_market(
    node: ChainNode,
    market: FLMarketClient,
    aggregator: AggregatorClient,
    devices: Sequence[str],
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """One task through the market contract (TBCIM section II-A, steps 1-9): escrow, sealed
    bids from every ES, the outcome voted by the revealers, the task's aggregator, acceptances
    with the EDs' amounts, the requester's attestation of the aggregator's model, ED claims and
    withdrawals. The outcome is a stand-in (every ES with an ED wins and is paid twice its
    bid; the real mechanisms live in tbcim.auction), as are the EDs' amounts (half of each
    payment, in equal shares). ``devices`` are the aggregator's EDs, registered round-robin to
    the node's ESs as :class:`TaskOnChain` does. Returns the task id and the amounts moved (wei)."""
    reward = 10**18
    servers = sorted(node.servers, key=lambda a: int(a, 16))
    rng = np.random.default_rng(seed)
    bids = {s: int(rng.integers(10**15, 10**17)) for s in servers}
    salts = {s: bytes(rng.integers(0, 256, 32, dtype=np.uint8)) for s in servers}
    sizes = {s: int(rng.integers(100, 1000)) for s in servers}
    window = len(servers) + 2  # one block per transaction, plus slack
    terms = TaskTerms.schedule(
        node.block_number,
        (window, window, window, window, 1, window),
        spec=keccak(b"smoke task"),
        mechanism=keccak(b"smoke: pay twice the bid"),
        eval_set=keccak(b"smoke eval set"),
        target_accuracy=0.8,
        min_bidders=len(servers),
        bid_low=10**15,
        bid_high=10**17,
    )
    task_id = market.publish_task(node.requester, reward, terms)
    for s in servers:
        commitment = bid_commitment(task_id, s, bids[s], sizes[s], 0, salts[s])
        market.commit_bid(s, task_id, commitment)
    market.wait_until_after(terms.commit_deadline)
    for s in servers:
        market.reveal_bid(s, task_id, bids[s], sizes[s], 0, salts[s])
    market.wait_until_after(terms.reveal_deadline)
    owner = {d: node.servers[i % len(node.servers)] for i, d in enumerate(devices)}
    winners = [s for s in servers if s in owner.values()]  # acceptAward needs an ED list
    payments = [2 * bids[s] for s in winners]
    for s in servers:
        if market.task(task_id).status != TaskStatus.OPEN:
            break
        market.submit_outcome(s, task_id, winners, payments)
    market.set_aggregator(node.requester, task_id, aggregator.contract.address)
    ed_pay: dict[str, int] = {}
    trees = {}
    for s, payment in zip(winners, payments, strict=True):
        eds = [d for d in devices if owner[d] == s]
        amounts = [payment // 2 // len(eds)] * len(eds)
        ed_pay.update(zip(eds, amounts, strict=True))
        market.accept_award(s, task_id, aggregator.contract.address, eds, amounts)
        trees[s] = device_tree(eds, amounts)
    market.wait_until_after(terms.training_deadline)
    model = bytes(aggregator.contract.functions.globalModelHash().call())
    market.attest(node.requester, task_id, model, accuracy=0.9)
    for s, tree in trees.items():
        for d in tree.devices:
            market.claim_device_pay(d, task_id, s, tree.amount(d), tree.proof(d))
    withdrawn = {}
    for account in [node.requester, *servers]:
        withdrawn[account] = market.balance_of(account)
        if withdrawn[account]:
            market.withdraw(account, withdrawn[account])
    refund = withdrawn.pop(node.requester)
    return {
        "task_id": task_id,
        "reward_wei": reward,
        "payments_wei": dict(zip(winners, payments, strict=True)),
        "ed_payments_wei": ed_pay,
        "refund_wei": refund,
        "es_withdrawn_wei": withdrawn,
        "contract_ether_left_wei": int(node.w3.eth.get_balance(market.contract.address)),
    }
