"""Several aggregator tasks in one Flower run (issue 13's population larger than one aggregator
takes): the oracle is each task run alone on the in-process engine, which must give the same
accepted sets and global-model hashes round by round."""

from __future__ import annotations

from typing import Any

import pytest

from chain_node.anvil import running_anvil
from chain_node.node import ChainNode
from tbcim.errors import ConfigError
from tbcim.fl.config import FLConfig
from tbcim.fl.flower.engine import FlowerOptions, flower_devices, run_flower_tasks
from tbcim.fl.onchain import ChainRound, split_population
from tbcim.fl.runner import ChainConfig
from tbcim.fl.task import build_task

# xdist_group: every Flower test on one test worker, so Ray starts once (tests/conftest.py).
pytestmark = [pytest.mark.anvil, pytest.mark.xdist_group("ray")]

N_ES, N_EDS, N_TASKS, ROUNDS, SEED = 2, 6, 2, 2, 13
OWNERS = [ed % N_ES for ed in range(N_EDS)]


def population(url: str, flower: bool) -> list[Any]:
    task = build_task(FLConfig(lr=0.1, local_epochs=1, seed=SEED), n_eds=N_EDS)
    node = ChainNode.connect(url, n_servers=N_ES, n_devices=0 if flower else N_EDS, seed=SEED)
    chain = ChainConfig(servers=N_ES, eds_per_server=N_EDS // N_ES, commit_blocks=1)
    devices = flower_devices(SEED, N_EDS) if flower else None
    config = chain.aggregator(task.num_params)
    return split_population(node, task, OWNERS, config, N_TASKS, device_accounts=devices)


def view(record: ChainRound) -> tuple[Any, ...]:
    return record.participants, record.accepted, record.model_hash


def test_tasks_in_one_flower_run_match_each_task_run_alone(ray_runtime: None) -> None:
    with running_anvil(accounts=1 + N_ES + N_EDS) as url:
        alone = [[view(r) for r in fl.run(ROUNDS)] for fl in population(url, flower=False)]
    lines: list[int] = []
    with running_anvil(accounts=1 + N_ES) as url:
        tasks = population(url, flower=True)
        assert [t.registered for t in tasks] == [[0, 2, 4], [1, 3, 5]]
        addresses = {str(t.client.contract.address) for t in tasks}
        rounds = run_flower_tasks(
            tasks,
            ROUNDS,
            on_round=lambda rs: lines.append(len(rs)),
            options=FlowerOptions(workers=1),
        )
    assert len(addresses) == N_TASKS  # two contracts, two global models
    together = [[view(rounds[r][k]) for r in range(ROUNDS)] for k in range(N_TASKS)]
    assert together == alone
    assert lines == [N_TASKS] * ROUNDS
    for k in range(N_TASKS):
        assert all(r[k].accepted for r in rounds)
        assert rounds[0][k].model_hash != rounds[1][k].model_hash


def test_a_population_cannot_be_split_into_more_tasks_than_eds() -> None:
    node = ChainNode.embedded(n_servers=1, n_devices=2, seed=1)
    task = build_task(FLConfig(lr=0.1, local_epochs=1, seed=1), n_eds=2)
    config = ChainConfig(servers=1, eds_per_server=2).aggregator(task.num_params)
    with pytest.raises(ConfigError, match=r"tasks: must lie in \[1, 2\]"):
        split_population(node, task, [0, 0], config, 3)
