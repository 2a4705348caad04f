"""FL rounds through the off-chain mirror of the contract (tbcim/fl/verified.py) give the chain's
global-model hashes and verdicts."""

from __future__ import annotations

import pytest

from chain_node.node import ChainNode
from tbcim.blockchain.aggregator import AggregatorConfig
from tbcim.errors import ConfigError
from tbcim.fl.config import FLConfig
from tbcim.fl.data import Dataset
from tbcim.fl.onchain import OnChainFL
from tbcim.fl.task import build_task
from tbcim.fl.verified import run_verified

N_EDS, N_ES = 6, 3
OWNERS = [ed % N_ES for ed in range(N_EDS)]


@pytest.mark.parametrize(
    ("attack", "start", "history_epsilon"),
    [("sign_flip", 0, 0.05), ("scaling", 1, 0.7)],
)
def test_two_rounds_through_the_mirror_equal_the_chain(
    digits: Dataset, attack: str, start: int, history_epsilon: float
) -> None:
    """Same task, same seed: two rounds on the embedded chain (OnChainFL) and two through the
    mirror give the same model hash per round and the same included and rejected EDs, with a
    sign-flipper from round 0 (reference rule) or a scaler switching on in round 1 (norm
    bound), on non-IID data (a strict history rule, 0.7, also rejects an honest ED)."""
    cfg = FLConfig(lr=0.1, local_epochs=2, attack=attack, attack_start_round=start, seed=4)
    config = AggregatorConfig(
        num_params=build_task(cfg, n_eds=N_EDS, dataset=digits).num_params,
        max_workers=N_EDS,
        commit_blocks=1,
        round_blocks=2,
        history_epsilon=history_epsilon,
    )
    node = ChainNode.embedded(n_servers=N_ES, n_devices=N_EDS, seed=4)
    chain = OnChainFL(node, build_task(cfg, n_eds=N_EDS, dataset=digits), OWNERS, config)
    on_chain = chain.run(2)
    _, mirrored = run_verified(build_task(cfg, n_eds=N_EDS, dataset=digits), config, 2)
    assert [r.model_hash for r in mirrored] == [r.model_hash for r in on_chain]
    assert [r.accepted for r in mirrored] == [r.accepted for r in on_chain]
    assert [r.rejected for r in mirrored] == [r.rejected for r in on_chain]
    assert [r.accuracy for r in mirrored] == [r.accuracy for r in on_chain]
    reasons = {why for r in mirrored for why in r.rejected.values()}
    expected = {"sign_flip": {"REFERENCE_COSINE"}, "scaling": {"NORM_BOUND", "HISTORY_COSINE"}}
    assert reasons == expected[attack]  # the comparison covers every kind of rejection


def test_bad_arguments_are_named(digits: Dataset) -> None:
    task = build_task(FLConfig(seed=1), n_eds=N_EDS, dataset=digits)
    with pytest.raises(ConfigError, match="num_params"):
        run_verified(task, AggregatorConfig(num_params=task.num_params + 1), 1)
    with pytest.raises(ConfigError, match="rounds"):
        run_verified(task, AggregatorConfig(num_params=task.num_params), 0)
