// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

/// @title FLAggregator: on-chain verification and FedAvg for one edge subsystem and one FL task
/// @notice TBCIM section II-A, Fig. 3. The edge server (ES) that deploys the contract registers
///         its edge devices (EDs) with their data sizes and opens rounds that close at a deadline
///         of `roundBlocks` blocks. Each registered ED submits one update per round. The contract
///         checks it against that ED's own accepted history with the paper's cosine rule
///         (mean cosine similarity to the ED's past accepted updates must be at least epsilon)
///         and with a norm bound (|w| <= k * mean past accepted norm), because cosine is blind to
///         scaling. After the deadline the ES triggers FedAvg weighted by data size; the new
///         global model is emitted in an event (EDs read it from the log) and its hash is stored.
/// @dev    Vectors never touch storage. They travel in calldata and logs; storage holds keccak
///         commitments only. Encoding (see docs/contracts.md):
///         - update / model: 16 int16 lanes per 256-bit word, lane p at bits [16p, 16p+16),
///           zigzag coded (z = 2v for v >= 0, -2v-1 for v < 0) so small magnitudes of either sign
///           have zero high bytes (cheaper calldata). Unused lanes of the last word must be zero.
///         - history H (running sum of unit-normalised accepted updates, integer, unit = `unitScale`):
///           int32 zigzag lanes, two words per update word. For update word j, history word
///           2j+k lane L holds parameter 16j + k + 2(L mod 2) + 4(3 - L div 2), i.e. the
///           reversed quads of the update (see _pass).
///         Arithmetic is word-wise (SWAR): lanes are converted to offset binary (v + 2^15,
///         v + 2^31) and spread into quads of four lanes 64 bits apart; one MUL of a quad and a
///         lane-reversed quad yields their four-lane dot product in its top 64 bits, and
///         weighted sums use four 64-bit-lane accumulators per word.
contract FLAggregator {
    // ------------------------------------------------------------------ constants
    uint256 private constant LANES = 16;
    uint256 private constant WORD = 32;
    uint256 private constant HISTORY_BYTES_PER_WORD = 64;
    uint256 private constant BIAS16 = 0x8000;
    uint256 private constant BIAS32 = 0x80000000;
    uint256 private constant PPM = 1_000_000;
    uint256 private constant E16 = 0x0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff0000ffff;
    uint256 private constant HALF_BIAS32 = 0x0000800000008000000080000000800000008000000080000000800000008000;
    uint256 private constant BIT16 = 0x0001000000010000000100000001000000010000000100000001000000010000;
    uint256 private constant BIT17 = 0x0002000000020000000200000002000000020000000200000002000000020000;
    /// @dev SWAR mask: bits 0..14 of every 16-bit lane.
    uint256 private constant LOW15_16 = 0x7fff7fff7fff7fff7fff7fff7fff7fff7fff7fff7fff7fff7fff7fff7fff7fff;
    /// @dev SWAR mask: bit 15 of every 16-bit lane.
    uint256 private constant TOP_16 = 0x8000800080008000800080008000800080008000800080008000800080008000;
    /// @dev SWAR mask: bit 0 of every 16-bit lane.
    uint256 private constant LSB_16 = 0x0001000100010001000100010001000100010001000100010001000100010001;
    /// @dev SWAR mask: bits 0..30 of every 32-bit lane.
    uint256 private constant LOW31_32 = 0x7fffffff7fffffff7fffffff7fffffff7fffffff7fffffff7fffffff7fffffff;
    /// @dev SWAR mask: bit 31 of every 32-bit lane.
    uint256 private constant TOP_32 = 0x8000000080000000800000008000000080000000800000008000000080000000;
    /// @dev SWAR mask: bit 0 of every 32-bit lane.
    uint256 private constant LSB_32 = 0x0000000100000001000000010000000100000001000000010000000100000001;
    /// @dev SWAR mask: a 16-bit lane in each 64-bit lane.
    uint256 private constant QUAD16 = 0x000000000000ffff000000000000ffff000000000000ffff000000000000ffff;
    /// @dev SWAR mask: a 32-bit lane in each 64-bit lane.
    uint256 private constant QUAD32 = 0x00000000ffffffff00000000ffffffff00000000ffffffff00000000ffffffff;
    /// @dev SWAR mask: 64-bit lanes 0 and 2.
    uint256 private constant EVEN64 = 0x0000000000000000ffffffffffffffff0000000000000000ffffffffffffffff;
    /// @dev SWAR mask: 2^23 in each 64-bit lane (rounding before >> 24).
    uint256 private constant HALF24_64 = 0x0000000000800000000000000080000000000000008000000000000000800000;
    /// @dev SWAR mask: bits 0..39 of every 64-bit lane.
    uint256 private constant LOW40_64 = 0x000000ffffffffff000000ffffffffff000000ffffffffff000000ffffffffff;
    /// @dev SWAR mask: 1 in each 64-bit lane.
    uint256 private constant ONE_64 = 0x0000000000000001000000000000000100000000000000010000000000000001;
    /// @notice Largest allowed history unit (the unit vector's scale).
    uint256 public constant MAX_UNIT_SCALE = 2 ** 24;
    /// @notice Largest allowed sum of registered data sizes (keeps 64-bit SWAR lanes exact).
    uint256 public constant MAX_TOTAL_DATA = 2 ** 48 - 1;
    /// @notice Largest allowed model size in parameters.
    uint256 public constant MAX_PARAMS = 2 ** 20;

    /// @notice Why an update was rejected (0 = accepted).
    enum Verdict {
        Accepted,
        ZeroUpdate,
        NormBound,
        Cosine
    }

    /// @dev One storage slot per worker.
    struct Worker {
        uint48 dataSize; // > 0 iff registered
        uint64 lastRound; // last round this worker submitted in (0 = never)
        uint32 accepted; // number of accepted updates (n in the cosine rule)
        uint112 normSum; // sum of floor(|w|) over accepted updates
    }

    /// @dev Round state: one packed slot plus the commitment chain of accepted updates.
    struct Round {
        uint64 deadline; // last block in which submissions are accepted
        uint32 accepted; // number of accepted updates
        uint64 totalData; // sum of data sizes of accepted updates
        bool closed; // aggregated or skipped
        bytes32 chain; // keccak chain over (worker, keccak(update)) in acceptance order
    }

    // ------------------------------------------------------------------ configuration
    /// @notice The edge server that owns this subsystem (deployer).
    address public immutable server;
    /// @notice Model size in parameters.
    uint256 public immutable numParams;
    /// @notice Number of 256-bit words of a packed update (ceil(numParams / 16)).
    uint256 public immutable numWords;
    /// @notice Round length tau in blocks.
    uint64 public immutable roundBlocks;
    /// @notice Cosine threshold epsilon in parts per million (-1e6..1e6).
    int256 public immutable epsilonPpm;
    /// @notice Norm bound k in parts per million: accept iff |w| <= k * mean past accepted |w|.
    uint256 public immutable normBoundPpm;
    /// @notice Integer length of a unit vector in the history H.
    uint256 public immutable unitScale;
    /// @notice Fractional bits of the fixed-point encoding (informational; the math is scale-free).
    uint8 public immutable fracBits;
    /// @notice Accepted updates per worker before int32 history lanes could overflow.
    uint256 public immutable maxHistory;
    uint256 private immutable paddingMask;

    // ------------------------------------------------------------------ state
    /// @notice The round that is open or was opened last (0 before the first round).
    uint64 public currentRound;
    /// @notice keccak256 of the packed current global model (0 before it is published).
    bytes32 public globalModelHash;
    /// @notice Sum of registered data sizes.
    uint256 public totalData;
    /// @notice Registered workers.
    mapping(address worker => Worker) public workers;
    /// @notice keccak256 of each worker's packed history H (0 = no accepted update yet).
    mapping(address worker => bytes32) public historyHash;
    /// @notice Rounds by number.
    mapping(uint256 round => Round) public rounds;

    // ------------------------------------------------------------------ events
    /// @notice A worker was registered with its data size.
    event WorkerRegistered(address indexed worker, uint256 dataSize);
    /// @notice A round opened; submissions are accepted up to and including block `deadline`.
    event RoundOpened(uint64 indexed round, uint64 deadline);
    /// @notice A round passed its deadline without accepted updates and was closed unchanged.
    event RoundSkipped(uint64 indexed round);
    /// @notice An update passed the cosine and norm checks.
    event UpdateAccepted(
        uint64 indexed round,
        address indexed worker,
        bytes32 updateHash,
        bytes32 newHistoryHash,
        uint256 normSquared,
        int256 historyDot
    );
    /// @notice An update failed a check; `verdict` says which.
    event UpdateRejected(
        uint64 indexed round,
        address indexed worker,
        bytes32 updateHash,
        Verdict verdict,
        uint256 normSquared,
        int256 historyDot
    );
    /// @notice The global model of `round` (round 0 = initial model), packed like an update.
    event GlobalModel(
        uint64 indexed round,
        bytes32 modelHash,
        uint256 totalData,
        uint256 updates,
        uint256 saturatedLanes,
        bytes model
    );

    // ------------------------------------------------------------------ errors
    /// @notice A constructor argument is out of range.
    error InvalidParameter(string name);
    /// @notice Only the edge server may call this.
    error NotServer(address caller);
    /// @notice The caller is not a registered worker.
    error NotRegistered(address caller);
    /// @notice The worker is already registered.
    error AlreadyRegistered(address worker);
    /// @notice Data size zero, or zero address.
    error InvalidWorker(address worker, uint256 dataSize);
    /// @notice Registering would push the total data size above MAX_TOTAL_DATA.
    error DataSizeTooLarge(uint256 total);
    /// @notice The round is not the open round (never opened, already closed, or a future round).
    error RoundNotOpen(uint64 round);
    /// @notice The round's deadline has passed.
    error DeadlinePassed(uint64 round, uint64 deadline);
    /// @notice The round's deadline has not passed yet.
    error DeadlineNotReached(uint64 round, uint64 deadline);
    /// @notice The worker already submitted in this round.
    error AlreadySubmitted(address worker, uint64 round);
    /// @notice A packed vector has the wrong byte length.
    error WrongLength(uint256 expected, uint256 actual);
    /// @notice Lanes beyond numParams in the last word are not zero.
    error NonZeroPadding();
    /// @notice The supplied history does not match the worker's stored commitment.
    error HistoryMismatch(bytes32 expected, bytes32 actual);
    /// @notice The worker's history is full (int32 lanes would overflow).
    error HistoryFull(address worker);
    /// @notice The round has no accepted updates to aggregate.
    error NoAcceptedUpdates(uint64 round);
    /// @notice The number of updates passed to aggregate differs from the number accepted.
    error WrongUpdateCount(uint256 expected, uint256 actual);
    /// @notice The updates passed to aggregate are not the accepted ones in acceptance order.
    error UpdatesMismatch();
    /// @notice The previous global model does not match the stored hash.
    error GlobalModelMismatch();
    /// @notice The initial model was already published.
    error ModelAlreadyPublished();
    /// @notice No global model yet: publish the initial model first.
    error ModelNotPublished();
    /// @notice The current round is still open (before its deadline or with accepted updates).
    error RoundStillOpen(uint64 round);
    /// @notice The norm hint is not floor(sqrt(|w|^2)).
    error WrongNormHint(uint256 normHint, uint256 normSquared);
    /// @notice A value does not fit an int16 lane.
    error ValueOutOfRange(uint256 index, int256 value);

    modifier onlyServer() {
        if (msg.sender != server) revert NotServer(msg.sender);
        _;
    }

    /// @param numParams_ model size d (1..MAX_PARAMS)
    /// @param fracBits_ fractional bits of the fixed-point values (0..15)
    /// @param roundBlocks_ round length tau in blocks (>= 1)
    /// @param epsilonPpm_ cosine threshold epsilon in ppm (-1e6..1e6)
    /// @param normBoundPpm_ norm bound k in ppm (> 0)
    /// @param unitScale_ integer length of a unit vector in the history (1..MAX_UNIT_SCALE)
    /// @param maxHistory_ accepted updates allowed per worker; 0 = as many as int32 history
    ///        lanes can hold, floor((2^31 - 1) / unitScale)
    constructor(
        uint256 numParams_,
        uint8 fracBits_,
        uint64 roundBlocks_,
        int256 epsilonPpm_,
        uint256 normBoundPpm_,
        uint256 unitScale_,
        uint256 maxHistory_
    ) {
        if (numParams_ == 0 || numParams_ > MAX_PARAMS) revert InvalidParameter("numParams");
        if (fracBits_ > 15) revert InvalidParameter("fracBits");
        if (roundBlocks_ == 0) revert InvalidParameter("roundBlocks");
        if (epsilonPpm_ < -int256(PPM) || epsilonPpm_ > int256(PPM)) {
            revert InvalidParameter("epsilonPpm");
        }
        if (normBoundPpm_ == 0 || normBoundPpm_ > type(uint64).max) {
            revert InvalidParameter("normBoundPpm");
        }
        if (unitScale_ == 0 || unitScale_ > MAX_UNIT_SCALE) revert InvalidParameter("unitScale");
        server = msg.sender;
        numParams = numParams_;
        numWords = (numParams_ + LANES - 1) / LANES;
        fracBits = fracBits_;
        roundBlocks = roundBlocks_;
        epsilonPpm = epsilonPpm_;
        normBoundPpm = normBoundPpm_;
        unitScale = unitScale_;
        // |H lane| <= n * unitScale must stay below 2^31.
        uint256 capacity = (BIAS32 - 1) / unitScale_;
        if (maxHistory_ > capacity) revert InvalidParameter("maxHistory");
        maxHistory = maxHistory_ == 0 ? capacity : maxHistory_;
        uint256 used = numParams_ % LANES;
        paddingMask = used == 0 ? 0 : type(uint256).max << (16 * used);
    }

    // ================================================================== ES functions

    /// @notice Register an edge device with its data size (its FedAvg weight).
    /// @param worker the ED's address
    /// @param dataSize number of local samples (> 0)
    function registerWorker(address worker, uint256 dataSize) external onlyServer {
        if (worker == address(0) || dataSize == 0) revert InvalidWorker(worker, dataSize);
        if (workers[worker].dataSize != 0) revert AlreadyRegistered(worker);
        uint256 total = totalData + dataSize;
        if (total > MAX_TOTAL_DATA) revert DataSizeTooLarge(total);
        totalData = total;
        workers[worker].dataSize = uint48(dataSize);
        emit WorkerRegistered(worker, dataSize);
    }

    /// @notice Publish the initial global model (round 0); EDs read it from the GlobalModel log.
    /// @param model the packed model
    function publishInitialModel(bytes calldata model) external onlyServer {
        if (globalModelHash != 0) revert ModelAlreadyPublished();
        _checkPacked(model);
        bytes32 h = _hashCalldata(model);
        globalModelHash = h;
        emit GlobalModel(0, h, 0, 0, 0, model);
    }

    /// @notice Open the next round, closing the current one unchanged if it expired empty.
    /// @return round the number of the new round
    function openRound() external onlyServer returns (uint64 round) {
        if (globalModelHash == 0) revert ModelNotPublished();
        uint64 cur = currentRound;
        if (cur != 0) {
            Round storage last = rounds[cur];
            if (!last.closed) {
                if (block.number <= last.deadline || last.accepted != 0) revert RoundStillOpen(cur);
                last.closed = true;
                emit RoundSkipped(cur);
            }
        }
        round = cur + 1;
        currentRound = round;
        uint64 deadline = uint64(block.number) + roundBlocks;
        rounds[round].deadline = deadline;
        emit RoundOpened(round, deadline);
    }

    /// @notice FedAvg of the round's accepted updates, weighted by data size, added to the
    ///         previous global model; emits the new model and stores its hash.
    /// @dev    new_i = clamp(prev_i + round_half_up(sum_k n_k w_ki / sum_k n_k)) per lane,
    ///         clamped to int16 (clamped lanes are counted in the event).
    /// @param round the open round, after its deadline
    /// @param previousGlobal the packed current global model (checked against its hash)
    /// @param contributors the accepted workers in acceptance order (from UpdateAccepted logs)
    /// @param updates their packed updates (from their submit calldata)
    function aggregate(
        uint64 round,
        bytes calldata previousGlobal,
        address[] calldata contributors,
        bytes[] calldata updates
    ) external onlyServer {
        Round storage rd = rounds[round];
        _requireOpen(round, rd);
        if (block.number <= rd.deadline) revert DeadlineNotReached(round, rd.deadline);
        uint256 count = rd.accepted;
        if (count == 0) revert NoAcceptedUpdates(round);
        if (contributors.length != count) revert WrongUpdateCount(count, contributors.length);
        if (updates.length != count) revert WrongUpdateCount(count, updates.length);
        _checkLength(previousGlobal.length, numWords * WORD);
        if (_hashCalldata(previousGlobal) != globalModelHash) revert GlobalModelMismatch();
        uint256[] memory weights = new uint256[](count);
        bytes32 chain;
        for (uint256 i; i < count; ++i) {
            _checkLength(updates[i].length, numWords * WORD);
            chain = _link(chain, contributors[i], _hashCalldata(updates[i]));
            weights[i] = workers[contributors[i]].dataSize;
        }
        if (chain != rd.chain) revert UpdatesMismatch();
        uint256 total = rd.totalData;
        (bytes memory model, uint256 saturated) = _fedAvg(previousGlobal, updates, weights, total);
        bytes32 h = keccak256(model);
        rd.closed = true;
        globalModelHash = h;
        emit GlobalModel(round, h, total, count, saturated, model);
    }

    // ================================================================== ED functions

    /// @notice Submit this round's update. Accepted iff it is the worker's first accepted update,
    ///         or |w| <= k * mean past |w| and mean_j cos(w, u_j) >= epsilon over the worker's
    ///         past accepted updates u_j (TBCIM section II-A). Rejections are events, not reverts.
    /// @param round the open round
    /// @param update the packed update (zigzag int16 lanes)
    /// @param history the caller's packed history H (empty before its first accepted update)
    /// @param normHint floor(|w|) of the update, computed off chain and checked here
    /// @return accepted whether the update passed the checks
    function submit(uint64 round, bytes calldata update, bytes calldata history, uint256 normHint)
        external
        returns (bool accepted)
    {
        Worker memory wk = _admit(round, update, history);
        (uint256 sq, int256 dot, bytes32 newHistory) = _evaluate(update, history, normHint);
        Verdict verdict = _judge(sq, dot, wk.accepted, wk.normSum);
        bytes32 updateHash = _hashCalldata(update);
        wk.lastRound = round;
        if (verdict != Verdict.Accepted) {
            workers[msg.sender] = wk;
            emit UpdateRejected(round, msg.sender, updateHash, verdict, sq, dot);
            return false;
        }
        wk.accepted += 1;
        wk.normSum += uint112(normHint);
        workers[msg.sender] = wk;
        historyHash[msg.sender] = newHistory;
        Round storage rd = rounds[round];
        rd.accepted += 1;
        rd.totalData += wk.dataSize;
        rd.chain = _link(rd.chain, msg.sender, updateHash);
        emit UpdateAccepted(round, msg.sender, updateHash, newHistory, sq, dot);
        return true;
    }

    /// @dev All checks that make a submission revert; returns the caller's worker record.
    function _admit(uint64 round, bytes calldata update, bytes calldata history)
        private
        view
        returns (Worker memory wk)
    {
        wk = workers[msg.sender];
        if (wk.dataSize == 0) revert NotRegistered(msg.sender);
        Round storage rd = rounds[round];
        _requireOpen(round, rd);
        if (block.number > rd.deadline) revert DeadlinePassed(round, rd.deadline);
        if (wk.lastRound == round) revert AlreadySubmitted(msg.sender, round);
        _checkPacked(update);
        bytes32 stored = historyHash[msg.sender];
        if (stored == 0) {
            _checkLength(history.length, 0);
            return wk;
        }
        _checkLength(history.length, numWords * HISTORY_BYTES_PER_WORD);
        bytes32 given = _hashCalldata(history);
        if (given != stored) revert HistoryMismatch(stored, given);
        if (wk.accepted >= maxHistory) revert HistoryFull(msg.sender);
    }

    /// @dev |w|^2, w.H and keccak(H') for a submission; H' lives in scratch memory past the
    ///      free memory pointer and is only hashed. Reverts if the norm hint is wrong.
    function _evaluate(bytes calldata update, bytes calldata history, uint256 normHint)
        private
        view
        returns (uint256 sq, int256 dot, bytes32 newHistory)
    {
        uint256 scratch;
        assembly ("memory-safe") {
            scratch := mload(0x40)
        }
        (sq, dot) = _verify(update, history, normHint, scratch);
        _checkNormHint(normHint, sq);
        uint256 historyBytes = numWords * HISTORY_BYTES_PER_WORD;
        assembly ("memory-safe") {
            newHistory := keccak256(scratch, historyBytes)
        }
    }

    // ================================================================== views (codec, checks)

    /// @notice Decode a packed update/model into its int16 values (numWords * 16 lanes).
    function decodeUpdate(bytes calldata packed) external view returns (int256[] memory values) {
        _checkLength(packed.length, numWords * WORD);
        values = new int256[](numWords * LANES);
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

    /// @notice Encode int16 values (length numParams) into a packed update/model.
    function encodeUpdate(int256[] calldata values) external view returns (bytes memory packed) {
        _checkLength(values.length, numParams);
        uint256[] memory biased = new uint256[](numWords * LANES);
        for (uint256 i; i < values.length; ++i) {
            int256 v = values[i];
            if (v < -int256(BIAS16) || v >= int256(BIAS16)) revert ValueOutOfRange(i, v);
            biased[i] = uint256(v + int256(BIAS16));
        }
        for (uint256 i = values.length; i < biased.length; ++i) {
            biased[i] = BIAS16;
        }
        packed = new bytes(numWords * WORD);
        for (uint256 j; j < numWords; ++j) {
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
    function decodeHistory(bytes calldata packed) external view returns (int256[] memory values) {
        _checkLength(packed.length, numWords * HISTORY_BYTES_PER_WORD);
        values = new int256[](numWords * LANES);
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

    /// @notice The exact integer step the contract applies to an accepted update: the next
    ///         history, |w|^2 and w.H (history may be empty = the zero vector).
    function nextHistory(bytes calldata update, bytes calldata history)
        external
        view
        returns (bytes memory next, uint256 normSquared, int256 historyDot)
    {
        _checkPacked(update);
        bool hasHistory = history.length != 0;
        if (hasHistory) _checkLength(history.length, numWords * HISTORY_BYTES_PER_WORD);
        next = new bytes(numWords * HISTORY_BYTES_PER_WORD);
        uint256 out;
        assembly ("memory-safe") {
            out := add(next, 32)
        }
        (normSquared,) = _verify(update, history, 0, out);
        (, historyDot) = _verify(update, history, _isqrt(normSquared), out);
    }

    /// @notice The verdict submit() would give for |w|^2, w.H and a history of n accepted
    ///         updates with the given norm sum.
    function judge(uint256 normSquared, int256 historyDot, uint256 accepted, uint256 normSum)
        external
        view
        returns (Verdict)
    {
        return _judge(normSquared, historyDot, accepted, normSum);
    }

    /// @notice The FedAvg step of aggregate() without the round checks (for verification).
    function fedAvg(bytes calldata previousGlobal, bytes[] calldata updates, uint256[] calldata weights)
        external
        view
        returns (bytes memory model, uint256 saturatedLanes)
    {
        _checkLength(previousGlobal.length, numWords * WORD);
        _checkLength(weights.length, updates.length);
        uint256 total;
        for (uint256 i; i < updates.length; ++i) {
            _checkLength(updates[i].length, numWords * WORD);
            total += weights[i];
        }
        if (updates.length == 0 || total == 0 || total > MAX_TOTAL_DATA) {
            revert InvalidParameter("weights");
        }
        return _fedAvg(previousGlobal, updates, weights, total);
    }

    // ================================================================== internals

    function _requireOpen(uint64 round, Round storage rd) private view {
        if (round == 0 || round != currentRound || rd.closed) revert RoundNotOpen(round);
    }

    function _checkLength(uint256 actual, uint256 expected) private pure {
        if (actual != expected) revert WrongLength(expected, actual);
    }

    /// @dev Length of a packed update/model and zero padding lanes.
    function _checkPacked(bytes calldata packed) private view {
        uint256 words = numWords;
        _checkLength(packed.length, words * WORD);
        uint256 last;
        assembly ("memory-safe") {
            last := calldataload(add(packed.offset, mul(sub(words, 1), 32)))
        }
        if (last & paddingMask != 0) revert NonZeroPadding();
    }

    /// @dev normHint must be floor(sqrt(sq)).
    function _checkNormHint(uint256 normHint, uint256 sq) private pure {
        bool wrong = normHint >= 2 ** 64 || normHint * normHint > sq;
        if (wrong || (normHint + 1) * (normHint + 1) <= sq) {
            revert WrongNormHint(normHint, sq);
        }
    }

    function _hashCalldata(bytes calldata data) private pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let p := mload(0x40)
            calldatacopy(p, data.offset, data.length)
            h := keccak256(p, data.length)
        }
    }

    function _link(bytes32 chain, address worker, bytes32 updateHash) private pure returns (bytes32) {
        return keccak256(abi.encode(chain, worker, updateHash));
    }

    /// @dev Cosine rule and norm bound (TBCIM section II-A). With H = sum_j u_j * S where the
    ///      u_j are the past accepted unit vectors and S = unitScale, the mean cosine is
    ///      w.H / (n S |w|). Accept iff w.H * 1e6 >= eps_ppm * n * S * |w|, decided on squares
    ///      (no square root), and |w|^2 (n 1e6)^2 <= (k_ppm * normSum)^2.
    function _judge(uint256 sq, int256 dot, uint256 n, uint256 normSum) private view returns (Verdict) {
        if (sq == 0) return Verdict.ZeroUpdate;
        if (n == 0) return Verdict.Accepted;
        if (sq * (n * PPM) ** 2 > (normBoundPpm * normSum) ** 2) return Verdict.NormBound;
        int256 lhs = dot * int256(PPM);
        int256 rhs = epsilonPpm * int256(n * unitScale);
        bool ok;
        if (lhs >= 0) {
            ok = rhs <= 0 || uint256(lhs) ** 2 >= uint256(rhs) ** 2 * sq;
        } else {
            ok = rhs < 0 && uint256(-lhs) ** 2 <= uint256(-rhs) ** 2 * sq;
        }
        return ok ? Verdict.Accepted : Verdict.Cosine;
    }

    /// @dev floor(sqrt(x)) (Newton iteration from a power-of-two upper bound).
    function _isqrt(uint256 x) private pure returns (uint256 r) {
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
    function _zigzag16(uint256 u) private pure returns (uint256 z) {
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
        private
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
        private
        pure
        returns (uint256 sq, int256 dot)
    {
        uint256 sa;
        uint256 sb;
        for (uint256 k; k < 256; k += 64) {
            sa += (sumA >> k) & 0xffffffffffffffff;
            sb += (sumB >> k) & 0xffffffffffffffff;
        }
        sq = sqA + lanes * BIAS16 * BIAS16 - 2 * BIAS16 * sa;
        dot = int256(dtA + lanes * BIAS16 * BIAS32) - int256(BIAS32 * sa) - int256(BIAS16 * sb);
    }

    /// @dev Run _pass for `update`/`history` with norm hint `norm`, H' to memory at `out`.
    function _verify(bytes calldata update, bytes calldata history, uint256 norm, uint256 out)
        private
        view
        returns (uint256 sq, int256 dot)
    {
        uint256 r = norm == 0 ? 0 : (unitScale << 24) / norm;
        uint256 c = (BIAS16 * r + (1 << 23)) >> 24;
        uint256 u;
        uint256 h;
        assembly ("memory-safe") {
            u := update.offset
            h := history.offset
            if iszero(history.length) { h := calldatasize() }
            mstore(0, r)
            mstore(0x20, mul(c, ONE_64))
        }
        (uint256 sqA, uint256 dtA, uint256 sumA, uint256 sumB) = _pass(u, h, numWords, out);
        (sq, dot) = _totals(sqA, dtA, sumA, sumB, numWords * LANES);
        if (history.length == 0) dot = 0;
    }

    /// @dev Weighted sum per lane with four 64-bit-lane accumulators per word (update lane
    ///      p = 4m + g sits in accumulator g at bits 64m; sum_k n_k (w + 2^15) < 2^64 because
    ///      N <= MAX_TOTAL_DATA), then per lane
    ///      new = prev + floor((sum_k n_k (w_k + 2^15) + floor(N/2)) / N) - 2^15, clamped to int16.
    function _fedAvg(
        bytes calldata previousGlobal,
        bytes[] calldata updates,
        uint256[] memory weights,
        uint256 total
    ) private view returns (bytes memory model, uint256 saturated) {
        uint256[] memory offsets = new uint256[](updates.length);
        for (uint256 i; i < updates.length; ++i) {
            bytes calldata upd = updates[i];
            uint256 off;
            assembly ("memory-safe") {
                off := upd.offset
            }
            offsets[i] = off;
        }
        uint256 prev;
        assembly ("memory-safe") {
            prev := previousGlobal.offset
        }
        model = new bytes(numWords * WORD);
        saturated = _modelWords(offsets, weights, prev, model, total);
    }

    /// @dev Fills `model` word by word (see _modelWord); returns the number of clamped lanes.
    function _modelWords(
        uint256[] memory offsets,
        uint256[] memory weights,
        uint256 prev,
        bytes memory model,
        uint256 total
    ) private pure returns (uint256 saturated) {
        uint256 opStart;
        uint256 toWeight;
        uint256 dst;
        assembly ("memory-safe") {
            opStart := add(offsets, 32)
            toWeight := sub(weights, offsets)
            dst := add(model, 32)
        }
        uint256 opEnd = opStart + 32 * offsets.length;
        for (uint256 at; at < model.length; at += WORD) {
            uint256 g;
            assembly ("memory-safe") {
                g := calldataload(add(prev, at))
            }
            (uint256 word, uint256 sat) = _modelWord(opStart, opEnd, toWeight, at, g, total);
            saturated += sat;
            assembly ("memory-safe") {
                mstore(add(dst, at), word)
            }
        }
    }

    /// @dev Word `at` of the new model (zigzag) from the previous word `g` (zigzag).
    function _modelWord(
        uint256 opStart,
        uint256 opEnd,
        uint256 toWeight,
        uint256 at,
        uint256 g,
        uint256 total
    )
        private
        pure
        returns (uint256 word, uint256 saturated)
    {
        (uint256 acc0, uint256 acc1, uint256 acc2, uint256 acc3) =
            _accumulate(opStart, opEnd, toWeight, at);
        (word, saturated) = _finalize(_decode16(g), acc0, acc1, acc2, acc3, total);
        word = _zigzag16(word);
    }

    /// @dev Weighted lane sums of word `at` of every update: four accumulators of 64-bit
    ///      lanes (lane p = 4m + g in accumulator g at bits 64m) of n_k (w + 2^15).
    function _accumulate(uint256 opStart, uint256 opEnd, uint256 toWeight, uint256 at)
        private
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

    /// @dev One word of the new model in offset binary from the previous word `g` (offset
    ///      binary) and the accumulators: per lane q = floor((acc + floor(N/2)) / N) (the
    ///      biased mean, < 2^16) and new = g + q - 2^15, clamped to [0, 2^16). The sum is
    ///      formed in 32-bit lanes (even and odd lanes) as t = g + q + 2^15, which is in range
    ///      iff bit 16 of t is set and bit 17 clear; a word with an out-of-range lane takes the
    ///      per-lane clamping path. Returns the word and the number of clamped lanes.
    function _finalize(uint256 g, uint256 acc0, uint256 acc1, uint256 acc2, uint256 acc3, uint256 total)
        private
        pure
        returns (uint256 word, uint256 saturated)
    {
        uint256 half = total >> 1;
        uint256 biasedMean;
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
        return _addMean(g, biasedMean);
    }

    /// @dev g + q - 2^15 per lane (see _finalize), clamping only if some lane is out of range.
    function _addMean(uint256 g, uint256 q) private pure returns (uint256 word, uint256 saturated) {
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
    function _decode16(uint256 z) private pure returns (uint256 b) {
        assembly {
            b := xor(xor(and(shr(1, z), LOW15_16),
                TOP_16),
                mul(and(z, LSB_16), 0xffff))
        }
    }
}
