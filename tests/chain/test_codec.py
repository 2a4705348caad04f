"""The fixed-point codec and the contract's integer math agree bit for bit (hypothesis)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tbcim.blockchain.aggregator import AggregatorClient, AggregatorConfig
from tbcim.blockchain.codec import (
    INT16_MAX,
    INT16_MIN,
    FixedPointCodec,
    HistoryState,
    Verdict,
    fedavg,
    history_dot,
    history_increment,
    judge,
    norm_squared,
    pack_history,
    pack_update,
    unpack_history,
    unpack_update,
)
from tbcim.errors import ConfigError

D = 37  # three words, the last one padded
int16s = arrays(np.int64, D, elements=st.integers(INT16_MIN, INT16_MAX))
history_values = arrays(np.int64, D, elements=st.integers(-(2**31) + 2**16, 2**31 - 1 - 2**16))
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def client() -> AggregatorClient:
    from chain_node.node import ChainNode

    node = ChainNode.embedded(n_servers=1, n_devices=1, seed=0)
    return AggregatorClient.deploy(node, AggregatorConfig(num_params=D), node.servers[0])


# ------------------------------------------------------------------ pure Python


def test_layout_of_one_word() -> None:
    # lane p at bits [16p, 16p+16) of a big-endian word; zigzag 1 -> 2, -1 -> 1, -32768 -> 65535
    data = pack_update([1, -1, INT16_MIN] + [0] * 13)
    assert len(data) == 32
    assert data[-6:] == bytes.fromhex("ffff00010002")
    assert data[:-6] == bytes(26)


def test_history_layout_reverses_the_update_quads() -> None:
    values = np.arange(1, 17)
    data = pack_history(values)
    words = [int.from_bytes(data[i : i + 32], "big") for i in (0, 32)]
    lanes = [[((word >> (32 * q)) & 0xFFFFFFFF) // 2 for q in range(8)] for word in words]
    # word k lane L -> parameter k + 2 (L mod 2) + 4 (3 - L div 2) (zigzag 2v), 1-based here
    assert lanes[0] == [13, 15, 9, 11, 5, 7, 1, 3]
    assert lanes[1] == [14, 16, 10, 12, 6, 8, 2, 4]


@given(int16s)
def test_update_roundtrip(values: np.ndarray) -> None:
    assert unpack_update(pack_update(values), D).tolist() == values.tolist()


@given(history_values)
def test_history_roundtrip(values: np.ndarray) -> None:
    assert unpack_history(pack_history(values), D).tolist() == values.tolist()


@given(arrays(np.float64, 20, elements=st.floats(-7.9, 7.9)))
def test_quantize_is_within_half_a_step(x: np.ndarray) -> None:
    codec = FixedPointCodec(12)
    assert np.max(np.abs(codec.decode(codec.encode(x), x.size) - x)) <= codec.step / 2


def test_values_outside_the_range_raise_naming_the_index() -> None:
    codec = FixedPointCodec(12)
    with pytest.raises(ConfigError, match=r"update: value 8.5 at index 1 is outside the int16"):
        codec.quantize([0.0, 8.5], name="update")
    with pytest.raises(ConfigError, match="not finite"):
        codec.quantize([np.nan])
    with pytest.raises(ConfigError, match="frac_bits"):
        FixedPointCodec(16)
    with pytest.raises(ConfigError, match=r"value 32768 at index 0 is outside"):
        pack_update([2**15])
    with pytest.raises(ConfigError, match="must hold integers"):
        pack_update([0.5])


def test_packed_bytes_are_checked() -> None:
    with pytest.raises(ConfigError, match="expected 96 bytes, got 64"):
        unpack_update(bytes(64), D)
    with pytest.raises(ConfigError, match="padding lanes"):
        unpack_update(pack_update(np.ones(48, dtype=np.int64)), D)
    with pytest.raises(ConfigError, match="expected 192 bytes"):
        unpack_history(bytes(96), D)


@given(int16s)
def test_history_increment_is_a_quantised_unit_vector(w: np.ndarray) -> None:
    if not w.any():
        with pytest.raises(ConfigError, match="zero update"):
            history_increment(w, 2**14)
        return
    inc = history_increment(w, 2**14)
    assert np.max(np.abs(inc)) <= 2**14
    # each lane is within one unit of w_i * scale / |w| (floor of the norm, rounding)
    exact = w * 2**14 / math.isqrt(norm_squared(w))
    assert np.max(np.abs(inc - exact)) <= 1.0 + 1e-9


@given(
    sq=st.integers(0, 2**40),
    dot=st.integers(-(2**60), 2**60),
    n=st.integers(0, 50),
    norm_sum=st.integers(0, 2**30),
    eps=st.integers(-(10**6), 10**6),
)
def test_judge_matches_the_real_valued_rule(sq, dot, n, norm_sum, eps) -> None:
    scale = 2**14
    verdict = judge(
        sq, dot, n, norm_sum, epsilon_ppm=eps, norm_bound_ppm=3 * 10**6, unit_scale=scale
    )
    if sq == 0:
        assert verdict == Verdict.ZERO_UPDATE
        return
    if n == 0:
        assert verdict == Verdict.ACCEPTED
        return
    norm = math.sqrt(sq)
    if norm * n > 3 * norm_sum * (1 + 1e-12):
        assert verdict == Verdict.NORM_BOUND
    elif norm * n < 3 * norm_sum * (1 - 1e-12):
        mean_cos = dot / (n * scale * norm)
        if abs(mean_cos - eps / 1e6) > 1e-9:
            expected = Verdict.ACCEPTED if mean_cos >= eps / 1e6 else Verdict.COSINE
            assert verdict == expected


def test_fedavg_rounds_to_nearest_and_clamps() -> None:
    new, saturated = fedavg([0, 0, INT16_MAX], [[1, -1, 10], [2, -2, 10]], [1, 1])
    # means 1.5 -> 2 (ties up), -1.5 -> -1, 32767 + 10 clamps
    assert new.tolist() == [2, -1, INT16_MAX]
    assert saturated == 1
    with pytest.raises(ConfigError, match="data sizes"):
        fedavg([0], [[1]], [0])


# ------------------------------------------------------------------ contract vs Python


@FAST
@given(int16s)
def test_contract_decodes_and_encodes_like_python(client: AggregatorClient, v: np.ndarray) -> None:
    fns = client.contract.functions
    assert fns.decodeUpdate(pack_update(v)).call()[:D] == v.tolist()
    assert bytes(fns.encodeUpdate(v.tolist()).call()) == pack_update(v)


@FAST
@given(history_values)
def test_contract_decodes_history_like_python(client: AggregatorClient, h: np.ndarray) -> None:
    assert client.contract.functions.decodeHistory(pack_history(h)).call()[:D] == h.tolist()


@FAST
@given(int16s, history_values, st.booleans())
def test_contract_history_step_matches_python(
    client: AggregatorClient, w: np.ndarray, h: np.ndarray, empty: bool
) -> None:
    if empty:
        h = np.zeros(D, dtype=np.int64)
    packed_h = b"" if empty else pack_history(h)
    nxt, sq, dot = client.contract.functions.nextHistory(pack_update(w), packed_h).call()
    assert sq == norm_squared(w)
    assert dot == (0 if empty else history_dot(w, h))
    if w.any():
        state = HistoryState(D, values=h.copy(), accepted=1)
        state.accept(w, client.config.unit_scale)
        assert bytes(nxt) == pack_history(state.values)


@FAST
@given(
    st.lists(int16s, min_size=1, max_size=4),
    st.lists(st.integers(1, 2**40), min_size=4, max_size=4),
    int16s,
)
def test_contract_fedavg_matches_python(
    client: AggregatorClient, updates: list, weights: list, prev: np.ndarray
) -> None:
    weights = weights[: len(updates)]
    model, saturated = client.contract.functions.fedAvg(
        pack_update(prev), [pack_update(u) for u in updates], weights
    ).call()
    expected, expected_saturated = fedavg(prev, updates, weights)
    assert unpack_update(bytes(model), D).tolist() == expected.tolist()
    assert saturated == expected_saturated


@FAST
@given(
    sq=st.integers(0, 2**54),
    dot=st.integers(-(2**66), 2**66),
    n=st.integers(0, 2**15),
    norm_sum=st.integers(0, 2**40),
)
def test_contract_judge_matches_python(client: AggregatorClient, sq, dot, n, norm_sum) -> None:
    cfg = client.config
    expected = judge(
        sq,
        dot,
        n,
        norm_sum,
        epsilon_ppm=cfg.epsilon_ppm,
        norm_bound_ppm=cfg.norm_bound_ppm,
        unit_scale=cfg.unit_scale,
    )
    assert client.contract.functions.judge(sq, dot, n, norm_sum).call() == expected
