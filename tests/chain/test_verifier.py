"""The off-chain mirror of the aggregator (tbcim/blockchain/verifier.py) against the REAL
contract on the embedded chain: every verdict, logged integer, excluded ED, history window,
global model lane and reference lane must be equal, round by round."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest

from chain_node.node import ChainNode
from tbcim.blockchain.aggregator import AggregatorClient, AggregatorConfig
from tbcim.blockchain.codec import INT16_MAX, Verdict
from tbcim.blockchain.verifier import ContractVerifier, RoundResult
from tbcim.errors import ConfigError

D = 100  # 7 words; chunk_words=2 gives 4 chunks, the last one shorter


class Twin:
    """One aggregator on the embedded chain and its mirror, fed the same rounds."""

    def __init__(
        self,
        sizes: Sequence[int],
        initial: np.ndarray,
        reference: np.ndarray | None,
        seed: int = 0,
        **cfg: Any,
    ) -> None:
        n = len(sizes)
        self.node = ChainNode.embedded(n_servers=2, n_devices=n, seed=seed)
        settings = {
            "num_params": D,
            "max_workers": n,
            "chunk_words": 2,
            "commit_blocks": 1,
            "round_blocks": 3,
            **cfg,
        }
        self.config = AggregatorConfig(**settings)
        self.devices = [str(d) for d in self.node.devices[:n]]
        servers = self.node.servers
        owner = {d: servers[i % 2] for i, d in enumerate(self.devices)}
        declared = [sum(s for d, s in zip(self.devices, sizes, strict=True) if owner[d] == es)
                    for es in servers]  # fmt: skip
        self.client = AggregatorClient.deploy(
            self.node, self.config, servers, declared, publisher=self.node.requester
        )
        for device, size in zip(self.devices, sizes, strict=True):
            self.client.register_worker(owner[device], device, size)
        self.client.publish_initial_model(initial, reference, publisher=self.node.requester)
        self.mirror: ContractVerifier[str] = ContractVerifier(
            self.config, dict(zip(self.devices, sizes, strict=True)), initial, reference
        )

    def play(self, updates: Mapping[int, np.ndarray]) -> RoundResult[str]:
        """One round on chain and in the mirror (ED index -> int16 update, in submission
        order); asserts they agree and returns the mirror's result."""
        named = {self.devices[i]: u for i, u in updates.items()}
        client = self.client
        round_ = client.open_round(self.node.servers[0])
        subs = client.submit_round(round_, named)
        client.wait_for_deadline(round_)
        excluded: list[str] = []
        if any(s.accepted for s in subs):
            excluded = client.aggregate(round_, self.node.servers[-1]).excluded
        result = self.mirror.run_round(named)
        assert result.round == round_
        for s in subs:
            j = result.judgements[s.device]
            got = (j.verdict, j.norm_squared, j.history_dot, j.reference_dot, j.update_hash)
            assert got == (s.verdict, s.norm_squared, s.history_dot, s.reference_dot,
                           s.update_hash), s.device  # fmt: skip
        assert {d for d, v in result.verdicts.items() if v == Verdict.NORM_BOUND} == set(excluded)
        info = client.round_info(round_)
        assert info["included"] == len(result.included)
        assert info["saturated"] == result.saturated
        assert result.aggregated == info["closed"]
        chain = client.global_model()
        assert np.array_equal(chain.values, result.model)
        assert np.array_equal(chain.values, self.mirror.model)
        if result.reference is None:
            assert chain.reference is None
        else:
            assert chain.reference is not None
            assert np.array_equal(chain.reference, result.reference)
        for device in self.devices:
            mine = self.mirror.histories[device]
            onchain = bytes(client.contract.functions.historyHash(device).call())
            assert mine.commitment(client.spans) == onchain
            assert mine.count == client.worker(device)["historyCount"]
        return result


def unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal(D)
    return v / np.linalg.norm(v)


def q(x: np.ndarray) -> np.ndarray:
    return np.rint(x).astype(np.int64)


def test_scripted_rounds_match_the_contract_exactly() -> None:
    """Five EDs over five rounds, with the contract's thresholds eps_ref = 0, eps_hist = 0.3,
    window 2, k = 3, c = 1: a sign-flipper from its first round (reference rule), a scaled
    update (accepted, then excluded by the norm bound), a copy and a replay (duplicates), a
    zero update, an ED that switches after building an honest history (history rule), a full
    window that starts afresh instead of judging, a round where everything is rejected (skipped,
    nothing changes), and lanes that saturate at int16."""
    rng = np.random.default_rng(11)
    d, e = unit(rng), unit(rng)
    e = e - (e @ d) * d
    e /= np.linalg.norm(e)
    initial = q(rng.integers(-2000, 2000, D))
    initial[:3] = INT16_MAX - 5  # these lanes saturate once honest updates push them up
    d[:3] = np.abs(d[:3]) + 0.2
    twin = Twin(
        [120, 80, 200, 50, 150],
        initial,
        reference=q(300 * d),
        reference_epsilon=0.0,
        history_epsilon=0.3,
        history_window=2,
        norm_bound=3.0,
        clip=1.0,
    )

    def honest() -> np.ndarray:
        return q(300 * d + 15 * rng.standard_normal(D))

    def tilted(sign: float) -> np.ndarray:  # passes the reference rule either way
        return q(300 * d + sign * 300 * e + 15 * rng.standard_normal(D))

    a1 = honest()
    r1 = twin.play({0: a1, 1: honest(), 2: q(-300 * d), 3: 10 * honest(), 4: tilted(+1)})
    assert r1.verdicts == {
        twin.devices[0]: Verdict.ACCEPTED,
        twin.devices[1]: Verdict.ACCEPTED,
        twin.devices[2]: Verdict.REFERENCE_COSINE,
        twin.devices[3]: Verdict.NORM_BOUND,
        twin.devices[4]: Verdict.ACCEPTED,
    }
    assert r1.saturated > 0
    a2 = honest()
    r2 = twin.play({0: a2, 1: a2.copy(), 2: q(-300 * d), 3: np.zeros(D, np.int64), 4: tilted(+1)})
    assert [r2.verdicts[twin.devices[i]] for i in range(5)] == [
        Verdict.ACCEPTED,
        Verdict.DUPLICATE,
        Verdict.REFERENCE_COSINE,
        Verdict.ZERO_UPDATE,
        Verdict.ACCEPTED,
    ]
    # ED 4's window is full (2 accepted): its switched update starts a new window unjudged.
    # ED 1 switches after one accepted update to an update nearly orthogonal to it, which the
    # reference rule (eps 0) lets through and the history rule (0.3) catches. ED 0 replays.
    switched = tilted(-1)
    r3 = twin.play({0: a1, 1: q(30 * d + 300 * e), 4: switched, 3: honest()})
    assert [r3.verdicts[twin.devices[i]] for i in (0, 1, 4, 3)] == [
        Verdict.DUPLICATE,
        Verdict.HISTORY_COSINE,
        Verdict.ACCEPTED,
        Verdict.ACCEPTED,
    ]
    assert twin.mirror.histories[twin.devices[4]].count == 1
    assert r3.judgements[twin.devices[4]].history_dot == 0
    # Everything rejected (ED 2 by the reference rule): the round is skipped and the model
    # stays; the reference stays until the next round opens, which drops it (ReferenceCleared).
    before, ref_before = twin.mirror.model.copy(), twin.mirror.reference
    r4 = twin.play({0: a2, 2: q(-300 * d), 3: np.zeros(D, np.int64)})
    assert not r4.aggregated and r4.included == ()
    assert np.array_equal(r4.model, before)
    assert ref_before is not None and r4.reference is not None
    assert np.array_equal(r4.reference, ref_before)
    assert r4.verdicts[twin.devices[2]] == Verdict.REFERENCE_COSINE
    # ED 4 flips back against its new window (one update: `switched`): rejected, by its
    # history alone, since round 5 is judged without a reference.
    r5 = twin.play({i: honest() for i in range(4)} | {4: tilted(+1)})
    assert r5.verdicts[twin.devices[4]] == Verdict.HISTORY_COSINE
    assert all(j.reference_dot == 0 for j in r5.judgements.values())
    assert r5.aggregated and r5.reference is not None


def test_a_mean_that_rounds_to_zero_keeps_the_reference() -> None:
    """Reference rule off (eps_ref = -1), no clipping: +w and -w with equal data average to
    zero, so the model stays and the old reference is kept (on chain and in the mirror)."""
    w = np.zeros(D, np.int64)
    w[5] = 3
    ref = np.zeros(D, np.int64)
    ref[7] = 9
    twin = Twin([10, 10], np.zeros(D, np.int64), ref, reference_epsilon=-1.0, clip=0.0)
    result = twin.play({0: w, 1: -w})
    assert result.included == tuple(twin.devices)
    assert not np.any(result.model)
    assert result.reference is not None and np.array_equal(result.reference, ref)


@pytest.mark.parametrize("seed", [1])
def test_random_rounds_match_the_contract(seed: int) -> None:
    """Random thresholds and random updates (honest around a drifting direction, flipped,
    scaled, noise, small, copied) over three rounds, the whole update in one chunk: mirror and
    contract agree throughout."""
    rng = np.random.default_rng(seed)
    n = 6
    twin = Twin(
        [int(s) for s in rng.integers(1, 500, n)],
        q(rng.integers(-3000, 3000, D)),
        q(200 * unit(rng)) if rng.random() < 0.7 else None,
        seed=seed,
        chunk_words=0,
        reference_epsilon=float(rng.uniform(-0.3, 0.3)),
        history_epsilon=float(rng.uniform(-0.3, 0.5)),
        history_window=int(rng.integers(0, 4)),
        norm_bound=float(rng.uniform(1.0, 4.0)),
        clip=float(rng.choice([0.0, 1.0, rng.uniform(1.0, 3.0)])),
    )
    direction = unit(rng)
    for _ in range(3):
        direction = unit(rng) * 0.5 + direction
        base = 250 * direction / np.linalg.norm(direction)
        updates: dict[int, np.ndarray] = {}
        for i in rng.permutation(n):
            kind = rng.integers(6)
            if kind == 5 and updates:
                updates[int(i)] = next(iter(updates.values())).copy()
                continue
            scale = [1.0, -1.0, 8.0, 0.0, 0.01][min(int(kind), 4)]
            noise = 80 * rng.standard_normal(D) + (300 * rng.standard_normal(D) if kind == 3 else 0)
            updates[int(i)] = q(np.clip(scale * base + noise, -3000, 3000))
        twin.play(updates)


def at_cosine(u: np.ndarray, c: float, length: float, rng: np.random.Generator) -> np.ndarray:
    """An int16 vector of about ``length`` whose cosine with ``u`` is about ``c``."""
    u = u / np.linalg.norm(u)
    p = unit(rng)
    p = p - (p @ u) * u
    p /= np.linalg.norm(p)
    return q(length * (c * u + np.sqrt(1 - c * c) * p))


def near(value: float, rng: np.random.Generator) -> float:
    """Within 0.2 %-2 % of ``value``, above or below at random."""
    return value * (1 + rng.choice([-1, 1]) * rng.uniform(0.002, 0.02))


def test_verdicts_at_the_reference_threshold_match_the_contract() -> None:
    """Ten updates whose cosine with the bootstrap reference lies within 0.002-0.02 of
    eps_ref = 0.2, on both sides: the mirror decides each exactly as the contract."""
    rng = np.random.default_rng(5)
    ref = unit(rng)
    twin = Twin([100] * 10, np.zeros(D, np.int64), q(3000 * ref), reference_epsilon=0.2,
                history_window=0)  # fmt: skip
    result = twin.play({i: at_cosine(ref, near(0.2, rng), 8000, rng) for i in range(10)})
    assert set(result.verdicts.values()) == {Verdict.ACCEPTED, Verdict.REFERENCE_COSINE}


def test_verdicts_at_the_history_threshold_and_the_norm_bound_match_the_contract() -> None:
    """Reference rule off, window 2, eps_hist = 0.4, k = 2. Round 1: five EDs of length about
    8000 and four at about twice that (within 2 %): some above the bound, some not. Round 2:
    each ED's update has cosine within 2 % of 0.4 with its first one, on either side."""
    rng = np.random.default_rng(6)
    twin = Twin([100] * 9, np.zeros(D, np.int64), None, reference_epsilon=-1.0,
                history_epsilon=0.4, history_window=2, norm_bound=2.0)  # fmt: skip
    lengths = [8000.0] * 5 + [near(16000.0, rng) for _ in range(4)]
    first = {i: q(length * unit(rng)) for i, length in enumerate(lengths)}
    r1 = twin.play(first)
    outliers = {r1.verdicts[twin.devices[i]] for i in range(5, 9)}
    assert outliers == {Verdict.ACCEPTED, Verdict.NORM_BOUND}
    second = {i: at_cosine(first[i].astype(float), near(0.4, rng), 8000, rng) for i in first}
    r2 = twin.play(second)
    assert set(r2.verdicts.values()) >= {Verdict.ACCEPTED, Verdict.HISTORY_COSINE}


def test_bad_input_is_named() -> None:
    config = AggregatorConfig(num_params=D, max_workers=2)
    zero = np.zeros(D, np.int64)
    with pytest.raises(ConfigError, match="data_sizes"):
        ContractVerifier(config, {"a": 0}, zero)
    with pytest.raises(ConfigError, match="initial model"):
        ContractVerifier(config, {"a": 1}, np.zeros(D - 1, np.int64))
    mirror = ContractVerifier(config, {"a": 1}, zero)
    with pytest.raises(ConfigError, match="quantised integers"):
        mirror.run_round({"a": np.zeros(D)})
    with pytest.raises(ConfigError, match="must lie in"):
        mirror.run_round({"a": np.full(D, 40_000)})
    with pytest.raises(ConfigError, match="not a registered ED"):
        mirror.run_round({"b": zero})
