// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice Why a session ended. The indexer and the rule engine read this from `Closed`.
/// Owner: the owner closed it. StopLoss, TakeProfit, Expired, Idle: the operator closed it
/// under a policy. Swept: anyone closed it after expiry or revocation.
enum CloseReason {
    Owner,
    StopLoss,
    TakeProfit,
    Expired,
    Idle,
    Swept
}

/// @notice Everything a session is created with. Travels in `SessionCreated`, all but
/// `maxFeeBps`, which the wallet keeps (`maxFeeBps()`).
struct SessionParams {
    address operator;
    address token;
    uint256 deposit;
    uint64 expiry;
    uint256 budget;
    uint256 stopLoss; // 0 = none
    uint256 takeProfit; // 0 = none
    string policy; // e.g. a strategy name; at most 32 bytes
    address[] targets;
    /// @dev The highest fee (basis points) the creator accepts: `createSession` reverts
    /// when the factory's fee is higher, and inflows the wallet finds later (plain
    /// transfers) pay at most this rate.
    uint16 maxFeeBps;
}

/// @notice Events of a session wallet. Every one carries the wallet's sequence number (the
/// creation is 0, each later event exactly one more) and the wallet's token balance after
/// the change, so state can be rebuilt from logs alone and gaps detected. Every inflow the
/// operator can spend pays the fee once: a top-up (`Deposited.fee`, paid on top by the
/// owner) and a plain transfer the wallet finds (`Synced.fee`, taken from the inflow).
/// Declared once here so that a look-alike (contracts/test) emits identical signatures.
interface ISessionWalletEvents {
    event Deposited(
        uint64 seq, address indexed from, uint256 amount, uint256 fee, uint256 balanceAfter
    );
    event Executed(
        uint64 seq,
        address indexed target,
        bytes4 selector,
        uint256 approved,
        uint256 spent,
        uint256 received,
        uint256 totalSpent,
        uint256 balanceAfter
    );
    event Withdrawn(uint64 seq, address indexed to, uint256 amount, uint256 balanceAfter);
    event Extended(uint64 seq, uint64 previousExpiry, uint64 newExpiry, uint256 balanceAfter);
    event Revoked(uint64 seq, address indexed operator, uint256 balanceAfter);
    /// @dev `previousBalance` was recorded; `fee` went to the treasury out of the inflow.
    event Synced(uint64 seq, uint256 previousBalance, uint256 fee, uint256 balanceAfter);
    event Closed(
        uint64 seq, CloseReason reason, address indexed by, uint256 refund, uint256 balanceAfter
    );
    /// @dev Tokens stuck in the wallet sent to the owner; `balanceAfter` is still the
    /// session token's balance.
    event Recovered(uint64 seq, address indexed asset, uint256 amount, uint256 balanceAfter);
}

/// @notice Events of the factory. `SessionCreated` is sequence 0 of the new wallet; its `fee`
/// is the creation deposit's fee plus the fee on a balance the wallet already held.
interface ISessionFactoryEvents {
    event SessionCreated(
        address indexed wallet,
        address indexed owner,
        address indexed operator,
        address token,
        uint256 deposit,
        uint256 fee,
        uint64 expiry,
        uint256 budget,
        uint256 stopLoss,
        uint256 takeProfit,
        string policy,
        address[] targets,
        bytes32 salt,
        uint256 balanceAfter
    );
    event TokenTrusted(address indexed token, bool trusted);
    event CallTrusted(address indexed target, bytes4 indexed selector, bool trusted);
    event OperatorTrusted(address indexed operator, bool trusted);
    event FeeChanged(uint16 feeBps);
    event TreasuryChanged(address indexed treasury);
    event SessionsPausedSet(bool paused);
    event ExecutePausedSet(bool paused);
    /// @dev `reason`: at most the first 36 bytes of the member's revert data (the error's
    /// selector and one word); empty when it ran out of its gas stipend.
    event BatchCloseFailed(address indexed wallet, bytes reason);
    /// @dev The batch stopped before `gasleft()` fell below its reserve: members from index
    /// `reached` on were not tried (not closed, not failed) and can be sent again.
    event BatchIncomplete(uint256 reached, address[] unreached);
}
