// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Initializable} from "@openzeppelin/contracts/proxy/utils/Initializable.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {CloseReason, SessionParams, ISessionWalletEvents} from "./SessionTypes.sol";

/// @dev What a wallet asks its factory: the registry can withdraw trust from a call
/// (target, selector), a token or an operator, or pause execution, for every wallet at
/// once; it also names the fee and where it goes.
interface ISessionRegistry {
    function isTrustedCall(address target, bytes4 selector) external view returns (bool);
    function isTrustedToken(address token) external view returns (bool);
    function isTrustedOperator(address operator) external view returns (bool);
    function executePaused() external view returns (bool);
    function feeBps() external view returns (uint16);
    function treasury() external view returns (address);
}

/// @title SessionWallet
/// @notice Holds one owner's deposit for one session. The operator may spend it only through
/// calls the registry trusts (target and selector) to the session's own targets, never to
/// a token, before expiry, within a budget; the owner can top up, extend, revoke, withdraw
/// and close at any time; anyone can sweep an expired or revoked session. Every refund
/// goes to the owner; every inflow the operator can spend pays the fee once. Deployed as a
/// clone by SessionWalletFactory.
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
    error CallNotAllowed(address target, bytes4 selector);
    error FeeAboveMax(uint16 feeBps, uint16 maxFeeBps);
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
    uint16 public maxFeeBps; // the creator's consent: inflows found later pay at most this
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

    /// @notice Called once by the factory, after it moved the deposit here. A balance the
    /// wallet held before the deposit (`prefunded`: a transfer to the predicted address)
    /// pays the fee out of itself, at `bps`, the rate the creation was charged.
    /// @return balance the wallet's balance after the deposit and that fee (sequence 0).
    /// @return prefundFee the fee taken from the prefunded balance.
    function initialize(address owner_, SessionParams calldata p, uint256 prefunded, uint16 bps)
        external
        initializer
        returns (uint256 balance, uint256 prefundFee)
    {
        if (msg.sender != factory) revert NotFactory();
        owner = owner_;
        operator = p.operator;
        token = IERC20(p.token);
        expiry = p.expiry;
        budget = p.budget;
        maxFeeBps = p.maxFeeBps;
        for (uint256 i = 0; i < p.targets.length; ++i) {
            address t = p.targets[i];
            if (t == address(this) || t == p.token || t == factory) revert TargetNotAllowed(t);
            isTarget[t] = true;
        }
        prefundFee = _fee(prefunded, bps);
        if (prefundFee > 0) token.safeTransfer(ISessionRegistry(factory).treasury(), prefundFee);
        balance = _balance();
        recordedBalance = balance;
    }

    // ---------------------------------------------------------------- owner

    /// @notice Top up the session from the owner's tokens, paying the fee on top (approve
    /// this wallet for `amount` plus `feeFor(amount)` on the factory first). Reverts when
    /// the factory's fee is above `maxFeeBps_`.
    function deposit(uint256 amount, uint16 maxFeeBps_) external nonReentrant whileOpen onlyOwner {
        if (amount == 0) revert ZeroAmount();
        ISessionRegistry registry = ISessionRegistry(factory);
        uint16 bps = registry.feeBps();
        if (bps > maxFeeBps_) revert FeeAboveMax(bps, maxFeeBps_);
        uint256 before = _absorb();
        token.safeTransferFrom(msg.sender, address(this), amount);
        uint256 fee = _fee(amount, bps);
        if (fee > 0) token.safeTransferFrom(msg.sender, registry.treasury(), fee);
        uint256 bal = _balance();
        recordedBalance = bal;
        emit Deposited(++seq, msg.sender, bal - before, fee, bal);
    }

    function withdraw(uint256 amount) external nonReentrant whileOpen onlyOwner {
        if (amount == 0) revert ZeroAmount();
        uint256 available = _absorb();
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
        uint256 bal = _absorb();
        emit Extended(++seq, previous, newExpiry, bal);
    }

    /// @notice Take the operator's rights away for good; the session becomes sweepable.
    function revoke() external nonReentrant whileOpen onlyOwner {
        if (revoked) revert AlreadyRevoked();
        revoked = true;
        uint256 bal = _absorb();
        emit Revoked(++seq, operator, bal);
    }

    // ------------------------------------------------------------- operator

    /// @notice Call one of the session's targets with a selector the registry trusts for
    /// it, approving it for exactly `amount` tokens for the duration of the call. Never a
    /// token (the session's, or any the registry lists), the factory or the wallet itself:
    /// a call there could move assets the budget does not count. Spend is the balance
    /// decrease, held under the budget; an inflow found first pays its fee.
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
            !isTarget[target] || target == address(this) || target == address(token)
                || target == factory || registry.isTrustedToken(target)
        ) revert TargetNotAllowed(target);
        bytes4 selector = bytes4(data);
        if (data.length < 4 || !registry.isTrustedCall(target, selector)) {
            revert CallNotAllowed(target, selector);
        }

        uint256 before = _absorb();
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
        emit Executed(++seq, target, selector, amount, spentNow, received, totalSpent, bal);
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

    /// @notice Record a balance change that bypassed the wallet: a plain transfer in pays
    /// the fee out of itself (as every operation but a close does first); a decrease is
    /// recorded as it is.
    function sync() external nonReentrant whileOpen {
        uint256 previous = recordedBalance;
        uint256 bal = _balance();
        if (bal == previous) revert NothingToSync();
        if (bal > previous) {
            _absorb();
        } else {
            recordedBalance = bal;
            emit Synced(++seq, previous, 0, bal);
        }
    }

    /// @notice Send tokens stuck here to the owner: any token other than the session's at
    /// any time, and the session's own token once the session is closed (a late payout or
    /// a mistaken transfer after the close).
    function recover(address asset) external nonReentrant {
        if (asset == address(token) && !closed) revert SessionStillOpen();
        uint256 amount = IERC20(asset).balanceOf(address(this));
        if (amount == 0) revert ZeroAmount();
        IERC20(asset).safeTransfer(owner, amount);
        uint256 bal = closed ? _balance() : _absorb();
        recordedBalance = bal;
        emit Recovered(++seq, asset, amount, bal);
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

    /// @dev The balance, after an inflow found since the last record (a plain transfer in)
    /// paid its fee, at the factory's rate capped by the creator's `maxFeeBps`, and was
    /// recorded in a `Synced`. A close refunds without this: the owner gets it all back.
    function _absorb() private returns (uint256 bal) {
        bal = _balance();
        uint256 previous = recordedBalance;
        if (bal <= previous) return bal;
        ISessionRegistry registry = ISessionRegistry(factory);
        uint16 bps = registry.feeBps();
        uint16 cap = maxFeeBps;
        uint256 fee = _fee(bal - previous, bps < cap ? bps : cap);
        if (fee > 0) {
            token.safeTransfer(registry.treasury(), fee);
            bal = _balance();
        }
        recordedBalance = bal;
        emit Synced(++seq, previous, fee, bal);
    }

    /// @dev Rounded up: the treasury never loses the remainder, so splitting an inflow
    /// into small pieces saves nothing.
    function _fee(uint256 amount, uint16 bps) private pure returns (uint256) {
        return Math.mulDiv(amount, bps, 10_000, Math.Rounding.Ceil);
    }

    function _balance() private view returns (uint256) {
        return token.balanceOf(address(this));
    }
}
