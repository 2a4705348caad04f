"""What the ``ServerApp`` tells every ``ClientApp`` (a JSON string in each message), and the
EDs' own keys.

An ED needs to know where the chain is (``rpc_url``), which aggregator holds its task
(its ``contract``, deployed at ``since_block``, with its settings and its ESs), who the
requester is, and how to build its own data (the ``[fl]`` table and the number of EDs: every
ED draws the same partition from the seed and keeps its own share, section V-A).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from eth_utils import keccak

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

#: Message types (Flower: "<category>.<action>"): who is which ED, then the round's two phases.
WHOAMI = "query.whoami"
COMMIT = "train.commit"
SUBMIT = "train.submit"
#: Wei each ED's account is funded with (gas for every round of a run, many times over).
ED_FUNDS_WEI = 10**21
#: Ether per account of the anvil node a Flower run starts (anvil's default, 10,000, funds only
#: 9 EDs at ED_FUNDS_WEI): enough for 10,000 EDs.
ANVIL_BALANCE_ETHER = 10**7


@dataclass(frozen=True)
class AggregatorSpec:
    """One aggregator task of the run: its contract (deployed at ``since_block``, with the
    ``config`` settings) and its ESs."""

    contract: str
    since_block: int
    config: dict[str, Any]
    servers: list[str]


@dataclass(frozen=True)
class RunSpec:
    """The run, as every ED sees it. ``tasks`` are the aggregator tasks the EDs are shared out
    over (one, unless a population is larger than one aggregator takes: each message names the
    ED's task); ``kill`` is fault injection (ED → the FL round in which its worker process
    exits mid-round, before it trains: tests and chaos runs)."""

    rpc_url: str
    tasks: list[AggregatorSpec]
    fl: dict[str, Any]
    n_eds: int
    requester: str
    kill: dict[int, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        raw = json.loads(text)
        raw["kill"] = {int(ed): int(r) for ed, r in raw["kill"].items()}
        raw["tasks"] = [AggregatorSpec(**t) for t in raw["tasks"]]
        return cls(**raw)


def ed_account(seed: int, ed: int) -> LocalAccount:
    """ED ``ed``'s own key in a simulated run: keccak("tbcim-ed", seed, ed). Derived from the
    run's public seed so that a run is reproducible; on a real network every ED brings its own
    key and only its address is registered."""
    from eth_account import Account

    secret = keccak(b"tbcim-ed" + seed.to_bytes(8, "big", signed=True) + ed.to_bytes(8, "big"))
    return Account.from_key(secret)
