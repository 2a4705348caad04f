"""``tbcim market verify``: recompute every task's award from chain data alone.

For each task the FLMarket logs hold the terms (``TaskPublished``), the revealed bids with their
salts (``BidRevealed``) and the recorded outcome (``AwardFinalized``). The verifier

1. checks the commitments: keccak(name ‖ sha256(model file) ‖ setting) must equal the
   terms' mechanism, and keccak of the saved spec JSON (``specs/task-<t>.json``) their spec;
2. recomputes the seed from the salts (the XOR the contract computes) and compares it;
3. recomputes the outcome with :func:`tbcim.market.outcome.compute_award` and compares the
   winners and the payments, to the wei, with the recorded ones;
4. checks that the run folder's ``summary.json`` reports the chain's winners.

The logs come from the node at ``--rpc-url`` when it is given (an external chain still
running), else from ``chain/market_logs.json``, the raw logs the run exported (the embedded
chain ends with its process).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_utils import event_abi_to_log_topic, keccak
from hexbytes import HexBytes
from web3 import Web3
from web3.datastructures import AttributeDict

from tbcim.blockchain.fl_market import outcome_seed
from tbcim.errors import TbcimError
from tbcim.market.config import WEI_PER_UNIT, MarketConfig
from tbcim.market.outcome import Reveal, compute_award, load_mechanism

LOGS = Path("chain") / "market_logs.json"


def spec_path(folder: Path, task: int) -> Path:
    """Where a run saves task ``task``'s spec JSON (0-based), whose keccak its terms hold."""
    return folder / "specs" / f"task-{task}.json"


@dataclass(frozen=True)
class LoggedEvent:
    """A decoded FLMarket log: the event's name and its arguments (attribute access)."""

    event: str
    args: Any


@dataclass
class TaskCheck:
    task_id: int
    problems: list[str] = field(default_factory=list)
    recorded_winners: list[str] | None = None  # the winners AwardFinalized holds
    recorded_payments: dict[str, int] = field(default_factory=dict)  # winner -> wei
    recorded_ed_payments: dict[str, int] = field(default_factory=dict)  # ED -> wei (accepts)
    settled: bool = False  # the ESs were paid (target met, or the requester forfeited)

    @property
    def ok(self) -> bool:
        return not self.problems


def _all_logs(w3: Web3, address: str, since_block: int = 0) -> list[Any]:
    query = {"address": Web3.to_checksum_address(address), "toBlock": "latest"}
    return list(w3.eth.get_logs({**query, "fromBlock": since_block}))  # type: ignore[typeddict-item]


def export_logs(logs: list[Any], path: Path) -> Path:
    """Write the market contract's ``logs`` (receipt logs: raw topics and data) to ``path``."""
    rows = [
        {
            "blockNumber": int(log["blockNumber"]),
            "transactionHash": HexBytes(log["transactionHash"]).to_0x_hex(),
            "logIndex": int(log["logIndex"]),
            "address": log["address"],
            "topics": [HexBytes(t).to_0x_hex() for t in log["topics"]],
            "data": HexBytes(log["data"]).to_0x_hex(),
        }
        for log in logs
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1))
    return path


def _market_events(folder: Path, rpc_url: str | None) -> list[LoggedEvent]:
    from chain_node.compiler import compile_contracts

    summary = json.loads((folder / "summary.json").read_text())
    address = summary["market_contract"]
    abi = compile_contracts()["FLMarket"].abi
    raw: list[Any]
    if rpc_url:
        w3 = Web3(Web3.HTTPProvider(rpc_url))
        if not w3.is_connected():
            raise TbcimError(f"no Ethereum JSON-RPC node answers at {rpc_url}")
        raw = _all_logs(w3, address, int(summary.get("market_block", 0)))
    else:
        source = folder / LOGS
        if not source.is_file():
            raise TbcimError(f"{source} is missing: give --rpc-url of the run's node")
        raw = [
            {
                **row,
                "transactionHash": HexBytes(row["transactionHash"]),
                "blockHash": HexBytes(b"\0" * 32),
                "transactionIndex": 0,
                "topics": [HexBytes(t) for t in row["topics"]],
                "data": HexBytes(row["data"]),
            }
            for row in json.loads(source.read_text())
        ]
    contract = Web3().eth.contract(address=address, abi=abi)
    by_topic = {
        event_abi_to_log_topic(entry): getattr(contract.events, entry["name"])  # type: ignore[arg-type]
        for entry in abi
        if entry["type"] == "event"
    }
    events = []
    for log in raw:
        event = by_topic.get(bytes(log["topics"][0])) if log["topics"] else None
        if event is not None:  # a log of another signature is not the market's
            decoded = event().process_log(log)
            events.append(LoggedEvent(decoded["event"], AttributeDict(decoded["args"])))
    return events


def verify_run(folder: str | Path, rpc_url: str | None = None) -> list[TaskCheck]:
    """Every task's check (module docstring); a folder that cannot be read is a TbcimError."""
    folder = Path(folder)
    if not (folder / "summary.json").is_file():
        raise TbcimError(f"{folder} has no summary.json: not a completed market run")
    saved = json.loads((folder / "config.json").read_text())
    config = MarketConfig.from_dict(saved["config"])
    summary = json.loads((folder / "summary.json").read_text())
    mechanism = load_mechanism(config.terms.mechanism, config.model_path(), config.servers)
    events = _market_events(folder, rpc_url)
    checks: dict[int, TaskCheck] = {}
    published = 0  # the run's tasks in publication order
    reveals: dict[int, list[tuple[Reveal, bytes]]] = {}
    for e in events:
        task_id = int(e.args.taskId) if "taskId" in e.args else None
        if task_id is None:
            continue
        check = checks.setdefault(task_id, TaskCheck(task_id))
        if e.event == "TaskPublished":
            if bytes(e.args.terms["mechanism"]) != mechanism.commitment:
                check.problems.append("the committed mechanism is not the configured model")
            spec = spec_path(folder, published)
            published += 1
            if not spec.is_file() or keccak(spec.read_bytes()) != bytes(e.args.terms["spec"]):
                check.problems.append(f"{spec} is not the spec the terms commit to")
        elif e.event == "BidRevealed":
            r = Reveal(e.args.bidder, int(e.args.bid), int(e.args.dataSize), int(e.args.emdPpm))
            reveals.setdefault(task_id, []).append((r, bytes(e.args.salt)))
        elif e.event == "AwardFinalized":
            pairs = reveals.get(task_id, [])
            seed = outcome_seed([(r.bidder, salt) for r, salt in pairs])
            if seed != int(e.args.seed):
                check.problems.append(f"seed {e.args.seed} is not the salts' XOR {seed}")
            award = compute_award(mechanism, [r for r, _ in pairs], seed, WEI_PER_UNIT)
            recorded = (tuple(e.args.winners), tuple(int(p) for p in e.args.payments))
            if recorded != (award.winners, award.payments_wei):
                check.problems.append(
                    f"recorded outcome {recorded} differs from the mechanism's "
                    f"{(award.winners, award.payments_wei)}"
                )
            check.recorded_winners = list(recorded[0])
            check.recorded_payments = dict(zip(*recorded, strict=True))
        elif e.event == "AwardAccepted":
            amounts = map(int, e.args.amounts)
            check.recorded_ed_payments.update(zip(e.args.devices, amounts, strict=True))
        elif e.event == "PaymentReleased":
            check.settled = True
    for t in summary["tasks"]:  # a task the logs do not show was not verified
        if t["task_id"] not in checks:
            checks[t["task_id"]] = TaskCheck(t["task_id"], ["the logs hold no such task"])
        elif t["winners"] and checks[t["task_id"]].recorded_winners is None:
            checks[t["task_id"]].problems.append("summary.json reports winners, the logs no award")
    if not checks:
        raise TbcimError(f"{folder}: neither summary.json nor the logs hold a task to verify")
    for t in summary["tasks"]:
        _compare_summary(checks[t["task_id"]], t, summary)
    return [checks[k] for k in sorted(checks)]


def _compare_summary(check: TaskCheck, reported: dict[str, Any], summary: dict[str, Any]) -> None:
    """summary.json's winners, and for a settled task its payments and ED payments, must be
    the chain's (AwardFinalized, AwardAccepted), to the wei."""
    if check.recorded_winners is None:
        return
    es = summary["server_accounts"]
    ed = summary["device_accounts"]
    winners = sorted(es.index(a) for a in check.recorded_winners)
    if sorted(reported["winners"]) != winners:
        check.problems.append(
            f"summary.json reports winners {reported['winners']}, the chain {winners}"
        )
    paid = check.settled
    expected = (
        {str(es.index(a)): str(w) for a, w in check.recorded_payments.items()} if paid else {}
    )
    if reported["payments"] != expected:
        check.problems.append(
            f"summary.json reports payments {reported['payments']}, the chain {expected}"
        )
    expected_eds = (
        {str(ed.index(a)): str(w) for a, w in check.recorded_ed_payments.items()} if paid else {}
    )
    if reported["ed_payments"] != expected_eds:
        check.problems.append("summary.json's ed_payments differ from the chain's AwardAccepted")
