"""The Flower engine's round control against a scripted grid (no Ray, no chain): what a phase
makes of replies, errors and silence, and how the start-up check fails (issue 13)."""

from __future__ import annotations

from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any, cast

import pytest
from flwr.app import ConfigRecord, Error, Message, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from tbcim.errors import ConfigError
from tbcim.fl.flower.engine import run_flower_tasks
from tbcim.fl.flower.server_app import DROPPED, ChainRoundControl, FlowerEngineError
from tbcim.fl.flower.spec import COMMIT, WHOAMI, AggregatorSpec, RunSpec, ed_account
from tbcim.fl.onchain import OnChainFL

SPEC = RunSpec(
    rpc_url="http://127.0.0.1:1",
    tasks=[
        AggregatorSpec("0x" + "11" * 20, 3, {"num_params": 10}, ["0x" + "33" * 20]),
        AggregatorSpec("0x" + "44" * 20, 5, {"num_params": 10}, ["0x" + "33" * 20]),
    ],
    fl={"seed": 5},
    n_eds=4,
    requester="0x" + "22" * 20,
    kill={2: 1},
)


class ScriptedGrid:
    """Answers each node as scripted: a reply's content, an error reason, or nothing."""

    def __init__(self, script: dict[int, RecordDict | str | None]) -> None:
        self.script = script
        self.sent: list[Message] = []
        self.timeouts: list[float | None] = []

    def get_node_ids(self) -> list[int]:
        return list(self.script)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> list[Message]:
        batch = list(messages)
        self.sent.extend(batch)
        self.timeouts.append(timeout)
        replies = []
        for m in batch:
            answer = self.script[m.metadata.dst_node_id]
            if isinstance(answer, str):
                replies.append(Message(Error(code=0, reason=answer), reply_to=m))
            elif answer is not None:
                replies.append(Message(answer, reply_to=m))
        return replies


def result(tx: str = "", rejected: str = "") -> RecordDict:
    return RecordDict({"result": ConfigRecord({"tx": tx, "rejected": rejected})})


@pytest.fixture(autouse=True)
def task_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages are stamped with the running task's identity, which a run sets."""
    for name, value in (("_run_id", 1), ("_task_id", 1), ("_node_id", 0)):
        monkeypatch.setattr(TaskIdentity, name, value)


def control(registered: list[int], start_timeout_s: float = 5.0) -> ChainRoundControl:
    """Round control over two tasks: the first registered ED in task 0, the rest in task 1."""
    tasks = [
        cast(OnChainFL, SimpleNamespace(registered=registered[:1])),
        cast(OnChainFL, SimpleNamespace(registered=registered[1:])),
    ]
    return ChainRoundControl(tasks, SPEC, reply_timeout_s=7.0, start_timeout_s=start_timeout_s)


def test_a_phase_collects_hashes_and_drops_failed_and_silent_eds() -> None:
    """ED 0 sends two transactions, ED 1's worker fails, ED 2's update is screened out (it
    sends nothing), ED 3 does not answer: the round goes on with ED 0, each other ED's reason
    recorded."""
    grid = ScriptedGrid(
        {
            10: result("0xa,0xb"),
            11: "ActorUnavailableError: the worker died",
            12: result(rejected="update from ED 2: holds 1 non-finite value(s)"),
            13: None,
        }
    )
    c = control([0, 1, 2, 3])
    c.node_of = {0: 10, 1: 11, 2: 12, 3: 13}
    rejected: dict[int, str] = {}
    config = {"round": 4, "chain_round": 9, "task": 1}
    hashes = c._phase(cast(Any, grid), COMMIT, [0, 1, 2, 3], config, rejected)
    assert hashes == ["0xa", "0xb"]
    assert rejected == {
        1: f"{DROPPED}: ActorUnavailableError: the worker died",
        2: "update from ED 2: holds 1 non-finite value(s)",
        3: f"{DROPPED}: no reply to {COMMIT} within 7 s",
    }
    assert grid.timeouts == [7.0]
    for message in grid.sent:
        assert message.metadata.message_type == COMMIT
        run = message.content["run"]
        assert (run["round"], run["chain_round"], run["task"]) == (4, 9, 1)
        assert RunSpec.from_json(str(run["spec"])) == SPEC


def test_discovery_maps_eds_to_nodes() -> None:
    grid = ScriptedGrid(
        {20 + ed: RecordDict({"result": ConfigRecord({"ed": ed})}) for ed in range(4)}
    )
    c = control([0, 1, 2, 3])
    c.discover(cast(Any, grid))
    assert c.node_of == {0: 20, 1: 21, 2: 22, 3: 23}
    assert {m.metadata.message_type for m in grid.sent} == {WHOAMI}


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ({}, "no ED answered within 0 s: the Flower simulation runtime did not start"),
        ({7: "LoadClientAppError: no module"}, "the first error: LoadClientAppError: no module"),
        ({7: RecordDict({"result": ConfigRecord({"ed": 0})})}, r"EDs \[1\] have no Flower node"),
    ],
)
def test_a_runtime_that_does_not_answer_is_a_clear_error(
    script: dict[int, RecordDict | str | None], message: str
) -> None:
    with pytest.raises(FlowerEngineError, match=message):
        control([0, 1], start_timeout_s=0.2).discover(cast(Any, ScriptedGrid(script)))


def test_ed_keys_are_reproducible_and_distinct() -> None:
    keys = [ed_account(5, ed).address for ed in range(4)]
    assert keys == [ed_account(5, ed).address for ed in range(4)]
    assert len(set(keys)) == 4
    assert ed_account(6, 0).address not in keys


def shard(node: object, task: object, registered: list[int]) -> OnChainFL:
    return cast(
        OnChainFL, SimpleNamespace(node=node, task=task, devices=["a", "b"], registered=registered)
    )


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        ([], "name at least one aggregator task"),
        ([shard(1, 2, [0]), shard(1, 2, [0, 1])], r"EDs \[0\] are registered in task 1"),
        ([shard(1, 2, [0]), shard(3, 2, [1])], "task 1 does not share task 0's node"),
        ([shard(1, 2, [0]), shard(1, 4, [1])], "task 1 does not share task 0's node"),
    ],
)
def test_tasks_that_do_not_share_one_population_are_refused_before_any_work(
    tasks: list[OnChainFL], message: str
) -> None:
    """Several aggregator tasks in one Flower run must share the node, the EDs' data and
    accounts, and register each ED once (nothing is funded or started before the check)."""
    with pytest.raises(ConfigError, match=message):
        run_flower_tasks(tasks, 1)
