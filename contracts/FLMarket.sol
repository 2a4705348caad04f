// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

/// @title FLMarket: escrow and settlement of FL tasks in the TBCIM service market
/// @notice TBCIM Fig. 2 / section II: a model requester publishes an FL task with its reward in
///         escrow; the reverse auction's outcome (winning ESs and their payments) is recorded; the
///         requester, as the buyer, verifies the trained model and attests its accuracy (the
///         paper's step 8). If the attested accuracy meets the task's target, each winning ES is
///         credited its payment and the rest of the escrow returns to the requester; otherwise the
///         whole escrow returns to the requester. Each winning ES then pays its EDs out of what it
///         received. Every payout is a pull payment: balances are credited and withdrawn by their
///         owners (checks-effects-interactions, no external call except in withdraw()).
/// @dev    Trust: the requester attests accuracy on its own validation data, so a dishonest
///         requester could under-report and keep the escrow; the attestation and the target are
///         public, which makes such behaviour visible but not preventable (see docs/contracts.md).
contract FLMarket {
    /// @notice Lifecycle of a task.
    enum Status {
        None,
        Open,
        Awarded,
        Completed,
        Failed
    }

    struct Task {
        address requester;
        Status status;
        uint256 escrow;
        uint256 targetAccuracyPpm;
        uint256 totalPayment;
        bytes32 spec;
        address[] winners;
    }

    uint256 private constant PPM = 1_000_000;

    /// @notice Number of tasks published; task ids are 1..taskCount.
    uint256 public taskCount;
    mapping(uint256 taskId => Task) private tasks;
    /// @notice Auction payment of each winning ES per task.
    mapping(uint256 taskId => mapping(address server => uint256)) public paymentOf;
    /// @notice Whether a winning ES has paid its EDs for a task.
    mapping(uint256 taskId => mapping(address server => bool)) public devicesPaid;
    /// @notice Withdrawable balance of every participant.
    mapping(address account => uint256) public balanceOf;

    /// @notice A task was published with `escrow` wei in escrow.
    event TaskPublished(
        uint256 indexed taskId,
        address indexed requester,
        uint256 escrow,
        uint256 targetAccuracyPpm,
        bytes32 spec
    );
    /// @notice The reverse auction's outcome was recorded.
    event AuctionRecorded(uint256 indexed taskId, address[] winners, uint256[] payments);
    /// @notice The requester attested the model's accuracy.
    event AccuracyAttested(uint256 indexed taskId, uint256 accuracyPpm, bool targetMet);
    /// @notice A winning ES was credited its payment.
    event PaymentReleased(uint256 indexed taskId, address indexed server, uint256 amount);
    /// @notice Escrow returned to the requester (unspent remainder or a failed task).
    event EscrowRefunded(uint256 indexed taskId, address indexed requester, uint256 amount);
    /// @notice A winning ES paid its EDs from its payment.
    event DevicesPaid(uint256 indexed taskId, address indexed server, address[] devices, uint256[] amounts);
    /// @notice An account withdrew part of its balance.
    event Withdrawn(address indexed account, uint256 amount);

    /// @notice publishTask was called without a reward in escrow.
    error NoEscrow();
    /// @notice The accuracy (ppm) is above 1e6.
    error InvalidAccuracy(uint256 accuracyPpm);
    /// @notice No task with this id.
    error UnknownTask(uint256 taskId);
    /// @notice Only the task's requester may call this.
    error NotRequester(address caller);
    /// @notice The task is not in the status this call needs.
    error WrongStatus(uint256 taskId, Status status);
    /// @notice An array's length differs from the length it must match, or is zero (the same
    ///         error, with the same arguments, as FLAggregator's).
    /// @param expected the length required (the first array's)
    /// @param actual the length given
    error WrongLength(uint256 expected, uint256 actual);
    /// @notice A winner or device is the zero address or listed twice.
    error InvalidRecipient(address recipient);
    /// @notice The auction payments exceed the escrow.
    error PaymentsExceedEscrow(uint256 payments, uint256 escrow);
    /// @notice The caller received no payment for this task.
    error NothingReceived(address server, uint256 taskId);
    /// @notice The ES already paid its EDs for this task.
    error AlreadyPaid(address server, uint256 taskId);
    /// @notice The ED payments exceed what the ES received for the task.
    error ExceedsPayment(uint256 amounts, uint256 payment);
    /// @notice The amount exceeds the caller's balance.
    error InsufficientBalance(uint256 balance, uint256 requested);
    /// @notice Withdrawing zero.
    error ZeroAmount();
    /// @notice The transfer to the caller failed.
    error TransferFailed(address account, uint256 amount);

    /// @notice Publish a task; the reward is the attached value, held in escrow.
    /// @param spec hash of the task description (model, data, deadline) kept off chain
    /// @param targetAccuracyPpm accuracy the model must reach for payment (ppm, <= 1e6)
    /// @return taskId the new task's id
    function publishTask(bytes32 spec, uint256 targetAccuracyPpm) external payable returns (uint256 taskId) {
        if (msg.value == 0) revert NoEscrow();
        if (targetAccuracyPpm > PPM) revert InvalidAccuracy(targetAccuracyPpm);
        taskId = ++taskCount;
        Task storage t = tasks[taskId];
        t.requester = msg.sender;
        t.status = Status.Open;
        t.escrow = msg.value;
        t.targetAccuracyPpm = targetAccuracyPpm;
        t.spec = spec;
        emit TaskPublished(taskId, msg.sender, msg.value, targetAccuracyPpm, spec);
    }

    /// @notice Record the reverse auction's winners and payments (requester only, once).
    /// @param taskId the task
    /// @param winners the winning ESs (distinct, non-zero)
    /// @param payments each winner's payment in wei; their sum must not exceed the escrow
    function recordAuction(uint256 taskId, address[] calldata winners, uint256[] calldata payments) external {
        Task storage t = _requesterTask(taskId, Status.Open);
        if (winners.length == 0 || winners.length != payments.length) {
            revert WrongLength(winners.length, payments.length);
        }
        uint256 total;
        for (uint256 i; i < winners.length; ++i) {
            address w = winners[i];
            if (w == address(0) || paymentOf[taskId][w] != 0) revert InvalidRecipient(w);
            if (payments[i] == 0) revert InvalidRecipient(w);
            paymentOf[taskId][w] = payments[i];
            total += payments[i];
        }
        if (total > t.escrow) revert PaymentsExceedEscrow(total, t.escrow);
        t.winners = winners;
        t.totalPayment = total;
        t.status = Status.Awarded;
        emit AuctionRecorded(taskId, winners, payments);
    }

    /// @notice The requester attests the verified accuracy of the delivered model (once).
    ///         Meeting the target credits every winner and refunds the rest of the escrow;
    ///         missing it refunds the whole escrow.
    /// @param taskId the task
    /// @param accuracyPpm the measured accuracy in ppm
    function attestAccuracy(uint256 taskId, uint256 accuracyPpm) external {
        Task storage t = _requesterTask(taskId, Status.Awarded);
        if (accuracyPpm > PPM) revert InvalidAccuracy(accuracyPpm);
        bool met = accuracyPpm >= t.targetAccuracyPpm;
        uint256 refund = t.escrow;
        if (met) {
            t.status = Status.Completed;
            refund -= t.totalPayment;
            address[] storage winners = t.winners;
            for (uint256 i; i < winners.length; ++i) {
                uint256 amount = paymentOf[taskId][winners[i]];
                balanceOf[winners[i]] += amount;
                emit PaymentReleased(taskId, winners[i], amount);
            }
        } else {
            t.status = Status.Failed;
        }
        balanceOf[t.requester] += refund;
        emit AccuracyAttested(taskId, accuracyPpm, met);
        if (refund != 0) emit EscrowRefunded(taskId, t.requester, refund);
    }

    /// @notice A winning ES pays its EDs (once per task) out of its balance; the sum may not
    ///         exceed its payment for the task.
    /// @param taskId a completed task the caller won
    /// @param devices the EDs (distinct, non-zero)
    /// @param amounts each ED's reward in wei
    function payDevices(uint256 taskId, address[] calldata devices, uint256[] calldata amounts) external {
        Task storage t = _task(taskId);
        if (t.status != Status.Completed) revert WrongStatus(taskId, t.status);
        uint256 payment = paymentOf[taskId][msg.sender];
        if (payment == 0) revert NothingReceived(msg.sender, taskId);
        if (devicesPaid[taskId][msg.sender]) revert AlreadyPaid(msg.sender, taskId);
        if (devices.length == 0 || devices.length != amounts.length) {
            revert WrongLength(devices.length, amounts.length);
        }
        uint256 total;
        for (uint256 i; i < devices.length; ++i) {
            address d = devices[i];
            if (d == address(0) || d == msg.sender) revert InvalidRecipient(d);
            for (uint256 j; j < i; ++j) {
                if (devices[j] == d) revert InvalidRecipient(d);
            }
            total += amounts[i];
        }
        if (total > payment) revert ExceedsPayment(total, payment);
        uint256 balance = balanceOf[msg.sender];
        if (total > balance) revert InsufficientBalance(balance, total);
        devicesPaid[taskId][msg.sender] = true;
        balanceOf[msg.sender] = balance - total;
        for (uint256 i; i < devices.length; ++i) {
            balanceOf[devices[i]] += amounts[i];
        }
        emit DevicesPaid(taskId, msg.sender, devices, amounts);
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

    /// @notice A task's public state.
    function getTask(uint256 taskId)
        external
        view
        returns (
            address requester,
            Status status,
            uint256 escrow,
            uint256 targetAccuracyPpm,
            uint256 totalPayment,
            bytes32 spec,
            address[] memory winners
        )
    {
        Task storage t = _task(taskId);
        return (t.requester, t.status, t.escrow, t.targetAccuracyPpm, t.totalPayment, t.spec, t.winners);
    }

    function _task(uint256 taskId) private view returns (Task storage t) {
        t = tasks[taskId];
        if (t.status == Status.None) revert UnknownTask(taskId);
    }

    function _requesterTask(uint256 taskId, Status needed) private view returns (Task storage t) {
        t = _task(taskId);
        if (msg.sender != t.requester) revert NotRequester(msg.sender);
        if (t.status != needed) revert WrongStatus(taskId, t.status);
    }
}
