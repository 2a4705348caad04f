// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

/// @notice The part of FLAggregator the market reads: the hash of the task's current global model.
interface IFLAggregator {
    function globalModelHash() external view returns (bytes32);
}

/// @title FLMarket: the TBCIM service market on chain, from sealed bids to the EDs' pay
/// @notice TBCIM section II-A, steps 1-9, one FL task at a time:
///         1. the requester publishes a task (`publishTask`) with its reward in escrow; the
///            task's terms commit to the mechanism, the evaluation set, the target accuracy,
///            the bid space and every deadline (absolute block numbers);
///         2. candidate ESs seal their bids and data profiles (d_s, θ_s) (`commitBid`), then
///            open them (`revealBid`); the reveals' salts fold into a public random seed;
///         3. the mechanism's outcome (winners, payments) is computed off chain by every
///            revealing ES from the revealed bids and the seed, and becomes final when a strict
///            majority of the revealers vote for the same outcome (`submitOutcome`);
///         4-5. each winner solves its Stackelberg game with its EDs and records the EDs'
///            amounts V_i when it accepts the award (`acceptAward`, a Merkle root built on chain);
///         6-7. the winners train on the task's FLAggregator (`setAggregator`, by the requester);
///         8. after the training deadline the requester attests the accuracy of the
///            aggregator's final global model (`attest`); a requester silent past the attestation
///            deadline forfeits (`settleUnattested`); the escrow pays the winners;
///         9. the EDs' amounts are carved out of each winner's payment before the winner is
///            credited, and each ED claims its own pay with a Merkle proof (`claimDevicePay`).
///         An Open task can be cancelled by its requester (`cancelTask`); a task whose outcome
///         or acceptances do not arrive in time expires (`expireTask`, anyone). Every payout is
///         a pull payment; the only external calls are the aggregator read in `attest` and the
///         transfers at the end of `claimDevicePay` and `withdraw` (checks-effects-interactions).
/// @dev    Why a vote: RANet (the paper's mechanism) cannot run on chain. The revealing ESs are
///         the chain's validators (proof of stake); each recomputes the mechanism from the
///         revealed bids and the seed off chain (`tbcim market verify` does the same), and no
///         single party, in particular not the requester, can record an outcome.
///         IMPORTANT: see docs/contracts.md, "Trust model", for who must be honest for what.
contract FLMarket {
    /// @notice Lifecycle of a task.
    enum Status {
        None,
        Open,
        Awarded,
        Training,
        Completed,
        Failed,
        Cancelled
    }

    /// @notice The terms a task is published with; fixed for its lifetime.
    /// @dev Deadlines are absolute block numbers, strictly increasing. A window (a, b] is open
    ///      while a < block.number <= b: commit (publish, commitDeadline], reveal
    ///      (commitDeadline, revealDeadline], outcome votes (revealDeadline, awardDeadline],
    ///      acceptance until acceptDeadline, attestation (trainingDeadline, attestDeadline].
    struct TaskTerms {
        bytes32 spec; // keccak of the canonical task JSON (opaque to the contract)
        bytes32 mechanism; // keccak of the mechanism's name and model-file hash (opaque)
        bytes32 evalSet; // hash of the requester's evaluation set (opaque)
        uint32 targetAccuracyPpm; // accuracy the model must reach, ppm (<= 1e6)
        uint16 minBidders; // reveals needed before an outcome can be voted (>= 1)
        uint128 bidLow; // bid space [bidLow, bidHigh], wei
        uint128 bidHigh;
        uint64 commitDeadline;
        uint64 revealDeadline;
        uint64 awardDeadline;
        uint64 acceptDeadline;
        uint64 trainingDeadline;
        uint64 attestDeadline;
    }

    struct Task {
        address requester;
        Status status;
        uint32 accepted; // winners that accepted the award
        address aggregator; // the task's FLAggregator (set by the requester once Awarded)
        uint256 escrow; // the reward held, wei
        uint256 totalPayment; // Σ payments of the final outcome, wei
        uint256 seed; // XOR of keccak(abi.encode(bidder, salt)) over the reveals
        bytes32 outcome; // keccak(abi.encode(winners, payments)) of the final outcome
        TaskTerms terms;
        address[] winners; // ascending
        address[] revealers; // in reveal order
    }

    /// @notice One bidder's sealed, then revealed, bid.
    /// @dev One slot after the commitment: bid <= bidHigh < 2^128, dataSize < 2^64 and
    ///      emdPpm <= MAX_EMD_PPM are checked at reveal.
    struct Bid {
        bytes32 commitment;
        bool revealed;
        uint128 bid; // the ES's cost, wei
        uint64 dataSize; // d_s
        uint32 emdPpm; // θ_s · 1e6
    }

    /// @notice Everything the clients, `market verify` and reconciliation read about a task.
    struct TaskView {
        address requester;
        Status status;
        uint256 escrow;
        TaskTerms terms;
        address aggregator;
        uint256 seed;
        bytes32 outcome;
        uint256 totalPayment;
        address[] winners;
        uint256[] payments;
        uint256 revealed;
        uint256 accepted;
    }

    uint256 private constant PPM = 1_000_000;
    /// @notice Share of its award (ppm) each winner is paid when the requester never names the
    ///         task's aggregator: it saw the outcome and walked away, and the winners bid for
    ///         nothing.
    uint256 public constant DEFAULT_FEE_PPM = 100_000;
    /// @notice θ (26) is the L1 distance of two label distributions, so it lies in [0, 2].
    uint256 private constant MAX_EMD_PPM = 2 * PPM;

    /// @notice The edge servers that may bid: the chain's proof-of-stake validators, fixed at
    ///         deployment. Only they commit, so only they reveal and vote on outcomes (a Sybil
    ///         outsider can neither bid nor out-vote them).
    mapping(address account => bool) public isServer;
    /// @notice Number of tasks published; task ids are 1..taskCount.
    uint256 public taskCount;
    mapping(uint256 taskId => Task) private tasks;
    mapping(uint256 taskId => mapping(address bidder => Bid)) private bids;
    /// @notice Votes per outcome hash.
    mapping(uint256 taskId => mapping(bytes32 outcome => uint256)) public votes;
    /// @notice Whether a revealer has voted.
    mapping(uint256 taskId => mapping(address bidder => bool)) public voted;
    /// @notice Payment of each winner in the final outcome, wei.
    mapping(uint256 taskId => mapping(address server => uint256)) public paymentOf;
    /// @notice Whether a winner has accepted its award.
    mapping(uint256 taskId => mapping(address server => bool)) public acceptedBy;
    /// @notice Merkle root of a winner's (ED, V_i) list.
    mapping(uint256 taskId => mapping(address server => bytes32)) public deviceRoot;
    /// @notice A winner's EDs' pay not yet claimed, wei (held by the contract once Completed).
    mapping(uint256 taskId => mapping(address server => uint256)) public devicePool;
    /// @notice Whether an ED has claimed its pay from a winner.
    mapping(uint256 taskId => mapping(address server => mapping(address device => bool))) public claimed;
    /// @notice Withdrawable balance of every participant.
    mapping(address account => uint256) public balanceOf;

    /// @notice Step 1: a task was published with `escrow` wei in escrow.
    event TaskPublished(uint256 indexed taskId, address indexed requester, uint256 escrow, TaskTerms terms);
    /// @notice The requester cancelled an Open task, or a task expired.
    event TaskCancelled(uint256 indexed taskId, address indexed by, bool expired);
    /// @notice The requester never named the aggregator: a winner was paid `fee` of its award.
    event RequesterDefaulted(uint256 indexed taskId, address indexed server, uint256 fee);
    /// @notice Step 2: a sealed bid.
    event BidCommitted(uint256 indexed taskId, address indexed bidder, bytes32 commitment);
    /// @notice Step 2: an opened bid; `salt` lets anyone recompute the seed.
    event BidRevealed(
        uint256 indexed taskId, address indexed bidder, uint256 bid, uint256 dataSize, uint256 emdPpm, bytes32 salt
    );
    /// @notice Step 3: a revealer voted for the outcome with hash `outcome`.
    event OutcomeVoted(uint256 indexed taskId, address indexed voter, bytes32 outcome);
    /// @notice Step 3: a majority of the revealers agreed on the outcome.
    event AwardFinalized(
        uint256 indexed taskId, address[] winners, uint256[] payments, uint256 seed, bytes32 outcome
    );
    /// @notice The requester named the task's FLAggregator.
    event AggregatorSet(uint256 indexed taskId, address aggregator);
    /// @notice Steps 4-5: a winner accepted and recorded its EDs' amounts V_i.
    event AwardAccepted(
        uint256 indexed taskId,
        address indexed server,
        bytes32 root,
        uint256 total,
        address[] devices,
        uint256[] amounts
    );
    /// @notice Step 6: every winner accepted; training begins.
    event TrainingStarted(uint256 indexed taskId);
    /// @notice Step 8: the requester attested the accuracy of `modelHash`.
    event AccuracyAttested(uint256 indexed taskId, bytes32 modelHash, uint256 accuracyPpm, bool targetMet);
    /// @notice Step 8: the requester did not attest by the attestation deadline.
    event Forfeited(uint256 indexed taskId);
    /// @notice Step 8: a winner was credited `amount`; `devicePool` stays for its EDs.
    event PaymentReleased(uint256 indexed taskId, address indexed server, uint256 amount, uint256 devicePool);
    /// @notice Escrow credited back to the requester.
    event EscrowRefunded(uint256 indexed taskId, address indexed requester, uint256 amount);
    /// @notice Step 9: an ED claimed its pay.
    event DevicePaid(uint256 indexed taskId, address indexed server, address indexed device, uint256 amount);
    /// @notice An account withdrew part of its balance.
    event Withdrawn(address indexed account, uint256 amount);

    /// @notice publishTask was called without a reward in escrow.
    error NoEscrow();
    /// @notice An accuracy (ppm) above 1e6.
    error InvalidAccuracy(uint256 accuracyPpm);
    /// @notice A task term is invalid.
    /// @param field the offending TaskTerms field, e.g. "bidHigh" or "revealDeadline"
    error InvalidTerms(string field);
    /// @notice No task with this id.
    error UnknownTask(uint256 taskId);
    /// @notice Only the task's requester may call this.
    error NotRequester(address caller);
    /// @notice The task is not in the status this call needs.
    error WrongStatus(uint256 taskId, Status status);
    /// @notice The call's window (opensAfter, closesAt] does not contain the current block.
    error WrongPhase(uint256 blockNumber, uint256 opensAfter, uint256 closesAt);
    /// @notice Too early: the block must be after `deadline`.
    error TooEarly(uint256 blockNumber, uint256 deadline);
    /// @notice Too late: the block must be at most `deadline`.
    error TooLate(uint256 blockNumber, uint256 deadline);
    /// @notice The caller already committed a bid for this task.
    error AlreadyCommitted(address bidder);
    /// @notice A zero commitment (it could never be opened).
    error InvalidCommitment();
    /// @notice The caller committed no bid for this task.
    error NotCommitted(address bidder);
    /// @notice The caller already revealed its bid.
    error AlreadyRevealed(address bidder);
    /// @notice The reveal does not hash to the caller's commitment.
    error RevealMismatch(bytes32 commitment, bytes32 revealed);
    /// @notice The bid is outside the task's bid space.
    error BidOutOfRange(uint256 bid, uint256 low, uint256 high);
    /// @notice A revealed profile is unusable (dataSize 0 or at least 2^64, or emdPpm above
    ///         MAX_EMD_PPM).
    error InvalidBid(uint256 dataSize, uint256 emdPpm);
    /// @notice The caller (or a listed winner) did not reveal a bid for this task.
    error NotBidder(address account);
    /// @notice The caller is not one of the edge servers allowed to bid.
    error NotServer(address account);
    /// @notice The caller already voted on this task's outcome.
    error AlreadyVoted(address voter);
    /// @notice Fewer reveals than the task's minimum number of bidders.
    error TooFewBidders(uint256 revealed, uint256 needed);
    /// @notice Two arrays differ in length, or a list that must not be empty is.
    /// @param expected the length required (the first array's)
    /// @param actual the length given
    error WrongLength(uint256 expected, uint256 actual);
    /// @notice A recipient is zero, out of ascending order (or repeated), or the caller itself.
    error InvalidRecipient(address recipient);
    /// @notice A listed payment or ED amount is zero.
    error ZeroPayment(address recipient);
    /// @notice The outcome's payments exceed the escrow.
    error PaymentsExceedEscrow(uint256 payments, uint256 escrow);
    /// @notice The aggregator was already set.
    error AggregatorAlreadySet(address aggregator);
    /// @notice The aggregator given is not the task's.
    error AggregatorMismatch(address given, address set);
    /// @notice The caller is not a winner of this task.
    error NotWinner(address caller);
    /// @notice The winner already accepted its award.
    error AlreadyAccepted(address server);
    /// @notice The EDs' amounts exceed the winner's payment.
    error ExceedsPayment(uint256 amounts, uint256 payment);
    /// @notice The attested model is not the aggregator's global model.
    error WrongModel(bytes32 given, bytes32 onChain);
    /// @notice A claim of zero.
    error NothingOwed(address device);
    /// @notice The (ED, amount) leaf is not in the winner's tree.
    error InvalidProof(address device, uint256 amount);
    /// @notice The ED already claimed its pay from this winner.
    error AlreadyClaimed(address device);
    /// @notice The amount exceeds the caller's balance.
    error InsufficientBalance(uint256 balance, uint256 requested);
    /// @notice Withdrawing zero.
    error ZeroAmount();
    /// @notice The transfer to the caller failed.
    error TransferFailed(address account, uint256 amount);

    /// @param servers_ the edge servers that may bid (distinct, non-zero, at least one)
    constructor(address[] memory servers_) {
        if (servers_.length == 0) revert InvalidTerms("servers");
        for (uint256 i; i < servers_.length; ++i) {
            address es = servers_[i];
            if (es == address(0) || isServer[es]) revert InvalidRecipient(es);
            isServer[es] = true;
        }
    }

    // ------------------------------------------------------------------ step 1: publish, cancel

    /// @notice Publish a task (step 1); the attached value is the escrow.
    /// @param t the task's terms (see TaskTerms)
    /// @return taskId the new task's id
    function publishTask(TaskTerms calldata t) external payable returns (uint256 taskId) {
        if (msg.value == 0) revert NoEscrow();
        if (t.targetAccuracyPpm > PPM) revert InvalidAccuracy(t.targetAccuracyPpm);
        if (t.minBidders == 0) revert InvalidTerms("minBidders");
        if (t.bidHigh == 0) revert InvalidTerms("bidHigh");
        if (t.bidLow > t.bidHigh) revert InvalidTerms("bidLow");
        if (t.commitDeadline <= block.number) revert InvalidTerms("commitDeadline");
        if (t.revealDeadline <= t.commitDeadline) revert InvalidTerms("revealDeadline");
        if (t.awardDeadline <= t.revealDeadline) revert InvalidTerms("awardDeadline");
        if (t.acceptDeadline <= t.awardDeadline) revert InvalidTerms("acceptDeadline");
        if (t.trainingDeadline <= t.acceptDeadline) revert InvalidTerms("trainingDeadline");
        if (t.attestDeadline <= t.trainingDeadline) revert InvalidTerms("attestDeadline");
        taskId = ++taskCount;
        Task storage task = tasks[taskId];
        task.requester = msg.sender;
        task.status = Status.Open;
        task.escrow = msg.value;
        task.terms = t;
        emit TaskPublished(taskId, msg.sender, msg.value, t);
    }

    /// @notice The requester cancels an Open task (before an outcome is final); the whole
    ///         escrow is credited back to it.
    function cancelTask(uint256 taskId) external {
        Task storage t = _task(taskId, Status.Open);
        if (msg.sender != t.requester) revert NotRequester(msg.sender);
        _cancel(taskId, t, false);
    }

    /// @notice Anyone expires a task whose outcome (Open past awardDeadline) or acceptances
    ///         (Awarded past acceptDeadline) did not arrive in time; the escrow is refunded.
    ///         If the requester never named the aggregator, no winner could accept: each winner
    ///         is paid DEFAULT_FEE_PPM of its award from the escrow, and the rest is refunded.
    function expireTask(uint256 taskId) external {
        Task storage t = _task(taskId, Status.None);
        uint256 deadline;
        if (t.status == Status.Open) deadline = t.terms.awardDeadline;
        else if (t.status == Status.Awarded) deadline = t.terms.acceptDeadline;
        else revert WrongStatus(taskId, t.status);
        if (block.number <= deadline) revert TooEarly(block.number, deadline);
        uint256 fees;
        if (t.status == Status.Awarded && t.aggregator == address(0)) {
            address[] storage winners = t.winners;
            for (uint256 i; i < winners.length; ++i) {
                uint256 fee = paymentOf[taskId][winners[i]] * DEFAULT_FEE_PPM / PPM;
                balanceOf[winners[i]] += fee;
                fees += fee;
                emit RequesterDefaulted(taskId, winners[i], fee);
            }
        }
        t.status = Status.Cancelled;
        emit TaskCancelled(taskId, msg.sender, true);
        _refund(taskId, t, t.escrow - fees);
    }

    // ------------------------------------------------------------------ step 2: sealed bids

    /// @notice Seal a bid (step 2), once per bidder, in the commit window; only an edge server
    ///         named at deployment may bid.
    /// @param commitment keccak256(abi.encode(taskId, bidder, bid, dataSize, emdPpm, salt)):
    ///        the bidder's address is inside, so nobody else can reveal (or copy) it
    function commitBid(uint256 taskId, bytes32 commitment) external {
        if (!isServer[msg.sender]) revert NotServer(msg.sender);
        Task storage t = _task(taskId, Status.Open);
        _inWindow(0, t.terms.commitDeadline);
        Bid storage b = bids[taskId][msg.sender];
        if (b.commitment != 0) revert AlreadyCommitted(msg.sender);
        if (commitment == 0) revert InvalidCommitment();
        b.commitment = commitment;
        emit BidCommitted(taskId, msg.sender, commitment);
    }

    /// @notice Open a sealed bid (step 2) in the reveal window. The bid is the ES's cost in
    ///         wei; dataSize = d_s and emdPpm = θ_s·1e6 are the public data the mechanism reads.
    ///         The seed absorbs keccak(abi.encode(bidder, salt)) by XOR (order-independent).
    function revealBid(uint256 taskId, uint256 bid, uint256 dataSize, uint256 emdPpm, bytes32 salt) external {
        Task storage t = _task(taskId, Status.Open);
        _inWindow(t.terms.commitDeadline, t.terms.revealDeadline);
        Bid storage b = bids[taskId][msg.sender];
        if (b.commitment == 0) revert NotCommitted(msg.sender);
        if (b.revealed) revert AlreadyRevealed(msg.sender);
        bytes32 opened = keccak256(abi.encode(taskId, msg.sender, bid, dataSize, emdPpm, salt));
        if (opened != b.commitment) revert RevealMismatch(b.commitment, opened);
        if (bid < t.terms.bidLow || bid > t.terms.bidHigh) revert BidOutOfRange(bid, t.terms.bidLow, t.terms.bidHigh);
        if (dataSize == 0 || dataSize > type(uint64).max || emdPpm > MAX_EMD_PPM) {
            revert InvalidBid(dataSize, emdPpm);
        }
        b.revealed = true;
        b.bid = uint128(bid); // bid <= bidHigh, a uint128
        b.dataSize = uint64(dataSize);
        b.emdPpm = uint32(emdPpm);
        t.revealers.push(msg.sender);
        t.seed ^= uint256(keccak256(abi.encode(msg.sender, salt)));
        emit BidRevealed(taskId, msg.sender, bid, dataSize, emdPpm, salt);
    }

    // ------------------------------------------------------------------ step 3: the outcome

    /// @notice A revealer votes for the mechanism's outcome (step 3), once, in the award window.
    ///         The outcome is final when more than half of the revealers voted for the same
    ///         (winners, payments). An empty outcome (nothing bought) cancels the task.
    /// @param winners revealers, strictly ascending by address
    /// @param payments each winner's payment in wei (> 0); Σ payments <= escrow
    function submitOutcome(uint256 taskId, address[] calldata winners, uint256[] calldata payments) external {
        Task storage t = _task(taskId, Status.Open);
        _inWindow(t.terms.revealDeadline, t.terms.awardDeadline);
        mapping(address => Bid) storage taskBids = bids[taskId];
        if (!taskBids[msg.sender].revealed) revert NotBidder(msg.sender);
        if (voted[taskId][msg.sender]) revert AlreadyVoted(msg.sender);
        uint256 revealed = t.revealers.length;
        if (revealed < t.terms.minBidders) revert TooFewBidders(revealed, t.terms.minBidders);
        if (winners.length != payments.length) revert WrongLength(winners.length, payments.length);
        uint256 total;
        address previous;
        for (uint256 i; i < winners.length; ++i) {
            address w = winners[i];
            if (w <= previous) revert InvalidRecipient(w);
            if (!taskBids[w].revealed) revert NotBidder(w);
            if (payments[i] == 0) revert ZeroPayment(w);
            total += payments[i];
            previous = w;
        }
        if (total > t.escrow) revert PaymentsExceedEscrow(total, t.escrow);
        bytes32 h = keccak256(abi.encode(winners, payments));
        voted[taskId][msg.sender] = true;
        uint256 count = ++votes[taskId][h];
        emit OutcomeVoted(taskId, msg.sender, h);
        if (count * 2 <= revealed) return;
        t.outcome = h;
        t.totalPayment = total;
        t.winners = winners;
        for (uint256 i; i < winners.length; ++i) {
            paymentOf[taskId][winners[i]] = payments[i];
        }
        emit AwardFinalized(taskId, winners, payments, t.seed, h);
        if (winners.length == 0) _cancel(taskId, t, false);
        else t.status = Status.Awarded;
    }

    // ------------------------------------------------------------------ steps 4-6: acceptance

    /// @notice The requester names the task's FLAggregator (deployed with the winners as its
    ///         servers), once, before the acceptance deadline. Winners check it before accepting.
    function setAggregator(uint256 taskId, address aggregator) external {
        Task storage t = _task(taskId, Status.Awarded);
        if (msg.sender != t.requester) revert NotRequester(msg.sender);
        if (block.number > t.terms.acceptDeadline) revert TooLate(block.number, t.terms.acceptDeadline);
        if (t.aggregator != address(0)) revert AggregatorAlreadySet(t.aggregator);
        if (aggregator == address(0)) revert InvalidRecipient(aggregator);
        t.aggregator = aggregator;
        emit AggregatorSet(taskId, aggregator);
    }

    /// @notice A winner accepts its award (steps 4-5) and records its EDs' amounts V_i, the
    ///         outcome of its Stackelberg game. The contract builds the Merkle root of the
    ///         (device, amount) leaves itself, so root and total agree by construction; the
    ///         total is carved out of the winner's payment at settlement.
    /// @param aggregator the task's aggregator, as the winner checked it
    /// @param devices the EDs, strictly ascending, non-zero, not the caller
    /// @param amounts each ED's V_i in wei (> 0); Σ amounts <= the caller's payment
    function acceptAward(uint256 taskId, address aggregator, address[] calldata devices, uint256[] calldata amounts)
        external
    {
        Task storage t = _task(taskId, Status.Awarded);
        uint256 payment = paymentOf[taskId][msg.sender];
        if (payment == 0) revert NotWinner(msg.sender);
        if (block.number > t.terms.acceptDeadline) revert TooLate(block.number, t.terms.acceptDeadline);
        if (aggregator == address(0) || aggregator != t.aggregator) revert AggregatorMismatch(aggregator, t.aggregator);
        if (acceptedBy[taskId][msg.sender]) revert AlreadyAccepted(msg.sender);
        if (devices.length == 0 || devices.length != amounts.length) revert WrongLength(devices.length, amounts.length);
        (bytes32 root, uint256 total) = _deviceRoot(devices, amounts);
        if (total > payment) revert ExceedsPayment(total, payment);
        acceptedBy[taskId][msg.sender] = true;
        deviceRoot[taskId][msg.sender] = root;
        devicePool[taskId][msg.sender] = total;
        emit AwardAccepted(taskId, msg.sender, root, total, devices, amounts);
        if (++t.accepted == t.winners.length) {
            t.status = Status.Training;
            emit TrainingStarted(taskId);
        }
    }

    // ------------------------------------------------------------------ step 8: attestation

    /// @notice The requester attests the accuracy of the aggregator's final global model on the
    ///         committed evaluation set (step 8), after the training deadline and by the
    ///         attestation deadline. Target met: settlement; missed: the escrow returns.
    /// @param modelHash must equal the aggregator's globalModelHash() now
    function attest(uint256 taskId, bytes32 modelHash, uint256 accuracyPpm) external {
        Task storage t = _task(taskId, Status.Training);
        if (msg.sender != t.requester) revert NotRequester(msg.sender);
        if (block.number <= t.terms.trainingDeadline) revert TooEarly(block.number, t.terms.trainingDeadline);
        if (block.number > t.terms.attestDeadline) revert TooLate(block.number, t.terms.attestDeadline);
        if (accuracyPpm > PPM) revert InvalidAccuracy(accuracyPpm);
        bytes32 onChain = IFLAggregator(t.aggregator).globalModelHash();
        if (modelHash != onChain) revert WrongModel(modelHash, onChain);
        bool met = accuracyPpm >= t.terms.targetAccuracyPpm;
        emit AccuracyAttested(taskId, modelHash, accuracyPpm, met);
        if (met) {
            _settle(taskId, t);
        } else {
            t.status = Status.Failed;
            _refund(taskId, t, t.escrow);
        }
    }

    /// @notice Anyone settles a task whose requester did not attest by the attestation
    ///         deadline: the requester forfeits and the winners are paid as if the target was met.
    function settleUnattested(uint256 taskId) external {
        Task storage t = _task(taskId, Status.Training);
        if (block.number <= t.terms.attestDeadline) revert TooEarly(block.number, t.terms.attestDeadline);
        emit Forfeited(taskId);
        _settle(taskId, t);
    }

    // ------------------------------------------------------------------ step 9: the EDs' pay

    /// @notice An ED claims its V_i from a winner of a Completed task (step 9, pull payment).
    /// @param server the winner whose list holds the caller
    /// @param amount the caller's amount in that list
    /// @param proof sibling hashes from the caller's leaf to the root (sorted-pair hashing)
    function claimDevicePay(uint256 taskId, address server, uint256 amount, bytes32[] calldata proof) external {
        _task(taskId, Status.Completed);
        if (amount == 0) revert NothingOwed(msg.sender);
        bytes32 node = _leaf(msg.sender, amount);
        for (uint256 i; i < proof.length; ++i) {
            node = _hashPair(node, proof[i]);
        }
        if (node != deviceRoot[taskId][server]) revert InvalidProof(msg.sender, amount);
        if (claimed[taskId][server][msg.sender]) revert AlreadyClaimed(msg.sender);
        claimed[taskId][server][msg.sender] = true;
        devicePool[taskId][server] -= amount;
        emit DevicePaid(taskId, server, msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed(msg.sender, amount);
    }

    /// @notice Withdraw `amount` wei of the caller's balance.
    function withdraw(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        uint256 balance = balanceOf[msg.sender];
        if (amount > balance) revert InsufficientBalance(balance, amount);
        balanceOf[msg.sender] = balance - amount;
        emit Withdrawn(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert TransferFailed(msg.sender, amount);
    }

    // ------------------------------------------------------------------ views

    /// @notice A task's public state (payments aligned with winners).
    function getTask(uint256 taskId) external view returns (TaskView memory v) {
        Task storage t = _task(taskId, Status.None);
        v.requester = t.requester;
        v.status = t.status;
        v.escrow = t.escrow;
        v.terms = t.terms;
        v.aggregator = t.aggregator;
        v.seed = t.seed;
        v.outcome = t.outcome;
        v.totalPayment = t.totalPayment;
        v.winners = t.winners;
        v.payments = new uint256[](t.winners.length);
        for (uint256 i; i < v.winners.length; ++i) {
            v.payments[i] = paymentOf[taskId][v.winners[i]];
        }
        v.revealed = t.revealers.length;
        v.accepted = t.accepted;
    }

    /// @notice One bidder's bid on a task.
    function bidOf(uint256 taskId, address bidder)
        external
        view
        returns (bool committed, bool revealed, uint256 bid, uint256 dataSize, uint256 emdPpm)
    {
        Bid storage b = bids[taskId][bidder];
        return (b.commitment != 0, b.revealed, b.bid, b.dataSize, b.emdPpm);
    }

    /// @notice The bidders that revealed, in reveal order.
    function revealers(uint256 taskId) external view returns (address[] memory) {
        return tasks[taskId].revealers;
    }

    // ------------------------------------------------------------------ internals

    /// @dev The task, which must exist and (unless `needed` is None) be in status `needed`.
    function _task(uint256 taskId, Status needed) private view returns (Task storage t) {
        t = tasks[taskId];
        if (t.status == Status.None) revert UnknownTask(taskId);
        if (needed != Status.None && t.status != needed) revert WrongStatus(taskId, t.status);
    }

    /// @dev Reverts unless opensAfter < block.number <= closesAt.
    function _inWindow(uint256 opensAfter, uint256 closesAt) private view {
        if (block.number <= opensAfter || block.number > closesAt) {
            revert WrongPhase(block.number, opensAfter, closesAt);
        }
    }

    function _cancel(uint256 taskId, Task storage t, bool expired) private {
        t.status = Status.Cancelled;
        emit TaskCancelled(taskId, msg.sender, expired);
        _refund(taskId, t, t.escrow);
    }

    function _refund(uint256 taskId, Task storage t, uint256 amount) private {
        balanceOf[t.requester] += amount;
        if (amount != 0) emit EscrowRefunded(taskId, t.requester, amount);
    }

    /// @dev Step 8: each winner is credited its payment minus its EDs' pool (which stays in the
    ///      contract for the EDs' claims); the requester gets escrow - Σ payments.
    function _settle(uint256 taskId, Task storage t) private {
        t.status = Status.Completed;
        address[] storage winners = t.winners;
        for (uint256 i; i < winners.length; ++i) {
            address w = winners[i];
            uint256 pool = devicePool[taskId][w];
            uint256 amount = paymentOf[taskId][w] - pool;
            balanceOf[w] += amount;
            emit PaymentReleased(taskId, w, amount, pool);
        }
        _refund(taskId, t, t.escrow - t.totalPayment);
    }

    /// @dev Checks the (device, amount) list and returns its Merkle root and Σ amounts. Leaves
    ///      keccak256(bytes.concat(keccak256(abi.encode(device, amount)))) in list order; each
    ///      level hashes sorted pairs, an odd last node is carried up unchanged (OpenZeppelin
    ///      MerkleProof-compatible proofs). O(n) hashes, in memory.
    function _deviceRoot(address[] calldata devices, uint256[] calldata amounts)
        private
        view
        returns (bytes32 root, uint256 total)
    {
        uint256 n = devices.length;
        bytes32[] memory level = new bytes32[](n);
        address previous;
        for (uint256 i; i < n; ++i) {
            address d = devices[i];
            if (d <= previous || d == msg.sender) revert InvalidRecipient(d);
            if (amounts[i] == 0) revert ZeroPayment(d);
            total += amounts[i];
            level[i] = _leaf(d, amounts[i]);
            previous = d;
        }
        while (n > 1) {
            uint256 half = n / 2;
            for (uint256 i; i < half; ++i) {
                level[i] = _hashPair(level[2 * i], level[2 * i + 1]);
            }
            if (n % 2 == 1) {
                level[half] = level[n - 1];
                n = half + 1;
            } else {
                n = half;
            }
        }
        root = level[0];
    }

    function _leaf(address device, uint256 amount) private pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(device, amount))));
    }

    function _hashPair(bytes32 a, bytes32 b) private pure returns (bytes32 h) {
        (bytes32 lo, bytes32 hi) = a < b ? (a, b) : (b, a);
        assembly ("memory-safe") {
            mstore(0x00, lo)
            mstore(0x20, hi)
            h := keccak256(0x00, 0x40)
        }
    }
}
