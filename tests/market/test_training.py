"""A strategy run end to end on the embedded chain: only the hired EDs register and train."""

from __future__ import annotations

import pytest

from chain_node.errors import ContractRevert
from chain_node.node import ChainNode
from tbcim.market.training import TrainingConfig, TrainingRun, run_training

SMALL = {
    "fl": {"lr": 0.1, "local_epochs": 1, "global_rounds": 2, "attack": "sign_flip", "seed": 3},
    "chain": {"servers": 2},
    "selection": {"strategy": "greedy", "min_eds": 3, "max_eds": 4},
}


@pytest.fixture(scope="module")
def greedy_run() -> TrainingRun:
    config = TrainingConfig.from_dict(SMALL)
    return run_training(config, lambda n: ChainNode.embedded(n_servers=2, n_devices=n, seed=3))


def test_only_the_hired_eds_register_and_train(greedy_run: TrainingRun) -> None:
    """Greedy hires half of each ES's 3-4 candidates; the others are not workers of the
    aggregator (data size 0 on chain), never take part, and the contract refuses them."""
    run = greedy_run
    chain = run.chain
    assert 6 <= run.candidates <= 8
    assert 0 < len(run.workers) < run.candidates
    for record in run.records:
        assert set(record.participants) == set(run.workers)
        assert set(record.accepted) <= set(run.workers)
    sizes = chain.task.data_sizes
    for ed in range(run.candidates):
        on_chain = chain.client.worker(chain.devices[ed])["dataSize"]
        assert on_chain == (int(sizes[ed]) if ed in run.workers else 0)
    outsider = next(ed for ed in range(run.candidates) if ed not in run.workers)
    round_ = chain.client.open_round(chain.servers[0])
    with pytest.raises(ContractRevert) as err:
        chain.node.transact(
            chain.client.contract.functions.commit(round_, bytes(32)),
            sender=chain.devices[outsider],
        )
    assert err.value.error_name == "NotRegistered"


def test_the_declared_data_of_each_es_is_its_workers_data(greedy_run: TrainingRun) -> None:
    run = greedy_run
    sizes = run.chain.task.data_sizes
    for s in range(len(run.chain.servers)):
        hired = sum(int(sizes[ed]) for ed in run.workers if run.owners[ed] == s)
        assert run.chain.client.contract.functions.declaredData(s).call() == max(hired, 1)
