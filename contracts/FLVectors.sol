// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

// Word-wise (SWAR) vector arithmetic shared by FLAggregator and FLCodec: free functions,
// inlined into each contract that uses them. Encoding: see FLAggregator's header.

uint256 constant LANES = 16;
uint256 constant WORD = 32;
uint256 constant HISTORY_BYTES_PER_WORD = 64;
uint256 constant BIAS16 = 0x8000;
uint256 constant BIAS32 = 0x80000000;
uint256 constant PPM = 1_000_000;
uint256 constant E16 = 0x0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff;
uint256 constant HALF_BIAS32 = 0x0000800000008000000080000000800000008000000080000000800000008000;
uint256 constant BIT16 = 0x0001000000010000000100000001000000010000000100000001000000010000;
uint256 constant BIT17 = 0x0002000000020000000200000002000000020000000200000002000000020000;
/// @dev SWAR mask: bits 0..14 of every 16-bit lane.
uint256 constant LOW15_16 = 0x7fff7fff7fff7fff7fff7fff7fff7fff7fff7fff7fff7fff7fff7fff7fff7fff;
/// @dev SWAR mask: bit 15 of every 16-bit lane.
uint256 constant TOP_16 = 0x8000800080008000800080008000800080008000800080008000800080008000;
/// @dev SWAR mask: bit 0 of every 16-bit lane.
uint256 constant LSB_16 = 0x0001000100010001000100010001000100010001000100010001000100010001;
/// @dev SWAR mask: bits 0..30 of every 32-bit lane.
uint256 constant LOW31_32 = 0x7fffffff7fffffff7fffffff7fffffff7fffffff7fffffff7fffffff7fffffff;
/// @dev SWAR mask: bit 31 of every 32-bit lane.
uint256 constant TOP_32 = 0x8000000080000000800000008000000080000000800000008000000080000000;
/// @dev SWAR mask: bit 0 of every 32-bit lane.
uint256 constant LSB_32 = 0x0000000100000001000000010000000100000001000000010000000100000001;
/// @dev SWAR mask: a 16-bit lane in each 64-bit lane.
uint256 constant QUAD16 = 0x000000000000ffff000000000000ffff000000000000ffff000000000000ffff;
/// @dev SWAR mask: a 32-bit lane in each 64-bit lane.
uint256 constant QUAD32 = 0x00000000ffffffff00000000ffffffff00000000ffffffff00000000ffffffff;
/// @dev SWAR mask: 64-bit lanes 0 and 2.
uint256 constant EVEN64 = 0x0000000000000000ffffffffffffffff0000000000000000ffffffffffffffff;
/// @dev SWAR mask: 2^23 in each 64-bit lane (rounding before >> 24).
uint256 constant HALF24_64 = 0x0000000000800000000000000080000000000000008000000000000000800000;
/// @dev SWAR mask: bits 0..39 of every 64-bit lane.
uint256 constant LOW40_64 = 0x000000ffffffffff000000ffffffffff000000ffffffffff000000ffffffffff;
/// @dev SWAR mask: 1 in each 64-bit lane.
uint256 constant ONE_64 = 0x0000000000000001000000000000000100000000000000010000000000000001;

/// @dev floor(sqrt(x)) (Newton iteration from a power-of-two upper bound).
function _isqrt(uint256 x) pure returns (uint256 r) {
    if (x == 0) return 0;
    uint256 bits;
    uint256 y = x;
    while (y > 0) {
        y >>= 2;
        ++bits;
    }
    r = 1 << bits; // >= sqrt(x)
    while (true) {
        uint256 next = (r + x / r) >> 1;
        if (next >= r) break;
        r = next;
    }
}

/// @dev offset binary -> zigzag for 16 int16 lanes.
function _zigzag16(uint256 u) pure returns (uint256 z) {
    assembly {
        let neg := and(not(shr(15, u)), LSB_16)
        let t := xor(xor(u, TOP_16), mul(neg, 0xffff))
        z := or(shl(1, t), neg)
    }
}

/// @dev One pass over the update (from calldata offset `u`) and the history (from `h`;
///      pass calldatasize() for "no history": reads past the end of calldata are zero).
///      Returns raw accumulators (see _totals) and writes the next history H' = H + inc to
///      memory at `out` (64 bytes per update word), where, per lane,
///      inc_i = ((w_i + 2^15) r + 2^23) >> 24 - c, c = (2^15 r + 2^23) >> 24, and
///      r = floor(unitScale 2^24 / norm) scales the update to length ~unitScale.
///      Words are decoded to offset binary a = w + 2^15, b = h + 2^31 and split into quads
///      of four lanes 64 bits apart: update quad g holds lanes g, g+4, g+8, g+12; the history
///      stores the same parameters in reversed lane order (word 2j + (g & 1), lanes
///      (g >> 1) + 2m). For polynomials x = sum x_m X^m and y = sum y_{3-m} X^m in
///      X = 2^64, the X^3 coefficient of x y is sum x_m y_m; every coefficient is below
///      2^64, so bits 192..255 of MUL(x, y) are exactly that dot product of four lanes.
///      |w|^2 uses the quad and its reversal. H' lanes stay in [0, 2^32) in offset binary
///      because |H'_i| <= n unitScale < 2^31 (maxHistory), so no lane borrows.
///      Memory words 0x00 and 0x20 (scratch space) hold r and c per lane. The four quad
///      blocks are unrolled on purpose: the legacy code generator does not inline Yul
///      functions, and a call per quad would cost more than the quad's arithmetic.
function _pass(uint256 u, uint256 h, uint256 words, uint256 out)
    pure
    returns (uint256 sq, uint256 dt, uint256 sa, uint256 sb)
{
    assembly ("memory-safe") {
        for { let end := add(u, mul(words, 32)) } lt(u, end) {
            u := add(u, 32)
            h := add(h, 64)
            out := add(out, 64)
        } {
            let z := calldataload(u)
            let w := xor(xor(and(shr(1, z), LOW15_16),
                TOP_16),
                mul(and(z, LSB_16), 0xffff))
            let n
            z := calldataload(h)
            let hk := xor(xor(and(shr(1, z), LOW31_32),
                TOP_32),
                mul(and(z, LSB_32), 0xffffffff))
            {
                let aq := and(w, QUAD16)
                let hq := and(hk, QUAD32)
                let x := or(shl(64, and(aq, EVEN64)), and(shr(64, aq), EVEN64))
                let ar := or(shl(128, x), shr(128, x))
                sq := add(sq, shr(192, mul(aq, ar)))
                dt := add(dt, shr(192, mul(aq, hq)))
                sa := add(sa, aq)
                sb := add(sb, hq)
                n := sub(add(hq,
                    and(shr(24, add(mul(ar, mload(0)), HALF24_64)), LOW40_64)), mload(0x20))
            }
            {
                let aq := and(shr(32, w), QUAD16)
                let hq := and(shr(32, hk), QUAD32)
                let x := or(shl(64, and(aq, EVEN64)), and(shr(64, aq), EVEN64))
                let ar := or(shl(128, x), shr(128, x))
                sq := add(sq, shr(192, mul(aq, ar)))
                dt := add(dt, shr(192, mul(aq, hq)))
                sa := add(sa, aq)
                sb := add(sb, hq)
                n := or(n, shl(32, sub(add(hq,
                    and(shr(24, add(mul(ar, mload(0)), HALF24_64)), LOW40_64)), mload(0x20))))
            }
            z := and(not(shr(31, n)), LSB_32)
            mstore(out, or(shl(1, xor(xor(n, TOP_32),
                mul(z, 0xffffffff))), z))
            z := calldataload(add(h, 32))
            hk := xor(xor(and(shr(1, z), LOW31_32),
                TOP_32),
                mul(and(z, LSB_32), 0xffffffff))
            {
                let aq := and(shr(16, w), QUAD16)
                let hq := and(hk, QUAD32)
                let x := or(shl(64, and(aq, EVEN64)), and(shr(64, aq), EVEN64))
                let ar := or(shl(128, x), shr(128, x))
                sq := add(sq, shr(192, mul(aq, ar)))
                dt := add(dt, shr(192, mul(aq, hq)))
                sa := add(sa, aq)
                sb := add(sb, hq)
                n := sub(add(hq,
                    and(shr(24, add(mul(ar, mload(0)), HALF24_64)), LOW40_64)), mload(0x20))
            }
            {
                let aq := and(shr(48, w), QUAD16)
                let hq := and(shr(32, hk), QUAD32)
                let x := or(shl(64, and(aq, EVEN64)), and(shr(64, aq), EVEN64))
                let ar := or(shl(128, x), shr(128, x))
                sq := add(sq, shr(192, mul(aq, ar)))
                dt := add(dt, shr(192, mul(aq, hq)))
                sa := add(sa, aq)
                sb := add(sb, hq)
                n := or(n, shl(32, sub(add(hq,
                    and(shr(24, add(mul(ar, mload(0)), HALF24_64)), LOW40_64)), mload(0x20))))
            }
            z := and(not(shr(31, n)), LSB_32)
            mstore(add(out, 32), or(shl(1, xor(xor(n, TOP_32),
                mul(z, 0xffffffff))), z))
        }
    }
}

/// @dev |w|^2 and w.H from the accumulators of _pass over D = `lanes` lanes:
///      sum w^2 = sum a^2 - 2^16 sum a + D 2^30,
///      sum wh = sum ab - 2^31 sum a - 2^15 sum b + D 2^46.
function _totals(uint256 sqA, uint256 dtA, uint256 sumA, uint256 sumB, uint256 lanes)
    pure
    returns (uint256 sq, int256 dot)
{
    uint256 sa = _laneSum64(sumA);
    uint256 sb = _laneSum64(sumB);
    sq = sqA + lanes * BIAS16 * BIAS16 - 2 * BIAS16 * sa;
    dot = int256(dtA + lanes * BIAS16 * BIAS32) - int256(BIAS32 * sa) - int256(BIAS16 * sb);
}

/// @dev Run _pass over `update` and `history` (one chunk or the whole vector) with the norm
///      hint `norm16` = floor(|w| 2^16), writing H' to memory at `out`; returns |w|^2, w.H.
///      r = floor(unitScale 2^40 / norm16) ~ unitScale 2^24 / |w| (relative error below
///      2^-16 / |w|, so even the smallest update is normalised exactly enough).
function _verify(
    bytes calldata update,
    bytes calldata history,
    uint256 norm16,
    uint256 out,
    uint256 unitScale
) view returns (uint256 sq, int256 dot) {
    _setScale(norm16, unitScale);
    (sq, dot) = _passTotals(update, history, out);
    if (history.length == 0) dot = 0;
}

/// @dev Scratch memory for _pass: r = floor(unitScale 2^40 / norm16) at 0x00 and
///      c = (2^15 r + 2^23) >> 24 in each 64-bit lane at 0x20.
function _setScale(uint256 norm16, uint256 unitScale) pure {
    uint256 r = norm16 == 0 ? 0 : (unitScale << 40) / norm16;
    uint256 c = (BIAS16 * r + (1 << 23)) >> 24;
    assembly ("memory-safe") {
        mstore(0, r)
        mstore(0x20, mul(c, ONE_64))
    }
}

/// @dev |w|^2 and w.H of one _pass over calldata slices (an empty history reads as zero: past
///      the end of calldata). Expects r and c in scratch memory (see _setScale).
function _passTotals(bytes calldata update, bytes calldata history, uint256 out)
    view
    returns (uint256, int256)
{
    uint256 u;
    uint256 h;
    assembly ("memory-safe") {
        u := update.offset
        h := history.offset
        if iszero(history.length) { h := calldatasize() }
    }
    return _passWords(u, h, update.length / WORD, out);
}

/// @dev _pass over `words` words, then _totals.
function _passWords(uint256 u, uint256 h, uint256 words, uint256 out) pure returns (uint256, int256) {
    (uint256 sqA, uint256 dtA, uint256 sumA, uint256 sumB) = _pass(u, h, words, out);
    return _totals(sqA, dtA, sumA, sumB, words * LANES);
}

/// @dev |w|^2 and w.r over packed int16 vectors of equal length (r empty = zero): words
///      decoded to offset binary a = w + 2^15, b = r + 2^15 and split into quads as in
///      _pass; MUL of a quad and a lane-reversed quad gives a four-lane dot product in its
///      top 64 bits. sum w r = sum ab - 2^15 (sum a + sum b) + D 2^30.
function _refPass(bytes calldata update, bytes calldata ref)
    pure
    returns (uint256 sq, int256 dot)
{
    uint256 sqA;
    uint256 dtA;
    uint256 sumA;
    uint256 sumB;
    uint256 words = update.length / WORD;
    assembly ("memory-safe") {
        let u := update.offset
        let r := ref.offset
        if iszero(ref.length) { r := calldatasize() }
        for { let end := add(u, mul(words, 32)) } lt(u, end) {
            u := add(u, 32)
            r := add(r, 32)
        } {
            let z := calldataload(u)
            let w := xor(xor(and(shr(1, z), LOW15_16), TOP_16), mul(and(z, LSB_16), 0xffff))
            z := calldataload(r)
            let v := xor(xor(and(shr(1, z), LOW15_16), TOP_16), mul(and(z, LSB_16), 0xffff))
            for { let s := 0 } lt(s, 64) { s := add(s, 16) } {
                let aq := and(shr(s, w), QUAD16)
                let bq := and(shr(s, v), QUAD16)
                let x := or(shl(64, and(aq, EVEN64)), and(shr(64, aq), EVEN64))
                let ar := or(shl(128, x), shr(128, x))
                x := or(shl(64, and(bq, EVEN64)), and(shr(64, bq), EVEN64))
                let br := or(shl(128, x), shr(128, x))
                sqA := add(sqA, shr(192, mul(aq, ar)))
                dtA := add(dtA, shr(192, mul(aq, br)))
                sumA := add(sumA, aq)
                sumB := add(sumB, bq)
            }
        }
    }
    uint256 sa = _laneSum64(sumA);
    uint256 sb = _laneSum64(sumB);
    uint256 lanes = words * LANES;
    sq = sqA + lanes * BIAS16 * BIAS16 - 2 * BIAS16 * sa;
    dot = int256(dtA + lanes * BIAS16 * BIAS16) - int256(BIAS16 * (sa + sb));
}

/// @dev |v|^2 of a packed int16 vector in memory (the mean update of a chunk), word-wise as
///      in _refPass: sum v^2 = sum a^2 - 2^16 sum a + D 2^30 with a = v + 2^15.
function _memNormSquared(bytes memory packed) pure returns (uint256 sq) {
    uint256 sqA;
    uint256 sumA;
    assembly ("memory-safe") {
        let p := add(packed, 32)
        for { let end := add(p, mload(packed)) } lt(p, end) { p := add(p, 32) } {
            let z := mload(p)
            let w := xor(xor(and(shr(1, z), LOW15_16), TOP_16), mul(and(z, LSB_16), 0xffff))
            for { let s := 0 } lt(s, 64) { s := add(s, 16) } {
                let aq := and(shr(s, w), QUAD16)
                let x := or(shl(64, and(aq, EVEN64)), and(shr(64, aq), EVEN64))
                sqA := add(sqA, shr(192, mul(aq, or(shl(128, x), shr(128, x)))))
                sumA := add(sumA, aq)
            }
        }
    }
    uint256 lanes = packed.length / WORD * LANES;
    sq = sqA + lanes * BIAS16 * BIAS16 - 2 * BIAS16 * _laneSum64(sumA);
}

/// @dev Sum of the four 64-bit lanes of a word.
function _laneSum64(uint256 x) pure returns (uint256 s) {
    for (uint256 k; k < 256; k += 64) {
        s += (x >> k) & 0xffffffffffffffff;
    }
}

/// @dev FedAvg of `updates` on `previousGlobal` with integer weights n_k and denominator
///      N = `total`; a weight `filler` = N - sum_k n_k goes to an implicit zero update (so
///      scaled-down weights, as norm clipping gives, still divide by the full N). Per lane,
///      with four 64-bit-lane accumulators per word (update lane p = 4m + g in accumulator g at
///      bits 64m) of sum_k n_k (w_k + 2^15) + filler 2^15 = sum_k n_k w_k + N 2^15 < N 2^16,
///      which stays below 2^64 while N < 2^48:
///      mean = floor((sum_k n_k w_k + floor(N/2)) / N), new = clamp(prev + mean) to int16.
function _fedAvg(
    bytes calldata previousGlobal,
    bytes[] calldata updates,
    uint256[] memory weights,
    uint256 total,
    uint256 filler
) pure returns (bytes memory model, bytes memory mean, uint256 saturated) {
    uint256[] memory offsets = _offsets(updates);
    uint256 prev;
    assembly ("memory-safe") {
        prev := previousGlobal.offset
    }
    model = new bytes(previousGlobal.length);
    mean = new bytes(previousGlobal.length);
    Cursor memory c = _cursor(offsets, weights, model, mean);
    c.prev = prev;
    c.total = total;
    c.filler = filler * BIAS16 * ONE_64;
    for (uint256 at; at < model.length; at += WORD) {
        saturated += _modelWord(c, at);
    }
}

/// @dev Calldata offsets of the byte strings of `updates`.
function _offsets(bytes[] calldata updates) pure returns (uint256[] memory offsets) {
    offsets = new uint256[](updates.length);
    for (uint256 i; i < updates.length; ++i) {
        bytes calldata upd = updates[i];
        uint256 off;
        assembly ("memory-safe") {
            off := upd.offset
        }
        offsets[i] = off;
    }
}

/// @dev The pointers of a FedAvg pass over `offsets` / `weights` into `model` and `mean`.
function _cursor(
    uint256[] memory offsets,
    uint256[] memory weights,
    bytes memory model,
    bytes memory mean
) pure returns (Cursor memory c) {
    assembly ("memory-safe") {
        mstore(c, add(offsets, 32))
        mstore(add(c, 0x40), sub(weights, offsets))
        mstore(add(c, 0x80), add(model, 32))
        mstore(add(c, 0xa0), add(mean, 32))
    }
    c.opEnd = c.opStart + 32 * offsets.length;
}

/// @dev Memory and calldata pointers of one FedAvg pass (see _fedAvg).
struct Cursor {
    uint256 opStart; // first update offset in the offsets array
    uint256 opEnd; // past the last one
    uint256 toWeight; // weights array minus offsets array
    uint256 prev; // calldata offset of the previous model
    uint256 dst; // memory: new model bytes
    uint256 meanDst; // memory: mean update bytes
    uint256 total; // FedAvg denominator N
    uint256 filler; // the implicit zero update's contribution per 64-bit lane
}

/// @dev Word `at` of the new model and of the mean update (zigzag); returns the number of
///      clamped lanes.
function _modelWord(Cursor memory c, uint256 at) pure returns (uint256) {
    (uint256 acc0, uint256 acc1, uint256 acc2, uint256 acc3) =
        _accumulate(c.opStart, c.opEnd, c.toWeight, at);
    uint256 f = c.filler;
    return _storeWord(c, at, _biasedMean(acc0 + f, acc1 + f, acc2 + f, acc3 + f, c.total));
}

/// @dev new = previous + mean per lane (clamped), stored with the mean at word `at`.
function _storeWord(Cursor memory c, uint256 at, uint256 biasedMean)
    pure
    returns (uint256 saturated)
{
    uint256 g;
    uint256 prev = c.prev;
    assembly ("memory-safe") {
        g := calldataload(add(prev, at))
    }
    uint256 word;
    (word, saturated) = _addMean(_decode16(g), biasedMean);
    word = _zigzag16(word);
    uint256 meanWord = _zigzag16(biasedMean);
    uint256 dst = c.dst;
    uint256 meanDst = c.meanDst;
    assembly ("memory-safe") {
        mstore(add(dst, at), word)
        mstore(add(meanDst, at), meanWord)
    }
}

/// @dev Weighted lane sums of word `at` of every update: four accumulators of 64-bit
///      lanes (lane p = 4m + g in accumulator g at bits 64m) of n_k (w + 2^15).
function _accumulate(uint256 opStart, uint256 opEnd, uint256 toWeight, uint256 at)
    pure
    returns (uint256 acc0, uint256 acc1, uint256 acc2, uint256 acc3)
{
    assembly ("memory-safe") {
        for { let kp := opStart } lt(kp, opEnd) { kp := add(kp, 32) } {
            let w := calldataload(add(mload(kp), at))
            w := xor(xor(and(shr(1, w), LOW15_16),
                TOP_16),
                mul(and(w, LSB_16), 0xffff))
            let n := mload(add(kp, toWeight))
            acc0 := add(acc0, mul(and(w, QUAD16), n))
            acc1 := add(acc1, mul(and(shr(16, w), QUAD16), n))
            acc2 := add(acc2, mul(and(shr(32, w), QUAD16), n))
            acc3 := add(acc3, mul(and(shr(48, w), QUAD16), n))
        }
    }
}

/// @dev Per lane, the biased weighted mean q = floor((acc + floor(N/2)) / N) (< 2^16, the
///      mean update plus 2^15) from the four accumulators of _accumulate. The new model lane
///      is then g + q - 2^15 (see _addMean).
function _biasedMean(uint256 acc0, uint256 acc1, uint256 acc2, uint256 acc3, uint256 total)
    pure
    returns (uint256 biasedMean)
{
    uint256 half = total >> 1;
    assembly ("memory-safe") {
        let q := div(add(and(acc0, 0xffffffffffffffff), half), total)
        q := or(q, shl(16, div(add(and(acc1, 0xffffffffffffffff), half), total)))
        q := or(q, shl(32, div(add(and(acc2, 0xffffffffffffffff), half), total)))
        q := or(q, shl(48, div(add(and(acc3, 0xffffffffffffffff), half), total)))
        q := or(q, shl(64, div(add(and(shr(64, acc0), 0xffffffffffffffff), half), total)))
        q := or(q, shl(80, div(add(and(shr(64, acc1), 0xffffffffffffffff), half), total)))
        q := or(q, shl(96, div(add(and(shr(64, acc2), 0xffffffffffffffff), half), total)))
        q := or(q, shl(112, div(add(and(shr(64, acc3), 0xffffffffffffffff), half), total)))
        q := or(q, shl(128, div(add(and(shr(128, acc0), 0xffffffffffffffff), half), total)))
        q := or(q, shl(144, div(add(and(shr(128, acc1), 0xffffffffffffffff), half), total)))
        q := or(q, shl(160, div(add(and(shr(128, acc2), 0xffffffffffffffff), half), total)))
        q := or(q, shl(176, div(add(and(shr(128, acc3), 0xffffffffffffffff), half), total)))
        q := or(q, shl(192, div(add(and(shr(192, acc0), 0xffffffffffffffff), half), total)))
        q := or(q, shl(208, div(add(and(shr(192, acc1), 0xffffffffffffffff), half), total)))
        q := or(q, shl(224, div(add(and(shr(192, acc2), 0xffffffffffffffff), half), total)))
        q := or(q, shl(240, div(add(and(shr(192, acc3), 0xffffffffffffffff), half), total)))
        biasedMean := q
    }
}

/// @dev g + q - 2^15 per lane (see _finalize), clamping only if some lane is out of range.
function _addMean(uint256 g, uint256 q) pure returns (uint256 word, uint256 saturated) {
    uint256 even = (g & E16) + (q & E16) + HALF_BIAS32;
    uint256 odd = ((g >> 16) & E16) + ((q >> 16) & E16) + HALF_BIAS32;
    uint256 flags = ((even | odd) & BIT17) | (((even & odd) & BIT16) ^ BIT16);
    if (flags == 0) return ((even & E16) | ((odd & E16) << 16), 0);
    for (uint256 p; p < LANES; ++p) {
        int256 v = int256((g >> (16 * p)) & 0xffff) + int256((q >> (16 * p)) & 0xffff)
            - int256(BIAS16);
        if (v < 0) {
            v = 0;
            ++saturated;
        } else if (v > 0xffff) {
            v = 0xffff;
            ++saturated;
        }
        word |= uint256(v) << (16 * p);
    }
}

/// @dev zigzag -> offset binary for 16 int16 lanes.
function _decode16(uint256 z) pure returns (uint256 b) {
    assembly {
        b := xor(xor(and(shr(1, z), LOW15_16),
            TOP_16),
            mul(and(z, LSB_16), 0xffff))
    }
}

function _hashCalldata(bytes calldata data) pure returns (bytes32 h) {
    assembly ("memory-safe") {
        let p := mload(0x40)
        calldatacopy(p, data.offset, data.length)
        h := keccak256(p, data.length)
    }
}

/// @dev dot * 1e6 >= eps_ppm * scale * sqrt(sq * refSq), decided on squares (no square
///      root). For the reference rule scale = 1 and refSq = |r|^2; for the paper's rule
///      H = unitScale sum_j u_j, so the mean cosine is w.H / (n unitScale |w|): scale =
///      n unitScale and refSq = 1.
function _cosineAtLeast(int256 dot, int256 epsPpm, uint256 scale, uint256 sq, uint256 refSq)
    pure
    returns (bool)
{
    int256 lhs = dot * int256(PPM);
    int256 rhs = epsPpm * int256(scale);
    uint256 norms = sq * refSq;
    if (lhs >= 0) return rhs <= 0 || uint256(lhs) ** 2 >= uint256(rhs) ** 2 * norms;
    return rhs < 0 && uint256(-lhs) ** 2 <= uint256(-rhs) ** 2 * norms;
}

/// @dev Smallest value whose cumulative weight (values in ascending order) reaches half the
///      total. Insertion sort: n is at most maxWorkers.
function _weightedMedian(uint256[] memory values, uint256[] memory weights, uint256 total)
    pure
    returns (uint256)
{
    uint256 n = values.length;
    for (uint256 i = 1; i < n; ++i) {
        uint256 v = values[i];
        uint256 w = weights[i];
        uint256 j = i;
        while (j > 0 && values[j - 1] > v) {
            values[j] = values[j - 1];
            weights[j] = weights[j - 1];
            --j;
        }
        values[j] = v;
        weights[j] = w;
    }
    uint256 cumulative;
    for (uint256 i; i < n; ++i) {
        cumulative += weights[i];
        if (2 * cumulative >= total) return values[i];
    }
    return values[n - 1];
}
uint256 constant MAX_UNIT_SCALE_ = 2 ** 24;
