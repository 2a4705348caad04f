"""Client for ``contracts/FLAggregator.sol``: one edge subsystem's FL rounds on chain.

The ES deploys the contract, registers its EDs with their data sizes, publishes the initial
model and opens rounds; EDs submit fixed-point updates (TBCIM section II-A, Fig. 3); after the
deadline tau the ES aggregates, reading the accepted updates back from their transactions'
calldata; everyone reads the global model from the ``GlobalModel`` log and checks its hash.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from eth_utils import keccak
from numpy.typing import ArrayLike
from web3.contract import Contract
from web3.logs import DISCARD
from web3.types import TxReceipt

from tbcim.blockchain.codec import (
    MAX_UNIT_SCALE,
    PPM,
    FixedPointCodec,
    HistoryState,
    IntArray,
    Verdict,
    norm_squared,
    pack_update,
    unpack_update,
)
from tbcim.errors import ConfigError, TbcimError

if TYPE_CHECKING:
    from chain_node.node import ChainNode

CONTRACT_NAME = "FLAggregator"


@dataclass(frozen=True)
class AggregatorConfig:
    """Deployment parameters of one aggregation contract.

    ``epsilon`` is the cosine threshold of section II-A (an update is accepted iff its mean
    cosine similarity to the ED's past accepted updates is at least ``epsilon``),
    ``norm_bound`` the factor k of the norm check |w| <= k * mean past |w|, ``unit_scale`` the
    integer length of a unit vector in the history (cosine resolution ~ sqrt(d/12)/unit_scale),
    ``max_history`` the accepted updates allowed per ED (0 = what int32 history lanes hold).
    """

    num_params: int
    frac_bits: int = 12
    round_blocks: int = 5
    epsilon: float = 0.0
    norm_bound: float = 3.0
    unit_scale: int = 2**12
    max_history: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.num_params <= 2**20:
            raise ConfigError("num_params", f"must be in [1, 2^20], got {self.num_params}")
        FixedPointCodec(self.frac_bits)  # validates frac_bits
        if self.round_blocks < 1:
            raise ConfigError("round_blocks", f"must be at least 1, got {self.round_blocks}")
        if not -1.0 <= self.epsilon <= 1.0:
            raise ConfigError("epsilon", f"must be in [-1, 1], got {self.epsilon}")
        if not 0.0 < self.norm_bound <= 1e12:
            raise ConfigError("norm_bound", f"must be in (0, 1e12], got {self.norm_bound}")
        if not 1 <= self.unit_scale <= MAX_UNIT_SCALE:
            raise ConfigError("unit_scale", f"must be in [1, 2^24], got {self.unit_scale}")
        capacity = (2**31 - 1) // self.unit_scale
        if not 0 <= self.max_history <= capacity:
            raise ConfigError(
                "max_history", f"must be in [0, {capacity}] (0 = capacity), got {self.max_history}"
            )

    @property
    def epsilon_ppm(self) -> int:
        return round(self.epsilon * PPM)

    @property
    def norm_bound_ppm(self) -> int:
        return round(self.norm_bound * PPM)

    def constructor_args(self) -> tuple[int, ...]:
        return (
            self.num_params,
            self.frac_bits,
            self.round_blocks,
            self.epsilon_ppm,
            self.norm_bound_ppm,
            self.unit_scale,
            self.max_history,
        )


@dataclass(frozen=True)
class Submission:
    """The outcome of one ``submit`` as logged by the contract."""

    device: str
    round: int
    verdict: Verdict
    norm_squared: int
    history_dot: int
    receipt: TxReceipt

    @property
    def accepted(self) -> bool:
        return self.verdict == Verdict.ACCEPTED


@dataclass(frozen=True)
class GlobalModel:
    """A global model read from the chain's ``GlobalModel`` log."""

    round: int
    values: IntArray
    total_data: int
    updates: int
    saturated_lanes: int
    model_hash: bytes


def checked_update(update: bytes, logged_hash: bytes) -> bytes:
    """An update read from calldata, checked against the hash its ``UpdateAccepted`` logged."""
    if keccak(update) != logged_hash:
        raise TbcimError("update calldata does not match the hash in its UpdateAccepted log")
    return update


def model_from_log(args: Any, num_params: int, stored_hash: bytes | None) -> GlobalModel:
    """Decode a ``GlobalModel`` log's arguments, checking the bytes against the logged hash and,
    if given, the hash the contract stores."""
    model = bytes(args.model)
    if keccak(model) != bytes(args.modelHash):
        raise TbcimError("GlobalModel log: model bytes do not match their hash")
    if stored_hash is not None and stored_hash != bytes(args.modelHash):
        raise TbcimError("the latest GlobalModel log does not match the stored model hash")
    return GlobalModel(
        round=int(args.round),
        values=unpack_update(model, num_params),
        total_data=int(args.totalData),
        updates=int(args.updates),
        saturated_lanes=int(args.saturatedLanes),
        model_hash=bytes(args.modelHash),
    )


class AggregatorClient:
    """Typed wrapper around one deployed FLAggregator on a :class:`chain_node.node.ChainNode`.

    The client mirrors each ED's history off chain (the contract stores only its hash) and
    checks the mirror against the on-chain commitment before every submission.
    """

    def __init__(self, node: ChainNode, contract: Contract, config: AggregatorConfig) -> None:
        self.node = node
        self.contract = contract
        self.config = config
        self.codec = FixedPointCodec(config.frac_bits)
        self.server: str = contract.functions.server().call()
        self.histories: dict[str, HistoryState] = {}

    @classmethod
    def deploy(cls, node: ChainNode, config: AggregatorConfig, server: str) -> AggregatorClient:
        """Deploy a new aggregation contract owned by ``server`` (an ES account)."""
        contract = node.deploy(CONTRACT_NAME, *config.constructor_args(), sender=server)
        return cls(node, contract, config)

    # ------------------------------------------------------------------ ES
    def register_worker(self, device: str, data_size: int) -> TxReceipt:
        return self.node.transact(
            self.contract.functions.registerWorker(device, int(data_size)),
            sender=self.server,
            role="es",
        )

    def publish_initial_model(self, model: ArrayLike) -> TxReceipt:
        """Publish the initial global model (fixed-point int16 values)."""
        return self.node.transact(
            self.contract.functions.publishInitialModel(self._pack(model)),
            sender=self.server,
            role="es",
        )

    def open_round(self) -> int:
        """Open the next round; returns its number."""
        receipt = self.node.transact(
            self.contract.functions.openRound(), sender=self.server, role="es"
        )
        (event,) = self.contract.events.RoundOpened().process_receipt(receipt, errors=DISCARD)
        return int(event.args.round)

    def deadline(self, round_: int) -> int:
        return int(self.contract.functions.rounds(round_).call()[0])

    def wait_for_deadline(self, round_: int) -> None:
        """Mine empty blocks until the round's deadline has passed."""
        missing = self.deadline(round_) + 1 - self.node.block_number
        if missing > 0:
            self.node.advance_blocks(missing)

    def accepted_updates(self, round_: int) -> tuple[list[str], list[bytes]]:
        """The round's accepted workers and their packed updates, in acceptance order, read
        from the ``UpdateAccepted`` logs and the submitting transactions' calldata."""
        logs = self.contract.events.UpdateAccepted().get_logs(
            from_block=0, argument_filters={"round": round_}
        )
        logs = sorted(logs, key=lambda log: (log.blockNumber, log.logIndex))
        workers, updates = [], []
        for log in logs:
            tx = self.node.w3.eth.get_transaction(log.transactionHash)
            _, args = self.contract.decode_function_input(tx["input"])
            workers.append(log.args.worker)
            updates.append(checked_update(bytes(args["update"]), bytes(log.args.updateHash)))
        return workers, updates

    def aggregate(self, round_: int) -> TxReceipt:
        """FedAvg of the round's accepted updates on chain (after the deadline)."""
        workers, updates = self.accepted_updates(round_)
        previous = self.global_model()
        return self.node.transact(
            self.contract.functions.aggregate(
                round_, pack_update(previous.values), workers, updates
            ),
            sender=self.server,
            role="es",
            round=round_,
        )

    # ------------------------------------------------------------------ ED
    def history(self, device: str) -> HistoryState:
        return self.histories.setdefault(device, HistoryState(self.config.num_params))

    def _submit_fn(self, device: str, round_: int, update: ArrayLike) -> Any:
        values = self._values(update)
        state = self.history(device)
        onchain = bytes(self.contract.functions.historyHash(device).call())
        if onchain != state.commitment():
            raise TbcimError(f"history mirror of {device} does not match its on-chain commitment")
        norm = math.isqrt(norm_squared(values))
        return self.contract.functions.submit(round_, pack_update(values), state.packed(), norm)

    def submit(self, device: str, round_: int, update: ArrayLike) -> Submission:
        """Submit one fixed-point update from ``device`` and mine it."""
        fn = self._submit_fn(device, round_, update)
        receipt = self.node.transact(fn, sender=device, role="ed", round=round_)
        return self._outcome(device, round_, update, receipt)

    def submit_round(self, round_: int, updates: Mapping[str, ArrayLike]) -> list[Submission]:
        """Submit several EDs' updates in one block (one transaction each)."""
        for device, update in updates.items():
            self.node.send(
                self._submit_fn(device, round_, update), sender=device, role="ed", round=round_
            )
        receipts = self.node.mine()
        return [
            self._outcome(device, round_, update, receipt)
            for (device, update), receipt in zip(updates.items(), receipts, strict=True)
        ]

    def _outcome(
        self, device: str, round_: int, update: ArrayLike, receipt: TxReceipt
    ) -> Submission:
        accepted = self.contract.events.UpdateAccepted().process_receipt(receipt, errors=DISCARD)
        if accepted:
            args = accepted[0].args
            state = self.history(device)
            state.accept(self._values(update), self.config.unit_scale)
            if state.commitment() != bytes(args.newHistoryHash):
                raise TbcimError(f"history mirror of {device} diverged from the contract")
            verdict = Verdict.ACCEPTED
        else:
            (rejected,) = self.contract.events.UpdateRejected().process_receipt(
                receipt, errors=DISCARD
            )
            args = rejected.args
            verdict = Verdict(args.verdict)
        return Submission(
            device, round_, verdict, int(args.normSquared), int(args.historyDot), receipt
        )

    # ------------------------------------------------------------------ everyone
    def global_model(self, round_: int | None = None) -> GlobalModel:
        """The global model of ``round_`` (default: the latest) from the event log; the latest
        is checked against the hash the contract stores."""
        filters = {} if round_ is None else {"round": round_}
        logs = self.contract.events.GlobalModel().get_logs(from_block=0, argument_filters=filters)
        if not logs:
            raise TbcimError(f"no global model on chain for round {round_}")
        log = max(logs, key=lambda entry: (entry.blockNumber, entry.logIndex))
        stored = None
        if round_ is None:
            stored = bytes(self.contract.functions.globalModelHash().call())
        return model_from_log(log.args, self.config.num_params, stored)

    def _values(self, values: ArrayLike) -> IntArray:
        arr = np.asarray(values)
        if arr.shape != (self.config.num_params,):
            raise ConfigError(
                "update", f"expected {self.config.num_params} values, got shape {arr.shape}"
            )
        return unpack_update(pack_update(arr), self.config.num_params)

    def _pack(self, values: ArrayLike) -> bytes:
        return pack_update(self._values(values))
