"""Fixed-point codec and integer mirror of ``contracts/FLAggregator.sol`` (TBCIM section II-A).

The contract and this module agree bit for bit:

* **Updates, models and references**: fixed-point int16 values ``q = round(x * 2^frac_bits)``,
  16 lanes per 256-bit word, lane ``p`` at bits ``[16p, 16p+16)``, each lane zigzag coded
  (``2v`` for ``v >= 0``, ``-2v-1`` for ``v < 0``) so small magnitudes of either sign have a
  zero high byte (calldata costs 4 gas per zero byte, 16 per non-zero byte). Words are
  big-endian 32-byte ABI words; lanes past ``num_params`` in the last word are zero.
* **Chunks**: chunk ``j`` holds words ``[j * chunk_words, (j + 1) * chunk_words)`` (the last one
  may be shorter); it is the unit of submission and aggregation. A vector's hash is the chain
  ``h_{j+1} = keccak(h_j, keccak(chunk j))`` with ``h_0 = 0`` (:func:`chunked_hash`).
* **History** ``H``: the running sum of the ED's accepted updates in its current window, each
  scaled to integer length ``unit_scale`` (a quantised unit vector), as int32 zigzag lanes, two
  words per update word: for update word ``j``, history word ``2j+k`` lane ``L`` holds parameter
  ``16j + k + 2(L mod 2) + 4(3 - L div 2)`` (the update's quads of lanes 64 bits apart,
  reversed, which is how the contract's MUL-based dot product reads them).
* **Norm hint**: ``floor(|w| 2^16)`` (:func:`norm_hint`); the unit vector uses it, so its
  normalisation error is below ``2^-16 / |w|`` relative.
* **Cosine rules** (section II-A): the reference rule ``w.r >= eps |w| |r|`` against the last
  global update ``r``, and the paper's rule: with ``n`` past accepted unit vectors ``u_j``, the
  mean cosine ``(1/n) sum_j cos(w, u_j) = w.H / (n * unit_scale * |w|) >= eps``; both decided
  on integers without a square root (:func:`cosine_at_least`).
* **Norm bound and clipping**: an accepted update is left out of FedAvg if its norm hint exceeds
  ``k`` times the round's data-weighted median hint, and the others are clipped to ``c`` times
  that median (:func:`aggregation_weights`).
* **FedAvg**: ``mean_i = floor((sum_k n_k w_ki + floor(N/2)) / N)`` with ``N = sum_k n_k``
  (round to nearest, ties up), ``new_i = clamp(prev_i + mean_i)`` to int16; ``mean`` is the
  next round's reference (:func:`fedavg`).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from eth_utils import keccak
from numpy.typing import ArrayLike, NDArray

from tbcim.errors import ConfigError

LANES_PER_WORD = 16
WORD_BYTES = 32
HISTORY_BYTES_PER_WORD = 64
INT16_MIN, INT16_MAX = -(2**15), 2**15 - 1
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
MAX_FRAC_BITS = 15
MAX_UNIT_SCALE = 2**24
PPM = 1_000_000
INC_SHIFT = 24
# Update lanes held by each history word, in lane order (see module docstring).
_HISTORY_LANES = tuple(
    np.array([k + 2 * (lane % 2) + 4 * (3 - lane // 2) for lane in range(8)]) for k in (0, 1)
)

IntArray = NDArray[np.int64]


class Verdict(enum.IntEnum):
    """The contract's ``Verdict`` enum: why an update was rejected (0 = accepted)."""

    ACCEPTED = 0
    ZERO_UPDATE = 1
    WRONG_NORM_HINT = 2
    NOT_COMMITTED = 3
    HISTORY_MISMATCH = 4
    DUPLICATE = 5
    REFERENCE_COSINE = 6
    HISTORY_COSINE = 7
    NORM_BOUND = 8


def num_words(num_params: int) -> int:
    """256-bit words of a packed update with ``num_params`` parameters."""
    if num_params < 1:
        raise ConfigError("num_params", f"must be at least 1, got {num_params}")
    return -(-num_params // LANES_PER_WORD)


def _as_int_vector(values: ArrayLike, name: str, low: int, high: int) -> IntArray:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.size == 0:
        raise ConfigError(name, f"must be a non-empty 1-D vector, got shape {arr.shape}")
    is_int = np.issubdtype(arr.dtype, np.integer)
    if not is_int and not (np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
        raise ConfigError(name, "must hold integers")
    ints = arr.astype(np.int64)
    bad = np.flatnonzero((ints < low) | (ints > high))
    if bad.size:
        i = int(bad[0])
        raise ConfigError(name, f"value {int(ints[i])} at index {i} is outside [{low}, {high}]")
    return ints


def _zigzag(v: IntArray) -> IntArray:
    return np.where(v >= 0, 2 * v, -2 * v - 1)


def _unzigzag(z: IntArray) -> IntArray:
    return np.where(z % 2 == 0, z // 2, -(z // 2) - 1)


def _padded(v: IntArray) -> IntArray:
    out = np.zeros(num_words(v.size) * LANES_PER_WORD, dtype=np.int64)
    out[: v.size] = v
    return out


def _check_length(data: bytes, expected: int, name: str) -> None:
    if len(data) != expected:
        raise ConfigError(name, f"expected {expected} bytes, got {len(data)}")


def pack_update(values: ArrayLike) -> bytes:
    """Pack int16 values (an update or a model) into 32-byte words (zigzag lanes)."""
    v = _as_int_vector(values, "update", INT16_MIN, INT16_MAX)
    lanes = _zigzag(_padded(v)).reshape(-1, LANES_PER_WORD)
    return lanes[:, ::-1].astype(">u2").tobytes()


def unpack_update(data: bytes, num_params: int) -> IntArray:
    """Inverse of :func:`pack_update`; checks length and zero padding."""
    _check_length(data, num_words(num_params) * WORD_BYTES, "packed update")
    lanes = np.frombuffer(data, dtype=">u2").reshape(-1, LANES_PER_WORD)[:, ::-1]
    values = _unzigzag(lanes.reshape(-1).astype(np.int64))
    if np.any(values[num_params:] != 0):
        raise ConfigError("packed update", "padding lanes past num_params must be zero")
    return values[:num_params]


def pack_history(values: ArrayLike) -> bytes:
    """Pack history values (int32) into two words per update word (reversed quads, see above)."""
    v = _as_int_vector(values, "history", INT32_MIN, INT32_MAX)
    by_word = _zigzag(_padded(v)).reshape(-1, LANES_PER_WORD)
    words = np.stack([by_word[:, idx] for idx in _HISTORY_LANES], axis=1)  # (W, 2, 8)
    return words[:, :, ::-1].astype(">u4").tobytes()


def unpack_history(data: bytes, num_params: int) -> IntArray:
    """Inverse of :func:`pack_history`."""
    _check_length(data, num_words(num_params) * HISTORY_BYTES_PER_WORD, "packed history")
    words = np.frombuffer(data, dtype=">u4").reshape(-1, 2, 8)[:, :, ::-1].astype(np.int64)
    by_word = np.empty((words.shape[0], LANES_PER_WORD), dtype=np.int64)
    for k, idx in enumerate(_HISTORY_LANES):
        by_word[:, idx] = words[:, k, :]
    return _unzigzag(by_word.reshape(-1))[:num_params]


@dataclass(frozen=True)
class FixedPointCodec:
    """Fixed-point int16 codec with ``frac_bits`` fractional bits (step ``2^-frac_bits``)."""

    frac_bits: int

    def __post_init__(self) -> None:
        if not 0 <= self.frac_bits <= MAX_FRAC_BITS:
            raise ConfigError("frac_bits", f"must be in [0, {MAX_FRAC_BITS}], got {self.frac_bits}")

    @property
    def step(self) -> float:
        """One quantisation step."""
        return 2.0**-self.frac_bits

    @property
    def min_value(self) -> float:
        return INT16_MIN * self.step

    @property
    def max_value(self) -> float:
        return INT16_MAX * self.step

    def quantize(self, values: ArrayLike, name: str = "values") -> IntArray:
        """Round to the nearest step (ties to even); values outside the range raise."""
        x = np.asarray(values, dtype=np.float64)
        if x.ndim != 1 or x.size == 0:
            raise ConfigError(name, f"must be a non-empty 1-D vector, got shape {x.shape}")
        bad = np.flatnonzero(~np.isfinite(x))
        if bad.size:
            i = int(bad[0])
            raise ConfigError(name, f"value {float(x[i])} at index {i} is not finite")
        q = np.rint(x * 2.0**self.frac_bits)
        bad = np.flatnonzero((q < INT16_MIN) | (q > INT16_MAX))
        if bad.size:
            i = int(bad[0])
            raise ConfigError(
                name,
                f"value {float(x[i])!r} at index {i} is outside the int16 range "
                f"[{self.min_value}, {self.max_value}] with {self.frac_bits} fractional bits",
            )
        return q.astype(np.int64)

    def dequantize(self, q: ArrayLike) -> NDArray[np.float64]:
        return np.asarray(q, dtype=np.float64) * self.step

    def encode(self, values: ArrayLike, name: str = "values") -> bytes:
        """Quantise and pack a float vector."""
        return pack_update(self.quantize(values, name))

    def decode(self, data: bytes, num_params: int) -> NDArray[np.float64]:
        """Unpack and dequantise a packed vector."""
        return self.dequantize(unpack_update(data, num_params))


# ------------------------------------------------------------------ chunks and hashes


def chunk_spans(num_params: int, chunk_words: int) -> list[tuple[int, int]]:
    """Byte spans ``(start, end)`` of each chunk of a packed update (history spans are twice)."""
    if chunk_words < 1:
        raise ConfigError("chunk_words", f"must be at least 1, got {chunk_words}")
    words = num_words(num_params)
    return [
        (start * WORD_BYTES, min(start + chunk_words, words) * WORD_BYTES)
        for start in range(0, words, chunk_words)
    ]


def chunked_hash(packed: bytes, spans: Sequence[tuple[int, int]], scale: int = 1) -> bytes:
    """The contract's hash of a chunked vector: ``h_{j+1} = keccak(h_j, keccak(chunk j))``.

    ``scale`` is 2 for a history (two words per update word)."""
    h = bytes(32)
    for start, end in spans:
        h = keccak(h + keccak(packed[scale * start : scale * end]))
    return h


def link(chain: bytes, worker: str, chunk_hash: bytes) -> bytes:
    """One step of a round's per-chunk chain: ``keccak(abi.encode(chain, worker, chunkHash))``."""
    return keccak(chain + bytes(12) + bytes.fromhex(worker.removeprefix("0x")) + chunk_hash)


def commitment(worker: str, round_: int, update_hash: bytes) -> bytes:
    """The commit-reveal commitment ``keccak(abi.encode(worker, round, updateHash))``."""
    return keccak(
        bytes(12)
        + bytes.fromhex(worker.removeprefix("0x"))
        + round_.to_bytes(32, "big")
        + update_hash
    )


# ------------------------------------------------------------------ contract integer mirror


def norm_squared(update: ArrayLike) -> int:
    """|w|^2 of an int16 update, exactly."""
    w = np.asarray(update, dtype=np.int64)
    return int(np.dot(w, w))


def norm_hint(update: ArrayLike) -> int:
    """floor(|w| 2^16), exactly: the norm hint ``submit`` takes."""
    return math.isqrt(norm_squared(update) << 32)


def exact_dot(a: ArrayLike, b: ArrayLike) -> int:
    """a.b in Python integers (history lanes reach 2^31, so int64 sums could overflow)."""
    x = np.asarray(a, dtype=np.int64).astype(object)
    y = np.asarray(b, dtype=np.int64).astype(object)
    return int(np.dot(x, y))


def history_increment(update: ArrayLike, unit_scale: int) -> IntArray:
    """The contract's quantised unit vector of an accepted update.

    ``inc_i = ((w_i + 2^15) r + 2^23) >> 24 - ((2^15 r + 2^23) >> 24)`` with
    ``r = floor(unit_scale 2^40 / norm_hint(w))``; ``|inc_i| <= unit_scale`` (up to rounding).
    """
    w = np.asarray(update, dtype=np.int64)
    norm16 = norm_hint(w)
    if norm16 == 0:
        raise ConfigError("update", "the zero update has no direction")
    r = (unit_scale << 40) // norm16
    r_hi, r_lo = r >> INC_SHIFT, r & ((1 << INC_SHIFT) - 1)
    a = w + 2**15
    half = 1 << (INC_SHIFT - 1)
    # (a r + half) >> 24 == a r_hi + ((a r_lo + half) >> 24): exact in int64.
    scaled = a * r_hi + ((a * r_lo + half) >> INC_SHIFT)
    offset = (2**15 * r + half) >> INC_SHIFT
    return scaled - offset


@dataclass
class HistoryState:
    """One ED's history window for the paper's rule, mirrored off chain (the contract stores
    only its chunked hash). ``window`` is the contract's ``historyWindow`` (0 = rule off)."""

    num_params: int
    window: int
    values: IntArray = field(default=None)  # type: ignore[arg-type]
    count: int = 0

    def __post_init__(self) -> None:
        if self.values is None:
            self.values = np.zeros(self.num_params, dtype=np.int64)

    @property
    def active(self) -> bool:
        """Whether the next update is checked against this window (else it starts a new one)."""
        return self.window > 0 and 0 < self.count < self.window

    def packed(self) -> bytes:
        """The bytes to pass as ``history`` (empty when the window is empty or full)."""
        return pack_history(self.values) if self.active else b""

    def commitment(self, spans: Sequence[tuple[int, int]]) -> bytes:
        """The chunked hash the contract stores (32 zero bytes before the first acceptance)."""
        if self.count == 0:
            return bytes(32)
        return chunked_hash(pack_history(self.values), spans, scale=2)

    def accept(self, update: ArrayLike, unit_scale: int) -> None:
        """Apply an accepted update exactly as the contract does."""
        if self.window == 0:
            return
        inc = history_increment(np.asarray(update, dtype=np.int64), unit_scale)
        if self.active:
            self.values = self.values + inc
            self.count += 1
        else:
            self.values = inc
            self.count = 1


def cosine_at_least(dot: int, epsilon_ppm: int, scale: int, sq: int, ref_sq: int) -> bool:
    """``dot * 1e6 >= eps_ppm * scale * sqrt(sq * ref_sq)`` on integers, as the contract decides
    both cosine rules (reference: scale 1, ref_sq = |r|^2; history: scale n unit_scale, 1)."""
    lhs = dot * PPM
    rhs = epsilon_ppm * scale
    norms = sq * ref_sq
    if lhs >= 0:
        return rhs <= 0 or lhs * lhs >= rhs * rhs * norms
    return rhs < 0 and lhs * lhs <= rhs * rhs * norms


def weighted_median(values: Sequence[int], weights: Sequence[int]) -> int:
    """The smallest value whose cumulative weight (ascending) reaches half of the total."""
    if not values or len(values) != len(weights) or sum(weights) <= 0:
        raise ConfigError("weights", "need one positive-sum weight per value")
    total = sum(int(w) for w in weights)
    cumulative = 0
    for value, weight in sorted(zip(values, weights, strict=True), key=lambda vw: vw[0]):
        cumulative += int(weight)
        if 2 * cumulative >= total:
            return int(value)
    raise AssertionError("unreachable: the weights sum to the total")


def aggregation_weights(
    norms16: Sequence[int], sizes: Sequence[int], norm_bound_ppm: int, clip_ppm: int
) -> tuple[list[int], int]:
    """The contract's FedAvg weights of a round's accepted updates and its denominator.

    With M the data-weighted median of the norm hints, an update above ``k M`` is excluded
    (weight 0); the others weigh ``n * c16`` with the clipping factor
    ``c16 = min(2^16, floor(c M 2^16 / norm16))`` (``2^16`` when clipping is off), and the
    denominator is ``2^16`` times the included data: FedAvg of the norm-clipped updates."""
    median = weighted_median(norms16, sizes)
    threshold = median * norm_bound_ppm // PPM
    clip = median * clip_ppm // PPM
    weights = []
    included = 0
    for norm, n in zip(norms16, sizes, strict=True):
        if norm > threshold:
            weights.append(0)
            continue
        included += int(n)
        factor = 1 << 16 if clip == 0 or norm <= clip else (clip << 16) // norm
        weights.append(int(n) * factor)
    return weights, included << 16


def fedavg(
    previous: ArrayLike,
    updates: Sequence[ArrayLike],
    weights: Sequence[int],
    total: int | None = None,
) -> tuple[IntArray, IntArray, int]:
    """The contract's FedAvg step: the new int16 model, the mean update (the next reference)
    and the number of clamped lanes. Zero weights (excluded updates) are allowed; ``total``
    (default: the sum of the weights) is the denominator, the rest of it weighing an implicit
    zero update (see :func:`aggregation_weights`)."""
    prev = np.asarray(previous, dtype=np.int64)
    if len(updates) == 0 or len(updates) != len(weights):
        raise ConfigError("updates", "need one weight per update and at least one update")
    if any(int(n) < 0 for n in weights) or sum(int(n) for n in weights) <= 0:
        raise ConfigError("weights", "data sizes must be non-negative with a positive sum")
    if total is None:
        total = sum(int(n) for n in weights)
    elif total < sum(int(n) for n in weights):
        raise ConfigError("total", "the denominator must be at least the sum of the weights")
    acc = np.zeros(prev.size, dtype=object)
    for w, n in zip(updates, weights, strict=True):
        acc = acc + np.asarray(w, dtype=np.int64).astype(object) * int(n)
    mean = np.array([(int(s) + total // 2) // total for s in acc], dtype=np.int64)
    raw = prev + mean
    clipped = np.clip(raw, INT16_MIN, INT16_MAX)
    return clipped, mean, int(np.count_nonzero(raw != clipped))
