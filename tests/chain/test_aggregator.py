"""FLAggregator, the task-level hardened aggregator, on the embedded chain (issue 8).

Happy paths against numpy oracles (FedAvg, the mean update as the next reference), and one test
per finding of issue 8: each docstring says what the old per-ES contract let through.
Bad inputs and their reverts are in ``test_aggregator_reverts.py``; the codec's agreement with
the contract in ``test_codec.py``; the size limits in ``test_limits.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from chain_node.compiler import compile_contracts
from chain_node.node import ChainNode
from tbcim.blockchain.aggregator import AggregatorClient, AggregatorConfig, Submission
from tbcim.blockchain.codec import (
    INT16_MAX,
    Verdict,
    aggregation_weights,
    fedavg,
    norm_hint,
    pack_update,
)
from tbcim.blockchain.smoke import numpy_fedavg

D = 40
SIZES = (30, 50, 70, 90, 60, 40)
FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures"


def make_task(
    node: ChainNode,
    sizes: Sequence[int] = SIZES,
    *,
    reference: np.ndarray | None = None,
    **cfg: float,
) -> AggregatorClient:
    """A task shared by the node's ESs, EDs registered round-robin, initial model published."""
    devices = node.devices[: len(sizes)]
    owner = {d: node.servers[i % len(node.servers)] for i, d in enumerate(devices)}
    declared = [
        sum(s for d, s in zip(devices, sizes, strict=True) if owner[d] == es) or 1
        for es in node.servers
    ]
    settings = {
        "num_params": D,
        "chunk_words": 1,
        "max_workers": len(sizes),
        "round_blocks": 2,
        "commit_blocks": 0,  # on in its own test; off here to keep the rounds short
    }
    config = AggregatorConfig(**{**settings, **cfg})  # type: ignore[arg-type]
    client = AggregatorClient.deploy(node, config, node.servers, declared, publisher=node.requester)
    for device, size in zip(devices, sizes, strict=True):
        client.register_worker(owner[device], device, size)
    initial = np.random.default_rng(7).integers(-2000, 2000, config.num_params)
    client.publish_initial_model(initial, reference, publisher=node.requester)
    return client


def run_round(
    client: AggregatorClient, updates: dict[str, np.ndarray]
) -> tuple[list[Submission], list[str]]:
    """Open, commit and submit, aggregate (by the last ES); returns outcomes and exclusions."""
    node = client.node
    round_ = client.open_round(node.servers[0])
    subs = client.submit_round(round_, updates)
    client.wait_for_deadline(round_)
    aggregation = client.aggregate(round_, node.servers[-1])
    return subs, aggregation.excluded


def honest(
    rng: np.random.Generator, direction: np.ndarray, devices: Sequence[str]
) -> dict[str, np.ndarray]:
    """Non-IID-like honest updates: a shared direction plus large per-ED noise."""
    return {
        d: np.rint(direction + rng.normal(0, 0.6 * np.abs(direction).mean(), D)).astype(np.int64)
        for d in devices
    }


def verdicts(subs: list[Submission]) -> dict[str, Verdict]:
    return {s.device: s.verdict for s in subs}


@pytest.fixture
def node() -> ChainNode:
    return ChainNode.embedded(n_servers=2, n_devices=len(SIZES), seed=3)


def test_fedavg_of_included_updates_matches_numpy_and_becomes_the_reference(
    node: ChainNode,
) -> None:
    """Several chunks, two ESs: the chain's model is the codec's clipped FedAvg bit for bit,
    within one step of float FedAvg of the norm-clipped updates (numpy_fedavg, which shares no
    code with the contract's integers), and the reference the EDs read next is the round's
    mean update. With clipping off it is plain FedAvg within half a step."""
    for clip in (1.0, 0.0):
        task_node = ChainNode.embedded(n_servers=2, n_devices=len(SIZES), seed=3)
        client = make_task(task_node, clip=clip)
        rng = np.random.default_rng(0)
        direction = rng.normal(0, 300, D)
        devices = task_node.devices
        for _ in range(2):
            previous = client.global_model().values
            updates = honest(rng, direction, devices)
            subs, excluded = run_round(client, updates)
            accepted = [s.device for s in subs if s.accepted]
            assert len(accepted) >= 5 and not excluded
            sizes = [SIZES[devices.index(d)] for d in accepted]
            norms = [norm_hint(updates[d]) for d in accepted]
            config = client.config
            weights, total = aggregation_weights(
                norms, sizes, round(config.norm_bound * 1e6), round(clip * 1e6)
            )
            model, mean, _ = fedavg(previous, [updates[d] for d in accepted], weights, total)
            onchain = client.global_model()
            assert np.array_equal(onchain.values, model)
            assert onchain.reference is not None and np.array_equal(onchain.reference, mean)
            exact = numpy_fedavg(
                previous.astype(float),
                [updates[d].astype(float) for d in accepted],
                sizes,
                norm_bound=config.norm_bound,
                clip=clip,
            )
            assert np.max(np.abs(onchain.values - exact)) <= (1.0 if clip else 0.5)
        assert client.num_chunks == 3


def test_attacker_from_its_first_round_is_rejected_once_a_reference_exists(node: ChainNode) -> None:
    """Item 1: with 37.5 % of the data weight, an update opposite to the honest direction was
    accepted three rounds running by the old own-history rule and saturated every lane. Now the
    shared reference (the last global update) rejects it from round 2 on, and no lane saturates."""
    sizes = (30, 30, 30, 54)  # the attacker (last) holds 54 / 144 = 37.5 %
    client = make_task(node, sizes, reference_epsilon=0.5, history_epsilon=0.5)
    rng = np.random.default_rng(1)
    direction = rng.normal(0, 400, D)
    devices = node.devices[:4]
    attacker = devices[-1]
    for round_ in range(1, 4):
        updates = honest(rng, direction, devices[:3])
        updates[attacker] = -np.rint(direction + rng.normal(0, 5, D)).astype(np.int64)
        subs, _ = run_round(client, updates)
        outcome = verdicts(subs)
        assert all(outcome[d] == Verdict.ACCEPTED for d in devices[:3])
        expected = Verdict.ACCEPTED if round_ == 1 else Verdict.REFERENCE_COSINE
        assert outcome[attacker] == expected
    assert np.max(np.abs(client.global_model().values)) < INT16_MAX


def test_initial_reference_rejects_the_attacker_in_round_one(node: ChainNode) -> None:
    """Item 1 with a bootstrap reference published with the initial model: round 1 is checked."""
    rng = np.random.default_rng(2)
    direction = rng.normal(0, 400, D)
    client = make_task(node, reference=np.rint(direction).astype(np.int64))
    updates = honest(rng, direction, node.devices[:-1])
    updates[node.devices[-1]] = -np.rint(direction).astype(np.int64)
    subs, _ = run_round(client, updates)
    assert verdicts(subs)[node.devices[-1]] == Verdict.REFERENCE_COSINE
    assert sum(s.accepted for s in subs) == len(SIZES) - 1


def test_slowly_turning_attacker_is_rejected_before_it_turns_against_the_task(
    node: ChainNode,
) -> None:
    """Item 1: an attacker that tilts each update just inside its own-history threshold went from
    cosine +1 to -0.998 with the honest direction, every update accepted. The shared reference
    stops it: no update of it with cosine below epsilon to the honest mean is ever accepted."""
    eps = 0.2
    client = make_task(node, reference_epsilon=eps, history_epsilon=eps)
    rng = np.random.default_rng(3)
    direction = rng.normal(0, 400, D)
    orthogonal = rng.normal(0, 400, D)
    orthogonal -= orthogonal @ direction / (direction @ direction) * direction
    orthogonal *= np.linalg.norm(direction) / np.linalg.norm(orthogonal)
    attacker = node.devices[-1]
    rejected_at = None
    for step in range(5):
        angle = step * np.pi / 4  # 0, 45, 90, 135, 180 degrees
        updates = honest(rng, direction, node.devices[:-1])
        updates[attacker] = np.rint(np.cos(angle) * direction + np.sin(angle) * orthogonal).astype(
            np.int64
        )
        subs, _ = run_round(client, updates)
        cos_true = float(
            updates[attacker]
            @ direction
            / np.linalg.norm(updates[attacker])
            / np.linalg.norm(direction)
        )
        accepted = verdicts(subs)[attacker] == Verdict.ACCEPTED
        if accepted:
            assert cos_true > eps - 0.3  # the reference is the noisy honest mean, not `direction`
        elif rejected_at is None:
            rejected_at = step
        if cos_true < 0:
            assert not accepted
    assert rejected_at is not None and rejected_at <= 2


def test_an_orthogonal_update_is_rejected_by_the_default_thresholds(node: ChainNode) -> None:
    """Item 1: the old client's default epsilon = 0 accepted an update orthogonal to the history.
    The defaults now have epsilon > 0 for both rules."""
    config = AggregatorConfig(num_params=D)
    assert config.reference_epsilon > 0 and config.history_epsilon > 0
    client = make_task(
        node, reference_epsilon=config.reference_epsilon, history_epsilon=config.history_epsilon
    )
    rng = np.random.default_rng(4)
    direction = rng.normal(0, 400, D)
    run_round(client, honest(rng, direction, node.devices))
    reference = client.global_model().reference
    assert reference is not None
    probe = rng.normal(0, 400, D)
    probe -= probe @ reference / (reference @ reference) * reference
    updates = honest(rng, direction, node.devices[:-1])
    updates[node.devices[-1]] = np.rint(probe).astype(np.int64)
    subs, _ = run_round(client, updates)
    assert verdicts(subs)[node.devices[-1]] == Verdict.REFERENCE_COSINE


def test_copies_are_rejected(node: ChainNode) -> None:
    """Item 4: resubmitting another device's update in the same round, or one's own earlier
    update, was accepted, counted in FedAvg and would have been paid. Both are duplicates now."""
    client = make_task(node, commit_blocks=0)
    rng = np.random.default_rng(5)
    direction = rng.normal(0, 400, D)
    first = honest(rng, direction, node.devices)
    run_round(client, first)
    a, b = node.devices[0], node.devices[1]
    second = honest(rng, direction, node.devices)
    second[b] = second[a].copy()  # b copies a in the same round (a submits first)
    second[node.devices[2]] = first[node.devices[2]]  # a replay of its own earlier update
    subs, _ = run_round(client, second)
    outcome = verdicts(subs)
    assert outcome[a] == Verdict.ACCEPTED
    assert outcome[b] == Verdict.DUPLICATE
    assert outcome[node.devices[2]] == Verdict.DUPLICATE


def test_commit_reveal_stops_a_noisy_copy(node: ChainNode) -> None:
    """Item 4: a lazy device copies another's revealed update with a little noise, which no
    exact-hash check catches. With commit-reveal it must commit before anyone reveals, so its
    reveal does not match its commitment."""
    client = make_task(node, commit_blocks=2, round_blocks=4)
    rng = np.random.default_rng(6)
    direction = rng.normal(0, 400, D)
    run_round(client, honest(rng, direction, node.devices))
    round_ = client.open_round(node.servers[0])
    updates = honest(rng, direction, node.devices)
    lazy = node.devices[-1]
    own = updates.pop(lazy)
    subs = client.submit_round(round_, updates)  # everyone else commits and reveals
    victim = node.devices[0]
    copy = updates[victim] + rng.integers(-1, 2, D)
    # The lazy device committed to its own (unrevealed) work in time, then reveals the copy.
    plan = client._plan(lazy, client._values(copy), pack_update(client.global_model().reference))
    fn = client._submit_fn(round_, plan, 0, client.num_chunks)
    receipt = node.transact(fn, sender=lazy, role="ed", round=round_)
    rejected = client.contract.events.UpdateRejected().process_receipt(receipt)
    assert [Verdict(e.args.verdict) for e in rejected] == [Verdict.NOT_COMMITTED]
    assert all(s.accepted for s in subs)
    del own


def test_a_relayed_submission_cannot_halt_the_round(node: ChainNode) -> None:
    """Item 2: a worker that submits through a relay contract had its update accepted, but its
    bytes existed only inside an internal call, so aggregate could not be assembled and
    openRound reverted RoundStillOpen forever. The bytes are now in the UpdateChunks log."""
    node.use_artifacts({**compile_contracts(), **compile_contracts(FIXTURES)})
    relay = node.deploy("Relay", sender=node.devices[-1])
    sizes = SIZES[:-1]
    devices = node.devices[: len(sizes)]
    declared = [1000, 1000]
    config = AggregatorConfig(
        num_params=D, chunk_words=1, max_workers=len(SIZES), round_blocks=3, commit_blocks=0
    )
    client = AggregatorClient.deploy(node, config, node.servers, declared, publisher=node.requester)
    for i, (device, size) in enumerate(zip(devices, sizes, strict=True)):
        client.register_worker(node.servers[i % 2], device, size)
    client.register_worker(node.servers[0], relay.address, 40)
    client.publish_initial_model(np.zeros(D, dtype=np.int64), publisher=node.requester)
    rng = np.random.default_rng(8)
    direction = rng.normal(0, 400, D)
    round_ = client.open_round(node.servers[0])
    client.submit_round(round_, honest(rng, direction, devices))
    relayed = np.rint(direction).astype(np.int64)
    plan = client._plan(relay.address, relayed, b"")
    data = client._submit_fn(round_, plan, 0, client.num_chunks)._encode_transaction_data()
    node.transact(
        relay.functions.forward(client.contract.address, data), sender=node.devices[-1], role="ed"
    )
    assert client.worker(relay.address)["acceptedRound"] == round_
    client.wait_for_deadline(round_)
    client.aggregate(round_, node.servers[1])
    assert client.round_info(round_)["closed"]
    assert client.open_round(node.servers[0]) == round_ + 1


def test_a_failed_es_stalls_nothing(node: ChainNode) -> None:
    """Item 7: an aggregator belonged to one ES and only it could open and aggregate. Now, with
    ES 1 down (its EDs silent, it never aggregates), the round closes with ES 0's EDs, and once
    every ES is silent anyone may aggregate after the grace period."""
    client = make_task(node, grace_blocks=2)
    rng = np.random.default_rng(9)
    direction = rng.normal(0, 400, D)
    alive = [d for i, d in enumerate(node.devices) if i % 2 == 0]  # ES 0's EDs
    subs, _ = run_round(client, honest(rng, direction, alive))
    assert sorted(s.device for s in subs if s.accepted) == sorted(alive)
    round_ = client.open_round(node.servers[0])
    client.submit_round(round_, honest(rng, direction, alive))
    info = client.round_info(round_)
    client.wait_until_after(info["deadline"] + 2)  # both ESs are down now
    client.aggregate(round_, node.requester)  # anyone, after the grace period
    assert client.global_model().round == round_


def test_scaled_update_is_excluded_by_the_weighted_median_norm_bound(node: ChainNode) -> None:
    """Item 1 (scaling): a x10 update in the honest direction passes every cosine rule; the norm
    bound against the round's data-weighted median leaves it out of FedAvg."""
    client = make_task(node, norm_bound=3.0)
    rng = np.random.default_rng(10)
    direction = rng.normal(0, 200, D)
    updates = honest(rng, direction, node.devices)
    scaled = node.devices[2]
    updates[scaled] = np.clip(updates[scaled] * 10, -(2**15), 2**15 - 1)
    subs, excluded = run_round(client, updates)
    assert verdicts(subs)[scaled] == Verdict.ACCEPTED
    assert excluded == [scaled]


def test_the_history_window_restarts_instead_of_locking_a_device_out(node: ChainNode) -> None:
    """Item 6: a device that reached maxHistory was locked out for good. With a window of 2 the
    history starts afresh and every honest update keeps being accepted."""
    client = make_task(node, history_window=2)
    rng = np.random.default_rng(11)
    direction = rng.normal(0, 400, D)
    for _ in range(3):
        subs, _ = run_round(client, honest(rng, direction, node.devices))
        assert all(s.accepted for s in subs)
    assert client.worker(node.devices[0])["historyCount"] in (1, 2)


def test_the_same_seed_gives_the_same_model_hashes() -> None:
    """Determinism: two fresh chains, the same seed and updates, the same global-model hashes."""
    hashes = []
    for _ in range(2):
        node = ChainNode.embedded(n_servers=2, n_devices=len(SIZES), seed=3)
        client = make_task(node)
        rng = np.random.default_rng(12)
        direction = rng.normal(0, 400, D)
        run_round(client, honest(rng, direction, node.devices))
        hashes.append(client.global_model().model_hash)
    assert hashes[0] == hashes[1]


def test_g_e_is_the_mean_gas_per_ed_per_round_on_the_aggregator(node: ChainNode) -> None:
    """Item 8: g_e averaged an ED's submit with its market withdrawal. It is now the mean over
    (ED, round) of that ED's gas on the aggregator in the round (commitment and chunks)."""
    client = make_task(node)
    rng = np.random.default_rng(13)
    direction = rng.normal(0, 400, D)
    per_round = []
    for _ in range(2):
        subs, _ = run_round(client, honest(rng, direction, node.devices))
        per_round += [s.gas_used for s in subs]
    assert node.ledger.g_e() == pytest.approx(np.mean(per_round))
    assert len(per_round) == 2 * len(SIZES)
