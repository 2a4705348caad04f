"""FL rounds through the aggregator contract (issue 9, rounds on chain): PyTorch clients on
non-IID digits, every update a transaction, the model read back from the chain."""

from __future__ import annotations

import numpy as np
import pytest

from chain_node.anvil import running_anvil
from chain_node.node import ChainNode
from tbcim.blockchain.aggregator import AggregatorClient, AggregatorConfig
from tbcim.blockchain.codec import Verdict
from tbcim.blockchain.smoke import numpy_fedavg
from tbcim.errors import ConfigError
from tbcim.fl.config import FLConfig
from tbcim.fl.data import Dataset
from tbcim.fl.offchain import fedavg
from tbcim.fl.onchain import ChainRound, OnChainFL
from tbcim.fl.task import FLTask, build_task

# η = 0.1 and 2 local epochs keep the test short; the paper's values are the config defaults.
N_EDS, N_ES = 6, 3
OWNERS = [ed % N_ES for ed in range(N_EDS)]


def make_fl(task: FLTask, seed: int = 0, clip: float = 1.0, bootstrap: bool = True) -> OnChainFL:
    node = ChainNode.embedded(n_servers=N_ES, n_devices=N_EDS, seed=seed)
    short = AggregatorConfig(
        num_params=task.num_params, max_workers=N_EDS, commit_blocks=1, round_blocks=2, clip=clip
    )
    return OnChainFL(node, task, OWNERS, short, bootstrap)


@pytest.fixture(scope="module")
def sign_flip_task(digits: Dataset) -> FLTask:
    # IID data: a scripted scenario where honest updates agree (the non-IID detection and
    # false-positive rates against epsilon are measured by the benchmark, not asserted here).
    cfg = FLConfig(
        lr=0.1, local_epochs=2, partition="iid", attack="sign_flip", attack_fraction=0.2, seed=3
    )
    return build_task(cfg, n_eds=N_EDS, dataset=digits)


def test_rounds_on_chain_match_numpy_fedavg_reject_attackers_and_learn(
    sign_flip_task: FLTask,
) -> None:
    """A sign-flipper from its first round is rejected in every round (the bootstrap reference
    arms the rule in round 1); honest EDs are accepted; accuracy rises; with ES 1 down its EDs
    submit nothing and the round still closes."""
    task = sign_flip_task
    (attacker,) = task.adversaries
    fl = make_fl(task)
    records: list[ChainRound] = []
    start = task.evaluate(fl.global_params()).accuracy
    for r, down in enumerate([set(), set(), {1}]):
        record = fl.run_round(r, down)
        records.append(record)
        live = [ed for ed in range(N_EDS) if OWNERS[ed] not in down]
        assert record.participants == tuple(live)
        assert set(record.accepted) <= set(live)
        assert attacker not in record.accepted
        assert {ed for ed in live if ed != attacker} <= set(record.accepted)
        assert fl.client.global_model().round == record.chain_round
    assert records[0].rejected[attacker] == Verdict.REFERENCE_COSINE.name
    assert records[2].failed_servers == (1,)
    assert all(OWNERS[ed] != 1 for ed in records[2].participants)
    assert records[-1].accuracy > start + 0.2


def test_the_chain_model_is_numpy_fedavg_of_the_accepted_updates(digits: Dataset) -> None:
    """One round, recomputed independently: each ED's delta from the chain's initial model,
    quantised, averaged in numpy, equals the chain's model within one step: plain FedAvg with
    clipping off, and FedAvg of the updates clipped to the median norm with the default."""
    cfg = FLConfig(lr=0.1, local_epochs=1, seed=5)
    for clip in (0.0, 1.0):
        fl = make_fl(build_task(cfg, n_eds=N_EDS, dataset=digits), seed=5, clip=clip)
        codec = fl.client.codec
        start = fl.global_params()
        twin = build_task(cfg, n_eds=N_EDS, dataset=digits)
        deltas = twin.submissions(start, 0, range(N_EDS))
        record = fl.run_round(0)
        assert len(record.accepted) >= N_EDS - 1
        quantised = [codec.dequantize(codec.quantize(deltas[ed])) for ed in record.accepted]
        sizes = [int(twin.data_sizes[ed]) for ed in record.accepted]
        if clip == 0.0:
            expected = fedavg(start, dict(enumerate(quantised)), dict(enumerate(map(float, sizes))))
        else:
            expected = numpy_fedavg(start, quantised, sizes, norm_bound=3.0, clip=clip)
        assert np.max(np.abs(fl.global_params() - expected)) <= codec.step


def test_same_seed_same_hashes_even_with_the_python_copy_tampered(digits: Dataset) -> None:
    """Determinism down to the hashes on chain, and no Python-side shortcut: run A's client
    copy of the model is corrupted after round 0, yet its next round trains from the model the
    contract committed to, so both runs (same seed, from scratch) give the same model hashes,
    one per round, with an attacker and a failed ES."""
    cfg = FLConfig(lr=0.1, local_epochs=1, attack="scaling", attack_fraction=0.2, seed=7)
    tampered = make_fl(build_task(cfg, n_eds=N_EDS, dataset=digits), seed=7)
    clean = make_fl(build_task(cfg, n_eds=N_EDS, dataset=digits), seed=7)
    runs = (tampered, clean)
    firsts = [fl.run_round(0) for fl in runs]
    kept = tampered.client._latest
    assert kept is not None
    kept.values[:] = 0  # corrupt the Python copy in place
    assert np.array_equal(tampered.global_params(), clean.global_params())
    seconds = [fl.run_round(1, down={2}) for fl in runs]
    hashes = {
        name: [a.model_hash, b.model_hash]
        for name, a, b in zip(("tampered", "clean"), firsts, seconds, strict=True)
    }
    assert hashes["tampered"] == hashes["clean"]
    assert len(set(hashes["clean"])) == 2


def test_without_the_bootstrap_reference_round_one_is_unscreened(sign_flip_task: FLTask) -> None:
    """The same sign-flipper passes round 1 when no bootstrap reference is published (no
    direction to compare with yet), and is rejected once the first mean update exists."""
    task = sign_flip_task
    (attacker,) = task.adversaries
    fl = make_fl(task, bootstrap=False)
    first, second = fl.run_round(0), fl.run_round(1)
    assert first.accepted == tuple(range(N_EDS))
    assert second.rejected[attacker] == Verdict.REFERENCE_COSINE.name


def test_the_bootstrap_reference_is_the_requesters_update_on_validation_data(
    sign_flip_task: FLTask,
) -> None:
    """The reference published with the initial model is the requester's quantised delta; the
    requester trains on validation images only (no test image, no ED's image)."""
    task = sign_flip_task
    fl = make_fl(task)
    codec = fl.client.codec
    published = fl.client.global_model().reference
    assert published is not None
    assert np.array_equal(published, codec.quantize(task.bootstrap_reference()))
    val = task.dataset.x_val[task.validation_indices]
    assert task.requester.data_size == len(task.validation_indices) > 0
    assert np.array_equal(task.requester.x.numpy(), val)


def test_anvil_gives_the_same_global_model_hashes_as_py_evm(digits: Dataset) -> None:
    """A short run on a real external node (anvil, revm) and on the embedded py-evm chain:
    same seed, same attacker, same failed ES, so the same global-model hash every round."""
    cfg = FLConfig(lr=0.1, local_epochs=1, attack="sign_flip", attack_fraction=0.2, seed=11)
    embedded = make_fl(build_task(cfg, n_eds=N_EDS, dataset=digits), seed=11)
    with running_anvil(accounts=1 + N_ES + N_EDS) as url:
        node = ChainNode.connect(url, n_servers=N_ES, n_devices=N_EDS, seed=11)
        config = AggregatorConfig(
            num_params=embedded.task.num_params, max_workers=N_EDS, commit_blocks=1, round_blocks=2
        )
        external = OnChainFL(node, build_task(cfg, n_eds=N_EDS, dataset=digits), OWNERS, config)
        hashes = [
            [fl.run_round(r, down).model_hash for fl in (embedded, external)]
            for r, down in enumerate([set(), {2}])
        ]
    assert all(a == b for a, b in hashes)
    assert hashes[0][0] != hashes[1][0]


def test_the_submission_window_grows_to_fit_the_chains_blocks(digits: Dataset) -> None:
    """On 8M-gas blocks sixteen submissions of the digits model (about 0.63M gas each) cannot
    share one block. Deployed with a one-block window, OnChainFL widens it to what the
    submissions need, and every honest ED gets in although the submissions span blocks."""
    n_eds = 16
    task = build_task(FLConfig(lr=0.1, local_epochs=1, seed=2), n_eds=n_eds, dataset=digits)
    node = ChainNode.embedded(n_servers=N_ES, n_devices=n_eds, seed=2, block_gas_limit=8_000_000)
    tight = AggregatorConfig(
        num_params=task.num_params, max_workers=n_eds, commit_blocks=1, round_blocks=1
    )
    owners = [ed % N_ES for ed in range(n_eds)]
    fl = OnChainFL(node, task, owners, tight, bootstrap=False)
    assert fl.client.config.round_blocks > 1
    record = fl.run_round(0)
    assert record.accepted == tuple(range(n_eds))
    blocks = {e.block for e in node.ledger.entries if e.function == "submit"}
    assert len(blocks) > 1


def test_a_window_too_short_for_the_submissions_is_refused_before_any_is_sent(
    digits: Dataset,
) -> None:
    task = build_task(FLConfig(lr=0.1, local_epochs=1, seed=2), n_eds=N_EDS, dataset=digits)
    node = ChainNode.embedded(n_servers=N_ES, n_devices=N_EDS, seed=2, block_gas_limit=8_000_000)
    config = AggregatorConfig(
        num_params=task.num_params, max_workers=N_EDS, commit_blocks=1, round_blocks=1
    )
    client = AggregatorClient.deploy(
        node, config, node.servers, [10_000] * N_ES, publisher=node.requester
    )
    for ed in range(N_EDS):
        client.register_worker(node.servers[OWNERS[ed]], node.devices[ed], 50)
    codec = client.codec
    client.publish_initial_model(codec.quantize(task.initial_params), publisher=node.requester)
    round_ = client.open_round(node.servers[0])
    updates = {
        node.devices[ed]: np.zeros(task.num_params, dtype=np.int64) + 1 for ed in range(N_EDS)
    }
    with pytest.raises(ConfigError) as err:
        client.submit_round(round_, updates)
    assert err.value.field == "round_blocks"
    assert not [e for e in node.ledger.entries if e.function in ("commit", "submit")]


@pytest.mark.parametrize(
    ("attack", "verdict", "first_caught"),
    [("scaling", Verdict.NORM_BOUND, 0), ("copy", Verdict.DUPLICATE, 1)],
)
def test_scaled_and_copying_attackers_are_rejected_and_honest_eds_accepted(
    digits: Dataset, attack: str, verdict: Verdict, first_caught: int
) -> None:
    """Scripted, from the attacker's first round: a ×10 update is left out by the norm bound in
    every round; a copier has nothing to copy in its first round (it sends its own update) and
    from then on resends an update already accepted, rejected as a duplicate. Every honest ED
    is included in every round."""
    cfg = FLConfig(
        lr=0.1, local_epochs=1, partition="iid", attack=attack, attack_fraction=0.2, seed=3
    )
    task = build_task(cfg, n_eds=N_EDS, dataset=digits)
    (attacker,) = task.adversaries
    fl = make_fl(task)
    for r in range(3):
        record = fl.run_round(r)
        assert set(record.accepted) >= set(range(N_EDS)) - {attacker}
        if r >= first_caught:
            assert record.rejected[attacker] == verdict.name
            assert attacker not in record.accepted
