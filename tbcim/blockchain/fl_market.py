"""Client for ``contracts/FLMarket.sol``: task escrow and settlement (TBCIM Fig. 2, steps 1-8).

The requester publishes a task with its reward in escrow, records the reverse auction's
winners and payments, and attests the delivered model's accuracy; the winning ESs are credited
and pay their EDs; every account withdraws its own balance (pull payments).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from web3.contract import Contract
from web3.types import TxReceipt

from tbcim.blockchain.codec import PPM
from tbcim.errors import ConfigError

if TYPE_CHECKING:
    from chain_node.node import ChainNode

CONTRACT_NAME = "FLMarket"


class TaskStatus(enum.IntEnum):
    """The contract's ``Status`` enum."""

    NONE = 0
    OPEN = 1
    AWARDED = 2
    COMPLETED = 3
    FAILED = 4


@dataclass(frozen=True)
class Task:
    task_id: int
    requester: str
    status: TaskStatus
    escrow: int
    target_accuracy: float
    total_payment: int
    spec: bytes
    winners: tuple[str, ...]


def _ppm(value: float, field: str) -> int:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(field, f"must be in [0, 1], got {value}")
    return round(value * PPM)


class FLMarketClient:
    """Typed wrapper around a deployed FLMarket on a :class:`chain_node.node.ChainNode`."""

    def __init__(self, node: ChainNode, contract: Contract) -> None:
        self.node = node
        self.contract = contract

    @classmethod
    def deploy(cls, node: ChainNode, sender: str) -> FLMarketClient:
        return cls(node, node.deploy(CONTRACT_NAME, sender=sender))

    def publish_task(
        self, requester: str, reward_wei: int, spec: bytes, target_accuracy: float
    ) -> int:
        """Publish a task with ``reward_wei`` in escrow; returns the task id."""
        if len(spec) != 32:
            raise ConfigError("spec", f"must be a 32-byte hash, got {len(spec)} bytes")
        receipt = self.node.transact(
            self.contract.functions.publishTask(spec, _ppm(target_accuracy, "target_accuracy")),
            sender=requester,
            role="requester",
            value=int(reward_wei),
        )
        (event,) = self.contract.events.TaskPublished().process_receipt(receipt)
        return int(event.args.taskId)

    def record_auction(
        self, requester: str, task_id: int, winners: Sequence[str], payments: Sequence[int]
    ) -> TxReceipt:
        """Record the reverse auction's winning ESs and their payments (wei)."""
        return self.node.transact(
            self.contract.functions.recordAuction(
                task_id, list(winners), [int(p) for p in payments]
            ),
            sender=requester,
            role="requester",
        )

    def attest_accuracy(self, requester: str, task_id: int, accuracy: float) -> TxReceipt:
        """The requester attests the verified accuracy; releases or refunds the escrow."""
        return self.node.transact(
            self.contract.functions.attestAccuracy(task_id, _ppm(accuracy, "accuracy")),
            sender=requester,
            role="requester",
        )

    def pay_devices(
        self, server: str, task_id: int, devices: Sequence[str], amounts: Sequence[int]
    ) -> TxReceipt:
        """A winning ES pays its EDs (wei) out of its payment for the task."""
        return self.node.transact(
            self.contract.functions.payDevices(task_id, list(devices), [int(a) for a in amounts]),
            sender=server,
            role="es",
        )

    def withdraw(self, account: str, amount_wei: int) -> TxReceipt:
        return self.node.transact(
            self.contract.functions.withdraw(int(amount_wei)),
            sender=account,
            role=self.node.role_of(account),
        )

    def balance_of(self, account: str) -> int:
        return int(self.contract.functions.balanceOf(account).call())

    def task(self, task_id: int) -> Task:
        requester, status, escrow, target, total, spec, winners = self.node.call(
            self.contract.functions.getTask(task_id)
        )
        return Task(
            task_id=task_id,
            requester=requester,
            status=TaskStatus(status),
            escrow=int(escrow),
            target_accuracy=int(target) / PPM,
            total_payment=int(total),
            spec=bytes(spec),
            winners=tuple(winners),
        )
