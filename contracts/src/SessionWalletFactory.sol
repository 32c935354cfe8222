// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";

import {CloseReason, SessionParams, ISessionFactoryEvents} from "./SessionTypes.sol";
import {SessionWallet} from "./SessionWallet.sol";

/// @title SessionWalletFactory
/// @notice Creates SessionWallet clones (initialize and deposit in one transaction, salt
/// bound to the caller), keeps the registry of trusted targets and operators, collects a
/// capped session fee for the treasury, closes sessions in batches, and can pause new
/// sessions and execution in an emergency. Withdrawals and closes are never paused.
contract SessionWalletFactory is Ownable2Step, ISessionFactoryEvents {
    using SafeERC20 for IERC20;

    error SessionsPaused();
    error ZeroAddress();
    error ZeroDeposit();
    error ExpiryNotInFuture(uint64 expiry, uint256 timestamp);
    error UntrustedOperator(address operator);
    error UntrustedTarget(address target);
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

    address public immutable implementation;
    address public treasury;
    uint16 public feeBps;
    bool public sessionsPaused;
    bool public executePaused;

    mapping(address target => bool) public isTrustedTarget;
    mapping(address operator => bool) public isTrustedOperator;
    mapping(address wallet => bool) public isWallet;

    constructor(address initialOwner, address treasury_, uint16 feeBps_) Ownable(initialOwner) {
        implementation = address(new SessionWallet(address(this)));
        _setTreasury(treasury_);
        _setFee(feeBps_);
    }

    // ------------------------------------------------------------- sessions

    /// @notice Open a session: clone a wallet at an address bound to (caller, salt), move
    /// `p.deposit` into it and the fee to the treasury (approve deposit + fee first).
    function createSession(SessionParams calldata p, bytes32 salt)
        external
        returns (address wallet)
    {
        if (sessionsPaused) revert SessionsPaused();
        _validate(p);
        uint256 fee = (p.deposit * feeBps) / 10_000;

        wallet = Clones.cloneDeterministic(implementation, _boundSalt(msg.sender, salt));
        isWallet[wallet] = true;
        IERC20 t = IERC20(p.token);
        t.safeTransferFrom(msg.sender, wallet, p.deposit);
        if (fee > 0) t.safeTransferFrom(msg.sender, treasury, fee);
        uint256 balance = SessionWallet(wallet).initialize(msg.sender, p);

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

    /// @notice The fee charged on top of `deposit`.
    function feeFor(uint256 deposit) external view returns (uint256) {
        return (deposit * feeBps) / 10_000;
    }

    /// @notice Close many sessions in one transaction with the caller's rights in each.
    /// A member that cannot be closed is reported in `BatchCloseFailed` and skipped.
    function closeBatch(address[] calldata wallets, CloseReason[] calldata reasons)
        external
        returns (uint256 closedCount)
    {
        if (wallets.length != reasons.length) revert LengthMismatch(wallets.length, reasons.length);
        if (wallets.length > MAX_BATCH) revert BatchTooLarge(wallets.length, MAX_BATCH);
        for (uint256 i = 0; i < wallets.length; ++i) {
            address w = wallets[i];
            if (!isWallet[w]) {
                emit BatchCloseFailed(w, abi.encodeWithSelector(UnknownWallet.selector, w));
                continue;
            }
            try SessionWallet(w).closeFrom(msg.sender, reasons[i]) {
                ++closedCount;
            } catch (bytes memory reason) {
                emit BatchCloseFailed(w, reason);
            }
        }
    }

    // ---------------------------------------------------------------- admin

    function setTrustedTarget(address target, bool trusted) external onlyOwner {
        if (target == address(0)) revert ZeroAddress();
        isTrustedTarget[target] = trusted;
        emit TargetTrusted(target, trusted);
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
            if (!isTrustedTarget[p.targets[i]]) revert UntrustedTarget(p.targets[i]);
        }
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
