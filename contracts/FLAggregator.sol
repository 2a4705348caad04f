// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import "./FLVectors.sol";

/// @title FLAggregator: verification and FedAvg for one FL task, shared by its winning edge servers
/// @notice TBCIM section II-A, Fig. 3. The winning edge servers (ESs) of a task share one
///         aggregator: they "cooperatively train a single FL model". Each ES registers its own
///         edge devices (EDs) with their data sizes, up to the data size d_s it declared in the
///         auction. Any ES can open and close rounds, and anyone can after a grace period, so an
///         ES failure only affects its own EDs.
///
///         A round: (optional) commit window, then a submission window that ends at the deadline;
///         then aggregation, chunk by chunk. Each ED submits one update per round, in one or more
///         transactions of whole chunks. When its last chunk arrives the update is judged:
///         - zero update, wrong norm hint, missing commitment, wrong history: rejected;
///         - duplicate: its hash was accepted before (by anyone, in any round): rejected;
///         - reference rule: cosine with the last global update (shared by every ED, on chain,
///           steerable by no single ED) must be at least `referenceEpsilonPpm`; a round that
///           accepts nothing and rejects by this rule drops the reference (`ReferenceCleared`);
///         - history rule (the paper's): mean cosine with the ED's own past accepted updates in
///           the current window must be at least `historyEpsilonPpm`.
///         At aggregation, accepted updates whose norm exceeds `normBoundPpm` times the round's
///         data-weighted median accepted norm are excluded. The rest are averaged (FedAvg
///         weighted by data size); the new model and the mean update (the next reference) are
///         emitted chunk by chunk, with their hashes in storage.
///         The fixed-point scale (fractional bits) is the clients' business: the arithmetic is
///         scale-free.
/// @dev    Vectors never touch storage: they travel in calldata and logs, and storage holds keccak
///         commitments. Every accepted update's bytes are in its own `UpdateChunks` log, so
///         aggregation never depends on a top-level transaction's input. Encoding (see
///         docs/contracts.md and tbcim/blockchain/codec.py):
///         - update / model / reference: 16 int16 lanes per 256-bit word, lane p at bits
///           [16p, 16p+16), zigzag coded; unused lanes of the last word must be zero;
///         - history H (running sum of unit-normalised accepted updates, unit = `unitScale`):
///           int32 zigzag lanes, two words per update word (the reversed quads of the update);
///         - chunk j holds words [j * chunkWords, min((j + 1) * chunkWords, numWords));
///         - an update's hash is the chain u_{j+1} = keccak(u_j, keccak(chunk j)), u_0 = 0; a
///           history's and a model's hash are the same chain over their chunks.
///         Arithmetic is word-wise (SWAR) in unchecked assembly: see _pass, _refPass, _fedAvg.
contract FLAggregator {
    // ------------------------------------------------------------------ constants
    /// @notice Largest allowed history unit (the unit vector's scale).
    uint256 private constant MAX_UNIT_SCALE = 2 ** 24;
    /// @notice Largest allowed sum of declared data sizes: FedAvg weights are data sizes times
    ///         a 16-bit clipping factor, and sum_k n'_k (w + 2^15) must stay below 2^64.
    uint256 private constant MAX_TOTAL_DATA = 2 ** 32 - 1;
    /// @notice Largest allowed model size in parameters.
    uint256 private constant MAX_PARAMS = 2 ** 18;
    /// @notice Largest transaction that geth's and reth's pools accept (bytes).
    uint256 private constant MAX_TX_BYTES = 131_072;
    /// @notice EIP-7825's per-transaction gas cap.
    uint256 private constant MAX_TX_GAS = 2 ** 24;
    /// @notice Bytes of a transaction besides its ABI arguments (selector, RLP envelope,
    ///         signature, fees), a generous bound used by the size checks.
    uint256 private constant TX_OVERHEAD_BYTES = 1024;

    /// @notice Why an update was rejected (0 = accepted).
    enum Verdict {
        Accepted,
        ZeroUpdate,
        WrongNormHint,
        NotCommitted,
        HistoryMismatch,
        Duplicate,
        ReferenceCosine,
        HistoryCosine,
        NormBound
    }

    /// @notice Deployment parameters (all checked by the constructor).
    /// @param numParams model size d (1..MAX_PARAMS)
    /// @param chunkWords 256-bit words per chunk (a chunk is the unit of submission and
    ///        aggregation; the constructor checks that every transaction fits the limits)
    /// @param maxWorkers registered EDs allowed (bounds an aggregation transaction)
    /// @param commitBlocks commit window in blocks (0 = no commit-reveal)
    /// @param roundBlocks submission window in blocks (>= 1)
    /// @param graceBlocks after the deadline + grace anyone may aggregate or open a round;
    ///        after the deadline + 2 grace an unaggregated round can be closed unchanged
    /// @param historyWindow accepted updates per history window of the paper's rule (0 = rule
    ///        off); a full window starts afresh, so no ED is ever locked out
    /// @param historyEpsilonPpm threshold of the paper's mean-cosine rule, in ppm
    /// @param referenceEpsilonPpm threshold of the cosine with the last global update, in ppm
    /// @param normBoundPpm k in ppm (>= 1e6): an update with |w| > k * the round's weighted
    ///        median accepted |w| is left out of FedAvg
    /// @param clipPpm c in ppm: each included update is scaled down to at most c * that median
    ///        before averaging (norm clipping; 0 = no clipping)
    /// @param unitScale integer length of a unit vector in the history (1..MAX_UNIT_SCALE)
    struct Settings {
        uint32 numParams;
        uint32 chunkWords;
        uint32 maxWorkers;
        uint32 commitBlocks;
        uint32 roundBlocks;
        uint32 graceBlocks;
        uint32 historyWindow;
        int32 historyEpsilonPpm;
        int32 referenceEpsilonPpm;
        uint32 normBoundPpm;
        uint32 clipPpm;
        uint32 unitScale;
    }

    /// @dev One storage slot per worker.
    struct Worker {
        uint48 dataSize; // > 0 iff registered
        uint16 server; // index + 1 of the ES that registered it
        uint32 startedRound; // round of its latest submission attempt
        uint32 nextChunk; // next chunk of that attempt (numChunks = finished)
        uint32 acceptedRound; // latest round with an accepted update
        uint32 historyCount; // accepted updates in the current history window
        uint64 norm16; // floor(|w| 2^16) of its latest accepted update
    }

    /// @dev Running state of a submission spread over several transactions.
    struct Pending {
        bytes32 updateHash;
        bytes32 oldHistoryHash;
        bytes32 newHistoryHash;
        uint256 normSquared;
        int256 historyDot;
        int256 referenceDot;
        uint256 norm16;
    }

    /// @dev Round state.
    struct Round {
        uint64 commitDeadline; // last block for commitments (= opening block without commit-reveal)
        uint64 deadline; // last block for submissions
        uint32 accepted; // accepted updates
        uint32 included; // accepted updates within the norm bound (set when aggregation starts)
        uint32 nextChunk; // aggregation progress
        uint32 saturated; // clamped lanes of the new model
        bool aggregating;
        bool closed;
        uint64 includedData; // data of the included updates (FedAvg denominator / 2^16)
        uint64 normThreshold16; // norm bound in units of 2^-16
        uint64 clipNorm16; // clipping norm in units of 2^-16 (0 = none)
        uint32 referenceRejected; // updates rejected by the reference rule
        uint64 lastProgress; // block of the latest aggregation step
        uint256 clippedWeight; // sum of the included updates' clipped weights n'_k
        uint256 meanNormSquared; // |mean update|^2, accumulated over chunks
    }

    // ------------------------------------------------------------------ configuration
    /// @notice Model size in parameters.
    uint256 public immutable numParams;
    /// @notice 256-bit words of a packed update (ceil(numParams / 16)).
    uint256 public immutable numWords;
    /// @notice Words per chunk.
    uint256 public immutable chunkWords;
    /// @notice Chunks per update.
    uint256 public immutable numChunks;
    /// @notice Registered EDs allowed.
    uint256 private immutable maxWorkers;
    /// @notice Commit window in blocks (0 = no commit-reveal).
    uint64 private immutable commitBlocks;
    /// @notice Submission window in blocks.
    uint64 private immutable roundBlocks;
    /// @notice Grace period in blocks.
    uint64 private immutable graceBlocks;
    /// @notice History window of the paper's rule (0 = rule off).
    uint256 private immutable historyWindow;
    /// @notice Threshold of the paper's mean-cosine rule in ppm.
    int256 private immutable historyEpsilonPpm;
    /// @notice Threshold of the cosine with the last global update in ppm.
    int256 private immutable referenceEpsilonPpm;
    /// @notice Norm bound k in ppm.
    uint256 private immutable normBoundPpm;
    /// @notice Clipping level c in ppm of the weighted median norm (0 = no clipping).
    uint256 private immutable clipPpm;
    /// @notice Integer length of a unit vector in the history.
    uint256 private immutable unitScale;
    /// @notice Who publishes the initial model (the requester or its market contract).
    address public immutable publisher;
    uint256 private immutable paddingMask;

    // ------------------------------------------------------------------ state
    /// @notice The winning ESs, in the order given at deployment (index + 1 = server id).
    address[] public servers;
    /// @notice Data size each ES declared in the auction.
    uint256[] public declaredData;
    /// @notice Data size each ES has registered so far.
    uint256[] public registeredData;
    /// @notice Server id (index + 1) of an ES address, 0 if none.
    mapping(address es => uint256) public serverId;
    /// @notice Registered EDs.
    uint256 public workerCount;
    /// @notice The round that is open or was opened last (0 before the first round).
    uint64 public currentRound;
    /// @notice Block after which anyone may open the next round (last close + grace).
    uint64 public openDeadline;
    /// @notice Chunks of the initial model published so far.
    uint256 public publishedChunks;
    /// @notice keccak chain of the current global model's chunks (0 before it is published).
    bytes32 public globalModelHash;
    /// @notice Whether a reference direction (the last global update) exists.
    bool public hasReference;
    /// @notice |reference|^2 (integer lanes).
    uint256 public referenceNormSquared;
    /// @notice Hash chain of the current reference's chunks (0 = none).
    bytes32 public referenceHash;
    uint256 private generation; // which model chunk hashes are current (0 or 1)
    uint256 private refGeneration; // which reference chunk hashes are current (0 or 1)
    bytes32 private pendingModelHash; // running hash of the chunks published / aggregated so far
    bytes32 private pendingReferenceHash;
    mapping(uint256 gen => mapping(uint256 chunk => bytes32)) private modelChunk;
    mapping(uint256 gen => mapping(uint256 chunk => bytes32)) private referenceChunk;
    /// @notice Registered EDs.
    mapping(address worker => Worker) public workers;
    /// @notice Hash chain of each ED's packed history H (0 = empty window).
    mapping(address worker => bytes32) public historyHash;
    /// @notice Each ED's commitment keccak(abi.encode(worker, round, updateHash)).
    mapping(address worker => bytes32) public commitments;
    mapping(address worker => Pending) private pending;
    /// @notice Round in which an update hash was accepted (0 = never).
    mapping(bytes32 updateHash => uint256) public acceptedIn;
    mapping(uint256 round => Round) private roundState;
    mapping(uint256 round => address[]) private acceptedWorkers;
    /// @notice keccak chain over (worker, chunk hash) of every chunk submitted in a round,
    ///         per chunk index, in submission order.
    mapping(uint256 round => mapping(uint256 chunk => bytes32)) public chunkChain;

    // ------------------------------------------------------------------ events
    /// @notice An ED was registered by its ES with its data size.
    event WorkerRegistered(address indexed worker, address indexed server, uint256 dataSize);
    /// @notice An ES handed its role to a new address.
    event ServerRotated(address indexed previous, address indexed next);
    /// @notice A round opened.
    event RoundOpened(uint64 indexed round, uint64 commitDeadline, uint64 deadline);
    /// @notice A round was closed without aggregation (no accepted update, or abandoned).
    event RoundSkipped(uint64 indexed round, bool abandoned);
    /// @notice Round `round` accepted nothing and rejected updates by the reference rule: the
    ///         reference is dropped, so the next round's mean sets a new one (no lock-out).
    event ReferenceCleared(uint64 indexed round);
    /// @notice A commitment to this round's update.
    event Committed(uint64 indexed round, address indexed worker, bytes32 commitment);
    /// @notice Chunks of an update, as submitted (the data aggregation reads).
    event UpdateChunks(uint64 indexed round, address indexed worker, uint256 firstChunk, bytes data);
    /// @notice An update passed every check at submission.
    event UpdateAccepted(
        uint64 indexed round,
        address indexed worker,
        bytes32 updateHash,
        bytes32 newHistoryHash,
        uint256 normSquared,
        int256 historyDot,
        int256 referenceDot
    );
    /// @notice An update was rejected; `verdict` says why.
    event UpdateRejected(
        uint64 indexed round,
        address indexed worker,
        bytes32 updateHash,
        Verdict verdict,
        uint256 normSquared,
        int256 historyDot,
        int256 referenceDot
    );
    /// @notice An accepted update exceeded the round's norm bound and is left out of FedAvg.
    event UpdateExcluded(uint64 indexed round, address indexed worker, uint256 norm16, uint256 threshold16);
    /// @notice Chunk `chunk` of the global model of `round` and of the mean update that led to
    ///         it (the next reference); round 0 is the initial model (reference may be empty).
    event GlobalChunk(uint64 indexed round, uint256 indexed chunk, bytes model, bytes ref);
    /// @notice The global model of `round` is complete.
    event GlobalModel(
        uint64 indexed round, bytes32 modelHash, uint256 totalData, uint256 updates, uint256 saturatedLanes
    );

    // ------------------------------------------------------------------ errors
    /// @notice A constructor argument is out of range.
    error InvalidParameter(string name);
    /// @notice A transaction of a round would exceed MAX_TX_BYTES.
    error ExceedsTxBytes(string transaction, uint256 size, uint256 limit);
    /// @notice A transaction of a round could exceed MAX_TX_GAS.
    error ExceedsTxGas(string transaction, uint256 gasBound, uint256 limit);
    /// @notice Only a winning ES may call this (before the grace period ends).
    error NotServer(address caller);
    /// @notice Only the publisher may publish the initial model.
    error NotPublisher(address caller);
    /// @notice The caller is not a registered worker.
    error NotRegistered(address caller);
    /// @notice The worker is already registered.
    error AlreadyRegistered(address worker);
    /// @notice Data size zero, or zero address.
    error InvalidWorker(address worker, uint256 dataSize);
    /// @notice The ES would register more data than it declared in the auction.
    error ExceedsDeclaredData(address server, uint256 declared, uint256 requested);
    /// @notice maxWorkers EDs are registered already.
    error TooManyWorkers(uint256 maxWorkers);
    /// @notice The round is not open (never opened, closed, or not the current round).
    error RoundNotOpen(uint64 round);
    /// @notice Outside the commit window.
    error CommitClosed(uint64 round, uint64 commitDeadline);
    /// @notice Outside the submission window.
    error SubmissionClosed(uint64 round, uint64 opensAfter, uint64 deadline);
    /// @notice The round's deadline has not passed yet.
    error DeadlineNotReached(uint64 round, uint64 deadline);
    /// @notice The worker already started or finished a submission this round.
    error AlreadySubmitted(address worker, uint64 round);
    /// @notice A chunk arrived out of order (or from a submission not started this round).
    error ChunkOutOfOrder(uint256 expected, uint256 actual);
    /// @notice A packed vector has the wrong byte length.
    error WrongLength(uint256 expected, uint256 actual);
    /// @notice Lanes beyond numParams in the last word are not zero.
    error NonZeroPadding();
    /// @notice The supplied reference chunk is not the last global update's.
    error ReferenceMismatch(uint256 chunk);
    /// @notice The round has no accepted updates to aggregate.
    error NoAcceptedUpdates(uint64 round);
    /// @notice The chunks passed to aggregate are not the round's submitted ones, in order.
    error UpdatesMismatch(uint256 chunk);
    /// @notice The supplied previous model chunk does not match the stored hash.
    error GlobalModelMismatch(uint256 chunk);
    /// @notice The initial model was already published.
    error ModelAlreadyPublished();
    /// @notice No global model yet: publish the initial model first.
    error ModelNotPublished();
    /// @notice The current round is still open or awaiting aggregation.
    error RoundStillOpen(uint64 round);
    /// @notice The round was already aggregated or closed.
    error RoundClosed(uint64 round);
    /// @notice The norm hint is not floor(sqrt(|w|^2 2^32)).
    error WrongNormHint(uint256 normHint, uint256 normSquared);
    /// @notice A value does not fit an int16 lane.
    error ValueOutOfRange(uint256 index, int256 value);

    /// @param s deployment parameters (see Settings)
    /// @param publisher_ who publishes the initial model
    /// @param servers_ the task's winning ESs
    /// @param declaredData_ the data size each declared in the auction
    constructor(
        Settings memory s,
        address publisher_,
        address[] memory servers_,
        uint256[] memory declaredData_
    ) {
        if (s.numParams == 0 || s.numParams > MAX_PARAMS) revert InvalidParameter("numParams");
        if (s.chunkWords == 0) revert InvalidParameter("chunkWords");
        if (s.maxWorkers == 0) revert InvalidParameter("maxWorkers");
        if (s.roundBlocks == 0) revert InvalidParameter("roundBlocks");
        if (s.graceBlocks == 0) revert InvalidParameter("graceBlocks");
        if (s.historyEpsilonPpm < -int256(PPM) || s.historyEpsilonPpm > int256(PPM)) {
            revert InvalidParameter("historyEpsilonPpm");
        }
        if (s.referenceEpsilonPpm < -int256(PPM) || s.referenceEpsilonPpm > int256(PPM)) {
            revert InvalidParameter("referenceEpsilonPpm");
        }
        if (s.normBoundPpm < PPM) revert InvalidParameter("normBoundPpm");
        if (s.clipPpm != 0 && s.clipPpm < PPM) revert InvalidParameter("clipPpm");
        if (s.unitScale == 0 || s.unitScale > MAX_UNIT_SCALE) revert InvalidParameter("unitScale");
        // |H lane| <= window * unitScale must stay below 2^31.
        if (s.historyWindow > (BIAS32 - 1) / s.unitScale) revert InvalidParameter("historyWindow");
        if (publisher_ == address(0)) revert InvalidParameter("publisher");
        if (servers_.length == 0 || servers_.length >= type(uint16).max) revert InvalidParameter("servers");
        if (declaredData_.length != servers_.length) revert InvalidParameter("declaredData");
        uint256 words = (uint256(s.numParams) + LANES - 1) / LANES;
        uint256 chunk = s.chunkWords < words ? s.chunkWords : words;
        _checkLimits(chunk, s.maxWorkers);
        numParams = s.numParams;
        numWords = words;
        chunkWords = chunk;
        numChunks = (words + chunk - 1) / chunk;
        maxWorkers = s.maxWorkers;
        commitBlocks = s.commitBlocks;
        roundBlocks = s.roundBlocks;
        graceBlocks = s.graceBlocks;
        historyWindow = s.historyWindow;
        historyEpsilonPpm = s.historyEpsilonPpm;
        referenceEpsilonPpm = s.referenceEpsilonPpm;
        normBoundPpm = s.normBoundPpm;
        clipPpm = s.clipPpm;
        unitScale = s.unitScale;
        publisher = publisher_;
        uint256 used = uint256(s.numParams) % LANES;
        paddingMask = used == 0 ? 0 : type(uint256).max << (16 * used);
        uint256 declaredTotal;
        for (uint256 i; i < servers_.length; ++i) {
            address es = servers_[i];
            if (es == address(0) || serverId[es] != 0) revert InvalidParameter("servers");
            declaredTotal += declaredData_[i];
            if (declaredData_[i] == 0 || declaredTotal > MAX_TOTAL_DATA) {
                revert InvalidParameter("declaredData");
            }
            servers.push(es);
            declaredData.push(declaredData_[i]);
            registeredData.push(0);
            serverId[es] = i + 1;
        }
    }

    /// @dev Upper bounds on the size and gas of the largest submit and aggregate
    ///      transactions for `chunk` words per chunk and `workers` submitters (mirrored by
    ///      tbcim.blockchain.aggregator.tx_bounds). Gas bound: EIP-7623 floor price (40 gas) for every byte, plus generous execution
    ///         bounds per word (history pass, reference pass, hashing, logging) and per worker.
    function _txBounds(uint256 chunk, uint256 workers)
        private
        pure
        returns (uint256 submitBytes, uint256 submitGas, uint256 aggregateBytes, uint256 aggregateGas)
    {
        // update + reference + history (4 words of calldata per word) and 6 ABI head words.
        submitBytes = TX_OVERHEAD_BYTES + WORD * (4 * chunk + 12);
        submitGas = 21_000 + 40 * submitBytes + 6_000 * chunk + 400_000;
        // previous chunk, one chunk per worker, worker addresses, ABI offsets and lengths.
        aggregateBytes = TX_OVERHEAD_BYTES + WORD * (chunk * (workers + 1) + 3 * workers + 8);
        // the first call also sorts the accepted norms (insertion sort, about 630 gas a step)
        aggregateGas = 21_000 + 40 * aggregateBytes + (400 * chunk + 30_000) * (workers + 1) + 400_000
            + 400 * workers * workers;
    }

    function _checkLimits(uint256 chunk, uint256 workers) private pure {
        (uint256 sb, uint256 sg, uint256 ab, uint256 ag) = _txBounds(chunk, workers);
        if (sb > MAX_TX_BYTES) revert ExceedsTxBytes("submit", sb, MAX_TX_BYTES);
        if (ab > MAX_TX_BYTES) revert ExceedsTxBytes("aggregate", ab, MAX_TX_BYTES);
        if (sg > MAX_TX_GAS) revert ExceedsTxGas("submit", sg, MAX_TX_GAS);
        if (ag > MAX_TX_GAS) revert ExceedsTxGas("aggregate", ag, MAX_TX_GAS);
    }

    // ================================================================== ES functions

    modifier onlyServer() {
        if (serverId[msg.sender] == 0) revert NotServer(msg.sender);
        _;
    }

    /// @notice Register one of the caller's EDs with its data size (its FedAvg weight).
    /// @param worker the ED's address
    /// @param dataSize number of local samples (> 0); the caller's registered total may not
    ///        exceed the data size it declared in the auction
    function registerWorker(address worker, uint256 dataSize) external onlyServer {
        if (worker == address(0) || dataSize == 0) revert InvalidWorker(worker, dataSize);
        if (workers[worker].dataSize != 0) revert AlreadyRegistered(worker);
        if (workerCount >= maxWorkers) revert TooManyWorkers(maxWorkers);
        uint256 id = serverId[msg.sender];
        uint256 total = registeredData[id - 1] + dataSize;
        if (total > declaredData[id - 1]) {
            revert ExceedsDeclaredData(msg.sender, declaredData[id - 1], total);
        }
        registeredData[id - 1] = total;
        workerCount += 1;
        workers[worker].dataSize = uint48(dataSize);
        workers[worker].server = uint16(id);
        emit WorkerRegistered(worker, msg.sender, dataSize);
    }

    /// @notice Hand the caller's ES role to a new address (key rotation).
    function rotateServer(address next) external onlyServer {
        if (next == address(0) || serverId[next] != 0) revert InvalidParameter("next");
        uint256 id = serverId[msg.sender];
        servers[id - 1] = next;
        serverId[next] = id;
        serverId[msg.sender] = 0;
        emit ServerRotated(msg.sender, next);
    }

    /// @notice Publish chunk `chunk` of the initial global model (round 0), in order, and
    ///         optionally of an initial reference direction (empty bytes = none).
    function publishInitialChunk(uint256 chunk, bytes calldata model, bytes calldata ref) external {
        if (msg.sender != publisher) revert NotPublisher(msg.sender);
        if (globalModelHash != 0) revert ModelAlreadyPublished();
        if (chunk != publishedChunks) revert ChunkOutOfOrder(publishedChunks, chunk);
        _checkPacked(model, chunk);
        if (chunk > 0 && (ref.length == 0) != (referenceChunk[0][0] == 0)) {
            revert WrongLength(model.length, ref.length);
        }
        bytes32 h = _hashCalldata(model);
        modelChunk[0][chunk] = h;
        pendingModelHash = keccak256(abi.encode(chunk == 0 ? bytes32(0) : pendingModelHash, h));
        uint256 refSq;
        if (ref.length != 0) {
            _checkPacked(ref, chunk);
            h = _hashCalldata(ref);
            referenceChunk[0][chunk] = h;
            pendingReferenceHash =
                keccak256(abi.encode(chunk == 0 ? bytes32(0) : pendingReferenceHash, h));
            (refSq,) = _refPass(ref, ref);
        }
        emit GlobalChunk(0, chunk, model, ref);
        referenceNormSquared += refSq;
        publishedChunks = chunk + 1;
        if (chunk + 1 == numChunks) {
            globalModelHash = pendingModelHash;
            if (referenceNormSquared != 0) {
                hasReference = true;
                referenceHash = pendingReferenceHash;
            }
            openDeadline = uint64(block.number) + graceBlocks;
            emit GlobalModel(0, pendingModelHash, 0, 0, 0);
        }
    }

    /// @notice Open the next round. A winning ES may always; anyone may once the grace period
    ///         after the last close has passed. An expired round with no accepted update, or an
    ///         accepted round left unaggregated for two grace periods, is closed unchanged first.
    /// @return round the number of the new round
    function openRound() external returns (uint64 round) {
        if (globalModelHash == 0) revert ModelNotPublished();
        uint64 cur = currentRound;
        if (cur != 0) {
            Round storage last = roundState[cur];
            if (!last.closed) {
                if (block.number <= last.deadline) revert RoundStillOpen(cur);
                bool abandoned = last.accepted != 0;
                uint256 progress = last.lastProgress > last.deadline ? last.lastProgress : last.deadline;
                if (abandoned && block.number <= progress + 2 * graceBlocks) revert RoundStillOpen(cur);
                last.closed = true;
                if (openDeadline < last.deadline + graceBlocks) openDeadline = last.deadline + graceBlocks;
                emit RoundSkipped(cur, abandoned);
                if (!abandoned && last.referenceRejected != 0) {
                    hasReference = false;
                    referenceHash = 0;
                    referenceNormSquared = 0;
                    emit ReferenceCleared(cur);
                }
            }
        }
        if (serverId[msg.sender] == 0 && block.number <= openDeadline) revert NotServer(msg.sender);
        round = cur + 1;
        currentRound = round;
        uint64 commitDeadline = uint64(block.number) + commitBlocks;
        uint64 deadline = commitDeadline + roundBlocks;
        roundState[round].commitDeadline = commitDeadline;
        roundState[round].deadline = deadline;
        emit RoundOpened(round, commitDeadline, deadline);
    }

    /// @notice Aggregate chunk `chunk` (in order) of the round, after its deadline. A winning ES
    ///         may; anyone may after the deadline plus the grace period. The first call decides
    ///         the norm bound and which accepted updates are included.
    /// @param round the current round
    /// @param chunk the chunk index (0..numChunks-1, in order)
    /// @param previous chunk `chunk` of the current global model (from its GlobalChunk log)
    /// @param submitters every worker that submitted this chunk in the round, in submission order
    ///        (from the UpdateChunks logs)
    /// @param chunks their chunk bytes, in the same order
    function aggregateChunk(
        uint64 round,
        uint256 chunk,
        bytes calldata previous,
        address[] calldata submitters,
        bytes[] calldata chunks
    ) external {
        Round storage rd = roundState[round];
        if (round == 0 || round != currentRound) revert RoundNotOpen(round);
        if (rd.closed) revert RoundClosed(round);
        if (block.number <= rd.deadline) revert DeadlineNotReached(round, rd.deadline);
        if (serverId[msg.sender] == 0 && block.number <= uint256(rd.deadline) + graceBlocks) {
            revert NotServer(msg.sender);
        }
        if (chunk != rd.nextChunk) revert ChunkOutOfOrder(rd.nextChunk, chunk);
        if (!rd.aggregating) _startAggregation(round, rd);
        if (submitters.length != chunks.length) revert WrongLength(submitters.length, chunks.length);
        if (_hashCalldata(previous) != modelChunk[generation][chunk]) revert GlobalModelMismatch(chunk);
        uint256[] memory weights = _chunkWeights(round, chunk, submitters, chunks, rd);
        _averageChunk(round, chunk, previous, chunks, weights, rd);
        if (chunk + 1 == numChunks) _finishAggregation(round, rd);
    }

    /// @dev FedAvg of one chunk (denominator N 2^16, see _weight), recorded and logged.
    function _averageChunk(
        uint64 round,
        uint256 chunk,
        bytes calldata previous,
        bytes[] calldata chunks,
        uint256[] memory weights,
        Round storage rd
    ) private {
        uint256 total = uint256(rd.includedData) << 16;
        (bytes memory model, bytes memory mean, uint256 saturated) =
            _fedAvg(previous, chunks, weights, total, total - rd.clippedWeight);
        _recordChunk(chunk, keccak256(model), keccak256(mean));
        rd.meanNormSquared += _memNormSquared(mean);
        rd.saturated += uint32(saturated);
        rd.nextChunk = uint32(chunk + 1);
        rd.lastProgress = uint64(block.number);
        emit GlobalChunk(round, chunk, model, mean);
    }

    /// @dev Check the supplied chunks against the round's chain for `chunk`; the FedAvg weight
    ///      of each is _weight (0 for rejected, excluded and unfinished submissions, which
    ///      still sit in the chain).
    function _chunkWeights(
        uint64 round,
        uint256 chunk,
        address[] calldata submitters,
        bytes[] calldata chunks,
        Round storage rd
    ) private view returns (uint256[] memory weights) {
        uint256 expected = _chunkBytes(chunk);
        weights = new uint256[](chunks.length);
        bytes32 chain;
        for (uint256 k; k < chunks.length; ++k) {
            if (chunks[k].length != expected) revert WrongLength(expected, chunks[k].length);
            chain = _link(chain, submitters[k], _hashCalldata(chunks[k]));
            Worker storage wk = workers[submitters[k]];
            if (wk.acceptedRound == round) weights[k] = _weight(wk, rd);
        }
        if (chain != chunkChain[round][chunk]) revert UpdatesMismatch(chunk);
    }

    /// @dev FedAvg weight of an accepted update: 0 above the norm bound, else n * c16 with the
    ///      clipping factor c16 = min(2^16, floor(clip 2^16 / |w|)) (2^16 = no clipping), so
    ///      sum_k n_k c16_k w_k / (N 2^16) is FedAvg of the clipped updates.
    function _weight(Worker storage wk, Round storage rd) private view returns (uint256) {
        uint256 norm = wk.norm16;
        if (norm > rd.normThreshold16) return 0;
        uint256 clip = rd.clipNorm16;
        uint256 factor = clip == 0 || norm <= clip ? 1 << 16 : (clip << 16) / norm;
        return uint256(wk.dataSize) * factor;
    }

    /// @dev Store the hashes of the next model's and reference's chunk `chunk` (in the slots
    ///      that are not current) and extend their running hash chains.
    function _recordChunk(uint256 chunk, bytes32 modelChunkHash, bytes32 referenceChunkHash) private {
        modelChunk[1 - generation][chunk] = modelChunkHash;
        referenceChunk[1 - refGeneration][chunk] = referenceChunkHash;
        bytes32 start = chunk == 0 ? bytes32(0) : pendingModelHash;
        pendingModelHash = keccak256(abi.encode(start, modelChunkHash));
        start = chunk == 0 ? bytes32(0) : pendingReferenceHash;
        pendingReferenceHash = keccak256(abi.encode(start, referenceChunkHash));
    }

    /// @dev Decide the norm bound (k times the data-weighted median of the accepted norms) and
    ///      the FedAvg denominator; emit UpdateExcluded for accepted updates above the bound.
    function _startAggregation(uint64 round, Round storage rd) private {
        address[] storage accepted = acceptedWorkers[round];
        uint256 n = accepted.length;
        if (n == 0) revert NoAcceptedUpdates(round);
        uint256[] memory norms = new uint256[](n);
        uint256[] memory sizes = new uint256[](n);
        uint256 total;
        for (uint256 i; i < n; ++i) {
            Worker storage wk = workers[accepted[i]];
            norms[i] = wk.norm16;
            sizes[i] = wk.dataSize;
            total += wk.dataSize;
        }
        uint256 median = _weightedMedian(norms, sizes, total);
        uint256 threshold = median * normBoundPpm / PPM;
        rd.aggregating = true;
        rd.normThreshold16 = uint64(threshold);
        rd.clipNorm16 = uint64(median * clipPpm / PPM);
        uint256 includedData;
        uint256 included;
        uint256 clipped;
        for (uint256 i; i < n; ++i) {
            Worker storage wk = workers[accepted[i]];
            if (wk.norm16 > threshold) {
                emit UpdateExcluded(round, accepted[i], wk.norm16, threshold);
            } else {
                includedData += wk.dataSize;
                included += 1;
                clipped += _weight(wk, rd);
            }
        }
        rd.includedData = uint64(includedData);
        rd.included = uint32(included);
        rd.clippedWeight = clipped;
    }

    /// @dev The new model becomes current; so does the mean update as the reference, unless
    ///      it rounded to zero (then the previous reference stays: a zero mean has no direction).
    function _finishAggregation(uint64 round, Round storage rd) private {
        generation = 1 - generation;
        globalModelHash = pendingModelHash;
        if (rd.meanNormSquared != 0) {
            refGeneration = 1 - refGeneration;
            referenceHash = pendingReferenceHash;
            referenceNormSquared = rd.meanNormSquared;
            hasReference = true;
        }
        rd.closed = true;
        openDeadline = uint64(block.number) + graceBlocks;
        emit GlobalModel(round, pendingModelHash, rd.includedData, rd.included, rd.saturated);
    }

    // ================================================================== ED functions

    /// @notice Commit to this round's update: keccak256(abi.encode(worker, round, updateHash)).
    function commit(uint64 round, bytes32 commitment) external {
        if (workers[msg.sender].dataSize == 0) revert NotRegistered(msg.sender);
        Round storage rd = roundState[round];
        if (round == 0 || round != currentRound || rd.closed) revert RoundNotOpen(round);
        if (commitBlocks == 0 || block.number > rd.commitDeadline) {
            revert CommitClosed(round, rd.commitDeadline);
        }
        commitments[msg.sender] = commitment;
        emit Committed(round, msg.sender, commitment);
    }

    /// @notice Submit whole chunks of this round's update, from `firstChunk` on, in order.
    ///         When the last chunk arrives the update is judged (see the contract's notice);
    ///         rejections are events, not reverts.
    /// @param round the open round
    /// @param firstChunk index of the first chunk in `update`
    /// @param update the packed chunks (zigzag int16 lanes)
    /// @param history the matching chunks of the caller's packed history H (empty when the
    ///        history rule is off or the caller's window is empty)
    /// @param ref the matching chunks of the last global update (empty if none exists)
    /// @param normHint floor(sqrt(|w|^2 2^32)) of the whole update (read with the first chunk)
    /// @return done whether the last chunk was processed
    function submit(
        uint64 round,
        uint256 firstChunk,
        bytes calldata update,
        bytes calldata history,
        bytes calldata ref,
        uint256 normHint
    ) external returns (bool done) {
        Worker memory wk = _admit(round, firstChunk);
        if (update.length == 0) revert WrongLength(_chunkBytes(firstChunk), 0);
        Pending memory p;
        if (firstChunk == 0) {
            p.norm16 = normHint;
        } else {
            p = pending[msg.sender];
        }
        bool withHistory = historyWindow != 0 && historyHash[msg.sender] != 0
            && wk.historyCount < historyWindow;
        _checkLength(history.length, withHistory ? 2 * update.length : 0);
        uint256 next = _submitChunks(firstChunk, update, history, ref, p);
        emit UpdateChunks(round, msg.sender, firstChunk, update);
        wk.startedRound = uint32(round);
        wk.nextChunk = uint32(next);
        done = next == numChunks;
        if (!done) {
            workers[msg.sender] = wk;
            pending[msg.sender] = p;
            return false;
        }
        _conclude(round, wk, p, withHistory);
    }

    /// @dev Checks that make a submission revert; returns the caller's worker record.
    function _admit(uint64 round, uint256 firstChunk) private view returns (Worker memory wk) {
        wk = workers[msg.sender];
        if (wk.dataSize == 0) revert NotRegistered(msg.sender);
        Round storage rd = roundState[round];
        if (round == 0 || round != currentRound || rd.closed) revert RoundNotOpen(round);
        if (block.number <= rd.commitDeadline || block.number > rd.deadline) {
            revert SubmissionClosed(round, rd.commitDeadline, rd.deadline);
        }
        if (firstChunk == 0) {
            if (wk.startedRound == round) revert AlreadySubmitted(msg.sender, round);
        } else {
            uint256 expected = wk.startedRound == round ? wk.nextChunk : 0;
            if (firstChunk != expected || expected == numChunks) {
                revert ChunkOutOfOrder(expected, firstChunk);
            }
        }
    }

    /// @dev Process the supplied chunks in order, from chunk `next`; returns the next index.
    function _submitChunks(
        uint256 next,
        bytes calldata update,
        bytes calldata history,
        bytes calldata ref,
        Pending memory p
    ) private returns (uint256) {
        _checkLength(ref.length, hasReference ? update.length : 0);
        uint256 at;
        while (at < update.length) {
            uint256 end = _chunkEnd(next, at, update.length);
            _submitChunk(
                next,
                update[at:end],
                ref.length == 0 ? ref : ref[at:end],
                history.length == 0 ? history : history[2 * at:2 * end],
                p
            );
            at = end;
            next += 1;
        }
        return next;
    }

    /// @dev End offset of chunk `chunk` starting at byte `at` of a submission of `length` bytes.
    function _chunkEnd(uint256 chunk, uint256 at, uint256 length) private view returns (uint256 end) {
        if (chunk >= numChunks) revert WrongLength(at, length);
        end = at + _chunkBytes(chunk);
        if (end > length) revert WrongLength(end, length);
    }

    /// @dev One chunk: link it into the round's chain for its index, check the reference chunk,
    ///      accumulate |w|^2, w.r, w.H and the hash chains.
    function _submitChunk(
        uint256 chunk,
        bytes calldata u,
        bytes calldata r,
        bytes calldata h,
        Pending memory p
    ) private {
        _checkPacked(u, chunk);
        bytes32 hu = _hashCalldata(u);
        uint256 round = currentRound;
        chunkChain[round][chunk] = _link(chunkChain[round][chunk], msg.sender, hu);
        p.updateHash = keccak256(abi.encode(p.updateHash, hu));
        if (r.length != 0 && _hashCalldata(r) != referenceChunk[refGeneration][chunk]) {
            revert ReferenceMismatch(chunk);
        }
        (uint256 sq, int256 dot) = _refPass(u, r);
        p.normSquared += sq;
        p.referenceDot += dot;
        if (historyWindow != 0) _historyChunk(u, h, p);
    }

    /// @dev The paper's rule for one chunk: w.H, and the chunk of the next history H' (hashed
    ///      into the chain; H' lives in scratch memory past the free memory pointer).
    function _historyChunk(bytes calldata u, bytes calldata h, Pending memory p) private view {
        uint256 scratch;
        assembly ("memory-safe") {
            scratch := mload(0x40)
        }
        (, int256 dot) = _verify(u, h, p.norm16, scratch, unitScale);
        p.historyDot += dot;
        uint256 bytes_ = u.length * 2;
        bytes32 next;
        assembly ("memory-safe") {
            next := keccak256(scratch, bytes_)
        }
        p.newHistoryHash = keccak256(abi.encode(p.newHistoryHash, next));
        if (h.length != 0) p.oldHistoryHash = keccak256(abi.encode(p.oldHistoryHash, _hashCalldata(h)));
    }

    /// @dev Judge a complete update and record the verdict.
    function _conclude(uint64 round, Worker memory wk, Pending memory p, bool withHistory) private {
        Verdict verdict = _judge(round, wk, p, withHistory);
        if (verdict != Verdict.Accepted) {
            if (verdict == Verdict.ReferenceCosine) roundState[round].referenceRejected += 1;
            workers[msg.sender] = wk;
            emit UpdateRejected(
                round, msg.sender, p.updateHash, verdict, p.normSquared, p.historyDot, p.referenceDot
            );
            return;
        }
        acceptedIn[p.updateHash] = round;
        wk.acceptedRound = uint32(round);
        wk.norm16 = uint64(p.norm16);
        if (historyWindow != 0) {
            wk.historyCount = withHistory ? wk.historyCount + 1 : 1;
            historyHash[msg.sender] = p.newHistoryHash;
        }
        workers[msg.sender] = wk;
        roundState[round].accepted += 1;
        acceptedWorkers[round].push(msg.sender);
        emit UpdateAccepted(
            round, msg.sender, p.updateHash, p.newHistoryHash, p.normSquared, p.historyDot, p.referenceDot
        );
    }

    function _judge(uint64 round, Worker memory wk, Pending memory p, bool withHistory)
        private
        view
        returns (Verdict)
    {
        uint256 sq = p.normSquared;
        if (sq == 0) return Verdict.ZeroUpdate;
        if (!_isNormHint(p.norm16, sq)) return Verdict.WrongNormHint;
        if (commitBlocks != 0) {
            bytes32 expected = keccak256(abi.encode(msg.sender, round, p.updateHash));
            if (commitments[msg.sender] != expected) return Verdict.NotCommitted;
        }
        if (withHistory && p.oldHistoryHash != historyHash[msg.sender]) return Verdict.HistoryMismatch;
        if (acceptedIn[p.updateHash] != 0) return Verdict.Duplicate;
        if (hasReference && !_cosineAtLeast(p.referenceDot, referenceEpsilonPpm, 1, sq, referenceNormSquared)) {
            return Verdict.ReferenceCosine;
        }
        if (withHistory) {
            uint256 n = wk.historyCount * unitScale;
            if (!_cosineAtLeast(p.historyDot, historyEpsilonPpm, n, sq, 1)) return Verdict.HistoryCosine;
        }
        return Verdict.Accepted;
    }

    // ================================================================== views

    /// @notice The state of round `round` (see Round).
    function rounds(uint256 round) external view returns (Round memory) {
        return roundState[round];
    }

    /// @notice keccak of chunk `chunk` of the current global model and of the reference.
    function chunkHashes(uint256 chunk) external view returns (bytes32 model, bytes32 ref) {
        return (modelChunk[generation][chunk], referenceChunk[refGeneration][chunk]);
    }

    // ================================================================== internals

    function _chunkBytes(uint256 chunk) private view returns (uint256) {
        uint256 start = chunk * chunkWords;
        uint256 end = start + chunkWords;
        if (end > numWords) end = numWords;
        return (end - start) * WORD;
    }

    function _checkLength(uint256 actual, uint256 expected) private pure {
        if (actual != expected) revert WrongLength(expected, actual);
    }

    /// @dev Length of chunk `chunk` of a packed vector and, in the last chunk, zero padding.
    function _checkPacked(bytes calldata packed, uint256 chunk) private view {
        _checkLength(packed.length, _chunkBytes(chunk));
        if (chunk + 1 != numChunks) return;
        uint256 last;
        assembly ("memory-safe") {
            last := calldataload(add(packed.offset, sub(packed.length, 32)))
        }
        if (last & paddingMask != 0) revert NonZeroPadding();
    }

    /// @dev normHint must be floor(sqrt(sq 2^32)).
    function _isNormHint(uint256 normHint, uint256 sq) private pure returns (bool) {
        if (normHint >= 2 ** 100) return false;
        uint256 target = sq << 32;
        return normHint * normHint <= target && (normHint + 1) * (normHint + 1) > target;
    }

    function _link(bytes32 chain, address worker, bytes32 chunkHash) private pure returns (bytes32) {
        return keccak256(abi.encode(chain, worker, chunkHash));
    }
}
