// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

/// @title aiprov staking: evaluation claims backed by stake, challenged with a bond, settled by k auditors.
/// @notice The game, for one claim:
///  1. `claim`: a publisher locks stake S on (version digest, evaluation spec digest, metric, value, tolerance).
///     Only the hash of those five is stored; the `Claimed` event carries them in full.
///  2. Within the challenge window T, one challenger at a time may `challenge` with a bond
///     B >= bondFactorBps/10000 x S; a second challenge while one is active is refused. Each challenge is a new
///     round. The publisher takes S back after T (`withdrawStake`) if no challenge is active; never during one.
///  3. Registered auditors (who staked `auditorStake` to register) re-run the evaluation and sign EIP-712 verdicts
///     over (claim id, round, measured value, outcome, deadline), under a domain bound to this chain and contract.
///  4. Anyone may `resolve` once with >= k verdicts of one outcome from distinct registered auditors, in strictly
///     increasing signer order, neither the publisher nor the challenger, before the resolution deadline.
///     Refuted: the publisher loses S: winnerShareBps of it to the challenger, auditorShareBps split among the
///     signers, the rest burned; the challenger gets B back; the claim is over. Upheld: the challenger loses B,
///     split the same way with the publisher as winner; the claim is open again, so another challenger may try
///     (a new round) until T, and S unlocks after T as for an unchallenged claim.
///  5. No quorum by the resolution deadline: anyone may `refund`, which gives S and B back.
///  Payouts are credited, never pushed: each account pulls its credit with `withdraw`. Burned tokens are sent to
///  BURN_ADDRESS (a plain ERC-20 has no burn), so the total supply of any token stays honest about where they went.
contract AiprovStaking is EIP712, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    enum Status {
        None,
        Open,
        Challenged,
        Refuted,
        Refunded,
        Withdrawn
    }

    enum Outcome {
        None,
        Refuted,
        Upheld
    }

    /// @notice Every parameter of the game; see docs/staking.md for the defaults aiprov deploys with.
    struct Params {
        uint64 challengeWindow; // T, seconds from the claim during which it may be challenged
        uint64 resolutionPeriod; // seconds from the challenge by which a quorum must resolve it
        uint32 bondFactorBps; // f in basis points: bond >= stake x f / 10000 (rounded up)
        uint16 quorum; // k, distinct auditors' verdicts needed to resolve
        uint16 winnerShareBps; // part of the loser's deposit to the winner
        uint16 auditorShareBps; // part split equally among the signing auditors
        uint16 burnShareBps; // part burned; the three shares sum to 10000
        uint128 auditorStake; // what an auditor locks to register
        uint128 minStake; // the smallest stake a claim may carry
    }

    struct Claim {
        address publisher;
        uint64 unlockAt; // end of the challenge window
        Status status;
        uint8 round; // 0 until challenged, then one more per challenge: verdicts name it, so none is replayed later
        uint128 stake;
        uint128 bond;
        address challenger;
        uint64 resolveBy;
        bytes32 contentHash; // keccak256(abi.encode(version, spec, metric, value, tolerance))
    }

    struct Auditor {
        uint128 stake;
        uint64 exitAt; // 0 while registered; when the stake may leave after `leaveAuditors`
        bool registered;
    }

    /// @notice One auditor's signed verdict, as `resolve` receives it; the signer is recovered, not claimed.
    struct Verdict {
        int256 measured;
        uint64 deadline;
        bytes signature;
    }

    bytes32 public constant VERDICT_TYPEHASH =
        keccak256("Verdict(uint256 claimId,uint8 round,int256 measured,uint8 outcome,uint64 deadline)");
    address public constant BURN_ADDRESS = 0x000000000000000000000000000000000000dEaD;
    uint256 private constant BPS = 10_000;

    IERC20 public immutable token;
    uint64 public immutable challengeWindow;
    uint64 public immutable resolutionPeriod;
    uint32 public immutable bondFactorBps;
    uint16 public immutable quorum;
    uint16 public immutable winnerShareBps;
    uint16 public immutable auditorShareBps;
    uint16 public immutable burnShareBps;
    uint128 public immutable auditorStake;
    uint128 public immutable minStake;

    uint256 public claimCount;
    mapping(uint256 claimId => Claim) private _claims;
    mapping(address account => Auditor) private _auditors;
    /// @notice Tokens an account may pull with `withdraw`: payouts, returned deposits, refunds.
    mapping(address account => uint256) public credit;

    error InvalidParameter(string name);
    error ZeroToken();
    error ZeroDigest();
    error StakeTooSmall(uint256 stake, uint256 minimum);
    error StakeTooLarge(uint256 stake);
    error UnknownClaim(uint256 claimId);
    error NotOpen(uint256 claimId, Status status);
    error NotChallenged(uint256 claimId, Status status);
    error WindowClosed(uint256 claimId, uint64 closedAt);
    error SelfChallenge(uint256 claimId);
    error BondTooSmall(uint256 bond, uint256 minimum);
    error StakeLocked(uint256 claimId, uint64 unlockAt);
    error NotPublisher(uint256 claimId, address caller);
    error InvalidOutcome(uint8 outcome);
    error TooFewVerdicts(uint256 given, uint256 quorum);
    error ResolutionClosed(uint256 claimId, uint64 resolveBy);
    error ResolutionOpen(uint256 claimId, uint64 resolveBy);
    error VerdictExpired(address signer, uint64 deadline);
    error SignersNotIncreasing(address previous, address signer);
    error NotAuditor(address signer);
    error ConflictedSigner(address signer);
    error AlreadyAuditor(address account);
    error NotRegistered(address account);
    error AuditorStakeLocked(address account, uint64 exitAt);
    error NothingToWithdraw(address account);

    event Claimed(
        uint256 indexed claimId,
        address indexed publisher,
        bytes32 versionDigest,
        bytes32 specDigest,
        bytes32 metric,
        int256 value,
        uint256 tolerance,
        uint256 stake,
        uint64 unlockAt
    );
    event Challenged(uint256 indexed claimId, address indexed challenger, uint256 bond, uint8 round, uint64 resolveBy);
    event Resolved(
        uint256 indexed claimId, uint8 round, Outcome outcome, address[] auditors, uint256 slashed, uint256 burned
    );
    event Refunded(uint256 indexed claimId, uint8 round);
    event StakeWithdrawn(uint256 indexed claimId, address indexed publisher, uint256 stake);
    event AuditorRegistered(address indexed auditor, uint256 stake);
    event AuditorLeft(address indexed auditor, uint64 exitAt);
    event Withdrawn(address indexed account, uint256 amount);

    constructor(IERC20 token_, Params memory p) EIP712("AiprovStaking", "1") {
        if (address(token_) == address(0)) revert ZeroToken();
        if (p.challengeWindow == 0) revert InvalidParameter("challengeWindow");
        if (p.resolutionPeriod == 0) revert InvalidParameter("resolutionPeriod");
        if (p.bondFactorBps == 0) revert InvalidParameter("bondFactorBps");
        if (p.quorum == 0) revert InvalidParameter("quorum");
        if (uint256(p.winnerShareBps) + p.auditorShareBps + p.burnShareBps != BPS) revert InvalidParameter("shares");
        if (p.auditorStake == 0) revert InvalidParameter("auditorStake");
        if (p.minStake == 0) revert InvalidParameter("minStake");
        token = token_;
        challengeWindow = p.challengeWindow;
        resolutionPeriod = p.resolutionPeriod;
        bondFactorBps = p.bondFactorBps;
        quorum = p.quorum;
        winnerShareBps = p.winnerShareBps;
        auditorShareBps = p.auditorShareBps;
        burnShareBps = p.burnShareBps;
        auditorStake = p.auditorStake;
        minStake = p.minStake;
    }

    // publisher ---------------------------------------------------------------------------------------------------

    /// @notice Lock `stake` (approved beforehand, or use the token's permit) behind a claim; returns its id.
    function claim(
        bytes32 versionDigest,
        bytes32 specDigest,
        bytes32 metric,
        int256 value,
        uint256 tolerance,
        uint256 stake
    ) external nonReentrant returns (uint256 claimId) {
        if (versionDigest == bytes32(0) || specDigest == bytes32(0)) revert ZeroDigest();
        if (stake < minStake) revert StakeTooSmall(stake, minStake);
        if (stake > type(uint128).max) revert StakeTooLarge(stake);
        claimId = ++claimCount;
        uint64 unlockAt = uint64(block.timestamp) + challengeWindow;
        Claim storage c = _claims[claimId];
        c.publisher = msg.sender;
        c.unlockAt = unlockAt;
        c.status = Status.Open;
        c.stake = uint128(stake);
        c.contentHash = keccak256(abi.encode(versionDigest, specDigest, metric, value, tolerance));
        emit Claimed(claimId, msg.sender, versionDigest, specDigest, metric, value, tolerance, stake, unlockAt);
        token.safeTransferFrom(msg.sender, address(this), stake);
    }

    /// @notice Take an unchallenged claim's stake back once its challenge window has closed.
    function withdrawStake(uint256 claimId) external nonReentrant {
        Claim storage c = _existing(claimId);
        if (c.publisher != msg.sender) revert NotPublisher(claimId, msg.sender);
        if (c.status != Status.Open) revert NotOpen(claimId, c.status);
        if (block.timestamp < c.unlockAt) revert StakeLocked(claimId, c.unlockAt);
        c.status = Status.Withdrawn;
        uint256 stake = c.stake;
        emit StakeWithdrawn(claimId, msg.sender, stake);
        token.safeTransfer(msg.sender, stake);
    }

    // challenger --------------------------------------------------------------------------------------------------

    /// @notice Dispute an open claim inside its window with `bond` >= the claim's minimum bond.
    function challenge(uint256 claimId, uint256 bond) external nonReentrant {
        Claim storage c = _existing(claimId);
        if (c.status != Status.Open) revert NotOpen(claimId, c.status);
        if (block.timestamp >= c.unlockAt) revert WindowClosed(claimId, c.unlockAt);
        if (msg.sender == c.publisher) revert SelfChallenge(claimId);
        uint256 minimum = minBond(c.stake);
        if (bond < minimum) revert BondTooSmall(bond, minimum);
        if (bond > type(uint128).max) revert StakeTooLarge(bond);
        uint64 resolveBy = uint64(block.timestamp) + resolutionPeriod;
        c.status = Status.Challenged;
        c.round += 1;
        c.bond = uint128(bond);
        c.challenger = msg.sender;
        c.resolveBy = resolveBy;
        emit Challenged(claimId, msg.sender, bond, c.round, resolveBy);
        token.safeTransferFrom(msg.sender, address(this), bond);
    }

    /// @notice The smallest bond that may challenge a claim of `stake`.
    function minBond(uint256 stake) public view returns (uint256) {
        return (stake * bondFactorBps + BPS - 1) / BPS;
    }

    // auditors ----------------------------------------------------------------------------------------------------

    /// @notice Become an auditor by locking `auditorStake` (approved beforehand).
    function registerAuditor() external nonReentrant {
        Auditor storage a = _auditors[msg.sender];
        if (a.registered || a.stake != 0) revert AlreadyAuditor(msg.sender);
        a.registered = true;
        a.stake = auditorStake;
        emit AuditorRegistered(msg.sender, auditorStake);
        token.safeTransferFrom(msg.sender, address(this), auditorStake);
    }

    /// @notice Stop being an auditor now; the stake may leave after challengeWindow + resolutionPeriod.
    function leaveAuditors() external {
        Auditor storage a = _auditors[msg.sender];
        if (!a.registered) revert NotRegistered(msg.sender);
        a.registered = false;
        a.exitAt = uint64(block.timestamp) + challengeWindow + resolutionPeriod;
        emit AuditorLeft(msg.sender, a.exitAt);
    }

    /// @notice Take a former auditor's stake back after its exit delay.
    function withdrawAuditorStake() external nonReentrant {
        Auditor storage a = _auditors[msg.sender];
        if (a.registered || a.stake == 0) revert NotRegistered(msg.sender);
        if (block.timestamp < a.exitAt) revert AuditorStakeLocked(msg.sender, a.exitAt);
        uint256 stake = a.stake;
        delete _auditors[msg.sender];
        emit Withdrawn(msg.sender, stake);
        token.safeTransfer(msg.sender, stake);
    }

    function isAuditor(address account) external view returns (bool) {
        return _auditors[account].registered;
    }

    // settlement --------------------------------------------------------------------------------------------------

    /// @notice The EIP-712 digest an auditor signs for a verdict (eth_signTypedData_v4 gives the same).
    function verdictDigest(uint256 claimId, uint8 round, int256 measured, uint8 outcome, uint64 deadline)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(VERDICT_TYPEHASH, claimId, round, measured, outcome, deadline)));
    }

    /// @notice Settle a challenge with >= quorum verdicts of `outcome` (1 refuted, 2 upheld), once per round.
    function resolve(uint256 claimId, uint8 outcome, Verdict[] calldata verdicts) external nonReentrant {
        Claim storage c = _existing(claimId);
        if (c.status != Status.Challenged) revert NotChallenged(claimId, c.status);
        if (block.timestamp > c.resolveBy) revert ResolutionClosed(claimId, c.resolveBy);
        if (outcome != uint8(Outcome.Refuted) && outcome != uint8(Outcome.Upheld)) revert InvalidOutcome(outcome);
        uint256 n = verdicts.length;
        if (n < quorum) revert TooFewVerdicts(n, quorum);
        address publisher = c.publisher;
        address challenger = c.challenger;
        address[] memory signers = _signers(claimId, c.round, outcome, verdicts, publisher, challenger);

        _settle(claimId, c, outcome == uint8(Outcome.Refuted), signers, publisher, challenger);
    }

    /// @dev Credit the winner's deposit and share and the signers' shares; burn the rest of the loser's deposit.
    function _settle(
        uint256 claimId,
        Claim storage c,
        bool refuted,
        address[] memory signers,
        address publisher,
        address challenger
    ) private {
        // Upheld: the stake stays locked in the claim (withdrawStake after T); refuted: the bond comes back.
        c.status = refuted ? Status.Refuted : Status.Open;
        (address winner, uint256 kept, uint256 slashed) =
            refuted ? (challenger, uint256(c.bond), uint256(c.stake)) : (publisher, 0, uint256(c.bond));
        uint256 n = signers.length;
        uint256 each = slashed * auditorShareBps / BPS / n;
        uint256 toWinner = slashed * winnerShareBps / BPS;
        for (uint256 i = 0; i < n; ++i) {
            credit[signers[i]] += each;
        }
        credit[winner] += kept + toWinner;
        uint256 burned = slashed - toWinner - each * n; // the burn share and the rounding dust of the split
        emit Resolved(claimId, c.round, refuted ? Outcome.Refuted : Outcome.Upheld, signers, slashed, burned);
        if (burned != 0) token.safeTransfer(BURN_ADDRESS, burned);
    }

    /// @notice Give both deposits back when no quorum resolved a challenge by its deadline; anyone may call.
    function refund(uint256 claimId) external nonReentrant {
        Claim storage c = _existing(claimId);
        if (c.status != Status.Challenged) revert NotChallenged(claimId, c.status);
        if (block.timestamp <= c.resolveBy) revert ResolutionOpen(claimId, c.resolveBy);
        c.status = Status.Refunded;
        credit[c.publisher] += c.stake;
        credit[c.challenger] += c.bond;
        emit Refunded(claimId, c.round);
    }

    /// @notice Pull every token credited to the caller.
    function withdraw() external nonReentrant {
        uint256 amount = credit[msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        credit[msg.sender] = 0;
        emit Withdrawn(msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    // reads -------------------------------------------------------------------------------------------------------

    function claims(uint256 claimId) external view returns (Claim memory) {
        return _claims[claimId];
    }

    function auditors(address account) external view returns (Auditor memory) {
        return _auditors[account];
    }

    // internals ---------------------------------------------------------------------------------------------------

    function _existing(uint256 claimId) private view returns (Claim storage c) {
        c = _claims[claimId];
        if (c.status == Status.None) revert UnknownClaim(claimId);
    }

    /// @dev The verdicts' signers: registered, distinct (strictly increasing), not a party, not expired.
    function _signers(
        uint256 claimId,
        uint8 round,
        uint8 outcome,
        Verdict[] calldata verdicts,
        address publisher,
        address challenger
    ) private view returns (address[] memory signers) {
        signers = new address[](verdicts.length);
        address previous = address(0);
        for (uint256 i = 0; i < verdicts.length; ++i) {
            Verdict calldata v = verdicts[i];
            bytes32 digest = verdictDigest(claimId, round, v.measured, outcome, v.deadline);
            address signer = ECDSA.recoverCalldata(digest, v.signature);
            if (signer <= previous) revert SignersNotIncreasing(previous, signer);
            if (!_auditors[signer].registered) revert NotAuditor(signer);
            if (signer == publisher || signer == challenger) revert ConflictedSigner(signer);
            if (block.timestamp > v.deadline) revert VerdictExpired(signer, v.deadline);
            signers[i] = signer;
            previous = signer;
        }
    }
}
