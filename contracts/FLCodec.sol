// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import "./FLVectors.sol";

/// @title FLCodec: the aggregator's vector arithmetic as stateless views
/// @notice Lets anyone (and the tests) check the Python codec against the exact integer steps
///         FLAggregator applies: packing, the history step, |w|^2 and w.r, the cosine rules,
///         the weighted median of the norm bound, and FedAvg. FLAggregator runs the same free
///         functions of FLVectors.sol, inlined.
contract FLCodec {
    /// @notice A packed vector has the wrong byte length.
    error WrongLength(uint256 expected, uint256 actual);
    /// @notice A value does not fit an int16 lane.
    error ValueOutOfRange(uint256 index, int256 value);
    /// @notice An argument is out of range.
    error InvalidParameter(string name);

    /// @notice dot * 1e6 >= eps_ppm * scale * sqrt(sq * refSq), as both cosine rules decide it.
    function cosineAtLeast(int256 dot, int256 epsPpm, uint256 scale, uint256 sq, uint256 refSq)
        external
        pure
        returns (bool)
    {
        return _cosineAtLeast(dot, epsPpm, scale, sq, refSq);
    }

    /// @notice Data-weighted median of `values` (the smallest value whose cumulative weight
    ///         reaches half of the total), as the norm bound uses it.
    function weightedMedian(uint256[] calldata values, uint256[] calldata weights)
        external
        pure
        returns (uint256)
    {
        _checkLength(weights.length, values.length);
        uint256 total;
        for (uint256 i; i < weights.length; ++i) {
            total += weights[i];
        }
        if (values.length == 0 || total == 0) revert InvalidParameter("weights");
        return _weightedMedian(values, weights, total);
    }

    /// @notice Decode a packed update/model into its int16 values (16 lanes per word).
    function decodeUpdate(bytes calldata packed) external pure returns (int256[] memory values) {
        if (packed.length % WORD != 0) revert WrongLength(packed.length / WORD * WORD, packed.length);
        values = new int256[](packed.length / WORD * LANES);
        assembly ("memory-safe") {
            let out := add(values, 32)
            for { let i := 0 } lt(i, mload(values)) { i := add(i, 1) } {
                let word := calldataload(add(packed.offset, mul(32, div(i, 16))))
                let z := and(shr(mul(16, mod(i, 16)), word), 0xffff)
                // zigzag: v = z >> 1 if z even, -(z >> 1) - 1 if z odd
                mstore(add(out, mul(32, i)), xor(shr(1, z), sub(0, and(z, 1))))
            }
        }
    }

    /// @notice Encode int16 values into a packed update/model (padding lanes zero).
    function encodeUpdate(int256[] calldata values) external pure returns (bytes memory packed) {
        uint256 words = (values.length + LANES - 1) / LANES;
        uint256[] memory biased = new uint256[](words * LANES);
        for (uint256 i; i < values.length; ++i) {
            int256 v = values[i];
            if (v < -int256(BIAS16) || v >= int256(BIAS16)) revert ValueOutOfRange(i, v);
            biased[i] = uint256(v + int256(BIAS16));
        }
        for (uint256 i = values.length; i < biased.length; ++i) {
            biased[i] = BIAS16;
        }
        packed = new bytes(words * WORD);
        for (uint256 j; j < words; ++j) {
            uint256 word;
            for (uint256 p; p < LANES; ++p) {
                word |= biased[j * LANES + p] << (16 * p);
            }
            word = _zigzag16(word);
            assembly ("memory-safe") {
                mstore(add(add(packed, 32), mul(j, 32)), word)
            }
        }
    }

    /// @notice Decode a packed history into its int32 values in parameter order.
    function decodeHistory(bytes calldata packed) external pure returns (int256[] memory values) {
        if (packed.length % HISTORY_BYTES_PER_WORD != 0) {
            revert WrongLength(packed.length / HISTORY_BYTES_PER_WORD * HISTORY_BYTES_PER_WORD, packed.length);
        }
        values = new int256[](packed.length / HISTORY_BYTES_PER_WORD * LANES);
        for (uint256 i; i < values.length; ++i) {
            // parameter 16j + g + 4m sits in history word 2j + (g & 1), lane (g >> 1) + 2(3 - m)
            uint256 j = i / 16;
            uint256 g = i % 4;
            uint256 k = g & 1;
            uint256 lane = (g >> 1) + 2 * (3 - (i % 16) / 4);
            uint256 word;
            uint256 at = j * HISTORY_BYTES_PER_WORD + k * WORD;
            assembly ("memory-safe") {
                word := calldataload(add(packed.offset, at))
            }
            uint256 z = (word >> (32 * lane)) & 0xffffffff;
            values[i] = (z & 1) == 0 ? int256(z >> 1) : -int256(z >> 1) - 1;
        }
    }

    /// @notice The exact integer step of an accepted update: the next history, |w|^2, w.H and
    ///         the norm hint floor(|w| 2^16) (history may be empty = the zero vector).
    function nextHistory(bytes calldata update, bytes calldata history, uint256 unitScale)
        external
        view
        returns (bytes memory next, uint256 normSquared, int256 historyDot, uint256 norm16)
    {
        if (update.length % WORD != 0) revert WrongLength(update.length / WORD * WORD, update.length);
        if (history.length != 0) _checkLength(history.length, 2 * update.length);
        if (unitScale == 0 || unitScale > MAX_UNIT_SCALE_) revert InvalidParameter("unitScale");
        next = new bytes(2 * update.length);
        uint256 out;
        assembly ("memory-safe") {
            out := add(next, 32)
        }
        (normSquared,) = _refPass(update, update[0:0]);
        norm16 = _isqrt(normSquared << 32);
        (, historyDot) = _verify(update, history, norm16, out, unitScale);
    }

    /// @notice |w|^2 and w.r of two packed vectors of equal length (r empty = zero).
    function referencePass(bytes calldata update, bytes calldata ref)
        external
        pure
        returns (uint256 normSquared, int256 referenceDot)
    {
        if (ref.length != 0) _checkLength(ref.length, update.length);
        return _refPass(update, ref);
    }

    /// @notice FedAvg of packed updates on a packed previous model, weighted: the new model,
    ///         the mean update and the number of clamped lanes.
    function fedAvg(bytes calldata previous, bytes[] calldata updates, uint256[] calldata weights)
        external
        pure
        returns (bytes memory model, bytes memory mean, uint256 saturatedLanes)
    {
        _checkLength(weights.length, updates.length);
        uint256 total;
        for (uint256 i; i < updates.length; ++i) {
            _checkLength(updates[i].length, previous.length);
            total += weights[i];
        }
        if (updates.length == 0 || total == 0 || total > 2 ** 48 - 1) {
            revert InvalidParameter("weights");
        }
        uint256[] memory w = weights;
        return _fedAvg(previous, updates, w, total, 0);
    }

    function _checkLength(uint256 actual, uint256 expected) private pure {
        if (actual != expected) revert WrongLength(expected, actual);
    }
}
