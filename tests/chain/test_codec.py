"""The fixed-point codec (tbcim/blockchain/codec.py) against numpy and brute-force oracles, and
against the contract's own integer steps, exposed by the stateless views of FLCodec.sol.

Contract-agreement tests call a deployed FLCodec on one module-scoped embedded chain; they are
bit-exact comparisons (history bytes, |w|^2, w.H, norm hint, FedAvg model and mean update).
The Python mirror is in turn checked against float oracles (np.dot, np.linalg.norm, a float
FedAvg), so a bug shared by both sides would still show.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pytest
from eth_abi import encode
from eth_utils import keccak
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from web3.contract import Contract

from chain_node.errors import ContractRevert
from chain_node.node import ChainNode
from tbcim.blockchain.codec import (
    INT16_MAX,
    INT16_MIN,
    INT32_MAX,
    MAX_UNIT_SCALE,
    FixedPointCodec,
    HistoryState,
    aggregation_weights,
    chunk_spans,
    chunked_hash,
    commitment,
    cosine_at_least,
    exact_dot,
    fedavg,
    history_increment,
    link,
    norm_hint,
    norm_squared,
    num_words,
    pack_history,
    pack_update,
    unpack_history,
    unpack_update,
    weighted_median,
)
from tbcim.errors import ConfigError

D = 37  # three words, the last one padded
UNIT_SCALES = (1, 7, 2**12, 2**16, MAX_UNIT_SCALE)
int16s = arrays(np.int64, D, elements=st.integers(INT16_MIN, INT16_MAX))
small16s = arrays(np.int64, D, elements=st.integers(-3, 3))
# |H + inc| must stay an int32 lane: |inc| <= unit_scale + 1 <= 2^24 + 1
history_values = arrays(np.int64, D, elements=st.integers(-(2**31) + 2**25, INT32_MAX - 2**25))
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MANY = settings(max_examples=300, deadline=None)


@pytest.fixture(scope="module")
def node() -> ChainNode:
    return ChainNode.embedded(n_servers=1, n_devices=1, seed=0)


@pytest.fixture(scope="module")
def flc(node: ChainNode) -> Contract:
    return node.deploy("FLCodec", sender=node.requester)


def reverts(node: ChainNode, fn: object) -> ContractRevert:
    """The decoded custom error of a view call that must revert."""
    with pytest.raises(ContractRevert) as info:
        node.call(fn)  # type: ignore[arg-type]
    return info.value


# ================================================================== pure Python: layout


def test_layout_of_one_word() -> None:
    """Lane p sits at bits [16p, 16p+16) of a big-endian word, zigzag coded: 1 -> 2, -1 -> 1,
    -32768 -> 65535. Catches a byte-order or lane-order change that both sides share."""
    data = pack_update([1, -1, INT16_MIN] + [0] * 13)
    assert len(data) == 32
    assert data[-6:] == bytes.fromhex("ffff00010002")
    assert data[:-6] == bytes(26)


def test_history_layout_reverses_the_update_quads() -> None:
    """History word k lane L holds parameter k + 2 (L mod 2) + 4 (3 - L div 2) (the MUL-based
    dot product reads them that way). Catches a reordering of the history lanes."""
    data = pack_history(np.arange(1, 17))
    words = [int.from_bytes(data[i : i + 32], "big") for i in (0, 32)]
    lanes = [[((word >> (32 * q)) & 0xFFFFFFFF) // 2 for q in range(8)] for word in words]
    assert lanes[0] == [13, 15, 9, 11, 5, 7, 1, 3]
    assert lanes[1] == [14, 16, 10, 12, 6, 8, 2, 4]


@given(arrays(np.int64, 16, elements=st.integers(INT16_MIN, INT16_MAX)))
def test_zigzag_gives_small_magnitudes_a_zero_high_byte(v: np.ndarray) -> None:
    """Zigzag (2v for v >= 0, -2v-1 for v < 0) is a bijection onto [0, 2^16) and a lane's
    high byte is zero exactly when -128 <= v <= 127 (cheap calldata). Catches a sign-magnitude
    or offset-binary encoding slipping in."""
    data = pack_update(v)
    lanes = [int.from_bytes(data[30 - 2 * p : 32 - 2 * p], "big") for p in range(16)]
    assert lanes == [2 * x if x >= 0 else -2 * x - 1 for x in v.tolist()]
    for x, z in zip(v.tolist(), lanes, strict=True):
        assert (z < 256) == (-128 <= x <= 127)


@given(int16s)
def test_update_roundtrip(values: np.ndarray) -> None:
    """unpack(pack(v)) == v for every int16 vector, with a padded last word."""
    assert unpack_update(pack_update(values), D).tolist() == values.tolist()


@given(history_values)
def test_history_roundtrip(values: np.ndarray) -> None:
    """unpack_history(pack_history(h)) == h for int32 lanes."""
    assert unpack_history(pack_history(values), D).tolist() == values.tolist()


def test_history_roundtrip_at_the_int32_edges() -> None:
    """The extreme int32 lanes survive the zigzag (-2^31 -> 2^32 - 1)."""
    h = np.array([-(2**31), INT32_MAX, -1, 0, 1] * 7 + [0, 0], dtype=np.int64)
    assert unpack_history(pack_history(h), D).tolist() == h.tolist()


@given(arrays(np.float64, 20, elements=st.floats(-7.9, 7.9)))
def test_quantize_is_within_half_a_step(x: np.ndarray) -> None:
    """FixedPointCodec round-trips a float within half a quantisation step."""
    codec = FixedPointCodec(12)
    assert np.max(np.abs(codec.decode(codec.encode(x), x.size) - x)) <= codec.step / 2


@given(st.integers(0, 15))
def test_codec_range_and_step(frac_bits: int) -> None:
    """step = 2^-f and the range is [-2^15, 2^15 - 1] steps; both ends quantise exactly and
    one step beyond raises."""
    codec = FixedPointCodec(frac_bits)
    assert codec.step == 2.0**-frac_bits
    ends = [codec.min_value, codec.max_value]
    assert codec.quantize(ends).tolist() == [INT16_MIN, INT16_MAX]
    assert codec.dequantize(codec.quantize(ends)).tolist() == ends
    with pytest.raises(ConfigError, match="outside the int16 range"):
        codec.quantize([codec.max_value + codec.step])


def test_values_outside_the_range_raise_naming_the_index() -> None:
    """Bad values name the vector, the index and the range."""
    codec = FixedPointCodec(12)
    with pytest.raises(ConfigError, match=r"update: value 8.5 at index 1 is outside the int16"):
        codec.quantize([0.0, 8.5], name="update")
    with pytest.raises(ConfigError, match=r"at index 0 is not finite"):
        codec.quantize([np.nan])
    with pytest.raises(ConfigError, match=r"at index 1 is not finite"):
        codec.quantize([0.0, -np.inf])
    with pytest.raises(ConfigError, match="non-empty 1-D"):
        codec.quantize(np.zeros((2, 2)))
    with pytest.raises(ConfigError, match="non-empty 1-D"):
        codec.quantize([])
    for bad in (16, -1):
        with pytest.raises(ConfigError, match="frac_bits"):
            FixedPointCodec(bad)
    with pytest.raises(ConfigError, match=r"value 32768 at index 0 is outside"):
        pack_update([2**15])
    with pytest.raises(ConfigError, match=r"value -32769 at index 1 is outside"):
        pack_update([0, -(2**15) - 1])
    with pytest.raises(ConfigError, match="must hold integers"):
        pack_update([0.5])
    with pytest.raises(ConfigError, match="history: value 2147483648"):
        pack_history([2**31])


def test_packed_bytes_are_checked() -> None:
    """Unpacking checks the byte length and that padding lanes are zero."""
    with pytest.raises(ConfigError, match="expected 96 bytes, got 64"):
        unpack_update(bytes(64), D)
    with pytest.raises(ConfigError, match="padding lanes"):
        unpack_update(pack_update(np.ones(48, dtype=np.int64)), D)
    with pytest.raises(ConfigError, match="expected 192 bytes"):
        unpack_history(bytes(96), D)
    with pytest.raises(ConfigError, match="num_params"):
        num_words(0)


# ================================================================== pure Python: chunks, hashes


@given(st.integers(1, 300), st.integers(1, 8))
def test_chunk_spans_tile_the_packed_update(num_params: int, chunk_words: int) -> None:
    """Chunks are contiguous, start at 0, end at the packed length, each has chunk_words
    words except possibly the last one."""
    spans = chunk_spans(num_params, chunk_words)
    total = num_words(num_params) * 32
    assert spans[0][0] == 0 and spans[-1][1] == total
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert all(end - start == 32 * chunk_words for start, end in spans[:-1])
    assert 0 < spans[-1][1] - spans[-1][0] <= 32 * chunk_words
    assert len(spans) == -(-num_words(num_params) // chunk_words)


def test_chunk_spans_reject_zero_words() -> None:
    with pytest.raises(ConfigError, match="chunk_words"):
        chunk_spans(10, 0)


@given(int16s, st.integers(1, 3))
def test_chunked_hash_is_the_keccak_chain_of_the_chunks(v: np.ndarray, chunk_words: int) -> None:
    """h_{j+1} = keccak(h_j || keccak(chunk j)), h_0 = 0; a history uses doubled spans.
    Oracle: the chain written out with eth_abi over slices of 32-byte words."""
    packed = pack_update(v)
    words = [packed[i : i + 32] for i in range(0, len(packed), 32)]
    h = bytes(32)
    for j in range(0, len(words), chunk_words):
        h = keccak(
            encode(["bytes32", "bytes32"], [h, keccak(b"".join(words[j : j + chunk_words]))])
        )
    spans = chunk_spans(D, chunk_words)
    assert chunked_hash(packed, spans) == h
    hist = pack_history(v)
    hwords = [hist[i : i + 64] for i in range(0, len(hist), 64)]
    hh = bytes(32)
    for j in range(0, len(hwords), chunk_words):
        chunk = keccak(b"".join(hwords[j : j + chunk_words]))
        hh = keccak(encode(["bytes32", "bytes32"], [hh, chunk]))
    assert chunked_hash(hist, spans, scale=2) == hh


def test_link_and_commitment_are_abi_encoded_keccaks() -> None:
    """link = keccak(abi.encode(chain, worker, chunkHash)); commitment = keccak(abi.encode(
    worker, round, updateHash)). Oracle: eth_abi.encode."""
    worker = "0x1eFF47bc3a10a45D4B230B5d10E37751FE6AA718"
    chain, chunk = keccak(b"chain"), keccak(b"chunk")
    assert link(chain, worker, chunk) == keccak(
        encode(["bytes32", "address", "bytes32"], [chain, worker, chunk])
    )
    assert commitment(worker, 7, chunk) == keccak(
        encode(["address", "uint256", "bytes32"], [worker, 7, chunk])
    )


# ================================================================== pure Python: history step


@given(int16s)
def test_norm_hint_is_the_floor_of_the_norm_times_2_16(w: np.ndarray) -> None:
    """norm_hint = floor(|w| 2^16) exactly: n^2 <= |w|^2 2^32 < (n+1)^2, and it agrees with
    the float norm."""
    sq = norm_squared(w)
    assert sq == int(np.dot(w, w))
    n = norm_hint(w)
    assert n * n <= sq << 32 < (n + 1) ** 2
    assert abs(n - np.linalg.norm(w.astype(float)) * 2**16) <= 1 + 1e-9 * n


def increment_bound(w: np.ndarray, unit_scale: int) -> float:
    """Per-lane bound on |inc - w unit_scale / |w||: half a unit of rounding twice, plus the
    norm hint's relative error 2^-16 / |w| times the lane's exact value."""
    return 1.0 + unit_scale * 2.0**-16 / math.sqrt(norm_squared(w)) + 1e-9


@settings(max_examples=200, deadline=None)
@given(int16s, st.sampled_from(UNIT_SCALES))
def test_history_increment_is_a_quantised_unit_vector(w: np.ndarray, unit_scale: int) -> None:
    """inc is w scaled to length unit_scale, within the rounding bound (float oracle); the zero
    update has no direction and raises."""
    if not w.any():
        with pytest.raises(ConfigError, match="zero update"):
            history_increment(w, unit_scale)
        return
    inc = history_increment(w, unit_scale)
    exact = w * unit_scale / np.linalg.norm(w.astype(float))
    assert np.max(np.abs(inc - exact)) <= increment_bound(w, unit_scale)
    assert np.all(np.abs(inc) <= unit_scale + 1)
    assert np.all(inc[w == 0] == 0)


@pytest.mark.parametrize("unit_scale", UNIT_SCALES[2:])
@pytest.mark.parametrize("tiny", [[1, 1, 1], [1], [-1, 1], [2, -1, 1, 1], [1] * 16, [-1] * 37])
def test_tiny_updates_add_one_unit_not_sqrt_k_units(tiny: list[int], unit_scale: int) -> None:
    """Issue 8 item 5: the old step divided by floor(|w|), so w = (1, 1, 1) added a vector
    sqrt(3) unit lengths long and tiny updates steered the history. Now the increment's
    length is unit_scale within rounding (relative error 2^-16 / |w| plus half a unit per
    lane)."""
    w = np.zeros(D, dtype=np.int64)
    w[: len(tiny)] = tiny
    inc = history_increment(w, unit_scale)
    length = float(np.linalg.norm(inc.astype(float)))
    k = len(tiny)
    slack = math.sqrt(k) + unit_scale * 2.0**-16 / math.sqrt(norm_squared(w))
    assert abs(length - unit_scale) <= slack
    if k > 1:  # the old bug: sqrt(k) units
        assert length < 1.01 * unit_scale < math.sqrt(k) * unit_scale * 0.99


def test_history_state_windows() -> None:
    """HistoryState: empty before the first acceptance (commitment 0, no bytes passed), a full
    window starts afresh with the new increment (no ED is locked out), window 0 is the rule
    off."""
    w = np.arange(D) - 18
    state = HistoryState(D, window=3)
    spans = chunk_spans(D, 1)
    assert not state.active and state.packed() == b"" and state.commitment(spans) == bytes(32)
    inc = history_increment(w, 2**12)
    state.accept(w, 2**12)
    assert state.count == 1 and state.active and state.values.tolist() == inc.tolist()
    assert state.commitment(spans) == chunked_hash(pack_history(inc), spans, scale=2)
    state.accept(w, 2**12)
    assert state.count == 2 and state.values.tolist() == (2 * inc).tolist()
    state.accept(w, 2**12)
    assert state.count == 3 and not state.active and state.packed() == b""
    state.accept(-w, 2**12)  # full window: starts afresh
    assert state.count == 1 and state.values.tolist() == history_increment(-w, 2**12).tolist()
    off = HistoryState(D, window=0)
    off.accept(w, 2**12)
    assert off.count == 0 and not off.values.any() and off.packed() == b""


# ================================================================== pure Python: decision rules


def float_cosine_pass(dot: int, eps_ppm: int, scale: int, sq: int, ref_sq: int) -> bool | None:
    """dot / (scale sqrt(sq ref_sq)) >= eps in floats; None when too close to call."""
    denom = scale * math.sqrt(sq) * math.sqrt(ref_sq)
    if denom == 0:
        return None
    cos = dot / denom
    if abs(cos - eps_ppm / 1e6) <= 1e-9 * max(1.0, abs(cos)):
        return None
    return cos >= eps_ppm / 1e6


@MANY
@given(int16s, int16s, st.integers(-(10**6), 10**6), st.sampled_from([0, 1, -1, 10**6, -(10**6)]))
def test_cosine_at_least_matches_the_float_cosine(
    w: np.ndarray, r: np.ndarray, eps: int, special: int
) -> None:
    """The reference rule w.r >= eps |w| |r|, decided on squares without a square root,
    agrees with np.dot / (norms) away from ties (including eps = 0 and +-1)."""
    for e in (eps, special):
        dot, sq, ref_sq = int(np.dot(w, r)), norm_squared(w), norm_squared(r)
        expected = float_cosine_pass(dot, e, 1, sq, ref_sq)
        if expected is not None:
            assert cosine_at_least(dot, e, 1, sq, ref_sq) == expected


def test_cosine_at_least_edge_cases() -> None:
    """Zero vectors pass (there is no direction to disagree with); cos = eps exactly passes;
    the sign cases of (dot, eps) are each decided right."""
    assert cosine_at_least(0, 500_000, 1, 0, 5)
    assert cosine_at_least(3, 600_000, 1, 5, 5)  # cos = 0.6 exactly
    assert not cosine_at_least(2, 600_000, 1, 5, 5)  # 0.4 < 0.6
    assert cosine_at_least(-2, -600_000, 1, 5, 5)  # -0.4 >= -0.6
    assert not cosine_at_least(-4, -600_000, 1, 5, 5)  # -0.8 < -0.6
    assert not cosine_at_least(-1, 0, 1, 5, 5)
    assert cosine_at_least(0, 0, 1, 5, 5)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(int16s, min_size=1, max_size=4),
    int16s,
    st.integers(-(10**6), 10**6),
    st.sampled_from([2**12, 2**14]),
)
def test_history_rule_is_the_papers_mean_cosine(
    past: list[np.ndarray], w: np.ndarray, eps: int, unit_scale: int
) -> None:
    """Section II-A: an update passes if the mean cosine with the ED's past accepted updates
    is at least eps. The contract decides w.H >= eps n unit_scale |w| with H the sum of
    quantised unit vectors; compare with the float mean cosine away from the threshold (the
    quantisation moves the cosine by at most sqrt(D) / unit_scale)."""
    past = [p for p in past if p.any()]
    assume(past and w.any())
    state = HistoryState(D, window=len(past) + 1)
    for p in past:
        state.accept(p, unit_scale)
    dot = exact_dot(w, state.values)
    sq = norm_squared(w)
    decided = cosine_at_least(dot, eps, state.count * unit_scale, sq, 1)
    wf = w.astype(float)
    mean_cos = np.mean([wf @ p / (np.linalg.norm(wf) * np.linalg.norm(p)) for p in past])
    if abs(mean_cos - eps / 1e6) > 2 * math.sqrt(D) / unit_scale:
        assert decided == (mean_cos >= eps / 1e6)


def brute_weighted_median(values: Sequence[int], weights: Sequence[int]) -> int:
    """The smallest value v whose weight of values <= v is at least half the total."""
    total = sum(weights)
    return min(
        v
        for v in values
        if 2 * sum(w for x, w in zip(values, weights, strict=True) if x <= v) >= total
    )


medians = st.lists(
    st.tuples(st.integers(0, 2**64), st.integers(0, 2**48 - 1)), min_size=1, max_size=12
).filter(lambda vw: sum(w for _, w in vw) > 0)


@MANY
@given(medians)
def test_weighted_median_matches_brute_force(pairs: list[tuple[int, int]]) -> None:
    """weighted_median == the brute-force definition, including zero weights and ties."""
    values, weights = [v for v, _ in pairs], [w for _, w in pairs]
    assert weighted_median(values, weights) == brute_weighted_median(values, weights)


def test_weighted_median_errors_and_examples() -> None:
    """Empty input, a weight missing, or a zero total raise; small worked examples."""
    assert weighted_median([5, 1, 3], [1, 1, 1]) == 3
    assert weighted_median([5, 1, 3], [1, 1, 10]) == 3
    assert weighted_median([5, 1, 3], [10, 1, 1]) == 5
    assert weighted_median([1, 2], [1, 1]) == 1  # exactly half reaches
    for values, weights in (([], []), ([1], []), ([1, 2], [0, 0])):
        with pytest.raises(ConfigError, match="weights"):
            weighted_median(values, weights)


def float_fedavg(prev: np.ndarray, updates: Sequence[np.ndarray], weights: Sequence[int]):
    """FedAvg in floats: prev + sum n_k w_k / sum n_k, clipped to int16."""
    n = np.array(weights, dtype=float)
    mean = n @ np.array(updates, dtype=float) / n.sum()
    return np.clip(prev + mean, INT16_MIN, INT16_MAX), mean


@MANY
@given(
    st.lists(
        st.tuples(st.integers(1, 2**40), st.integers(0, 2**20)), min_size=1, max_size=8
    ).filter(lambda nw: sum(w for _, w in nw) > 0),
    st.integers(10**6, 5 * 10**6),
    st.sampled_from([0, 10**6, 1_500_000, 3 * 10**6]),
)
def test_aggregation_weights_exclude_and_clip_around_the_median(
    pairs: list[tuple[int, int]], bound_ppm: int, clip_ppm: int
) -> None:
    """aggregation_weights: with M the brute-force weighted median norm, an update above
    k M weighs 0; the others weigh n c16 / 2^16 with the clipped norm |w| c16 / 2^16 at most
    c M and within one 2^-16 step of it (c16 = 2^16, unclipped, when clipping is off or
    |w| <= c M); the denominator is 2^16 times the included data."""
    norms, sizes = [v for v, _ in pairs], [w for _, w in pairs]
    weights, total = aggregation_weights(norms, sizes, bound_ppm, clip_ppm)
    median = brute_weighted_median(norms, sizes)
    included = [norm <= median * bound_ppm // 10**6 for norm in norms]
    assert total == sum(n for n, inc in zip(sizes, included, strict=True) if inc) << 16
    clip = median * clip_ppm // 10**6
    assert median in norms and sum(weights) <= total
    for norm, n, weight, inc in zip(norms, sizes, weights, included, strict=True):
        if not inc:
            assert weight == 0
        elif clip == 0 or norm <= clip:
            assert weight == n << 16
        elif n:
            factor = weight // n
            assert weight == n * factor and factor < 2**16
            assert factor * norm <= clip * 2**16 < (factor + 1) * norm


@settings(max_examples=100, deadline=None)
@given(
    st.lists(int16s, min_size=1, max_size=4),
    st.lists(st.integers(1, 2**20), min_size=4, max_size=4),
    int16s,
)
def test_fedavg_of_clipped_updates_matches_float_numpy(
    updates: list[np.ndarray], sizes: list[int], prev: np.ndarray
) -> None:
    """fedavg with aggregation_weights and its denominator is, within half a step, the float
    FedAvg of the norm-clipped updates, sum_k n_k min(1, c M / |w_k|) w_k / sum_k n_k over the
    included ones (the implicit zero update takes the clipped-off weight)."""
    sizes = sizes[: len(updates)]
    norms = [norm_hint(u) for u in updates]
    assume(all(norms))
    weights, total = aggregation_weights(norms, sizes, 3 * 10**6, 10**6)
    _, mean, _ = fedavg(prev, updates, weights, total)
    median = weighted_median(norms, sizes) / 2**16
    kept = [i for i, n in enumerate(norms) if n <= weighted_median(norms, sizes) * 3]
    scale = [min(1.0, median / math.sqrt(norm_squared(updates[i]))) for i in kept]
    data = float(sum(sizes[i] for i in kept))
    float_mean = sum(
        sizes[i] * s * updates[i].astype(float) for i, s in zip(kept, scale, strict=True)
    )
    # the clipping factor is floored to 2^-16 and |w| enters as its hint (error 2^-16 / |w|):
    # each clipped lane moves by at most |w_i| 2^-15
    largest = max(float(np.max(np.abs(u))) for u in updates)
    slack = 0.5 + largest * 2.0**-15 + 1e-9
    assert np.max(np.abs(mean - float_mean / data)) <= slack
    with pytest.raises(ConfigError, match="denominator"):
        fedavg(prev, updates, weights, sum(weights) - 1)


def test_fedavg_rounds_to_nearest_ties_up_and_clamps() -> None:
    """mean 1.5 -> 2, -1.5 -> -1 (ties up); 32767 + 10 clamps and is counted; zero weights
    (excluded updates) are allowed; bad weights raise."""
    new, mean, saturated = fedavg([0, 0, INT16_MAX], [[1, -1, 10], [2, -2, 10]], [1, 1])
    assert new.tolist() == [2, -1, INT16_MAX]
    assert mean.tolist() == [2, -1, 10]
    assert saturated == 1
    new, mean, saturated = fedavg([INT16_MIN, 0], [[-5, 9], [INT16_MAX, INT16_MAX]], [3, 0])
    assert new.tolist() == [INT16_MIN, 9] and mean.tolist() == [-5, 9] and saturated == 1
    with pytest.raises(ConfigError, match="data sizes"):
        fedavg([0], [[1]], [0])
    with pytest.raises(ConfigError, match="data sizes"):
        fedavg([0], [[1], [2]], [2, -1])
    with pytest.raises(ConfigError, match="one weight per update"):
        fedavg([0], [[1]], [1, 2])
    with pytest.raises(ConfigError, match="at least one update"):
        fedavg([0], [], [])


# ================================================================== contract vs Python


@FAST
@given(int16s)
def test_contract_decodes_and_encodes_like_python(flc: Contract, v: np.ndarray) -> None:
    """FLCodec.decodeUpdate / encodeUpdate == unpack_update / pack_update, bit for bit
    (padding lanes decode as zero, encode as zero)."""
    decoded = flc.functions.decodeUpdate(pack_update(v)).call()
    assert decoded[:D] == v.tolist() and decoded[D:] == [0] * (48 - D)
    assert bytes(flc.functions.encodeUpdate(v.tolist()).call()) == pack_update(v)


def test_contract_codec_errors(node: ChainNode, flc: Contract) -> None:
    """encodeUpdate names the out-of-range value and its index; the decoders reject a length
    that is not whole words; nextHistory rejects a bad unit scale or history length."""
    f = flc.functions
    err = reverts(node, f.encodeUpdate([0, 0, 2**15]))
    assert (err.error_name, err.error_args) == ("ValueOutOfRange", (2, 2**15))
    err = reverts(node, f.encodeUpdate([INT16_MIN - 1]))
    assert (err.error_name, err.error_args) == ("ValueOutOfRange", (0, INT16_MIN - 1))
    err = reverts(node, f.decodeUpdate(bytes(33)))
    assert (err.error_name, err.error_args) == ("WrongLength", (32, 33))
    err = reverts(node, f.decodeHistory(bytes(65)))
    assert (err.error_name, err.error_args) == ("WrongLength", (64, 65))
    packed = pack_update(np.ones(D, dtype=np.int64))
    for bad in (0, MAX_UNIT_SCALE + 1):
        err = reverts(node, f.nextHistory(packed, b"", bad))
        assert (err.error_name, err.error_args) == ("InvalidParameter", ("unitScale",))
    err = reverts(node, f.nextHistory(packed, bytes(64), 2**12))
    assert (err.error_name, err.error_args) == ("WrongLength", (192, 64))
    err = reverts(node, f.nextHistory(packed[:40], b"", 2**12))
    assert err.error_name == "WrongLength"
    err = reverts(node, f.referencePass(packed, packed[:64]))
    assert (err.error_name, err.error_args) == ("WrongLength", (96, 64))


@FAST
@given(history_values)
def test_contract_decodes_history_like_python(flc: Contract, h: np.ndarray) -> None:
    """FLCodec.decodeHistory == unpack_history (the reversed-quad layout)."""
    decoded = flc.functions.decodeHistory(pack_history(h)).call()
    assert decoded[:D] == h.tolist() and decoded[D:] == [0] * (48 - D)


def check_next_history(
    flc: Contract, w: np.ndarray, h: np.ndarray | None, unit_scale: int
) -> np.ndarray:
    """Call nextHistory and compare every output with the Python mirror; returns the
    contract's next history."""
    packed_h = b"" if h is None else pack_history(h)
    nxt, sq, dot, norm16 = flc.functions.nextHistory(pack_update(w), packed_h, unit_scale).call()
    assert sq == norm_squared(w) == int(np.dot(w, w))
    assert norm16 == norm_hint(w)
    assert dot == (0 if h is None else exact_dot(w, h))
    got = unpack_history(bytes(nxt), D)
    if not w.any():  # no direction: the history is unchanged
        assert got.tolist() == ([0] * D if h is None else h.tolist())
        return got
    state = HistoryState(D, window=3)
    if h is not None:
        state.values, state.count = h.copy(), 1
    state.accept(w, unit_scale)
    assert bytes(nxt) == pack_history(state.values)
    base = np.zeros(D, dtype=np.int64) if h is None else h
    assert got.tolist() == (base + history_increment(w, unit_scale)).tolist()
    return got


@FAST
@given(int16s, history_values, st.booleans(), st.sampled_from(UNIT_SCALES))
def test_contract_history_step_matches_python(
    flc: Contract, w: np.ndarray, h: np.ndarray, empty: bool, unit_scale: int
) -> None:
    """FLCodec.nextHistory (the SWAR pass FLAggregator runs) == HistoryState.accept /
    history_increment bit for bit, and |w|^2, w.H, the norm hint == numpy/isqrt, with and
    without a history, at unit scales from 1 to 2^24."""
    check_next_history(flc, w, None if empty else h, unit_scale)


@pytest.mark.parametrize(
    "w",
    [
        [1, 1, 1],
        [1],
        [-1],
        [INT16_MIN],
        [INT16_MAX, INT16_MIN],
        [1, -1] * 18 + [1],
        [0] * 36 + [-1],
        [0] * D,
    ],
    ids=["ones3", "one", "minus-one", "min", "max-min", "alternating", "last-lane", "zero"],
)
@pytest.mark.parametrize("unit_scale", [1, 2**12, MAX_UNIT_SCALE])
def test_contract_history_step_at_the_edges(flc: Contract, w: list[int], unit_scale: int) -> None:
    """Tiny and extreme updates at the extreme unit scales: bit-exact with Python, and the
    increment is unit_scale long within rounding (issue 8 item 5: w = (1, 1, 1) no longer adds
    sqrt(3) units). The zero update leaves the history unchanged."""
    v = np.zeros(D, dtype=np.int64)
    v[: len(w)] = w
    h = np.full(D, 5, dtype=np.int64)
    got = check_next_history(flc, v, h, unit_scale)
    if v.any():
        inc = (got - h).astype(float)
        k = int(np.count_nonzero(v))
        slack = math.sqrt(k) + unit_scale * 2.0**-16 / math.sqrt(norm_squared(v))
        assert abs(np.linalg.norm(inc) - unit_scale) <= slack


@FAST
@given(int16s, int16s, st.booleans())
def test_contract_reference_pass_matches_numpy(
    flc: Contract, w: np.ndarray, r: np.ndarray, empty: bool
) -> None:
    """FLCodec.referencePass: |w|^2 and w.r == np.dot (an empty reference is the zero vector)."""
    ref = b"" if empty else pack_update(r)
    sq, dot = flc.functions.referencePass(pack_update(w), ref).call()
    assert sq == int(np.dot(w, w))
    assert dot == (0 if empty else int(np.dot(w, r)))


@FAST
@given(int16s, int16s, st.integers(-(10**6), 10**6), st.sampled_from([1, 2**12, 5 * 2**24]))
def test_contract_cosine_rule_matches_python_and_floats(
    flc: Contract, w: np.ndarray, r: np.ndarray, eps: int, scale: int
) -> None:
    """FLCodec.cosineAtLeast == cosine_at_least, in the reference form (scale 1, |r|^2) and the
    history form (scale n unit_scale, refSq 1, dot = w.H), and both == the float cosine away
    from ties."""
    dot, sq, ref_sq = int(np.dot(w, r)), norm_squared(w), norm_squared(r)
    for args in ((dot, eps, 1, sq, ref_sq), (dot * 2**12, eps, scale, sq, 1)):
        got = flc.functions.cosineAtLeast(*args).call()
        assert got == cosine_at_least(*args)
        expected = float_cosine_pass(*args)
        if expected is not None:
            assert got == expected


@FAST
@given(medians)
def test_contract_weighted_median_matches_python_and_brute_force(
    flc: Contract, pairs: list[tuple[int, int]]
) -> None:
    """FLCodec.weightedMedian (the norm bound's insertion sort) == weighted_median == the
    brute-force definition, with ties and zero weights."""
    values, weights = [v for v, _ in pairs], [w for _, w in pairs]
    got = flc.functions.weightedMedian(values, weights).call()
    assert got == weighted_median(values, weights) == brute_weighted_median(values, weights)


def test_contract_weighted_median_errors(node: ChainNode, flc: Contract) -> None:
    """No values, a zero total weight, or mismatched lengths revert with a named error."""
    f = flc.functions
    for values, weights in (([], []), ([1, 2], [0, 0])):
        err = reverts(node, f.weightedMedian(values, weights))
        assert (err.error_name, err.error_args) == ("InvalidParameter", ("weights",))
    err = reverts(node, f.weightedMedian([1, 2], [1]))
    assert (err.error_name, err.error_args) == ("WrongLength", (2, 1))


def check_fedavg(
    flc: Contract, prev: np.ndarray, updates: Sequence[np.ndarray], weights: Sequence[int]
) -> None:
    """FLCodec.fedAvg == codec.fedavg bit for bit (model, mean update, clamped lanes), and
    within half a quantisation step of a float FedAvg."""
    model, mean, saturated = flc.functions.fedAvg(
        pack_update(prev), [pack_update(u) for u in updates], list(weights)
    ).call()
    model_v, mean_v = unpack_update(bytes(model), D), unpack_update(bytes(mean), D)
    expected_model, expected_mean, expected_saturated = fedavg(prev, updates, weights)
    assert model_v.tolist() == expected_model.tolist()
    assert mean_v.tolist() == expected_mean.tolist()
    assert saturated == expected_saturated
    float_model, float_mean = float_fedavg(prev, updates, weights)
    assert np.max(np.abs(mean_v - float_mean)) <= 0.5 + 1e-9
    assert np.max(np.abs(model_v - float_model)) <= 0.5 + 1e-9
    raw = prev + mean_v
    assert saturated == int(np.count_nonzero((raw < INT16_MIN) | (raw > INT16_MAX)))


@FAST
@given(
    st.lists(int16s, min_size=1, max_size=4),
    st.lists(st.integers(0, 2**46 - 1), min_size=4, max_size=4),
    int16s,
)
def test_contract_fedavg_matches_python_and_numpy(
    flc: Contract, updates: list[np.ndarray], weights: list[int], prev: np.ndarray
) -> None:
    """FedAvg on random models and data sizes up to 2^46 (zero weights = excluded updates):
    bit-exact with the mirror, within half a step of numpy, clamped lanes counted."""
    weights = weights[: len(updates)]
    assume(sum(weights) > 0)
    check_fedavg(flc, prev, updates, weights)


def test_contract_fedavg_clamps_at_the_int16_edges(flc: Contract) -> None:
    """Lanes pushed past +-2^15 clamp (and count); lanes landing exactly on the edges do not;
    ties round up; the largest total weight 2^48 - 1 stays exact."""
    prev = np.array([INT16_MAX, INT16_MIN, INT16_MAX, INT16_MIN, 0, 0, 100] + [0] * 30)
    up = np.array([1, -1, 0, 0, INT16_MAX, INT16_MIN, -100] + [3] * 30)
    down = np.array([1, -1, 0, 0, INT16_MAX, INT16_MIN, -100] + [-2] * 30)
    check_fedavg(flc, prev, [up], [1])
    check_fedavg(flc, prev, [up, down], [1, 1])  # ties: 0.5 -> 1
    check_fedavg(flc, prev, [up, down], [2**47, 2**47 - 1])
    check_fedavg(flc, prev, [up, down, down[::-1]], [0, 3, 0])
    extreme = np.full(D, INT16_MAX)
    check_fedavg(flc, extreme, [extreme, np.full(D, INT16_MIN)], [2**48 - 2, 1])
    model, _, saturated = flc.functions.fedAvg(pack_update(prev), [pack_update(up)], [1]).call()
    assert unpack_update(bytes(model), D)[:4].tolist() == [INT16_MAX, INT16_MIN] * 2
    assert saturated == 2


def test_contract_fedavg_errors(node: ChainNode, flc: Contract) -> None:
    """No update, zero or too large a total weight, mismatched lengths: named reverts."""
    f = flc.functions
    p = pack_update(np.zeros(D, dtype=np.int64))
    for updates, weights in (([], []), ([p], [0]), ([p, p], [2**47, 2**47])):
        err = reverts(node, f.fedAvg(p, updates, weights))
        assert (err.error_name, err.error_args) == ("InvalidParameter", ("weights",))
    err = reverts(node, f.fedAvg(p, [p], [1, 1]))
    assert (err.error_name, err.error_args) == ("WrongLength", (1, 2))
    err = reverts(node, f.fedAvg(p, [p[:64]], [1]))
    assert (err.error_name, err.error_args) == ("WrongLength", (96, 64))
