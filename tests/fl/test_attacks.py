"""Attacks do what they say, by name, from their start round."""

from __future__ import annotations

import numpy as np
import pytest

from tbcim.errors import ConfigError
from tbcim.fl.attacks import (
    ATTACKS,
    Adversary,
    AttackContext,
    choose_attackers,
    flip_labels,
    get_attack,
)

W = np.random.default_rng(0).normal(size=200)
PEERS = {3: np.full(200, 0.5), 5: np.linspace(-1, 1, 200)}


def _ctx(**kw: object) -> AttackContext:
    return AttackContext(rng=np.random.default_rng(1), **kw)  # type: ignore[arg-type]


def test_registry_names_and_unknown_name() -> None:
    assert sorted(ATTACKS) == [
        "copy",
        "label_flip",
        "noise",
        "none",
        "replay",
        "scaling",
        "sign_flip",
    ]
    with pytest.raises(ConfigError, match=r"unknown attack 'ddos'; known: \['copy', 'label_flip'"):
        get_attack("ddos")


def test_sign_flip_scaling_and_none() -> None:
    np.testing.assert_array_equal(get_attack("sign_flip").tamper(W, _ctx()), -W)
    scaled = get_attack("scaling").tamper(W, _ctx())
    assert np.linalg.norm(scaled) == pytest.approx(10 * np.linalg.norm(W))
    np.testing.assert_allclose(scaled, 10 * W)
    np.testing.assert_array_equal(get_attack("scaling").tamper(W, _ctx(scale=3.0)), 3 * W)
    np.testing.assert_array_equal(get_attack("none").tamper(W, _ctx()), W)


def test_noise_has_the_honest_norm_and_no_signal() -> None:
    noise = get_attack("noise").tamper(W, _ctx())
    assert np.linalg.norm(noise) == pytest.approx(np.linalg.norm(W), rel=1e-12)
    cos = noise @ W / (np.linalg.norm(noise) * np.linalg.norm(W))
    assert abs(cos) < 4 / np.sqrt(W.size)  # a random direction
    assert np.all(get_attack("noise").tamper(np.zeros(5), _ctx()) == 0)


def test_replay_resubmits_the_latest_earlier_update_or_trains_once() -> None:
    old = [np.ones(200), 2 * np.ones(200)]
    np.testing.assert_array_equal(get_attack("replay").tamper(W, _ctx(previous=old)), old[-1])
    np.testing.assert_array_equal(get_attack("replay").tamper(W, _ctx()), W)


def test_copy_equals_a_peer_and_noisy_copy_is_close() -> None:
    copied = get_attack("copy").tamper(W, _ctx(peers=PEERS))
    assert any(np.array_equal(copied, p) for p in PEERS.values())
    noisy = get_attack("copy").tamper(W, _ctx(peers=PEERS, copy_noise=0.01))
    source = next(p for p in PEERS.values() if np.linalg.norm(noisy - p) < 0.02 * np.linalg.norm(p))
    assert np.linalg.norm(noisy - source) == pytest.approx(0.01 * np.linalg.norm(source))
    # No peer to copy: it replays (its honest update when it has no history).
    np.testing.assert_array_equal(get_attack("copy").tamper(W, _ctx()), W)
    old = [np.ones(200)]
    np.testing.assert_array_equal(get_attack("copy").tamper(W, _ctx(previous=old)), old[0])


def test_label_flip_poisons_data_not_the_update() -> None:
    spec = get_attack("label_flip")
    assert spec.poisons_labels and not get_attack("sign_flip").poisons_labels
    np.testing.assert_array_equal(spec.tamper(W, _ctx()), W)
    np.testing.assert_array_equal(flip_labels([0, 3, 9], 10), [9, 6, 0])
    with pytest.raises(ConfigError, match=r"0..9"):
        flip_labels([10], 10)


def test_adversary_switches_on_at_its_start_round_and_remembers() -> None:
    adv = Adversary(ed=2, attack="sign_flip", start_round=3)
    for r in range(5):
        out = adv.submit(r, W + r, PEERS)
        np.testing.assert_array_equal(out, W + r if r < 3 else -(W + r))
    assert adv.rounds_submitted == 5 and not adv.active(2) and adv.active(3)
    assert len(adv.submitted) == 1 and np.array_equal(adv.submitted[0], -(W + 4))
    two = Adversary(ed=2, attack="none", keep=2)
    for r in range(3):
        two.submit(r, W + r, PEERS)
    assert [float(u[0] - W[0]) for u in two.submitted] == [1.0, 2.0]


def test_mid_training_replayer_replays_its_last_honest_update() -> None:
    adv = Adversary(ed=1, attack="replay", start_round=2)
    outs = [adv.submit(r, W * (r + 1), PEERS) for r in range(4)]
    np.testing.assert_array_equal(outs[2], outs[1])
    np.testing.assert_array_equal(outs[3], outs[1])


def test_copier_never_copies_itself_and_is_order_independent() -> None:
    peers = {0: np.ones(3), 1: 2 * np.ones(3)}
    a = Adversary(ed=0, attack="copy", seed=4, copy_noise=0.1)
    b = Adversary(ed=0, attack="copy", seed=4, copy_noise=0.1)
    np.testing.assert_allclose(a.submit(0, np.zeros(3), peers), b.submit(0, np.zeros(3), peers))
    assert np.linalg.norm(a.submitted[0] - peers[1]) < 0.2 * np.linalg.norm(peers[1])
    alone = Adversary(ed=0, attack="copy")
    np.testing.assert_array_equal(alone.submit(0, np.full(3, 7.0), {0: np.ones(3)}), 7.0)


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"start_round": -1}, "fl.attack_start_round"),
        ({"scale": np.inf}, "fl.attack_scale"),
        ({"copy_noise": -0.1}, "fl.copy_noise"),
        ({"attack": "bogus"}, "fl.attack"),
        ({"keep": 0}, "keep: must remember"),
    ],
)
def test_adversary_errors(kw: dict, field: str) -> None:
    args = {"ed": 0, "attack": "sign_flip"} | kw
    with pytest.raises(ConfigError, match=field):
        Adversary(**args)


def test_choose_attackers() -> None:
    picked = choose_attackers(25, 0.2, np.random.default_rng(0))
    assert picked.size == 5 and np.unique(picked).size == 5 and picked.max() < 25
    assert np.all(np.diff(picked) > 0)
    assert choose_attackers(10, 0.0, np.random.default_rng(0)).size == 0
    assert choose_attackers(10, 1.0, np.random.default_rng(0)).tolist() == list(range(10))
    with pytest.raises(ConfigError, match=r"fl.attack_fraction"):
        choose_attackers(10, 1.5, np.random.default_rng(0))
    with pytest.raises(ConfigError, match=r"fl.n_eds"):
        choose_attackers(0, 0.5, np.random.default_rng(0))
