"""The ED as a Flower ``ClientApp`` (TBCIM section II-A, Fig. 3: an ED trains on its own data
and submits its update to the aggregator contract as a transaction).

Three message types (:mod:`tbcim.fl.flower.spec`):

- ``query.whoami``: the ED's index (its partition id), so the ``ServerApp`` can address the
  participants of a round (the EDs of live ESs);
- ``train.commit``: read the global model from the chain (checked against the hashes the
  contract stores), train (:meth:`tbcim.fl.client.Client.local_update`, an attacker's attack on
  top), screen the update (:func:`tbcim.fl.client.validate_update`), quantise it and sign and
  send the commit-reveal commitment;
- ``train.submit``: after the commit window, sign and send the update's chunks.

What an ED must remember between messages lives in its Flower ``Context.state``, which the
runtime keeps per node across rounds: its history window (mirrored off chain, checked against
the contract's commitment before every submission), the update of its round (committed, then
submitted) and, for a replaying attacker, what it sent last. A worker process that dies loses
nothing the node's context held before the message.

Each worker process builds the task once per run (the same seed gives every ED the same
partition, so an ED holds exactly the data of the in-process engine) and keeps one read-only view
of the chain; the ED's key is its own (:func:`tbcim.fl.flower.spec.ed_account`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from chain_node.node import ChainNode
from tbcim.blockchain.aggregator import (
    CONTRACT_NAME,
    AggregatorClient,
    AggregatorConfig,
    submit_gas_bound,
)
from tbcim.blockchain.codec import HistoryState
from tbcim.errors import ConfigError
from tbcim.fl.client import validate_update
from tbcim.fl.config import FLConfig
from tbcim.fl.flower.spec import RunSpec, ed_account
from tbcim.fl.task import FLTask, build_task

#: Exit status of a worker process killed by fault injection (``RunSpec.kill``).
KILLED_EXIT = 75

app = ClientApp()


@dataclass
class _Link:
    """One worker process's view of a run: the task's data and each aggregator on chain."""

    spec: RunSpec
    task: FLTask
    clients: list[AggregatorClient]

    def client(self, message: Message) -> AggregatorClient:
        """The aggregator of the task the message is about (``task`` in its config)."""
        return self.clients[int(message.content["run"]["task"])]  # type: ignore[arg-type]


_LINKS: dict[str, _Link] = {}  # per worker process, by the run's spec


def _link(message: Message) -> _Link:
    text = str(message.content["run"]["spec"])
    link = _LINKS.get(text)
    if link is None:
        spec = RunSpec.from_json(text)
        task = build_task(FLConfig.from_dict(spec.fl), n_eds=spec.n_eds)
        clients = []
        for aggregator in spec.tasks:
            accounts = [spec.requester, *aggregator.servers]
            node = ChainNode.connect(
                spec.rpc_url, len(aggregator.servers), 0, accounts=accounts, mining=False
            )
            contract = node.at(CONTRACT_NAME, aggregator.contract)
            config = AggregatorConfig(**aggregator.config)
            clients.append(AggregatorClient(node, contract, config, aggregator.since_block))
        link = _Link(spec, task, clients)
        _LINKS.clear()  # one run at a time per worker
        _LINKS[text] = link
    return link


def _ed(context: Context) -> int:
    return int(context.node_config["partition-id"])


def _reply(message: Message, hashes: list[str], rejected: str = "", **metrics: float) -> Message:
    content = RecordDict(
        {
            "result": ConfigRecord({"tx": ",".join(hashes), "rejected": rejected}),
            "metrics": MetricRecord(dict(metrics)),
        }
    )
    return Message(content, reply_to=message)


def _array(context: Context, name: str) -> np.ndarray | None:
    record = context.state.get(name)
    if not isinstance(record, ArrayRecord):
        return None
    return record["v"].numpy()


def _put(context: Context, name: str, values: np.ndarray) -> None:
    context.state[name] = ArrayRecord(array_dict={"v": Array(np.ascontiguousarray(values))})


def _stored_history(
    client: AggregatorClient, context: Context, device: str
) -> tuple[HistoryState, int]:
    """The ED's history mirror as its context holds it, and the chain round of the update it
    committed last (0: none)."""
    config = client.config
    state = HistoryState(config.num_params, config.history_window)
    kept = context.state.get("tbcim.ed")
    last_round = 0
    if isinstance(kept, ConfigRecord):
        values = _array(context, "tbcim.history")
        if values is not None:
            state.values = values.astype(np.int64)
        state.count = int(kept["count"])  # type: ignore[arg-type]
        last_round = int(kept["round"])  # type: ignore[arg-type]
    client.histories[device] = state
    return state, last_round


def _history(client: AggregatorClient, context: Context, device: str) -> HistoryState:
    """The ED's history mirror brought up to date with the chain: its last committed update
    counts if the contract accepted it (``acceptedRound``)."""
    state, last_round = _stored_history(client, context, device)
    last = _array(context, "tbcim.update")
    accepted = last_round > 0 and client.worker(device)["acceptedRound"] == last_round
    if last is not None and accepted:
        state.accept(last.astype(np.int64), client.config.unit_scale)
    return state


def _remember(context: Context, state: HistoryState, update: np.ndarray, round_: int) -> None:
    _put(context, "tbcim.history", state.values)
    _put(context, "tbcim.update", update)
    context.state["tbcim.ed"] = ConfigRecord({"count": state.count, "round": round_})


@app.query("whoami")
def whoami(message: Message, context: Context) -> Message:
    """The ED's index."""
    content = RecordDict({"result": ConfigRecord({"ed": _ed(context)})})
    return Message(content, reply_to=message)


@app.train("commit")
def commit(message: Message, context: Context) -> Message:
    """Read the global model from the chain, train, screen, quantise, commit (see the module
    docstring)."""
    link = _link(message)
    ed = _ed(context)
    config = message.content["run"]
    round_, chain_round = int(config["round"]), int(config["chain_round"])  # type: ignore[arg-type]
    if link.spec.kill.get(ed) == round_:
        os._exit(KILLED_EXIT)  # fault injection: this worker process dies mid-round
    key = ed_account(link.task.config.seed, ed)
    client = link.client(message)
    history = _history(client, context, key.address)
    started = time.perf_counter()
    params = client.codec.dequantize(client.global_model().values)
    sent = link.task.clients[ed].local_update(params, round_)
    adversary = link.task.adversaries.get(ed)
    if adversary is not None:
        previous = _array(context, "tbcim.sent")
        adversary.submitted = [] if previous is None else [previous]
        sent = adversary.submit(round_, sent, {})
        _put(context, "tbcim.sent", sent)
    train_s = time.perf_counter() - started
    try:
        update = validate_update(sent, client.config.num_params, ed, client.codec)
    except ConfigError as err:
        _remember(context, history, np.zeros(0, dtype=np.int64), 0)
        return _reply(message, [], str(err), train_s=train_s)
    values = client.codec.quantize(update, f"update of ED {ed}")
    _remember(context, history, values, chain_round)
    hashes = []
    if client.config.commit_blocks:
        plan = client.plan(key.address, values)
        hashes.append(client.node.send_signed(client.commit_call(chain_round, plan), key))
    return _reply(message, hashes, train_s=train_s)


@app.train("submit")
def submit(message: Message, context: Context) -> Message:
    """Send the committed update's chunks, signed, in order."""
    link = _link(message)
    ed = _ed(context)
    chain_round = int(message.content["run"]["chain_round"])  # type: ignore[arg-type]
    key = ed_account(link.task.config.seed, ed)
    client = link.client(message)
    _, committed = _stored_history(client, context, key.address)
    values = _array(context, "tbcim.update")
    if values is None or committed != chain_round:
        raise ConfigError(f"ED {ed}", f"has no committed update for round {chain_round}")
    plan = client.plan(key.address, values.astype(np.int64))
    words = client.config.words_per_chunk
    hashes = [
        # Later chunk groups cannot be estimated before the first is mined: their gas bound.
        client.node.send_signed(fn, key, gas=submit_gas_bound(words, end - first) if i else None)
        for i, (fn, (first, end)) in enumerate(
            zip(client.submit_calls(chain_round, plan), plan.groups, strict=True)
        )
    ]
    return _reply(message, hashes)
