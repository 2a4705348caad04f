"""The reference lock-out, found by ``scripts/bench_fl.py`` (issue 9), and its fix.

Found: on non-IID data an honest ED whose classes the others lack can send an update opposed to
the round's mean, so its sign-flipped update agrees with the mean and is accepted. Once enough
such updates were averaged, the reference (the last mean update) pointed where no honest ED
agreed, every honest update was rejected, and a round with no accepted update kept the
reference: the task was locked out for good (the benchmark saw 0 of 15-19 updates accepted for
the rest of a run, at the model's initial accuracy). This test was a strict xfail first.

Fixed: a round that accepts nothing and rejects by the reference rule drops the reference when
the next round opens (``ReferenceCleared``); that round is judged without it, and its mean
becomes the new reference.
"""

from __future__ import annotations

import numpy as np

from chain_node.node import ChainNode
from tbcim.blockchain.codec import Verdict

from .test_aggregator_attacks import D, make_task


def test_a_reference_every_honest_ed_opposes_does_not_lock_them_out_for_ever() -> None:
    node = ChainNode.embedded(n_servers=2, n_devices=4, seed=0)
    rng = np.random.default_rng(0)
    captured = np.zeros(D, dtype=np.int64)
    captured[0] = 1_000  # the reference after the attackers' takeover
    client = make_task(node, [10] * 4, reference=captured, round_blocks=3)
    honest_direction = -captured  # what the honest EDs' data actually asks for
    verdicts = []
    for _ in range(3):
        updates = {
            device: honest_direction + rng.integers(-50, 51, D) for device in node.devices[:4]
        }
        round_ = client.open_round(node.servers[0])
        subs = client.submit_round(round_, updates)
        client.wait_for_deadline(round_)
        verdicts.append({s.verdict for s in subs})
        if Verdict.ACCEPTED in verdicts[-1]:
            client.aggregate(round_, node.servers[-1])
    assert verdicts == [{Verdict.REFERENCE_COSINE}, {Verdict.ACCEPTED}, {Verdict.ACCEPTED}]
    (cleared,) = client.contract.events.ReferenceCleared().get_logs(from_block=0)
    assert cleared.args.round == 1
    reference = client.global_model().reference  # the honest mean of round 2 (round 3's)
    assert reference is not None and reference[0] < 0


def test_a_round_that_accepts_something_keeps_the_reference_rule_armed() -> None:
    """Only a round with no accepted update drops the reference: one honest ED agreeing with
    it is enough to keep it (and to reject the opposed ones again next round)."""
    node = ChainNode.embedded(n_servers=2, n_devices=4, seed=1)
    reference = np.zeros(D, dtype=np.int64)
    reference[0] = 1_000
    client = make_task(node, [10] * 4, reference=reference, round_blocks=3)
    updates = {device: -reference for device in node.devices[:3]}
    updates[node.devices[3]] = reference + 7
    round_ = client.open_round(node.servers[0])
    subs = client.submit_round(round_, updates)
    client.wait_for_deadline(round_)
    client.aggregate(round_, node.servers[-1])
    assert sorted(s.verdict for s in subs) == [Verdict.ACCEPTED] + [Verdict.REFERENCE_COSINE] * 3
    client.open_round(node.servers[0])
    assert not client.contract.events.ReferenceCleared().get_logs(from_block=0)
    assert bool(client.contract.functions.hasReference().call())
