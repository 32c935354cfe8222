// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Initializable} from "@openzeppelin/contracts/proxy/utils/Initializable.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {CloseReason, SessionParams, ISessionWalletEvents} from "./SessionTypes.sol";

/// @dev What a wallet asks its factory on every execute: the registry can withdraw trust
/// from a target or an operator, or pause execution, for every wallet at once.
interface ISessionRegistry {
    function isTrustedTarget(address target) external view returns (bool);
    function isTrustedOperator(address operator) external view returns (bool);
    function executePaused() external view returns (bool);
}

/// @title SessionWallet
/// @notice Holds one owner's deposit for one session. The operator may spend it only on
/// allow-listed targets, before expiry, within a budget; the owner can top up, extend,
/// revoke, withdraw and close at any time; anyone can sweep an expired or revoked session.
/// Every refund goes to the owner. Deployed as a clone by SessionWalletFactory.
contract SessionWallet is Initializable, ReentrancyGuardTransient, ISessionWalletEvents {
    using SafeERC20 for IERC20;
    using Address for address;

    error NotFactory();
    error NotOwner();
    error NotOperator();
    error SessionIsClosed();
    error OperatorRevoked();
    error AlreadyRevoked();
    error SessionExpired(uint64 expiry);
    error ExecutionPaused();
    error OperatorNotTrusted(address operator);
    error TargetNotAllowed(address target);
    error BudgetExceeded(uint256 totalSpent, uint256 budget);
    error AmountExceedsBalance(uint256 requested, uint256 available);
    error ZeroAmount();
    error ExpiryNotLater(uint64 current, uint64 requested);
    error NotSweepable();
    error NothingToSync();
    error SessionStillOpen();

    address public immutable factory;

    // Packed so that a close or an execute reads three slots. Stop-loss, take-profit and
    // the policy name are never read on chain: they travel in SessionCreated only.
    address public owner;
    uint64 public expiry;
    address public operator;
    uint64 public seq;
    bool public revoked;
    bool public closed;
    IERC20 public token;
    uint256 public budget;
    uint256 public spent;
    /// @notice Balance as of the last event; differs from balanceOf only after a plain
    /// transfer into the wallet, which `sync` brings back in line.
    uint256 public recordedBalance;
    mapping(address target => bool) public isTarget;

    constructor(address factory_) {
        factory = factory_;
        _disableInitializers();
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner();
        _;
    }

    modifier whileOpen() {
        if (closed) revert SessionIsClosed();
        _;
    }

    /// @notice Called once by the factory, after it moved the deposit here.
    /// @return balance the wallet's balance after the deposit (sequence 0).
    function initialize(address owner_, SessionParams calldata p)
        external
        initializer
        returns (uint256 balance)
    {
        if (msg.sender != factory) revert NotFactory();
        owner = owner_;
        operator = p.operator;
        token = IERC20(p.token);
        expiry = p.expiry;
        budget = p.budget;
        for (uint256 i = 0; i < p.targets.length; ++i) {
            address t = p.targets[i];
            if (t == address(this) || t == p.token || t == factory) revert TargetNotAllowed(t);
            isTarget[t] = true;
        }
        balance = _balance();
        recordedBalance = balance;
    }

    // ---------------------------------------------------------------- owner

    /// @notice Top up the session from the owner's tokens (approve this wallet first).
    function deposit(uint256 amount) external nonReentrant whileOpen onlyOwner {
        if (amount == 0) revert ZeroAmount();
        uint256 before = _balance();
        token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 bal = _balance();
        recordedBalance = bal;
        emit Deposited(++seq, msg.sender, bal - before, bal);
    }

    function withdraw(uint256 amount) external nonReentrant whileOpen onlyOwner {
        if (amount == 0) revert ZeroAmount();
        uint256 available = _balance();
        if (amount > available) revert AmountExceedsBalance(amount, available);
        token.safeTransfer(owner, amount);
        uint256 bal = _balance();
        recordedBalance = bal;
        emit Withdrawn(++seq, owner, amount, bal);
    }

    function extend(uint64 newExpiry) external nonReentrant whileOpen onlyOwner {
        uint64 previous = expiry;
        if (newExpiry <= previous) revert ExpiryNotLater(previous, newExpiry);
        expiry = newExpiry;
        emit Extended(++seq, previous, newExpiry, _record());
    }

    /// @notice Take the operator's rights away for good; the session becomes sweepable.
    function revoke() external nonReentrant whileOpen onlyOwner {
        if (revoked) revert AlreadyRevoked();
        revoked = true;
        emit Revoked(++seq, operator, _record());
    }

    // ------------------------------------------------------------- operator

    /// @notice Call an allow-listed target, approving it for exactly `amount` tokens for
    /// the duration of the call. Spend is the balance decrease, held under the budget.
    function execute(address target, bytes calldata data, uint256 amount)
        external
        nonReentrant
        whileOpen
        returns (bytes memory result)
    {
        if (msg.sender != operator) revert NotOperator();
        if (revoked) revert OperatorRevoked();
        if (block.timestamp >= expiry) revert SessionExpired(expiry);
        ISessionRegistry registry = ISessionRegistry(factory);
        if (registry.executePaused()) revert ExecutionPaused();
        if (!registry.isTrustedOperator(msg.sender)) revert OperatorNotTrusted(msg.sender);
        if (
            !isTarget[target] || !registry.isTrustedTarget(target) || target == address(this)
                || target == address(token) || target == factory
        ) revert TargetNotAllowed(target);

        uint256 before = _balance();
        if (amount > before) revert AmountExceedsBalance(amount, before);
        if (amount > 0) token.forceApprove(target, amount);
        result = target.functionCall(data);
        if (amount > 0) token.forceApprove(target, 0);

        uint256 bal = _balance();
        uint256 spentNow = before > bal ? before - bal : 0;
        uint256 received = bal > before ? bal - before : 0;
        uint256 totalSpent = spent + spentNow;
        if (totalSpent > budget) revert BudgetExceeded(totalSpent, budget);
        spent = totalSpent;
        recordedBalance = bal;
        emit Executed(++seq, target, bytes4(data), amount, spentNow, received, totalSpent, bal);
    }

    // --------------------------------------------------------------- closing

    /// @notice End the session and refund everything to the owner.
    /// Owner: reason Owner. Operator: StopLoss, TakeProfit, Expired or Idle (not after
    /// revocation). Anyone: Swept, once expired or revoked.
    function close(CloseReason reason) external nonReentrant whileOpen {
        _authorizeClose(msg.sender, reason);
        _close(msg.sender, reason);
    }

    /// @notice Anyone may close an expired or revoked session; the refund goes to the owner.
    function sweep() external nonReentrant whileOpen {
        _authorizeClose(msg.sender, CloseReason.Swept);
        _close(msg.sender, CloseReason.Swept);
    }

    /// @notice The factory's batch close, acting for `caller` with the caller's rights.
    function closeFrom(address caller, CloseReason reason) external nonReentrant whileOpen {
        if (msg.sender != factory) revert NotFactory();
        _authorizeClose(caller, reason);
        _close(caller, reason);
    }

    // ---------------------------------------------------------------- anyone

    /// @notice Record a balance change that bypassed the wallet (a plain token transfer in).
    function sync() external nonReentrant whileOpen {
        uint256 previous = recordedBalance;
        uint256 bal = _balance();
        if (bal == previous) revert NothingToSync();
        recordedBalance = bal;
        emit Synced(++seq, previous, bal);
    }

    /// @notice Send tokens stuck here to the owner: any token other than the session's at
    /// any time, and the session's own token once the session is closed (a late payout or
    /// a mistaken transfer after the close).
    function recover(address asset) external nonReentrant {
        if (asset == address(token) && !closed) revert SessionStillOpen();
        uint256 amount = IERC20(asset).balanceOf(address(this));
        if (amount == 0) revert ZeroAmount();
        IERC20(asset).safeTransfer(owner, amount);
        emit Recovered(++seq, asset, amount, _record());
    }

    function isExpired() public view returns (bool) {
        return block.timestamp >= expiry;
    }

    function isSweepable() external view returns (bool) {
        return !closed && (revoked || isExpired());
    }

    // -------------------------------------------------------------- internal

    function _authorizeClose(address caller, CloseReason reason) private view {
        if (reason == CloseReason.Owner) {
            if (caller != owner) revert NotOwner();
        } else if (reason == CloseReason.Swept) {
            if (!revoked && !isExpired()) revert NotSweepable();
        } else {
            if (caller != operator) revert NotOperator();
            if (revoked) revert OperatorRevoked();
        }
    }

    function _close(address caller, CloseReason reason) private {
        closed = true;
        uint256 refund = _balance();
        if (refund > 0) token.safeTransfer(owner, refund);
        uint256 bal = _balance();
        recordedBalance = bal;
        emit Closed(++seq, reason, caller, refund, bal);
    }

    function _record() private returns (uint256 bal) {
        bal = _balance();
        recordedBalance = bal;
    }

    function _balance() private view returns (uint256) {
        return token.balanceOf(address(this));
    }
}
