// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {CloseReason, SessionParams, ISessionFactoryEvents} from "./SessionTypes.sol";
import {SessionWallet} from "./SessionWallet.sol";

/// @title SessionWalletFactory
/// @notice Creates SessionWallet clones (initialize and deposit in one transaction, salt
/// bound to the caller), keeps the registry of trusted tokens, calls (target, selector) and
/// operators, collects a capped fee on every inflow for the treasury, closes sessions in
/// batches where one member cannot stall or tax the others, and can pause new sessions and
/// execution in an emergency. Withdrawals and closes are never paused.
contract SessionWalletFactory is Ownable2Step, ReentrancyGuardTransient, ISessionFactoryEvents {
    using SafeERC20 for IERC20;

    error SessionsPaused();
    error ZeroAddress();
    error ZeroDeposit();
    error ExpiryNotInFuture(uint64 expiry, uint256 timestamp);
    error UntrustedOperator(address operator);
    error UntrustedTarget(address target);
    error UntrustedToken(address token);
    error TokenAsTarget(address target);
    error FeeAboveMax(uint16 feeBps, uint16 maxFeeBps);
    error MemberGasOutOfRange(uint256 memberGas, uint256 min, uint256 max);
    error TooManyTargets(uint256 count, uint256 max);
    error PolicyTooLong(uint256 length, uint256 max);
    error InvalidThresholds(uint256 stopLoss, uint256 takeProfit);
    error FeeTooHigh(uint16 feeBps, uint16 max);
    error LengthMismatch(uint256 wallets, uint256 reasons);
    error BatchTooLarge(uint256 size, uint256 max);
    error UnknownWallet(address wallet);

    uint16 public constant MAX_FEE_BPS = 1_000; // 10 %
    uint256 public constant MAX_TARGETS = 16;
    uint256 public constant MAX_POLICY_BYTES = 32;
    uint256 public constant MAX_BATCH = 256;
    /// @notice Bounds of a batch member's gas stipend: a floor on the caller's choice and a
    /// cap on what one member can cost the batch. The floor is no guarantee: an honest close
    /// of a plain ERC-20 takes up to 55,346 gas (the owner held none of the token, so the
    /// refund writes a zero slot; docs/gas.md), and a stipend below a token's honest close
    /// makes an honest member fail as if it were hostile.
    uint256 public constant MIN_MEMBER_GAS = 40_000;
    uint256 public constant MAX_MEMBER_GAS = 1_000_000;
    /// @dev What a failed member's revert leaves in `BatchCloseFailed`: a custom error's
    /// selector and one word. More would let a member make the batch pay for megabytes.
    uint256 private constant REVERT_PREFIX = 36;
    /// @dev Gas kept back before trying a member: the call's own cost and the return, plus
    /// what reporting the unreached members costs per member.
    uint256 private constant BATCH_RESERVE = 12_000;
    uint256 private constant RESERVE_PER_UNREACHED = 600;

    address public immutable implementation;
    address public treasury;
    uint16 public feeBps;
    bool public sessionsPaused;
    bool public executePaused;

    mapping(address token => bool) public isTrustedToken;
    mapping(address target => mapping(bytes4 selector => bool)) public isTrustedCall;
    /// @notice How many selectors the registry trusts on a target (0: not a target).
    mapping(address target => uint256) public trustedSelectors;
    mapping(address operator => bool) public isTrustedOperator;
    mapping(address wallet => bool) public isWallet;

    constructor(address initialOwner, address treasury_, uint16 feeBps_) Ownable(initialOwner) {
        implementation = address(new SessionWallet(address(this)));
        _setTreasury(treasury_);
        _setFee(feeBps_);
    }

    // ------------------------------------------------------------- sessions

    /// @notice Open a session: clone a wallet at an address bound to (caller, salt), move
    /// `p.deposit` into it and the fee to the treasury (approve deposit + `feeFor(deposit)`
    /// first). A balance already at the address pays the fee out of itself. Reverts when
    /// the fee is above `p.maxFeeBps` (a fee raised while the creation was pending).
    function createSession(SessionParams calldata p, bytes32 salt)
        external
        returns (address wallet)
    {
        if (sessionsPaused) revert SessionsPaused();
        _validate(p);
        uint16 bps = feeBps;
        if (bps > p.maxFeeBps) revert FeeAboveMax(bps, p.maxFeeBps);
        uint256 fee = _fee(p.deposit, bps);

        wallet = Clones.cloneDeterministic(implementation, _boundSalt(msg.sender, salt));
        isWallet[wallet] = true;
        IERC20 t = IERC20(p.token);
        uint256 prefunded = t.balanceOf(wallet);
        t.safeTransferFrom(msg.sender, wallet, p.deposit);
        if (fee > 0) t.safeTransferFrom(msg.sender, treasury, fee);
        (uint256 balance, uint256 prefundFee) =
            SessionWallet(wallet).initialize(msg.sender, p, prefunded, bps);
        fee += prefundFee;

        emit SessionCreated(
            wallet,
            msg.sender,
            p.operator,
            p.token,
            p.deposit,
            fee,
            p.expiry,
            p.budget,
            p.stopLoss,
            p.takeProfit,
            p.policy,
            p.targets,
            salt,
            balance
        );
    }

    /// @notice The address `createSession` will use for `creator` and `salt`. Another
    /// caller with the same salt lands elsewhere, so a creation cannot be front-run.
    function predictWallet(address creator, bytes32 salt) external view returns (address) {
        return Clones.predictDeterministicAddress(implementation, _boundSalt(creator, salt));
    }

    /// @notice The fee charged on top of a deposit or a top-up of `amount`, rounded up.
    function feeFor(uint256 amount) external view returns (uint256) {
        return _fee(amount, feeBps);
    }

    /// @notice Close many sessions in one transaction with the caller's rights in each.
    /// Each member runs with at most `memberGas`; one that cannot be closed is reported in
    /// `BatchCloseFailed` (its revert cut to 36 bytes) and skipped. Before a member is
    /// tried, the gas it could need and the reserve to report the rest must be left, or
    /// the batch stops and reports the members it did not reach in `BatchIncomplete`. So a
    /// hostile member costs the batch at most its stipend, and never the others' closes.
    /// Not re-entrant: a member's token could otherwise run a batch of its own inside this
    /// one, whose `BatchCloseFailed` and `BatchIncomplete` would sit in this receipt,
    /// naming this batch's members, indistinguishable from this batch's own.
    function closeBatch(
        address[] calldata wallets,
        CloseReason[] calldata reasons,
        uint256 memberGas
    ) external nonReentrant returns (uint256 closedCount) {
        uint256 n = wallets.length;
        if (n != reasons.length) revert LengthMismatch(n, reasons.length);
        if (n > MAX_BATCH) revert BatchTooLarge(n, MAX_BATCH);
        if (memberGas < MIN_MEMBER_GAS || memberGas > MAX_MEMBER_GAS) {
            revert MemberGasOutOfRange(memberGas, MIN_MEMBER_GAS, MAX_MEMBER_GAS);
        }
        // A call gets at most 63/64 of what is left: ask for 64/63 of the stipend, so an
        // honest member is never starved into a failure that looks like its own.
        uint256 needed = memberGas + memberGas / 63 + BATCH_RESERVE;
        // One calldata buffer for every member: only the reason word changes.
        bytes memory data =
            abi.encodeCall(SessionWallet.closeFrom, (msg.sender, CloseReason.Owner));
        for (uint256 i = 0; i < n; ++i) {
            if (gasleft() < needed + (n - i) * RESERVE_PER_UNREACHED) {
                emit BatchIncomplete(i, wallets[i:]);
                return closedCount;
            }
            address w = wallets[i];
            if (!isWallet[w]) {
                emit BatchCloseFailed(w, abi.encodeWithSelector(UnknownWallet.selector, w));
                continue;
            }
            (bool ok, bytes memory reason) = _closeMember(w, data, reasons[i], memberGas);
            if (ok) ++closedCount;
            else emit BatchCloseFailed(w, reason);
        }
    }

    // ---------------------------------------------------------------- admin

    /// @notice Trust or distrust `selector` on `target`. A token the registry lists is never
    /// a target: a call there (transfer, approve) would move assets the budget does not
    /// count. Trust only calls that move nothing but the session token, within the approval.
    function setTrustedCall(address target, bytes4 selector, bool trusted) external onlyOwner {
        if (target == address(0)) revert ZeroAddress();
        if (trusted && isTrustedToken[target]) revert TokenAsTarget(target);
        if (isTrustedCall[target][selector] == trusted) return;
        isTrustedCall[target][selector] = trusted;
        if (trusted) ++trustedSelectors[target];
        else --trustedSelectors[target];
        emit CallTrusted(target, selector, trusted);
    }

    /// @notice Allow or refuse a token for new sessions. A token a target already has
    /// trusted calls on is refused: distrust its calls first.
    function setTrustedToken(address token, bool trusted) external onlyOwner {
        if (token == address(0)) revert ZeroAddress();
        if (trusted && trustedSelectors[token] != 0) revert TokenAsTarget(token);
        isTrustedToken[token] = trusted;
        emit TokenTrusted(token, trusted);
    }

    function setTrustedOperator(address operator, bool trusted) external onlyOwner {
        if (operator == address(0)) revert ZeroAddress();
        isTrustedOperator[operator] = trusted;
        emit OperatorTrusted(operator, trusted);
    }

    function setFee(uint16 feeBps_) external onlyOwner {
        _setFee(feeBps_);
    }

    function setTreasury(address treasury_) external onlyOwner {
        _setTreasury(treasury_);
    }

    function setSessionsPaused(bool paused) external onlyOwner {
        sessionsPaused = paused;
        emit SessionsPausedSet(paused);
    }

    function setExecutePaused(bool paused) external onlyOwner {
        executePaused = paused;
        emit ExecutePausedSet(paused);
    }

    // -------------------------------------------------------------- internal

    function _validate(SessionParams calldata p) private view {
        if (p.token == address(0) || p.operator == address(0)) revert ZeroAddress();
        if (p.deposit == 0) revert ZeroDeposit();
        if (!isTrustedToken[p.token]) revert UntrustedToken(p.token);
        if (p.expiry <= block.timestamp) revert ExpiryNotInFuture(p.expiry, block.timestamp);
        if (!isTrustedOperator[p.operator]) revert UntrustedOperator(p.operator);
        if (bytes(p.policy).length > MAX_POLICY_BYTES) {
            revert PolicyTooLong(bytes(p.policy).length, MAX_POLICY_BYTES);
        }
        if (p.stopLoss != 0 && p.takeProfit != 0 && p.stopLoss >= p.takeProfit) {
            revert InvalidThresholds(p.stopLoss, p.takeProfit);
        }
        if (p.targets.length > MAX_TARGETS) revert TooManyTargets(p.targets.length, MAX_TARGETS);
        for (uint256 i = 0; i < p.targets.length; ++i) {
            if (trustedSelectors[p.targets[i]] == 0) revert UntrustedTarget(p.targets[i]);
        }
    }

    /// @dev One member's close with a gas stipend; on failure only the first
    /// `REVERT_PREFIX` bytes of its revert are copied (try/catch would copy all of it).
    /// `data` is `closeFrom(caller, _)`: the reason goes into its second word.
    function _closeMember(address w, bytes memory data, CloseReason reason, uint256 stipend)
        private
        returns (bool ok, bytes memory prefix)
    {
        assembly ("memory-safe") {
            mstore(add(data, 0x44), reason)
            ok := call(stipend, w, 0, add(data, 0x20), mload(data), 0, 0)
            if iszero(ok) {
                let size := returndatasize()
                if gt(size, REVERT_PREFIX) { size := REVERT_PREFIX }
                prefix := mload(0x40)
                mstore(prefix, size)
                returndatacopy(add(prefix, 0x20), 0, size)
                mstore(0x40, add(prefix, 0x60))
            }
        }
    }

    /// @dev Rounded up: the treasury never loses the remainder.
    function _fee(uint256 amount, uint16 bps) private pure returns (uint256) {
        return Math.mulDiv(amount, bps, 10_000, Math.Rounding.Ceil);
    }

    function _boundSalt(address creator, bytes32 salt) private pure returns (bytes32) {
        return keccak256(abi.encode(creator, salt));
    }

    function _setFee(uint16 feeBps_) private {
        if (feeBps_ > MAX_FEE_BPS) revert FeeTooHigh(feeBps_, MAX_FEE_BPS);
        feeBps = feeBps_;
        emit FeeChanged(feeBps_);
    }

    function _setTreasury(address treasury_) private {
        if (treasury_ == address(0)) revert ZeroAddress();
        treasury = treasury_;
        emit TreasuryChanged(treasury_);
    }
}
