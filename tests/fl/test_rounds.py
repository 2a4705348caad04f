"""FedAvg in numpy, off-chain rounds on digits, the central ceiling, and a whole task."""

from __future__ import annotations

import numpy as np
import pytest

from tbcim.errors import ConfigError
from tbcim.fl.central import train_central
from tbcim.fl.config import FLConfig
from tbcim.fl.data import Dataset
from tbcim.fl.offchain import RoundRecord, fedavg, run_offchain
from tbcim.fl.task import FLTask, UpdateSource, build_task

# η = 0.1 rather than the paper's 0.01 keeps this a few-second test; the paper's values are
# the config defaults and are what the benchmark runs.
FAST = FLConfig(lr=0.1, local_epochs=2, min_samples=10, seed=0)


@pytest.fixture(scope="module")
def task(digits: Dataset) -> FLTask:
    return build_task(FAST, n_eds=10, dataset=digits)


def test_fedavg_is_the_data_weighted_mean_of_the_deltas() -> None:
    w = np.array([1.0, -1.0, 0.0])
    updates = {2: np.array([1.0, 0.0, 3.0]), 5: np.array([-1.0, 2.0, 0.0])}
    new = fedavg(w, updates, {2: 3, 5: 1, 9: 100})
    np.testing.assert_allclose(new, w + (3 * updates[2] + 1 * updates[5]) / 4)
    with pytest.raises(ConfigError, match=r"at least one update"):
        fedavg(w, {}, {})
    with pytest.raises(ConfigError, match=r"no data size for ED\(s\) \[5\]"):
        fedavg(w, updates, {2: 1})
    with pytest.raises(ConfigError, match=r"positive"):
        fedavg(w, updates, {2: 1, 5: 0})
    with pytest.raises(ConfigError, match=r"does not match the model"):
        fedavg(w, {0: np.zeros(2)}, {0: 1})


def test_task_is_consistent_and_reproducible(task: FLTask, digits: Dataset) -> None:
    assert len(task.clients) == 10 and task.num_params == 2410 and not task.adversaries
    for client, idx in zip(task.clients, task.partition.indices, strict=True):
        np.testing.assert_array_equal(client.y.numpy(), digits.y_train[idx])
        assert client.data_size == idx.size
    counts = np.bincount(digits.y_test[task.test_indices], minlength=10)
    assert np.all(np.abs(counts - counts.sum() * task.reference) < 1)
    again = build_task(FAST, n_eds=10, dataset=digits)
    np.testing.assert_array_equal(task.initial_params, again.initial_params)
    np.testing.assert_array_equal(task.partition.label_counts, again.partition.label_counts)
    np.testing.assert_array_equal(task.reference, again.reference)


def test_a_few_fedavg_rounds_on_digits_beat_chance_by_far(task: FLTask) -> None:
    start = task.evaluate(task.initial_params).accuracy
    seen: list[RoundRecord] = []
    w, records = run_offchain(task, rounds=4, on_round=seen.append)
    assert start < 0.25 and records[-1].accuracy > 0.6
    assert records[-1].accuracy > records[0].accuracy and seen == records
    assert all(r.averaged == tuple(range(10)) and not r.rejected for r in records)
    w2, _ = run_offchain(task, rounds=4)  # same seed, same model
    np.testing.assert_array_equal(w, w2)


def test_attackers_and_a_bad_update_in_an_undefended_round(digits: Dataset) -> None:
    cfg = FLConfig(lr=0.1, local_epochs=1, attack="sign_flip", attack_fraction=0.3, seed=1)
    t = build_task(cfg, n_eds=10, dataset=digits)
    assert len(t.adversaries) == 3
    subs = t.submissions(t.initial_params, 0, range(10))
    for ed, adv in t.adversaries.items():
        np.testing.assert_array_equal(subs[ed], -t.clients[ed].local_update(t.initial_params, 0))
        assert adv.submitted
    honest = [ed for ed in range(10) if ed not in t.adversaries]
    np.testing.assert_array_equal(
        subs[honest[0]], t.clients[honest[0]].local_update(t.initial_params, 0)
    )
    # A client that returns NaN is set aside with its reason; the others are averaged.
    bad = honest[1]
    t.clients[bad].local_update = lambda params, round: np.full(t.num_params, np.nan)  # type: ignore[method-assign,assignment]
    _, records = run_offchain(t, rounds=1)
    assert bad in records[0].rejected and "non-finite" in records[0].rejected[bad]
    assert len(records[0].averaged) == 9


def test_central_training_is_the_ceiling(task: FLTask) -> None:
    result = train_central(task, epochs=3)
    assert len(result.accuracy) == 3 and result.accuracy[-1] > 0.8
    np.testing.assert_array_equal(result.params, train_central(task, epochs=3).params)
    with pytest.raises(ConfigError, match=r"epochs"):
        train_central(task, epochs=0)


def test_label_flippers_get_flipped_data(digits: Dataset) -> None:
    cfg = FLConfig(attack="label_flip", attack_fraction=0.2, attack_start_round=3)
    t = build_task(cfg, n_eds=10, dataset=digits)
    ed = next(iter(t.adversaries))
    np.testing.assert_array_equal(t.clients[ed].labels_at(3), 9 - t.clients[ed].labels_at(0))
    other = next(e for e in range(10) if e not in t.adversaries)
    np.testing.assert_array_equal(t.clients[other].labels_at(3), t.clients[other].labels_at(0))


def test_a_round_only_averages_its_participants(task: FLTask) -> None:
    """EDs that cannot reach the chain (a failed ES) drop out and rejoin later."""
    down = {0, 1, 2}

    def participants(r: int) -> list[int]:
        return [ed for ed in range(10) if r != 1 or ed not in down]

    _, records = run_offchain(task, rounds=3, participants=participants)
    assert records[0].averaged == tuple(range(10))
    assert records[1].averaged == tuple(range(3, 10))
    assert records[2].averaged == tuple(range(10))
    # Round 1's model is FedAvg of the participants' deltas alone (oracle: numpy by hand).
    w0 = task.initial_params
    w1 = fedavg(w0, task.submissions(w0, 0, range(10)), dict(enumerate(task.data_sizes)))
    subs = task.submissions(w1, 1, range(3, 10))
    n = task.data_sizes[3:10].astype(float)
    by_hand = w1 + sum(n[i] * subs[ed] for i, ed in enumerate(range(3, 10))) / n.sum()
    w2, _ = run_offchain(task, rounds=2, participants=participants)
    np.testing.assert_allclose(w2, by_hand, rtol=0, atol=1e-12)
    _, idle = run_offchain(task, rounds=1, participants=lambda r: [])
    assert idle[0].averaged == () and idle[0].accuracy == task.evaluate(w0).accuracy


def test_task_is_an_update_source(task: FLTask) -> None:
    source: UpdateSource = task
    subs = source.submissions(task.initial_params, 0, [4, 2])
    assert sorted(subs) == [2, 4] and all(u.shape == (source.num_params,) for u in subs.values())


def test_a_copier_copies_an_update_of_the_previous_round_never_the_current_one(
    digits: Dataset,
) -> None:
    """Commit-reveal hides this round's updates until the copier has committed, so the task
    gives it the honest updates of the previous round: in round 0 it sends its own update, in
    round 1 exactly one of round 0's honest updates."""
    cfg = FLConfig(lr=0.1, local_epochs=1, attack="copy", attack_fraction=0.2, seed=1)
    task = build_task(cfg, n_eds=5, dataset=digits)
    (copier,) = task.adversaries
    twin = build_task(cfg, n_eds=5, dataset=digits)
    params = task.initial_params
    first = task.submissions(params, 0, range(5))
    own = twin.clients[copier].local_update(params, 0)
    np.testing.assert_array_equal(first[copier], own)
    second = task.submissions(params, 1, range(5))
    earlier = [first[ed] for ed in range(5) if ed != copier]
    current = [second[ed] for ed in range(5) if ed != copier]
    assert any(np.array_equal(second[copier], u) for u in earlier)
    assert not any(np.array_equal(second[copier], u) for u in current)
